"""Notifications: message templates rendered in Jinja2's sandbox (messages.py), sent over e-mail (SMTP),
Slack incoming webhooks and signed generic webhooks. base.py is the contract the executor sees."""

from opsresponder.core.errors import OpsResponderError


class NotifyError(OpsResponderError):
    """Root of the errors of notification channels."""

"""Outbound event subscriptions: URL allowlist, HMAC signing, the delivery worker and its metrics.

Subscriptions and their outbox live in PostgreSQL (``store/subscriptions.py``); this package sends what
the outbox holds. See ``docs/subscriptions.md``.
"""

from opsresponder.core.errors import OpsResponderError


class OutboundError(OpsResponderError):
    """Root of the errors of outbound deliveries."""

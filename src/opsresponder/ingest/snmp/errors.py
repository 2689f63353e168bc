"""Errors of the SNMP trap receiver."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class SnmpReceiverError(OpsResponderError):
    """The SNMP trap receiver cannot start, e.g. its UDP port is taken; the message names host and port."""

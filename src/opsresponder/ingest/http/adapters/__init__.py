"""Native webhook payloads of monitoring systems, turned into events by pure adapters.

`ADAPTERS` is keyed by the path suffix of ``POST /api/v1/events/webhook/{source_type}``:

============  ==============================  =====================
suffix        payload                         ``Event.source_type``
============  ==============================  =====================
alertmanager  Alertmanager webhook v4         prometheus
prometheus    Alertmanager webhook v4         prometheus
grafana       Grafana alerting webhook        grafana
zabbix        Zabbix media type script JSON   zabbix
nagios        Nagios notification command     nagios
icinga        Icinga 2 notification command   icinga
============  ==============================  =====================

`detect_adapter` recognises those payloads when they arrive at the generic endpoint instead. Setup per
system, the mapping tables and resolve handling are in docs/integrations.md.
"""

from __future__ import annotations

from typing import Final

from opsresponder.ingest.http.adapters._common import Adapter
from opsresponder.ingest.http.adapters.alertmanager import AlertmanagerAdapter
from opsresponder.ingest.http.adapters.grafana import GrafanaAdapter
from opsresponder.ingest.http.adapters.nagios import NagiosAdapter
from opsresponder.ingest.http.adapters.zabbix import ZabbixAdapter

__all__ = ["ADAPTERS", "Adapter", "detect_adapter"]

_alertmanager: Final = AlertmanagerAdapter()

ADAPTERS: Final[dict[str, Adapter]] = {
    "alertmanager": _alertmanager,
    "prometheus": _alertmanager,
    "grafana": GrafanaAdapter(),
    "zabbix": ZabbixAdapter(),
    "nagios": NagiosAdapter("nagios"),
    "icinga": NagiosAdapter("icinga"),
}

# Nagios macro names that no generic body has; one of them plus a host name marks a notification.
_NAGIOS_MARKERS: Final = frozenset({"notificationtype", "hoststate", "servicestate", "servicedesc"})


def detect_adapter(payload: object) -> Adapter | None:
    """The adapter for a native payload that arrived at the generic webhook endpoint, or None.

    `payload` is the body already decoded as plain JSON. A body with an ``alerts`` array is an Alertmanager
    (``version`` "4", or ``source_type`` prometheus/alertmanager) or Grafana (``orgId``, ``version`` "1" or
    ``source_type`` grafana) notification; a body whose ``event`` and ``host`` are objects is the Zabbix media
    type's; a body with Nagios macro names (``HOSTNAME`` with ``NOTIFICATIONTYPE``, ``HOSTSTATE``,
    ``SERVICESTATE`` or ``SERVICEDESC``, any case) is a Nagios or Icinga notification. Anything else,
    including every generic body, is None.
    """
    if not isinstance(payload, dict):
        return None
    source_type = payload.get("source_type")
    hint = source_type.lower() if isinstance(source_type, str) else ""
    if isinstance(payload.get("alerts"), list):
        if hint == "grafana" or "orgId" in payload or payload.get("version") == "1":
            return ADAPTERS["grafana"]
        if hint in ("prometheus", "alertmanager") or "groupKey" in payload or payload.get("version") == "4":
            return ADAPTERS["alertmanager"]
        return None
    if isinstance(payload.get("event"), dict) and isinstance(payload.get("host"), dict):
        return ADAPTERS["zabbix"]
    keys = {key.lower() for key in payload if isinstance(key, str)}
    if "hostname" in keys and keys & _NAGIOS_MARKERS:
        return ADAPTERS["icinga" if hint == "icinga" else "nagios"]
    return None

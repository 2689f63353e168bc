"""Grafana unified alerting webhook contact point (payload ``version: "1"``): one event per alert.

Endpoint: ``POST /api/v1/events/webhook/grafana``. Grafana's payload is Alertmanager's with extras
(``orgId``, ``title``, ``state``, ``message``; per alert ``values``, ``valueString``, ``silenceURL``,
``dashboardURL``, ``panelURL``, ``imageURL``), so the mapping is the Alertmanager one (see
`opsresponder.ingest.http.adapters.alertmanager`) with these differences:

==============  ========================================================================================
Event field     Grafana
==============  ========================================================================================
source_type     ``grafana``
source          host of ``externalURL`` (``grafana.example.com``), else ``receiver``, else ``grafana``
severity        label ``severity`` (the Alertmanager table); ``medium`` when absent; ``info`` for a resolve
metadata        as Alertmanager, plus ``org_id``, ``silence_url``, ``dashboard_url``, ``panel_url``,
                ``image_url``, ``value_string``, and ``metrics``
metrics         ``values`` (``{"B": 44.2, "C": 1}``) -> ``metadata.metrics.B`` and ``metadata.B``
fingerprint     digest of ("grafana", host, service, "grafana", digest of orgId + the sorted label set)
==============  ========================================================================================

Grafana's own ``fingerprint`` is kept as ``metadata.source_fingerprint``; ours adds the organisation, since
two organisations can hold rules with identical labels. ``DatasourceNoData`` and ``DatasourceError`` alerts
become ``datasource_no_data`` and ``datasource_error`` events.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec

from opsresponder.ingest.http.adapters._common import identity_hash, metric_name, number_map
from opsresponder.ingest.http.adapters.alertmanager import (
    AlertmanagerAdapter,
    AlertmanagerAlert,
    AlertmanagerPayload,
)


class GrafanaAlert(AlertmanagerAlert, kw_only=True):
    """One alert of a Grafana notification: Alertmanager's alert plus Grafana's links and query values."""

    values: Any = None
    value_string: str = msgspec.field(default="", name="valueString")
    silence_url: str = msgspec.field(default="", name="silenceURL")
    dashboard_url: str = msgspec.field(default="", name="dashboardURL")
    panel_url: str = msgspec.field(default="", name="panelURL")
    image_url: str = msgspec.field(default="", name="imageURL")


class GrafanaPayload(AlertmanagerPayload, kw_only=True):
    """The body Grafana's webhook contact point sends (``version: "1"``)."""

    version: str = "1"
    org_id: int = msgspec.field(default=0, name="orgId")
    title: str = ""
    state: str = ""
    message: str = ""


class GrafanaAdapter(AlertmanagerAdapter):
    """Grafana alerting webhook -> events; the Alertmanager mapping plus values as metrics."""

    name = "grafana"
    source_type = "grafana"
    default_source = "grafana"
    payload_type = GrafanaPayload
    alert_type = GrafanaAlert

    def _identity(self, payload: AlertmanagerPayload, labels: dict[str, str]) -> str:
        return f"{cast(GrafanaPayload, payload).org_id}:{identity_hash(labels)}"

    def _extra(
        self, payload: AlertmanagerPayload, alert: AlertmanagerAlert, path: str, metadata: dict[str, Any]
    ) -> dict[str, float]:
        # payload_type and alert_type above make these the Grafana structs.
        payload = cast(GrafanaPayload, payload)
        alert = cast(GrafanaAlert, alert)
        metadata.update(
            org_id=payload.org_id or None,
            silence_url=alert.silence_url or None,
            dashboard_url=alert.dashboard_url or None,
            panel_url=alert.panel_url or None,
            image_url=alert.image_url or None,
            value_string=alert.value_string or None,
        )
        # Grafana sends null for a query that returned no value; such a value is no metric.
        values = number_map(alert.values, f"{path}.values")
        return {metric_name(name): value for name, value in values.items()}

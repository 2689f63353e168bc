"""Prometheus Alertmanager webhook (``version: "4"``): one event per alert, firing or resolved.

Endpoint: ``POST /api/v1/events/webhook/alertmanager`` (or ``/prometheus``, or the generic endpoint with
``source_type: prometheus``). Events get ``source_type: prometheus``, the name service-spec.md uses.

Field mapping (per alert; labels and annotations fall back to ``commonLabels`` / ``commonAnnotations``):

==============  ========================================================================================
Event field     Alertmanager
==============  ========================================================================================
source          host of ``externalURL`` (``alertmanager.example.com``), else ``receiver``, else
                ``alertmanager``
event_type      label ``event_type`` if set, else ``alertname`` in snake case (``HighCPUUsage`` ->
                ``high_cpu_usage``), made an identifier; ``alert`` if nothing usable is left
severity        label ``severity`` (table below); ``medium`` when absent; ``info`` for a resolve
host            label ``host``, ``hostname``, ``instance`` (port stripped), ``node`` or ``nodename``
service         label ``service``, else ``job``
title           annotation ``summary``, else ``alertname``
description     annotation ``description``, else ``message``
occurred_at     ``startsAt``; for a resolve ``endsAt``; ``received_at`` when unset (``0001-01-01...``)
tags            ``key:value`` of the labels in `TAG_LABELS`
metadata        ``labels``, ``annotations``, ``source_fingerprint`` (Alertmanager's), ``generator_url``,
                ``receiver``, ``group_key``, ``external_url``, ``status``, ``starts_at``, ``ends_at``,
                ``problem_severity`` (resolves)
state           ``firing`` -> problem, ``resolved`` -> resolved
fingerprint     digest of ("prometheus", host, service, "alertmanager", digest of the sorted label set)
==============  ========================================================================================

Severity label (case-insensitive; same table for Grafana):

===================================================  ========
critical, crit, fatal, emergency, alert, page,        critical
disaster, p1, sev1
high, error, err, major, p2, sev2                     high
medium, warning, warn, average, moderate, p3, sev3   medium
low, minor, p4, sev4                                  low
info, information, notice, debug, none, ok, p5, sev5  info
===================================================  ========

Any other value is refused (400, ``alerts[i].labels.severity``). The fingerprint is built from the label set,
not from the receiver or external URL, so the replicas of an HA Alertmanager pair produce the same fingerprint
(their duplicate notifications are deduplicated) and a resolve matches its problem.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event, EventState
from opsresponder.ingest.http.adapters._common import (
    DEFAULT_LABEL_SEVERITY,
    RESOLVED_SEVERITY,
    add_metrics,
    compact_json,
    convert,
    decode_json,
    event_type_from,
    fingerprint,
    identity_hash,
    join_path,
    label_severity,
    string_map,
    strip_port,
    utc_or_none,
)

HOST_LABELS: Final = ("host", "hostname", "instance", "node", "nodename")
SERVICE_LABELS: Final = ("service", "job")
TAG_LABELS: Final = ("team", "env", "environment", "cluster", "namespace", "region", "zone", "datacenter")
FALLBACK_EVENT_TYPE: Final = "alert"


class AlertmanagerAlert(msgspec.Struct, kw_only=True):
    """One alert of an Alertmanager (or Grafana) notification. Labels are checked separately."""

    status: str
    labels: Any = None
    annotations: Any = None
    starts_at: datetime | None = msgspec.field(default=None, name="startsAt")
    ends_at: datetime | None = msgspec.field(default=None, name="endsAt")
    generator_url: str = msgspec.field(default="", name="generatorURL")
    fingerprint: str = ""


class AlertmanagerPayload(msgspec.Struct, kw_only=True):
    """The webhook body of Alertmanager's ``webhook_config`` (protocol version 4)."""

    alerts: list[Any]
    version: str = "4"
    receiver: str = ""
    status: str = ""
    group_key: str = msgspec.field(default="", name="groupKey")
    truncated_alerts: int = msgspec.field(default=0, name="truncatedAlerts")
    group_labels: Any = msgspec.field(default=None, name="groupLabels")
    common_labels: Any = msgspec.field(default=None, name="commonLabels")
    common_annotations: Any = msgspec.field(default=None, name="commonAnnotations")
    external_url: str = msgspec.field(default="", name="externalURL")


class AlertmanagerAdapter:
    """Alertmanager webhook v4 -> events. Grafana's payload extends this shape (see `GrafanaAdapter`).

    Subclasses override the class attributes and the ``_extra`` hook; the mapping itself is shared.
    """

    name: str = "alertmanager"
    source_type: str = "prometheus"
    default_source: str = "alertmanager"
    payload_type: type[AlertmanagerPayload] = AlertmanagerPayload
    alert_type: type[AlertmanagerAlert] = AlertmanagerAlert

    def parse(self, body: bytes, content_type: str, received_at: datetime) -> list[Event]:
        """Decode one notification into one event per alert, in order.

        Raises:
            InvalidEventError: malformed JSON (field None) or a wrong field (``alerts[1].labels.alertname``).
        """
        del content_type  # always JSON
        document = decode_json(body)
        payload = convert(document, self.payload_type)
        source = self._source(payload)
        common_labels = string_map(payload.common_labels, "commonLabels")
        common_annotations = string_map(payload.common_annotations, "commonAnnotations")
        events = []
        for index, raw_alert in enumerate(payload.alerts):
            path = join_path("alerts", index)
            alert = convert(raw_alert, self.alert_type, path)
            labels = {**common_labels, **string_map(alert.labels, join_path(path, "labels"))}
            annotations = {
                **common_annotations,
                **string_map(alert.annotations, join_path(path, "annotations")),
            }
            events.append(
                self._event(payload, alert, raw_alert, labels, annotations, source, path, received_at)
            )
        return events

    def _source(self, payload: AlertmanagerPayload) -> str:
        host = urlsplit(payload.external_url).hostname if payload.external_url else None
        return host or payload.receiver or self.default_source

    def _event(
        self,
        payload: AlertmanagerPayload,
        alert: AlertmanagerAlert,
        raw_alert: object,
        labels: dict[str, str],
        annotations: dict[str, str],
        source: str,
        path: str,
        received_at: datetime,
    ) -> Event:
        alertname = labels.get("alertname")
        if not alertname:
            raise InvalidEventError(
                "Every alert needs a non-empty `alertname` label.", f"{path}.labels.alertname"
            )
        if alert.status not in ("firing", "resolved"):
            raise InvalidEventError(
                f"Alert status must be `firing` or `resolved`, got {alert.status!r}.", f"{path}.status"
            )
        resolved = alert.status == "resolved"
        severity = label_severity(labels.get("severity"), f"{path}.labels.severity") or DEFAULT_LABEL_SEVERITY
        starts_at = utc_or_none(alert.starts_at, f"{path}.startsAt")
        ends_at = utc_or_none(alert.ends_at, f"{path}.endsAt")
        host = next((strip_port(labels[k]) for k in HOST_LABELS if labels.get(k)), None) or None
        service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), None)
        metadata: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "status": alert.status,
            "source_fingerprint": alert.fingerprint or None,
            "generator_url": alert.generator_url or None,
            "receiver": payload.receiver or None,
            "group_key": payload.group_key or None,
            "external_url": payload.external_url or None,
            "starts_at": starts_at.isoformat() if starts_at else None,
            "ends_at": ends_at.isoformat() if ends_at else None,
        }
        if resolved:
            metadata["problem_severity"] = severity.value
        metrics = self._extra(payload, alert, path, metadata)
        add_metrics(metadata, metrics)
        return Event(
            source=source,
            source_type=self.source_type,
            event_type=event_type_from(labels.get("event_type") or alertname, FALLBACK_EVENT_TYPE),
            severity=RESOLVED_SEVERITY if resolved else severity,
            title=annotations.get("summary") or alertname,
            description=annotations.get("description") or annotations.get("message") or None,
            occurred_at=(ends_at if resolved else starts_at) or starts_at or received_at,
            received_at=received_at,
            host=host,
            service=service,
            metadata={key: value for key, value in metadata.items() if value is not None},
            tags=[f"{k}:{labels[k]}" for k in TAG_LABELS if labels.get(k)],
            state=EventState.RESOLVED if resolved else EventState.PROBLEM,
            raw=compact_json(raw_alert),
            fingerprint=fingerprint(
                self.source_type, host or "", service or "", self.name, self._identity(payload, labels)
            ),
        )

    def _identity(self, payload: AlertmanagerPayload, labels: dict[str, str]) -> str:
        """What makes two notifications the same alert: its label set, like Alertmanager's own fingerprint."""
        del payload
        return identity_hash(labels)

    def _extra(
        self, payload: AlertmanagerPayload, alert: AlertmanagerAlert, path: str, metadata: dict[str, Any]
    ) -> dict[str, float]:
        """Hook for richer payloads: add metadata, return metrics (`path` names the alert in errors)."""
        del payload, alert, path, metadata
        return {}

"""Settings: one YAML file plus ``OPSRESPONDER_*`` environment overrides, decoded into msgspec structs.

Every key of the file can be overridden by ``OPSRESPONDER_`` + the key path in capitals joined by ``__``
(``OPSRESPONDER_SYSLOG__UDP__PORT=5514``). Lists and maps in the environment are JSON. Unknown keys and bad
values raise `ConfigError` naming the key path, before anything binds a port.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
import yaml

from opsresponder.core.errors import ConfigError

ENV_PREFIX = "OPSRESPONDER_"
# Variables that share the prefix but configure the tooling around the service, not the service.
_ENV_NOT_SETTINGS = ("OPSRESPONDER_TEST_", "OPSRESPONDER_REQUIRE_SERVICES", "OPSRESPONDER_CONFIG")

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Scope = Literal["ingest", "read", "write", "execute", "approve", "admin"]
SeverityName = Literal["critical", "high", "medium", "low", "info"]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class DatabaseConfig(_Section):
    url: str | None = None
    """PostgreSQL DSN; null starts the embedded PostgreSQL under ``data_dir``."""
    pool_min_size: PositiveInt = 2
    pool_max_size: PositiveInt = 10
    response_pool_max_size: PositiveInt = 5
    """The response side's own connections (executions, decisions, outcomes), apart from the pool above, so
    that running executions never hold up the pipeline's batches (used when ``response.enabled``)."""
    connect_timeout_seconds: PositiveFloat = 5.0
    command_timeout_seconds: PositiveFloat = 30.0


class RedisConfig(_Section):
    url: str | None = None
    """Redis URL; null keeps shared state in this process."""
    key_prefix: str = "opsresponder:"


class ListenConfig(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a service container listens on every interface by default
    port: Port = 3009


RULES_LOOP_IDENTITY: Final = "rules"
"""Who the rule-to-response loop's decisions and executions are requested by (`response.loop`): no API
token may bear that name, or its holder would pass for the loop (and could not approve its executions,
the requester never approving its own)."""


ROLE_PREFIX: Final = "role:"
"""An approver list's entry ``role:<name>`` names every token holding that role; no token's name may begin
with it, or that token would pass for the role's holders."""


class TokenConfig(_Section):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    token: Annotated[str, msgspec.Meta(min_length=16)]
    scopes: list[Scope]
    roles: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_.-]{1,64}$")]] = msgspec.field(
        default_factory=list
    )
    """Roles the token's holder has (``dba``, ``oncall``): an approver list may name ``role:<name>``."""


class ApiConfig(_Section):
    events: ListenConfig = msgspec.field(default_factory=lambda: ListenConfig(port=3009))
    autonomous: ListenConfig = msgspec.field(default_factory=lambda: ListenConfig(port=3011))
    tokens: list[TokenConfig] = msgspec.field(default_factory=list)
    max_body_bytes: PositiveInt = 1024 * 1024
    max_events_per_request: PositiveInt = 1000
    retry_after_seconds: PositiveInt = 5


class PipelineConfig(_Section):
    intake_capacity: PositiveInt = 50_000
    batch_max_events: PositiveInt = 500
    batch_max_wait_ms: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    """While another batch is being written, the longest a new batch of events nobody waits on (syslog,
    SNMP) waits, from its oldest event, to grow. With none in flight, or an HTTP caller in it, it starts at
    once."""
    concurrent_batches: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    """Batch transactions open at once; they still lock, commit and answer in batch order."""
    dedup_window_seconds: PositiveInt = 300
    drain_grace_seconds: PositiveFloat = 10.0
    db_retry_max_seconds: PositiveFloat = 5.0
    stages: list[str] = msgspec.field(
        default_factory=lambda: ["normalize", "enrich", "noise", "patterns", "correlate", "score", "rules"]
    )
    """The stages every batch runs through, in order (`pipeline.stages.build_stages` checks the names)."""
    trace: bool = True
    """Store each new event's decision trace (``events.event_traces``, docs/trace.md) in its batch's
    transaction; false leaves the table empty and ``GET /api/v1/events/{id}/trace`` without entries."""


class SyslogListenerConfig(_Section):
    enabled: bool = True
    host: str = "0.0.0.0"  # noqa: S104
    port: Port = 514
    # RFC 5424 6.1: receivers must accept 480 octets; beyond 16 MiB a "message" is a file transfer.
    max_message_bytes: Annotated[int, msgspec.Meta(ge=480, le=16 * 1024 * 1024)] = 65536
    """A longer message is kept truncated to this size (``metadata.truncated``), not taken for framing."""
    recv_buffer_bytes: Annotated[int, msgspec.Meta(gt=0, le=1024 * 1024 * 1024)] = 8 * 1024 * 1024
    """UDP only: SO_RCVBUF asked of the kernel, which caps it at ``net.core.rmem_max`` (a warning says so).
    TCP leaves it to the kernel's autotuning."""
    idle_timeout_seconds: PositiveFloat = 300.0
    """TCP only: a connection that sends nothing for this long is closed."""
    max_connections: PositiveInt = 1000
    """TCP only: further connections are closed at accept and counted."""


class SyslogTlsConfig(_Section):
    enabled: bool = False
    host: str = "0.0.0.0"  # noqa: S104
    port: Port = 6514
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    require_client_cert: bool = False
    permitted_peers: list[str] = msgspec.field(default_factory=list)
    """Certificate SHA-256 fingerprints (hex, colons optional) or subject alt names; empty permits any peer
    the CA verifies. Needs ``ca_file``: only a verified client certificate can be matched."""
    max_message_bytes: Annotated[int, msgspec.Meta(ge=480, le=16 * 1024 * 1024)] = 65536
    idle_timeout_seconds: PositiveFloat = 300.0
    max_connections: PositiveInt = 1000
    handshake_timeout_seconds: PositiveFloat = 10.0
    """A client still in the TLS handshake after this long is refused (``reason="handshake_timeout"``)."""


class ParsingRuleConfig(_Section):
    pattern: Annotated[str, msgspec.Meta(min_length=1)]
    event_type: str
    severity: SeverityName
    extract_fields: list[str] = msgspec.field(default_factory=list)
    match_on: str = "message"
    title: str | None = None


class SyslogConfig(_Section):
    udp: SyslogListenerConfig = msgspec.field(default_factory=SyslogListenerConfig)
    tcp: SyslogListenerConfig = msgspec.field(default_factory=SyslogListenerConfig)
    tls: SyslogTlsConfig = msgspec.field(default_factory=SyslogTlsConfig)
    parsing_rules: list[ParsingRuleConfig] = msgspec.field(default_factory=list)


class SnmpV3UserConfig(_Section):
    name: str
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] | None = None
    auth_key: str | None = None
    priv_protocol: Literal["des", "aes128", "aes192", "aes256"] | None = None
    priv_key: str | None = None
    engine_ids: list[str] = msgspec.field(default_factory=list)


class TrapMappingConfig(_Section):
    event_type: str
    severity: SeverityName


class SnmpConfig(_Section):
    enabled: bool = True
    host: str = "0.0.0.0"  # noqa: S104
    port: Port = 162
    communities: list[str] = msgspec.field(default_factory=lambda: ["public", "monitoring"])
    v3_users: list[SnmpV3UserConfig] = msgspec.field(default_factory=list)
    trap_mapping: dict[str, TrapMappingConfig] = msgspec.field(default_factory=dict)
    engine_id: Annotated[str, msgspec.Meta(pattern=r"^(0x)?([0-9a-fA-F]{2}){5,32}$")] | None = None
    """The receiver's own SNMPv3 engine ID (hex, 5-32 octets); informs are addressed to it. Null derives a
    stable one from the host name. Set it explicitly so that senders' cached engine IDs survive restarts."""
    max_varbinds: PositiveInt = 256
    """A trap with more varbinds is refused (``too_many_varbinds``) before it costs decoding time."""
    recv_buffer_bytes: PositiveInt = 8 * 1024 * 1024
    """SO_RCVBUF asked of the kernel (capped by ``net.core.rmem_max``): bursts queue instead of dropping."""


class StreamConfig(_Section):
    """The live event stream (docs/stream.md)."""

    heartbeat_seconds: PositiveFloat = 15.0
    """A comment line after this long idle, so proxies keep the stream open."""
    client_buffer: PositiveInt = 10_000
    """Events queued for one client; a client further behind is disconnected (it resumes by id)."""
    max_clients: PositiveInt = 200
    hub_buffer: PositiveInt = 1000
    replay_page: PositiveInt = 500
    publish_queue_events: PositiveInt = 10_000
    """Committed events waiting to be published; beyond it they are counted as dropped from the stream."""
    flush_interval_ms: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 50.0
    """Longest a committed event waits to be written to stream clients, so one write carries several
    commits (0: write each commit at once)."""


# The bounds of a subscription's own settings, shared by this config and the subscriptions API.
SubscriptionBatchEvents = Annotated[int, msgspec.Meta(ge=1, le=1000)]
SubscriptionBatchDelayMs = Annotated[int, msgspec.Meta(ge=0, le=3_600_000)]
SubscriptionMaxAttempts = Annotated[int, msgspec.Meta(ge=1, le=100)]


class SubscriptionsConfig(_Section):
    """Outbound event subscriptions (docs/subscriptions.md)."""

    enabled: bool = True
    batch_max_events: SubscriptionBatchEvents = 100
    """Defaults for subscriptions that do not set their own (the API's bounds are the same types)."""
    batch_max_delay_ms: SubscriptionBatchDelayMs = 1000
    max_attempts: SubscriptionMaxAttempts = 10
    request_timeout_seconds: PositiveFloat = 10.0
    retry_base_seconds: PositiveFloat = 1.0
    retry_max_seconds: PositiveFloat = 3600.0
    poll_interval_ms: PositiveInt = 500
    concurrency: PositiveInt = 4
    dead_letter_retention_days: PositiveInt = 7
    maintenance_interval_seconds: PositiveFloat = 30.0


class OutboundConfig(_Section):
    """Where OpsResponder may send requests of its own (subscriptions today; HTTP actions and notification
    webhooks next). Empty lists allow nothing: every destination is opt-in (docs/subscriptions.md)."""

    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    """Host names URLs may use: exact, or ``*.suffix``."""
    allowed_networks: list[str] = msgspec.field(default_factory=list)
    """CIDR networks (IPv4 or IPv6) every address of a URL's host must lie in."""


class RetentionConfig(_Section):
    """Background deletion of old data (docs/retention.md); runs once per interval across all replicas."""

    enabled: bool = True
    events_days: PositiveInt = 30
    """Events (by received_at, the server's clock) older than this are removed, with their correlations,
    and so are settled rule firings (by fired_at) with the response loop's plan for each."""
    response_days: PositiveInt = 365
    """The response side's audit trail older than this is removed: settled executions (with their actions,
    logs, approval and verification), decisions no remaining execution or firing names, action outcomes,
    execution scores and feedback, each by its own time. Outcomes older than this no longer count in the
    analysis's success probabilities (``response.analysis.history_days``: 90 by default, well within it)."""
    interval_seconds: PositiveInt = 3600
    jitter_seconds: Annotated[int, msgspec.Meta(ge=0)] = 300
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000
    """Rows per delete; each batch is its own short transaction, so no lock is held for long."""
    max_run_seconds: PositiveInt = 900
    """A run stops between batches after this long and leaves the rest to the next period, so a backlog
    (retention switched on over a year of data) cannot keep one run going past the scheduler's timeout."""


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class FlappingConfig(_Section):
    """Flapping detection of the noise stage (docs/silences.md). Counted per process: with several
    replicas each counts the state changes it sees."""

    max_changes: PositiveInt = 5
    """More problem <-> resolved changes than this within the window: the fingerprint is flapping."""
    window_minutes: PositiveFloat = 30
    """The counting window; a flapping fingerprint stays suppressed until stable for this long."""
    max_fingerprints: PositiveInt = 100_000
    """Fingerprints tracked at most; the least recently seen is forgotten first."""


class RateLimitConfig(_Section):
    """Per-source rate limits of the noise stage (docs/silences.md). Counted per process."""

    default_per_minute: PositiveInt | None = None
    """Events per minute every source may send before the rest are stored suppressed; null: no limit."""
    sources: dict[str, PositiveInt | None] = msgspec.field(default_factory=dict)
    """Limits of named sources (exact ``source``), overriding the default; null exempts a source."""
    max_sources: PositiveInt = 10_000
    """Sources tracked at most; the least recently seen is forgotten first (and starts again full)."""


class NoiseConfig(_Section):
    """The ``noise`` stage: silences, flapping and per-source rate limits (docs/silences.md)."""

    silence_refresh_seconds: PositiveFloat = 2.0
    """How stale the stage's copy of the silences may get; a change through this process's API is seen
    at once, one through another replica within this time."""
    flapping: FlappingConfig = msgspec.field(default_factory=FlappingConfig)
    rate_limit: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)


class AssetServiceConfig(_Section):
    """An optional HTTP asset service the ``enrich`` stage asks about hosts (docs/assets.md). Its answers
    are cached; a batch never waits for it."""

    url: str | None = None
    """``GET <url>/<host>``, or the URL with ``{host}`` replaced (e.g. ``https://cmdb/api/assets?host={host}``);
    null: no service. Its host must be allowed by ``outbound.allowed_hosts`` or ``allowed_networks``."""
    timeout_seconds: PositiveFloat = 2.0
    """A lookup taking longer counts as a timeout (the host is asked again after ``negative_ttl_seconds``)."""
    ttl_seconds: PositiveFloat = 300.0
    """How long an answer found is used before the host is asked again."""
    negative_ttl_seconds: PositiveFloat = 60.0
    """How long a 404, a failure or a timeout is remembered (the inventory file answers meanwhile)."""
    max_entries: PositiveInt = 50_000
    """Hosts cached at most; the oldest is forgotten first."""
    max_pending: PositiveInt = 10_000
    """Hosts waiting to be asked at most; more are skipped (and counted) until the queue shrinks."""
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    """Lookups in flight at once."""
    max_response_bytes: PositiveInt = 65536


class EnrichmentConfig(_Section):
    """The ``enrich`` stage: the asset inventory and the optional asset service (docs/assets.md)."""

    assets_file: str | None = "config/assets.yaml"
    """The inventory (YAML); relative paths are from the working directory; null: no inventory file."""
    reload_interval_seconds: PositiveFloat = 2.0
    """How often the file's size, modification time and inode are checked; a change reloads it (so does
    SIGHUP). A file that fails to load leaves the previous inventory in place."""
    address_field: Annotated[str, msgspec.Meta(min_length=1)] = "address"
    """The metadata key holding an IP address matched against network entries when the host is a name."""
    cache_size: PositiveInt = 100_000
    """Hosts whose match is remembered per inventory (emptied on reload); the oldest is forgotten first."""
    asset_service: AssetServiceConfig = msgspec.field(default_factory=AssetServiceConfig)


ScoreWeight = Annotated[float, msgspec.Meta(ge=0, le=1000)]
ScoreLevel = Annotated[float, msgspec.Meta(ge=0, le=1)]
CriticalityName = Literal["critical", "high", "medium", "low"]


class ScoringWeightsConfig(_Section):
    """The most each factor adds to a score (docs/scoring.md): a factor adds its weight times its level
    (0-1, from `ScoringLevelsConfig` or a saturating count). The defaults sum to 100."""

    severity: ScoreWeight = 40
    criticality: ScoreWeight = 25
    """``metadata.asset.criticality`` (set by the ``enrich`` stage)."""
    environment: ScoreWeight = 10
    """``metadata.asset.environment``."""
    correlation: ScoreWeight = 10
    """``metadata.correlation.group_size`` (set by the ``correlate`` stage)."""
    repetition: ScoreWeight = 10
    """How often the fingerprint was seen within ``scoring.repetition.window_minutes``."""
    business_hours: ScoreWeight = 5
    """``metadata.asset.in_business_hours``."""


class BusinessHoursLevels(_Section):
    inside: ScoreLevel = 1.0
    outside: ScoreLevel = 0.0


def _severity_levels() -> dict[SeverityName, float]:
    return {"critical": 1.0, "high": 0.75, "medium": 0.5, "low": 0.25, "info": 0.0}


def _criticality_levels() -> dict[CriticalityName, float]:
    return {"critical": 1.0, "high": 0.75, "medium": 0.5, "low": 0.25}


class ScoringLevelsConfig(_Section):
    """Each input's level (0-1) by value; a value absent from its table has level 0."""

    severity: dict[SeverityName, ScoreLevel] = msgspec.field(default_factory=_severity_levels)
    criticality: dict[CriticalityName, ScoreLevel] = msgspec.field(default_factory=_criticality_levels)
    environment: dict[str, ScoreLevel] = msgspec.field(
        default_factory=lambda: {"production": 1.0, "staging": 0.3, "dev": 0.0}
    )
    """By ``metadata.asset.environment`` as the inventory writes it (exact, case-sensitive)."""
    business_hours: BusinessHoursLevels = msgspec.field(default_factory=BusinessHoursLevels)


class SaturationConfig(_Section):
    full_at: Annotated[int, msgspec.Meta(ge=2, le=1_000_000)] = 10
    """The count at which the factor reaches its whole weight; it grows logarithmically up to it."""


class RepetitionConfig(SaturationConfig):
    window_minutes: PositiveFloat = 60
    """Arrivals of one fingerprint counted within this window (in this process)."""
    max_fingerprints: PositiveInt = 100_000
    """Fingerprints tracked at most; the least recently seen is forgotten first."""


class ScoringConfig(_Section):
    """The ``score`` stage: ``event.score`` 0-100 and ``metadata.score_factors`` (docs/scoring.md)."""

    weights: ScoringWeightsConfig = msgspec.field(default_factory=ScoringWeightsConfig)
    levels: ScoringLevelsConfig = msgspec.field(default_factory=ScoringLevelsConfig)
    correlation: SaturationConfig = msgspec.field(default_factory=SaturationConfig)
    """``full_at``: the correlation group size that earns the whole correlation weight."""
    repetition: RepetitionConfig = msgspec.field(default_factory=RepetitionConfig)
    """``full_at``: the number of earlier arrivals that earns the whole repetition weight."""


class PatternsConfig(_Section):
    """The ``patterns`` stage: message templates of event titles (docs/patterns.md)."""

    similarity_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.6
    """The share of word positions a title must have in common with a template to join it (a ``<*>``
    position counts as common). Lower merges more; 1 only merges titles equal once masked."""
    depth: Annotated[int, msgspec.Meta(ge=3, le=16)] = 4
    """Drain's tree depth: titles are routed by their length and their first ``depth - 2`` words."""
    max_children: PositiveInt = 100
    """Distinct words per routing position; further words share one wildcard branch."""
    max_templates: PositiveInt = 10_000
    """Templates held in memory per process; the least recently matched one is evicted beyond this."""
    max_title_chars: PositiveInt = 1024
    """Characters of a title considered; the rest is ignored (long titles are rarely shapes)."""
    seed_from_store: bool = True
    """At start, load the most recently seen templates (up to ``max_templates``) from the store, so that
    titles seen before a restart keep their template and id."""


class CorrelationWeightsConfig(_Section):
    """The score (0-1) each kind of correlation gives two events that are as close as can be; it falls
    linearly to half of it at the edge of the kind's window (docs/correlation.md)."""

    causal: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.95
    pattern_based: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.85
    host_based: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.75
    time_based: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.7


class CorrelationSuggestionsConfig(_Section):
    """Learned lead-lag suggestions (``GET /api/v1/correlations/suggestions``): computed on request from
    stored events; they never change grouping until an operator adds them to the asset inventory."""

    lookback_days: PositiveInt = 7
    """How much history the statistics read."""
    max_events: PositiveInt = 50_000
    """The most recent events of that history read at most (bounds the query's cost)."""
    min_support: PositiveInt = 5
    """How many times A must have been followed by B before the pair is suggested."""
    min_lift: PositiveFloat = 3.0
    """How many times more often than chance A must be followed by B."""


class CorrelationConfig(_Section):
    """The ``correlate`` stage (docs/correlation.md). State is per process: with several replicas each
    correlates what it sees."""

    enabled: bool = True
    """False: the stage only opens a group of its own for each event (what the store needs), with no
    state, no correlations stored and no history read: for a replica that should only ingest."""
    window_minutes: PositiveFloat = 15
    """time_based, pattern_based and causal correlations look this far around an event."""
    lookback_hours: PositiveFloat = 1
    """host_based correlations look this far back; also how much history is reloaded at start."""
    similarity_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    """Two message templates are similar when at least this share of their tokens are equal."""
    join_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    """An event joins the best group scoring at least this; otherwise it opens its own."""
    min_severity: SeverityName = "low"
    """Events below this severity (and suppressed ones) are not correlated: each opens its own group."""
    weights: CorrelationWeightsConfig = msgspec.field(default_factory=CorrelationWeightsConfig)
    max_keys: PositiveInt = 200_000
    """Hosts, services, asset groups, tags, templates and dependencies remembered at most, per kind; the
    least recently seen is forgotten first."""
    max_groups_per_key: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """Groups remembered per key (a host seen in 2 recent groups); the least recent is forgotten first. 2, not
    4: the scenario tests group as well, and the stage scores half the entries (docs/correlation.md)."""
    max_templates: PositiveInt = 20_000
    """Distinct templates compared for similarity at most; the oldest is forgotten first."""
    max_fingerprints: PositiveInt = 200_000
    """Fingerprints remembered (within the dedup window) so a repeat keeps its event's group."""
    max_related_per_kind: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    """Related events stored per correlation kind for one event."""
    suggestions: CorrelationSuggestionsConfig = msgspec.field(default_factory=CorrelationSuggestionsConfig)


class RulesConfig(_Section):
    """Trigger rules: the ``rules`` stage, the absence checker (docs/rules-evaluation.md) and how the API
    checks a rule against the stored events (docs/rules.md)."""

    min_severity: SeverityName = "low"
    """Events below this severity are stored but never evaluated against rules (info, by default), nor
    replayed for the estimate."""
    reload_seconds: PositiveFloat = 5.0
    """How often the stage asks its rule source whether the rules changed (a cheap version check)."""
    absence_check_seconds: PositiveFloat = 15.0
    """How often due absence deadlines are looked for: an absence rule fires at most this late."""
    file: str | None = None
    """A YAML file of trigger rules (``rules:`` list, each with an ``id``), read at start and reread when
    it changes; null: none. Evaluated with the API's rules; an id the API already uses is left out."""
    estimate_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 7
    """``estimated_trigger_rate`` replays the rule over the stored events of this many past days."""
    estimate_timeout_seconds: PositiveFloat = 20.0
    """A replay that takes longer is abandoned; the rate then says so (the rule is still saved)."""
    field_sample_events: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    """"No stored event has this field" looks at this many of the latest events."""


class TemplatesConfig(_Section):
    """Response templates (docs/templates.md). Relative paths are relative to the working directory."""

    directory: str | None = "config/templates"
    """The ``*.yaml`` templates loaded at start (read-only through the API); null loads none."""
    scripts_file: str | None = "config/scripts.yaml"
    """The automation script catalog templates are checked against; null: no script is known."""


class ScriptRunnerConfig(_Section):
    """How catalog scripts run (docs/response.md): argv only, never a shell."""

    working_directory: str | None = None
    """Scripts run here (created when first needed); null: ``<data_dir>/scripts``."""
    pass_environment: list[str] = msgspec.field(default_factory=lambda: ["PATH", "LANG", "LC_ALL", "TZ"])
    """The only variables of OpsResponder's own environment a script inherits; nothing else leaks."""
    environment: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra variables every script gets."""
    max_output_bytes: PositiveInt = 64 * 1024
    """Stdout and stderr are each kept up to this; the rest is read and dropped (``truncated``)."""
    kill_grace_seconds: PositiveFloat = 2.0
    """After SIGTERM to the process group on timeout or cancel, SIGKILL follows this much later."""
    nice: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10
    """Scripts run at this CPU niceness (never below the service's own): automation is background work,
    and on a busy machine webhook ingest and the executor's own steps come first."""


class HttpRunnerConfig(_Section):
    """Catalog scripts that call an HTTP endpoint; the URL must pass ``outbound``'s allowlist."""

    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    """Further attempts after a 5xx answer or a connection error."""
    backoff_base_seconds: PositiveFloat = 0.5
    backoff_max_seconds: PositiveFloat = 10.0


class SmtpConfig(_Section):
    """The e-mail channel; credentials from config or the environment
    (``OPSRESPONDER_RESPONSE__NOTIFICATIONS__EMAIL__PASSWORD``)."""

    host: str | None = None
    """null: no e-mail channel (an action naming ``email`` fails with that reason)."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = "opsresponder@localhost"
    recipients: list[str] = msgspec.field(default_factory=list)
    timeout_seconds: PositiveFloat = 10.0
    ca_file: str | None = None
    """Trust this CA for the server's certificate (tests, private CAs); null: the system's."""


class SlackConfig(_Section):
    webhook_url: str | None = None
    """An incoming-webhook URL; it must pass ``outbound``'s allowlist. null: no Slack channel."""
    timeout_seconds: PositiveFloat = 10.0


class NotificationWebhookConfig(_Section):
    url: str | None = None
    """Where generic JSON notifications are POSTed (allowlisted); null: no webhook channel."""
    secret: str | None = None
    """Signs each body like subscription deliveries (``X-OpsResponder-Signature``); null: unsigned."""
    timeout_seconds: PositiveFloat = 10.0


class NotificationsConfig(_Section):
    directory: str | None = "config/notifications"
    """Message templates (``<name>.yaml``: subject and body, Jinja2 sandboxed); null: none."""
    email: SmtpConfig = msgspec.field(default_factory=SmtpConfig)
    slack: SlackConfig = msgspec.field(default_factory=SlackConfig)
    webhook: NotificationWebhookConfig = msgspec.field(default_factory=NotificationWebhookConfig)
    default_channels: list[str] = msgspec.field(default_factory=list)
    """Channels of execution notifications (start, completion, failure) when the request names none."""


class ExecutorConfig(_Section):
    """Running executions (docs/response.md)."""

    concurrency: PositiveInt = 200
    """Executions this process runs at once; more wait as ``queued``."""
    max_parallel_actions: PositiveInt = 8
    """Actions of one execution running at once (those whose dependencies are met)."""
    lock_per_target: bool = True
    """Two executions with remediations never run on one host at once; the later waits."""
    lock_ttl_seconds: PositiveFloat = 60.0
    lease_seconds: PositiveFloat = 30.0
    """A claimed execution whose owner stops renewing for this long is another process's to recover."""
    poll_interval_ms: PositiveInt = 200
    claim_batch: PositiveInt = 5
    """Executions claimed (and started) at once; with ``claim_gap_ms``, a storm of queued executions starts
    over a moment instead of in one burst of processes and writes that ingest would wait behind."""
    claim_gap_ms: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 25
    """The least time after a full claim before the next (at most ``claim_batch`` per gap start: 200/s
    by default); after a claim that emptied the queue, the next submit is claimed at once."""
    default_max_execution_time_minutes: Annotated[int, msgspec.Meta(ge=1, le=10080)] = 30


class RiskConfig(_Section):
    """The risk matrix (service-spec.md "Risk Assessment Matrix"); the defaults are the spec's values."""

    approval_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.3
    """Approval is required when the score is over this (0.3 itself is not over)."""
    system_criticality: dict[str, float] = msgspec.field(
        default_factory=lambda: {"critical": 0.4, "high": 0.3, "medium": 0.2, "low": 0.1}
    )
    action_type: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "system_restart": 0.5,
            "service_restart": 0.3,
            "configuration_change": 0.4,
            "remediation": 0.2,
            "diagnostic": 0.1,
            "notification": 0.0,
        }
    )
    """The spec's five, plus ``remediation`` (which it leaves out) between diagnostic and restarts."""
    business_hours: float = 0.2
    outside_maintenance: float = 0.1


class AnalysisConfig(_Section):
    """Decisions (POST /api/v1/autonomous/analyze)."""

    prior_success_probability: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.8
    """What an action with no recorded outcomes is believed to achieve."""
    prior_weight: PositiveFloat = 4.0
    """How many outcomes the prior counts as (Beta prior): history outweighs it after a few runs."""
    history_days: PositiveInt = 90
    approvers: list[str] = msgspec.field(default_factory=list)
    """Who may approve (docs/response.md "Approvals"): token names, or ``role:<name>`` for every token
    whose ``roles`` hold it; empty: nobody can."""


class GovernorConfig(_Section):
    """The safety governor: bounds on automatic execution (docs/response.md "Safety governor")."""

    max_runs_per_host_per_hour: PositiveInt = 10
    """Automatic executions touching one host in any hour; more are refused (a person may still run them)."""
    max_runs_per_action_per_hour: PositiveInt = 30
    """Automatic runs of one catalog script (or notification template) in any hour, across hosts."""
    loop_max_runs: PositiveInt = 3
    """The same remediation for the same fingerprint more often than this within loop_window_minutes is a
    loop: automatic runs of it stop, the loop is escalated, and it needs approval from then on."""
    loop_window_minutes: PositiveInt = 60
    loop_hold_hours: PositiveInt = 24
    """How long a detected loop keeps requiring approval (or until released through the API)."""
    max_targets: PositiveInt = 10
    """A remediation whose target set holds more hosts than this is refused; an empty set always is."""
    pause_refresh_seconds: PositiveFloat = 1.0
    """How stale this process's view of the global pause may be (other replicas' pause/resume)."""


class ApprovalsConfig(_Section):
    """Approval requests (docs/response.md "Approvals"); who may approve: ``response.analysis.approvers``."""

    timeout_minutes: Annotated[int, msgspec.Meta(ge=1, le=10080)] = 30
    """A request not decided within this is rejected automatically (and the requester told)."""
    token_ttl_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 30
    """An approval token (issued on approval) is valid this long, once."""
    expiry_check_seconds: PositiveFloat = 15.0
    """How often the expiry job runs: a request is rejected at most this late."""
    link_base_url: str | None = None
    """Where approvers are sent (``<base>/api/v1/autonomous/executions/<id>``); null: the request's path."""


class VerificationConfig(_Section):
    """Closed-loop verification after a remediation (docs/response.md "Verification")."""

    enabled: bool = True
    quiet_seconds: PositiveFloat = 300.0
    """No new sighting of the event's fingerprint this long after the remediation: the condition cleared."""
    check_interval_seconds: PositiveFloat = 15.0
    """How often pending verifications are checked (the scheduler's ``verification`` job)."""


class LearningConfig(_Section):
    """Demotion and promotion of actions by their outcomes (docs/response.md "Feedback and learning")."""

    window_runs: PositiveInt = 10
    """An action's success rate is taken over its last this many runs since its policy last changed."""
    min_runs: PositiveInt = 3
    """Fewer runs than this (since the last change) never demote nor promote."""
    demote_below: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    """A success rate below this demotes the action to "approval required"."""
    promote_at_or_above: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.8
    """A demoted action whose success rate since its demotion reaches this is promoted back."""
    feedback_weight: PositiveFloat = 0.5
    """How many runs one feedback counts as (a pseudo-outcome); ``dangerous`` counts twice this."""


class LoopConfig(_Section):
    """The rule-to-response loop: fired trigger rules analyzed and acted on (docs/response.md
    "The rule-to-response loop")."""

    enabled: bool = True
    poll_interval_ms: PositiveInt = 100
    """How often the firings outbox is polled when no local commit wakes the loop earlier."""
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    lease_seconds: PositiveFloat = 60.0
    """A claimed firing not settled within this is claimed again (its claimer is taken for dead)."""
    max_attempts: PositiveInt = 5
    """A firing that failed this often is given up (status failed, with the error)."""
    auto_approve_low_risk: bool | None = None
    """The analysis's ``user_preferences.auto_approve_low_risk``: false asks a person for every script."""
    business_hours: bool | None = None
    """The analysis context (null: resolved from the event's asset, then the careful default)."""
    maintenance_window: bool | None = None
    system_criticality: Literal["critical", "high", "medium", "low"] | None = None
    rollback_on_failure: bool = True
    """The automatic executions' ``rollback_on_failure``."""


class ResponseConfig(_Section):
    """The autonomous response side (port 3011; docs/response.md)."""

    enabled: bool = True
    process: Literal["inline", "separate"] = "inline"
    """``inline``: one process serves both APIs (SPEC.md's decision); ``separate``: ``serve`` runs this
    side (port 3011, the executor, the rule-to-response loop, its periodic jobs) in a child process of
    its own, so executions never compete with ingest for the event loop (ingest p99 beside 200 executions
    about halves: docs/response.md "The response process"). Embedding the service with ``app.running``
    runs it in one process unless asked."""
    process_nice: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10
    """The separate process's CPU niceness: under load, events go first (its scripts run at
    ``scripts.nice``, or at this when higher)."""
    scripts: ScriptRunnerConfig = msgspec.field(default_factory=ScriptRunnerConfig)
    http: HttpRunnerConfig = msgspec.field(default_factory=HttpRunnerConfig)
    notifications: NotificationsConfig = msgspec.field(default_factory=NotificationsConfig)
    executor: ExecutorConfig = msgspec.field(default_factory=ExecutorConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    analysis: AnalysisConfig = msgspec.field(default_factory=AnalysisConfig)
    governor: GovernorConfig = msgspec.field(default_factory=GovernorConfig)
    approvals: ApprovalsConfig = msgspec.field(default_factory=ApprovalsConfig)
    verification: VerificationConfig = msgspec.field(default_factory=VerificationConfig)
    learning: LearningConfig = msgspec.field(default_factory=LearningConfig)
    loop: LoopConfig = msgspec.field(default_factory=LoopConfig)


class Settings(_Section):
    """The whole configuration tree; see ``config/opsresponder.yaml`` for every key with its default."""

    data_dir: str = "./var"
    database: DatabaseConfig = msgspec.field(default_factory=DatabaseConfig)
    redis: RedisConfig = msgspec.field(default_factory=RedisConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    syslog: SyslogConfig = msgspec.field(default_factory=SyslogConfig)
    snmp: SnmpConfig = msgspec.field(default_factory=SnmpConfig)
    stream: StreamConfig = msgspec.field(default_factory=StreamConfig)
    outbound: OutboundConfig = msgspec.field(default_factory=OutboundConfig)
    subscriptions: SubscriptionsConfig = msgspec.field(default_factory=SubscriptionsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    noise: NoiseConfig = msgspec.field(default_factory=NoiseConfig)
    enrichment: EnrichmentConfig = msgspec.field(default_factory=EnrichmentConfig)
    scoring: ScoringConfig = msgspec.field(default_factory=ScoringConfig)
    patterns: PatternsConfig = msgspec.field(default_factory=PatternsConfig)
    correlation: CorrelationConfig = msgspec.field(default_factory=CorrelationConfig)
    rules: RulesConfig = msgspec.field(default_factory=RulesConfig)
    templates: TemplatesConfig = msgspec.field(default_factory=TemplatesConfig)
    response: ResponseConfig = msgspec.field(default_factory=ResponseConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (or nothing, when None), apply environment overrides, validate.

    Raises:
        ConfigError: unreadable file, bad YAML, unknown key or bad value; the message names the key path.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        tree = _read_yaml(Path(path))
    apply_env_overrides(tree, os.environ if environ is None else environ)
    return settings_from_tree(tree)


def settings_from_tree(tree: Mapping[str, Any]) -> Settings:
    try:
        settings = msgspec.convert(tree, Settings, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(f"invalid configuration: {_key_path_message(str(e))}") from e
    _check_consistency(settings)
    return settings


def apply_env_overrides(tree: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Write every ``OPSRESPONDER_A__B`` variable into ``tree['a']['b']`` (JSON for lists and maps)."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name.startswith(_ENV_NOT_SETTINGS):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(f"environment variable {name}: empty key segment")
        node = tree
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = _env_value(name, environ[name])


def _env_value(name: str, raw: str) -> Any:
    text = raw.strip()
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"environment variable {name}: invalid JSON: {e}") from e
    if text in ("null", "~"):
        return None
    return raw


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {path} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path}: the top level must be a mapping")
    return data


_PATH_RE = re.compile(r"`\$((?:\.[A-Za-z0-9_]+|\[\d+\]|\[[^\]]*\])*)`")


def _key_path_message(message: str) -> str:
    """Turn msgspec's ``- at `$.syslog.udp.port``` into ``(at syslog.udp.port)``."""

    def repl(m: re.Match[str]) -> str:
        return "`" + (m.group(1).lstrip(".") or "<root>") + "`"

    return _PATH_RE.sub(repl, message)


def _check_consistency(settings: Settings) -> None:
    """Rules that span several keys, which msgspec types cannot say."""
    names = [t.name for t in settings.api.tokens]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"invalid configuration: api.tokens: duplicate token name(s) {', '.join(dupes)}")
    posing = sorted(n for n in names if n.startswith(ROLE_PREFIX))
    if posing:
        raise ConfigError(
            f"invalid configuration: api.tokens: a token name may not begin with {ROLE_PREFIX!r} "
            f"(approver lists name roles so): {', '.join(posing)}"
        )
    if RULES_LOOP_IDENTITY in names:
        raise ConfigError(
            f"invalid configuration: api.tokens: the name {RULES_LOOP_IDENTITY!r} is reserved: it is the "
            "identity of the rule-to-response loop's decisions and executions"
        )
    if settings.database.pool_min_size > settings.database.pool_max_size:
        raise ConfigError(
            "invalid configuration: database.pool_min_size is larger than database.pool_max_size"
        )
    if settings.api.max_events_per_request > settings.pipeline.intake_capacity:
        raise ConfigError(
            "invalid configuration: api.max_events_per_request is larger than pipeline.intake_capacity"
        )
    tls = settings.syslog.tls
    if tls.enabled and not (tls.cert_file and tls.key_file):
        raise ConfigError("invalid configuration: syslog.tls.enabled needs syslog.tls.cert_file and key_file")
    if tls.require_client_cert and not tls.ca_file:
        raise ConfigError("invalid configuration: syslog.tls.require_client_cert needs syslog.tls.ca_file")

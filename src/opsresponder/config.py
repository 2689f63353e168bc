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
from typing import Annotated, Any, Literal

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
    connect_timeout_seconds: PositiveFloat = 5.0
    command_timeout_seconds: PositiveFloat = 30.0


class RedisConfig(_Section):
    url: str | None = None
    """Redis URL; null keeps shared state in this process."""
    key_prefix: str = "opsresponder:"


class ListenConfig(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a service container listens on every interface by default
    port: Port = 3009


class TokenConfig(_Section):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    token: Annotated[str, msgspec.Meta(min_length=16)]
    scopes: list[Scope]


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
    stages: list[str] = msgspec.field(default_factory=lambda: ["normalize", "noise", "correlate"])
    """The stages every batch runs through, in order (`pipeline.stages.build_stages` checks the names)."""


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
    """Events (by received_at, the server's clock) older than this are removed, with their correlations."""
    executions_days: PositiveInt = 365
    audit_days: PositiveInt = 365
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


class TemplatesConfig(_Section):
    """Response templates (docs/templates.md). Relative paths are relative to the working directory."""

    directory: str | None = "config/templates"
    """The ``*.yaml`` templates loaded at start (read-only through the API); null loads none."""
    scripts_file: str | None = "config/scripts.yaml"
    """The automation script catalog templates are checked against; null: no script is known."""


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
    templates: TemplatesConfig = msgspec.field(default_factory=TemplatesConfig)
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

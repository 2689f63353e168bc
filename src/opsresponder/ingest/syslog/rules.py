"""Parsing rules: config-defined regexes that turn syslog messages into typed events.

A rule (``syslog.parsing_rules[]`` in config, `opsresponder.config.ParsingRuleConfig`)::

    - pattern: "Failed password for .* from (.*) port"   # Python regex, applied with re.search
      event_type: authentication_failure                  # an identifier (a-z 0-9 _ . -, 1-64)
      severity: medium                                    # one of the five levels
      extract_fields: [source_ip]                         # names for capture groups 1, 2, ... in order
      match_on: message                                   # optional, see below
      title: "Failed SSH login from {source_ip}"          # optional template, see below

- Rules are compiled once at start, in order; the first rule whose pattern is found wins. A message that
  matches none keeps the event_type and severity its parser gave it.
- ``match_on``: ``message`` (default; the event description: MSG of a syslog message, the whole CEF/LEEF
  text, or the raw text of an unparsed one), an event field (``title``, ``host``, ``service``, ``raw``,
  ``description``, ``event_type``, ``severity``), or a dotted path into ``metadata`` with or without the
  ``metadata.`` prefix (``cef.name``, ``app_name``, ``structured_data.origin.ip``). Keys that themselves
  contain dots (SD-IDs such as ``junos@2636.1.1.1.2.18``) are found too: the longest key that exists wins.
  Numbers are matched as their decimal text; a missing field, a dict or a list does not match.
- ``extract_fields`` name capture groups 1..N in order; named groups (``(?P<user>\\w+)``) are stored under
  their own names as well. Groups that did not take part in the match are left out. Values go into
  ``metadata`` next to ``metadata.parsing_rule = {"index": i, "pattern": "..."}``. Names must be identifiers
  and cannot be one of the keys the decoder itself writes (`RESERVED_METADATA_KEYS`).
- ``title``: ``{name}`` placeholders, ``{{``/``}}`` for braces. Names are the extracted fields and the event's
  ``host``, ``service``, ``title``, ``message``, ``event_type``, ``severity`` and top-level text or number
  metadata (``app_name``, ``peer``, ``facility``...). A missing name renders as empty text. Attribute and
  index access, conversions and format specs are refused when the rule is compiled, so rendering cannot
  fail or reach into objects. An empty rendering keeps the parser's title.

Errors in a rule raise `ConfigError` naming it, e.g. ``syslog.parsing_rules[2].pattern: invalid regex:
unterminated character set at position 3``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any, Final

from opsresponder.config import ParsingRuleConfig
from opsresponder.core.errors import ConfigError
from opsresponder.core.event import Event, is_event_type
from opsresponder.core.severity import Severity

MAX_TITLE_LENGTH: Final = 200

RESERVED_METADATA_KEYS: Final = frozenset(
    {
        "peer",
        "transport",
        "format",
        "envelope",
        "facility",
        "syslog_severity",
        "app_name",
        "procid",
        "msgid",
        "structured_data",
        "cisco",
        "cef",
        "leef",
        "parse_error",
        "parsing_rule",
        "timestamp_error",
    }
)
"""Metadata keys the syslog decoder writes; extracted fields may not overwrite them."""

_FIELD_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EVENT_FIELDS: Final = frozenset(
    {"message", "title", "host", "service", "raw", "description", "event_type", "severity"}
)
_SCALARS: Final = (str, int, float)


class CompiledRule:
    """One parsing rule, ready to run. Built by `compile_rules`; immutable by convention."""

    __slots__ = (
        "event_type",
        "groups",
        "index",
        "named_groups",
        "path",
        "pattern",
        "regex",
        "severity",
        "title",
    )

    def __init__(
        self,
        *,
        index: int,
        pattern: str,
        regex: re.Pattern[str],
        event_type: str,
        severity: Severity,
        groups: tuple[tuple[int, str], ...],
        named_groups: tuple[str, ...],
        path: tuple[str, ...],
        title: tuple[tuple[str, str | None], ...] | None,
    ) -> None:
        self.index = index
        self.pattern = pattern
        self.regex = regex
        self.event_type = event_type
        self.severity = severity
        self.groups = groups
        self.named_groups = named_groups
        self.path = path
        self.title = title

    def subject(self, event: Event) -> str | None:
        """The text this rule matches against in `event`, or None when the field is absent."""
        path = self.path
        if len(path) == 1 and path[0] in _EVENT_FIELDS:
            name = path[0]
            if name == "message":
                return event.description if event.description is not None else event.raw
            value: Any = getattr(event, name)
        else:
            value = _lookup(event.metadata, path, 0)
        if isinstance(value, str):
            return value
        if isinstance(value, _SCALARS) and not isinstance(value, bool):
            return str(value)
        return None

    def extract(self, match: re.Match[str]) -> dict[str, str]:
        """The fields this rule extracts from a match of its pattern."""
        fields: dict[str, str] = {}
        for number, name in self.groups:
            value = match.group(number)
            if value is not None:
                fields[name] = value
        for name in self.named_groups:
            value = match.group(name)
            if value is not None and name not in fields:
                fields[name] = value
        return fields

    def render_title(self, event: Event, fields: dict[str, str]) -> str:
        """The rule's title template filled from `event` and `fields`; "" when the rule has no template."""
        if self.title is None:
            return ""
        values: dict[str, Any] = {
            key: value
            for key, value in event.metadata.items()
            if isinstance(value, _SCALARS) and not isinstance(value, bool)
        }
        values.update(
            host=event.host,
            service=event.service,
            title=event.title,
            message=event.description,
            event_type=event.event_type,
            severity=event.severity.value,
        )
        values.update(fields)
        out: list[str] = []
        for literal, name in self.title:
            out.append(literal)
            if name is not None:
                value = values.get(name)
                if value is not None:
                    out.append(str(value))
        return "".join(out).strip()[:MAX_TITLE_LENGTH]


class CompiledRules:
    """The parsing rules of one config, in order. Apply them with `apply`."""

    __slots__ = ("rules",)

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(rules)

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, event: Event) -> tuple[CompiledRule, re.Match[str]] | None:
        """The first rule that matches `event` and its match, without changing the event."""
        for rule in self.rules:
            subject = rule.subject(event)
            if subject is None:
                continue
            found = rule.regex.search(subject)
            if found is not None:
                return rule, found
        return None

    def apply(self, event: Event) -> CompiledRule | None:
        """Type `event` by the first matching rule, in place. Never raises.

        Sets ``event_type``, ``severity``, the extracted fields and ``metadata.parsing_rule``, and the title
        when the rule has a template that renders to something.

        Returns:
            The rule that matched, or None (the event is unchanged).
        """
        if not self.rules:
            return None
        result = self.match(event)
        if result is None:
            return None
        rule, found = result
        fields = rule.extract(found)
        event.event_type = rule.event_type
        event.severity = rule.severity
        event.metadata.update(fields)
        event.metadata["parsing_rule"] = {"index": rule.index, "pattern": rule.pattern}
        title = rule.render_title(event, fields)
        if title:
            event.title = title
        return rule


def _lookup(value: Any, path: tuple[str, ...], start: int) -> Any:
    """Follow `path` from `start` into nested dicts; keys may contain dots, the longest existing key wins."""
    if start == len(path):
        return value
    if not isinstance(value, dict):
        return None
    for end in range(len(path), start, -1):
        key = path[start] if end == start + 1 else ".".join(path[start:end])
        if key in value:
            found = _lookup(value[key], path, end)
            if found is not None:
                return found
    return None


def _compile_title(template: str, where: str) -> tuple[tuple[str, str | None], ...]:
    pieces: list[tuple[str, str | None]] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid template: {exc}") from exc
    for literal, name, spec, conversion in parsed:
        if name is None:
            pieces.append((literal, None))
            continue
        if not _FIELD_NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{where}: placeholder {{{name}}} must be a plain name (no '.', '[', or position)"
            )
        if spec or conversion:
            raise ConfigError(f"{where}: placeholder {{{name}}} may not have a conversion or format spec")
        pieces.append((literal, name))
    return tuple(pieces)


def _compile_one(index: int, config: ParsingRuleConfig, key_path: str) -> CompiledRule:
    where = f"{key_path}[{index}]"
    try:
        regex = re.compile(config.pattern)
    except re.error as exc:
        raise ConfigError(f"{where}.pattern: invalid regex: {exc}") from exc
    if not is_event_type(config.event_type):
        raise ConfigError(
            f"{where}.event_type: {config.event_type!r} is not an identifier (1-64 of a-z 0-9 _ . -)"
        )
    try:
        severity = Severity(config.severity)
    except ValueError as exc:
        raise ConfigError(f"{where}.severity: {config.severity!r} is not one of the five levels") from exc
    if len(config.extract_fields) > regex.groups:
        raise ConfigError(
            f"{where}.extract_fields: names {len(config.extract_fields)} fields but the pattern has "
            f"{regex.groups} capture group(s)"
        )
    names = [*config.extract_fields, *regex.groupindex]
    for name in names:
        if not _FIELD_NAME_RE.fullmatch(name):
            raise ConfigError(f"{where}.extract_fields: {name!r} is not an identifier")
        if name in RESERVED_METADATA_KEYS:
            raise ConfigError(f"{where}.extract_fields: {name!r} is a reserved metadata key")
    match_on = config.match_on.strip()
    if match_on.startswith("metadata."):
        match_on = match_on[len("metadata.") :]
    path = tuple(match_on.split("."))
    if not match_on or not all(path):
        raise ConfigError(f"{where}.match_on: {config.match_on!r} is not a field or dotted metadata path")
    title = _compile_title(config.title, f"{where}.title") if config.title else None
    return CompiledRule(
        index=index,
        pattern=config.pattern,
        regex=regex,
        event_type=config.event_type,
        severity=severity,
        groups=tuple((number, name) for number, name in enumerate(config.extract_fields, start=1)),
        named_groups=tuple(regex.groupindex),
        path=path,
        title=title,
    )


def compile_rules(
    rules: Sequence[ParsingRuleConfig], key_path: str = "syslog.parsing_rules"
) -> CompiledRules:
    """Compile parsing rules once, at start.

    Args:
        rules: the rules from config, in priority order.
        key_path: where they live in config, for error messages.

    Raises:
        ConfigError: a rule has an invalid regex, event_type, severity, field name, ``match_on`` or title
            template; the message names the rule by index, e.g. ``syslog.parsing_rules[2].pattern``.
    """
    return CompiledRules([_compile_one(index, rule, key_path) for index, rule in enumerate(rules)])

"""Message templates (``config/notifications/<name>.yaml``): what a notification says, per channel.

A file holds ``subject`` and ``body`` (Jinja2 text), optionally ``slack`` (the Slack text; default: the
subject in bold, then the body) and ``format`` (``text`` or ``html``: how the e-mail body is sent). The
file's stem is the template's name (``high_cpu_alert``). Files are read once at start; a bad one stops
the process like any bad config (`load_message_templates` raises `ConfigError` naming the file).

Rendering rules, chosen so that a notification always goes out:
- The sandbox (Jinja2's `ImmutableSandboxedEnvironment`) refuses access to Python internals
  (``__class__``, ``__globals__``...: they render empty, and calling through them fails) and methods that
  change a value (``list.append``); ``range`` is bounded, and so are ``*`` and ``**`` on big operands.
  The context's values are data: an event title holding ``{{ ... }}`` is printed, never evaluated.
- A missing value renders empty at any depth (``{{ event.metadata.cpu }}`` with no metadata: ""), and so
  does None. ``StrictUndefined`` would turn every absent optional field into a failed notification;
  ``| default('unknown')`` says what to print instead.
- A template that fails anyway (a filter error, a sandbox refusal) never raises into the executor: the
  message becomes a plain one naming the template, the failure and the context, so the people notified
  still learn what happened, and `RenderedMessage.render_error` says why.
- Text is not escaped (e-mail text, webhook JSON); an ``html`` body escapes every value; the Slack text
  escapes every value's ``&``, ``<`` and ``>``, so event data cannot mention ``<!channel>`` or forge a link,
  while the template's own markup stays.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import jinja2
import msgspec
import structlog
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsresponder.core.errors import ConfigError

log = structlog.get_logger(__name__)

NAME_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
# Rendered text is cut here: a mail or chat message, not a report; the cut is marked.
MAX_BODY_CHARS: Final = 64 * 1024
MAX_SUBJECT_CHARS: Final = 200
# `*` and `**` in a template may not build values larger than this (a repeated string, a huge power):
# a typo such as ``'=' * 10**9`` must not take the process's memory.
_MAX_SEQUENCE: Final = MAX_BODY_CHARS
_MAX_EXPONENT: Final = 1024
# The fallback message shows the context as JSON up to this many characters.
_FALLBACK_CONTEXT_CHARS: Final = 4000

MessageFormat = Literal["text", "html"]


class TemplateSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One file's content: Jinja2 texts, and how the e-mail body is sent."""

    subject: str
    body: str
    slack: str | None = None
    format: MessageFormat = "text"


class RenderedMessage(msgspec.Struct, kw_only=True, frozen=True):
    """One notification's text for every channel.

    Attributes:
        template: the template's name.
        subject: one line (newlines folded into spaces), at most `MAX_SUBJECT_CHARS`.
        body: plain text, or HTML when `format` is ``html``.
        slack: the Slack message text (mrkdwn).
        render_error: why the template could not be rendered (the texts are then the plain fallback),
            else None.
    """

    template: str
    subject: str
    body: str
    slack: str
    format: MessageFormat = "text"
    render_error: str | None = None


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox with `*` and `**` bounded (Jinja2 lets a subclass intercept binary operators)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > _MAX_EXPONENT:
            raise jinja2.exceptions.SecurityError(f"an exponent over {_MAX_EXPONENT} is not allowed")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > _MAX_SEQUENCE:
                    raise jinja2.exceptions.SecurityError(
                        f"a repeated value longer than {_MAX_SEQUENCE} is not allowed"
                    )
        return super().call_binop(context, operator, left, right)


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


def slack_escape(text: str) -> str:
    """Slack's three control characters escaped (api.slack.com "Escaping text")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_finalize(value: Any) -> str:
    return slack_escape(str(_blank_none(value)))


def _environment(*, autoescape: bool = False, finalize: Callable[[Any], Any] = _blank_none) -> _Sandbox:
    return _Sandbox(
        undefined=jinja2.ChainableUndefined,
        autoescape=autoescape,
        finalize=finalize,
        keep_trailing_newline=False,
    )


_TEXT = _environment()
_HTML = _environment(autoescape=True)
_SLACK = _environment(finalize=_slack_finalize)


class MessageTemplate:
    """One compiled template; `render` never raises (see the module's rules)."""

    def __init__(self, name: str, source: str, spec: TemplateSpec) -> None:
        """Compile the texts of `spec`.

        Raises:
            ConfigError: a text is not valid Jinja2; the message names `source` and the field.
        """
        self.name = name
        self.format: MessageFormat = spec.format
        self._subject = _compile(_TEXT, spec.subject, source, "subject")
        self._body = _compile(_HTML if spec.format == "html" else _TEXT, spec.body, source, "body")
        self._slack = None if spec.slack is None else _compile(_SLACK, spec.slack, source, "slack")

    def render(self, context: Mapping[str, Any]) -> RenderedMessage:
        """The message for `context` (JSON-like values), or the plain fallback when rendering fails."""
        try:
            subject = self._subject.render(context)
            body = self._body.render(context)
            slack = None if self._slack is None else self._slack.render(context)
        except Exception as e:  # noqa: BLE001 - filters and the sandbox raise many kinds; none may escape
            return self._fallback(context, f"{type(e).__name__}: {e}")
        subject = _one_line(subject)
        if slack is None:
            # The subject and body were rendered without Slack escaping: escape them whole.
            plain = body if self.format == "text" else html.unescape(re.sub(r"<[^>]*>", "", body)).strip()
            slack = f"*{slack_escape(subject)}*\n{slack_escape(plain)}" if subject else slack_escape(plain)
        return RenderedMessage(
            template=self.name,
            subject=subject,
            body=_bounded(body.rstrip() + "\n"),
            slack=_bounded(slack.strip()),
            format=self.format,
        )

    def _fallback(self, context: Mapping[str, Any], error: str) -> RenderedMessage:
        log.warning(
            "A notification message template failed to render; a plain message is sent instead.",
            template=self.name,
            error=error,
        )
        try:
            shown = msgspec.json.encode(context, order="sorted").decode()
        except (TypeError, msgspec.EncodeError):
            shown = repr(dict(context))
        if len(shown) > _FALLBACK_CONTEXT_CHARS:
            shown = shown[:_FALLBACK_CONTEXT_CHARS] + " [truncated]"
        subject = _one_line(f"OpsResponder notification {self.name} (its template failed to render)")
        body = (
            f"The message template {self.name!r} failed to render: {error}\n"
            f"The notification's context follows.\n\n{shown}\n"
        )
        return RenderedMessage(
            template=self.name,
            subject=subject,
            body=_bounded(body),
            slack=_bounded(slack_escape(f"*{subject}*\n{body}")),
            format="text",
            render_error=error,
        )


class MessageTemplates:
    """The loaded templates by name."""

    def __init__(self, templates: Mapping[str, MessageTemplate] | None = None, source: str = "none") -> None:
        self._templates = dict(templates or {})
        self.source = source

    def get(self, name: str) -> MessageTemplate | None:
        return self._templates.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._templates))

    def __len__(self) -> int:
        return len(self._templates)

    def names(self) -> str:
        """The names, comma-separated, for messages (``none`` when there are none)."""
        return ", ".join(self) or "none"


def load_message_templates(directory: str | Path | None) -> MessageTemplates:
    """The templates of `directory` (``*.yaml`` and ``*.yml``); None: no templates.

    A missing directory is logged at WARNING and yields no templates (every notification then fails
    naming its unknown template), like the response templates' directory.

    Raises:
        ConfigError: a file cannot be read, is not YAML, has a missing or unknown key, a text that is
            not valid Jinja2, or a name that is not ``[a-z_][a-z0-9_]*``; two files have one name. The
            message names the file.
    """
    if directory is None:
        return MessageTemplates()
    root = Path(directory)
    if not root.is_dir():
        log.warning("The notifications directory does not exist; no message templates.", directory=str(root))
        return MessageTemplates(source=str(root))
    templates: dict[str, MessageTemplate] = {}
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        where = f"notification template {path}"
        name = path.stem
        if not NAME_RE.fullmatch(name):
            raise ConfigError(f"{where}: the name {name!r} must match [a-z_][a-z0-9_]* (at most 64)")
        if name in templates:
            raise ConfigError(f"{where}: another file already defines the template {name!r}")
        try:
            tree: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read {where}: {e.strerror}") from e
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where} is not valid YAML: {e}") from e
        try:
            spec = msgspec.convert(tree, TemplateSpec)
        except msgspec.ValidationError as e:
            message = str(e).replace("$.", "")
            if " - at `" not in message:
                message += " (a mapping: subject, body, optional slack and format)"
            raise ConfigError(f"{where}: {message}") from e
        templates[name] = MessageTemplate(name, where, spec)
    log.debug("Loaded notification message templates.", directory=str(root), templates=len(templates))
    return MessageTemplates(templates, str(root))


def _compile(env: _Sandbox, text: str, where: str, field: str) -> jinja2.Template:
    try:
        return env.from_string(text)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"{where}: {field}: line {e.lineno}: {e.message}") from e


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) > MAX_SUBJECT_CHARS:
        line = line[: MAX_SUBJECT_CHARS - 1] + "…"
    return line


def _bounded(text: str) -> str:
    if len(text) <= MAX_BODY_CHARS:
        return text
    return text[:MAX_BODY_CHARS] + "\n[truncated]"

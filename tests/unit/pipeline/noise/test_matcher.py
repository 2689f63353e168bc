"""Silence matching: fields, regexes on RE2, metadata paths, tags, the period and recurring windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsresponder.core.event import EventState
from opsresponder.core.silence import RecurringWindow, SilenceMatcher, SilenceSpec
from opsresponder.pipeline.noise.matcher import CompiledSilence, SilenceSpecError, compile_silence
from tests.factories import make_event

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # a Monday


def silence(*matchers: SilenceMatcher, **spec: Any) -> CompiledSilence:
    starts_at = spec.pop("starts_at", T0)
    return compile_silence(7, SilenceSpec(matchers=list(matchers), starts_at=starts_at, **spec))


def m(field: str, value: str, op: str = "equal") -> SilenceMatcher:
    return SilenceMatcher(field=field, value=value, op=op)  # type: ignore[arg-type]


def test_equality_on_a_field() -> None:
    s = silence(m("host", "db-1"))
    assert s.matches(make_event(host="db-1"))
    assert not s.matches(make_event(host="db-10"))
    assert not s.matches(make_event(host=None))


def test_a_regex_survives_text_with_a_lone_surrogate() -> None:
    # Undecodable input can leave lone surrogates in an event; RE2 sees them as U+FFFD.
    s = silence(m("title", "disk.*", "regex"))
    assert s.matches(make_event(title="disk \udc80"))
    assert not s.matches(make_event(title="\udc80disk"))


def test_every_matcher_must_hold() -> None:
    s = silence(m("host", "db-1"), m("severity", "critical"))
    assert s.matches(make_event(host="db-1", severity="critical"))
    assert not s.matches(make_event(host="db-1", severity="low"))


def test_a_regex_must_match_the_whole_value() -> None:
    s = silence(m("title", "disk .* full", "regex"))
    assert s.matches(make_event(title="disk /var full"))
    assert not s.matches(make_event(title="the disk /var full"))
    assert s.reason == "silenced:7"


def test_a_metadata_path_reaches_nested_values_and_scalars() -> None:
    s = silence(m("metadata.k8s.namespace", "prod"))
    assert s.matches(make_event(metadata={"k8s": {"namespace": "prod"}}))
    assert not s.matches(make_event(metadata={"k8s": "prod"}))
    assert not s.matches(make_event(metadata={}))
    assert silence(m("metadata.retries", "3")).matches(make_event(metadata={"retries": 3}))
    assert silence(m("metadata.paged", "true")).matches(make_event(metadata={"paged": True}))
    assert not silence(m("metadata.list", "[]")).matches(make_event(metadata={"list": []}))


def test_tags_match_when_any_tag_does() -> None:
    s = silence(m("tags", "team-.*", "regex"))
    assert s.matches(make_event(tags=["env:prod", "team-db"]))
    assert not s.matches(make_event(tags=["env:prod"]))
    assert not s.matches(make_event(tags=[]))


def test_the_state_is_no_matcher_field_but_fingerprint_is() -> None:
    event = make_event(state=EventState.RESOLVED, fingerprint="abc")
    assert silence(m("fingerprint", "abc")).matches(event)


def test_start_and_end() -> None:
    s = silence(m("host", "db-1"), starts_at=T0, ends_at=T0 + timedelta(hours=1))
    assert not s.active(T0 - timedelta(seconds=1))
    assert s.active(T0)
    assert s.active(T0 + timedelta(minutes=59))
    assert not s.active(T0 + timedelta(hours=1))  # ended by itself, without any change


def test_open_ended() -> None:
    assert silence(m("host", "db-1")).active(T0 + timedelta(days=3650))


def test_a_recurring_window_follows_local_time_across_a_dst_change() -> None:
    # Europe/Berlin moves from UTC+1 to UTC+2 on Sunday 2026-03-29.
    window = RecurringWindow(start="08:00", end="09:00", time_zone="Europe/Berlin")
    s = silence(m("host", "db-1"), starts_at=datetime(2026, 1, 1, tzinfo=UTC), windows=[window])
    assert s.active(datetime(2026, 3, 28, 7, 30, tzinfo=UTC))  # 08:30 CET
    assert not s.active(datetime(2026, 3, 29, 7, 30, tzinfo=UTC))  # 09:30 CEST
    assert s.active(datetime(2026, 3, 29, 6, 30, tzinfo=UTC))  # 08:30 CEST
    assert not s.active(datetime(2026, 3, 28, 6, 30, tzinfo=UTC))  # 07:30 CET


def test_a_window_past_midnight_belongs_to_its_start_day() -> None:
    window = RecurringWindow(weekdays=["saturday"], start="22:00", end="02:00")
    s = silence(m("host", "db-1"), starts_at=datetime(2030, 1, 1, tzinfo=UTC), windows=[window])
    saturday = datetime(2030, 1, 5, tzinfo=UTC)
    assert s.active(saturday + timedelta(hours=23))
    assert s.active(saturday + timedelta(hours=25))  # Sunday 01:00
    assert not s.active(saturday + timedelta(hours=27))  # Sunday 03:00
    assert not s.active(saturday + timedelta(hours=1))  # Saturday 01:00: Friday had no window


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"matchers": [m("host", "(")]}, "matchers", None),
        ({"matchers": [m("host", "a(", "regex")]}, "matchers[0].value", "missing \\)"),
        ({"matchers": [m("host", "(a)\\1", "regex")]}, "matchers[0].value", "invalid escape"),
        ({"matchers": []}, "matchers", "at least one"),
        ({"ends_at": T0}, "ends_at", "after starts_at"),
        ({"windows": [RecurringWindow(start="01:00", end="02:00", time_zone="Mars/Olympus")]},
         "windows[0].time_zone", "unknown IANA time zone"),
        ({"windows": [RecurringWindow(start="01:00", end="01:00")]}, "windows[0].end", "must differ"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(spec: dict[str, Any], field: str, message: str | None) -> None:
    fields: dict[str, Any] = {"matchers": [m("host", "db-1")], "starts_at": T0, **spec}
    if message is None:  # equality with a regex metacharacter is plain text, not an error
        compile_silence(1, SilenceSpec(**fields))
        return
    with pytest.raises(SilenceSpecError, match=message) as raised:
        compile_silence(1, SilenceSpec(**fields))
    assert raised.value.field == field

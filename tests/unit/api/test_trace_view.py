"""The trace answer's fields read from a stored event: how it came in, and its outcome."""

from __future__ import annotations

from opsresponder.api.traces import describe_ingest, trace_view
from tests.factories import make_event


def test_how_an_event_came_in_is_read_from_what_its_listener_recorded() -> None:
    syslog = make_event(
        source_type="syslog",
        raw="<34>1 ...",
        metadata={"format": "cef", "envelope": "rfc3164", "transport": "tcp", "parsing_rule": {"index": 2}},
    )
    assert describe_ingest(syslog) == "syslog cef in rfc3164 over tcp; parsing rule 2 matched"
    broken = make_event(
        source_type="syslog", raw="x", metadata={"parse_error": "decoder error: boom", "transport": "udp"}
    )
    assert describe_ingest(broken) == "syslog unparsed over udp; parse error: decoder error: boom"
    trap = make_event(
        source_type="snmp",
        raw="...",
        metadata={"snmp": {"version": "3", "inform": True, "trap_name": "linkDown", "user": "monitor"}},
    )
    assert describe_ingest(trap) == "snmp v3 inform linkDown (user monitor)"
    assert describe_ingest(make_event(source_type="prometheus", raw="{}")) == "alertmanager adapter"
    assert describe_ingest(make_event(source_type="icinga", raw="{}")) == "icinga adapter"
    # The generic webhook keeps no raw input, whatever source_type the sender chose.
    assert describe_ingest(make_event(source_type="nagios")) == "generic webhook"
    assert describe_ingest(make_event(source_type="other", raw="x")) == "other (unknown listener)"


def test_a_senders_odd_metadata_never_breaks_the_answer() -> None:
    event = make_event(
        id=7,
        metadata={
            "asset": {"name": 5},
            "correlation": "yes",
            "score_factors": {"severity": 30, "bad": "x", "flag": True},
            "score_missing": ["correlation", 3],
        },
    )
    view = trace_view(event, None)
    assert view.asset is None and view.correlation is None
    assert view.score_factors == {"severity": 30.0}
    assert view.score_missing == ["correlation"]
    assert view.traced is False and view.entries == []

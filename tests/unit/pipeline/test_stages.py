"""build_stages: the configured stage list, built in one place, refusing names it does not know."""

from __future__ import annotations

import pytest

from opsresponder.config import load_settings, settings_from_tree
from opsresponder.core.batch import Batch
from opsresponder.core.clock import utcnow
from opsresponder.core.errors import ConfigError
from opsresponder.pipeline.rules import Rules
from opsresponder.pipeline.stages import (
    Correlate,
    Enrich,
    Noise,
    Normalize,
    OwnGroups,
    Patterns,
    Score,
    StageDeps,
    build_stages,
)
from opsresponder.state import MemoryStateBackend
from tests.factories import make_event


def deps(**pipeline: object) -> StageDeps:
    return StageDeps(settings_from_tree({"pipeline": pipeline}), MemoryStateBackend(), utcnow)


def test_the_default_list_is_the_whole_chain_in_the_spec_order() -> None:
    stages = build_stages(deps())
    assert [s.name for s in stages] == [
        "normalize",
        "enrich",
        "noise",
        "patterns",
        "correlate",
        "score",
        "rules",
    ]
    expected = [Normalize, Enrich, Noise, Patterns, Correlate, Score, Rules]
    assert all(isinstance(stage, kind) for stage, kind in zip(stages, expected, strict=True))


def test_the_configured_order_is_kept() -> None:
    assert [s.name for s in build_stages(deps(stages=["correlate", "normalize"]))] == [
        "correlate",
        "normalize",
    ]


def test_an_unknown_stage_is_refused_naming_the_key_and_the_known_ones() -> None:
    known = "correlate, enrich, noise, normalize, patterns, rules, score"
    with pytest.raises(ConfigError, match=rf"pipeline\.stages: unknown stage 'silence' \(known: {known}\)"):
        build_stages(deps(stages=["normalize", "silence", "correlate"]))


def test_an_unknown_stage_from_the_environment_is_refused_too() -> None:
    settings = load_settings(None, environ={"OPSRESPONDER_PIPELINE__STAGES": '["normalize", "correlat"]'})
    with pytest.raises(ConfigError, match=r"pipeline\.stages: unknown stage 'correlat'"):
        build_stages(StageDeps(settings, MemoryStateBackend(), utcnow))


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (["normalize", "correlate", "normalize"], r"pipeline\.stages: normalize listed twice"),
        (["normalize"], r"pipeline\.stages must include correlate"),
        ([], r"pipeline\.stages must include normalize, correlate"),
    ],
)
def test_a_list_the_store_cannot_work_with_is_refused(stages: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_stages(deps(stages=stages))


async def test_the_built_stages_do_what_the_functions_do() -> None:
    event = make_event(host="  web-01 ")
    batch = Batch([event])
    for stage in build_stages(deps()):
        await stage.run(batch)
    assert event.host == "web-01"
    assert event.fingerprint
    assert event.correlation_id is not None
    assert event.score is not None


async def test_with_correlation_disabled_each_event_opens_its_own_group() -> None:
    settings = settings_from_tree({"correlation": {"enabled": False}})
    stages = build_stages(StageDeps(settings, MemoryStateBackend(), utcnow))
    correlate_stage = next(s for s in stages if s.name == "correlate")
    assert isinstance(correlate_stage, OwnGroups)
    events = [make_event(host="h1"), make_event(host="h1")]
    await correlate_stage.run(Batch(events))
    assert events[0].correlation_id is not None and events[1].correlation_id is not None
    assert events[0].correlation_id != events[1].correlation_id

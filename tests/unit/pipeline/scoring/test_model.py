"""The score formula: contributions, missing inputs, clamping, and its properties over any event."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.config import ScoringConfig, settings_from_tree
from opsresponder.core.severity import Severity
from opsresponder.pipeline.scoring import FACTORS, ScoreModel, compact_entry, stored_sentence
from tests.factories import make_event

MODEL = ScoreModel(ScoringConfig())
CRITICALITIES = ("low", "medium", "high", "critical")  # ascending
SEVERITIES = (Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)  # ascending


def asset(**fields: Any) -> dict[str, Any]:
    return {"asset": {"name": "db-1", **fields}}


def test_every_input_present_adds_its_weighted_level() -> None:
    event = make_event(
        severity=Severity.HIGH,
        metadata={
            **asset(criticality="critical", environment="production", in_business_hours=True),
            "correlation": {"group_size": 10, "root_cause": False, "types": ["causal"]},
        },
    )
    scored = MODEL.score(event, earlier=10)
    assert scored.factors == {
        "severity": 30.0,  # 40 x 0.75
        "criticality": 25.0,
        "environment": 10.0,
        "correlation": 10.0,  # group of 10: the whole weight
        "repetition": 10.0,  # 10 earlier arrivals: the whole weight
        "business_hours": 5.0,
    }
    assert scored.score == 90 and scored.missing == []
    assert scored.explain() == (
        "score 90: severity high +30, criticality critical +25, environment production +10, "
        "correlation 10 events +10, repetition 10 earlier +10, business_hours inside +5"
    )


def test_missing_inputs_contribute_nothing_and_are_named() -> None:
    scored = MODEL.score(make_event(severity=Severity.CRITICAL, metadata={}), earlier=0)
    assert scored.factors == dict.fromkeys(FACTORS, 0.0) | {"severity": 40.0}
    assert scored.score == 40
    assert scored.missing == ["criticality", "environment", "correlation", "business_hours"]
    assert scored.explain() == (
        "score 40: severity critical +40, repetition 0 earlier +0; "
        "missing: criticality, environment, correlation, business_hours"
    )


def test_an_asset_without_environment_or_calendar_names_only_those() -> None:
    scored = MODEL.score(make_event(metadata=asset(criticality="low", environment=None)), earlier=0)
    assert scored.factors["criticality"] == 6.2  # 25 x 0.25 = 6.25, one decimal
    assert scored.missing == ["environment", "correlation", "business_hours"]


def test_an_environment_not_in_the_table_counts_zero_but_is_not_missing() -> None:
    scored = MODEL.score(make_event(metadata=asset(environment="qa")), earlier=0)
    assert scored.factors["environment"] == 0.0
    assert "environment" not in scored.missing and scored.environment == "qa"


def test_a_senders_malformed_metadata_counts_as_missing() -> None:
    event = make_event(metadata={"asset": "db-1", "correlation": {"group_size": True}})
    scored = MODEL.score(event, earlier=0)
    assert scored.missing == ["criticality", "environment", "correlation", "business_hours"]


def test_correlation_and_repetition_grow_logarithmically() -> None:
    def corr(size: int) -> float:
        return MODEL.score(make_event(metadata={"correlation": {"group_size": size}}), 0).factors[
            "correlation"
        ]

    assert corr(1) == 0.0
    assert corr(2) == 3.0  # log 2 / log 10
    assert corr(4) == 6.0
    assert corr(1000) == 10.0
    reps = [MODEL.score(make_event(), n).factors["repetition"] for n in (0, 1, 3, 10, 500)]
    assert reps == [0.0, 2.9, 5.8, 10.0, 10.0]


def test_the_events_own_duplicate_count_counts_as_repetition() -> None:
    assert MODEL.score(make_event(duplicate_count=10), earlier=0).factors["repetition"] == 10.0


def test_a_sum_over_100_is_clamped_and_says_so() -> None:
    model = ScoreModel(
        settings_from_tree({"scoring": {"weights": {"severity": 90, "repetition": 50}}}).scoring
    )
    scored = model.score(make_event(severity=Severity.CRITICAL), earlier=10)
    assert scored.total == 140.0 and scored.score == 100
    assert scored.explain().startswith("score 100 (sum 140, clamped): severity critical +90")


def test_levels_come_from_the_config_tables() -> None:
    config = settings_from_tree(
        {
            "scoring": {
                "levels": {
                    "severity": {"info": 1.0},
                    "business_hours": {"inside": 0.0, "outside": 1.0},
                }
            }
        }
    ).scoring
    model = ScoreModel(config)
    scored = model.score(make_event(severity=Severity.INFO, metadata=asset(in_business_hours=False)), 0)
    assert scored.factors["severity"] == 40.0 and scored.factors["business_hours"] == 5.0
    # A severity the table leaves out has level 0.
    assert model.score(make_event(severity=Severity.CRITICAL), 0).factors["severity"] == 0.0


metadata_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=12), st.floats(allow_nan=True)
)
assets = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "criticality": st.one_of(st.sampled_from(CRITICALITIES), metadata_values),
            "environment": st.one_of(st.sampled_from(["production", "staging", "dev"]), metadata_values),
            "in_business_hours": st.one_of(st.booleans(), metadata_values),
        },
    ),
)
correlations = st.one_of(
    st.none(),
    st.fixed_dictionaries({"group_size": st.one_of(st.integers(0, 10**9), metadata_values)}),
)
weights = st.fixed_dictionaries({f: st.floats(0, 1000) for f in FACTORS})
levels = st.floats(0, 1)


@st.composite
def configs(draw: st.DrawFn) -> ScoringConfig:
    """Any valid scoring section; the severity and criticality tables ascending (as they are meant)."""
    sev = sorted(draw(st.lists(levels, min_size=5, max_size=5)))
    crit = sorted(draw(st.lists(levels, min_size=4, max_size=4)))
    tree = {
        "weights": draw(weights),
        "levels": {
            "severity": {s.value: v for s, v in zip(SEVERITIES, sev, strict=True)},
            "criticality": dict(zip(CRITICALITIES, crit, strict=True)),
            "environment": {"production": draw(levels), "staging": draw(levels)},
            "business_hours": {"inside": draw(levels), "outside": draw(levels)},
        },
        "correlation": {"full_at": draw(st.integers(2, 1000))},
        "repetition": {"full_at": draw(st.integers(2, 1000))},
    }
    return settings_from_tree({"scoring": tree}).scoring


def metadata_of(asset_value: Any, correlation: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if asset_value is not None:
        metadata["asset"] = asset_value
    if correlation is not None:
        metadata["correlation"] = correlation
    return metadata


@settings(max_examples=300, deadline=None)
@given(
    config=configs(),
    severity=st.sampled_from(SEVERITIES),
    asset_value=assets,
    correlation=correlations,
    earlier=st.integers(0, 10**6),
    duplicates=st.integers(0, 10**6),
)
def test_the_score_is_0_to_100_its_factors_sum_to_it_and_its_stored_sentence_reads_the_same(
    config: ScoringConfig,
    severity: Severity,
    asset_value: Any,
    correlation: Any,
    earlier: int,
    duplicates: int,
) -> None:
    event = make_event(
        severity=severity, metadata=metadata_of(asset_value, correlation), duplicate_count=duplicates
    )
    scored = ScoreModel(config).score(event, earlier)
    assert 0 <= scored.score <= 100
    assert list(scored.factors) == list(FACTORS)
    assert all(v >= 0 for v in scored.factors.values())
    assert scored.total == pytest.approx(sum(scored.factors.values()), abs=1e-6)
    if scored.total <= 100:
        assert abs(scored.score - scored.total) <= 0.5
    else:
        assert scored.score == 100
    assert set(scored.missing) <= set(FACTORS) - {"severity", "repetition"}
    for name in scored.missing:
        assert scored.factors[name] == 0.0
    # The trace's sentence, written from the stored event and the stage's compact entry, says what the
    # score said: metadata through JSON (JSONB reorders keys), more duplicates folded in since.
    event.score = float(scored.score)
    event.metadata["score_factors"] = scored.factors
    if scored.missing:
        event.metadata["score_missing"] = scored.missing
    event.metadata = msgspec.json.decode(msgspec.json.encode(event.metadata))
    event.metadata["score_factors"] = dict(reversed(event.metadata["score_factors"].items()))
    event.duplicate_count += 7
    assert stored_sentence(event, compact_entry(scored.repeats)) == scored.explain()


@settings(max_examples=300, deadline=None)
@given(
    config=configs(),
    severities=st.lists(st.sampled_from(SEVERITIES), min_size=2, max_size=2),
    criticalities=st.lists(st.sampled_from(CRITICALITIES), min_size=2, max_size=2),
    environment=st.sampled_from(["production", "staging", "dev"]),
    inside=st.booleans(),
    correlation=correlations,
    earlier=st.integers(0, 100),
)
def test_the_score_never_falls_when_severity_or_criticality_rises(
    config: ScoringConfig,
    severities: list[Severity],
    criticalities: list[str],
    environment: str,
    inside: bool,
    correlation: Any,
    earlier: int,
) -> None:
    model = ScoreModel(config)
    low_sev, high_sev = sorted(severities, key=lambda s: s.rank)
    low_crit, high_crit = sorted(criticalities, key=CRITICALITIES.index)

    def score(severity: Severity, criticality: str) -> int:
        value = {"criticality": criticality, "environment": environment, "in_business_hours": inside}
        event = make_event(severity=severity, metadata=metadata_of(value, correlation))
        return model.score(event, earlier).score

    assert score(low_sev, low_crit) <= score(high_sev, low_crit) <= score(high_sev, high_crit)
    assert score(low_sev, low_crit) <= score(low_sev, high_crit)

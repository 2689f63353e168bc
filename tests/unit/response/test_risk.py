"""The risk matrix reproduces service-spec.md's values exactly, with exact sums (0.1 + 0.2 is 0.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.config import RiskConfig
from opsresponder.response.risk import RiskMatrix, higher, level_of

MATRIX = RiskMatrix(RiskConfig())
CRITICALITIES = ["critical", "high", "medium", "low", "unknown"]
ACTION_TYPES = [
    "system_restart",
    "service_restart",
    "configuration_change",
    "remediation",
    "diagnostic",
    "notification",
    "unknown",
]


@pytest.mark.parametrize(
    ("criticality", "action_type", "business_hours", "in_maintenance", "score", "approval", "level"),
    [
        # Exactly the threshold: 0.1 + 0.2 (float addition would give 0.30000000000000004): no approval.
        ("unknown", "diagnostic", True, True, 0.3, False, "low"),
        ("low", "diagnostic", False, False, 0.3, False, "low"),
        ("medium", "diagnostic", False, True, 0.3, False, "low"),
        # Just over: a medium-risk remediation needs a person.
        ("medium", "remediation", False, False, 0.5, True, "medium"),
        ("low", "diagnostic", True, False, 0.5, True, "medium"),
        ("high", "service_restart", True, False, 0.9, True, "critical"),
        ("high", "configuration_change", False, True, 0.7, True, "high"),
        ("critical", "notification", False, True, 0.4, True, "medium"),
        ("low", "notification", False, True, 0.1, False, "low"),
        ("unknown", "unknown", False, True, 0.0, False, "low"),
        # 0.4 + 0.5 + 0.2 + 0.1 = 1.2, capped.
        ("critical", "system_restart", True, False, 1.0, True, "critical"),
        ("high", "system_restart", True, False, 1.0, True, "critical"),
    ],
)
def test_the_spec_values(
    criticality: str,
    action_type: str,
    business_hours: bool,
    in_maintenance: bool,
    score: float,
    approval: bool,
    level: str,
) -> None:
    assessed = MATRIX.score(criticality, action_type, business_hours, in_maintenance)
    assert assessed.score == score
    assert MATRIX.requires_approval(assessed.score) is approval
    assert assessed.level == level


def test_factors_name_each_contribution() -> None:
    assessed = MATRIX.score("high", "service_restart", True, False)
    assert assessed.factors == {
        "system_criticality": 0.3,
        "action_type": 0.3,
        "business_hours": 0.2,
        "maintenance_window": 0.1,
    }


def test_the_threshold_is_strict_and_configurable() -> None:
    assert not MATRIX.requires_approval(0.3)
    assert MATRIX.requires_approval(0.3000001)
    strict = RiskMatrix(RiskConfig(approval_threshold=0.1))
    assert not strict.requires_approval(0.1)
    assert strict.requires_approval(0.2)


def test_level_bounds_are_inclusive() -> None:
    assert [level_of(s) for s in (0.0, 0.3, 0.31, 0.5, 0.51, 0.7, 0.71, 1.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]


def test_the_higher_level_wins() -> None:
    assert higher("low", "high", None) == "high"
    assert higher("critical", "medium") == "critical"
    assert higher(None) == "low"


@given(
    st.sampled_from(CRITICALITIES),
    st.sampled_from(ACTION_TYPES),
    st.booleans(),
    st.booleans(),
)
def test_always_within_zero_and_one(
    criticality: str, action_type: str, hours: bool, maintenance: bool
) -> None:
    assessed = MATRIX.score(criticality, action_type, hours, maintenance)
    assert 0.0 <= assessed.score <= 1.0
    assert assessed.level == level_of(assessed.score)


@given(st.sampled_from(CRITICALITIES), st.sampled_from(ACTION_TYPES), st.booleans(), st.booleans())
def test_monotone_in_every_factor(criticality: str, action_type: str, hours: bool, maintenance: bool) -> None:
    """More critical, a riskier action, business hours, or leaving maintenance never lowers the score."""
    base = MATRIX.score(criticality, action_type, hours, maintenance).score
    assert MATRIX.score(criticality, action_type, True, maintenance).score >= base
    assert MATRIX.score(criticality, action_type, hours, False).score >= base
    weights = RiskConfig().system_criticality
    for other in CRITICALITIES:
        if weights.get(other, 0.0) >= weights.get(criticality, 0.0):
            assert MATRIX.score(other, action_type, hours, maintenance).score >= base
    types = RiskConfig().action_type
    for other in ACTION_TYPES:
        if types.get(other, 0.0) >= types.get(action_type, 0.0):
            assert MATRIX.score(criticality, other, hours, maintenance).score >= base


@given(
    st.dictionaries(
        st.sampled_from(CRITICALITIES[:4]), st.floats(min_value=-2, max_value=2, allow_nan=False), min_size=1
    ),
    st.floats(min_value=-2, max_value=2, allow_nan=False),
    st.floats(min_value=-2, max_value=2, allow_nan=False),
    st.sampled_from(CRITICALITIES),
    st.booleans(),
    st.booleans(),
)
def test_any_configured_values_stay_within_zero_and_one(
    weights: dict[str, float], hours: float, outside: float, criticality: str, b: bool, m: bool
) -> None:
    matrix = RiskMatrix(
        RiskConfig(system_criticality=weights, business_hours=hours, outside_maintenance=outside)
    )
    assert 0.0 <= matrix.score(criticality, "diagnostic", b, m).score <= 1.0

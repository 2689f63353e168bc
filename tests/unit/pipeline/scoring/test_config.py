"""The ``scoring`` section: weights are numbers >= 0, levels 0-1, tables keyed by known names."""

from __future__ import annotations

from typing import Any

import pytest

from opsresponder.config import settings_from_tree
from opsresponder.core.errors import ConfigError


@pytest.mark.parametrize(
    ("scoring", "message"),
    [
        ({"weights": {"severity": "heavy"}}, r"Expected `float`, got `str` - at `scoring.weights.severity`"),
        ({"weights": {"criticality": -1}}, r"Expected `float` >= 0(\.0)? - at `scoring.weights.criticality`"),
        ({"weights": {"loudness": 3}}, r"unknown field `loudness` - at `scoring.weights`"),
        (
            {"levels": {"severity": {"urgent": 1}}},
            r"Invalid enum value 'urgent' - at `key` in `scoring.levels",
        ),
        ({"levels": {"criticality": {"info": 0.1}}}, r"Invalid enum value 'info'"),
        ({"levels": {"environment": {"production": 2}}}, r"<= 1(\.0)? - at `scoring.levels.environment"),
        ({"levels": {"business_hours": {"inside": "yes"}}}, r"at `scoring.levels.business_hours.inside`"),
        ({"correlation": {"full_at": 1}}, r">= 2 - at `scoring.correlation.full_at`"),
        ({"repetition": {"window_minutes": 0}}, r"> 0(\.0)? - at `scoring.repetition.window_minutes`"),
    ],
)
def test_a_bad_scoring_value_is_refused_naming_its_key(scoring: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_tree({"scoring": scoring})


def test_weights_from_the_environment_are_numbers() -> None:
    settings = settings_from_tree({"scoring": {"weights": {"severity": "55.5"}}})
    assert settings.scoring.weights.severity == 55.5


def test_the_default_weights_sum_to_100() -> None:
    weights = settings_from_tree({}).scoring.weights
    assert sum(getattr(weights, f) for f in weights.__struct_fields__) == 100

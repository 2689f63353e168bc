"""What a run's output means as data: a JSON object printed by a script or answered by an endpoint
becomes `RunResult.data`, and its numbers become `RunResult.metrics` (what criteria and outcomes read)."""

from __future__ import annotations

from typing import Any

import msgspec

from opsresponder.core.json_errors import MALFORMED_JSON_ERRORS

_decoder = msgspec.json.Decoder()


def structured(body: bytes) -> tuple[dict[str, Any] | None, dict[str, float]]:
    """The JSON object in `body` and its metrics; ``(None, {})`` when `body` is not one JSON object.

    Metrics are the object's top-level numbers and the numbers of its ``metrics`` object (those win on a
    name clash: they are the ones the script called metrics). Booleans are not numbers here.
    """
    stripped = body.strip()
    if not stripped.startswith(b"{"):
        return None, {}
    try:
        data = _decoder.decode(stripped)
    except MALFORMED_JSON_ERRORS:
        return None, {}
    if not isinstance(data, dict):
        return None, {}
    metrics = _numbers(data)
    nested = data.get("metrics")
    if isinstance(nested, dict):
        metrics.update(_numbers(nested))
    return data, metrics


def _numbers(mapping: dict[str, Any]) -> dict[str, float]:
    return {
        str(key): float(value)
        for key, value in mapping.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }

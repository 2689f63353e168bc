"""Overlap between trigger rules: identical conditions, or one rule's events all matched by another.

Decided on the top-level conjunction of each rule's conditions (the implicit AND and top-level ``$and``):

- ``event_type``, ``source`` and ``severity`` compare by the values they allow (`required_values`, as the
  `RuleIndex` reads them), so ``severity: critical`` is narrower than ``severity: {"$gte": "high"}``;
- every other conjunct compares by its canonical JSON (``["host", "$regex", "web-.*"]``; an ``$or`` or a
  ``$not`` as a whole).

Rule A covers rule B when every value B allows on an indexed field A allows too, and every other
conjunct of A is also one of B's: then every event B matches, A matches. This finds the overlaps people
make (a copy, a narrower variant) and never reports one that is not real; it does not prove that two
different-looking rules are disjoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from opsresponder.rules.conditions import Condition
from opsresponder.rules.conditions.operators import ORDER_OPERATORS
from opsresponder.rules.index import INDEXED_FIELDS, required_values

_encode: Final = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True, slots=True)
class RuleShape:
    """What overlap needs of one rule: the values of the indexed fields and the other conjuncts."""

    required: tuple[frozenset[str] | None, ...]
    conjuncts: frozenset[bytes]

    @classmethod
    def of(cls, doc: Mapping[str, Any], condition: Condition) -> RuleShape:
        return cls(
            required=tuple(required_values(condition.root, f) for f in INDEXED_FIELDS),
            conjuncts=frozenset(_conjuncts(doc)),
        )

    def covers(self, other: RuleShape) -> bool:
        """Every event `other` matches, this rule matches too."""
        for mine, theirs in zip(self.required, other.required, strict=True):
            if mine is not None and (theirs is None or not theirs <= mine):
                return False
        return self.conjuncts <= other.conjuncts


@dataclass(frozen=True, slots=True)
class OtherRule:
    rule_id: int
    name: str
    shape: RuleShape


def overlap_warnings(shape: RuleShape, others: Sequence[OtherRule]) -> list[str]:
    """One warning per other rule this one overlaps, naming it and how."""
    out: list[str] = []
    for other in others:
        label = f"active rule {other.rule_id} ({other.name!r})"
        covers, covered = shape.covers(other.shape), other.shape.covers(shape)
        if covers and covered:
            out.append(f"overlaps {label}: the same conditions, so both fire on the same events")
        elif covered:
            out.append(f"overlaps {label}: every event this rule matches also matches {label}")
        elif covers:
            out.append(f"overlaps {label}: every event {label} matches also matches this rule")
    return out


def _conjuncts(doc: Mapping[str, Any], *, top: bool = True) -> list[bytes]:
    """The canonical JSON of each top-level conjunct that is not an indexed field's value set.

    Inside a top-level ``$and`` indexed fields stay conjuncts: `required_values` reads the top level only.
    """
    out: list[bytes] = []
    for key, value in doc.items():
        if key == "$and" and isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    out.extend(_conjuncts(item, top=False))
        elif key.startswith("$"):
            out.append(_encode({key: value}))
        elif isinstance(value, Mapping):
            out.extend(
                _encode([key, op, operand])
                for op, operand in value.items()
                if not (top and _indexed(key, op))
            )
        elif not (top and _indexed(key, "$in" if isinstance(value, list) else "$eq")):
            # A list is "any of": its order says nothing.
            operand = sorted(value, key=_encode) if isinstance(value, list) else value
            out.append(_encode([key, "$in" if isinstance(value, list) else "$eq", operand]))
    return out


def _indexed(field: str, operator: str) -> bool:
    """Whether `required_values` accounts for this conjunct (so it is compared by value set)."""
    if field not in INDEXED_FIELDS:
        return False
    return operator in ("$eq", "$in") or (field == "severity" and operator in ORDER_OPERATORS)

"""`RuleEngine`: which rules an event matches, and whether its group's window, cooldown and limits let
the rule fire; absence rules' deadlines are opened, moved and closed here (fired by `AbsenceChecker`).

Pure logic over a `StateBackend` and an injected time, so the semantics are tested with a fake clock on
the memory and Redis backends (docs/rules-evaluation.md). All times in the state are the engine's `now`,
never the backend's clock. One batch is evaluated as a whole: conditions first (CPU only), then three
batched state calls for every trigger rule's windows, cooldowns and hourly limits (one round trip each
on Redis), and the absence deadlines per (rule, group), concurrently across groups on a shared backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, cast

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.pipeline.rules.keys import HOUR_SECONDS, cooldown_key, deadlines_key, hourly_key, window_key
from opsresponder.rules.conditions import Condition, LeafResult
from opsresponder.rules.conditions.fields import MISSING
from opsresponder.rules.conditions.nodes import And, Leaf
from opsresponder.rules.evaluation import Firing, RuleSpec
from opsresponder.rules.index import RuleIndex
from opsresponder.state.base import StateBackend

# Non-matching rules explained (first failing condition) per event; the others are listed by id. Explaining
# costs more than matching (it matches again and formats a reason): the trace keeps the first few.
EXPLAIN_PER_EVENT: Final = 3
_MINUTE: Final = 60.0
# (rule, group) passes in flight at once on a shared backend (Redis).
STATE_CONCURRENCY: Final = 32
_NO_CANDIDATE: Final = "no rule can match its event_type, source and severity"

# (event index in the batch, trace text, the firing when the rule fired)
_Outcome = tuple[int, str, Firing | None]


@dataclass(slots=True)
class Evaluation:
    """One batch's outcome: a trace text per evaluated event (by index) and the firings, in order."""

    traces: dict[int, str] = field(default_factory=dict)
    firings: list[Firing] = field(default_factory=list)
    recorded: list[tuple[int, str, float]] = field(default_factory=list)
    """The window hits written to the state backend for an event, as ``(index, key, at)``: its match
    counted toward a threshold, and the cooldown and hourly hits of a firing it completed. Taken back
    (`StateBackend.window_take_back_many`) when the event is never stored."""


# Compared by identity (eq=False): the engine looks a rule up among an event's hits.
@dataclass(frozen=True, slots=True, eq=False)
class _Loaded:
    spec: RuleSpec
    rule_id: int
    label: str
    id_text: str
    group_of: Callable[[Event], str]


def _label(spec: RuleSpec) -> str:
    return f"rule {spec.rule_id} {spec.name!r}"


def why_not(condition: Condition, event: Event) -> str:
    """The first condition that failed, with its reason (``metadata.cpu $gt 90: text value, ...``).

    Cheaper than `Condition.explain` (which evaluates and records every leaf): under the top-level AND,
    the first child that fails is found with its compiled function, and only a leaf's reason is worked
    out; a nested group is explained on its own.
    """
    root = condition.root
    children = root.children if isinstance(root, And) else (root,)
    for child in children:
        if child.fn(event):
            continue
        if isinstance(child, Leaf):
            value = child.get(event)
            reason = "missing" if value is MISSING else (child.needs(value) or "false")
            return f"{child.path.text} {child.operator} {child.operand!r}: {reason}"
        leaves: list[LeafResult] = []
        child.explain(event, leaves)
        failed = next((leaf for leaf in leaves if not leaf.matched), None)
        if failed is not None:
            return f"{failed.path} {failed.operator} {failed.operand!r}: {failed.reason}"
        return "a $not condition held"
    return "conditions false"


class RuleEngine:
    """Evaluates batches of events against the loaded rules. `load` replaces the rules (no I/O)."""

    def __init__(self, state: StateBackend, *, min_severity: Severity = Severity.LOW) -> None:
        self._state = state
        self._min_rank = min_severity.rank
        self._min_severity = min_severity
        self.load(())

    @property
    def state(self) -> StateBackend:
        return self._state

    @property
    def rule_count(self) -> int:
        """Active rules loaded (trigger and absence)."""
        return self._count

    @property
    def absence_rules(self) -> Sequence[RuleSpec]:
        return self._absence

    def load(self, rules: Sequence[RuleSpec]) -> None:
        """Take `rules` from now on; inactive ones are left out (never evaluated)."""
        active = [r for r in rules if r.active]
        loaded = {
            r.rule_id: _Loaded(r, r.rule_id, _label(r), str(r.rule_id), r.group_key_of()) for r in active
        }
        self._count = len(active)
        self._triggers = RuleIndex(
            ((loaded[r.rule_id], r.condition) for r in active if r.absence is None), describe=_Note
        )
        self._arrivals = RuleIndex((loaded[r.rule_id], r.condition) for r in active if r.absence is not None)
        self._openers = RuleIndex(
            (loaded[r.rule_id], r.absence.after)
            for r in active
            if r.absence is not None and r.absence.after is not None
        )
        self._absence: list[RuleSpec] = [r for r in active if r.absence is not None]
        # Only those with rules: an event looks itself up in each.
        self._absence_indexes = [
            (index, opens) for index, opens in ((self._arrivals, False), (self._openers, True)) if index.size
        ]

    async def arm(self, now: datetime) -> None:
        """Give every expected group of the heartbeat rules a deadline unless it has one (rule start)."""
        ts = now.timestamp()
        for rule in self._absence:
            assert rule.absence is not None
            if rule.absence.after is not None:
                continue  # an `after` rule's deadlines open with their `after` event
            due = ts + rule.absence.within_minutes * _MINUTE
            for group in rule.absence.expected_groups:
                await self._state.deadline_set(deadlines_key(rule.rule_id), group, due, only_if_absent=True)

    async def evaluate(
        self, events: Sequence[Event], now: datetime, recorded: list[tuple[int, str, float]] | None = None
    ) -> Evaluation:
        """Match every event, then apply windows, thresholds, cooldowns and limits; never raises but
        `StateError` (the backend failed).

        `recorded`: the list to collect `Evaluation.recorded` in, so that a caller still has the hits
        written before a failure."""
        result = Evaluation() if recorded is None else Evaluation(recorded=recorded)
        if self._count == 0:
            return result
        traces = result.traces
        # Per evaluated event: its non-matching candidates' text (explained first few, the rest by id).
        misses: dict[int, list[str]] = {}
        triggers: dict[tuple[int, str], tuple[_Loaded, list[tuple[int, Event]]]] = {}
        absences: dict[tuple[int, str], tuple[_Loaded, list[tuple[int, Event, bool]]]] = {}
        min_rank = self._min_rank
        has_absence = bool(self._absence)
        lookup = self._triggers.lookup
        for i, event in enumerate(events):
            if event.suppressed_reason is not None:
                traces[i] = f"not evaluated: suppressed ({event.suppressed_reason})"
                continue
            if event.severity.rank < min_rank:
                traces[i] = (
                    f"not evaluated: severity {event.severity} is below rules.min_severity "
                    f"{self._min_severity}"
                )
                continue
            found = lookup(event)
            checks = found.checks
            # The residual predicates only: the index already decided the event_type, source, severity.
            hits = [rule for rule, rest in checks if rest is None or rest(event)]
            if hits:
                for rule in hits:
                    key = (rule.rule_id, rule.group_of(event))
                    entry = triggers.get(key)
                    if entry is None:
                        triggers[key] = (rule, [(i, event)])
                    else:
                        entry[1].append((i, event))
                if len(hits) < len(checks):
                    hit = set(hits)
                    misses[i] = self._explain_misses(event, [rule for rule, _ in checks if rule not in hit])
                else:
                    misses[i] = []
            elif checks:
                # None matched: every candidate missed, and their by-id text was made with the index.
                note = cast(_Note, found.note)
                misses[i] = self._explain_misses(event, note.rules, note.unexplained)
            else:
                misses[i] = []
            if has_absence:
                self._match_absence(i, event, absences)

        ts = now.timestamp()
        # Absences first: a state failure there, after the triggers wrote their cooldown and hourly hits,
        # would leave those standing for firings the stage then drops. The triggers write them last.
        absence_outcomes = await self._absences_of(absences, ts) if absences else []
        outcomes = [await self._triggers_of(triggers, now, ts, result.recorded), *absence_outcomes]
        matched: dict[int, list[str]] = {}
        fired: list[tuple[int, Firing]] = []
        for group_outcomes in outcomes:
            for i, text, firing in group_outcomes:
                lines = matched.get(i)
                if lines is None:
                    matched[i] = [text]
                else:
                    lines.append(text)
                if firing is not None:
                    fired.append((i, firing))
        # In the order of their completing events (a stable sort keeps a group's own order).
        fired.sort(key=_first)
        result.firings = [firing for _, firing in fired]
        for i, missed in misses.items():
            lines = matched.get(i)
            if lines is not None:
                lines += missed
            else:
                lines = missed
            traces[i] = "; ".join(lines) if lines else _NO_CANDIDATE
        return result

    @staticmethod
    def _explain_misses(event: Event, rules: Sequence[_Loaded], unexplained: str | None = None) -> list[str]:
        """The first `EXPLAIN_PER_EVENT` of `rules` (that `event` did not match) with the first condition
        that failed, the others by id (`unexplained`: that text already made, when `rules` are all the
        candidates of the event's combination)."""
        lines = [
            f"{rule.label}: not matched ({why_not(rule.spec.condition, event)})"
            for rule in rules[:EXPLAIN_PER_EVENT]
        ]
        if unexplained is None:
            unexplained = _unexplained(rules)
        if unexplained:
            lines.append(unexplained)
        return lines

    def _match_absence(
        self,
        i: int,
        event: Event,
        absences: dict[tuple[int, str], tuple[_Loaded, list[tuple[int, Event, bool]]]],
    ) -> None:
        """Note the absence rules `event` arrives for (False) or opens a deadline of (True)."""
        for index, opens in self._absence_indexes:
            for rule, rest in index.lookup(event).checks:
                if rest is None or rest(event):
                    key = (rule.rule_id, rule.group_of(event))
                    absences.setdefault(key, (rule, []))[1].append((i, event, opens))

    async def _triggers_of(
        self,
        triggers: dict[tuple[int, str], tuple[_Loaded, list[tuple[int, Event]]]],
        now: datetime,
        ts: float,
        recorded: list[tuple[int, str, float]],
    ) -> list[_Outcome]:
        """Count, hold or fire every matching (rule, group) of the batch, in event order per group.

        Three batched state calls whatever the batch holds: add every match to its group's window; read
        the cooldown and hourly counts of the groups that reached their threshold; record the firings.
        Within one batch every hit has the same time, so a group that fires is in cooldown (and one
        firing nearer its hourly limit) for the rest of the batch, as if evaluated one call at a time.
        Every hit written is appended to `recorded` with the index of the event it was written for.
        """
        state = self._state
        adds: list[tuple[str, float, float]] = []
        groups: list[tuple[_Loaded, str, list[tuple[int, Event]], int]] = []  # start in adds, -1: none
        for (_, group), (rule, hits) in triggers.items():
            window = rule.spec.time_window_minutes
            if window is None:
                groups.append((rule, group, hits, -1))
                continue
            groups.append((rule, group, hits, len(adds)))
            key = window_key(rule.rule_id, window, group)
            adds.extend((key, window * _MINUTE, ts) for _ in hits)
            recorded.extend((i, key, ts) for i, _ in hits)
        counts = await state.window_add_many(adds) if adds else []

        reads: list[tuple[str, float, float]] = []
        read_at: dict[tuple[int, str], int] = {}
        for n, (rule, group, hits, start) in enumerate(groups):
            spec = rule.spec
            peak = 1 if start < 0 else counts[start + len(hits) - 1]
            if peak < spec.threshold:
                continue
            if spec.cooldown_minutes:
                read_at[n, "c"] = len(reads)
                key = cooldown_key(spec.rule_id, spec.cooldown_minutes, group)
                reads.append((key, spec.cooldown_minutes * _MINUTE, ts))
            if spec.max_triggers_per_hour is not None:
                read_at[n, "h"] = len(reads)
                reads.append((hourly_key(spec.rule_id, group), HOUR_SECONDS, ts))
        found = await state.window_count_many(reads) if reads else []

        writes: list[tuple[str, float, float]] = []
        out: list[_Outcome] = []
        for n, (rule, group, hits, start) in enumerate(groups):
            spec = rule.spec
            label = f"{rule.label} [{group}]" if spec.group_by else rule.label
            window, threshold, limit = spec.time_window_minutes, spec.threshold, spec.max_triggers_per_hour
            if start < 0 and not spec.cooldown_minutes and limit is None:
                # Fires on every match (no window, cooldown or limit): one text for all its hits.
                text = f"{label}: matched, fired"
                for i, event in hits:
                    every: dict[str, object] = {"rule_name": spec.name, "matched_in_window": 1,
                                                "threshold": 1, "window_minutes": None}  # fmt: skip
                    out.append((i, text, Firing(spec.rule_id, group, "trigger", now, (event,), every)))
                continue
            cooling = found[read_at[n, "c"]] > 0 if (n, "c") in read_at else False
            this_hour = found[read_at[n, "h"]] if (n, "h") in read_at else 0
            seen: list[Event] = []
            for j, (i, event) in enumerate(hits):
                seen.append(event)
                count = 1 if start < 0 else counts[start + j]
                counted = "" if window is None else f" ({count} of {threshold} in {window} min)"
                if count < threshold:
                    out.append((i, f"{label}: matched, held by threshold{counted}", None))
                    continue
                if cooling:
                    out.append((i, f"{label}: matched, held by cooldown ({spec.cooldown_minutes} min)", None))
                    continue
                if limit is not None and this_hour >= limit:
                    out.append((i, f"{label}: matched, held by max_triggers_per_hour ({limit})", None))
                    continue
                if spec.cooldown_minutes:
                    cooling = True
                    key = cooldown_key(spec.rule_id, spec.cooldown_minutes, group)
                    writes.append((key, spec.cooldown_minutes * _MINUTE, ts))
                    recorded.append((i, key, ts))
                if limit is not None:
                    this_hour += 1
                    key = hourly_key(spec.rule_id, group)
                    writes.append((key, HOUR_SECONDS, ts))
                    recorded.append((i, key, ts))
                detail: dict[str, object] = {"rule_name": spec.name, "matched_in_window": count,
                                             "threshold": threshold, "window_minutes": window}  # fmt: skip
                firing = Firing(spec.rule_id, group, "trigger", now, tuple(seen[-threshold:]), detail)
                out.append((i, f"{label}: matched, fired{counted}", firing))
        if writes:
            await state.window_add_many(writes)
        return out

    async def _absences_of(
        self, absences: dict[tuple[int, str], tuple[_Loaded, list[tuple[int, Event, bool]]]], ts: float
    ) -> list[list[_Outcome]]:
        """Move, open or close the absence deadlines the batch's events touch.

        A heartbeat group only moves its deadline, to the same time for every event of the batch: all of
        them go in one batched call. Opening and closing depend on the deadline's state and on order, so
        those groups go one (rule, group) at a time, in event order, overlapping across groups.
        """
        state = self._state
        moves: list[tuple[str, str, float]] = []
        outcomes: list[list[_Outcome]] = []
        ordered: list[Awaitable[list[_Outcome]]] = []
        for (_, group), (rule, hits) in absences.items():
            absence = rule.spec.absence
            assert absence is not None
            if absence.after is not None:
                ordered.append(self._deadline_hits(rule, group, hits, ts))
                continue
            due = ts + absence.within_minutes * _MINUTE
            moves.append((deadlines_key(rule.rule_id), group, due))
            text = f"{self._absence_label(rule, group)}: heartbeat, next one due by {_iso(due)}"
            outcomes.append([(i, text, None) for i, _, _ in hits])
        await state.deadline_set_many(moves)
        if state.shared:
            # Bounded: each group in flight holds one of the client's connections.
            gate = asyncio.Semaphore(STATE_CONCURRENCY)

            async def gated(step: Awaitable[list[_Outcome]]) -> list[_Outcome]:
                async with gate:
                    return await step

            outcomes += await asyncio.gather(*(gated(w) for w in ordered))
        else:
            outcomes += [await w for w in ordered]
        return outcomes

    @staticmethod
    def _absence_label(rule: _Loaded, group: str) -> str:
        return f"{rule.label} [{group}] (absence)" if rule.spec.group_by else f"{rule.label} (absence)"

    async def _deadline_hits(
        self, rule: _Loaded, group: str, hits: list[tuple[int, Event, bool]], ts: float
    ) -> list[_Outcome]:
        """An `after` absence rule's events of one group, in order: open or close its deadline."""
        spec, state = rule.spec, self._state
        assert spec.absence is not None
        label = self._absence_label(rule, group)
        key = deadlines_key(spec.rule_id)
        due = ts + spec.absence.within_minutes * _MINUTE
        out: list[_Outcome] = []
        for i, _, opens in hits:
            if opens:
                opened = await state.deadline_set(key, group, due, only_if_absent=True)
                text = f"opened its deadline, due {_iso(due)}" if opened else "its deadline was already open"
            else:
                closed = await state.deadline_remove(key, group)
                text = "closed its deadline in time" if closed else "matched, no deadline was open"
            out.append((i, f"{label}: {text}", None))
        return out


def _first(pair: tuple[int, Firing]) -> int:
    return pair[0]


def _unexplained(rules: Sequence[_Loaded]) -> str:
    """The non-matching rules past the explained ones, by id ("" when there are none)."""
    rest = rules[EXPLAIN_PER_EVENT:]
    return f"not matched either: rules {', '.join([rule.id_text for rule in rest])}" if rest else ""


class _Note:
    """What the trace says of one (event_type, source, severity)'s candidates, worked out once: all of
    them in order, and the by-id text for when none matched."""

    __slots__ = ("rules", "unexplained")

    def __init__(self, rules: list[_Loaded]) -> None:
        self.rules = tuple(rules)
        self.unexplained = _unexplained(self.rules)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()

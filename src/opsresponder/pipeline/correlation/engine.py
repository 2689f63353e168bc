"""The correlation engine: which recent group each event belongs to, by four kinds of correlation.

For each event the engine looks up what it remembers under the event's keys, scores every recent group
found there by each kind, and the event joins the best group scoring at least ``join_threshold``, or
opens a group of its own:

- ``host_based``: the group had an event on the same host within ``lookback_hours``;
- ``time_based``: within ``window_minutes``, on the same service, in the same asset group
  (``metadata.asset.group``), or sharing tags (Jaccard share, which alone stays below the threshold);
- ``pattern_based``: within ``window_minutes``, the same or a similar message template
  (``metadata.pattern``, or the masked title without it);
- ``causal``: within ``window_minutes``, the event's asset depends on the host or service of a group's
  event (``metadata.asset.depends_on``), or the group's events depend on this event's host or service.
  The event depended on is the group's root cause.

A kind scores ``weight * (1 - 0.5 * dt / window)``: its weight for simultaneous events, half of it at
the window's edge. Kinds that link the event to one group combine as ``1 - prod(1 - score)``.

What is remembered is compact and bounded: per key (a host, a service, a template...) the latest event of
each of at most ``max_groups_per_key`` recent groups, not every event. A storm of ten thousand events on
one host is one entry under that host. Keys are kept in least-recently-seen order; those not seen within
their window are evicted from the front, and past ``max_keys`` the least recent goes first.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any, Final

from opsresponder.config import CorrelationConfig
from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.clock import Clock
from opsresponder.core.correlation import (
    CORRELATIONS,
    NEW_ROOT_CAUSES,
    CorrelationLink,
    CorrelationType,
)
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.pipeline.correlation.templates import TemplateIndex, pattern_of

STAGE: Final = "correlate"
# An event of an earlier batch whose id is still unknown after this long was not stored as a new row (a
# duplicate, or refused): the state stops holding the object.
_PENDING_SECONDS: Final = 60.0
_TEMPLATE_IN_REASON: Final = 120
# Reason texts remembered (they repeat: a host, a template, a switch); the memo is emptied when full.
_MAX_REASONS: Final = 20_000
_NO_LIMIT: Final = float("-inf")
_NO_TAGS: Final[frozenset[str]] = frozenset()
# Kinds in the order a trace lists them, with their index in the per-group score arrays.
_CAUSAL, _PATTERN, _HOST, _TIME = 0, 1, 2, 3
_KINDS: Final[tuple[CorrelationType, ...]] = ("causal", "pattern_based", "host_based", "time_based")
# Why a group was offered, kept as parts (what, subject, similarity) and written out only for the links
# of the group the event joins: most candidates are never written.
_Reason = tuple[str, str, float]


class Group:
    """One correlation group: its id, how many events it has as known here, and its root cause.

    Attributes:
        root: the event named root cause (an `Event` until its batch is settled, then its id; 0 when it
            never got one), None while no causal correlation named one.
        root_name: the host or service of the root (what its dependents depend on).
        root_depends: what the root itself depends on: an event there is the root's own cause and takes
            its place.
        causal_links: how many events the root explains (dependents correlated to it).
    """

    __slots__ = (
        "causal_links",
        "described",
        "first_at",
        "head",
        "id",
        "root",
        "root_depends",
        "root_name",
        "root_text",
        "size",
    )

    def __init__(self, group_id: uuid.UUID, size: int = 0, first_at: float = 0.0) -> None:
        self.id = group_id
        self.size = size
        self.first_at = first_at  # occurred_at (epoch seconds) of its first event
        self.root: Event | int | None = None
        self.root_name: str | None = None
        self.root_depends: tuple[str, ...] = ()
        self.causal_links = 0
        # The trace's text: "joined group <id> (score " (made at the first join), and the root cause's
        # part with the root it describes (an `Event`, then its id: the text changes once).
        self.head = ""
        self.described: Event | int | None = None
        self.root_text = ""


class _Seen:
    """The latest event of one group under one key. ``event`` is the `Event` until its id is known.

    ``text`` and ``cause_text`` are the reasons written for links to it (see `Correlator._join`), made at
    its first link: a host, service, asset group or tag reason, and a causal one. Both name only its key,
    which never changes.
    """

    __slots__ = ("at", "cause_text", "event", "group", "text")

    def __init__(self, group: Group, at: float, event: Event | int) -> None:
        self.group = group
        self.at = at
        self.event = event
        self.text: str | None = None
        self.cause_text: str | None = None


class _Index:
    """Key -> the latest event of each recent group under that key, newest group last.

    Keys are kept in least-recently-updated order, so eviction by time walks from the front and stops at
    the first fresh key, and the size bound drops the least recent.
    """

    __slots__ = ("_entries", "_groups_per_key", "_max_keys", "horizon", "lookup")

    def __init__(self, horizon: float, max_keys: int, groups_per_key: int) -> None:
        self.horizon = horizon
        self._max_keys = max_keys
        self._groups_per_key = groups_per_key
        # OrderedDict, not dict: taking the first key of a dict whose front was deleted from scans the
        # deleted slots, so a dict used as a queue gets slower with its size; OrderedDict's ends are O(1).
        self._entries: OrderedDict[str, list[_Seen]] = OrderedDict()
        # The entries under a key, or None: the mapping's own get, for the hot path (no Python frame).
        self.lookup: Callable[[str], list[_Seen] | None] = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> list[_Seen]:
        return self._entries.get(key) or []

    def note(self, key: str, group: Group, at: float, event: Event | int) -> _Seen:
        mapping = self._entries
        entries = mapping.get(key)
        if entries is None:
            seen = _Seen(group, at, event)
            mapping[key] = [seen]
            if len(mapping) > self._max_keys:
                mapping.popitem(last=False)
            return seen
        mapping.move_to_end(key)  # most recently updated last
        for seen in entries:
            if seen.group is group:
                if at >= seen.at:
                    seen.at = at
                    seen.event = event
                return seen
        seen = _Seen(group, at, event)
        entries.append(seen)
        if len(entries) > self._groups_per_key:
            # The group seen longest ago goes (the first of them on a tie, as min() picks it): a loop
            # rather than min(key=...), whose key function is a Python call per entry (3.5x slower).
            oldest = entries[0]
            for other in entries:
                if other.at < oldest.at:
                    oldest = other
            entries.remove(oldest)
        return seen

    def evict(self, now: float) -> None:
        """Forget keys whose groups were all last seen before ``now - horizon``, from the front."""
        cutoff = now - self.horizon
        entries = self._entries
        while entries:
            key, seen = next(iter(entries.items()))
            fresh = [s for s in seen if s.at >= cutoff]
            if fresh:
                entries[key] = fresh
                return
            entries.popitem(last=False)

    def seen(self) -> Iterator[_Seen]:
        for entries in self._entries.values():
            yield from entries


# One key's entries looked at for one kind, for one event, when at least one of them was within reach:
# (kind, entries, span, weight, fade, not_before, reason). The scores of every group found are kept as
# they come; the related events of a kind are only walked again for the group the event joins (most
# groups found are not chosen, and building their related lists was most of the stage's cost).
_Offer = tuple[int, list["_Seen"], float, float, float, float, _Reason]


class _Features:
    """What the engine reads of one event, taken once."""

    __slots__ = (
        "asset_group",
        "at",
        "depends_on",
        "host",
        "names",
        "pattern_key",
        "service",
        "tags",
        "template",
    )

    def __init__(self, event: Event) -> None:
        # Read once per event on the hot path: plain loops, no generator, the common shapes first.
        self.at = event.occurred_at.timestamp()
        host = self.host = event.host
        service = self.service = event.service
        tags = event.tags
        self.tags = frozenset(tags) if tags else _NO_TAGS
        metadata = event.metadata
        asset = metadata.get("asset")
        group: Any = None
        depends_on: tuple[str, ...] = ()
        if isinstance(asset, dict):
            group = asset.get("group")
            depends = asset.get("depends_on")
            if depends:
                # A plain loop: a comprehension is a call of its own on the hot path (Python 3.11).
                kept: list[str] = []
                for d in depends:
                    if isinstance(d, str) and d and d != host and d != service:
                        kept.append(d)
                if kept:
                    depends_on = tuple(kept)
        self.asset_group: str | None = group if isinstance(group, str) and group else None
        self.depends_on = depends_on
        pattern = metadata.get("pattern")
        if isinstance(pattern, dict):
            pattern_id, template = pattern.get("id"), pattern.get("template")
            if isinstance(pattern_id, str) and pattern_id and isinstance(template, str):
                self.pattern_key, self.template = pattern_id, template
            else:
                self.pattern_key, self.template = pattern_of(metadata, event.title)
        else:
            self.pattern_key, self.template = pattern_of(metadata, event.title)
        # What others may depend on: this event's host and service.
        self.names: tuple[str, ...] = (
            (host, service) if host and service else (host,) if host else (service,) if service else ()
        )


class Correlator:
    """The correlation state of one process and the decisions over it (see the module docstring).

    `correlate` is CPU only; `load` replays stored events at start. `new_group_id` makes the id of each new
    group (the stage's fast UUID generator).
    """

    def __init__(
        self,
        config: CorrelationConfig,
        *,
        dedup_window_seconds: float,
        clock: Clock,
        new_group_id: Callable[[], uuid.UUID] = uuid.uuid4,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._clock = clock
        self._monotonic = monotonic
        self.new_group_id = new_group_id
        window = config.window_minutes * 60.0
        lookback = config.lookback_hours * 3600.0
        self._window = window
        self._lookback = lookback
        # pattern_based and time_based add to a group only this long after its first event.
        self._reach = 2 * window
        self._related_limit = config.max_related_per_kind
        self._min_rank = Severity(config.min_severity).rank
        # The severities correlated, as a set: one lookup per event instead of the rank property.
        self._correlated = frozenset(s for s in Severity if s.rank >= self._min_rank)
        # The trace of an event below it, per severity (a tenth of a realistic mix is info).
        self._below_min_severity = {
            s: f"not correlated: severity {s.value} is below correlation.min_severity" for s in Severity
        }
        self._dedup_window = dedup_window_seconds
        weights = config.weights
        self._weights = (weights.causal, weights.pattern_based, weights.host_based, weights.time_based)
        # (weight, fade) of the offers of a whole weight: a kind's score is ``weight - fade * dt``.
        self._host_weight = (weights.host_based, 0.5 * weights.host_based / lookback)
        self._group_weight = (weights.time_based, 0.5 * weights.time_based / window)
        self._service_weight = (0.9 * weights.time_based, 0.5 * 0.9 * weights.time_based / window)
        self._pattern_weight = (weights.pattern_based, 0.5 * weights.pattern_based / window)
        self._causal_weight = (weights.causal, 0.5 * weights.causal / window)
        keys, per_key = config.max_keys, config.max_groups_per_key
        self.hosts = _Index(max(window, lookback), keys, per_key)
        self.services = _Index(window, keys, per_key)
        self.asset_groups = _Index(window, keys, per_key)
        self.tags = _Index(window, keys, per_key)
        self.patterns = _Index(window, keys, per_key)
        self.dependents = _Index(window, keys, per_key)  # name -> events whose asset depends on it
        self._indexes = (
            self.hosts,
            self.services,
            self.asset_groups,
            self.tags,
            self.patterns,
            self.dependents,
        )
        self.templates = TemplateIndex(config.similarity_threshold, config.max_templates)
        # fingerprint -> (state, last received, group): a repeat keeps the group of the event it repeats.
        self._fingerprints: OrderedDict[str, tuple[EventState, float, Group]] = OrderedDict()
        self._groups_by_id: dict[uuid.UUID, Group] = {}  # only while loading history
        # Per batch: when to give up on its events' ids; the batch, weakly (its ids are final once it is
        # settled, or gone); its events; and the notes it made or took over, holding an `Event`. Not the
        # batch itself: its trace and links would outlive it, and the collector would walk them.
        self._pending: list[tuple[float, weakref.ref[Batch], list[Event], list[_Seen]]] = []
        # id() of the events of batches not settled yet: an id they have may still be taken back.
        self._unsure: set[int] = set()
        self._reasons: dict[_Reason, str] = {}
        self._next_eviction = 0.0
        self._window_text = _duration(window)
        self._lookback_text = _duration(lookback)

    # --- history -------------------------------------------------------------------------------------

    def load(self, events: Iterable[Event]) -> int:
        """Replay stored events (oldest first, with ids and correlation ids) into the state.

        Their groups are rebuilt from their correlation ids, sizes counted, roots taken from
        ``metadata.correlation.root_cause``. Returns how many events were replayed.
        """
        count = 0
        groups = self._groups_by_id
        for event in events:
            if event.correlation_id is None or event.id is None:
                continue
            if event.suppressed_reason is not None or event.severity.rank < self._min_rank:
                continue  # never correlated when they came
            group = groups.get(event.correlation_id)
            features = _Features(event)
            if group is None:
                group = groups[event.correlation_id] = Group(event.correlation_id, first_at=features.at)
            group.size += 1
            info = event.metadata.get("correlation")
            if isinstance(info, dict) and info.get("root_cause") is True:
                self._name_root(group, event.id, features)
            self.templates.similar(features.pattern_key, features.template)  # registered
            self._remember(event, features, group, event.id, event.received_at.timestamp(), None)
            count += 1
        return count

    def end_load(self) -> None:
        """Loading is over: the id -> group map is only needed while replaying."""
        self._groups_by_id = {}

    # --- correlation ---------------------------------------------------------------------------------

    def correlate(self, batch: Batch) -> None:
        """Give every event of `batch` without a correlation id a group; add the correlations found."""
        if not batch.events:
            return
        # Evict relative to the batch's oldest event when it is older than the clock (a backlog after an
        # outage, a sender's late delivery): what it should still see must not be gone already.
        now = min(self._clock().timestamp(), min(e.occurred_at for e in batch.events).timestamp())
        self._settle_pending()
        if now >= self._next_eviction:
            self._evict(now)
            self._next_eviction = now + 1.0
        links: list[CorrelationLink] = []
        new_roots: list[Event | int] = []
        pending: list[_Seen] = []
        correlate_one = self._correlate_one
        for event in batch.events:
            if event.correlation_id is not None:
                continue  # seen before (the batch came back after an outage), or given by its sender
            correlate_one(event, batch, links, new_roots, pending)
        if pending:
            deadline = self._monotonic() + _PENDING_SECONDS
            self._pending.append((deadline, weakref.ref(batch), batch.events, pending))
        if links:
            batch.add(CORRELATIONS, links)
        if new_roots:
            batch.add(NEW_ROOT_CAUSES, new_roots)

    def _correlate_one(
        self,
        event: Event,
        batch: Batch,
        links: list[CorrelationLink],
        new_roots: list[Event | int],
        pending: list[_Seen],
    ) -> None:
        if event.suppressed_reason is not None or event.severity not in self._correlated:
            why = (
                f"not correlated: suppressed ({event.suppressed_reason})"
                if event.suppressed_reason is not None
                else self._below_min_severity[event.severity]
            )
            self._open(event, batch, why, event.occurred_at.timestamp())
            return
        received = event.received_at.timestamp()
        # Most events' fingerprints are not remembered: no call for them.
        repeat = self._repeat_of(event, received) if event.fingerprint in self._fingerprints else None
        if repeat is not None:
            event.correlation_id = repeat.id
            event.metadata["correlation"] = {"group_size": repeat.size, "root_cause": False, "types": []}
            batch.trace.append(
                TraceEntry(event, STAGE, f"repeats an event of group {repeat.id} (dedup keeps its group)")
            )
            return
        features = _Features(event)
        offers: list[_Offer] = []
        found = self._candidates(features, offers)
        best: Group | None = None
        best_scores: list[float] | None = None
        best_score = 0.0
        for group, s in found.items():
            # The kinds linking one group combine as 1 - prod(1 - score).
            score = 1.0 - (1.0 - s[0]) * (1.0 - s[1]) * (1.0 - s[2]) * (1.0 - s[3])
            if score > best_score:
                best, best_scores, best_score = group, s, score
        if best is None or best_scores is None or best_score < self._config.join_threshold:
            why = "opened group"
            if best is not None:
                why += f" (best candidate {best_score:.2f} < join_threshold {self._config.join_threshold})"
            group = self._open(event, batch, why, features.at)
            self._remember(event, features, group, event, received, pending)
            return
        self._join(event, features, best, best_scores, offers, best_score, batch, links, new_roots)
        self._remember(event, features, best, event, received, pending)

    def _open(self, event: Event, batch: Batch, why: str, at: float) -> Group:
        group = Group(self.new_group_id(), size=1, first_at=at)
        event.correlation_id = group.id
        event.metadata["correlation"] = {"group_size": 1, "root_cause": False, "types": []}
        batch.trace.append(TraceEntry(event, STAGE, why))
        return group

    def _join(
        self,
        event: Event,
        features: _Features,
        group: Group,
        scores: list[float],
        offers: list[_Offer],
        score: float,
        batch: Batch,
        links: list[CorrelationLink],
        new_roots: list[Event | int],
    ) -> None:
        group.size += 1
        event.correlation_id = group.id
        at = features.at
        unsure = self._unsure  # events whose ids may still be taken back: linked as events, not ids
        # The related events of each kind in `group`, walked again from the offers that found them (in the
        # order they were found: equal scores keep it through the stable sort), and what the causal ones say.
        related: tuple[list[tuple[float, _Seen, _Reason]], ...] = ([], [], [], [])
        caused_by: tuple[_Seen, str] | None = None  # the event depends on this one (named)
        cause_of = False  # the event is what this group's events depend on
        for kind, entries, span, weight, fade, not_before, reason in offers:
            if group.first_at < not_before:
                continue
            bucket = related[kind]
            for seen in entries:
                if seen.group is not group:
                    continue
                dt = at - seen.at
                if dt < 0:
                    dt = -dt
                if dt > span:
                    continue
                bucket.append((weight - fade * dt, seen, reason))
                if kind == _CAUSAL:
                    if reason[0] == "depends":
                        if caused_by is None or seen.at < caused_by[0].at:
                            caused_by = (seen, reason[1])
                    else:
                        cause_of = True
        limit = self._related_limit
        reasons = self._reasons
        types: list[str] = []
        details: list[str] = []
        for kind, name in enumerate(_KINDS):
            kind_score = scores[kind]
            if kind_score <= 0.0:
                continue
            types.append(name)
            # f"{name} {kind_score:.2f}" from a table (formatting a float was a tenth of the stage), unless
            # near a tie (see _NOT_NEAR; kind_score > 0 here).
            t = kind_score * 100.0 + 0.5
            n = int(t)
            t -= n
            details.append(
                _DETAILS[kind][n] if _NOT_NEAR < t < _FAR and n <= 100 else f"{name} {kind_score:.2f}"
            )
            ranked = related[kind]
            if len(ranked) > 1:
                ranked.sort(key=_by_score, reverse=True)
            # Each related event once: by its id when stored, else by identity (events compare by value),
            # as a negative number so that it never meets an id.
            named: list[int] = []
            for related_score, seen, reason in ranked:
                target = seen.event
                if isinstance(target, int):
                    key = target
                    if not key:
                        continue  # never stored
                else:
                    ident = target.id
                    if ident is not None and id(target) not in unsure:
                        target = seen.event = key = ident
                    else:
                        key = -id(target)
                if key in named:
                    continue
                named.append(key)
                # A storm links to the same few notes again and again, and host, time and causal reasons
                # name only the note's key (its host, service, asset group or tag; the dependency, for
                # either side of a causal link: one sentence), so each note keeps the text it was given:
                # looking it up in the memo (a tuple hashed into a dict of thousands) was a quarter of the
                # links' cost. A pattern reason names this event's template: from the memo.
                if kind == _PATTERN:
                    text = reasons.get(reason) or self._reason_text(reason)
                elif kind == _CAUSAL:
                    if seen.cause_text is None:
                        seen.cause_text = self._reason_text(reason)
                    text = seen.cause_text
                else:
                    if seen.text is None:
                        seen.text = self._reason_text(reason)
                    text = seen.text
                # round(related_score, 4), without its decimal conversion when no tie is near.
                t = related_score * 10_000.0 + 0.5
                n = int(t)
                t -= n
                rounded = n / 10_000.0 if _NOT_NEAR < t < _FAR else round(related_score, 4)
                links.append(CorrelationLink(event, target, name, rounded, text))
                if len(named) >= limit:
                    break
        is_root = False
        if caused_by is not None:
            cause, cause_name = caused_by
            if group.root is None or (group.root_depends and cause_name in group.root_depends):
                self._set_root(group, cause, cause_name, batch, new_roots)
            group.causal_links += 1
        depends = group.root_depends
        if cause_of and (group.root is None or (depends and any(n in depends for n in features.names))):
            self._name_root(group, event, features)
            is_root = True
            group.causal_links += 1
        event.metadata["correlation"] = {"group_size": group.size, "root_cause": is_root, "types": types}
        # The parts that stay the same for the group's events are written once per group (per root).
        head = group.head
        if not head:
            head = group.head = f"joined group {group.id} (score "
        root_event = group.root
        if root_event is None:
            root = ""
        else:
            if isinstance(root_event, Event) and root_event.id is not None and id(root_event) not in unsure:
                root_event = group.root = root_event.id  # settled: hold the id, not the event
            if root_event is group.described:
                root = group.root_text
            else:
                root = group.root_text = f"; root cause: {_describe(root_event)}"
                group.described = root_event
        t = score * 100.0 + 0.5  # f"{score:.2f}" from the table likewise (0 < score <= 1 here)
        n = int(t)
        t -= n
        text = _TWO_PLACES[n] if _NOT_NEAR < t < _FAR and n <= 100 else f"{score:.2f}"
        batch.trace.append(
            TraceEntry(event, STAGE, f"{head}{text}: {', '.join(details)}; {group.size} events{root})")
        )

    def _reason_text(self, reason: _Reason) -> str:
        """The reason a person reads, written once per distinct reason (a storm repeats a few)."""
        text = self._reasons.get(reason)
        if text is None:
            if len(self._reasons) >= _MAX_REASONS:
                self._reasons.clear()
            text = self._reasons[reason] = self._write_reason(reason)
        return text

    def _write_reason(self, reason: _Reason) -> str:
        what, subject, sim = reason
        window = self._window_text
        if what == "host":
            return f"Events occurred within {self._lookback_text} on the same host {subject}"
        if what == "asset_group":
            return f"Events occurred within {window} in the same asset group {subject}"
        if what == "service":
            return f"Events occurred within {window} on the same service {subject}"
        if what == "tag":
            return f"Events occurred within {window} sharing the tag {subject}"
        template = subject[:_TEMPLATE_IN_REASON]
        if what == "template":
            return f"The same message template within {window}: {template}"
        if what == "similar":
            return f"Similar message templates (similarity {sim:.2f}) within {window}: {template}"
        # "depends" (the event's asset depends on `subject`) or "depended" (the related event's asset
        # depends on this event's host or service, `subject`): the same sentence from either side.
        return f"Depends on {subject} (asset inventory): the event on {subject} is the likely root cause"

    def _set_root(
        self, group: Group, cause: _Seen, name: str, batch: Batch, new_roots: list[Event | int]
    ) -> None:
        """Name the event behind `cause` the group's root; flag it in its metadata or through the writer."""
        target = cause.event
        if isinstance(target, Event) and target.id is not None and id(target) not in self._unsure:
            target = cause.event = target.id
        group.root = target
        group.root_name = name
        group.root_depends = ()
        if isinstance(target, Event):
            asset = target.metadata.get("asset")
            if isinstance(asset, dict):
                group.root_depends = tuple(d for d in asset.get("depends_on") or () if isinstance(d, str))
            info = target.metadata.get("correlation")
            if isinstance(info, dict):
                info["root_cause"] = True
            if not any(target is e for e in batch.events):
                new_roots.append(target)  # of an earlier batch: its row needs the flag
        elif target != 0:
            new_roots.append(target)

    def _name_root(self, group: Group, event: Event | int, features: _Features) -> None:
        group.root = event
        group.root_name = features.host or features.service
        group.root_depends = features.depends_on

    def _candidates(self, f: _Features, offers: list[_Offer]) -> dict[Group, list[float]]:
        """Every group found under the event's keys with its best score per kind; the offers that found
        them are added to `offers` (for `_join` to walk again for the chosen group only)."""
        window, lookback = self._window, self._lookback
        at = f.at
        # pattern_based and time_based do not chain: a template seen every 10 minutes all day is not
        # one incident, so they only add to groups that began within reach.
        chained = at - self._reach
        add_offer = offers.append
        # Keys are only offered with entries; an offer is kept whether or not one was within reach (in a
        # dense stream they nearly always are, and `_join` checks the span again). Offers of a whole
        # weight use the (weight, fade) pairs made once in __init__.
        hosts, services = self.hosts.lookup, self.services.lookup
        if f.host:
            entries = hosts(f.host)
            if entries:
                weight, fade = self._host_weight
                add_offer((_HOST, entries, lookback, weight, fade, _NO_LIMIT, ("host", f.host, 0.0)))
        if f.asset_group:
            entries = self.asset_groups.lookup(f.asset_group)
            if entries:
                weight, fade = self._group_weight
                reason: _Reason = ("asset_group", f.asset_group, 0.0)
                add_offer((_TIME, entries, window, weight, fade, chained, reason))
        if f.service:
            entries = services(f.service)
            if entries:
                weight, fade = self._service_weight
                add_offer((_TIME, entries, window, weight, fade, chained, ("service", f.service, 0.0)))
        if f.tags:
            tags = self.tags.lookup
            for tag in f.tags:
                # Tags weigh at most 0.6 of the kind, shared among the event's tags and among the groups
                # that carry the tag now: a "production" tag on everything says nothing and never groups
                # by itself.
                entries = tags(tag)
                if entries:
                    weight = self._weights[_TIME] * (0.6 / len(f.tags) / len(entries))
                    fade = 0.5 * weight / window
                    add_offer((_TIME, entries, window, weight, fade, chained, ("tag", tag, 0.0)))
        patterns = self.patterns.lookup
        entries = patterns(f.pattern_key)
        if entries:
            weight, fade = self._pattern_weight
            add_offer((_PATTERN, entries, window, weight, fade, chained, ("template", f.template, 1.0)))
        # Most templates are known already: their similar ones without a call.
        similar = self.templates.known(f.pattern_key)
        if similar is None:
            similar = self.templates.similar(f.pattern_key, f.template)  # registers it
        if similar:
            for key, sim in similar.items():
                entries = patterns(key)
                if entries:
                    weight = self._weights[_PATTERN] * sim
                    fade = 0.5 * weight / window
                    reason = ("similar", f.template, sim)
                    add_offer((_PATTERN, entries, window, weight, fade, chained, reason))
        if f.depends_on:
            weight, fade = self._causal_weight
            for name in f.depends_on:  # this event's asset needs `name`: an event there may be the cause
                reason = ("depends", name, 0.0)
                entries = hosts(name)
                if entries:
                    add_offer((_CAUSAL, entries, window, weight, fade, _NO_LIMIT, reason))
                entries = services(name)
                if entries:
                    add_offer((_CAUSAL, entries, window, weight, fade, _NO_LIMIT, reason))
        dependents = self.dependents.lookup
        for name in f.names:  # others need this host or service: this event may be their cause
            entries = dependents(name)
            if entries:
                weight, fade = self._causal_weight
                add_offer((_CAUSAL, entries, window, weight, fade, _NO_LIMIT, ("depended", name, 0.0)))
        # The hot loop of the stage (a few entries per key, about ten keys per event): kept flat, with
        # no call per offer.
        found: dict[Group, list[float]] = {}
        found_get = found.get
        for kind, entries, span, weight, fade, not_before, _ in offers:
            for seen in entries:
                dt = at - seen.at
                if dt < 0:
                    dt = -dt
                if dt > span:
                    continue
                group = seen.group
                if group.first_at < not_before:
                    continue
                score = weight - fade * dt
                scores = found_get(group)
                if scores is None:
                    scores = [0.0, 0.0, 0.0, 0.0]
                    scores[kind] = score
                    found[group] = scores
                elif score > scores[kind]:
                    scores[kind] = score
        return found

    def _remember(
        self,
        event: Event,
        f: _Features,
        group: Group,
        ref: Event | int,
        received: float,
        pending: list[_Seen] | None,
    ) -> None:
        """Note the event under each of its keys; `pending` collects the notes holding an `Event` (its id
        is not known yet, `_settle_pending` swaps it in). `received` is its received_at, in seconds."""
        at = f.at
        note = (pending if pending is not None else []).append
        if f.host:
            note(self.hosts.note(f.host, group, at, ref))
        if f.service:
            note(self.services.note(f.service, group, at, ref))
        if f.asset_group:
            note(self.asset_groups.note(f.asset_group, group, at, ref))
        for tag in f.tags:
            note(self.tags.note(tag, group, at, ref))
        note(self.patterns.note(f.pattern_key, group, at, ref))
        for name in f.depends_on:
            note(self.dependents.note(name, group, at, ref))
        fingerprints = self._fingerprints
        fingerprint = event.fingerprint
        if fingerprint in fingerprints:
            fingerprints.move_to_end(fingerprint)
        elif len(fingerprints) >= self._config.max_fingerprints:
            fingerprints.popitem(last=False)
        fingerprints[fingerprint] = (event.state, received, group)

    def _repeat_of(self, event: Event, received: float) -> Group | None:
        known = self._fingerprints.get(event.fingerprint)
        if known is None:
            return None
        state, last, group = known
        if state != event.state or received - last > self._dedup_window:
            return None
        self._fingerprints[event.fingerprint] = (state, max(last, received), group)
        self._fingerprints.move_to_end(event.fingerprint)
        return group

    def _settle_pending(self) -> None:
        """Swap the `Event`s of earlier batches for their ids once their batch is settled; let go of those
        never stored.

        Not before: a batch in its transaction already has ids, but a transaction that fails takes them back,
        and its events, stored again after an outage, get others. A note is swapped by the batch whose event
        it holds now: a note is shared (the latest event of a group under a key), so an earlier batch's list
        may hold one that an event of a later, unsettled batch has taken over since.
        """
        pending = self._pending
        if not pending:
            self._unsure.clear()
            return
        now = self._monotonic()
        keep: list[tuple[float, weakref.ref[Batch], list[Event], list[_Seen]]] = []
        unsure: set[int] = set()
        for entry in pending:
            deadline, ref, events, notes = entry
            batch = ref()
            settled = batch is None or batch.settled
            if not settled and now < deadline:
                keep.append(entry)
                unsure.update(map(id, events))
                continue
            mine = set(map(id, events))
            for seen in notes:
                target = seen.event
                if isinstance(target, int) or id(target) not in mine:
                    continue  # settled already, or a later batch's event now: that batch's list has it
                ident = target.id if settled else None
                # 0: never stored (a duplicate, refused, answered 503), or its batch was given up on.
                seen.event = ident if ident is not None else 0
        self._pending = keep
        self._unsure = unsure

    def _evict(self, now: float) -> None:
        for index in self._indexes:
            index.evict(now)
        cutoff = now - self._dedup_window
        fingerprints = self._fingerprints
        while fingerprints:
            _, (_, last, _) = next(iter(fingerprints.items()))
            if last >= cutoff:
                break
            fingerprints.popitem(last=False)

    # --- introspection (tests, bench, API of the state) ----------------------------------------------

    def remembered(self) -> dict[str, int]:
        """Keys remembered per index (for metrics and the memory bench)."""
        return {
            "hosts": len(self.hosts),
            "services": len(self.services),
            "asset_groups": len(self.asset_groups),
            "tags": len(self.tags),
            "patterns": len(self.patterns),
            "dependents": len(self.dependents),
            "templates": len(self.templates),
            "fingerprints": len(self._fingerprints),
        }

    def groups(self) -> dict[uuid.UUID, Group]:
        """Every group still referenced by the state."""
        found: dict[uuid.UUID, Group] = {}
        for index in self._indexes:
            for seen in index.seen():
                found[seen.group.id] = seen.group
        return found


# The score of a (score, seen, reason) item, in C (a Python key function costs a frame per item).
_by_score: Final = itemgetter(0)

# Scores written with two decimals, by hundredths, and a kind's name with it ("time_based 0.75"): the
# trace's text without formatting a float per event. Exact: a value near a tie is formatted (below).
_TWO_PLACES: Final = tuple(f"{n / 100:.2f}" for n in range(101))
_DETAILS: Final = tuple(tuple(f"{name} {text}" for text in _TWO_PLACES) for name in _KINDS)
# How far from a rounding tie (in units of the last place kept) a value must be for ``int(x + 0.5)`` to
# round as ``round`` and ``format`` do (they round the exact binary value, half to even).
_NOT_NEAR: Final = 1e-6
_FAR: Final = 1.0 - _NOT_NEAR


def _describe(root: Event | int) -> str:
    if isinstance(root, Event):
        return f"{root.host or root.service or '?'}: {root.title[:80]}"
    return f"event {root}" if root else "an event not stored"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes >= 60 and minutes % 60 == 0:
        hours = int(minutes // 60)
        return "1 hour" if hours == 1 else f"{hours} hours"
    return f"{minutes:g} minutes"

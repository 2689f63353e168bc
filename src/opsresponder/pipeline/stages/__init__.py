"""The pipeline stages, and `build_stages`: the one place the configured list is made.

Every stage implements `pipeline.stage.Stage`: a ``name`` and ``async def run(batch)`` over the whole
batch, awaiting any I/O once per batch. ``pipeline.stages`` in the configuration names them in order;
`build_stages` refuses an unknown name with an error naming that key, at ``check-config`` and at start.
The order of service-spec.md's pipeline:

1. `normalize` - defaults, trimming, fingerprint, text PostgreSQL can store.
2. `enrich` - the asset inventory and asset service write ``metadata.asset`` (`pipeline.enrich`).
3. `noise` - silences and flapping mark events suppressed (`pipeline.noise`); dedup happens atomically
   in the store's transaction (see `store.events`).
   `patterns` - each title's message template in ``metadata.pattern`` (`pipeline.patterns`).
4. `correlate` - the correlation engine (`pipeline.correlation`): an event joins the best recent group or
   opens its own; its state is rebuilt from `StageDeps.correlation_history` at the first batch.
5. `score` - ``event.score`` 0-100 and ``metadata.score_factors`` (`pipeline.scoring`).
6. `rules` - trigger rules evaluated (`pipeline.rules`): windows, thresholds, groups, cooldowns, limits,
   absence deadlines; firings handed to the store under `rules.evaluation.FIRINGS`.
7. store - `store.events.EventRepository.store_batch`, called by the worker, one transaction per batch;
   its batch writers (`store.writers.BatchWriter`) add their rows from the `Batch` in that transaction.
8. notify - the worker's ``on_committed`` callbacks, after commit.

A new stage is a class here and one entry in `_FACTORIES`; what it needs to be built comes through
`StageDeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import httpx
from prometheus_client import CollectorRegistry

from opsresponder.config import Settings
from opsresponder.core.clock import Clock
from opsresponder.core.errors import ConfigError
from opsresponder.core.severity import Severity
from opsresponder.pipeline.correlation.history import CorrelationHistory, NoHistory
from opsresponder.pipeline.enrich import Enrich, build_enrich
from opsresponder.pipeline.noise import Noise, NoSilences, SilenceSource
from opsresponder.pipeline.noise.metrics import NoiseMetrics
from opsresponder.pipeline.patterns import NoPatterns, PatternMetrics, Patterns, PatternSource
from opsresponder.pipeline.rules import RuleBook, RuleEngine, RuleMetrics, Rules
from opsresponder.pipeline.scoring import Score
from opsresponder.pipeline.stage import Stage
from opsresponder.pipeline.stages.correlate import Correlate, OwnGroups, correlate
from opsresponder.pipeline.stages.normalize import Normalize, normalize
from opsresponder.rules.evaluation import NoRules, RuleSource
from opsresponder.state.base import StateBackend

__all__ = [
    "Correlate",
    "Enrich",
    "Noise",
    "Normalize",
    "OwnGroups",
    "Patterns",
    "Score",
    "StageDeps",
    "build_stages",
    "correlate",
    "normalize",
]


@dataclass(frozen=True, slots=True)
class StageDeps:
    """What a stage may be built from; the composition root fills it, a stage takes what it uses.

    Attributes:
        silences: where `noise` reads silences (the store's repository in the service).
        patterns: where `patterns` reads the templates known at start (the store's repository).
        registry: where stages register their metrics.
        http_transport: what `enrich` reaches the asset service through (the outbound allowlist's
            guarded transport in the service; None: httpx's own).
        correlation_history: the stored events `correlate` rebuilds its state from (the store's
            `CorrelationRepository` in the service).
        rules: where `rules` reads the trigger rules (the rules repository, or ``rules.file``).
    """

    settings: Settings
    state: StateBackend
    clock: Clock
    silences: SilenceSource = field(default_factory=NoSilences)
    patterns: PatternSource = field(default_factory=NoPatterns)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    http_transport: httpx.AsyncBaseTransport | None = None
    correlation_history: CorrelationHistory = field(default_factory=NoHistory)
    rules: RuleSource = field(default_factory=NoRules)


_FACTORIES: Final[Mapping[str, Callable[[StageDeps], Stage]]] = {
    "normalize": lambda _: Normalize(),
    "enrich": lambda d: build_enrich(d.settings.enrichment, d.registry, d.http_transport),
    "noise": lambda d: Noise(d.silences, d.settings.noise, d.clock, NoiseMetrics(d.registry)),
    "patterns": lambda d: Patterns(d.settings.patterns, d.patterns, PatternMetrics(d.registry)),
    "correlate": lambda d: (
        OwnGroups()
        if not d.settings.correlation.enabled
        else Correlate(
            d.settings.correlation,
            d.correlation_history,
            dedup_window_seconds=d.settings.pipeline.dedup_window_seconds,
            clock=d.clock,
        )
    ),
    "score": lambda d: Score(d.settings.scoring, trace=d.settings.pipeline.trace),
    "rules": lambda d: _rules_stage(d),
}


def _rules_stage(deps: StageDeps) -> Rules:
    config = deps.settings.rules
    metrics = RuleMetrics.shared(deps.registry)
    engine = RuleEngine(deps.state, min_severity=Severity(config.min_severity))
    book = RuleBook(
        deps.rules,
        engine,
        deps.clock,
        config.reload_seconds,
        on_failure=metrics.failures.labels("reload").inc,
    )
    return Rules(book, deps.clock, metrics)


# The store needs what these set on every event: a fingerprint (dedup) and a correlation id.
_REQUIRED: Final = ("normalize", "correlate")


def build_stages(deps: StageDeps) -> list[Stage]:
    """The stages named by ``pipeline.stages``, built in that order. Does no I/O.

    Raises:
        ConfigError: a name is unknown or given twice, or a stage the store needs is missing; the
            message names ``pipeline.stages``.
    """
    names = deps.settings.pipeline.stages
    for name in names:
        if name not in _FACTORIES:
            known = ", ".join(sorted(_FACTORIES))
            raise ConfigError(
                f"invalid configuration: pipeline.stages: unknown stage {name!r} (known: {known})"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        # One name, one metrics label and one log name: a stage listed twice would blur both.
        raise ConfigError(f"invalid configuration: pipeline.stages: {', '.join(repeated)} listed twice")
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        raise ConfigError(
            f"invalid configuration: pipeline.stages must include {', '.join(missing)}: the store needs "
            "the fingerprint and correlation id they set"
        )
    return [_FACTORIES[name](deps) for name in names]

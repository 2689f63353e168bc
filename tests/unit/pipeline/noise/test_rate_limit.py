"""Per-source rate limits: the token bucket alone, and in the noise stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from opsresponder.config import NoiseConfig, RateLimitConfig, load_settings
from opsresponder.core.batch import Batch
from opsresponder.pipeline.noise import Noise
from opsresponder.pipeline.noise.metrics import NoiseMetrics
from opsresponder.pipeline.noise.rate_limit import SourceRateLimiter
from tests.factories import make_event
from tests.unit.pipeline.noise.test_stage import Clock, Source, db_silence, suppressed


def test_a_minute_worth_at_once_then_the_refill_rate() -> None:
    limiter = SourceRateLimiter(60, {}, max_sources=10)
    assert all(limiter.allow("app", 0.0) for _ in range(60))
    assert not limiter.allow("app", 0.0)
    assert not limiter.allow("app", 0.5)  # half a token back: not enough
    assert limiter.allow("app", 1.0)  # one per second refills
    assert not limiter.allow("app", 1.0)
    assert all(limiter.allow("app", 1000.0) for _ in range(60))  # refilled to the burst, no further
    assert not limiter.allow("app", 1000.0)


def test_named_sources_override_the_default_and_null_exempts() -> None:
    limiter = SourceRateLimiter(None, {"noisy": 2, "trusted": None}, max_sources=10)
    assert limiter.enabled
    assert [limiter.allow("noisy", 0.0) for _ in range(3)] == [True, True, False]
    assert all(limiter.allow("other", 0.0) for _ in range(1000))  # no default: unlimited
    limiter = SourceRateLimiter(1, {"trusted": None}, max_sources=10)
    assert all(limiter.allow("trusted", 0.0) for _ in range(1000))
    assert [limiter.allow("other", 0.0) for _ in range(2)] == [True, False]
    assert not SourceRateLimiter(None, {"a": None}, max_sources=10).enabled


def test_the_table_is_bounded_and_forgets_the_least_recently_seen() -> None:
    limiter = SourceRateLimiter(1, {}, max_sources=2)
    assert limiter.allow("a", 0.0) and limiter.allow("b", 0.0)
    assert not limiter.allow("a", 0.0)  # a is now the most recent
    assert limiter.allow("c", 0.0)  # evicts b, the least recently seen
    assert limiter.allow("b", 0.0)  # b starts again with a full bucket
    assert len(limiter._buckets) == 2


def test_the_limits_come_from_config_and_the_environment() -> None:
    settings = load_settings(
        None,
        {
            "OPSRESPONDER_NOISE__RATE_LIMIT__DEFAULT_PER_MINUTE": "600",
            "OPSRESPONDER_NOISE__RATE_LIMIT__SOURCES": '{"noisy-app": 60, "nagios": null}',
        },
    )
    assert settings.noise.rate_limit == RateLimitConfig(
        default_per_minute=600, sources={"noisy-app": 60, "nagios": None}
    )
    assert load_settings(None, {}).noise.rate_limit.default_per_minute is None


async def test_the_stage_marks_events_over_the_limit_and_spares_silenced_ones() -> None:
    registry = CollectorRegistry()
    ticks = 0.0
    config = NoiseConfig(rate_limit=RateLimitConfig(sources={"noisy": 2}))
    noise = Noise(Source(db_silence()), config, Clock(), NoiseMetrics(registry), monotonic=lambda: ticks)
    # The silenced event (host db-1) does not take from the budget; the other source is not limited.
    batch = Batch(
        [
            make_event(source="noisy", host="db-1", fingerprint="s"),
            *(make_event(source="noisy", host=f"h{i}", fingerprint=f"n{i}") for i in range(4)),
            make_event(source="quiet", host="q", fingerprint="q"),
        ]
    )
    await noise.run(batch)
    reasons = [e.suppressed_reason for e in batch.events]
    assert reasons == ["silenced:1", None, None, "rate_limited", "rate_limited", None]
    assert suppressed(registry, "rate_limited") == 2
    assert [t.detail for t in batch.trace if t.detail.startswith("rate_limited")] == [
        "rate_limited: source 'noisy' over its limit"
    ] * 2
    ticks = 30.0  # half a minute: one more of the two per minute
    later = Batch([make_event(source="noisy", host=f"l{i}", fingerprint=f"l{i}") for i in range(2)])
    await noise.run(later)
    assert [e.suppressed_reason for e in later.events] == [None, "rate_limited"]


def test_a_refund_gives_back_one_token_up_to_the_bucket_size() -> None:
    limiter = SourceRateLimiter(2, {"free": None}, max_sources=10)
    assert limiter.allow("s", 0.0) and limiter.allow("s", 0.0) and not limiter.allow("s", 0.0)
    limiter.refund("s")
    assert limiter.allow("s", 0.0) and not limiter.allow("s", 0.0)
    for _ in range(5):
        limiter.refund("s")  # never beyond the bucket's size
    assert limiter.allow("s", 0.0) and limiter.allow("s", 0.0) and not limiter.allow("s", 0.0)
    limiter.refund("unknown")
    limiter.refund("free")  # no bucket: nothing to give back
    assert limiter.allow("unknown", 0.0)

"""Per-source rate limits: a token bucket per event source, refilled continuously.

A source may send `per_minute` events in any minute, in a burst or spread out; beyond that its events are
stored suppressed (``rate_limited``) until the bucket refills. The buckets live in this process: with
several replicas each limits what it receives. At most ``max_sources`` buckets are kept, the least
recently used forgotten first (a forgotten source starts again with a full bucket), so a sender that
invents source names cannot grow the table without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class SourceRateLimiter:
    """Whether one more event of a source fits its limit now.

    Args:
        default_per_minute: every source's limit, or None for no limit on sources not named in `per_source`.
        per_source: limits of named sources (exact ``source``), overriding the default; None means unlimited.
        max_sources: buckets kept at most.
    """

    def __init__(
        self,
        default_per_minute: int | None,
        per_source: Mapping[str, int | None],
        max_sources: int,
    ) -> None:
        self._default = default_per_minute
        self._per_source = dict(per_source)
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._default is not None or any(v is not None for v in self._per_source.values())

    def allow(self, source: str, now: float) -> bool:
        """Take one token from `source`'s bucket at `now` (monotonic seconds); False when it is empty."""
        limit = self._per_source.get(source, self._default)
        if limit is None:
            return True
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = _Bucket(float(limit), now)
            if len(self._buckets) > self._max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
            # Refill for the time passed, up to a minute's worth (the burst a source may send at once).
            bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.at) * limit / 60.0)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def refund(self, source: str) -> None:
        """Give back a token `allow` took for an event that was then not stored (up to the bucket's size;
        a bucket forgotten since starts full anyway)."""
        limit = self._per_source.get(source, self._default)
        bucket = self._buckets.get(source)
        if limit is not None and bucket is not None:
            bucket.tokens = min(float(limit), bucket.tokens + 1.0)

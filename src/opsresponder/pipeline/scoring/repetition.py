"""How often a fingerprint arrived before: the input of the score's repetition factor.

What is known when an event is scored: the stages run before the store, so an event does not know yet
whether the store will fold it into an existing row as a duplicate. This counter remembers, per
fingerprint, how many events arrived in a run where no gap between two arrivals exceeded ``window`` (a
problem that keeps coming back keeps counting; one quiet for a whole window starts again at 0). Duplicates
count too: they are arrivals. Per process, like flapping: with several replicas each counts what it sees.
Memory is bounded by ``max_fingerprints``, the least recently seen forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict


class RepetitionCounter:
    """`observe` records one arrival and says how many came before it in the current run."""

    def __init__(self, window_seconds: float, max_fingerprints: int) -> None:
        self._window = window_seconds
        self._max = max_fingerprints
        # fingerprint -> (earlier arrivals in the run, last arrival): a tuple, replaced at each arrival,
        # rather than an object with an __init__ of its own per new fingerprint (most are new).
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def observe(self, fingerprint: str, now: float) -> int:
        """Record an arrival of `fingerprint` at `now` (monotonic seconds); returns the earlier ones."""
        seen = self._seen
        known = seen.get(fingerprint)
        if known is None:
            seen[fingerprint] = (0, now)
            if len(seen) > self._max:
                seen.popitem(last=False)
            return 0
        seen.move_to_end(fingerprint)
        count, last = known
        count = 0 if now - last > self._window else count + 1
        seen[fingerprint] = (count, now)
        return count

"""Processing stages, in the order of service-spec.md's pipeline.

Each stage is a plain function over the whole batch (CPU work, no awaiting per event):

1. `normalize` - defaults, trimming, fingerprint, text PostgreSQL can store.
2. enrich - asset inventory (a later issue).
3. filter_noise - dedup happens atomically in the store's transaction (see `store.events`); flapping,
   silences and info policy come with a later issue.
4. `correlate` - until correlation exists, every new event opens its own correlation.
5. score, 6. evaluate_rules - later issues.
7. store - `store.events.EventRepository.store_batch`, called by the worker, one transaction per batch.
8. notify - the worker's ``on_committed`` callbacks, after commit.
"""

from opsresponder.pipeline.stages.correlate import correlate
from opsresponder.pipeline.stages.normalize import normalize

__all__ = ["correlate", "normalize"]

"""Stage 4: correlation. Until the correlation engine exists, each event opens its own correlation.

A duplicate still reports the correlation of the event it repeats: the store returns that one.
"""

from __future__ import annotations

import os
from typing import Final

from asyncpg.pgproto.pgproto import UUID

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event

# RFC 4122 version 4: the high nibble of byte 6 is 4, the two high bits of byte 8 are 10.
_VERSION_4: Final = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT_RFC4122: Final = bytes((b & 0x3F) | 0x80 for b in range(256))


class Correlate:
    """`correlate` as a pipeline stage (CPU only: it never awaits)."""

    __slots__ = ()
    name: Final = "correlate"

    async def run(self, batch: Batch) -> None:
        correlate(batch.events)


def correlate(events: list[Event]) -> None:
    missing = [e for e in events if e.correlation_id is None]
    if not missing:
        return
    # One urandom call per batch, version and variant bits set for all ids at once (two C-level passes),
    # and asyncpg's UUID, a uuid.UUID built from bytes in C: uuid.UUID(bytes=..., version=4) per event
    # was 5% of the pipeline's CPU, and asyncpg writes its own UUID type without converting it.
    entropy = bytearray(os.urandom(16 * len(missing)))
    entropy[6::16] = entropy[6::16].translate(_VERSION_4)
    entropy[8::16] = entropy[8::16].translate(_VARIANT_RFC4122)
    for i, event in enumerate(missing):
        event.correlation_id = UUID(bytes(entropy[16 * i : 16 * i + 16]))

"""Fast version-4 UUIDs for new correlation groups."""

from __future__ import annotations

import os
import uuid
from typing import Final

from asyncpg.pgproto.pgproto import UUID

# RFC 4122 version 4: the high nibble of byte 6 is 4, the two high bits of byte 8 are 10.
_VERSION_4: Final = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT_RFC4122: Final = bytes((b & 0x3F) | 0x80 for b in range(256))


def new_uuids(count: int) -> list[uuid.UUID]:
    """`count` random version-4 UUIDs.

    One urandom call for all, version and variant bits set for all ids at once (two C-level passes), and
    asyncpg's UUID, a uuid.UUID built from bytes in C: uuid.UUID(bytes=..., version=4) per event was 5% of
    the pipeline's CPU, and asyncpg writes its own UUID type without converting it.
    """
    if count <= 0:
        return []
    entropy = bytearray(os.urandom(16 * count))
    entropy[6::16] = entropy[6::16].translate(_VERSION_4)
    entropy[8::16] = entropy[8::16].translate(_VARIANT_RFC4122)
    return [UUID(bytes(entropy[16 * i : 16 * i + 16])) for i in range(count)]


class UuidSupply:
    """Hands out ids from blocks made by `new_uuids`; `reserve` before a batch sizes the next block."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: list[uuid.UUID] = []

    def reserve(self, count: int) -> None:
        if len(self._ids) < count:
            self._ids = new_uuids(count - len(self._ids) + 16) + self._ids

    def __call__(self) -> uuid.UUID:
        if not self._ids:
            self._ids = new_uuids(64)
        return self._ids.pop()

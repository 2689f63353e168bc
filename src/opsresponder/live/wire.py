"""The wire format of the live events channel: what the publisher sends and every stream hub reads.

One message per committed batch: ``{"p": publisher, "s": sequence, "e": [event, ...]}`` (`StreamMessage`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from opsresponder.core.event import Event

EVENTS_CHANNEL: Final = "events"

# The fields of Event a subscriber sees: all but ``raw``, which can be large and is available per event
# through GET /api/v1/events/{id}. Derived from Event so that a new field is published without a change here.
_PUBLIC_FIELDS: Final = tuple(f for f in msgspec.structs.fields(Event) if f.name != "raw")
PublicEvent: Final[type[msgspec.Struct]] = msgspec.defstruct(
    "PublicEvent", [(f.name, f.type) for f in _PUBLIC_FIELDS]
)
_public_values = operator.attrgetter(*(f.name for f in _PUBLIC_FIELDS))
_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    """The JSON of `event` as stream clients receive it: every field except ``raw``, on one line.

    The live path and the replay from the database both use this, so a resumed client sees the same shape.
    """
    values: tuple[Any, ...] = _public_values(event)
    return _encoder.encode(PublicEvent(*values))


class StreamMessage(msgspec.Struct, frozen=True):
    """One published batch: ``{"p": publisher, "s": sequence, "e": [event, ...]}``.

    ``s`` counts every batch a publisher built, including those it dropped, from 1 upward; a subscriber
    that sees ``s`` jump for a publisher ``p`` knows it missed events. ``p`` is random per process start.
    Events are kept as raw JSON so subscribers can forward them without re-encoding.
    """

    p: str
    s: int
    e: list[msgspec.Raw]


def build_message(publisher: str, sequence: int, encoded_events: Sequence[bytes]) -> bytes:
    """The wire form of `StreamMessage` from already-encoded events (no decode and re-encode)."""
    head = _encoder.encode(publisher)
    return b'{"p":%b,"s":%d,"e":[%b]}' % (head, sequence, b",".join(encoded_events))


_message_decoder = msgspec.json.Decoder(StreamMessage)


def decode_message(data: bytes) -> StreamMessage:
    """Parse a published batch.

    Raises:
        msgspec.DecodeError: `data` is not a `StreamMessage` (a foreign publisher on the channel).
    """
    return _message_decoder.decode(data)

"""RFC 6587 framing for syslog over a byte stream (TCP and TLS), detected frame by frame.

A frame that starts with a non-zero digit is octet-counted (``MSG-LEN SP MSG``); anything else is
non-transparent framing, terminated by LF or NUL (a CR before the LF is dropped, so CRLF works too). Senders
switch between the two on one connection (rsyslog after a reconnect, relays that merge streams), so the choice
is made again at the start of every frame.

The framer is a pure state machine over bytes: no I/O, no clock, so it can be fed one byte at a time in tests
and one socket read at a time in production, with the same output.
"""

from __future__ import annotations

import enum
import re
from typing import Final, NamedTuple

MAX_COUNT_DIGITS: Final = 10
"""An octet count longer than this is not a count: ten digits already announce a 9.3 GiB frame. Such a
prefix (or digits not followed by SP) starts an LF-framed frame instead, so no text that happens to begin with
digits can make the framer swallow the rest of the stream."""

_SP: Final = 0x20
_CR: Final = 0x0D
_LF: Final = 0x0A
_NUL: Final = 0x00
_DIGIT_0: Final = 0x30
_DIGIT_1: Final = 0x31
_DIGIT_9: Final = 0x39
_TERMINATOR: Final = re.compile(b"[\n\x00]")
_COUNT_PREFIX: Final = re.compile(rb"([1-9][0-9]{0,%d}) " % (MAX_COUNT_DIGITS - 1))


def strip_octet_count(datagram: bytes) -> bytes:
    """Remove an RFC 6587 octet count a sender put in front of a datagram, when it counts the rest exactly.

    RFC 5426 has no framing on UDP, but some senders frame anyway (syslog-ng's ``loggen -P`` does). Only a
    count equal to the length of what follows is removed, so a message that merely starts with a number
    stays as it is.
    """
    match = _COUNT_PREFIX.match(datagram)
    if match is not None and int(match.group(1)) == len(datagram) - match.end():
        return datagram[match.end() :]
    return datagram


class Frame(NamedTuple):
    """One message cut out of the stream.

    Attributes:
        data: the message bytes, without the octet count or the terminator; never longer than the framer's
            ``max_message_bytes``.
        truncated: the frame was longer than ``max_message_bytes`` (``data`` is its beginning and the rest
            was skipped), or the connection ended in the middle of an octet-counted frame.
        octet_counted: the frame used octet counting rather than a terminator.
    """

    data: bytes
    truncated: bool = False
    octet_counted: bool = False


class _State(enum.Enum):
    START = enum.auto()  # between frames: the next byte decides the framing
    LF_BODY = enum.auto()  # collecting until LF or NUL
    LF_SKIP = enum.auto()  # an oversized LF frame was emitted truncated; discarding up to its terminator
    OCTET_BODY = enum.auto()  # collecting exactly `remaining` bytes
    OCTET_SKIP = enum.auto()  # an oversized counted frame was emitted truncated; discarding `remaining` bytes


class SyslogFramer:
    """Cuts a syslog byte stream into frames; one instance per connection.

    Invariants: every emitted frame's data is at most ``max_message_bytes`` long; memory held between calls
    is bounded by ``max_message_bytes`` plus a couple of bytes, whatever the sender does; empty LF frames
    (blank lines, a stray LF after an octet-counted frame) are skipped, not emitted.

    Raises:
        ValueError: ``max_message_bytes`` is not positive.
    """

    __slots__ = ("_buf", "_max", "_octet_truncated", "_remaining", "_scanned", "_state")

    def __init__(self, max_message_bytes: int) -> None:
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be positive, not {max_message_bytes}")
        self._max = max_message_bytes
        # Bytes of the frame in progress (or of its header), always starting at the frame's first byte.
        self._buf = bytearray()
        self._state = _State.START
        self._remaining = 0
        # How much of an LF frame in progress has already been searched for a terminator, so that feeding
        # a long frame byte by byte stays linear rather than rescanning it on every call.
        self._scanned = 0
        self._octet_truncated = False

    @property
    def max_message_bytes(self) -> int:
        return self._max

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Consume one read from the stream; return the frames it completed, in order."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        max_bytes = self._max
        while pos < end:
            state = self._state
            if state is _State.START:
                first = buf[pos]
                if first in (_LF, _NUL):
                    pos += 1  # an empty frame: blank line or the trailer some senders add after a count
                    continue
                if _DIGIT_1 <= first <= _DIGIT_9:
                    digit_end = pos + 1
                    while (
                        digit_end < end
                        and digit_end - pos <= MAX_COUNT_DIGITS
                        and _DIGIT_0 <= buf[digit_end] <= _DIGIT_9
                    ):
                        digit_end += 1
                    digits = digit_end - pos
                    if digits <= MAX_COUNT_DIGITS:
                        if digit_end == end:
                            break  # the count may continue in the next read
                        if buf[digit_end] == _SP:
                            self._remaining = int(buf[pos:digit_end])
                            self._octet_truncated = self._remaining > max_bytes
                            self._state = _State.OCTET_BODY
                            pos = digit_end + 1
                            continue
                # Not a count (no digit, too many digits, or digits not followed by SP): the digits are
                # the start of an LF-framed message.
                self._state = _State.LF_BODY
                self._scanned = 0
            elif state is _State.LF_BODY:
                # A CR may precede the terminator, so a frame of max bytes plus CR still fits: look at most
                # max + 2 bytes ahead (max content, CR, terminator).
                limit = min(end, pos + max_bytes + 2)
                match = _TERMINATOR.search(buf, pos + self._scanned, limit)
                if match is not None:
                    stop = match.start()
                    if stop > pos and buf[stop - 1] == _CR:
                        stop -= 1
                    if stop > pos:
                        length = stop - pos
                        if length > max_bytes:
                            frames.append(Frame(bytes(buf[pos : pos + max_bytes]), True))
                        else:
                            frames.append(Frame(bytes(buf[pos:stop])))
                    pos = match.end()
                    self._state = _State.START
                elif limit - pos >= max_bytes + 2:
                    frames.append(Frame(bytes(buf[pos : pos + max_bytes]), True))
                    pos = limit
                    self._state = _State.LF_SKIP
                else:
                    self._scanned = limit - pos
                    break
            elif state is _State.LF_SKIP:
                match = _TERMINATOR.search(buf, pos)
                if match is None:
                    pos = end
                else:
                    pos = match.end()
                    self._state = _State.START
            elif state is _State.OCTET_BODY:
                want = min(self._remaining, max_bytes)
                if end - pos < want:
                    break
                frames.append(Frame(bytes(buf[pos : pos + want]), self._octet_truncated, True))
                pos += want
                self._remaining -= want
                self._state = _State.OCTET_SKIP if self._remaining else _State.START
            else:  # OCTET_SKIP
                take = min(self._remaining, end - pos)
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _State.START
        del buf[:pos]
        return frames

    def flush(self) -> list[Frame]:
        """The stream ended: return what is left of a frame in progress, and reset.

        A sender that closes after its last message without a terminator still gets that message delivered.
        What is left of an octet-counted frame is returned marked truncated, since bytes are missing.
        """
        state = self._state
        data = bytes(self._buf[: self._max])
        overlong = len(self._buf) > self._max
        self._buf.clear()
        self._state = _State.START
        self._remaining = 0
        self._scanned = 0
        if state is _State.OCTET_BODY and data:
            return [Frame(data, True, True)]
        if state in (_State.START, _State.LF_BODY):
            if data.endswith(b"\r") and not overlong:
                data = data[:-1]
            if data:
                return [Frame(data, overlong)]
        return []

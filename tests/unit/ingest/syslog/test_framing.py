"""The RFC 6587 framer alone: vectors for every framing rule, and properties over arbitrary chunking."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.ingest.syslog.framing import MAX_COUNT_DIGITS, Frame, SyslogFramer

MAX = 64


def feed_all(framer: SyslogFramer, chunks: Iterable[bytes], *, flush: bool = True) -> list[Frame]:
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
    if flush:
        frames.extend(framer.flush())
    return frames


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def datas(frames: list[Frame]) -> list[bytes]:
    return [f.data for f in frames]


def octet(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


STREAM = octet(b"<13>1 - host app - - - counted") + b"<14>plain line\n" + octet(b"<15>second counted")


def test_octet_counted_frames() -> None:
    frames = SyslogFramer(MAX).feed(octet(b"<13>hello") + octet(b"<14>world"))
    assert frames == [Frame(b"<13>hello", False, True), Frame(b"<14>world", False, True)]


def test_lf_frames_with_lf_nul_and_crlf_terminators() -> None:
    frames = SyslogFramer(MAX).feed(b"<13>one\n<13>two\x00<13>three\r\n")
    assert frames == [Frame(b"<13>one"), Frame(b"<13>two"), Frame(b"<13>three")]


def test_cr_inside_a_message_is_kept() -> None:
    assert datas(SyslogFramer(MAX).feed(b"a\rb\n")) == [b"a\rb"]


def test_blank_lines_and_trailers_after_counted_frames_are_not_frames() -> None:
    frames = SyslogFramer(MAX).feed(b"\n\n\x00" + octet(b"counted") + b"\r\n" + b"\n" + b"x\n")
    assert datas(frames) == [b"counted", b"x"]


def test_several_frames_per_read_with_mixed_framing() -> None:
    frames = SyslogFramer(MAX).feed(STREAM)
    assert frames == [
        Frame(b"<13>1 - host app - - - counted", False, True),
        Frame(b"<14>plain line", False, False),
        Frame(b"<15>second counted", False, True),
    ]


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_frames_split_across_two_reads(split: int) -> None:
    framer = SyslogFramer(MAX)
    frames = framer.feed(STREAM[:split]) + framer.feed(STREAM[split:])
    assert datas(frames) == [b"<13>1 - host app - - - counted", b"<14>plain line", b"<15>second counted"]


def test_byte_by_byte_feeding_gives_the_same_frames() -> None:
    assert feed_all(SyslogFramer(MAX), byte_by_byte(STREAM)) == SyslogFramer(MAX).feed(STREAM)


def test_a_frame_is_only_emitted_once_complete() -> None:
    framer = SyslogFramer(MAX)
    assert framer.feed(b"11 <13>hel") == []
    assert framer.buffered_bytes == len(b"<13>hel")
    assert framer.feed(b"lo w") == [Frame(b"<13>hello w", False, True)]
    assert framer.feed(b"<13>no terminator yet") == []
    assert framer.feed(b"\n") == [Frame(b"<13>no terminator yet")]


def test_oversized_octet_counted_frame_is_truncated_and_skipped_to_its_end() -> None:
    big = b"A" * (MAX * 3)
    frames = feed_all(SyslogFramer(MAX), [octet(big) + octet(b"<13>next")])
    assert frames == [Frame(b"A" * MAX, True, True), Frame(b"<13>next", False, True)]


def test_oversized_octet_counted_frame_fed_byte_by_byte() -> None:
    # The skipped body contains what looks like framing; it must not be taken for frames.
    body = (b"5 evil\n" * 40)[: MAX * 2]
    frames = feed_all(SyslogFramer(MAX), byte_by_byte(octet(body) + b"<13>after\n"))
    assert frames == [Frame(body[:MAX], True, True), Frame(b"<13>after")]


def test_oversized_lf_frame_is_truncated_and_skipped_to_its_terminator() -> None:
    body = b"B" * (MAX * 5)
    for chunks in ([body + b"\n<13>next\n"], byte_by_byte(body + b"\n<13>next\n")):
        frames = feed_all(SyslogFramer(MAX), chunks)
        assert frames == [Frame(b"B" * MAX, True), Frame(b"<13>next")]


def test_frames_of_exactly_max_bytes_are_not_truncated() -> None:
    exact = b"C" * MAX
    frames = SyslogFramer(MAX).feed(exact + b"\r\n" + exact + b"\n" + octet(exact))
    assert frames == [Frame(exact), Frame(exact), Frame(exact, False, True)]


def test_one_byte_over_max_is_truncated() -> None:
    frames = SyslogFramer(MAX).feed(b"D" * (MAX + 1) + b"\n" + octet(b"E" * (MAX + 1)))
    assert frames == [Frame(b"D" * MAX, True), Frame(b"E" * MAX, True, True)]


def test_oversized_frame_memory_stays_bounded() -> None:
    framer = SyslogFramer(MAX)
    framer.feed(b"9999999 ")
    for _ in range(100):
        framer.feed(b"x" * 1000)
        assert framer.buffered_bytes <= MAX + 2
    framer = SyslogFramer(MAX)
    for _ in range(100):
        framer.feed(b"y" * 1000)
        assert framer.buffered_bytes <= MAX + 2


ELEVEN_DIGITS = b"1" * (MAX_COUNT_DIGITS + 1)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(ELEVEN_DIGITS + b" x\n", ELEVEN_DIGITS + b" x", id="too-many-digits"),
        pytest.param(b"12abc\n", b"12abc", id="digits-not-followed-by-sp"),
        pytest.param(b"2024-05-01T10:00:00Z h: m\n", b"2024-05-01T10:00:00Z h: m", id="iso-date"),
        pytest.param(b"0 zero\n", b"0 zero", id="leading-zero"),
        pytest.param(b"123\n", b"123", id="digits-then-lf"),
        pytest.param(b"42\x00", b"42", id="digits-then-nul"),
    ],
)
def test_absurd_or_malformed_counts_are_lf_framed_text(stream: bytes, expected: bytes) -> None:
    for chunks in ([stream], byte_by_byte(stream)):
        assert feed_all(SyslogFramer(MAX), chunks) == [Frame(expected)]


def test_huge_but_plausible_count_is_skipped_not_buffered() -> None:
    framer = SyslogFramer(MAX)
    frames = framer.feed(b"9999999999 " + b"z" * 100)
    assert frames == [Frame(b"z" * MAX, True, True)]
    assert framer.buffered_bytes == 0


def test_flush_returns_an_unterminated_last_line() -> None:
    framer = SyslogFramer(MAX)
    assert framer.feed(b"<13>one\n<13>last without LF\r") == [Frame(b"<13>one")]
    assert framer.flush() == [Frame(b"<13>last without LF")]
    assert framer.flush() == []


def test_flush_marks_an_incomplete_counted_frame_truncated() -> None:
    framer = SyslogFramer(MAX)
    framer.feed(b"30 <13>only part")
    assert framer.flush() == [Frame(b"<13>only part", True, True)]


def test_flush_of_a_bare_count_prefix_keeps_the_digits() -> None:
    framer = SyslogFramer(MAX)
    framer.feed(b"123")
    assert framer.flush() == [Frame(b"123")]


def test_framer_is_reusable_after_flush() -> None:
    framer = SyslogFramer(MAX)
    framer.feed(b"50 partial")
    framer.flush()
    assert framer.feed(octet(b"fresh")) == [Frame(b"fresh", False, True)]


def test_max_message_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SyslogFramer(0)


# Properties

chunked_bytes = st.lists(st.binary(max_size=200), max_size=30)
# Bytes biased towards what matters to the framer: digits, SP, terminators.
framing_alphabet = st.lists(
    st.sampled_from([b"1", b"9", b"0", b" ", b"\n", b"\r", b"\x00", b"x", b"<13>", b"12 ", b"99999 "]),
    max_size=200,
).map(b"".join)


@given(chunks=chunked_bytes, max_bytes=st.integers(min_value=1, max_value=100))
def test_arbitrary_chunks_never_raise_and_frames_never_exceed_max(
    chunks: list[bytes], max_bytes: int
) -> None:
    framer = SyslogFramer(max_bytes)
    for frame in feed_all(framer, chunks):
        assert 0 < len(frame.data) <= max_bytes
    assert framer.buffered_bytes == 0


@given(stream=framing_alphabet, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
@settings(max_examples=300)
def test_output_does_not_depend_on_how_the_stream_is_cut(stream: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    whole = feed_all(SyslogFramer(16), [stream])
    assert feed_all(SyslogFramer(16), chunks) == whole
    assert feed_all(SyslogFramer(16), byte_by_byte(stream)) == whole
    assert all(len(f.data) <= 16 for f in whole)


message = st.binary(min_size=1, max_size=MAX)
lf_message = st.binary(min_size=1, max_size=MAX).filter(
    lambda m: b"\n" not in m and b"\x00" not in m and not m.endswith(b"\r") and not m[:1].isdigit()
)


@given(
    messages=st.lists(st.one_of(message.map(lambda m: (m, True)), lf_message.map(lambda m: (m, False)))),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=20),
)
def test_round_trip_of_framed_messages_split_anywhere(
    messages: list[tuple[bytes, bool]], cuts: list[int]
) -> None:
    stream = b"".join(octet(m) if counted else m + b"\n" for m, counted in messages)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    frames = feed_all(SyslogFramer(MAX), chunks, flush=False)
    assert frames == [Frame(m, False, counted) for m, counted in messages]

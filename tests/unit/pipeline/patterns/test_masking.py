"""Masking: each kind of variable becomes its typed token; masking never raises and is idempotent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.pipeline.patterns.masking import MASK_TOKENS, mask


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Failed password for root from 10.0.0.5 port 4242 ssh2",
         "Failed password for root from <IP> port <NUM> ssh2"),
        ("Receiving block blk_-5623 src: /10.251.75.228:53725", "Receiving block blk_<NUM> src: /<IP>:<NUM>"),
        ("neighbor fe80::1 and ::1 and 2001:db8:0:0:0:0:2:1 up", "neighbor <IP> and <IP> and <IP> up"),
        ("link 00:1a:2b:3c:4d:5e down", "link <MAC> down"),
        ("job 123e4567-e89b-12d3-a456-426614174000 failed", "job <UUID> failed"),
        ("mail to bob@example.com bounced", "mail to <EMAIL> bounced"),
        ("GET https://api.example.com/v1/x?a=1 timed out", "GET <URL> timed out"),
        ("disk /var/lib/postgresql full", "disk <PATH> full"),
        (r"cannot open C:\Windows\system32\x.dll", "cannot open <PATH>"),
        ("CE sym 2, at 0x0b85eee0, mask 0x05", "CE sym <NUM>, at <HEX>, mask <HEX>"),
        ("container 3f2a9c1b7d0e exited", "container <HEX> exited"),
        ("took 12.5 ms at 07:07:00", "took <NUM> ms at <TIME>"),
        ("generating core.2275", "generating core.<NUM>"),
        ("x=-5 y=+3", "x=<NUM> y=+<NUM>"),
    ],
)  # fmt: skip
def test_each_kind_of_variable_becomes_its_token(text: str, masked: str) -> None:
    assert mask(text) == masked


@pytest.mark.parametrize(
    "text",
    ["Send worker leaving thread", "ssh2 jk2_init() test9", "std::vector<int>", "deadbeef cafe", "and/or"],
)
def test_words_are_left_alone(text: str) -> None:
    assert mask(text) == text


def test_a_mask_token_is_not_masked_again() -> None:
    for token in MASK_TOKENS:
        assert mask(f"a {token} b") == f"a {token} b"


_LOGGY = st.text(
    alphabet=st.sampled_from(list("0123456789abcdefABCDEF:./-_@\\<>*()[]=, xyzXYZ\t\n\u00e9\u4e2d\x00")),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=200) | _LOGGY)
def test_masking_never_raises_and_is_idempotent(text: str) -> None:
    once = mask(text)
    assert mask(once) == once


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.sampled_from(["disk", "full", "on", "host", "error", "retry"]), min_size=1, max_size=6),
    numbers=st.lists(st.integers(-(10**12), 10**12), min_size=2, max_size=2),
)
def test_messages_differing_only_in_numbers_mask_alike(words: list[str], numbers: list[int]) -> None:
    text = " ".join(words)
    assert mask(f"{text} {numbers[0]}") == mask(f"{text} {numbers[1]}") == f"{text} <NUM>"

"""Signatures: the documented header format, checked against an independent computation."""

from __future__ import annotations

import hashlib
import hmac

from opsresponder.outbound.signing import signature, signature_header, verify_signature

SECRET = "whsec_test_0123456789"
BODY = b'{"subscription_id":1,"events":[]}'
TIMESTAMP = 1700000000
# Computed with OpenSSL, not with our code (the vector of docs/subscriptions.md):
#   printf '1700000000.{"subscription_id":1,"events":[]}' | openssl dgst -sha256 -hmac whsec_test_0123456789
OPENSSL_HEX = "08b5ec9b1fdf688f80b0488eca96f41c16d2846c45eabb055b4bef4cf37d9c40"


def test_the_signature_matches_openssl() -> None:
    assert signature(SECRET, TIMESTAMP, BODY) == OPENSSL_HEX
    assert signature_header(SECRET, TIMESTAMP, BODY) == f"t={TIMESTAMP},v1={OPENSSL_HEX}"


def test_the_documented_receiver_check_accepts_our_header() -> None:
    # The receiver example of docs/subscriptions.md, with the standard library only.
    header = signature_header(SECRET, TIMESTAMP, BODY)
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])


def test_verify_accepts_a_fresh_signature_and_refuses_tampering() -> None:
    header = signature_header(SECRET, TIMESTAMP, BODY)
    assert verify_signature(SECRET, header, BODY, now=TIMESTAMP + 10)
    assert not verify_signature(SECRET, header, BODY + b" ", now=TIMESTAMP)
    assert not verify_signature("another-secret-value", header, BODY, now=TIMESTAMP)
    tampered_time = header.replace(f"t={TIMESTAMP}", f"t={TIMESTAMP + 1}")
    assert not verify_signature(SECRET, tampered_time, BODY, now=TIMESTAMP)


def test_verify_refuses_an_old_or_future_timestamp() -> None:
    header = signature_header(SECRET, TIMESTAMP, BODY)
    assert not verify_signature(SECRET, header, BODY, now=TIMESTAMP + 301)
    assert not verify_signature(SECRET, header, BODY, now=TIMESTAMP - 301)
    assert verify_signature(SECRET, header, BODY, now=TIMESTAMP + 301, tolerance_seconds=600)


def test_verify_accepts_any_of_several_v1_entries_and_refuses_malformed_headers() -> None:
    good = signature(SECRET, TIMESTAMP, BODY)
    assert verify_signature(SECRET, f"t={TIMESTAMP},v1={'0' * 64},v1={good}", BODY, now=TIMESTAMP)
    for header in ("", "v1=" + good, f"t=abc,v1={good}", f"t={TIMESTAMP}", f"t={TIMESTAMP},v0={good}"):
        assert not verify_signature(SECRET, header, BODY, now=TIMESTAMP), header

"""Templates for pattern_based correlation: the masked title fallback and template similarity."""

from __future__ import annotations

from opsresponder.pipeline.correlation.templates import TemplateIndex, mask_text, pattern_of, similarity


def test_masking_replaces_what_varies_between_occurrences() -> None:
    assert (
        mask_text(
            "Connection to 10.0.3.17:5432 failed after 3000 ms (req 4f1c9e2a-7b0d-4c1e-9a3f-2b8c1d0e5f6a)"
        )
        == "Connection to <IP> failed after <NUM> ms (req <UUID>)"
    )
    assert mask_text("open /var/lib/pg/data/base/16384 failed: 0xdeadbeef") == "open <PATH> failed: <HEX>"
    assert mask_text("  many   spaces\there ") == "many spaces here"


def test_the_pattern_stage_wins_and_the_fallback_key_cannot_collide_with_an_id() -> None:
    meta = {"pattern": {"id": "abc123", "template": "disk <NUM>% full"}}
    assert pattern_of(meta, "disk 93% full") == ("abc123", "disk <NUM>% full")
    key, template = pattern_of({}, "disk 93% full")
    assert template == "disk <NUM>% full" and key == "title:disk <NUM>% full"
    assert pattern_of({"pattern": "not a dict"}, "x 1")[0] == "title:x <NUM>"


def test_similarity_is_the_share_of_equal_tokens_of_same_length_templates() -> None:
    assert similarity(("a", "b", "c", "d", "e"), ("a", "b", "c", "d", "x")) == 0.8
    assert similarity(("a", "b"), ("a", "b", "c")) == 0.0
    assert similarity((), ()) == 0.0


def test_the_index_links_similar_templates_both_ways_and_stays_bounded() -> None:
    index = TemplateIndex(threshold=0.8, max_templates=3)
    assert index.similar("t1", "user <NUM> login failed from <IP>") == {}
    assert index.similar("t2", "user <NUM> login denied from <IP>") == {"t1": 5 / 6}
    assert index.similar("t1", "ignored once known") == {"t2": 5 / 6}
    assert index.similar("t3", "something else entirely different here") == {}
    index.similar("t4", "one more template")
    assert len(index) == 3  # t1, the oldest, was forgotten with its links
    assert index.similar("t2", "user <NUM> login denied from <IP>") == {}


def test_a_family_of_near_identical_templates_keeps_only_the_closest_links() -> None:
    index = TemplateIndex(threshold=0.5, max_templates=100, max_similar=3)
    for n in range(10):
        index.similar(f"t{n}", f"a b c d e f g h i {n}")
    assert len(index.similar("t0", "")) == 3
    assert len(index.similar("new", "a b c d e f g h i z")) == 3

"""TemplateMiner: grouping, generalisation, stable ids, the LRU cap, seeding from stored templates."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.config import PatternsConfig
from opsresponder.pipeline.patterns.miner import TemplateMiner, template_id


def miner(**overrides: object) -> TemplateMiner:
    config = PatternsConfig(**overrides)  # type: ignore[arg-type]
    return TemplateMiner.from_config(config)


def test_messages_differing_in_masked_values_share_a_template_from_the_first() -> None:
    m = miner()
    a = m.add("Failed password for root from 10.0.0.5 port 4242 ssh2")
    b = m.add("Failed password for root from 192.168.1.9 port 22 ssh2")
    assert a is b
    assert a.text == "Failed password for root from <IP> port <NUM> ssh2"
    assert a.id == template_id(a.text) and len(a.id) == 16
    assert a.size == 2


def test_a_variable_word_becomes_a_wildcard_and_the_id_follows_the_text() -> None:
    m = miner()
    first = m.add("Invalid user webmaster from 10.0.0.1")
    first_id = first.id
    second = m.add("Invalid user chen from 10.0.0.2")
    assert second is first
    assert first.text == "Invalid user <*> from <IP>"
    assert first.id == template_id("Invalid user <*> from <IP>") != first_id


def test_different_shapes_are_different_templates() -> None:
    m = miner()
    texts = {
        m.add(t).text
        for t in (
            "Connection closed by 10.0.0.1 [preauth]",
            "Received disconnect from 10.0.0.1: 11: Bye Bye [preauth]",
            "pam_unix(sshd:auth): check pass; user unknown",
            "Disk /var full on db-1",
        )
    }
    assert len(texts) == 4 and len(m) == 4


def test_the_same_template_text_has_the_same_id_in_another_process() -> None:
    one, two = miner(), miner()
    for message in ("Invalid user a from 10.0.0.1", "Invalid user b from 10.0.0.2"):
        one.add(message)
    for message in ("Invalid user zed from 10.9.9.9", "Invalid user q from 10.1.1.1"):
        two.add(message)
    assert one.templates()[0].id == two.templates()[0].id


def test_the_cap_evicts_the_least_recently_matched_template() -> None:
    m = miner(max_templates=3)
    a = m.add("alpha happened")
    m.add("beta happened twice now")
    m.add("gamma went wrong here again today")
    m.add("alpha happened")  # alpha is now the most recently matched
    m.add("delta is a new shape of five words x")
    assert len(m) == 3 and m.evicted == 1
    assert {t.text for t in m.templates()} == {
        "alpha happened",
        "gamma went wrong here again today",
        "delta is a new shape of five words x",
    }
    assert m.add("alpha happened") is a
    # An evicted shape that comes back starts again, with the same text and so the same id.
    back = m.add("beta happened twice now")
    assert back.text == "beta happened twice now" and back.size == 1


def test_a_seeded_template_gives_its_id_to_the_first_matching_message() -> None:
    m = miner()
    seeded = m.seed("Invalid user <*> from <IP>")
    assert m.add("Invalid user oracle from 10.0.0.3") is seeded
    assert seeded.text == "Invalid user <*> from <IP>"
    assert m.seed("Invalid user <*> from <IP>") is seeded


def test_long_messages_are_cut_and_empty_ones_have_a_template() -> None:
    m = miner(max_title_chars=20)
    assert m.add("x" * 10 + " " + "y" * 100).text == "x" * 10 + " " + "y" * 9
    empty = m.add("")
    assert empty.text == "" and m.add("   ") is empty


_WORDS = st.sampled_from(["disk", "full", "on", "host", "db-1", "10.0.0.1", "user", "admin", "42", "/var"])
_TITLES = st.lists(_WORDS, min_size=1, max_size=6).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(titles=st.lists(_TITLES, min_size=1, max_size=30))
def test_ids_are_the_same_in_every_process_fed_the_same_titles(titles: list[str]) -> None:
    # A restart, or another replica, fed the same titles in the same order gives every title the same id:
    # ids hold no process state (no counter, no random), only the template text.
    first, second = miner(), miner()
    assert [first.add(t).id for t in titles] == [second.add(t).id for t in titles]


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(st.text(max_size=60), min_size=1, max_size=40))
def test_adding_never_raises_and_every_message_matches_its_template(messages: list[str]) -> None:
    m = miner(max_templates=8)
    for message in messages:
        template = m.add(message)
        assert template.id == template_id(template.text)
    assert len(m) <= 8


def _nodes(node: dict[Any, Any]) -> int:
    return 1 + sum(_nodes(child) for child in node.values() if isinstance(child, dict))


def _word(i: int) -> str:
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters += chr(97 + r)
        if i == 0:
            return letters


def test_evictions_prune_the_tree_so_memory_stays_bounded() -> None:
    m = miner(max_templates=10)
    for i in range(2000):  # 2,000 shapes that share no routing word: each opens branches of its own
        words = [f"{_word(i)}x", f"{_word(i)}y", "failed", "on", "host"][: 2 + i % 4]
        m.add(" ".join(words))
    assert len(m) == 10 and m.evicted == 1990
    # The root, and per template at most its length node and two routing nodes.
    assert _nodes(m._root) <= 1 + 10 * 3

"""The asset inventory: parsing (errors name the entry and field), matching and its precedence, caching."""

from __future__ import annotations

import contextlib
import fnmatch
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.pipeline.enrich.inventory import (
    Inventory,
    InventoryError,
    asset_entry,
    parse_inventory,
)
from opsresponder.pipeline.enrich.source import read_inventory

INVENTORY = """
assets:
  db-1.example.com:
    criticality: critical
    environment: production
    owner: alice
    team: dba
    tags: [database, database, pg]
    group: db
    depends_on: [san-1]
  "web-*.example.com": {criticality: high, group: web}
  "*.example.com": {criticality: low}
  "WEB-1.EXAMPLE.COM": {criticality: medium, owner: bob}
  "10.0.0.0/8": {criticality: low, group: dc}
  "10.1.0.0/16": {criticality: high, group: dc-1}
  "10.1.2.3": {criticality: critical, group: one-address}
  "2001:db8::/32": {criticality: medium}
"""


def resolve(inventory: Inventory, host: str | None, address: str | None = None) -> str | None:
    found = inventory.resolve(host, address)
    return found.entry.name if found.entry is not None else None


def test_an_entry_becomes_metadata_asset_in_the_agreed_shape() -> None:
    found = parse_inventory(INVENTORY).resolve("db-1.example.com", None)
    assert found.entry is not None
    assert found.detail == "asset 'db-1.example.com' matched host 'db-1.example.com' by exact name"
    assert found.entry.metadata_at(datetime(2025, 1, 1, tzinfo=UTC)) == {
        "name": "db-1.example.com",
        "criticality": "critical",
        "environment": "production",
        "owner": "alice",
        "team": "dba",
        "tags": ["database", "pg"],  # repeated tags once
        "group": "db",
        "depends_on": ["san-1"],
        "business_hours": None,
        "in_business_hours": None,
    }


def test_each_event_gets_its_own_dict() -> None:
    entry = parse_inventory(INVENTORY).resolve("db-1.example.com", None).entry
    assert entry is not None
    at = datetime(2025, 1, 1, tzinfo=UTC)
    first, second = entry.metadata_at(at), entry.metadata_at(at)
    first["criticality"] = "low"
    assert second["criticality"] == "critical"


def test_exact_names_win_over_globs_and_ignore_case() -> None:
    inventory = parse_inventory(INVENTORY)
    assert resolve(inventory, "web-1.example.com") == "WEB-1.EXAMPLE.COM"
    assert resolve(inventory, "Web-1.Example.Com") == "WEB-1.EXAMPLE.COM"
    assert resolve(inventory, "DB-1.example.com") == "db-1.example.com"


def test_globs_are_tried_in_file_order() -> None:
    inventory = parse_inventory(INVENTORY)
    assert resolve(inventory, "web-7.example.com") == "web-*.example.com"
    assert resolve(inventory, "mail.example.com") == "*.example.com"
    assert inventory.resolve("web-7.example.com", None).detail == (
        "asset 'web-*.example.com' matched host 'web-7.example.com' by glob 'web-*.example.com'"
    )
    # The other order: the broad glob first takes every host.
    reordered = parse_inventory(
        'assets: {"*.example.com": {criticality: low}, "web-*.example.com": {criticality: high}}'
    )
    assert resolve(reordered, "web-7.example.com") == "*.example.com"


# Globs as (literal prefix, wildcard, rest): many share a prefix or one another's, and most hosts of
# "ab" match several, so the order they are tried in shows.
_GLOBS = st.tuples(
    st.text(alphabet="ab", max_size=3),
    st.sampled_from(["*", "?", "[ab]", "[!a]", "["]),
    st.text(alphabet="ab*?", max_size=2),
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_GLOBS, min_size=1, max_size=8, unique=True), st.text(alphabet="ab", min_size=1, max_size=5))
def test_a_host_matches_the_first_glob_in_file_order_that_fnmatch_matches(
    globs: list[str], host: str
) -> None:
    # Globs are tried by their literal prefix, not all of them: the answer must be a plain loop's.
    inventory = Inventory({}, [(g, asset_entry(g, {})) for g in globs], [])
    expected = next((g for g in globs if fnmatch.fnmatchcase(host, g)), None)
    assert resolve(inventory, host) == expected


def test_glob_character_classes_and_single_characters() -> None:
    inventory = parse_inventory('assets: {"sw-[0-3]?": {}, "rack[!9]": {}}')
    assert resolve(inventory, "sw-2a") == "sw-[0-3]?"
    assert resolve(inventory, "sw-4a") is None
    assert resolve(inventory, "sw-2") is None
    assert resolve(inventory, "rack1") == "rack[!9]"
    assert resolve(inventory, "rack9") is None


def test_the_longest_network_prefix_wins() -> None:
    inventory = parse_inventory(INVENTORY)
    assert resolve(inventory, "10.1.2.3") == "10.1.2.3"
    assert resolve(inventory, "10.1.2.4") == "10.1.0.0/16"
    assert resolve(inventory, "10.9.9.9") == "10.0.0.0/8"
    assert resolve(inventory, "11.0.0.1") is None
    assert resolve(inventory, "2001:db8::1") == "2001:db8::/32"
    assert inventory.resolve("10.1.2.4", None).detail == (
        "asset '10.1.0.0/16' matched host '10.1.2.4' by network 10.1.0.0/16"
    )


def test_the_metadata_address_is_used_when_the_host_name_matches_nothing() -> None:
    inventory = parse_inventory(INVENTORY)
    assert resolve(inventory, "unknown-host", "10.1.9.9") == "10.1.0.0/16"
    assert resolve(inventory, None, "10.1.2.3") == "10.1.2.3"
    # A host that matches by name keeps its entry whatever the address says.
    assert resolve(inventory, "db-1.example.com", "10.1.2.3") == "db-1.example.com"
    assert resolve(inventory, "unknown-host", "not-an-address") is None
    found = inventory.resolve("unknown-host", "192.0.2.1")
    assert found.entry is None
    assert found.detail == "no asset matched host 'unknown-host' or address '192.0.2.1'"
    assert inventory.resolve(None, None).detail == "no asset matched (the event has no host or address)"
    assert inventory.resolve(None, "192.0.2.1").detail == "no asset matched address '192.0.2.1'"


def test_answers_are_cached_and_the_cache_is_bounded() -> None:
    inventory = parse_inventory(INVENTORY, cache_size=2)
    first = inventory.resolve("web-1.example.com", None)
    assert inventory.resolve("web-1.example.com", None) is first  # the cached answer itself
    inventory.resolve("a.example.com", None)
    inventory.resolve("b.example.com", None)  # evicts web-1 (the oldest)
    again = inventory.resolve("web-1.example.com", None)
    assert again is not first and again.entry is first.entry


def test_an_empty_file_and_an_empty_assets_key_are_empty_inventories() -> None:
    assert parse_inventory("").size == 0
    assert parse_inventory("assets:").size == 0
    assert parse_inventory(INVENTORY).size == 8
    assert resolve(parse_inventory(""), "db-1.example.com") is None


def test_an_entry_without_fields_is_medium() -> None:
    entry = parse_inventory("assets: {lonely: }").resolve("lonely", None).entry
    assert entry is not None
    assert entry.metadata_at(datetime(2025, 1, 1, tzinfo=UTC))["criticality"] == "medium"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("assets: [a, b]", "assets: must be a mapping"),
        ("- a", "the top level must be a mapping"),
        ("hosts: {}", "unknown top-level key"),
        ("assets: {a: {criticality: urgent}}",
         r"assets\['a'\]: criticality: Invalid enum value 'urgent' \(critical, high, medium or low\)"),
        ("assets: {a: {colour: red}}", r"assets\['a'\]: Object contains unknown field `colour`"),
        ("assets: {a: {owner: 7}}", r"assets\['a'\]: owner: Expected `str \| null`, got `int`"),
        ("assets: {a: {tags: web}}", r"assets\['a'\]: tags: Expected `array`"),
        ("assets: {a: 3}", r"assets\['a'\]: an entry must be a mapping"),
        ("assets: {a: {name: b}}", r"assets\['a'\]: name: a file entry is named by its key"),
        ("assets: {7: {}}", "the key 7 is not a host name"),
        ("assets: {a: {}, A: {}}", r"assets\['A'\]: the host is listed twice"),
        ('assets: {"10.0.0.0/8": {}, "10.0.0.1/8": {}}', "the network 10.0.0.0/8 is listed twice"),
        ("assets: {a: {business_hours: {start: '09:00', end: '09:00'}}}",
         r"assets\['a'\]\.business_hours\.end: must differ from start"),
        ("assets: {a: {business_hours: {start: '09:00', end: '17:00', timezone: Mars/Olympus}}}",
         r"business_hours\.timezone: unknown IANA time zone 'Mars/Olympus'"),
        ("assets: {a: {business_hours: {start: '9h', end: '17:00'}}}", r"business_hours\.start: '9h' is not"),
        ("assets: {a: {business_hours: {days: [mon, funday], start: '09:00', end: '17:00'}}}",
         r"business_hours\.days: unknown day 'funday'"),
        ("assets: {a: {business_hours: {end: '17:00'}}}", r"business_hours: Object missing required field"),
        ("assets: {a: [}", "not valid YAML"),
        ("assets: {a: {owner: " + "x" * 300 + "}}", r"owner: longer than 256"),
    ],
)  # fmt: skip
def test_a_bad_inventory_is_refused_naming_the_entry_and_field(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_inventory(text)


def test_unquoted_yaml_times_read_as_base_60_minutes_still_work() -> None:
    # YAML 1.1 reads 9:30 as the integer 570; that is minutes since midnight, so it means 09:30.
    entry = (
        parse_inventory("assets: {a: {business_hours: {start: 9:30, end: 17:00}}}").resolve("a", None).entry
    )
    assert entry is not None
    hours = entry.metadata_at(datetime(2025, 1, 6, 10, tzinfo=UTC))["business_hours"]
    assert hours == {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:30", "end": "17:00",
                     "timezone": "UTC"}  # fmt: skip


# Text that looks like YAML (keys, lists, flow mappings, anchors, tags, indentation) more often than not.
_TOKENS = [
    *"{}[]-,&*!|>'\"#?%@` \n\tabc019./:_",
    *("assets:", "criticality:", "business_hours:", "start:", "10.0.0.0/8", "!!python/object", "!!binary"),
    *("  ", "\n  ", "2001-13-45"),
]
_YAMLISH = st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join)


_KEYS = ["assets", "criticality", "tags", "business_hours", "start", "end", "days", "timezone", "a", "*.x",
         "10.0.0.0/8"]  # fmt: skip


def _tree() -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), inner, max_size=4),
        max_leaves=20,
    )  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_YAMLISH)
def test_the_parser_raises_only_its_own_error_on_any_text(text: str) -> None:
    with contextlib.suppress(InventoryError):
        parse_inventory(text)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.just("assets"), _tree(), max_size=1))
def test_the_parser_raises_only_its_own_error_on_any_yaml_document(tree: dict[str, object]) -> None:
    text = yaml.safe_dump(tree)
    try:
        inventory = parse_inventory(text)
    except InventoryError:
        return
    inventory.resolve("a", "10.0.0.1")  # whatever loaded can be used


def test_the_shipped_example_loads_and_matches_what_its_comments_say() -> None:
    inventory = read_inventory(Path(__file__).parents[4] / "config" / "assets.yaml")
    assert resolve(inventory, "DB-Primary.example.com") == "db-primary.example.com"
    assert resolve(inventory, "web-3.prod.example.com") == "web-*.prod.example.com"
    assert resolve(inventory, "api.staging.example.com") == "*.staging.example.com"
    assert resolve(inventory, "198.51.100.7") == "198.51.100.0/26"
    assert resolve(inventory, "198.51.100.200") == "198.51.100.0/24"
    assert resolve(inventory, "10.20.5.7") is None  # nothing real matches the example


@settings(max_examples=200, deadline=None)
@given(
    globs=st.lists(
        st.text(alphabet="ab*?[]!-(|)", min_size=1, max_size=6).filter(lambda g: "*" in g or "?" in g),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    host=st.text(alphabet="ab-(|)", min_size=1, max_size=6),
)
def test_the_combined_glob_regex_picks_the_first_glob_a_loop_would(globs: list[str], host: str) -> None:
    """All globs are matched by one regex (a group per glob); the answer is the first glob in file order
    that fnmatch matches, whatever characters the globs hold."""
    import fnmatch
    import re

    entries = {g: {"criticality": "low"} for g in globs}
    inventory = parse_inventory(yaml.safe_dump({"assets": entries}, sort_keys=False))
    expected = next((g for g in globs if re.compile(fnmatch.translate(g), re.DOTALL).match(host)), None)
    assert resolve(inventory, host) == expected

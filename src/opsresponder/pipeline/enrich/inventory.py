"""The asset inventory: entries parsed from YAML (`parse_inventory`), matched to hosts (`Inventory`).

An entry's key says how it matches (docs/assets.md):

- an IP address or a CIDR network (``10.20.0.0/16``, ``2001:db8::/32``): the event's host when it is an
  address, else the address in ``metadata.<address_field>``; the longest prefix wins;
- a key holding ``*``, ``?`` or ``[``: a glob (fnmatch) on the host name, tried in file order;
- anything else: the host name exactly.

Names compare case-insensitively (DNS names do). Precedence: exact name, then globs, then networks.
Each distinct host is matched once per inventory: the answer is remembered in a bounded cache, which a
reload empties by replacing the whole `Inventory`.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import yaml

from opsresponder.pipeline.enrich.hours import DAYS, BusinessHours, BusinessHoursError

Criticality = Literal["critical", "high", "medium", "low"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_GLOB_CHARS: Final = frozenset("*?[")
# Bounds on what one entry may hold: an inventory is configuration, not a data set.
_MAX_TEXT: Final = 256
_MAX_ITEMS: Final = 256


class InventoryError(ValueError):
    """An inventory (file or service answer) cannot be used; the message names the entry and field."""


class BusinessHoursSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    days: list[str] = msgspec.field(default_factory=lambda: list(DAYS[:5]))
    start: str | int
    end: str | int
    timezone: str = "UTC"


Text = str | None


class AssetSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One entry as written in the inventory file or answered by the asset service."""

    name: Text = None
    """Only in asset service answers (defaults to the host asked about); a file entry's name is its key."""
    criticality: Criticality = "medium"
    environment: Text = None
    owner: Text = None
    team: Text = None
    tags: list[str] = msgspec.field(default_factory=list)
    group: Text = None
    depends_on: list[str] = msgspec.field(default_factory=list)
    business_hours: BusinessHoursSpec | None = None


class AssetEntry:
    """An entry ready to be attached to events: its ``metadata.asset`` is built once, bar the hours."""

    __slots__ = ("_base", "_hours", "name")

    def __init__(self, name: str, spec: AssetSpec) -> None:
        """Raises `InventoryError` naming the bad field."""
        self.name = name
        if len(name) > _MAX_TEXT:
            raise InventoryError(
                f"{_where(name[:40] + '...')}: the name is longer than {_MAX_TEXT} characters"
            )
        for field in ("environment", "owner", "team", "group"):
            _check_text(name, field, getattr(spec, field))
        _check_list(name, "tags", spec.tags)
        _check_list(name, "depends_on", spec.depends_on)
        hours: BusinessHours | None = None
        if spec.business_hours is not None:
            bh = spec.business_hours
            try:
                hours = BusinessHours(bh.days, bh.start, bh.end, bh.timezone)
            except BusinessHoursError as e:
                raise InventoryError(f"{_where(name)}.business_hours.{e}") from None
        self._hours = hours
        self._base: Final[dict[str, Any]] = {
            "name": name,
            "criticality": spec.criticality,
            "environment": spec.environment,
            "owner": spec.owner,
            "team": spec.team,
            "tags": list(dict.fromkeys(spec.tags)),
            "group": spec.group,
            "depends_on": list(dict.fromkeys(spec.depends_on)),
            "business_hours": hours.as_metadata if hours is not None else None,
            "in_business_hours": None,
        }

    def metadata_at(self, occurred_at: datetime) -> dict[str, Any]:
        """``metadata.asset`` for an event that occurred at `occurred_at` (a new dict each time: events
        must not share one mutable object)."""
        asset = self._base.copy()
        if self._hours is not None:
            asset["in_business_hours"] = self._hours.contains(occurred_at)
        return asset


class Resolved:
    """What a host resolved to: the entry (or None) and the trace line that says so, built once."""

    __slots__ = ("detail", "entry")

    def __init__(self, entry: AssetEntry | None, detail: str) -> None:
        self.entry = entry
        self.detail = detail


NO_HOST: Final = Resolved(None, "no asset matched (the event has no host or address)")


class Inventory:
    """Matches hosts to entries; immutable but for its caches. Build it with `parse_inventory`."""

    __slots__ = (
        "_by_address",
        "_by_name",
        "_cache_size",
        "_exact",
        "_glob_matchers",
        "_globs",
        "_globs_by_prefix",
        "_networks",
        "_prefix_lengths",
        "size",
    )

    def __init__(
        self,
        exact: dict[str, AssetEntry],
        globs: list[tuple[str, AssetEntry]],
        networks: list[tuple[IpNetwork, AssetEntry]],
        cache_size: int = 100_000,
    ) -> None:
        self._exact = exact
        # Globs by their literal prefix (what comes before the first wildcard): a name can only match a
        # glob whose prefix it starts with, so a new host is tried against those alone, in file order. One
        # regex of every glob walked all of them for each new host: with a glob per rack (200 racks),
        # ~6 µs per host (now 1.5 to 3), a sixth of the stage's cost on bench/pipeline.py's mix.
        self._globs = [(pattern, entry) for pattern, entry in globs]
        self._glob_matchers: list[Callable[[str], re.Match[str] | None]] = [
            re.compile(fnmatch.translate(pattern), re.DOTALL).match for pattern, _ in globs
        ]
        self._globs_by_prefix: dict[str, list[int]] = {}
        for index, (pattern, _) in enumerate(globs):
            prefix = re.split(r"[*?[]", pattern, maxsplit=1)[0]
            self._globs_by_prefix.setdefault(prefix, []).append(index)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._globs_by_prefix})
        # Longest prefix first, so the first network that contains an address is the most specific one.
        self._networks = sorted(networks, key=lambda item: item[0].prefixlen, reverse=True)
        self._cache_size = cache_size
        self._by_name: dict[str, Resolved] = {}
        self._by_address: dict[str, Resolved] = {}
        self.size: Final = len(exact) + len(globs) + len(networks)

    def resolve(self, host: str | None, address: str | None) -> Resolved:
        """The entry for an event's host, or for `address` when the host matches nothing."""
        if host is not None:
            found = self._by_name.get(host)
            if found is None:
                found = self._remember(self._by_name, host, self._match_host(host))
            if found.entry is not None or address is None:
                return found
        elif address is None:
            return NO_HOST
        found = self._by_address.get(address)
        if found is None:
            entry, network = self._match_address(address)
            if entry is not None:
                found = Resolved(
                    entry, f"asset {entry.name!r} matched address {address!r} by network {network}"
                )
            else:
                found = Resolved(None, f"no asset matched address {address!r}")
            found = self._remember(self._by_address, address, found)
        if found.entry is None and host is not None:
            # Not cached: the address's answer is shared by every host that carries that address.
            return Resolved(None, f"no asset matched host {host!r} or address {address!r}")
        return found

    def _match_host(self, host: str) -> Resolved:
        name = host.lower()
        entry = self._exact.get(name)
        if entry is not None:
            return Resolved(entry, f"asset {entry.name!r} matched host {host!r} by exact name")
        if self._globs:
            candidates: list[int] = []
            for length in self._prefix_lengths:
                if length > len(name):
                    break
                candidates += self._globs_by_prefix.get(name[:length], ())
            for index in sorted(candidates):  # file order: the first glob that matches wins
                if self._glob_matchers[index](name) is not None:
                    pattern, entry = self._globs[index]
                    return Resolved(entry, f"asset {entry.name!r} matched host {host!r} by glob {pattern!r}")
        entry, network = self._match_address(host)
        if entry is not None:
            return Resolved(entry, f"asset {entry.name!r} matched host {host!r} by network {network}")
        return Resolved(None, f"no asset matched host {host!r}")

    def _match_address(self, text: str) -> tuple[AssetEntry | None, IpNetwork | None]:
        if not self._networks:
            return None, None
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None, None
        for network, entry in self._networks:
            if address.version == network.version and address in network:
                return entry, network
        return None, None

    def _remember(self, cache: dict[str, Resolved], key: str, found: Resolved) -> Resolved:
        if len(cache) >= self._cache_size:
            # Insertion order: the oldest answer goes first. O(1), and a host seen again is re-added cheaply.
            del cache[next(iter(cache))]
        cache[key] = found
        return found


EMPTY: Final = Inventory({}, [], [])


def parse_inventory(text: str | bytes, cache_size: int = 100_000) -> Inventory:
    """Parse an inventory file's YAML.

    Raises:
        InventoryError: not YAML, not the inventory's shape, or an entry with a bad field; the message
            names the entry and the field. Nothing else, whatever the input.
    """
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InventoryError(f"not valid YAML: {e}") from None
    except (ValueError, TypeError, RecursionError, OverflowError) as e:
        # PyYAML's constructors raise these on values like a timestamp out of range or deep nesting.
        raise InventoryError(f"not a usable YAML document: {e}") from None
    if tree is None:
        return Inventory({}, [], [], cache_size)
    if not isinstance(tree, dict):
        raise InventoryError("the top level must be a mapping with the key 'assets'")
    unknown = [str(k) for k in tree if k != "assets"]
    if unknown:
        raise InventoryError(f"unknown top-level key(s) {', '.join(sorted(unknown))} (only 'assets')")
    assets = tree.get("assets")
    if assets is None:
        return Inventory({}, [], [], cache_size)
    if not isinstance(assets, dict):
        raise InventoryError("assets: must be a mapping of host, glob or network to its entry")
    return build_inventory(assets.items(), cache_size)


def build_inventory(items: Iterable[tuple[object, object]], cache_size: int = 100_000) -> Inventory:
    """An inventory from (key, entry) pairs as decoded from YAML or JSON.

    Raises:
        InventoryError: as `parse_inventory`.
    """
    exact: dict[str, AssetEntry] = {}
    globs: list[tuple[str, AssetEntry]] = []
    networks: list[tuple[IpNetwork, AssetEntry]] = []
    seen_networks: set[IpNetwork] = set()
    for key, body in items:
        if not isinstance(key, str) or not key.strip() or len(key) > _MAX_TEXT:
            raise InventoryError(f"assets: the key {key!r} is not a host name, glob or network")
        key = key.strip()
        entry = asset_entry(key, body)
        network = _network(key)
        if network is not None:
            if network in seen_networks:
                raise InventoryError(f"{_where(key)}: the network {network} is listed twice")
            seen_networks.add(network)
            networks.append((network, entry))
        elif _GLOB_CHARS.intersection(key):
            globs.append((key.lower(), entry))
        else:
            name = key.lower()
            if name in exact:
                raise InventoryError(f"{_where(key)}: the host is listed twice (names ignore case)")
            exact[name] = entry
    return Inventory(exact, globs, networks, cache_size)


def asset_entry(name: str, body: object) -> AssetEntry:
    """One file entry from its decoded body (its name is its key).

    Raises:
        InventoryError: naming the entry and the field.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InventoryError(f"{_where(name)}: an entry must be a mapping of its fields")
    if "name" in body:
        # metadata.asset.name says which entry matched, so in the file it is the key, nothing else.
        raise InventoryError(f"{_where(name)}: name: a file entry is named by its key; remove this field")
    try:
        spec = msgspec.convert(body, AssetSpec, strict=True)
    except msgspec.ValidationError as e:
        message = _field_message(str(e))
        if message.startswith("criticality:"):
            message += " (critical, high, medium or low)"
        raise InventoryError(f"{_where(name)}: {message}") from None
    return AssetEntry(name, spec)


def _network(key: str) -> IpNetwork | None:
    try:
        return ipaddress.ip_network(key, strict=False)
    except ValueError:
        return None


def _check_text(name: str, field: str, value: str | None) -> None:
    if value is not None and len(value) > _MAX_TEXT:
        raise InventoryError(f"{_where(name)}.{field}: longer than {_MAX_TEXT} characters")


def _check_list(name: str, field: str, values: list[str]) -> None:
    if len(values) > _MAX_ITEMS:
        raise InventoryError(f"{_where(name)}.{field}: more than {_MAX_ITEMS} items")
    for value in values:
        _check_text(name, field, value)


def _where(name: str) -> str:
    return f"assets[{name!r}]"


_PATH_RE: Final = re.compile(r" - at `\$((?:\.[A-Za-z0-9_]+|\[\d+\]|\[[^\]]*\])*)`")


def _field_message(message: str) -> str:
    """msgspec's ``Expected `str`, got `int` - at `$.owner``` as ``owner: Expected `str`, got `int```."""
    found = _PATH_RE.search(message)
    if found is None:
        return message
    path = found.group(1).lstrip(".")
    text = message[: found.start()] + message[found.end() :]
    return f"{path}: {text}" if path else text

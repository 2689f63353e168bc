"""The URL allowlist: names, suffixes, IPv4 and IPv6 networks, names resolving to other addresses."""

from __future__ import annotations

import pytest

from opsresponder.core.errors import ConfigError
from opsresponder.outbound.allowlist import UrlAllowlist, UrlNotAllowedError, parse_url


def fake_resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise UrlNotAllowedError(f"the host {host} does not resolve")
        return table[host]

    return resolve


DNS = {
    "inside.corp": ["10.1.2.3"],
    "inside6.corp": ["fd00::17"],
    "metadata.evil": ["169.254.169.254"],
    "mixed.evil": ["10.1.2.3", "8.8.8.8"],
    "loopback6.evil": ["::1"],
}


@pytest.fixture
def allowlist() -> UrlAllowlist:
    return UrlAllowlist(
        hosts=["hooks.example.com", "*.receivers.example.org"],
        networks=["10.0.0.0/8", "fd00::/8", "192.0.2.0/24"],
        resolver=fake_resolver(DNS),
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x",
        "https://HOOKS.example.com./x",  # case and a trailing dot do not matter
        "http://a.receivers.example.org:8080/",
        "https://a.b.receivers.example.org/",
        "http://10.9.8.7/hook",
        "http://[fd00::1]:9000/hook",
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped IPv6 is its IPv4 address
        "http://inside.corp/hook",
        "http://inside6.corp/hook",
        "http://192.0.2.200/",
    ],
)
async def test_allowed_urls(allowlist: UrlAllowlist, url: str) -> None:
    await allowlist.check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # Not an allowed name, so its addresses decide; the fake DNS knows none of these.
        ("https://example.com/", "does not resolve"),
        ("https://receivers.example.org/", "does not resolve"),  # *.x is not x
        ("https://evilreceivers.example.org/", "does not resolve"),
        ("http://127.0.0.1/", "not in outbound.allowed_networks"),
        ("http://169.254.169.254/latest/meta-data", "not in outbound.allowed_networks"),
        ("http://[::1]:3009/", "not in outbound.allowed_networks"),
        ("http://[fe80::1%25eth0]/", "not in outbound.allowed_networks"),
        ("http://[::ffff:127.0.0.1]/", "not in outbound.allowed_networks"),
        ("http://metadata.evil/", "resolves to 169.254.169.254"),
        ("http://loopback6.evil/", "resolves to ::1"),
        ("http://mixed.evil/", "resolves to 8.8.8.8"),
        ("http://nowhere.corp/", "does not resolve"),
        ("ftp://hooks.example.com/", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("hooks.example.com/x", "scheme must be http or https"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://hooks.example.com:99999/", "invalid port"),
        ("https:///path", "no host"),
        ("https://hooks.example.com/a b", "whitespace"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than"),
    ],
)
async def test_refused_urls(allowlist: UrlAllowlist, url: str, reason: str) -> None:
    with pytest.raises(UrlNotAllowedError, match=reason):
        await allowlist.check_url(url)


async def test_with_no_networks_a_name_outside_the_hosts_is_refused_without_a_lookup() -> None:
    names_only = UrlAllowlist(hosts=["hooks.example.com"], resolver=fake_resolver({}))
    with pytest.raises(UrlNotAllowedError, match=r"not in outbound\.allowed_hosts"):
        await names_only.check_url("https://example.com/")


async def test_an_empty_allowlist_allows_nothing() -> None:
    empty = UrlAllowlist()
    for url in ("http://127.0.0.1/", "https://hooks.example.com/", "http://[::1]/"):
        with pytest.raises(UrlNotAllowedError):
            await empty.check_url(url)


async def test_the_system_resolver_is_used_by_default() -> None:
    # localhost resolves to loopback addresses only (127.0.0.1 and maybe ::1).
    await UrlAllowlist(networks=["127.0.0.0/8", "::1/128"]).check_url("http://localhost:8080/")
    with pytest.raises(UrlNotAllowedError, match="resolves to"):
        await UrlAllowlist(networks=["10.0.0.0/8"]).check_url("http://localhost:8080/")
    with pytest.raises(UrlNotAllowedError, match="does not resolve"):
        await UrlAllowlist(networks=["10.0.0.0/8"]).check_url("http://no-such-host.invalid/")


async def test_connect_addresses_are_the_checked_ones(allowlist: UrlAllowlist) -> None:
    assert await allowlist.connect_addresses("inside.corp", 80) == ["10.1.2.3"]
    # A name allowed as a name is connected to by name: the operator trusts it.
    assert await allowlist.connect_addresses("hooks.example.com", 443) == ["hooks.example.com"]


@pytest.mark.parametrize(
    ("hosts", "networks", "key"),
    [
        (["*"], [], "allowed_hosts[0]"),
        (["ok.example.com", ""], [], "allowed_hosts[1]"),
        (["10.0.0.0/8"], [], "allowed_hosts[0]"),
        ([], ["10.0.0.1/8"], "allowed_networks[0]"),  # host bits set: probably a typo
        ([], ["10.0.0.0/8", "not-a-network"], "allowed_networks[1]"),
    ],
)
def test_bad_config_entries_are_named(hosts: list[str], networks: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"outbound\.{key}".replace("[", r"\[").replace("]", r"\]")):
        UrlAllowlist(hosts=hosts, networks=networks)


def test_parse_url_defaults_the_port_by_scheme() -> None:
    assert parse_url("https://hooks.example.com/x") == ("hooks.example.com", 443)
    assert parse_url("http://hooks.example.com/x") == ("hooks.example.com", 80)
    assert parse_url("http://[fd00::1]:81/") == ("fd00::1", 81)

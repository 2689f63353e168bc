"""Which URLs OpsResponder may send requests to: configured host names and networks, nothing else.

A subscription URL is a request the server makes on behalf of an API caller, so without a check anyone with
the ``write`` scope could make OpsResponder probe its own network (cloud metadata at 169.254.169.254, the
database, admin ports). The rule, applied when a subscription is saved AND at every connection:

- the scheme is ``http`` or ``https``, the URL carries no credentials;
- the host matches ``allowed_hosts`` exactly or through a ``*.suffix`` entry (the operator trusts that
  name, whatever it resolves to), or
- every address the host resolves to (or the address literal itself) lies in ``allowed_networks``.

Checking at connection time too (`connect_addresses`, used by the delivery transport) closes the gap where
a name resolved to an allowed address when saved and to another one later (DNS rebinding): the delivery
connects to exactly the addresses that were checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Final
from urllib.parse import urlsplit

from opsresponder.core.errors import ConfigError
from opsresponder.outbound import OutboundError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to, as text.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_SCHEMES: Final = {"http": 80, "https": 443}
MAX_URL_LENGTH: Final = 2048


class UrlNotAllowedError(OutboundError):
    """A subscription URL is malformed or outside the allowlist; the message says why."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve `host` with the system resolver (getaddrinfo in a thread), every address family."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise UrlNotAllowedError(f"the host {host} does not resolve: {e}") from e
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class UrlAllowlist:
    """Allowed host names and networks for subscription URLs.

    Empty lists allow nothing: outbound delivery is opt-in per destination.
    """

    def __init__(
        self,
        hosts: Sequence[str] = (),
        networks: Sequence[str] = (),
        *,
        resolver: Resolver = system_resolver,
    ) -> None:
        """Build from config values.

        Raises:
            ConfigError: an entry is not a host name, ``*.suffix`` or a network in CIDR notation; the
                message names ``outbound.allowed_hosts[i]`` or ``outbound.allowed_networks[i]``.
        """
        self._exact: set[str] = set()
        self._suffixes: list[str] = []
        for i, entry in enumerate(hosts):
            name = _normalise_host(entry)
            if not name or "/" in name or (name.startswith("*") and not name.startswith("*.")):
                raise ConfigError(
                    f"invalid configuration: outbound.allowed_hosts[{i}]: {entry!r} is not a host "
                    "name or *.suffix"
                )
            if name.startswith("*."):
                self._suffixes.append(name[1:])  # keeps the dot: "*.example.com" matches "a.example.com"
            else:
                self._exact.add(name)
        self._networks: list[IpNetwork] = []
        for i, entry in enumerate(networks):
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=True))
            except ValueError as e:
                raise ConfigError(
                    f"invalid configuration: outbound.allowed_networks[{i}]: {entry!r}: {e}"
                ) from e
        self._resolve = resolver

    def host_allowed_by_name(self, host: str) -> bool:
        """True when `host` is an allowed name (exact, or under an allowed ``*.suffix``)."""
        name = _normalise_host(host)
        return name in self._exact or any(name.endswith(suffix) for suffix in self._suffixes)

    def address_allowed(self, address: str) -> bool:
        """True when the address lies in an allowed network (IPv4-mapped IPv6 counts as its IPv4)."""
        ip = _parse_ip(address)
        if ip is None:
            return False
        candidates: list[IpAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            c in network for c in candidates for network in self._networks if c.version == network.version
        )

    async def check_url(self, url: str) -> None:
        """Refuse `url` unless it is well formed and its destination is allowed.

        Raises:
            UrlNotAllowedError: naming what is wrong (scheme, credentials, host, an address outside the
                allowed networks, or a host that does not resolve).
        """
        host, port = parse_url(url)
        await self.connect_addresses(host, port)

    async def connect_addresses(self, host: str, port: int) -> list[str]:
        """What to connect to for `host`: the name itself when allowed by name, else its checked addresses.

        Raises:
            UrlNotAllowedError: the host is not allowed, resolves to an address outside the allowed
                networks, or does not resolve.
        """
        if self.host_allowed_by_name(host):
            return [host]
        literal = _parse_ip(host)
        if literal is not None:
            if not self.address_allowed(host):
                raise UrlNotAllowedError(f"the address {host} is not in outbound.allowed_networks")
            return [host]
        if not self._networks:
            raise UrlNotAllowedError(f"the host {host} is not in outbound.allowed_hosts")
        addresses = await self._resolve(host, port)
        if not addresses:
            raise UrlNotAllowedError(f"the host {host} does not resolve")
        # Every address must be allowed: a name whose records mix allowed and other addresses is someone
        # else's to change, and the next lookup may return only the other ones.
        refused = [a for a in addresses if not self.address_allowed(a)]
        if refused:
            raise UrlNotAllowedError(
                f"the host {host} resolves to {', '.join(refused)}, outside outbound.allowed_networks"
            )
        return addresses


def parse_url(url: str) -> tuple[str, int]:
    """The host and port of a subscription URL, after the checks that need no lookup.

    Raises:
        UrlNotAllowedError: not http/https, no host, credentials in the URL, a bad port, too long.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise UrlNotAllowedError("the URL contains whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise UrlNotAllowedError(f"the scheme must be http or https, not {parts.scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise UrlNotAllowedError("credentials in the URL are not allowed; use the subscription secret")
    host = parts.hostname
    if not host:
        raise UrlNotAllowedError("the URL has no host")
    try:
        port = parts.port
    except ValueError as e:
        raise UrlNotAllowedError(f"the URL has an invalid port: {e}") from e
    return _normalise_host(host), port if port is not None else _SCHEMES[scheme]


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _parse_ip(text: str) -> IpAddress | None:
    # A zone index ("fe80::1%eth0") names an interface, not a different address.
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None

"""SSRF guard: which URLs and peer addresses the fetcher may talk to.

Feed and article URLs come from third parties (feeds, redirects), so an attacker
can point us at the metadata service or the office LAN. Everything that is not a
public unicast address is refused unless an operator allows it explicitly
(NEWSMON_ALLOW_NETWORKS, e.g. for a feed server on the intranet, or tests on 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from pipelines.errors import ConfigError, FetchError

ENV_ALLOW = "NEWSMON_ALLOW_NETWORKS"
ALLOWED_SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not covered by ipaddress' is_private in every Python version, so named explicitly.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _parse_networks(values: Iterable[str], source: str) -> tuple[IPNetwork, ...]:
    networks = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as err:
            raise ConfigError(source, None, None,
                              f"bad CIDR {value!r} (expected e.g. 127.0.0.0/8 or ::1/128): {err}") from None
    return tuple(networks)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), which is what gets reached."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _why_internal(ip: IPAddress) -> str | None:
    """Why this address is not a public unicast one, or None when it is."""
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("non-global", not ip.is_global),
    )
    for label, hit in checks:
        if hit:
            return label
    return None


class NetworkPolicy:
    """Refuses non-http(s) URLs and internal addresses, except inside operator-allowed CIDRs."""

    def __init__(self, allow: Iterable[str] = ()):
        if isinstance(allow, str):
            allow = allow.split(",")
        self.allow: tuple[IPNetwork, ...] = _parse_networks(allow, "NetworkPolicy(allow=...)")

    @classmethod
    def from_env(cls) -> NetworkPolicy:
        raw = os.environ.get(ENV_ALLOW, "")
        policy = cls()
        policy.allow = _parse_networks(raw.split(","), f"environment variable {ENV_ALLOW}={raw!r}")
        return policy

    def __repr__(self) -> str:
        return f"NetworkPolicy(allow={[str(n) for n in self.allow]!r})"

    def _allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            inner = _embedded_ipv4(ip)
            if inner is not None:
                candidates.append(inner)
        return any(c.version == net.version and c in net for c in candidates for net in self.allow)

    def check_url(self, url: str) -> None:
        """Refuse what must never be fetched, before any DNS lookup or connection."""
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as err:
            raise FetchError(url, f"refused: malformed URL ({err})", kind="refused") from None
        scheme = (parts.scheme or "").lower()
        if scheme not in ALLOWED_SCHEMES:
            shown = f"{scheme}:" if scheme else "no scheme"
            raise FetchError(url, f"refused: scheme {shown} is not http(s)", kind="refused")
        if not host:
            raise FetchError(url, "refused: URL has no host", kind="refused")
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return  # a name: checked on the resolved, connected address
        self.check_address(str(literal), url=url)

    def check_address(self, ip: str, *, url: str | None = None) -> None:
        """Refuse an internal address (the one actually connected to, after DNS) unless allowed."""
        where = url or ip
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
        except ValueError:
            raise FetchError(where, f"refused: {ip!r} is not an IP address", kind="refused") from None
        if self._allowed(address):
            return
        inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if inner is not None:  # judged by the IPv4 address it reaches
            why = _why_internal(inner)
            why = f"{why} (embeds {inner})" if why else None
        else:
            why = _why_internal(address)
        if why is not None:
            raise FetchError(where, f"refused: {address} is not a public address ({why}; allow it with "
                             f"{ENV_ALLOW})", kind="refused")

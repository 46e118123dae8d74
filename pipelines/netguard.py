"""SSRF guard: which URLs and peer addresses the fetcher may talk to.

Feed and article URLs come from third parties (feeds, redirects), so an attacker
can point us at the metadata service or the office LAN. Everything that is not a
public unicast address is refused unless an operator allows it explicitly
(NEWSMON_ALLOW_NETWORKS, e.g. for a feed server on the intranet, or tests on 127.0.0.1).

Alert channels (webhooks, SMTP hosts) are written by the operator, so a chat relay on the LAN or
on loopback is their normal use; but a leaked or mistyped env var, or a DNS answer, must not make
an alert POST to the cloud metadata service. NetworkPolicy.for_channels refuses only link-local
and metadata addresses (CHANNEL_REFUSED), unless NEWSMON_CHANNEL_ALLOW_NETWORKS allows them, and
connect() reaches only an address the policy allowed (no second DNS lookup in between).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from pipelines.errors import ConfigError, FetchError

ENV_ALLOW = "NEWSMON_ALLOW_NETWORKS"
ENV_CHANNEL_ALLOW = "NEWSMON_CHANNEL_ALLOW_NETWORKS"
ALLOWED_SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not covered by ipaddress' is_private in every Python version, so named explicitly.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What an alert channel may never reach unless allowed: link-local networks (the metadata service of
# AWS, GCP, Azure, OpenStack, DigitalOcean at 169.254.169.254, ECS at 169.254.170.2) and the metadata
# addresses outside them (AWS IPv6, Alibaba Cloud, Oracle Cloud).
CHANNEL_REFUSED = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "192.0.0.192/32")


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


def url_problem(url: str) -> str | None:
    """Why a configured http(s) URL is malformed, without repeating it (it may carry a token); None if fine."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "it contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as err:  # the message may quote part of the URL: named by kind only
        kind = "bad port" if "port" in str(err).lower() else "bad IPv6 address" if "IPv6" in str(err) else ""
        return f"it does not parse ({kind})" if kind else "it does not parse"
    if (parts.scheme or "").lower() not in ALLOWED_SCHEMES:
        return "it is not an http(s) URL"
    if not parts.hostname:
        return "it has no host"
    return None


class NetworkPolicy:
    """Refuses non-http(s) URLs and internal addresses, except inside operator-allowed CIDRs.

    refuse: judge only these networks as refused (for_channels); None: every non-public address."""

    def __init__(self, allow: Iterable[str] = (), *, refuse: Iterable[str] | None = None):
        if isinstance(allow, str):
            allow = allow.split(",")
        self.allow: tuple[IPNetwork, ...] = _parse_networks(allow, "NetworkPolicy(allow=...)")
        self.refuse: tuple[IPNetwork, ...] | None = (
            None if refuse is None else _parse_networks(refuse, "NetworkPolicy(refuse=...)"))
        self.allow_env = ENV_ALLOW

    @classmethod
    def for_channels(cls, allow: str | None = None) -> NetworkPolicy:
        """The policy of alert channels: link-local and metadata addresses refused, the rest allowed.
        allow: comma-separated CIDRs (NEWSMON_CHANNEL_ALLOW_NETWORKS) that lift the refusal."""
        policy = cls(refuse=CHANNEL_REFUSED)
        policy.allow = _parse_networks((allow or "").split(","),
                                       f"environment variable {ENV_CHANNEL_ALLOW}={allow!r}")
        policy.allow_env = ENV_CHANNEL_ALLOW
        return policy

    @classmethod
    def from_env(cls) -> NetworkPolicy:
        raw = os.environ.get(ENV_ALLOW, "")
        policy = cls()
        policy.allow = _parse_networks(raw.split(","), f"environment variable {ENV_ALLOW}={raw!r}")
        return policy

    def __repr__(self) -> str:
        refuse = "" if self.refuse is None else f", refuse={[str(n) for n in self.refuse]!r}"
        return f"NetworkPolicy(allow={[str(n) for n in self.allow]!r}{refuse})"

    def _why_refused(self, ip: IPAddress) -> str | None:
        if self.refuse is None:
            return _why_internal(ip)
        hit = any(ip.version == net.version and ip in net for net in self.refuse)
        return ("link-local" if ip.is_link_local else "cloud metadata") if hit else None

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
            why = self._why_refused(inner)
            why = f"{why} (embeds {inner})" if why else None
        else:
            why = self._why_refused(address)
        if why is not None:
            what = "not a public address" if self.refuse is None else "an address no channel may reach"
            raise FetchError(where, f"refused: {address} is {what} ({why}; allow it with "
                             f"{self.allow_env})", kind="refused")


def connect(host: str, port: int, timeout: object, policy: NetworkPolicy) -> socket.socket:
    """A TCP socket to host:port on an address the policy allows, for clients that do not use the
    fetcher (alert webhooks, SMTP): every resolved address is checked before it is tried and the
    peer after connecting, so a second DNS answer cannot slip in between check and connect.
    FetchError (kind "refused") when every address is refused; otherwise the last OSError."""
    where = f"{host}:{port}"
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    refused: FetchError | None = None
    last_error: OSError | None = None
    for family, socktype, proto, _, sockaddr in infos:
        try:
            policy.check_address(str(sockaddr[0]), url=where)
        except FetchError as err:
            refused = refused or err
            continue
        sock = socket.socket(family, socktype, proto)
        try:
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            policy.check_address(str(sock.getpeername()[0]), url=where)
        except FetchError:
            sock.close()
            raise
        except OSError as err:
            sock.close()
            last_error = err
            continue
        return sock
    if last_error is None and refused is not None:
        raise refused
    raise last_error or OSError(f"no address for {host}")

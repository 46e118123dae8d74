"""The SSRF policy: which URLs and connected addresses the fetcher may use."""

from __future__ import annotations

import pytest

from pipelines.errors import ConfigError, FetchError
from pipelines.netguard import ENV_ALLOW, NetworkPolicy

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.20.30.40", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # the cloud metadata service
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.251", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.7", "private"),  # documentation range
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("fec0::1", "site-local"),
    ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "loopback (embeds 127.0.0.1)"),
    ("::ffff:10.0.0.1", "private (embeds 10.0.0.1)"),
    ("::ffff:169.254.169.254", "link-local (embeds 169.254.169.254)"),
    ("::ffff:100.64.1.1", "carrier-grade NAT (embeds 100.64.1.1)"),
    ("64:ff9b::7f00:1", "loopback (embeds 127.0.0.1)"),  # NAT64 of 127.0.0.1
    ("2002:a00:1::", "private (embeds 10.0.0.1)"),  # 6to4 of 10.0.0.1
]

ALLOWED_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",  # just outside 172.16/12
    "100.128.0.1",  # just outside 100.64/10
    "192.169.0.1",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("ip", "why"), REFUSED_ADDRESSES)
def test_internal_addresses_are_refused_with_the_reason(ip, why):
    with pytest.raises(FetchError) as caught:
        NetworkPolicy().check_address(ip)
    assert caught.value.kind == "refused"
    assert f"({why};" in str(caught.value)
    assert ENV_ALLOW in str(caught.value)  # tells the operator how to allow it
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("ip", ALLOWED_ADDRESSES)
def test_public_addresses_pass(ip):
    NetworkPolicy().check_address(ip)  # raises if refused


@pytest.mark.parametrize(("allow", "ip"), [
    (["127.0.0.0/8"], "127.0.0.1"),
    (["127.0.0.0/8"], "::ffff:127.0.0.1"),  # the mapped form reaches the same host
    (["10.1.0.0/16"], "10.1.2.3"),
    (["::1/128"], "::1"),
    (["fd00::/8"], "fd12::5"),
    (["169.254.169.254/32"], "169.254.169.254"),
])
def test_allow_list_lets_internal_addresses_through(allow, ip):
    NetworkPolicy(allow).check_address(ip)


@pytest.mark.parametrize(("allow", "ip"), [
    (["127.0.0.0/8"], "::1"),  # allowing IPv4 loopback does not allow IPv6 loopback
    (["10.1.0.0/16"], "10.2.0.1"),
    (["::1/128"], "127.0.0.1"),
])
def test_allow_list_is_exact(allow, ip):
    with pytest.raises(FetchError):
        NetworkPolicy(allow).check_address(ip)


def test_check_address_names_the_url_when_given():
    with pytest.raises(FetchError) as caught:
        NetworkPolicy().check_address("10.0.0.1", url="http://intranet.example/feed")
    assert str(caught.value).startswith("http://intranet.example/feed: refused: 10.0.0.1")


def test_check_address_rejects_garbage():
    with pytest.raises(FetchError) as caught:
        NetworkPolicy().check_address("not-an-ip")
    assert caught.value.kind == "refused"


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "gopher://example.com/1",
    "javascript:alert(1)",
    "ftp://example.com/feed.xml",
    "data:text/html,hello",
    "example.com/feed",  # no scheme
    "http:///nohost",
    "https://",
    "http://example.com:99999/",  # malformed port
])
def test_urls_that_are_never_fetched(url):
    with pytest.raises(FetchError) as caught:
        NetworkPolicy().check_url(url)
    assert caught.value.kind == "refused"
    assert str(caught.value).startswith(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/feed",
    "http://[::1]/feed",
    "https://169.254.169.254/latest/meta-data/",
    "http://[::ffff:7f00:1]/",
])
def test_literal_internal_hosts_refused_before_any_lookup(url):
    with pytest.raises(FetchError) as caught:
        NetworkPolicy().check_url(url)
    assert caught.value.kind == "refused"


@pytest.mark.parametrize("url", [
    "http://example.com/feed.xml",
    "HTTPS://Example.COM/a?b=c",
    "http://8.8.8.8/",
    "http://localhost/feed",  # a name: judged on the address it resolves to, at connect time
])
def test_urls_that_pass_the_url_check(url):
    NetworkPolicy().check_url(url)


def test_from_env_parses_comma_separated_cidrs(monkeypatch):
    monkeypatch.setenv(ENV_ALLOW, " 127.0.0.0/8, ::1/128 ,10.5.0.0/16,")
    policy = NetworkPolicy.from_env()
    assert [str(n) for n in policy.allow] == ["127.0.0.0/8", "::1/128", "10.5.0.0/16"]
    policy.check_address("127.0.0.1")
    policy.check_address("::1")
    policy.check_address("10.5.9.9")
    with pytest.raises(FetchError):
        policy.check_address("10.6.0.1")


def test_from_env_unset_allows_nothing_internal(monkeypatch):
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    policy = NetworkPolicy.from_env()
    assert policy.allow == ()
    with pytest.raises(FetchError):
        policy.check_address("127.0.0.1")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-a-network", "127.0.0.1/8/9", "::1/129"])
def test_from_env_bad_cidr_names_variable_and_value(monkeypatch, bad):
    monkeypatch.setenv(ENV_ALLOW, f"127.0.0.0/8,{bad}")
    with pytest.raises(ConfigError) as caught:
        NetworkPolicy.from_env()
    message = str(caught.value)
    assert ENV_ALLOW in message
    assert repr(bad) in message
    assert "\n" not in message


def test_constructor_bad_cidr_is_a_config_error():
    with pytest.raises(ConfigError):
        NetworkPolicy(["300.1.1.1/8"])

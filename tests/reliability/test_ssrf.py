"""Issue 7, point 2: a whole cycle never connects to an internal address it was steered to.

The feed server runs on 127.0.0.5 and only 127.0.0.5/32 is allow-listed. Victims are real TCP
listeners on other loopback addresses (Linux routes all of 127/8 to lo): 127.0.0.1 (where
"localhost" resolves), 127.0.0.2, 127.0.0.3 and ::1. Feed items, redirects and feed URLs point
at them in every spelling we know; the victims count accepted connections at the socket level
and must count zero. Addresses no test can listen on (10/8, 172.16/12, 192.168/16, 169.254/16)
are refused before any connection is attempted (netguard checks IP literals first), which the
error lines show. A final cycle with a wider allow-list proves the victims do see connections
when one is allowed, so the zeros are not vacuous.

Fetcher-level coverage of the same guard: tests/test_http.py (test_ssrf_*, test_redirect_to_*)
and tests/test_netguard.py.
"""

from __future__ import annotations

import socket

import pytest

from pipelines.cycle import run_cycle
from pipelines.netguard import NetworkPolicy
from tests.localserver import Route
from tests.reliability.harness import (
    GOOD_PAGES,
    PAGES,
    RSS,
    Site,
    Victim,
    assert_one_line_errors,
    feed_state,
    ipv6_loopback_available,
    monitor,
    notice,
    redirect,
    rss,
    rss_item,
    stored_ids_for,
)

FEED_HOST = "127.0.0.5"
ALLOW = (f"{FEED_HOST}/32",)
SHOW = False


@pytest.fixture
def victims():
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"] + (["::1"] if ipv6_loopback_available() else [])
    opened = {host: Victim(host) for host in hosts}
    yield opened
    for victim in opened.values():
        victim.close()


def hostile_links(v: dict[str, Victim]) -> dict[str, str]:
    """name -> item link: every way we know to spell an internal target."""
    local, two, three = v["127.0.0.1"], v["127.0.0.2"], v["127.0.0.3"]
    links = {
        "loopback-literal": f"http://{two.netloc}/admin",
        "other-loopback": f"http://{three.netloc}/",
        "localhost-name": f"http://localhost:{local.port}/",
        "unspecified-0.0.0.0": f"http://0.0.0.0:{local.port}/",
        "decimal-ip": f"http://2130706433:{local.port}/",  # 127.0.0.1 as one number
        "short-ip": f"http://127.1:{local.port}/",
        "ipv4-mapped-ipv6": f"http://[::ffff:127.0.0.2]:{two.port}/",
        "private-10": "http://10.0.0.1/intranet",
        "private-172.16": "http://172.16.5.4/",
        "private-192.168": "http://192.168.1.1/router",
        "link-local-metadata": "http://169.254.169.254/latest/meta-data/",
        "https-to-loopback": f"https://{two.netloc}/",
    }
    if "::1" in v:
        links["ipv6-loopback"] = f"http://{v['::1'].netloc}/"
    return links


def hostile_redirects(v: dict[str, Victim]) -> dict[str, str]:
    local, two = v["127.0.0.1"], v["127.0.0.2"]
    targets = {
        "to-loopback": f"http://{two.netloc}/",
        "to-localhost": f"http://localhost:{local.port}/",
        "to-metadata": "http://169.254.169.254/latest/meta-data/iam/",
        "to-file": "file:///etc/passwd",
        "to-gopher": f"gopher://{two.netloc}/_stats",
        "to-private": "http://192.168.0.10/",
    }
    if "::1" in v:
        targets["to-ipv6-loopback"] = f"http://{v['::1'].netloc}/"
    return targets


def build_site(v: dict[str, Victim]) -> tuple[Site, list[str], list[str]]:
    server = Site(host=FEED_HOST)
    for slug in GOOD_PAGES[:1]:
        server.routes[f"/pages/{slug}.html"] = Route(body=(PAGES / f"{slug}.html").read_bytes(),
                                                     content_type="text/html; charset=utf-8")
    links = list(hostile_links(v).values())
    redirects = []
    for name, target in hostile_redirects(v).items():
        server.routes[f"/go/{name}"] = redirect(target)
        redirects.append(f"{server.base}/go/{name}")
    items = [rss_item(title=f"Steered item {n}", guid=f"s-{n}", link=link, description=notice(n, "a steering feed"))
             for n, link in enumerate(links + redirects)]
    items += [rss_item(title="Local file item", guid="s-file", link="file:///etc/passwd", description=notice(90)),
              rss_item(title="Gopher item", guid="s-gopher", link=f"gopher://{v['127.0.0.2'].netloc}/_x",
                       description=notice(91)),
              rss_item(title="Allowed item", guid="s-ok", link=f"{server.base}/pages/{GOOD_PAGES[0]}.html")]
    server.routes["/feeds/steer.xml"] = Route(body=rss(items), content_type=RSS)
    server.routes["/feeds/redirected.xml"] = redirect(f"http://{v['127.0.0.3'].netloc}/feed.xml")
    return server, links, redirects


def test_internal_targets_in_items_redirects_and_feed_urls_receive_nothing(tmp_path, victims):
    server, links, redirects = build_site(victims)
    feeds = [
        {"id": "steer", "url": f"{server.base}/feeds/steer.xml"},
        {"id": "feed-on-loopback", "url": f"http://{victims['127.0.0.2'].netloc}/feed.xml"},
        {"id": "feed-on-localhost", "url": f"http://localhost:{victims['127.0.0.1'].port}/feed.xml"},
        {"id": "feed-redirected", "url": f"{server.base}/feeds/redirected.xml"},
    ]
    with server, monitor(tmp_path, feeds, allow=ALLOW) as ctx:
        report = run_cycle(ctx)
        assert_one_line_errors(report)
        assert {h: v.accepted for h, v in victims.items()} == {h: 0 for h in victims}
        if SHOW:
            print("\n".join(report.errors))

        for feed in feeds[1:]:
            state = feed_state(ctx.store, feed["id"])
            # The feeds table shows the reason beside the feed's row: no id or URL repeated in it...
            assert state.last_error and "not a public address" in state.last_error and state.etag is None, state
            assert feed["url"] not in state.last_error
            # ...while the cycle's report, read without a table, names the feed and says it was refused.
            [line] = [e for e in report.errors if e.startswith(f"feed {feed['id']} ({feed['url']})")]
            assert "refused" in line

        for url in links + redirects:  # the page is refused; the item survives on its feed text
            lines = [e for e in report.errors if e.startswith(f"feed steer: page {url}: ")]
            assert len(lines) == 1 and "refused" in lines[0], (url, lines)
        for url, article_id in zip(links + redirects, stored_ids_for(ctx.store, links + redirects), strict=True):
            article = ctx.store.get_article(article_id)
            assert article is not None and article.extraction_source.startswith("feed"), url
            assert "internal secret" not in article.text
        assert report.dropped.get("no-link") == 2  # file: and gopher: links are never even queued
        allowed = ctx.store.get_article(stored_ids_for(ctx.store, [f"{server.base}/pages/{GOOD_PAGES[0]}.html"])[0])
        assert allowed is not None and allowed.extraction_source == "page"

        # Control: allow loopback and the same kind of request does connect, so the zeros above mean something.
        ctx.fetcher.policy.allow = NetworkPolicy(allow=["127.0.0.0/8", "::1/128"]).allow
        ctx.fetcher.fetch(f"http://{victims['127.0.0.2'].netloc}/admin", kind="page")
        ctx.fetcher.fetch(f"http://localhost:{victims['127.0.0.1'].port}/", kind="page")
        assert victims["127.0.0.2"].accepted == 1 and victims["127.0.0.1"].accepted == 1


def test_names_resolving_to_internal_addresses_are_refused_after_dns(tmp_path, victims, monkeypatch):
    # MOCK (the only one in this suite): a test cannot add DNS records, and /etc/hosts belongs to the
    # machine, so socket.getaddrinfo answers for three invented names; every other name goes to the
    # real resolver, and the connections (or their absence) are real.
    real_getaddrinfo = socket.getaddrinfo
    two = victims["127.0.0.2"]
    fake = {
        "intranet.example.test": ["127.0.0.2"],  # a public-looking name for an internal host
        "split.example.test": ["127.0.0.2", FEED_HOST],  # one internal and one allowed address
        "newsroom.example.test": [FEED_HOST],  # control: resolves to the allowed server
    }

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host in fake:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port))) for ip in fake[host]]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    server = Site(host=FEED_HOST)
    server.routes["/pages/split.html"] = Route(body=b"<p>" + b"allowed side of a split name. " * 20 + b"</p>",
                                               content_type="text/html; charset=utf-8")
    items = [
        rss_item(title="Intranet item", guid="d-1", link=f"http://intranet.example.test:{two.port}/",
                 description=notice(1)),
        rss_item(title="Redirect to intranet", guid="d-2", link=f"{server.base}/go/intranet", description=notice(2)),
        rss_item(title="Split name", guid="d-3", link=f"http://split.example.test:{server.port}/pages/split.html",
                 description=notice(3)),
    ]
    server.routes["/go/intranet"] = redirect(f"http://intranet.example.test:{two.port}/admin")
    server.routes["/feeds/names.xml"] = Route(body=rss(items), content_type=RSS)
    feeds = [{"id": "names", "url": f"http://newsroom.example.test:{server.port}/feeds/names.xml"},
             {"id": "intranet-feed", "url": f"http://intranet.example.test:{two.port}/feed.xml"}]
    with server, monitor(tmp_path, feeds, allow=ALLOW) as ctx:
        report = run_cycle(ctx)
    assert two.accepted == 0
    assert any(r.path == "/feeds/names.xml" for r in server.log), "the control name did not resolve"
    assert any(r.path == "/pages/split.html" for r in server.log), "the allowed address of a split name was not used"
    refused = [e for e in report.errors if "refused: 127.0.0.2 is not a public address" in e]
    assert len(refused) == 3, report.errors  # the intranet item, the redirect to it, and the intranet feed
    assert report.feeds_failed == 1 and report.articles_stored == 3

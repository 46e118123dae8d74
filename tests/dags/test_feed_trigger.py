"""FeedWatchTrigger against a real HTTP server on 127.0.0.1: fires on change, quiet on 304."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import pytest

from pipelines.errors import FetchError
from pipelines.netguard import NetworkPolicy
from tests.localserver import LocalServer, Route

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "airflow"
RSS = "application/rss+xml; charset=utf-8"


def feed(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def make_trigger(url: str, **kwargs):
    from newsmon_triggers.feed_watch import FeedWatchTrigger

    return FeedWatchTrigger(feed_id="frontier-wire", url=url, poll_interval=0.05, timeout=5, **kwargs)


async def watch(trigger, server: LocalServer, path: str, until, timeout: float = 10.0):
    """Run trigger.run() until `until(events, requests)` holds; returns (events, requests)."""
    events: list = []

    async def consume():
        async for event in trigger.run():
            events.append(event)

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(timeout):
            while not until(events, server.requests_for(path)):
                if task.done():
                    task.result()  # surface a crash of the trigger
                    raise AssertionError("trigger stopped without an exception")
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return events, server.requests_for(path)


@pytest.fixture
def allow_loopback(monkeypatch):
    monkeypatch.setenv("NEWSMON_ALLOW_NETWORKS", "127.0.0.0/8")


def test_quiet_while_server_answers_304(allow_loopback):
    with LocalServer({"/feed.xml": Route(body=feed("feed-v1.xml"), content_type=RSS)}) as server:
        trigger = make_trigger(server.url("/feed.xml"))
        events, requests = asyncio.run(watch(trigger, server, "/feed.xml", lambda ev, rq: len(rq) >= 4))
    assert events == []
    first_etag = requests[0].headers.get("If-None-Match")
    assert first_etag is None  # baseline poll is unconditional
    etags = {r.headers.get("If-None-Match") for r in requests[1:]}
    assert len(etags) == 1 and None not in etags  # every later poll was conditional, with the server's ETag


def test_fires_once_when_feed_gains_an_item(allow_loopback):
    with LocalServer({"/feed.xml": Route(body=feed("feed-v1.xml"), content_type=RSS)}) as server:
        trigger = make_trigger(server.url("/feed.xml"))

        def until(events, requests):
            if len(requests) >= 2 and server.routes["/feed.xml"].body == feed("feed-v1.xml"):
                server.routes["/feed.xml"] = Route(body=feed("feed-v2.xml"), content_type=RSS)
            return len(events) >= 1 and len(requests) >= 6

        events, requests = asyncio.run(watch(trigger, server, "/feed.xml", until))
    assert len(events) == 1, "one change, one event; the polls after it got 304"
    payload = events[0].payload
    assert payload["feed_id"] == "frontier-wire"
    assert payload["url"] == server.url("/feed.xml")
    assert payload["status"] == 200 and payload["etag"] and payload["digest"]


def test_rebuilt_feed_with_same_items_does_not_fire(allow_loopback):
    # A new <lastBuildDate> changes the body and the ETag but not the entries: no DAG run for it.
    with LocalServer({"/feed.xml": Route(body=feed("feed-v1.xml"), content_type=RSS)}) as server:
        trigger = make_trigger(server.url("/feed.xml"))
        swapped = []

        def until(events, requests):
            if len(requests) >= 2 and not swapped:
                server.routes["/feed.xml"] = Route(body=feed("feed-v1-rebuilt.xml"), content_type=RSS)
                swapped.append(len(requests))
            return bool(swapped) and len(requests) >= swapped[0] + 3

        events, _ = asyncio.run(watch(trigger, server, "/feed.xml", until))
    assert events == []


def test_fire_on_start_fires_on_first_poll(allow_loopback):
    with LocalServer({"/feed.xml": Route(body=feed("feed-v1.xml"), content_type=RSS)}) as server:
        trigger = make_trigger(server.url("/feed.xml"), fire_on_start=True)
        events, _ = asyncio.run(watch(trigger, server, "/feed.xml", lambda ev, rq: len(ev) >= 1 and len(rq) >= 3))
    assert len(events) == 1


def test_server_errors_fire_nothing(allow_loopback):
    with LocalServer({"/feed.xml": Route(body=b"down", status=503, etag=False)}) as server:
        trigger = make_trigger(server.url("/feed.xml"))
        events, requests = asyncio.run(watch(trigger, server, "/feed.xml", lambda ev, rq: len(rq) >= 3))
    assert events == []
    assert all("If-None-Match" not in r.headers for r in requests)  # no baseline was ever taken


def test_back_off_grows_caps_and_honours_retry_after():
    from newsmon_triggers.feed_watch import MAX_BACKOFF_SECONDS

    trigger = make_trigger("https://frontier-wire.example/feed.xml")
    trigger.poll_interval = 60
    waits = [trigger.wait_after_failure(n) for n in range(1, 8)]
    assert waits == sorted(waits) and waits[0] == 120 and waits[-1] == MAX_BACKOFF_SECONDS
    assert trigger.wait_after_failure(1, retry_after=600) == 600
    assert trigger.wait_after_failure(1, retry_after=10**6) == MAX_BACKOFF_SECONDS


def test_loopback_refused_without_allow_networks(monkeypatch):
    monkeypatch.delenv("NEWSMON_ALLOW_NETWORKS", raising=False)
    import httpx

    with LocalServer({"/feed.xml": Route(body=feed("feed-v1.xml"), content_type=RSS)}) as server:
        trigger = make_trigger(server.url("/feed.xml"))

        async def once():
            async with httpx.AsyncClient(trust_env=False) as client:
                await trigger.poll_once(client, NetworkPolicy.from_env())

        with pytest.raises(FetchError, match="refused"):
            asyncio.run(once())
        assert server.requests_for("/feed.xml") == []  # refused before connecting


def test_redirect_to_internal_address_refused(allow_loopback):
    import httpx

    redirect = Route(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}, etag=False)
    with LocalServer({"/feed.xml": redirect}) as server:
        trigger = make_trigger(server.url("/feed.xml"))

        async def once():
            async with httpx.AsyncClient(trust_env=False) as client:
                await trigger.poll_once(client, NetworkPolicy.from_env())

        with pytest.raises(FetchError, match="169.254.169.254"):
            asyncio.run(once())


def test_serialize_round_trip_through_classpath():
    from airflow._shared.module_loading import import_string

    trigger = make_trigger("https://frontier-wire.example/feed.xml", fire_on_start=True)
    classpath, kwargs = trigger.serialize()
    clone = import_string(classpath)(**kwargs)
    assert type(clone) is type(trigger)
    assert clone.serialize() == (classpath, kwargs)
    assert "etag" not in kwargs  # state must not change the watcher's identity hash


def test_entry_digest_ignores_build_date_but_not_items():
    from newsmon_triggers.feed_watch import feed_digest

    assert feed_digest(feed("feed-v1.xml")) == feed_digest(feed("feed-v1-rebuilt.xml"))
    assert feed_digest(feed("feed-v1.xml")) != feed_digest(feed("feed-v2.xml"))


def test_allow_networks_from_kwargs_or_the_variable_not_only_env(monkeypatch):
    # The DAG file resolves newsmon_allow_networks (Variable first) into the kwargs; without them the
    # trigger asks the resolver itself, Variable (here AIRFLOW_VAR_*, as a secrets backend serves it) first.
    monkeypatch.delenv("NEWSMON_ALLOW_NETWORKS", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_NEWSMON_ALLOW_NETWORKS", raising=False)
    with LocalServer({"/feed.xml": Route(body=feed("feed-v1.xml"), content_type=RSS)}) as server:
        trigger = make_trigger(server.url("/feed.xml"), allow_networks="127.0.0.0/8")
        assert trigger.serialize()[1]["allow_networks"] == "127.0.0.0/8"
        events, requests = asyncio.run(watch(trigger, server, "/feed.xml", lambda ev, rq: len(rq) >= 2))
        assert len(requests) >= 2
    monkeypatch.setenv("AIRFLOW_VAR_NEWSMON_ALLOW_NETWORKS", "10.0.0.0/8")
    monkeypatch.setenv("NEWSMON_ALLOW_NETWORKS", "192.168.0.0/16")
    policy = asyncio.run(make_trigger("https://x.example/feed.xml").network_policy())
    assert [str(n) for n in policy.allow] == ["10.0.0.0/8"]


# The digest's former pattern, kept here only as an oracle: quadratic on unclosed tags, exact on good feeds.
FORMER_ENTRY_ID_RE = re.compile(
    rb"<link\b[^>]*?\bhref=[\"']([^\"']+)[\"']|<(guid|id|link)\b[^>]*?(?:/>|>(.*?)</\2\s*>)",
    re.IGNORECASE | re.DOTALL,
)
# The project's ordinary feed fixtures (hostile ones live elsewhere and would make the oracle crawl).
FEED_FIXTURES = sorted(p for folder in ("airflow", "feeds", "coverage/feeds") for p in (FIXTURES.parent / folder).iterdir()
                       if p.suffix in (".xml", ".rdf", ".atom") and p.stat().st_size < 100_000)


@pytest.mark.parametrize("path", FEED_FIXTURES, ids=lambda p: str(p.relative_to(FIXTURES.parent)))
def test_linear_digest_finds_what_the_former_pattern_found_in_every_fixture_feed(path):
    # The scanner replaced the regex without moving any baseline: same identities, so an upgraded
    # triggerer does not fire for feeds whose entries did not change.
    from newsmon_triggers.feed_watch import _entry_ids

    body = path.read_bytes()
    former = {(m.group(1) or m.group(3)).strip() for m in FORMER_ENTRY_ID_RE.finditer(body)
              if m.group(1) or m.group(3)} - {b""}
    assert {token for token in _entry_ids(body) if token} == former


@pytest.mark.parametrize("markup, expected", [
    (b'<feed><entry><id>urn:a</id><link rel="alternate" href="https://x.example/a"/></entry></feed>',
     {b"urn:a", b"https://x.example/a"}),
    (b"<item><GUID isPermaLink='false'> g-1 </Guid><link>https://x.example/1</LINK ></item>",
     {b"g-1", b"https://x.example/1"}),
    (b"<item><guid/><link/><id></id></item>", set()),
    (b"<item><guid>open<guid>g-2</guid></item>", {b"open<guid>g-2"}),
])
def test_linear_digest_reads_identities_like_the_former_pattern(markup, expected):
    from newsmon_triggers.feed_watch import _entry_ids

    former = {(m.group(1) or m.group(3)).strip() for m in FORMER_ENTRY_ID_RE.finditer(markup)
              if m.group(1) or m.group(3)} - {b""}
    assert {token for token in _entry_ids(markup) if token} == expected == former


def test_watcher_uses_the_guarded_fetcher_limits(allow_loopback):
    # Size cap and redirect limit come from the kwargs and are enforced by pipelines.http.Fetcher.
    big = Route(body=b"<rss>" + b"<!-- padding -->" * 200 + b"</rss>", content_type=RSS)
    hops = {f"/hop{i}": Route(status=302, headers={"Location": f"/hop{i + 1}"}, etag=False) for i in range(4)}
    with LocalServer({"/big.xml": big, **hops}) as server:
        for path, hop in list(hops.items()):
            hop.headers = {"Location": server.url(hop.headers["Location"])}
            server.routes[path] = hop
        too_big = make_trigger(server.url("/big.xml"), max_bytes=1000)
        with pytest.raises(FetchError) as caught:
            asyncio.run(too_big.poll_once(None, NetworkPolicy.from_env()))
        assert caught.value.kind == "too-large"
        looping = make_trigger(server.url("/hop0"), max_redirects=2)
        with pytest.raises(FetchError) as caught:
            asyncio.run(looping.poll_once(None, NetworkPolicy.from_env()))
        assert caught.value.kind == "redirects"
        assert len(server.requests_for("/hop0") + server.requests_for("/hop1") + server.requests_for("/hop2")) == 3
        assert server.requests_for("/hop3") == []

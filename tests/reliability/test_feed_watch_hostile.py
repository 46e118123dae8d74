"""Issue 16, sections 2 and 4: the feed-watch trigger against hostile feeds and hostile DNS.

The trigger runs on the Airflow triggerer's one event loop, shared by every watcher, so:
- its entry digest must stay linear in the body (the old regex rescanned to the end of the body
  for every unclosed <id>, <guid> or <link>: quadratic, 75 s for 281 KB);
- nothing CPU-heavy or blocking may run on the loop (probes below prove the loop kept running
  while the digest and the request were in progress, without measuring any time);
- it must connect only to the address it checked: a name that answers an allowed address to the
  check and an internal one to the connect (DNS rebinding) must never reach the internal one;
- one deadline bounds its request, as for the main fetcher.

The watcher's allowed "public" server is 127.0.0.5 with only 127.0.0.5/32 allow-listed (no test
may leave loopback); the internal victims are a real listener on 127.0.0.1 and the metadata
address 169.254.169.254, which no test can listen on, so a connect spy records every address the
process tries to connect to and refuses all but loopback (nothing ever leaves the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time

import pytest

from pipelines.errors import FetchError
from pipelines.netguard import NetworkPolicy
from tests.localserver import Route
from tests.reliability.harness import RSS, Site, Victim, rss, rss_item

FEED_HOST = "127.0.0.5"
ALLOW = NetworkPolicy([f"{FEED_HOST}/32"])
REBOUND_NAME = "wire.rebinding.example.test"
SIZE = 300_000


@pytest.fixture(scope="module")
def feed_watch():
    """The trigger module, imported under the throw-away AIRFLOW_HOME of tests/dags (set up before
    Airflow's first import, which reads its configuration)."""
    if "airflow" not in sys.modules:  # else tests/dags/conftest.py, loaded by this session, did it already
        import tests.dags.conftest  # noqa: F401 - sets AIRFLOW_HOME and sys.path before Airflow is imported
    pytest.importorskip("airflow", reason="Apache Airflow is not installed")
    from newsmon_triggers import feed_watch

    return feed_watch


def trigger(feed_watch, url: str, **kwargs):
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 5)
    return feed_watch.FeedWatchTrigger(feed_id="hostile-wire", url=url, allow_networks=f"{FEED_HOST}/32", **kwargs)


async def run_until(watcher, until, timeout: float = 10.0) -> list:
    """Drive watcher.run() until `until()` holds (or fail after `timeout`); returns its events."""
    events: list = []

    async def consume():
        async for event in watcher.run():
            events.append(event)

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(timeout):
            while not until():
                if task.done():
                    task.result()
                    raise AssertionError("the watcher stopped without an exception")
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return events


# --- hostile bodies for the digest -----------------------------------------------------------------

def _fill(unit: bytes, size: int = SIZE) -> bytes:
    return b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>' + unit * (size // len(unit))


HOSTILE_BODIES = {
    "unclosed-id": _fill(b"<entry><id>tag:x"),
    "unclosed-guid": _fill(b'<item><guid isPermaLink="false">g'),
    "unclosed-link": _fill(b"<item><link>http://x/"),
    "link-tag-never-ends": _fill(b'<link rel="alternate" type="text/html" '),
    "broken-closers": _fill(b"<item><guid>g</guid <link>l</link <id>i</id "),
    "mixed-case-unclosed": _fill(b"<ID>a<Guid>b<LINK>c"),
}


@pytest.mark.time_bound(20)
@pytest.mark.parametrize("shape", sorted(HOSTILE_BODIES))
def test_digest_of_unclosed_identity_tags_is_linear(feed_watch, shape):
    body = HOSTILE_BODIES[shape]
    digest = feed_watch.feed_digest(body)  # the old regex needs minutes here; the bound fails it
    assert len(digest) == 64 and digest == feed_watch.feed_digest(body)


@pytest.mark.time_bound(20)
def test_digest_still_sees_the_real_entries_around_hostile_markup(feed_watch):
    # A well-formed item after 300 KB of unclosed tags still counts: its guid changes the digest.
    hostile = HOSTILE_BODIES["unclosed-guid"]
    before = feed_watch.feed_digest(hostile + b"<item><guid>real-1</guid></item>")
    after = feed_watch.feed_digest(hostile + b"<item><guid>real-2</guid></item>")
    assert before != after


# --- the loop stays free -----------------------------------------------------------------------------

class LoopProbe:
    """Blocks the watcher's work (in whatever thread it runs) until a coroutine on the loop has run.

    If the work runs on the loop itself the coroutine cannot run while it blocks, so the wait ends
    by its bound instead and `loop_ran` stays False: a frozen loop is recorded, not timed."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.loop_alive = threading.Event()
        self.loop_ran: list[bool] = []
        self.threads: list[threading.Thread] = []

    def block_until_loop_runs(self) -> None:
        self.threads.append(threading.current_thread())
        self.started.set()
        self.loop_ran.append(self.loop_alive.wait(timeout=5))

    async def keep_alive(self) -> None:
        while not self.started.is_set():
            await asyncio.sleep(0.005)
        self.loop_alive.set()


@pytest.mark.time_bound(30)
def test_digest_of_a_big_body_runs_off_the_event_loop(feed_watch, monkeypatch):
    probe = LoopProbe()
    real_digest = feed_watch.feed_digest

    def probed_digest(body: bytes) -> str:
        probe.block_until_loop_runs()
        return real_digest(body)

    monkeypatch.setattr(feed_watch, "feed_digest", probed_digest)
    big = rss([rss_item(title=f"Item {n}", guid=f"big-{n}", link=f"http://{FEED_HOST}/{n}",
                        description="A long enough summary of a council notice. " * 20) for n in range(3000)])
    with Site({"/big.xml": Route(body=big, content_type=RSS)}, host=FEED_HOST) as server:
        watcher = trigger(feed_watch, server.url("/big.xml"), fire_on_start=True)

        async def scenario():
            alive = asyncio.create_task(probe.keep_alive())
            events = await run_until(watcher, lambda: probe.loop_ran)
            alive.cancel()
            return events

        asyncio.run(scenario())
    assert probe.loop_ran == [True], "the loop was frozen while the digest ran"
    assert probe.threads[0] is not threading.main_thread()


@pytest.mark.time_bound(30)
def test_request_runs_off_the_event_loop(feed_watch):
    # The server holds its answer until a coroutine on the watcher's loop has run.
    probe = LoopProbe()

    def held_answer(request):
        probe.block_until_loop_runs()
        body = rss([rss_item(title="One", guid="one", link=f"http://{FEED_HOST}/1")])
        request.send_response(200)
        request.send_header("Content-Type", RSS)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    with Site({"/held.xml": Route(handler=held_answer)}, host=FEED_HOST) as server:
        watcher = trigger(feed_watch, server.url("/held.xml"))

        async def scenario():
            alive = asyncio.create_task(probe.keep_alive())
            await run_until(watcher, lambda: probe.loop_ran and watcher.digest is not None)
            alive.cancel()

        asyncio.run(scenario())
    assert probe.loop_ran[0] is True


# --- one deadline for the watcher's request ---------------------------------------------------------

def drip_after_close(request):
    request.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nConnection: close\r\n\r\n<rss>")
    stop = time.monotonic() + 40
    try:
        while time.monotonic() < stop:
            request.wfile.write(b"<!-- drip -->")
            request.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass
    request.close_connection = True


@pytest.mark.time_bound(30)
def test_a_dripping_feed_is_cut_at_the_watchers_timeout_and_polled_again(feed_watch):
    with Site({"/drip.xml": Route(handler=drip_after_close)}, host=FEED_HOST) as server:
        watcher = trigger(feed_watch, server.url("/drip.xml"), timeout=1)
        asyncio.run(run_until(watcher, lambda: len(server.requests_for("/drip.xml")) >= 2, timeout=15))
    assert watcher.digest is None  # never a baseline from half a body


# --- DNS rebinding ------------------------------------------------------------------------------------

class Rebinder:
    """socket.getaddrinfo for one invented name: the allowed address first, then `internal` for ever.
    Every other name goes to the real resolver."""

    def __init__(self, internal: str):
        self.internal = internal
        self.answers: list[str] = []
        self._real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):
        if host in (REBOUND_NAME, REBOUND_NAME.encode()):
            address = FEED_HOST if not self.answers else self.internal
            self.answers.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]
        return self._real(host, port, *args, **kwargs)


class ConnectSpy:
    """Records every IPv4/IPv6 address this process connects to; refuses all but loopback."""

    def __init__(self) -> None:
        self.addresses: list[str] = []

    def install(self, monkeypatch) -> None:
        real_connect = socket.socket.connect
        spy = self

        def connect(sock: socket.socket, address) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                spy.addresses.append(address[0])
                if not address[0].startswith("127.") and address[0] != "::1":
                    raise ConnectionRefusedError(f"the test suite never leaves loopback ({address[0]})")
            real_connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)

    def reached(self, internal: str) -> bool:
        return internal in self.addresses


@pytest.mark.time_bound(40)
@pytest.mark.parametrize("internal", ["127.0.0.1", "169.254.169.254"])
def test_a_rebinding_name_never_reaches_the_internal_address(feed_watch, monkeypatch, internal):
    body = rss([rss_item(title="Wire item", guid="wire-1", link=f"http://{FEED_HOST}/1")])
    with Site({"/feed.xml": Route(body=body, content_type=RSS)}, host=FEED_HOST) as server:
        victim = Victim("127.0.0.1", server.port) if internal == "127.0.0.1" else None
        rebinder, spy = Rebinder(internal), ConnectSpy()
        monkeypatch.setattr(socket, "getaddrinfo", rebinder)
        spy.install(monkeypatch)
        try:
            watcher = trigger(feed_watch, f"http://{REBOUND_NAME}:{server.port}/feed.xml")
            # Until the watcher went inside, or polled three times (a kept-alive connection to the
            # checked address needs no new lookup), or asked the name three times.
            asyncio.run(run_until(watcher, lambda: spy.reached(internal) or len(rebinder.answers) >= 3
                                  or len(server.requests_for("/feed.xml")) >= 3, timeout=20))
        finally:
            monkeypatch.undo()
            accepted = victim.accepted if victim else 0
            if victim:
                victim.close()
    assert internal not in spy.addresses, f"the watcher connected to {internal}: {spy.addresses}"
    assert accepted == 0
    assert set(spy.addresses) == {FEED_HOST}, spy.addresses
    assert server.requests_for("/feed.xml"), "the allowed answer was never used: the zero above means nothing"
    assert watcher.digest is not None  # the first poll, on the checked address, took its baseline


@pytest.mark.time_bound(40)
def test_a_rebinding_redirect_target_never_reaches_the_internal_address(feed_watch, monkeypatch):
    # The feed redirects to the rebinding name: each hop's check and connect are one and the same.
    body = rss([rss_item(title="Wire item", guid="wire-1", link=f"http://{FEED_HOST}/1")])
    with Site({"/feed.xml": Route(body=body, content_type=RSS)}, host=FEED_HOST) as server:
        server.routes["/moved.xml"] = Route(status=301, etag=False, last_modified=None,
                                            headers={"Location": f"http://{REBOUND_NAME}:{server.port}/feed.xml"})
        victim = Victim("127.0.0.1", server.port)
        rebinder, spy = Rebinder("127.0.0.1"), ConnectSpy()
        monkeypatch.setattr(socket, "getaddrinfo", rebinder)
        spy.install(monkeypatch)
        try:
            watcher = trigger(feed_watch, server.url("/moved.xml"))
            asyncio.run(run_until(watcher, lambda: spy.reached("127.0.0.1") or len(rebinder.answers) >= 3
                                  or len(server.requests_for("/feed.xml")) >= 3, timeout=20))
        finally:
            monkeypatch.undo()
            accepted = victim.accepted
            victim.close()
    assert accepted == 0 and "127.0.0.1" not in spy.addresses, spy.addresses
    assert server.requests_for("/moved.xml") and server.requests_for("/feed.xml")


@pytest.mark.time_bound(20)
def test_poll_once_refuses_the_internal_answer_with_a_one_line_error(feed_watch, monkeypatch):
    # After the first answer the name points inside: the next poll (a fresh connection, so a fresh
    # lookup) is refused before connecting.
    body = rss([rss_item(title="Wire item", guid="wire-1", link=f"http://{FEED_HOST}/1")])
    with Site({"/feed.xml": Route(body=body, content_type=RSS)}, host=FEED_HOST) as server:
        rebinder = Rebinder("169.254.169.254")
        monkeypatch.setattr(socket, "getaddrinfo", rebinder)
        watcher = trigger(feed_watch, f"http://{REBOUND_NAME}:{server.port}/feed.xml")
        first = asyncio.run(watcher.poll_once(None, ALLOW))
        with pytest.raises(FetchError) as caught:
            asyncio.run(watcher.poll_once(None, ALLOW))
    assert first.status == 200
    assert caught.value.kind == "refused" and "169.254.169.254" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert len(server.requests_for("/feed.xml")) == 1

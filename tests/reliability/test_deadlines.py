"""Issue 16, section 1: one deadline bounds the whole request, whatever the server drips and redirects.

Each hostile server below keeps a request alive far longer than the fetcher's total_timeout, a few
bytes at a time, so no per-read timeout ever fires: after `Connection: close` (http.client drops
its socket reference for such a response, so a watchdog that shuts `conn.sock` cuts nothing), as an
HTTP/1.0 answer without a length, as chunks, as header lines (slowloris), as endless interim 1xx
answers, and under a Content-Length the cap accepts. Redirect chains whose hops are each quick
enough, but whose sum is not, must also stop at the one deadline. The SIGALRM bound of the
conftest turns a hang into a failure; nothing here asserts on timing.
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import pytest

from pipelines.cycle import run_cycle
from pipelines.errors import FetchError
from pipelines.http import Fetcher
from pipelines.netguard import NetworkPolicy
from tests.localserver import Route
from tests.reliability.harness import (
    GOOD_PAGES,
    RSS,
    Site,
    assert_one_line_errors,
    monitor,
    rss,
    rss_item,
    site,
)

LOOPBACK = NetworkPolicy(["127.0.0.0/8"])
DRIP_FOR = 40.0  # seconds a hostile server keeps dripping: far beyond every deadline and bound here
BOUND = 20  # SIGALRM seconds per test: the old code hangs past it


def _drip(request: BaseHTTPRequestHandler, piece: bytes, every: float = 0.1) -> None:
    """Write `piece` every `every` seconds until the client goes away or DRIP_FOR passes."""
    stop = time.monotonic() + DRIP_FOR
    try:
        while time.monotonic() < stop:
            request.wfile.write(piece)
            request.wfile.flush()
            time.sleep(every)
    except OSError:
        pass
    request.close_connection = True


def _head(request: BaseHTTPRequestHandler, headers: dict[str, str], version: bytes = b"HTTP/1.1") -> None:
    lines = [version + b" 200 OK", b"Content-Type: text/html; charset=utf-8"]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    request.wfile.write(b"\r\n".join(lines) + b"\r\n\r\n")
    request.wfile.flush()


def drip_after_close(request):
    _head(request, {"Connection": "close"})
    _drip(request, b"<p>drip..</p>")


def drip_http10_no_length(request):
    _head(request, {}, version=b"HTTP/1.0")
    _drip(request, b"<p>drip..</p>")


def drip_chunked(request):
    _head(request, {"Transfer-Encoding": "chunked"})
    _drip(request, b"a\r\n" + b"<p>drip.</p>"[:10] + b"\r\n")


def drip_chunked_close(request):
    _head(request, {"Transfer-Encoding": "chunked", "Connection": "close"})
    _drip(request, b"a\r\n" + b"<p>drip.</p>"[:10] + b"\r\n")


def drip_one_big_chunk_close(request):
    """One chunk announced as 1 MB, its bytes dripped: no chunk boundary ever comes to check at."""
    _head(request, {"Transfer-Encoding": "chunked", "Connection": "close"})
    request.wfile.write(b"100000\r\n")
    _drip(request, b"<p>drip..</p>")


def drip_headers(request):
    request.wfile.write(b"HTTP/1.1 200 OK\r\n")
    counter = iter(range(10**6))
    stop = time.monotonic() + DRIP_FOR
    try:
        while time.monotonic() < stop:
            request.wfile.write(b"X-Drip-%d: 1\r\n" % next(counter))
            request.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass
    request.close_connection = True


def drip_header_bytes(request):
    """One byte of one never-ending status line at a time."""
    request.wfile.write(b"HTTP/1.1 200 ")
    _drip(request, b"O")


def endless_interim_answers(request):
    """`100 Continue` after `100 Continue`: http.client skips each and waits for the real answer."""
    _drip(request, b"HTTP/1.1 100 Continue\r\n\r\n")


def drip_huge_length_close(request):
    _head(request, {"Content-Length": "900000", "Connection": "close"})
    _drip(request, b"<p>drip..</p>")


def drip_huge_length_keep_alive(request):
    _head(request, {"Content-Length": "900000"})
    _drip(request, b"<p>drip..</p>")


DRIPS = {
    "connection-close": drip_after_close,
    "http10-no-length": drip_http10_no_length,
    "chunked": drip_chunked,
    "chunked-close": drip_chunked_close,
    "one-big-chunk-close": drip_one_big_chunk_close,
    "header-lines": drip_headers,
    "status-line-bytes": drip_header_bytes,
    "endless-100-continue": endless_interim_answers,
    "huge-length-close": drip_huge_length_close,
    "huge-length-keep-alive": drip_huge_length_keep_alive,
}


@pytest.fixture(scope="module")
def drip_site():
    with Site({f"/drip/{name}": Route(handler=handler) for name, handler in DRIPS.items()}) as server:
        yield server


def fetcher(total: float = 1.0, **kwargs) -> Fetcher:
    return Fetcher(policy=LOOPBACK, connect_timeout=2, read_timeout=5, total_timeout=total,
                   per_host_delay=0.0, **kwargs)


@pytest.mark.time_bound(BOUND)
@pytest.mark.parametrize("kind", ["feed", "page"])
@pytest.mark.parametrize("variant", sorted(DRIPS))
def test_slow_drip_stops_at_the_total_deadline(drip_site, variant, kind):
    client = fetcher()
    try:
        with pytest.raises(FetchError) as caught:
            client.fetch(drip_site.url(f"/drip/{variant}"), kind=kind)
    finally:
        client.close()
    assert caught.value.kind == "timeout", caught.value
    assert "total deadline of 1s" in caught.value.reason
    assert "\n" not in str(caught.value)


@pytest.mark.time_bound(BOUND)
def test_the_same_fetcher_keeps_working_after_cut_drips(drip_site):
    # A cut socket must never go back to the pool: the next request on the same host gets a clean one.
    drip_site.routes["/ok"] = Route(body=b"<p>" + b"still fine. " * 30 + b"</p>")
    client = fetcher(total=0.5, per_host_concurrency=1)
    try:
        for variant in ("connection-close", "huge-length-keep-alive", "chunked"):
            with pytest.raises(FetchError, match="total deadline"):
                client.fetch(drip_site.url(f"/drip/{variant}"))
            assert b"still fine" in client.fetch(drip_site.url("/ok")).body
    finally:
        client.close()


# --- redirect chains ----------------------------------------------------------------------------

def _slow_redirect(target: str, wait: float):
    def handle(request):
        time.sleep(wait)
        request.send_response(302)
        request.send_header("Location", target)
        request.send_header("Content-Length", "0")
        request.end_headers()
    return handle


def _dripped_redirect(target: str, lines: int):
    """A redirect whose headers arrive one line per 0.1 s: each hop quick, the chain not."""
    def handle(request):
        try:
            request.wfile.write(b"HTTP/1.1 302 Found\r\n")
            for n in range(lines):
                request.wfile.write(b"X-Hop-Padding-%d: 1\r\n" % n)
                request.wfile.flush()
                time.sleep(0.1)
            request.wfile.write(f"Location: {target}\r\nContent-Length: 0\r\n\r\n".encode())
        except OSError:
            pass
    return handle


def _chain(server: Site, name: str, hops: int, make) -> str:
    """/name/0 -> /name/1 -> ... -> /name/<hops>, a page; returns the first URL."""
    server.routes[f"/{name}/{hops}"] = Route(body=b"<p>" + b"the end of the chain. " * 20 + b"</p>")
    for hop in range(hops):
        server.routes[f"/{name}/{hop}"] = Route(handler=make(f"{server.base}/{name}/{hop + 1}"))
    return f"{server.base}/{name}/0"


@pytest.mark.time_bound(BOUND)
@pytest.mark.parametrize("kind", ["feed", "page"])
@pytest.mark.parametrize("style", ["slow-answer", "dripped-headers"])
def test_a_redirect_chain_shares_one_deadline(style, kind):
    # Five hops of 0.6 s each: every hop is inside the 1.5 s deadline, the chain (3 s) is not.
    make = ((lambda target: _slow_redirect(target, 0.6)) if style == "slow-answer"
            else (lambda target: _dripped_redirect(target, 6)))
    with Site() as server:
        start = _chain(server, "hop", 5, make)
        client = fetcher(total=1.5, max_redirects=6)
        try:
            with pytest.raises(FetchError) as caught:
                client.fetch(start, kind=kind)
        finally:
            client.close()
        reached = [r.path for r in server.log]
    assert caught.value.kind == "timeout", caught.value
    assert "total deadline of 1.5s" in caught.value.reason
    assert "/hop/5" not in reached, reached  # the deadline stopped the chain before its end


@pytest.mark.time_bound(BOUND)
def test_a_quick_redirect_chain_still_arrives():
    # Control for the test above: the shared deadline does not shorten chains that fit in it.
    with Site() as server:
        start = _chain(server, "quick", 4, lambda target: _slow_redirect(target, 0.05))
        client = fetcher(total=5, max_redirects=5)
        try:
            response = client.fetch(start)
        finally:
            client.close()
    assert response.url.endswith("/quick/4") and b"end of the chain" in response.body


# --- a whole cycle --------------------------------------------------------------------------------

@pytest.mark.time_bound(40)
def test_a_cycle_with_dripping_feeds_and_pages_finishes(tmp_path):
    # Two feeds drip (after Connection: close, and chunked); the good feed's items link to dripping
    # pages and to one good page. The cycle must end, name each drip as a timeout, and keep the rest.
    server = site()
    for name, handler in DRIPS.items():
        server.routes[f"/drip/{name}"] = Route(handler=handler)
    links = [f"{server.base}/drip/connection-close", f"{server.base}/drip/huge-length-close",
             f"{server.base}/pages/{GOOD_PAGES[0]}.html"]
    items = [rss_item(title=f"Item {n}", guid=f"d-{n}", link=link,
                      description=f"Notice {n}: the harbour board met about dripping servers on evening {n}.")
             for n, link in enumerate(links)]
    server.routes["/feeds/good.xml"] = Route(body=rss(items), content_type=RSS)
    feeds = [{"id": "good", "url": f"{server.base}/feeds/good.xml"},
             {"id": "drip-close", "url": f"{server.base}/drip/connection-close"},
             {"id": "drip-chunked", "url": f"{server.base}/drip/chunked"}]
    with server, monitor(tmp_path, feeds, fetch={"total_timeout": 1, "read_timeout": 5}) as ctx:
        report = run_cycle(ctx)
    assert_one_line_errors(report)
    for feed_id in ("drip-close", "drip-chunked"):
        [line] = [e for e in report.errors if e.startswith(f"feed {feed_id} ")]
        assert "timed out" in line, line
    for link in links[:2]:
        lines = [e for e in report.errors if e.startswith(f"feed good: page {link}: ")]
        assert len(lines) == 1 and "timed out" in lines[0], (link, report.errors)
    assert report.articles_stored == 3  # the dripping pages' items survive on their feed text

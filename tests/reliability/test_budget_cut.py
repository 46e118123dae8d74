"""Issue 16 §1: requests still running when the cycle budget ends are cut then, not left to run on.

Each tar-pit here answers with headers, then drips a byte every 0.2 s for far longer than any
test, and the fetcher's own total deadline (60 s) is much longer than the cycle budget (4 s). So
only the budget's cap on each request (Fetcher.fetch(not_after=...)) can end those requests before
the time bound of this module's tests: joining the cycle's fetch threads (what the interpreter does
at exit after `newsmon run --once`) or waiting for the CLI process then hits the SIGALRM bound of
tests/reliability/conftest.py on code that leaves them running.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import yaml

from pipelines.cycle import run_cycle
from pipelines.errors import FetchError
from pipelines.http import Fetcher
from pipelines.netguard import NetworkPolicy
from tests.localserver import Route
from tests.reliability.harness import (
    HTML,
    LOOPBACK_ONLY,
    RSS,
    Site,
    assert_nothing_lost,
    assert_one_line_errors,
    feed_state,
    finish_runner,
    inbox_size,
    monitor,
    redirect,
    snapshot,
    start_runner,
    wait_ready,
    write_config,
)
from tests.reliability.test_cycle_hostile import item_feed, released, story_page

SLOW_FETCH = {"total_timeout": 60, "read_timeout": 30}  # far beyond the budget and the time bounds
BUDGET = timedelta(seconds=4)
BOUND = 30  # seconds: a few budgets, far less than one total_timeout
DRIP_FOR = 120.0  # a tar-pit gives up by itself only after this long


def tarpit(release: threading.Event, content_type: str = HTML):
    """Headers at once, then a byte every 0.2 s until `release` is set or the client hangs up."""
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", "1000000")
        request.end_headers()
        started = time.monotonic()
        while not release.wait(0.2) and time.monotonic() - started < DRIP_FOR:
            try:
                request.wfile.write(b" ")
                request.wfile.flush()
            except OSError:
                return
    return handle


def join_fetch_threads() -> None:
    """Wait, unbounded (the SIGALRM bound fails the test), for every fetch thread of the cycle to end."""
    for thread in threading.enumerate():
        if thread.name.startswith(("newsmon-poll", "newsmon-page")):
            thread.join()


def fetcher(**limits) -> Fetcher:
    args = {"total_timeout": 60, "read_timeout": 30, "per_host_concurrency": 1, "per_host_delay": 0.0, **limits}
    return Fetcher(policy=NetworkPolicy(allow=list(LOOPBACK_ONLY)), **args)


# --- the fetcher's cap -------------------------------------------------------------------------------

@pytest.mark.time_bound(BOUND)
@pytest.mark.parametrize("kind", ["feed", "page"])
@pytest.mark.parametrize("via_redirect", [False, True], ids=["direct", "after-a-redirect"])
def test_not_after_cuts_a_drip_long_before_the_total_deadline(kind, via_redirect):
    release = threading.Event()
    with Site() as server, released(release):
        server.routes["/pit"] = Route(handler=tarpit(release, RSS if kind == "feed" else HTML))
        server.routes["/hop"] = redirect(server.url("/pit"))
        client = fetcher()
        try:
            with pytest.raises(FetchError) as caught:
                client.fetch(server.url("/hop" if via_redirect else "/pit"), kind=kind,
                             not_after=time.monotonic() + 1.0)
        finally:
            client.close()
        assert caught.value.kind == "cut", caught.value
        assert "\n" not in str(caught.value)


@pytest.mark.time_bound(BOUND)
def test_the_own_total_deadline_still_wins_when_it_comes_first():
    """A cap later than total_timeout changes nothing: the request is a plain timeout, the server's fault."""
    release = threading.Event()
    with Site() as server, released(release):
        server.routes["/pit"] = Route(handler=tarpit(release))
        client = fetcher(total_timeout=1)
        try:
            with pytest.raises(FetchError) as caught:
                client.fetch(server.url("/pit"), not_after=time.monotonic() + 600)
        finally:
            client.close()
        assert caught.value.kind == "timeout", caught.value


@pytest.mark.time_bound(BOUND)
def test_a_passed_cap_sends_nothing_and_a_slot_waiter_stops_at_the_cap():
    """Queued behind our own tar-pit request for the host's only slot, a fetch ends at its cap without
    ever connecting; and a fetch whose cap has already passed never reaches the server."""
    release = threading.Event()
    with Site() as server, released(release):
        server.routes["/pit"] = Route(handler=tarpit(release))
        server.routes["/ok"] = Route(body=story_page(1), content_type=HTML)
        client = fetcher(per_host_concurrency=1)
        errors: list[FetchError] = []

        def hold_the_slot() -> None:
            try:
                client.fetch(server.url("/pit"), not_after=time.monotonic() + 3.0)
            except FetchError as err:
                errors.append(err)

        holder = threading.Thread(target=hold_the_slot, daemon=True)
        try:
            holder.start()
            holding = time.monotonic() + 10
            while not server.requests_for("/pit") and time.monotonic() < holding:
                time.sleep(0.02)
            assert server.requests_for("/pit"), f"the slot holder never reached the server: {errors}"
            with pytest.raises(FetchError) as waited:
                client.fetch(server.url("/ok"), not_after=time.monotonic() + 1.0)
            holder.join()
            with pytest.raises(FetchError) as late:
                client.fetch(server.url("/ok"), not_after=time.monotonic() - 1.0)
        finally:
            client.close()
        assert waited.value.kind == "cut" and late.value.kind == "cut"
        assert [e.kind for e in errors] == ["cut"]
        assert server.requests_for("/ok") == []  # neither fetch sent a request


# --- the cycle ---------------------------------------------------------------------------------------

@pytest.mark.time_bound(BOUND)
def test_requests_running_at_the_budget_are_cut_deferred_and_done_next_cycle(tmp_path):
    """A tar-pit feed (with a known ETag) and six tar-pit pages (more than the host's four slots),
    total_timeout 60 s, budget 4 s: the cycle's fetch threads end with it, the feed's state and the
    items stay as they were, the report counts them deferred (not failed), and the next cycle,
    with the servers fixed, polls the feed with its old ETag and stores every deferred item."""
    release = threading.Event()
    pits = [f"/pages/pit{n}.html" for n in range(6)]
    with Site() as server, released(release):
        server.routes["/feeds/pit.xml"] = Route(body=item_feed(server.base, ["/pages/a.html"], "Pit wire"),
                                                content_type=RSS)
        server.routes["/feeds/wire.xml"] = Route(body=item_feed(server.base, ["/pages/w.html"], "Wire"),
                                                 content_type=RSS)
        for name, n in (("a", 1), ("w", 2), ("x", 3), ("b", 4)):
            server.routes[f"/pages/{name}.html"] = Route(body=story_page(n), content_type=HTML)
        feeds = [{"id": "pit", "url": server.url("/feeds/pit.xml")},
                 {"id": "wire", "url": server.url("/feeds/wire.xml")}]
        with monitor(tmp_path, feeds, fetch=SLOW_FETCH) as ctx:
            ctx.config.settings.cycle_budget = timedelta(seconds=60)
            warm = run_cycle(ctx)
            assert warm.articles_stored == 2 and warm.failures == [], warm.errors
            pit_before = feed_state(ctx.store, "pit")
            assert pit_before.etag
            stored_before = snapshot(ctx.store)

            # The pit feed's server turns into a tar-pit; the wire's new items point at six tar-pit pages.
            server.routes["/feeds/pit.xml"] = Route(handler=tarpit(release, RSS))
            server.routes["/feeds/wire.xml"] = Route(
                body=item_feed(server.base, ["/pages/x.html", *pits], "Wire"), content_type=RSS)
            for path in pits:
                server.routes[path] = Route(handler=tarpit(release))
            ctx.config.settings.cycle_budget = BUDGET
            cut = run_cycle(ctx)
            join_fetch_threads()  # old code: each runs on for total_timeout, far past the bound

            assert cut.failures == [] and cut.feeds_failed == 0 and cut.page_fallbacks == 0, cut.errors
            assert cut.feeds_deferred == 1
            assert cut.items_new == 7 and cut.items_deferred >= 6  # the fast page may be stored or deferred
            assert cut.articles_stored + cut.items_deferred == 7, cut.errors
            assert inbox_size(ctx.store) == cut.items_deferred
            assert feed_state(ctx.store, "pit") == pit_before  # not polled as far as its state knows
            assert not [e for e in cut.errors if "timed out" in e or "cut" in e], cut.errors
            assert_one_line_errors(cut)

            # The servers are fixed: the next cycle repeats what was deferred.
            release.set()
            server.routes["/feeds/pit.xml"] = Route(
                body=item_feed(server.base, ["/pages/a.html", "/pages/b.html"], "Pit wire"), content_type=RSS)
            for n, path in enumerate(pits):
                server.routes[path] = Route(body=story_page(10 + n), content_type=HTML)
            ctx.config.settings.cycle_budget = timedelta(seconds=60)
            polls_before = len(server.requests_for("/feeds/pit.xml"))
            again = run_cycle(ctx)
            assert again.feeds_deferred == 0 and again.items_deferred == 0 and again.failures == [], again.errors
            assert again.articles_stored == 1 + cut.items_deferred, again.errors  # pit's new item + the deferred
            assert inbox_size(ctx.store) == 0
            [poll] = server.requests_for("/feeds/pit.xml")[polls_before:]
            assert poll.headers.get("If-None-Match") == pit_before.etag  # the ETag never moved past the cut
            pit_after = feed_state(ctx.store, "pit")
            assert pit_after.etag != pit_before.etag and pit_after.last_success and pit_after.error_count == 0
            assert_nothing_lost(stored_before, ctx.store)
            assert len(snapshot(ctx.store)) == 2 + 7 + 1


@pytest.mark.time_bound(BOUND)
def test_run_once_exits_at_the_budget_not_one_total_timeout_later(tmp_path):
    """`newsmon run --once` with a tar-pit feed and tar-pit pages: the process itself ends (exit 0, a
    deferral is no failure) once the budget is spent, and its report counts what it deferred."""
    release = threading.Event()
    pits = [f"/pages/pit{n}.html" for n in range(5)]
    with Site() as server, released(release):
        server.routes["/feeds/pit.xml"] = Route(handler=tarpit(release, RSS))
        server.routes["/feeds/wire.xml"] = Route(body=item_feed(server.base, pits, "Wire"), content_type=RSS)
        for path in pits:
            server.routes[path] = Route(handler=tarpit(release))
        feeds = [{"id": "pit", "url": server.url("/feeds/pit.xml")},
                 {"id": "wire", "url": server.url("/feeds/wire.xml")}]
        config = write_config(tmp_path / "config", feeds, fetch=SLOW_FETCH)
        settings_file = config / "newsmon.yaml"
        settings = yaml.safe_load(settings_file.read_text(encoding="utf-8"))
        settings_file.write_text(yaml.safe_dump({**settings, "cycle_budget": f"{BUDGET.seconds}s"}),
                                 encoding="utf-8")
        proc = start_runner(config, tmp_path / "store.db", "http://127.0.0.1:9/unused", tmp_path)
        try:
            wait_ready(proc)
            report = finish_runner(proc, timeout=600)  # the SIGALRM bound ends a process that lingers
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert report["feeds_deferred"] == 1 and report["feeds_failed"] == 0
        assert report["items_new"] == 5 and report["items_deferred"] == 5 and report["failures"] == []

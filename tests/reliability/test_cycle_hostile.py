"""Issue 16: slow servers, cycle budgets, half-written and split stories, feed fairness, exit codes.

Every server is real (127.0.0.1). A tar-pit answers at once with headers and then drips a byte
every 0.3 s until the test releases it, so neither the per-read timeout nor (set high here) the
fetcher's total deadline cuts it: only the cycle's own behaviour decides whether the others wait.
"""

from __future__ import annotations

import contextlib
import html
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pipelines.cycle import pending_batches, poll_feeds, process_items, run_cycle
from pipelines.models import CycleReport
from pipelines.store.sqlite import SQLiteStore
from tests.localserver import Route
from tests.reliability.crash import state_of
from tests.reliability.harness import (
    HTML,
    REPO,
    RSS,
    Site,
    feed_state,
    inbox_size,
    monitor,
    rfc822,
    rss,
    rss_item,
    runner_env,
    snapshot,
    start_runner,
    wait_ready,
    write_config,
)
from tests.store.conftest import es_proxy  # noqa: F401 - fixture (the logging proxy in front of the cluster)

# The fetcher's own deadline stays far away, so a test that passes does so because of the cycle.
PATIENT_FETCH = {"total_timeout": 120, "read_timeout": 10}
TARPIT_LIMIT = 50.0  # a tar-pit gives up by itself after this long, whatever the test does


def tarpit(release: threading.Event, content_type: str = HTML):
    """A handler that sends headers, then one byte every 0.3 s until `release` is set (then hangs up)."""
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", "1000000")
        request.end_headers()
        started = time.monotonic()
        while not release.wait(0.3) and time.monotonic() - started < TARPIT_LIMIT:
            try:
                request.wfile.write(b" ")
                request.wfile.flush()
            except OSError:
                return
    return handle


def story_page(n: int, tagline: str = "") -> bytes:
    """A distinct article page (its own words, well over min_chars), optionally with a syndication tagline."""
    paragraphs = [
        f"The county roads office said on day {n} that the river crossing at mile {n} would reopen to "
        "lorries after engineers finished testing the new deck, ending a detour that had added an hour "
        "to every delivery run between the market town and the coast.",
        f"Hauliers had asked for the work to be finished before the harvest, when traffic on route {n} "
        "usually doubles, and the office said night shifts had made that possible without extra cost.",
        f"A spokesperson added that weight limits would be reviewed again in spring {n % 7 + 2020} once "
        "the first season of heavy traffic had been measured on the sensors fitted to the span.",
    ]
    if tagline:
        paragraphs.append(tagline)
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Crossing {n} reopens</title></head>"
            f"<body><article><h1>Crossing {n} reopens to lorries</h1>{body}</article></body></html>").encode()


def item_feed(base: str, paths: list[str], title: str = "Hostile wire") -> bytes:
    now = datetime.now(UTC)
    return rss([rss_item(title=f"{title} item {i}", link=f"{base}{path}", guid=f"{title}-{path}",
                         description=f"{title}: a short summary of item {i} about the river crossing works.",
                         pub_date=rfc822(now - timedelta(minutes=i))) for i, path in enumerate(paths)],
               title=title)


def wait_for(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def queued_for(db: Path, feed_id: str) -> int:
    """Inbox items of one feed, read from the file by a separate connection (as another process would)."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=1)) as conn:
            return conn.execute("SELECT count(*) FROM inbox WHERE feed_id = ?", (feed_id,)).fetchone()[0]
    except sqlite3.Error:
        return 0


@contextlib.contextmanager
def released(*events: threading.Event):
    try:
        yield
    finally:
        for event in events:
            event.set()


# --- 1. one slow feed or page never holds back the others ------------------------------------------

def _fast_and_slow_feeds(server: Site, release: threading.Event) -> list[dict]:
    server.routes["/feeds/fast.xml"] = Route(body=item_feed(server.base, ["/pages/p1.html", "/pages/p2.html"],
                                                            "Fast wire"), content_type=RSS)
    server.routes["/feeds/slow.xml"] = Route(handler=tarpit(release, RSS))
    for n in (1, 2):
        server.routes[f"/pages/p{n}.html"] = Route(body=story_page(n), content_type=HTML)
    return [{"id": "fast", "url": f"{server.base}/feeds/fast.xml"},
            {"id": "slow", "url": f"{server.base}/feeds/slow.xml"}]


@pytest.mark.time_bound(60)
def test_a_tarpit_feed_does_not_hold_back_its_neighbours_spool(tmp_path):
    """The fast feed's items reach the inbox (and its state moves on) while the slow feed still drips."""
    release = threading.Event()
    with Site() as server, released(release):
        feeds = _fast_and_slow_feeds(server, release)
        with monitor(tmp_path, feeds, fetch=PATIENT_FETCH) as ctx:
            report = CycleReport()
            poller = threading.Thread(target=poll_feeds, args=(ctx, report), daemon=True)
            poller.start()
            spooled = wait_for(lambda: queued_for(tmp_path / "store.db", "fast") == 2, timeout=15)
            still_dripping = poller.is_alive()
            release.set()
            poller.join(timeout=30)
            assert spooled and still_dripping, "the fast feed's items waited for the tar-pit feed"
            assert feed_state(ctx.store, "fast").last_success


@pytest.mark.time_bound(90)
def test_a_killed_cycle_keeps_what_the_fast_feed_brought(tmp_path):
    """SIGKILL `newsmon run --once` while a tar-pit feed drips: the fast feed's items are already durable."""
    release = threading.Event()
    with Site() as server, released(release):
        feeds = _fast_and_slow_feeds(server, release)
        config = write_config(tmp_path / "config", feeds, fetch=PATIENT_FETCH)
        db = tmp_path / "store.db"
        proc = start_runner(config, db, "http://127.0.0.1:9/unused", tmp_path)
        try:
            wait_ready(proc)
            spooled = wait_for(lambda: queued_for(db, "fast") == 2 or proc.poll() is not None, timeout=20)
            assert spooled and proc.poll() is None, "nothing durable before the tar-pit feed finished"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        with SQLiteStore(db) as store:
            assert queued_for(db, "fast") == 2 or store.count_articles() > 0
            assert feed_state(store, "fast") is not None and feed_state(store, "slow") is None


@pytest.mark.time_bound(60)
def test_a_tarpit_page_does_not_hold_back_the_rest_of_its_batch(tmp_path):
    """process_items stores each item as its page arrives: three fast pages are stored while one drips."""
    release = threading.Event()
    with Site() as server, released(release):
        paths = ["/pages/slow.html", "/pages/p1.html", "/pages/p2.html", "/pages/p3.html"]
        server.routes["/feeds/wire.xml"] = Route(body=item_feed(server.base, paths), content_type=RSS)
        server.routes["/pages/slow.html"] = Route(handler=tarpit(release))
        for n in (1, 2, 3):
            server.routes[f"/pages/p{n}.html"] = Route(body=story_page(n), content_type=HTML)
        feeds = [{"id": "wire", "url": f"{server.base}/feeds/wire.xml"}]
        with monitor(tmp_path, feeds, fetch=PATIENT_FETCH) as ctx:
            poll_feeds(ctx, CycleReport())
            [batch] = pending_batches(ctx)
            assert len(batch) == 4
            report = CycleReport()
            worker = threading.Thread(target=process_items, args=(ctx, batch, report), daemon=True)
            worker.start()
            with SQLiteStore(tmp_path / "store.db") as reader:
                stored = wait_for(lambda: reader.count_articles() == 3, timeout=15)
            still_dripping = worker.is_alive()
            release.set()
            worker.join(timeout=30)
            assert stored and still_dripping, "the batch's fast pages waited for the tar-pit page"
            assert ctx.store.count_articles() == 4  # the tar-pit item fell back to its feed text
            assert inbox_size(ctx.store) == 0


# --- 2. the cycle budget -------------------------------------------------------------------------

@pytest.mark.time_bound(60)
def test_25_tarpit_pages_are_deferred_at_the_budget_then_stored_later(tmp_path):
    """The cycle ends at its budget (the alarm bound fails the old code, which waits for every page);
    the 25 items stay in the inbox, and the next cycle, with the server fixed, stores all of them."""
    release = threading.Event()
    paths = [f"/pages/t{n}.html" for n in range(25)]
    with Site() as server, released(release):
        server.routes["/feeds/wire.xml"] = Route(body=item_feed(server.base, paths), content_type=RSS)
        for path in paths:
            server.routes[path] = Route(handler=tarpit(release))
        feeds = [{"id": "wire", "url": f"{server.base}/feeds/wire.xml"}]
        with monitor(tmp_path, feeds, fetch=PATIENT_FETCH) as ctx:
            ctx.config.settings.cycle_budget = timedelta(seconds=2)
            first = run_cycle(ctx)
            assert first.failures == [] and first.items_new == 25
            assert first.items_deferred == 25 and first.articles_stored == 0, first.errors
            assert inbox_size(ctx.store) == 25
            assert sum("deferred" in line for line in first.errors) == 1, first.errors
            release.set()  # the servers are fixed
            for n, path in enumerate(paths):
                server.routes[path] = Route(body=story_page(100 + n), content_type=HTML)
            ctx.config.settings.cycle_budget = timedelta(seconds=60)
            second = run_cycle(ctx)
            assert second.items_deferred == 0 and second.articles_stored == 25, second.errors
            assert inbox_size(ctx.store) == 0
            assert len(snapshot(ctx.store)) == 25


@pytest.mark.time_bound(60)
def test_a_tarpit_feed_is_deferred_at_the_budget_and_polled_next_cycle(tmp_path):
    release = threading.Event()
    with Site() as server, released(release):
        feeds = _fast_and_slow_feeds(server, release)
        with monitor(tmp_path, feeds, fetch=PATIENT_FETCH) as ctx:
            ctx.config.settings.cycle_budget = timedelta(seconds=2)
            first = run_cycle(ctx)
            assert first.feeds_deferred == 1 and first.feeds_failed == 0 and first.failures == []
            [line] = [e for e in first.errors if "deferred" in e]
            assert line.startswith("feed slow (") and "cycle budget" in line
            assert first.articles_stored == 2  # the fast feed's pages, in the same cycle
            assert feed_state(ctx.store, "slow") is None  # nothing recorded: polled again next cycle
            release.set()
            server.routes["/feeds/slow.xml"] = Route(body=item_feed(server.base, ["/pages/p3.html"], "Slow wire"),
                                                     content_type=RSS)
            server.routes["/pages/p3.html"] = Route(body=story_page(3), content_type=HTML)
            ctx.config.settings.cycle_budget = timedelta(seconds=60)
            second = run_cycle(ctx)
            assert second.feeds_deferred == 0 and second.articles_stored == 1, second.errors
            assert feed_state(ctx.store, "slow").last_success


# --- 3. half-written stories: SIGKILL between upsert_article and bump_story ----------------------

KILL_AFTER_UPSERT = """
import os, signal, sys
from pipelines.store.sqlite import SQLiteStore
real = SQLiteStore.upsert_article
def upsert_then_die(self, article):
    created = real(self, article)
    if created and len(sys.argv) > 1:
        os.kill(os.getpid(), signal.SIGKILL)  # the article is committed, its story bump is not
    return created
SQLiteStore.upsert_article = upsert_then_die
from pipelines.cli import main
sys.exit(main(["--config", os.environ["H4_CONFIG"], "--store", os.environ["H4_STORE"], "run", "--once", "--json"]))
"""


def _syndicated_site(server: Site, copies: int = 3) -> list[dict]:
    """One story carried by three outlets (near-identical text, each with its own tagline)."""
    feeds = []
    for n in range(copies):
        path = f"/pages/copy{n}.html"
        server.routes[path] = Route(body=story_page(7, tagline=f"Syndicated to outlet number {n} by the wire."),
                                    content_type=HTML)
        server.routes[f"/feeds/outlet{n}.xml"] = Route(body=item_feed(server.base, [path], f"Outlet {n}"),
                                                       content_type=RSS)
        feeds.append({"id": f"outlet{n}", "url": f"{server.base}/feeds/outlet{n}.xml"})
    return feeds


def _kill_run(config: Path, db: Path, workdir: Path, *, kill: bool) -> int:
    env = runner_env("http://127.0.0.1:9/unused") | {"H4_CONFIG": str(config), "H4_STORE": f"sqlite:///{db}"}
    args = [sys.executable, "-c", KILL_AFTER_UPSERT] + (["kill"] if kill else [])
    return subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=120).returncode


@pytest.mark.time_bound(120)
def test_sigkill_between_upsert_and_bump_story_is_repaired_by_the_rerun(tmp_path):
    with Site() as server:
        feeds = _syndicated_site(server)
        reference_dir, trial_dir = tmp_path / "reference", tmp_path / "trial"
        for folder in (reference_dir, trial_dir):
            write_config(folder / "config", feeds)
        assert _kill_run(reference_dir / "config", reference_dir / "store.db", reference_dir, kill=False) == 0
        with monitor(reference_dir, feeds) as ctx:
            expected = state_of(ctx.store)
            assert len(expected.articles) == 3 and list(expected.stories.values()) == [3], expected
        kills = 0
        while _kill_run(trial_dir / "config", trial_dir / "store.db", trial_dir, kill=True) == -signal.SIGKILL:
            kills += 1  # each run stores one more article and dies before counting it in its story
            assert kills <= 3
        assert kills == 3
        with monitor(trial_dir, feeds) as ctx:
            run_cycle(ctx)
            got = state_of(ctx.store)
            assert got.articles == expected.articles
            assert sorted(got.stories.values()) == sorted(expected.stories.values()) == [3], got.stories
            story = ctx.store.get_story(next(iter(got.stories)))
            assert sorted(story["articles"]) == sorted(expected.articles)
            assert inbox_size(ctx.store) == 0


# --- 4. split stories under parallel batches -----------------------------------------------------

def _stall_story_reads(monkeypatch, parties: int = 2, timeout: float = 1.5) -> list[str]:
    """Hold each thread just after its first read of story_keys (at its next statement) until `parties`
    threads have read, or `timeout` passed: the widest window a lost race can have. Where the read is
    inside a write transaction, the other thread cannot read before it (it waits for the lock), the
    barrier times out, and the first one goes on to write."""
    barrier = threading.Barrier(parties, timeout=timeout)
    state = threading.local()
    log: list[str] = []
    real_connect = SQLiteStore._connect

    def trace(statement: str) -> None:
        if getattr(state, "read", False) and not getattr(state, "held", False):
            state.held = True
            try:
                barrier.wait()
                log.append("met")
            except threading.BrokenBarrierError:
                log.append("alone")
        if "FROM story_keys" in statement:
            state.read = True

    def connect(self):
        conn = real_connect(self)
        conn.set_trace_callback(trace)
        return conn

    monkeypatch.setattr(SQLiteStore, "_connect", connect)
    return log


def _race_batches(ctx, batches: list[list[str]]) -> list[CycleReport]:
    reports = [CycleReport() for _ in batches]
    go = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def run(batch, report):
        try:
            go.wait(timeout=10)
            process_items(ctx, batch, report, evaluate=True)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(batches, reports, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return reports


def _one_story(store, expected_articles: int) -> str:
    articles = snapshot(store)
    assert len(articles) == expected_articles
    stories = {story for (_u, _t, _h, story) in articles.values()}
    assert len(stories) == 1, f"one story split in {len(stories)}: {stories}"
    [story] = stories
    assert store.get_story(story)["copies"] == expected_articles
    return story


@pytest.mark.time_bound(60)
@pytest.mark.parametrize("round_", range(3))
def test_parallel_batches_of_syndicated_copies_make_one_story_sqlite(tmp_path, monkeypatch, round_):
    with Site() as server:
        feeds = _syndicated_site(server, copies=2)
        with monitor(tmp_path, feeds, batch_size=1) as ctx:
            poll_feeds(ctx, CycleReport())
            batches = pending_batches(ctx, batch_size=1)
            assert len(batches) == 2
            log = _stall_story_reads(monkeypatch)
            _race_batches(ctx, batches)
            assert len(log) == 2, log  # both threads read story_keys and were held after it
            story = _one_story(ctx.store, 2)
            alert_stories = {a.story_id for a in ctx.store.list_alerts(limit=100)}
            assert alert_stories <= {story}


@pytest.mark.time_bound(90)
def test_parallel_batches_of_syndicated_copies_make_one_story_elasticsearch(tmp_path, es_target, request):
    """The same race on the Elasticsearch store (the osmem-server stand-in of tests/store, or
    NEWSMON_ES_URL), through the suite's logging proxy, which holds the first two story-key reads
    until both workers have asked (or 2 s passed)."""
    from pipelines.store.elasticsearch import open_store as open_es
    from tests.store.conftest import proxied_url

    barrier = threading.Barrier(2, timeout=2.0)
    held: list[str] = []
    lock = threading.Lock()

    def hold_first_two_key_reads(request):
        if "story-keys" in request.path and ("_search" in request.path or "_mget" in request.path):
            with lock:
                hold = len(held) < 2
                if hold:
                    held.append(request.path)
            if hold:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
        return None

    proxy = request.getfixturevalue("es_proxy")
    proxy.intercept = hold_first_two_key_reads
    es = open_es(proxied_url(es_target, proxy), **es_target.options)
    with Site() as server:
        feeds = _syndicated_site(server, copies=2)
        with monitor(tmp_path, feeds, store=es, batch_size=1) as ctx:
            poll_feeds(ctx, CycleReport())
            batches = pending_batches(ctx, batch_size=1)
            assert len(batches) == 2
            _race_batches(ctx, batches)
            assert len(held) == 2
            _one_story(ctx.store, 2)


# --- 5. feed fairness ----------------------------------------------------------------------------

@pytest.mark.time_bound(90)
def test_a_huge_backlog_does_not_starve_a_neighbours_new_item(tmp_path):
    """A feed with a 3,000-item backlog and a small neighbour: the neighbour's one new item is
    processed in the first cycle (batch_size 2 x 64 batches = 128 items a cycle)."""
    from pipelines.models import FeedItem

    with Site() as server:
        server.routes["/feeds/small.xml"] = Route(body=item_feed(server.base, ["/pages/news.html"], "Small"),
                                                  content_type=RSS)
        server.routes["/pages/news.html"] = Route(body=story_page(42), content_type=HTML)
        server.routes["/feeds/huge.xml"] = Route(status=304)  # nothing new from the huge feed this cycle
        feeds = [{"id": "huge", "url": f"{server.base}/feeds/huge.xml"},
                 {"id": "small", "url": f"{server.base}/feeds/small.xml"}]
        with monitor(tmp_path, feeds, batch_size=2) as ctx:
            backlog = [FeedItem(feed_id="huge", item_id=f"old-{n}", link=None, title=f"Old item {n}",
                                summary="backlog") for n in range(3000)]
            assert ctx.store.spool_items(backlog) == 3000
            report = run_cycle(ctx)
            assert report.articles_stored == 1, report.errors
            assert ctx.store.seen_items("small", ["Small-/pages/news.html"]), "the neighbour's item waited"
            assert inbox_size(ctx.store) == 3000 - 127


# --- 6. exit codes: a full disk and a read-only store -----------------------------------------------

def _cli(config: Path, db: Path, *, limit_bytes: int | None = None, read_only: bool = False):
    """`newsmon run --once --json` in a child: with a file-size limit (the disk is full past it) or
    without CAP_DAC_OVERRIDE (so a 0444 store is read-only even for root)."""
    env = {**os.environ, "NEWSMON_ALLOW_NETWORKS": "127.0.0.1/32", "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "pipelines.cli", "--config", str(config), "--store", f"sqlite:///{db}",
            "run", "--once", "--json"]

    def limit() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    if read_only:
        if not os.path.exists("/usr/bin/setpriv"):
            pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
        args = ["/usr/bin/setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--", *args]
    return subprocess.run(args, cwd=db.parent, env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit if limit_bytes is not None else None)


def _three_pages(server: Site) -> list[dict]:
    paths = [f"/pages/p{n}.html" for n in range(3)]
    for n, path in enumerate(paths):
        server.routes[path] = Route(body=story_page(200 + n), content_type=HTML)
    server.routes["/feeds/wire.xml"] = Route(body=item_feed(server.base, paths), content_type=RSS)
    return [{"id": "wire", "url": f"{server.base}/feeds/wire.xml"}]


@pytest.mark.time_bound(120)
@pytest.mark.parametrize("headroom", [0, 4096, 40_000])
def test_run_once_exits_1_on_a_full_disk_and_recovers(tmp_path, headroom):
    with Site() as server:
        feeds = _three_pages(server)
        config = write_config(tmp_path / "config", feeds)
        db = tmp_path / "store.db"
        SQLiteStore(db).close()
        full = _cli(config, db, limit_bytes=os.path.getsize(db) + headroom)
        assert full.returncode == 1, full.stderr
        assert "cycle failed: store unavailable" in full.stderr, full.stderr
        assert "Traceback" not in full.stderr
        again = _cli(config, db)  # space freed: everything arrives, nothing was lost
        assert again.returncode == 0, again.stderr
        with SQLiteStore(db) as store:
            assert store.count_articles() == 3 and inbox_size(store) == 0


@pytest.mark.time_bound(120)
def test_run_once_exits_1_on_a_read_only_store_and_recovers(tmp_path):
    with Site() as server:
        feeds = _three_pages(server)
        config = write_config(tmp_path / "config", feeds)
        db = tmp_path / "store.db"
        SQLiteStore(db).close()
        db.chmod(0o444)
        ro = _cli(config, db, read_only=True)
        assert ro.returncode == 1, ro.stderr
        assert "readonly" in ro.stderr and "cycle failed: store unavailable" in ro.stderr, ro.stderr
        with SQLiteStore(db) as store:
            assert store.list_feed_states() == [] and inbox_size(store) == 0  # nothing half-recorded
        db.chmod(0o644)
        again = _cli(config, db)
        assert again.returncode == 0, again.stderr
        with SQLiteStore(db) as store:
            assert store.count_articles() == 3 and inbox_size(store) == 0


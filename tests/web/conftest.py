"""Dashboard test fixtures: a store filled by the REAL pipeline from the sample coverage, plus hostile records.

The coverage (tests/fixtures/coverage/) is served by pipelines.demo.CoverageServer on
127.0.0.1 and run through one real cycle (fetch, extract, tag, store, alerts). Then a
hostile article, alert and feed state are written straight into the store: their every
text field carries markup that would run if the dashboard ever treated text as HTML.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.cycle import open_context, run_cycle
from pipelines.demo import CoverageServer, write_demo_config
from pipelines.models import Alert, Article, CycleReport, Development, FeedState, TopicHit, iso, utcnow
from pipelines.netguard import NetworkPolicy
from pipelines.store import open_store

REPO = Path(__file__).resolve().parents[2]

# Each payload sets a distinct window.__pwned value, so a failure says which field leaked.
HOSTILE_TITLE = 'Hostile ceasefire report <script>window.__pwned="title"</script><img src=x onerror="window.__pwned=\'title-img\'">'
HOSTILE_TEXT = ("Officials said the ceasefire held overnight. <script>window.__pwned='text'</script> "
                "<img src=x onerror=\"window.__pwned='text-img'\"> Talks on the ceasefire resume next week.")
HOSTILE_SOURCE = '<svg onload="window.__pwned=\'source\'">Evil Source'
HOSTILE_PLACE = '<img src=x onerror="window.__pwned=\'place\'">Hostile Town'
HOSTILE_EVIDENCE = 'The ceasefire was violated <img src=x onerror="window.__pwned=\'evidence\'">'
HOSTILE_ALERT_TITLE = 'Alert <script>window.__pwned="alert"</script><img src=x onerror="window.__pwned=\'alert-img\'">'
HOSTILE_FEED_ID = '<img src=x onerror="window.__pwned=\'feed\'">'
HOSTILE_ERROR = 'HTTP 500 <script>window.__pwned="feed-error"</script>'
HOSTILE_STORY = "shostile000000001"
HOSTILE_ARTICLE_ID = "0" * 31 + "1"


@dataclass
class Filled:
    store_url: str
    db_path: Path
    config_dir: Path
    report: CycleReport
    coverage_base: str  # the (now stopped) coverage server's base URL, as stored in article URLs


def add_hostile_records(store: Any) -> None:
    article = Article(
        id=HOSTILE_ARTICLE_ID, url="javascript:window.__pwned='url'", original_url="javascript:void(0)",
        feed_id="<b>feed</b>", desk="security", source=HOSTILE_SOURCE, title=HOSTILE_TITLE, text=HOSTILE_TEXT,
        content_hash="hostile-content", story_id=HOSTILE_STORY, language="en", author="<i>author</i>",
        published="2025-11-10T08:00:00Z", topics=[TopicHit("ceasefire", 1.0)],
        entities=[{"id": "<b>e</b>", "name": '<img src=x onerror="window.__pwned=\'entity\'">', "kind": "person"}],
        places=[{"id": "hostile-town", "name": HOSTILE_PLACE, "lat": 33.2, "lon": 70.4}],
        development=Development("ceasefire-violated", HOSTILE_EVIDENCE), relevant=True,
    )
    store.upsert_article(article)
    store.add_story_keys(HOSTILE_STORY, ["hostile-key"])
    store.bump_story(HOSTILE_STORY, article.id, article.source)
    store.record_alert(Alert(
        id="hostile-alert", rule_id="<i>rule</i>", desk="security", article_id=article.id, story_id=HOSTILE_STORY,
        title=HOSTILE_ALERT_TITLE, url="javascript:window.__pwned='alert-url'", source=HOSTILE_SOURCE,
        development="ceasefire-violated", topics=["ceasefire", "<b>topic</b>"], matched=HOSTILE_TEXT,
    ))
    now = iso(utcnow())
    store.save_feed_state(FeedState(feed_id=HOSTILE_FEED_ID, last_polled=now, last_success=None,
                                    last_error=HOSTILE_ERROR, last_status=500, error_count=3))


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """One real cycle over the sample coverage, then the hostile records; every connection closed after."""
    work = tmp_path_factory.mktemp("dashboard")
    db_path = work / "store.db"
    store_url = f"sqlite:///{db_path}"
    with CoverageServer() as server:
        config_dir = write_demo_config(REPO / "config", work / "config", server.base)
        ctx = open_context(str(config_dir), store_url, policy=NetworkPolicy(allow=["127.0.0.0/8"]),
                           base_dir=str(work))
        try:
            report = run_cycle(ctx)
        finally:
            ctx.close()
    assert report.articles_stored > 0 and report.alerts_fired > 0, report.errors
    store = open_store(store_url)
    try:
        add_hostile_records(store)
    finally:
        store.close()
    return Filled(store_url, db_path, config_dir, report, server.base)


def copy_store(filled: Filled, target: Path) -> str:
    """A private copy of the filled store, for tests that write to it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(filled.db_path, target)
    return f"sqlite:///{target}"


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app: Any):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("dashboard server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def mounted(app: Any, prefix: str) -> Any:
    """A parent app with the dashboard mounted under prefix, as Airflow's api-server mounts plugin apps."""
    from fastapi import FastAPI

    parent = FastAPI()
    parent.mount(prefix, app)
    return parent


@pytest.fixture
def server_factory() -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(app: Any) -> ServerThread:
        server = ServerThread(app)
        server.__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)

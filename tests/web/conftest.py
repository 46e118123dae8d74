"""Dashboard test fixtures: a store filled by the REAL pipeline from the sample coverage, plus hostile records
and seeded development events.

The coverage (tests/fixtures/coverage/) is served by pipelines.demo.CoverageServer on
127.0.0.1 and run through one real cycle (fetch, extract, tag, store, alerts). Then a
hostile article, alert and feed state are written straight into the store: their every
text field carries markup that would run if the dashboard ever treated text as HTML.
Last, a few development events with their report articles and alerts are written with
store.save_event / set_article_event / record_alert (SEEDED_EVENTS), so the event views
are tested on known data, whatever the detection of the day finds.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.cycle import open_context, run_cycle
from pipelines.demo import CoverageServer, write_demo_config
from pipelines.models import (
    Alert,
    Article,
    CycleReport,
    Development,
    DevelopmentEvent,
    EventReport,
    FeedState,
    TopicHit,
    iso,
    utcnow,
)
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


# --- seeded development events ---------------------------------------------------------------
# (event id, family, type, status, state before, after, venue, places, parties,
#  [(outlet, published, language, mode, evidence)], superseded_by)
EV_AGREED = "e" * 31 + "1"
EV_VIOLATED = "e" * 31 + "2"
EV_TALKS = "e" * 31 + "3"
EV_STALLED = "e" * 31 + "4"  # notified to no desk: only the all-desks timeline shows it
SEEDED_EVENTS: list[dict[str, Any]] = [
    {"id": EV_AGREED, "family": "ceasefire", "type": "ceasefire-agreed", "status": "superseded",
     "before": "none", "after": "in-force", "venue": "doha", "places": [], "parties": ["pakistan", "afghanistan"],
     "superseded_by": EV_VIOLATED,
     "reports": [("Gulf Daily", "2025-11-11T09:00:00Z", "en", "asserted",
                  "Pakistan and Afghanistan agreed to an immediate ceasefire in Doha.")]},
    {"id": EV_VIOLATED, "family": "ceasefire", "type": "ceasefire-violated", "status": "corroborated",
     "before": "in-force", "after": "violated", "venue": None, "places": ["torkham"],
     "parties": ["pakistan", "afghanistan"], "superseded_by": None,
     "reports": [("Frontier Wire", "2025-11-12T03:10:00Z", "en", "asserted",
                  "Troops exchanged fire at Torkham overnight despite the truce."),
                 ("Kabul Ledger", "2025-11-12T03:40:00Z", "fa", "asserted",
                  "نیروها در تورخم با وجود آتش‌بس تیراندازی کردند."),
                 ("Khyber Mail", "2025-11-12T05:00:00Z", "ur", "alleged",
                  "Officials alleged the ceasefire was breached at Torkham."),
                 ("Frontier Wire", "2025-11-12T06:00:00Z", "en", "asserted",
                  "Firing at Torkham resumed in the morning, officials said.")]},
    {"id": EV_TALKS, "family": "talks", "type": "talks-opened", "status": "disputed",
     "before": "scheduled", "after": "in-session", "venue": "istanbul", "places": [], "parties": ["pakistan"],
     "superseded_by": None,
     "reports": [("Anatolia Desk", "2025-11-12T08:00:00Z", "en", "asserted",
                  "Delegations opened a new round of talks in Istanbul."),
                 (HOSTILE_SOURCE, "2025-11-12T09:00:00Z", "en", "denied", HOSTILE_EVIDENCE)]},
    {"id": EV_STALLED, "family": "talks", "type": "talks-stalled", "status": "reported",
     "before": "in-session", "after": "stalled", "venue": "istanbul", "places": [], "parties": [],
     "superseded_by": None,
     "reports": [("Anatolia Desk", "2025-11-12T20:00:00Z", "en", "asserted",
                  "The Istanbul talks stalled over border monitoring.")]},
]
# (alert id, desk, event id, kind, escalation, rules)
SEEDED_ALERTS = [
    ("ev-alert-agreed", "security", EV_AGREED, "event", None, ["ceasefire-status"]),
    ("ev-alert-violated", "security", EV_VIOLATED, "event", None, ["ceasefire-status", "border-clashes"]),
    ("ev-alert-violated-3", "security", EV_VIOLATED, "escalation", "corroborated:3", ["ceasefire-status"]),
    ("ev-alert-talks", "diplomacy", EV_TALKS, "event", None, ["talks-watch"]),
]


def seeded_article_id(event_id: str, n: int) -> str:
    return "d" * 27 + event_id[-1] + f"{n:04d}"


def seeded_url(event_id: str, n: int, outlet: str) -> str:
    if outlet == HOSTILE_SOURCE:
        return "javascript:window.__pwned='report-url'"
    return f"https://{outlet.lower().replace(' ', '-')}.example/{event_id[-1]}/{n}"


def add_event_records(store: Any) -> None:
    """SEEDED_EVENTS with one stored article per report (attached by set_article_event) and SEEDED_ALERTS."""
    for spec in SEEDED_EVENTS:
        reports = []
        for n, (outlet, published, language, mode, evidence) in enumerate(spec["reports"]):
            article_id = seeded_article_id(spec["id"], n)
            hostile = outlet == HOSTILE_SOURCE
            title = HOSTILE_TITLE if hostile else f"{outlet}: {evidence[:60]}"
            story_id = f"sev{spec['id'][-1]}{n:03d}"
            url = seeded_url(spec["id"], n, outlet)
            fetched = iso(datetime.fromisoformat(published.replace("Z", "+00:00")) + timedelta(minutes=7)) or ""
            desk = "diplomacy" if spec["family"] == "talks" else "security"
            article = Article(
                id=article_id, url=url, original_url=url, feed_id="seeded", desk=desk, source=outlet, title=title,
                text=f"{evidence} Seeded report {n} of event {spec['id']}, about the development event.",
                content_hash=f"seeded-{article_id}", story_id=story_id, language=language, published=published,
                fetched=fetched, topics=[TopicHit(spec["family"], 1.0)],
                development=Development(spec["type"], evidence, mode=mode), relevant=True,
            )
            store.upsert_article(article)
            store.add_story_keys(story_id, [f"key-{story_id}"])
            store.bump_story(story_id, article_id, outlet)
            store.set_article_event(article_id, spec["id"])
            reports.append(EventReport(article_id=article_id, url=url, outlet=outlet, time=published,
                                       first_seen=fetched, language=language, evidence=evidence, type=spec["type"],
                                       mode=mode, story_id=story_id, title=title))
        store.save_event(DevelopmentEvent(
            id=spec["id"], watch="pak-afg", family=spec["family"], type=spec["type"], opened=reports[0].time,
            updated=reports[-1].time, status=spec["status"], venue=spec["venue"], places=spec["places"],
            parties=spec["parties"], state_before=spec["before"], state_after=spec["after"], reports=reports,
            superseded_by=spec["superseded_by"], confidence=0.9,
        ))
    events = {spec["id"]: spec for spec in SEEDED_EVENTS}
    for alert_id, desk, event_id, kind, escalation, rules in SEEDED_ALERTS:
        spec = events[event_id]
        outlet, published, _language, _mode, evidence = spec["reports"][0]
        first_seen = iso(datetime.fromisoformat(published.replace("Z", "+00:00")) + timedelta(minutes=7)) or ""
        created = iso(datetime.fromisoformat(published.replace("Z", "+00:00"))
                      + timedelta(minutes=9 if kind == "event" else 200)) or ""
        store.record_alert(Alert(
            id=alert_id, rule_id=rules[0], desk=desk, article_id=seeded_article_id(event_id, 0),
            story_id=f"sev{event_id[-1]}000", title=f"{outlet}: {evidence[:60]}",
            url=seeded_url(event_id, 0, outlet), source=outlet, development=spec["type"], topics=[spec["family"]],
            matched=f"development {spec['type']}", created=created, rules=rules, event_id=event_id, kind=kind,
            escalation=escalation, published=published, first_seen=first_seen, state_before=spec["before"],
            state_after=spec["after"], evidence=evidence, confidence=0.9,
        ))


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
    # Alerts are seeded below: the sample coverage is old news, which the alerts' freshness rule
    # (alerts.max_age) may keep from notifying.
    assert report.articles_stored > 0, report.errors
    store = open_store(store_url)
    try:
        add_hostile_records(store)
        add_event_records(store)
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

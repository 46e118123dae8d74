"""Crashes and overlaps of whole cycles: SIGKILL at random points, and two cycles at once.

The workload is the project's sample coverage (tests/fixtures/coverage: four feeds, fourteen
pages, alerts on ceasefire and talks developments) served from 127.0.0.1, with alerts going to
an idempotent webhook receiver. A reference run (never interrupted) says what a correct outcome
is: which articles, which stories with how many copies, which alerts. Every crashed-and-rerun
or overlapping run must end in exactly that state, with every alert applied once by the receiver.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.cycle import run_cycle
from tests.localserver import Route
from tests.reliability.harness import (
    COVERAGE,
    IdempotentReceiver,
    Site,
    finish_runner,
    inbox_size,
    monitor,
    snapshot,
    start_runner,
    wait_ready,
    write_config,
)

CONTENT_TYPES = {".xml": "application/rss+xml; charset=utf-8", ".atom": "application/atom+xml; charset=utf-8",
                 ".html": "text/html; charset=utf-8"}
# A little latency per page and per webhook call spreads the cycle out, so kill points land everywhere.
PAGE_DELAY = 0.03
HOOK_DELAY = 0.02


def coverage_site() -> Site:
    server = Site()
    for folder in ("feeds", "pages"):
        for file in (COVERAGE / folder).iterdir():
            body = file.read_bytes().replace(b"{{BASE}}", server.base.encode())
            server.routes[f"/{folder}/{file.name}"] = Route(body=body, content_type=CONTENT_TYPES[file.suffix],
                                                            delay=PAGE_DELAY if folder == "pages" else 0.0)
    return server


def coverage_feeds(base: str) -> list[dict[str, Any]]:
    import yaml

    template = (COVERAGE / "demo-feeds.yaml").read_text(encoding="utf-8").replace("{{BASE}}", base)
    return yaml.safe_load(template)["feeds"]


@dataclass
class Expected:
    articles: set[str]
    stories: dict[str, int]  # story id -> copies
    alerts: set[str]


def state_of(store: Any) -> Expected:
    articles = snapshot(store)
    stories = {story: store.get_story(story)["copies"] for (_u, _t, _h, story) in articles.values()}
    return Expected(set(articles), stories, {a.id for a in store.list_alerts(limit=10_000)})


def check_against(expected: Expected, store: Any, receiver: IdempotentReceiver, path: str) -> dict[str, int]:
    """The store and the receiver hold exactly the reference outcome; returns delivery counts."""
    got = state_of(store)
    assert got.articles == expected.articles, (
        f"articles missing {sorted(expected.articles - got.articles)}, extra {sorted(got.articles - expected.articles)}")
    assert got.stories == expected.stories, f"story copies differ: {got.stories} != {expected.stories}"
    assert got.alerts == expected.alerts, (
        f"alerts missing {sorted(expected.alerts - got.alerts)}, extra {sorted(got.alerts - expected.alerts)}")
    assert inbox_size(store) == 0, "items left in the inbox"
    assert store.pending_deliveries(limit=10_000) == [], "deliveries left queued"
    raw = receiver.raw(path)
    applied = receiver.applied(path)
    assert set(applied) == expected.alerts, "an alert never reached the receiver"
    assert len(applied) == len(set(applied)) == len(expected.alerts)
    assert all(d.signed for d in raw), "a delivery without a valid HMAC signature"
    return {"raw": len(raw), "unique": len(applied)}


def reference(workdir: Path, server: Site, receiver: IdempotentReceiver) -> Expected:
    """One uninterrupted cycle on a fresh store: the outcome every other run must reach."""
    with monitor(workdir, coverage_feeds(server.base), hook_url=receiver.url("/hook/reference")) as ctx:
        report = run_cycle(ctx)
        assert report.articles_stored > 10 and report.alerts_fired > 5, report
        expected = state_of(ctx.store)
        check_against(expected, ctx.store, receiver, "/hook/reference")
    return expected


@dataclass
class Trial:
    number: int
    kill_after: float  # seconds after the runner said "ready"
    phase: str  # where the kill landed, read back from the store
    at_kill: dict[str, int] = field(default_factory=dict)
    raw: int = 0
    unique: int = 0


def phase_at_kill(store_path: Path) -> tuple[str, dict[str, int]]:
    from pipelines.store.sqlite import SQLiteStore

    if not store_path.exists():
        return "starting (before the store was opened)", {}
    with SQLiteStore(store_path) as store:
        counts = {
            "feeds_recorded": len(store.list_feed_states()),
            "inbox": inbox_size(store),
            "articles": store.count_articles(),
            "alerts": len(store.list_alerts(limit=10_000)),
            "undelivered": len(store.pending_deliveries(limit=10_000)),
        }
    if counts["feeds_recorded"] == 0:
        phase = "polling"
    elif counts["inbox"] and not counts["articles"]:
        phase = "fetching pages"
    elif counts["inbox"]:
        phase = "storing and alerting"
    elif counts["undelivered"]:
        phase = "delivering"
    else:
        phase = "finished"
    return phase, counts


def calibrate(workdir: Path, server: Site, receiver: IdempotentReceiver) -> float:
    """Seconds from "ready" to exit of one full runner, so kill points span a whole cycle."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "config", coverage_feeds(server.base), hook=True)
    proc = start_runner(config, workdir / "store.db", receiver.url("/hook/calibrate"), workdir)
    wait_ready(proc)
    started = time.monotonic()
    finish_runner(proc)
    return time.monotonic() - started


def kill_trials(workdir: Path, trials: int = 20, seed: int = 20251101) -> tuple[Expected, list[Trial]]:
    """SIGKILL a `newsmon run --once` at seeded random points, rerun in-process, compare to the reference."""
    rng = random.Random(seed)
    results: list[Trial] = []
    with coverage_site() as server, IdempotentReceiver(delay=HOOK_DELAY) as receiver:
        expected = reference(workdir / "reference", server, receiver)
        span = calibrate(workdir / "calibrate", server, receiver)
        for number in range(trials):
            trial_dir = workdir / f"trial-{number:02d}"
            trial_dir.mkdir(parents=True)
            path = f"/hook/trial-{number:02d}"
            feeds = coverage_feeds(server.base)
            config = write_config(trial_dir / "config", feeds, hook=True)
            kill_after = rng.uniform(0.0, span)
            proc = start_runner(config, trial_dir / "store.db", receiver.url(path), trial_dir)
            wait_ready(proc)
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            phase, counts = phase_at_kill(trial_dir / "store.db")
            if proc.returncode == 0:
                phase = "finished"  # it completed before the signal arrived
            with monitor(trial_dir, feeds, hook_url=receiver.url(path)) as ctx:
                report = run_cycle(ctx)
                assert not [e for e in report.errors if e.startswith("store ")], report.errors
                counted = check_against(expected, ctx.store, receiver, path)
            results.append(Trial(number, round(kill_after, 3), phase, counts, counted["raw"], counted["unique"]))
            shutil.rmtree(trial_dir, ignore_errors=True)
    return expected, results


@dataclass
class Overlap:
    round: int
    reports: list[dict[str, Any]]
    raw: int
    unique: int


def overlap_rounds(workdir: Path, rounds: int = 3) -> tuple[Expected, list[Overlap]]:
    """Two `newsmon run --once` processes released at the same instant over one store and one set of feeds."""
    results: list[Overlap] = []
    with coverage_site() as server, IdempotentReceiver() as receiver:
        expected = reference(workdir / "reference", server, receiver)
        for number in range(rounds):
            round_dir = workdir / f"overlap-{number}"
            round_dir.mkdir(parents=True)
            path = f"/hook/overlap-{number}"
            feeds = coverage_feeds(server.base)
            config = write_config(round_dir / "config", feeds, hook=True)
            go = round_dir / "go"
            procs = [start_runner(config, round_dir / "store.db", receiver.url(path), round_dir, go_file=go)
                     for _ in range(2)]
            for proc in procs:
                wait_ready(proc)
            go.write_text("go")
            reports = [finish_runner(proc) for proc in procs]
            with monitor(round_dir, feeds, hook_url=receiver.url(path)) as ctx:
                assert sum(r["articles_stored"] for r in reports) == len(expected.articles), reports
                assert sum(r["alerts_fired"] for r in reports) == len(expected.alerts), reports
                counted = check_against(expected, ctx.store, receiver, path)
            results.append(Overlap(number, reports, counted["raw"], counted["unique"]))
    return expected, results

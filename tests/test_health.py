"""Feed health (pipelines/health.py): one alert per feed per outage, through the outbox; the failed-share rule."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from pipelines import cycle
from pipelines.cycle import open_context, run_cycle
from pipelines.health import failed_share_problem
from pipelines.models import CycleReport
from pipelines.netguard import NetworkPolicy
from tests.localserver import LocalServer, Route
from tests.reliability.harness import GOOD_PAGES, RSS, good_feed, write_config

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _context(tmp_path: Path, feeds: list[dict], health: dict):
    config = write_config(tmp_path / "config", feeds)
    settings = yaml.safe_load((config / "newsmon.yaml").read_text())
    settings["health"] = health
    (config / "newsmon.yaml").write_text(yaml.safe_dump(settings))
    return open_context(str(config), f"sqlite:///{tmp_path / 'store.db'}",
                        policy=NetworkPolicy(allow=["127.0.0.1/32"]), base_dir=str(tmp_path))


def _health_lines(tmp_path: Path) -> list[dict]:
    path = tmp_path / "alerts.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line.get("kind") == "health"]


def _cycle_at(monkeypatch, when: datetime, tmp_path: Path, feeds: list[dict], health: dict) -> CycleReport:
    monkeypatch.setattr(cycle, "utcnow", lambda: when)
    ctx = _context(tmp_path, feeds, health)
    try:
        return run_cycle(ctx)
    finally:
        ctx.fetcher.close()
        ctx.close()


def test_a_dead_feed_pages_ops_once_per_outage(tmp_path, monkeypatch):
    server = LocalServer()
    dead_url = f"http://127.0.0.1:{_closed_port()}/rss.xml"
    feeds = [{"id": "dead", "url": dead_url, "interval": 60},
             {"id": "alive", "url": f"{server.base}/feeds/alive.xml", "interval": 60}]
    server.routes["/feeds/alive.xml"] = Route(body=good_feed(server.base, GOOD_PAGES[:1]), content_type=RSS)
    health = {"stale_after": 10, "channels": ["hook"], "max_failed_share": 1}
    with server:
        first = _cycle_at(monkeypatch, T0, tmp_path, feeds, health)
        assert first.feeds_failed == 1 and first.health_alerts == 0 and _health_lines(tmp_path) == []
        # 9 intervals later: not yet (10 x 60 s)
        assert _cycle_at(monkeypatch, T0 + timedelta(minutes=9), tmp_path, feeds, health).feeds_stale == 0
        late = _cycle_at(monkeypatch, T0 + timedelta(minutes=11), tmp_path, feeds, health)
        # alive served the same document (304 / nothing new) for 11 minutes: silent, it pages too
        assert late.feeds_stale == 2 and late.health_alerts == 2, late.errors
        lines = {line["source"]: line for line in _health_lines(tmp_path)}
        assert set(lines) == {"dead", "alive"}
        assert lines["dead"]["title"].startswith("feed dead failing for 11 min: connection refused by 127.0.0.1:")
        assert lines["alive"]["title"] == "feed alive silent: no new items for 11 min"
        assert lines["dead"]["kind"] == "health" and lines["dead"]["desk"] == "ops"
        # Later cycles of the same outage: the same ids, nobody paged again.
        again = _cycle_at(monkeypatch, T0 + timedelta(minutes=30), tmp_path, feeds, health)
        assert again.feeds_stale == 2 and again.health_alerts == 0
        assert len(_health_lines(tmp_path)) == 2
        # alive recovers (new items end its outage) and goes quiet again: a new outage, a new alert.
        server.routes["/feeds/alive.xml"] = Route(body=good_feed(server.base, GOOD_PAGES[:2]), content_type=RSS)
        recovered = _cycle_at(monkeypatch, T0 + timedelta(minutes=31), tmp_path, feeds, health)
        assert recovered.feeds_stale == 1 and recovered.health_alerts == 0
        quiet_again = _cycle_at(monkeypatch, T0 + timedelta(minutes=45), tmp_path, feeds, health)
        assert quiet_again.health_alerts == 1
        alive = [line for line in _health_lines(tmp_path) if line["source"] == "alive"]
        assert len(alive) == 2 and alive[0]["id"] != alive[1]["id"]
        assert len([line for line in _health_lines(tmp_path) if line["source"] == "dead"]) == 1


def test_without_health_channels_stale_feeds_are_only_counted(tmp_path, monkeypatch):
    feeds = [{"id": "dead", "url": f"http://127.0.0.1:{_closed_port()}/rss.xml", "interval": 60}]
    _cycle_at(monkeypatch, T0, tmp_path, feeds, {})
    report = _cycle_at(monkeypatch, T0 + timedelta(hours=1), tmp_path, feeds, {})
    assert report.feeds_stale == 1 and report.health_alerts == 0 and _health_lines(tmp_path) == []


@pytest.mark.parametrize("failed, tried, limit, fails", [
    (19, 19, None, True), (18, 19, None, False), (0, 0, None, False), (0, 5, 0.0, False),
    (1, 5, 0.0, True), (10, 19, 0.5, True), (9, 19, 0.5, False), (19, 19, 1.0, False),
])
def test_failed_share_is_strictly_above_the_limit(failed, tried, limit, fails):
    report = CycleReport(feeds_polled=tried, feeds_failed=failed)
    problem = failed_share_problem(report, limit)
    assert (problem is not None) == fails
    if fails:
        assert problem.startswith(f"{failed} of {tried} feeds failed")

"""news_digest with dag.test() after the monitor run: files per desk, escaped, sent once."""

from __future__ import annotations

import pytest

from tests.dags.airflow_helpers import read_jsonl, run_dag


@pytest.fixture(scope="module")
def digest_runs(monitor_runs, newsmon_site):
    runs = []
    for _ in range(2):
        run = run_dag("news_digest", run_conf={"min_interval_minutes": 0})
        run["files"] = sorted(p for p in newsmon_site["digests"].rglob("*") if p.suffix in (".html", ".md"))
        run["jsonl"] = [r for r in read_jsonl(newsmon_site["alerts_jsonl"]) if r.get("type") == "digest"]
        runs.append(run)
    return runs


def desks_with_articles(monitor_runs) -> set[str]:
    return {a.desk for a in monitor_runs[0]["articles"].values()}


def test_digest_run_writes_html_and_markdown_per_desk(digest_runs, monitor_runs, newsmon_site):
    first = digest_runs[0]
    assert first["state"] == "success", first["tasks"]
    desks = desks_with_articles(monitor_runs)
    assert desks
    for desk in desks:
        html = sorted((newsmon_site["digests"] / desk).glob("*.html"))
        md = sorted((newsmon_site["digests"] / desk).glob("*.md"))
        assert len(html) == 1 and len(md) == 1, desk
        assert html[0].stem == md[0].stem
        titles = [a.title for a in monitor_runs[0]["articles"].values() if a.desk == desk]
        text = md[0].read_text(encoding="utf-8")
        assert any(t.split()[0] in text for t in titles)


def test_digest_escapes_hostile_titles(digest_runs, newsmon_site):
    pages = "".join(p.read_text(encoding="utf-8") for p in newsmon_site["digests"].rglob("*.html"))
    assert "<script>alert(1)</script>" not in pages
    assert "<img" not in pages


def test_digest_developments_are_the_desks_alerts(digest_runs, monitor_runs, newsmon_site):
    alerts_by_desk: dict[str, set[str]] = {}
    for alert in monitor_runs[0]["alerts"]:
        alerts_by_desk.setdefault(alert.desk, set()).add(alert.id)
    sent = {r["desk"]: r for r in digest_runs[0]["jsonl"]}
    for desk, ids in alerts_by_desk.items():
        assert set(sent[desk]["developments"]) == ids


def test_second_digest_run_writes_and_sends_nothing_new(digest_runs):
    first, second = digest_runs
    assert second["state"] == "success", second["tasks"]
    assert second["files"] == first["files"]
    assert second["jsonl"] == first["jsonl"]
    assert len({r["desk"] for r in first["jsonl"]}) == len(first["jsonl"]), "one digest per desk"

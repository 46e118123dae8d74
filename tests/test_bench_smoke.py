"""The benchmarks' code keeps working: each core function runs on 2-3 tiny inputs and returns numbers
under the right keys. No timing is asserted (speed is the benchmarks' business, not CI's)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import engine, latency, memory, peer, polling, tagger, throughput
from bench.__main__ import _selected, table
from bench.common import Page, Row, load_pages, summary, write_config
from pipelines.feeds import _by_host_round_robin
from pipelines.models import FeedConfig


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


@pytest.fixture()
def pages(tmp_path: Path) -> list[Page]:
    """Three small article pages of our own random text (latency.page_html), with their text as truth."""
    out = []
    for n in range(3):
        html = latency.page_html(100 + n)
        path = tmp_path / f"page{n}.html"
        path.write_bytes(html)
        text = html.decode().split("<article>")[1].split("</article>")[0]
        truth = " ".join(part.split(">")[-1] for part in text.split("</p>") if part)
        out.append(Page(set="smoke", id=f"p{n}", url=f"https://news.example/story/{n}", html=html, truth=truth,
                        title=f"Bench item {100 + n}", path=str(path)))
    return out


@pytest.mark.slow  # real processes and sockets: a few seconds
def test_throughput_measure_and_profile(pages, tmp_path):
    result = throughput.measure(pages, rounds=1, workers=2, work=tmp_path)
    for key in ("bare_pages_per_s", "one_pages_per_s", "many_pages_per_s", "ratio", "speedup"):
        assert _number(result[key]) and result[key] > 0, key
    assert result["stored"] == len(pages)  # every page stored, none lost between processes
    both = result["per_round"][0]["both"]  # the ratio's side: bare and newsmon page by page, one process
    assert both["stored"] == both["extracted"] == len(pages)
    assert both["bare_cpu"] > 0 and both["newsmon_cpu"] > 0
    assert result["ratio"] == both["bare_cpu"] / both["newsmon_cpu"]
    assert [row.met for row in throughput.rows(result)].count(None) == 3
    profiled = throughput.profile(pages, work=tmp_path)
    assert set(throughput.STAGES) <= set(profiled["stage_shares"])
    assert profiled["hot"] and all(_number(h["own_s"]) for h in profiled["hot"])


@pytest.mark.slow  # real processes and sockets: a few seconds
def test_polling_measure(tmp_path):
    result = polling.measure(feeds=4, hosts=2, rounds=1, work=tmp_path)
    assert result["failed"] == 0 and result["errors"] == []
    assert result["not_modified"] == 4  # the unchanged round was all 304s
    assert result["first_spooled"] == 4 * 20 and result["changed_spooled"] == result["changed_feeds"] == 1
    for key in ("first_s", "unchanged_s", "changed_s"):
        assert _number(result[key]) and result[key] > 0
    assert result["politeness"]["per_host_delay"] == 0.5  # the configured default, not switched off
    assert len(polling.rows(result)) == 3


@pytest.mark.slow  # real processes and sockets: a few seconds
def test_memory_measure(tmp_path):
    files = sorted(str(p) for p in (Path(__file__).parent / "fixtures" / "pages").glob("*.html"))[:2]
    result = memory.measure(pages=3, feeds=1, hosts=3, page_files=files, work=tmp_path)
    assert result["stored"] + result["dropped"] == 3
    assert result["stored"] >= 1 and result["store_bytes"] > 0
    assert _number(result["peak_mb"]) and result["peak_mb"] > 0
    assert result["samples"][0][0] == 0 and all(_number(mb) for _n, mb in result["samples"])
    assert [row.figure.split()[0] for row in memory.rows(result)] == ["4.", "4."]


@pytest.mark.slow  # real processes and sockets: a few seconds
def test_memory_measure_on_another_store_url(tmp_path):
    """The search-node figure runs figure 4's cycles against a store URL of its choosing."""
    files = sorted(str(p) for p in (Path(__file__).parent / "fixtures" / "pages").glob("*.html"))[:2]
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = memory.measure(pages=2, feeds=1, hosts=2, page_files=files, work=tmp_path, store_url=url)
    assert result["stored"] + result["dropped"] == 2 and (tmp_path / "elsewhere.db").is_file()
    assert result["store_bytes"] == 0 and math.isnan(result["store_mb_per_10k"])


def test_engine_rows_and_articles():
    articles = engine._articles(3, seed=1)
    assert len({a.id for a in articles}) == 3 and all(len(a.text.split()) == 1000 for a in articles)
    cycle = {"stored": 0, "dropped": 0, "cycles": 1, "seconds": 0.3, "pages_per_s": 0.0, "reasons": {}, "errors": []}
    rows = engine.rows({"cycles": {"false": cycle}, "bulk": {100: 800.0}, "bulk_docs": 5000})
    assert [r.figure.split()[0] for r in rows] == ["7.", "7."]
    assert "found none" in rows[0].note and rows[1].value == "800 docs/s"
    assert "engine" in _selected("engine")


def test_tagger_measure(pages):
    result = tagger.measure(pages, count=4, repeats=1)
    assert result["articles"] == 4 and result["words"] == tagger.WORDS
    assert result["on_topic"] == 2 and result["on_topic_relevant"] >= 1  # fixtures are on-topic
    assert _number(result["per_s"]) and result["per_s"] > 0


@pytest.mark.slow  # real processes and sockets: a few seconds
def test_watch_latency(tmp_path):
    result = latency.measure_watch(samples=2, work=tmp_path)
    assert result["missed"] == 0 and result["n"] == 2
    assert all(_number(result[k]) and result[k] > 0 for k in ("min", "p50", "p95", "max"))


def test_latency_configs_load(tmp_path):
    """The watch and Airflow runs' config must pass the project's validation."""
    from pipelines.config import load_config

    with latency.LatencySite() as site:
        config_dir = latency._config(tmp_path / "config", site, interval=15, schedule="0 0 1 1 *")
        config = load_config(str(config_dir))
        env = latency._airflow_env(tmp_path, config_dir, 8999)
    assert [f.id for f in config.feeds] == ["latency"]
    assert [r.id for r in config.alerts.rules] == ["bench-latency"]
    assert env["NEWSMON_WATCH_FEEDS"] == "latency" and env["AIRFLOW__API__PORT"] == "8999"
    assert env["AIRFLOW_HOME"].startswith(str(tmp_path))


def test_peer_ours_and_trafilatura(pages):
    ours = peer._ours(pages)["smoke"]
    bare = peer._bare_trafilatura(pages)["smoke"]
    for stats in (ours, bare):
        assert stats["pages"] == 3 and 0 < stats["f1"] <= 1 and stats["pages_per_s"] > 0


def test_peer_newsplease_runner(pages):
    python = peer.BENCH_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("news-please venv not set up (var/bench-venv: `make bench BENCH=peer` creates it)")
    result = peer.measure(pages, python=python)
    assert set(result["newsplease"]["smoke"]) == {"pages", "f1", "pages_per_s"}
    assert 0 <= result["newsplease"]["smoke"]["f1"] <= 1


def test_load_pages_absent_folder(tmp_path):
    assert load_pages(tmp_path / "nowhere") == []


def test_summary_and_table():
    stats = summary([3.0, 1.0, 2.0, 10.0])
    assert (stats["n"], stats["min"], stats["p50"], stats["p95"], stats["max"]) == (4, 1.0, 2.5, 10.0, 10.0)
    text = table([Row("a figure", "1 s", "<= 2 s", True), Row("b", "x", "", None)])
    assert "a figure" in text and "yes" in text and text.splitlines()[0].split() == ["figure", "value", "target",
                                                                                     "met?"]
    assert _selected("latency,tagger") == ["tagger", "watch", "airflow"]
    with pytest.raises(SystemExit):
        _selected("nonsense")


def test_write_config_keeps_politeness_defaults(tmp_path):
    from pipelines.config import load_config

    config = load_config(str(write_config(tmp_path / "c", [{"id": "f", "url": "http://127.0.0.1:1/f", "desk": "security"}])))
    assert config.settings.fetch["per_host_delay"] == 0.5
    assert {c.type for c in config.alerts.channels.values()} == {"jsonl"}


def test_poll_order_round_robins_hosts():
    """Feeds listed host by host are polled one host at a time in turn (bench figure 2, grouped order)."""
    feeds = [FeedConfig(id=f"{h}{i}", url=f"http://{h}.example/{i}", desk="d") for h in "ab" for i in range(3)]
    feeds.append(FeedConfig(id="c0", url="http://c.example/0", desk="d"))
    order = _by_host_round_robin(feeds)
    assert [feeds[i].id for i in order] == ["a0", "b0", "c0", "a1", "b1", "a2", "b2"]

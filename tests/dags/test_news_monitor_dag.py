"""news_monitor end to end with dag.test(): real HTTP on 127.0.0.1, real SQLite store, real channels.

Run twice over the same coverage: the second run must store nothing again and re-send nothing.
"""

from __future__ import annotations

from collections import Counter

from tests.dags.airflow_helpers import read_jsonl, run_dag, store_snapshot, write_config_dir


def test_first_run_succeeds_and_stores_articles(monitor_runs):
    first = monitor_runs[0]
    assert first["state"] == "success", first["tasks"]
    assert first["tasks"]["poll_feeds"] == ["success"]
    assert len(first["tasks"]["process_batch"]) >= 1 and set(first["tasks"]["process_batch"]) == {"success"}
    assert first["tasks"]["evaluate_alerts"] == ["success"]
    assert first["tasks"]["deliver_alerts"] == ["success"]
    assert first["article_ids"], "no article stored"
    assert first["pending_inbox"] == [], "every spooled item was processed"


def test_successful_runs_log_no_errors(monitor_runs):
    # `make demo` printed "[error] XCom not found ... offset=1" on every successful run: evaluate_alerts
    # iterated the mapped batches' XComs one by one until a 404. It reads them in one slice now.
    assert [run["state"] for run in monitor_runs] == ["success", "success"]
    assert [run["api_client_errors"] for run in monitor_runs] == [[], []]


def test_dag_stores_what_the_cli_cycle_stores(monitor_runs, newsmon_site, tmp_path):
    # The same cycle run in one process (newsmon run --once) is the reference for the DAG's wiring.
    from pipelines.cycle import open_context, run_cycle

    config = write_config_dir(tmp_path / "config", newsmon_site["server"].base, tmp_path / "alerts.jsonl")
    store_url = f"sqlite:///{tmp_path / 'reference.db'}"
    ctx = open_context(str(config), store_url)
    try:
        run_cycle(ctx)
    finally:
        ctx.close()
    reference = store_snapshot(store_url)
    first = monitor_runs[0]
    assert first["article_ids"] == reference["article_ids"]
    assert sorted(a.id for a in first["alerts"]) == sorted(a.id for a in reference["alerts"])
    # Each article evaluated once, as in the CLI: a second evaluation would count an extra copy.
    assert {a.id: a.copies for a in first["alerts"]} == {a.id: a.copies for a in reference["alerts"]}


def test_each_alert_fired_and_delivered_once(monitor_runs, newsmon_site):
    first = monitor_runs[0]
    assert first["alerts"], "the coverage has ceasefire and talks developments; some rule must fire"
    alert_ids = [a.id for a in first["alerts"]]
    assert len(alert_ids) == len(set(alert_ids))
    assert all(a.article_id in first["articles"] for a in first["alerts"])
    delivered = Counter(line["id"] for line in first["jsonl"] if line.get("channel") == "jsonl")
    jsonl_alerts = [a.id for a in first["alerts"] if "jsonl" in (a.channels or ["jsonl"])]
    assert delivered and set(delivered) <= set(alert_ids)
    assert all(count == 1 for count in delivered.values()), delivered
    assert set(jsonl_alerts) >= set(delivered)


def test_batches_evaluate_alerts_as_they_store(monitor_runs):
    """Issue 7: each process_batch evaluates its articles before finishing their inbox items, so no
    crash between storing and alerting can lose an alert; evaluate_alerts only adds the batches up."""
    first = monitor_runs[0]
    batches = first["returned"]["process_batch"]
    assert batches and all(set(batch) == {"article_ids", "alerts_fired"} for batch in batches)
    assert sorted({i for batch in batches for i in batch["article_ids"]}) == first["article_ids"]
    assert sum(batch["alerts_fired"] for batch in batches) == len(first["alerts"])
    assert first["returned"]["evaluate_alerts"] == [
        {"articles": len(first["article_ids"]), "alerts_fired": len(first["alerts"]), "evaluated_here": 0}]


def test_new_articles_emit_the_asset_once(monitor_runs):
    assert monitor_runs[0]["asset_events"] == 1


def test_second_run_duplicates_nothing(monitor_runs):
    first, second = monitor_runs
    assert second["state"] == "success", second["tasks"]
    assert second["article_ids"] == first["article_ids"]
    assert sorted(a.id for a in second["alerts"]) == sorted(a.id for a in first["alerts"])
    assert {a.id: a.copies for a in second["alerts"]} == {a.id: a.copies for a in first["alerts"]}
    assert second["jsonl"] == first["jsonl"], "an alert was re-sent"
    # Nothing new: no batch to map, alert evaluation skipped, so no asset event and no digest run.
    assert second["tasks"]["process_batch"] == ["skipped"]
    assert second["tasks"]["evaluate_alerts"] == ["skipped"]
    assert second["tasks"]["deliver_alerts"] == ["success"]
    assert second["asset_events"] == first["asset_events"]


def test_second_run_used_conditional_get(monitor_runs, newsmon_site):
    server = newsmon_site["server"]
    polls = server.requests_for("/feeds/frontier-wire.xml")
    assert any("If-None-Match" in r.headers or "If-Modified-Since" in r.headers for r in polls[1:])
    # The reference cycle of another test wrote to its own channel file, not this one.
    alert_lines = [r for r in read_jsonl(newsmon_site["alerts_jsonl"]) if r.get("type") != "digest"]
    assert alert_lines == monitor_runs[1]["jsonl"]


def test_watcher_runs_poll_only_the_changed_feeds():
    import importlib.util
    from types import SimpleNamespace

    from tests.dags.airflow_helpers import REPO

    spec = importlib.util.spec_from_file_location("news_monitor_under_test", REPO / "dags" / "news_monitor.py")
    news_monitor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(news_monitor)

    def event(payload):  # shaped like the asset events Airflow hands a triggered run
        return SimpleNamespace(extra={"from_trigger": True, "payload": payload})

    changed = {"newsmon_feed_changes": [event({"feed_id": "kabul-ledger"}), event({"feed_id": "frontier-wire"}),
                                        event({"feed_id": "kabul-ledger"})]}
    assert news_monitor.changed_feed_ids({"triggering_asset_events": changed}) == ["frontier-wire", "kabul-ledger"]
    assert news_monitor.changed_feed_ids({"triggering_asset_events": {}}) is None  # cron/manual: all feeds
    assert news_monitor.changed_feed_ids({}) is None
    odd = {"x": [SimpleNamespace(extra=None), SimpleNamespace(extra={"payload": "not a dict"})]}
    assert news_monitor.changed_feed_ids({"triggering_asset_events": odd}) is None


def test_poll_fails_the_run_when_every_feed_failed_after_recording_them(airflow_db, tmp_path, monkeypatch):
    """19 of 19 feeds down must not be a green run: poll_feeds records every result, then fails."""
    import socket

    from pipelines.store import open_store

    with socket.socket() as probe:  # nothing listens here: every feed is refused at once
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config = write_config_dir(tmp_path / "config", dead, tmp_path / "alerts.jsonl")
    store_url = f"sqlite:///{tmp_path / 'dead.db'}"
    for key, value in {"NEWSMON_CONFIG": str(config), "NEWSMON_STORE": store_url,
                       "NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8"}.items():
        monkeypatch.setenv(key, value)
    run = run_dag("news_monitor")
    assert run["tasks"]["poll_feeds"] == ["failed"], run["tasks"]
    assert run["state"] == "failed"
    store = open_store(store_url)
    try:
        states = store.list_feed_states()
    finally:
        store.close()
    assert states and all(s.error_count == 1 and s.last_error.startswith("connection refused by ") for s in states)

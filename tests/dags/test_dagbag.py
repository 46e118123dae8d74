"""Every DAG file imports cleanly and declares the scheduling contract the operators rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_dagbag():
    """Parse dags/ the way the DAG processor does (examples are off through the conftest's env)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def dagbag():
    return load_dagbag()


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_dag_ids(dagbag):
    assert set(dagbag.dag_ids) == {"news_monitor", "news_digest"}


@pytest.mark.parametrize("dag_id", ["news_monitor", "news_digest"])
def test_scheduling_contract(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert set(dag.tags) == {"newsmon"}
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.retries >= 2, f"{dag_id}.{task.task_id} must retry"
        assert task.retry_exponential_backoff, f"{dag_id}.{task.task_id} must back off exponentially"
        assert task.max_retry_delay is not None


def test_monitor_shape(dagbag):
    dag = dagbag.dags["news_monitor"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"poll_feeds", "plan_batches", "process_batch", "evaluate_alerts", "deliver_alerts"}
    assert tasks["plan_batches"].upstream_task_ids == {"poll_feeds"}
    assert tasks["process_batch"].upstream_task_ids == {"plan_batches"}
    assert tasks["evaluate_alerts"].upstream_task_ids == {"process_batch"}
    assert tasks["deliver_alerts"].upstream_task_ids == {"evaluate_alerts"}
    # Batches are dynamically mapped; the asset is emitted by the task that sees the new articles.
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(tasks["process_batch"], MappedOperator)
    assert [o.name for o in tasks["evaluate_alerts"].outlets] == ["newsmon_articles"]


def test_monitor_schedule_is_cron_from_config(dagbag):
    from newsmon_settings import read_schedule

    dag = dagbag.dags["news_monitor"]
    timetable = getattr(dag.timetable, "timetable", dag.timetable)  # AssetOrTimeSchedule wraps the cron
    assert timetable.expression == read_schedule()


def flat_assets(condition) -> list:
    """The Assets inside an asset condition (AssetAll/AssetAny nest them in .objects)."""
    if hasattr(condition, "objects"):
        return [a for inner in condition.objects for a in flat_assets(inner)]
    return [condition]


def test_digest_is_scheduled_on_articles_asset(dagbag):
    from airflow.sdk import AssetOrTimeSchedule

    timetable = dagbag.dags["news_digest"].timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert [a.name for a in flat_assets(timetable.asset_condition)] == ["newsmon_articles"]


def test_watchers_wired_when_feeds_are_watched(tmp_path, monkeypatch):
    (tmp_path / "newsmon.yaml").write_text('schedule: "*/10 * * * *"\n', encoding="utf-8")
    (tmp_path / "feeds.yaml").write_text(
        "feeds:\n"
        "  - {id: fast-wire, url: 'https://fast.example/rss', desk: security, interval: 60}\n"
        "  - {id: slow-weekly, url: 'https://slow.example/rss', desk: regional, interval: 3600}\n"
        "  - {id: off-feed, url: 'https://off.example/rss', desk: regional, interval: 30, enabled: false}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("NEWSMON_CONFIG", str(tmp_path))
    monkeypatch.setenv("NEWSMON_WATCH_FEEDS", "auto")
    bag = load_dagbag()
    assert bag.import_errors == {}
    dag = bag.dags["news_monitor"]
    from airflow.sdk import AssetOrTimeSchedule

    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable.expression == "*/10 * * * *"
    watchers = [w for a in flat_assets(dag.timetable.asset_condition) for w in a.watchers]
    # auto: only enabled feeds polled more often than the cron period get a watcher
    assert [w.name for w in watchers] == ["newsmon_feed_fast-wire"]
    classpath, kwargs = watchers[0].trigger.serialize()
    assert classpath == "newsmon_triggers.feed_watch.FeedWatchTrigger"
    assert kwargs["url"] == "https://fast.example/rss" and kwargs["poll_interval"] == 60
    # The DAG processor stores DAGs serialised; watchers and their trigger kwargs must survive it.
    from airflow.serialization.serialized_objects import DagSerialization

    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert restored.timetable.summary  # cron OR asset, readable in the UI
    assert "fast.example" in str(DagSerialization.serialize_dag(dag))


def test_broken_config_falls_back_to_defaults(tmp_path, monkeypatch):
    (tmp_path / "newsmon.yaml").write_text("schedule: [not, a, cron\n", encoding="utf-8")
    (tmp_path / "feeds.yaml").write_text("feeds: {{{\n", encoding="utf-8")
    monkeypatch.setenv("NEWSMON_CONFIG", str(tmp_path))
    bag = load_dagbag()
    assert bag.import_errors == {}
    timetable = bag.dags["news_monitor"].timetable
    assert getattr(timetable, "timetable", timetable).expression == "*/5 * * * *"


def test_feed_watchers_get_the_allow_networks_variable(tmp_path, monkeypatch):
    (tmp_path / "newsmon.yaml").write_text("schedule: '*/10 * * * *'\n", encoding="utf-8")
    (tmp_path / "feeds.yaml").write_text(
        "feeds:\n  - {id: fast-wire, url: 'https://fast.example/rss', desk: security, interval: 60}\n",
        encoding="utf-8")
    monkeypatch.setenv("NEWSMON_CONFIG", str(tmp_path))
    monkeypatch.setenv("NEWSMON_WATCH_FEEDS", "auto")
    monkeypatch.setenv("NEWSMON_ALLOW_NETWORKS", "192.168.0.0/16")
    monkeypatch.setenv("AIRFLOW_VAR_NEWSMON_ALLOW_NETWORKS", "10.1.2.0/24")  # the Variable wins over env
    bag = load_dagbag()
    assert bag.import_errors == {}
    dag = bag.dags["news_monitor"]
    watchers = [w for a in flat_assets(dag.timetable.asset_condition) for w in a.watchers]
    assert watchers and all(w.trigger.serialize()[1]["allow_networks"] == "10.1.2.0/24" for w in watchers)

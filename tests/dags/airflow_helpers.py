"""Helpers for the Airflow end-to-end tests (kept out of conftest.py, which must run only once)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


# --- end-to-end: the sample coverage on a real local HTTP server ---------------------------
COVERAGE = REPO / "tests" / "fixtures" / "coverage"
CONTENT_TYPES = {".xml": "application/rss+xml; charset=utf-8", ".atom": "application/atom+xml; charset=utf-8",
                 ".html": "text/html; charset=utf-8"}


def coverage_routes(base: str) -> dict:
    """Every feed and page of the coverage at /feeds/<f> and /pages/<f>, {{BASE}} filled in; all else 404."""
    from tests.localserver import Route

    routes = {}
    for folder in ("feeds", "pages"):
        for path in sorted((COVERAGE / folder).iterdir()):
            if path.suffix in CONTENT_TYPES:
                body = path.read_bytes().replace(b"{{BASE}}", base.encode())
                routes[f"/{folder}/{path.name}"] = Route(body=body, content_type=CONTENT_TYPES[path.suffix])
    return routes


def write_config_dir(target: Path, base: str, alerts_jsonl: Path) -> Path:
    """The project's topics and alert rules, feeds pointing at the local server, output under tmp."""
    from pipelines.demo import write_demo_config

    # alerts never in the repo's var/; one local host serves everything, so politeness stays short
    return write_demo_config(REPO / "config", target, base, COVERAGE / "demo-feeds.yaml",
                             alerts_jsonl=alerts_jsonl, per_host_delay=0.01)


def load_dag(dag_id: str):
    """Parse dags/ like the DAG processor; retries off so a failing task fails the test now, not in minutes."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.dags[dag_id]
    for task in dag.tasks:
        task.retries = 0
    return dag


def read_jsonl(path: Path) -> list[dict]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def asset_event_count(asset_name: str) -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count()).select_from(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name)
        )


def store_snapshot(store_url: str) -> dict:
    from pipelines.store import open_store

    store = open_store(store_url)
    try:
        articles, after = [], None
        while batch := store.iter_articles(after_id=after):
            articles.extend(batch)
            after = batch[-1].id
        return {
            "article_ids": sorted(a.id for a in articles),
            "articles": {a.id: a for a in articles},
            "alerts": store.list_alerts(limit=10_000),
            "pending_inbox": store.pending_items(limit=10_000),
            "pending_deliveries": store.pending_deliveries(limit=10_000),
        }
    finally:
        store.close()


def return_values(dag_id: str, run_id: str) -> dict[str, list]:
    """Every task's return value (XCom "return_value") of one run, mapped ones in map-index order."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    values: dict[str, list] = {}
    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value")).all()
        for row in sorted(rows, key=lambda r: (r.task_id, r.map_index)):
            values.setdefault(row.task_id, []).append(XComModel.deserialize_value(row))
    return values


@contextmanager
def api_client_errors() -> Iterator[list[dict]]:
    """What the task SDK's API client logs at error level meanwhile (dag.test() runs tasks in this
    process): a successful run must log none ("XCom not found" from reading XComs one by one was one)."""
    import airflow.sdk.api.client as client

    recorded: list[dict] = []
    real = client.log

    class Recorder:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def error(self, event: str, *args: Any, **kwargs: Any) -> Any:
            recorded.append({"event": event, **{k: str(v) for k, v in kwargs.items()}})
            return real.error(event, *args, **kwargs)

    client.log = Recorder()
    try:
        yield recorded
    finally:
        client.log = real


def run_dag(dag_id: str, **kwargs) -> dict:
    """dag.test() once; the run's state, every task instance's state (mapped ones listed by index)
    and every task's return value."""
    dag = load_dag(dag_id)
    run = dag.test(**kwargs)
    states: dict[str, list[str]] = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return {"state": str(run.state), "tasks": states, "run_id": run.run_id,
            "returned": return_values(dag_id, run.run_id)}

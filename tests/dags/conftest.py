"""Airflow test environment: a throw-away AIRFLOW_HOME with a SQLite metadata DB, migrated once.

Airflow reads its configuration when it is first imported, so the environment is set
here at conftest import time (pytest imports this before any test module of tests/dags/,
and no other test module imports Airflow).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.dags.airflow_helpers import (
    api_client_errors,
    asset_event_count,
    coverage_routes,
    read_jsonl,
    run_dag,
    store_snapshot,
    write_config_dir,
)

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="newsmon-airflow-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_HOME / "logs"),
    }
)
# The DAG files import newsmon_settings / newsmon_triggers from plugins/, as Airflow components do.
for path in (str(REPO), str(REPO / "plugins")):
    if path not in sys.path:
        sys.path.insert(0, path)

if "airflow" in sys.modules:  # pragma: no cover - would silently use the user's real AIRFLOW_HOME
    raise RuntimeError("airflow was imported before tests/dags/conftest.py could configure it")

pytest.importorskip("airflow", reason="Apache Airflow is not installed")


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.airflow)


@pytest.fixture(scope="session")
def airflow_db():
    """`airflow db migrate` once per session, in a subprocess with the same environment."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=os.environ.copy(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def newsmon_site(airflow_db, tmp_path_factory):
    """Coverage server + config dir + store + env, shared by the monitor and digest DAG tests."""
    pytest.importorskip("pipelines.tag", reason="pipelines.tag not available yet")
    if not (REPO / "config" / "topics.yaml").exists():
        pytest.skip("config/topics.yaml not available yet")
    from tests.localserver import LocalServer

    work = tmp_path_factory.mktemp("newsmon-e2e")
    server = LocalServer()
    server.routes.update(coverage_routes(server.base))
    alerts_jsonl = work / "alerts.jsonl"
    config = write_config_dir(work / "config", server.base, alerts_jsonl)
    env = {
        "NEWSMON_CONFIG": str(config),
        "NEWSMON_STORE": f"sqlite:///{work / 'newsmon.db'}",
        "NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8",
        "NEWSMON_DIGEST_DIR": str(work / "digests"),
    }
    with server, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield {"server": server, "work": work, "config": config, "alerts_jsonl": alerts_jsonl,
               "store_url": env["NEWSMON_STORE"], "digests": work / "digests"}


@pytest.fixture(scope="session")
def monitor_runs(newsmon_site):
    """news_monitor run twice over the same coverage: what the store, channel and asset hold after each."""
    runs = []
    for _ in range(2):
        with api_client_errors() as errors:
            run = run_dag("news_monitor")
        run["api_client_errors"] = errors
        run.update(store_snapshot(newsmon_site["store_url"]))
        run["jsonl"] = read_jsonl(newsmon_site["alerts_jsonl"])
        run["asset_events"] = asset_event_count("newsmon_articles")
        runs.append(run)
    return runs

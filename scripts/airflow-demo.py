"""`make demo`: the sample coverage through the real news_monitor DAG with dag.test().

Serves tests/fixtures/coverage on 127.0.0.1, points newsmon at it through the
same environment variables a deployment uses, migrates a throw-away Airflow
metadata DB under var/demo/airflow, runs the DAG once and prints the summary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "var" / "demo"


def main() -> int:
    if WORK.exists():
        shutil.rmtree(WORK)
    airflow_home = WORK / "airflow"
    airflow_home.mkdir(parents=True)
    os.environ.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    })
    for path in (str(REPO), str(REPO / "plugins")):
        sys.path.insert(0, path)
    print("demo: migrating a throw-away Airflow metadata DB under var/demo/airflow ...", flush=True)
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    if migrate.returncode != 0:
        print("demo: airflow db migrate failed:\n" + migrate.stderr[-2000:], file=sys.stderr)
        return 1

    from pipelines.demo import CoverageServer, print_summary, summarise, write_demo_config
    from pipelines.store import open_store

    store_url = f"sqlite:///{WORK / 'demo.db'}"
    with CoverageServer() as server:
        config_dir = write_demo_config(REPO / "config", WORK / "config", server.base)
        os.environ.update({"NEWSMON_CONFIG": str(config_dir), "NEWSMON_STORE": store_url,
                           "NEWSMON_ALLOW_NETWORKS": "127.0.0.0/8"})
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags"))
        if bag.import_errors:
            for file, error in bag.import_errors.items():
                print(f"demo: {file}: {error.splitlines()[-1]}", file=sys.stderr)
            return 1
        print("demo: running news_monitor with dag.test() ...", flush=True)
        run = bag.dags["news_monitor"].test()
        store = open_store(store_url)
        try:
            summary = summarise(store, server.base, store_url)
        finally:
            store.close()
    print()
    print_summary(summary, "--json" in sys.argv)
    print(f"\nDAG run {run.run_id}: {run.state}")
    return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())

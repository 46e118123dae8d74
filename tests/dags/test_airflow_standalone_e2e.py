"""End to end under a real `airflow standalone` (issue 15): Variables set through the REST API reach the
DAG file, the feed watcher in the triggerer and the tasks, and a watched loopback feed that changes
reaches an alert channel, with nothing restarted.

Airflow starts as `make run` starts it (scripts/airflow-standalone.sh) in a temporary AIRFLOW_HOME on
free ports. Its environment names a boot config with no feeds and a boot store; only the Variables
(newsmon_config_dir, newsmon_store_url, newsmon_allow_networks, newsmon_digest_dir) point it at the
loopback feed, the test's store and its JSONL channel. The cron is yearly, so the only way a run can
start is the watcher. Every wait has a hard bound; Airflow is always stopped, whatever happens.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("airflow", reason="Apache Airflow is not installed")

from tests.dags.airflow_helpers import read_jsonl  # noqa: E402
from tests.dags.standalone_helpers import (  # noqa: E402
    RestApi,
    component_pids,
    fixture,
    site_routes,
    start_standalone,
    stop_standalone,
    wait_for,
    write_boot_config,
    write_site_config,
)
from tests.localserver import Route  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("bash") is None,
                       reason="needs Linux (/proc) and bash to run scripts/airflow-standalone.sh"),
]

FEED_PATH = "/feeds/loopback-wire.xml"
WATCHER_AGENT = "newsmon-feedwatch/"
STARTUP_BOUND = 240  # seconds: db migrate + every component healthy, on a loaded 2-core machine
WATCH_BOUND = 150  # the next parse after the Variables, then the watcher's first polls (every 15 s)
BOOT_RUN_BOUND = 180  # the first cron tick's run: five tasks over an empty feed list
ALERT_BOUND = 180  # watcher event -> asset-triggered run of five tasks -> JSONL line


def local_etag(body: bytes) -> str:
    """The ETag tests/localserver.py gives a body (what a watcher that has seen it sends back)."""
    return '"' + hashlib.sha1(body).hexdigest()[:16] + '"'


def boot_run_done(api) -> bool:
    """No cron run due before next year and every news_monitor run so far in a final state."""
    dag = api.ok("GET", "/api/v2/dags/news_monitor")
    due = dag.get("next_dagrun_run_after")
    if not due or datetime.fromisoformat(due.replace("Z", "+00:00")) <= datetime.now(UTC):
        return False
    return all(r["state"] in ("success", "failed") for r in api.dag_runs("news_monitor"))


def store_articles(path: Path) -> int:
    """Articles in a SQLite store (0 when the file was never created)."""
    from pipelines.store import open_store

    if not path.exists():
        return 0
    store = open_store(f"sqlite:///{path}", create=False)
    try:
        return len(store.iter_articles(after_id=None))
    finally:
        store.close()


def watcher_polls(server) -> list[tuple[float, str]]:
    """(time, If-None-Match sent) of every GET the feed watcher made to the loopback feed."""
    def header(request, name: str) -> str:
        return next((v for k, v in request.headers.items() if k.lower() == name), "")

    return [(r.time, header(r, "if-none-match")) for r in server.requests_for(FEED_PATH)
            if r.method == "GET" and header(r, "user-agent").startswith(WATCHER_AGENT)]


def feed_requests(server) -> dict[str, int]:
    """How many times each client (User-Agent) asked for the watched feed: the failure message's clue."""
    counts: dict[str, int] = {}
    for request in server.requests_for(FEED_PATH):
        agent = next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "?")
        counts[agent] = counts.get(agent, 0) + 1
    return counts


def test_variables_set_through_the_rest_api_bring_a_watched_feed_to_an_alert(tmp_path: Path):
    from pipelines.store import open_store
    from tests.localserver import LocalServer

    boot_config = write_boot_config(tmp_path / "boot-config", tmp_path / "boot-alerts.jsonl")
    boot_store = tmp_path / "boot.db"
    store_path = tmp_path / "newsmon.db"
    alerts_jsonl = tmp_path / "alerts.jsonl"
    env = {
        # What Airflow starts with: nothing to watch, a store the test's Variables must override.
        "NEWSMON_CONFIG": str(boot_config),
        "NEWSMON_STORE": f"sqlite:///{boot_store}",
        "NEWSMON_DIGEST_DIR": str(tmp_path / "boot-digests"),
        # Re-parse the DAG files every few seconds (default 30) so the Variables show quickly.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "airflow" / "logs"),
    }
    with LocalServer() as server:
        server.routes.update(site_routes(server.base))
        config = write_site_config(tmp_path / "config", server.base, alerts_jsonl)
        before_etag = local_etag(server.routes[FEED_PATH].body)

        sa = start_standalone(tmp_path / "airflow", env)
        try:
            api = RestApi(sa.base_url)
            wait_for("healthy api-server, scheduler, dag-processor and triggerer", api.healthy, STARTUP_BOUND, sa)
            components = component_pids(sa)
            assert len(components) >= 4, f"standalone's components: {components}"
            wait_for("the generated admin password", lambda: api.login(sa.home) or True, 30, sa)
            wait_for("news_monitor in the API", lambda: api.request("GET", "/api/v2/dags/news_monitor")[0] == 200,
                     90, sa)
            # The digest DAG would run on the articles asset; it is not what this test is about.
            api.ok("PATCH", "/api/v2/dags/news_digest", {"is_paused": True})
            api.ok("PATCH", "/api/v2/dags/news_monitor", {"is_paused": False})
            assert watcher_polls(server) == [], "the boot config watches nothing"
            # catchup=False still runs the latest cron tick once when the DAG appears; let that boot run
            # (environment settings, no feeds) finish first, so every later run is the watcher's.
            wait_for("the boot run to finish", lambda: boot_run_done(api), BOOT_RUN_BOUND, sa, every=2)
            boot_runs = {r["dag_run_id"] for r in api.dag_runs("news_monitor")}

            for key, value in {
                "newsmon_allow_networks": "127.0.0.0/8",
                "newsmon_store_url": f"sqlite:///{store_path}",
                "newsmon_digest_dir": str(tmp_path / "digests"),
                "newsmon_config_dir": str(config),
            }.items():
                api.set_variable(key, value)

            # The next parse reads the Variables: a watcher on the loopback feed, allowed to reach it, whose
            # first poll is the baseline; a conditional GET with the baseline's ETag proves it was taken.
            try:
                wait_for("a feed-watch GET carrying the baseline's ETag",
                         lambda: [p for p in watcher_polls(server) if p[1] == before_etag], WATCH_BOUND, sa)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nfeed requests: {feed_requests(server)}") from None
            assert [r for r in api.dag_runs("news_monitor") if r["dag_run_id"] not in boot_runs] == [], \
                "a baseline poll starts no run"

            changed_at = time.time()
            server.routes[FEED_PATH] = Route(body=fixture("feed-after.xml", server.base),
                                             content_type="application/rss+xml; charset=utf-8")

            def alert_line():
                return [a for a in read_jsonl(alerts_jsonl) if a.get("rule_id") == "ceasefire-developments"]

            def runs_so_far() -> str:
                return "; ".join(f"{r['dag_run_id']} {r['run_type']} {r['state']} "
                                 f"{api.task_states('news_monitor', r['dag_run_id'])}"
                                 for r in api.dag_runs("news_monitor"))

            try:
                lines = wait_for("the ceasefire alert in the JSONL channel", alert_line, ALERT_BOUND, sa, every=2)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nnews_monitor runs: {runs_so_far()}") from None
            runs = [r for r in api.dag_runs("news_monitor") if r["dag_run_id"] not in boot_runs]

            # The watcher saw the change with a conditional GET after the switch and started the run.
            assert [p for p in watcher_polls(server) if p[0] >= changed_at], "no watcher poll after the change"
            assert runs and {r["run_type"] for r in runs} == {"asset_triggered"}, runs_so_far()

            alert = lines[0]
            assert alert["desk"] == "security"
            assert alert["development"] == "ceasefire-extended"
            assert alert["source"] == "Loopback Wire"
            assert alert["url"] == f"{server.base}/pages/torkham-ceasefire-extended.html"

            # The tasks used the Variables' store, not the environment's; the old story stayed silent.
            store = open_store(f"sqlite:///{store_path}", create=False)
            try:
                stored = store.list_alerts(limit=100)
            finally:
                store.close()
            assert alert["id"] in {a.id for a in stored}
            assert all("fruit-market" not in a.url for a in stored)
            assert store_articles(boot_store) == 0, "a task after the Variables used the environment's store"
            # Nothing was restarted: the same component processes are still there, and healthy.
            assert component_pids(sa) == components
            assert api.healthy()

            # What Ctrl-C on `make run` does: the script stops every component and exits 0.
            killed = stop_standalone(sa)
            assert (sa.proc.returncode, killed) == (0, []), sa.output()
        finally:
            stop_standalone(sa)


def test_the_dag_file_takes_the_watched_feeds_from_the_config_dir_variable(tmp_path: Path, monkeypatch):
    """The fast half of the above: at parse time Variable newsmon_config_dir beats NEWSMON_CONFIG, as in
    the tasks, so the watchers watch the feeds the tasks poll (they used the env var only)."""
    import newsmon_settings

    config = write_site_config(tmp_path / "config", "http://127.0.0.1:9", tmp_path / "alerts.jsonl")
    boot = write_boot_config(tmp_path / "boot", tmp_path / "boot-alerts.jsonl")
    monkeypatch.setenv("NEWSMON_CONFIG", str(boot))
    monkeypatch.delenv("NEWSMON_WATCH_FEEDS", raising=False)
    assert newsmon_settings.read_watched_feeds() == []
    variables = {"newsmon_config_dir": str(config)}
    monkeypatch.setattr(newsmon_settings, "airflow_variable", variables.get)
    assert newsmon_settings.parse_time_config_dir() == config
    assert [(f.feed_id, f.poll_interval) for f in newsmon_settings.read_watched_feeds()] == [("loopback-wire", 15)]

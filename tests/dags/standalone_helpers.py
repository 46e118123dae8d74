"""`airflow standalone` started as `make run` starts it, in a throw-away AIRFLOW_HOME, and its REST API.

Used by test_airflow_standalone_e2e.py. Everything is on 127.0.0.1 and bounded in time; the
whole Airflow (script, standalone and every component it forks) is always stopped, found by a
marker in its environment because standalone runs in a session of its own (see the script).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "airflow-standalone.sh"
FIXTURES = REPO / "tests" / "fixtures" / "airflow_e2e"
MARKER_ENV = "NEWSMON_E2E_STANDALONE"
# Yearly: no cron run during the test, so every run it sees was started by the feed watcher.
QUIET_SCHEDULE = "0 0 1 1 *"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the site: feed, pages and config on the loopback server ---------------------------------
def fixture(name: str, base: str, now: datetime | None = None) -> bytes:
    """A fixture file with {{BASE}}, {{NOW}} (RFC 822) and {{NOW_ISO}} filled in."""
    now = now or datetime.now(UTC)
    text = (FIXTURES / name).read_text(encoding="utf-8")
    text = text.replace("{{BASE}}", base).replace("{{NOW}}", format_datetime(now))
    return text.replace("{{NOW_ISO}}", now.strftime("%Y-%m-%dT%H:%M:%SZ")).encode("utf-8")


def site_routes(base: str) -> dict:
    """The watched feed as it is before the change, and both article pages."""
    from tests.localserver import Route

    html = "text/html; charset=utf-8"
    return {
        "/feeds/loopback-wire.xml": Route(body=fixture("feed-before.xml", base),
                                          content_type="application/rss+xml; charset=utf-8"),
        "/pages/fruit-market.html": Route(body=fixture("fruit-market.html", base), content_type=html),
        "/pages/torkham-ceasefire-extended.html": Route(body=fixture("torkham-ceasefire-extended.html", base),
                                                        content_type=html),
    }


def write_site_config(target: Path, base: str, alerts_jsonl: Path) -> Path:
    """The project's topics, events and alert rules; the loopback feed; jsonl alerts to alerts_jsonl;
    the project's alerts.max_age (48h), so only a story published now alerts; a yearly cron."""
    import yaml

    from pipelines.demo import write_demo_config

    write_demo_config(REPO / "config", target, base, FIXTURES / "feeds.yaml", alerts_jsonl=alerts_jsonl,
                      per_host_delay=0.01, max_age=None)
    settings_path = target / "newsmon.yaml"
    settings = yaml.safe_load(settings_path.read_text(encoding="utf-8"))
    settings["schedule"] = QUIET_SCHEDULE
    settings_path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return target


def write_boot_config(target: Path, alerts_jsonl: Path) -> Path:
    """What NEWSMON_CONFIG names when Airflow starts: the same project config, but no feeds (nothing to
    watch or poll) and its own JSONL file."""
    write_site_config(target, "http://127.0.0.1:9", alerts_jsonl)
    (target / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    return target


# --- the Airflow processes -------------------------------------------------------------------
@dataclass
class Standalone:
    proc: subprocess.Popen
    home: Path
    port: int
    marker: str
    log_path: Path
    _log: Any = field(repr=False, default=None)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self, lines: int = 40) -> str:
        """The last lines of standalone's output, without the API access log and scheduling chatter."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        noise = ("[http.access]", "next_dagrun", "Bulk-writing dags")
        kept = [line[:300] for line in text.splitlines() if not any(n in line for n in noise)]
        return "\n".join(kept[-lines:])


def standalone_env(home: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment `make run` gives the script, minus anything AIRFLOW_*/NEWSMON_* of this process
    (tests/dags/conftest.py points those at the in-process test DB), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "NEWSMON_", "PYTHONPATH"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update({
        "PATH": f"{venv_bin}:{env.get('PATH', '')}",
        "AIRFLOW_BIN": str(Path(venv_bin) / "airflow"),
        "PYTHON_BIN": sys.executable,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    env.update(extra)
    return env


def start_standalone(home: Path, extra_env: dict[str, str]) -> Standalone:
    """scripts/airflow-standalone.sh (db migrate, port check, standalone in its own session)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    marker = uuid.uuid4().hex
    env = standalone_env(home, port, {**extra_env, MARKER_ENV: marker})
    log_path = home / "standalone.out"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in stop_standalone
    proc = subprocess.Popen(["bash", str(SCRIPT)], cwd=str(REPO), env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Standalone(proc=proc, home=home, port=port, marker=marker, log_path=log_path, _log=log)


def marked_pids(marker: str) -> list[int]:
    """Our processes whose environment carries the marker: the script, standalone and its components."""
    needle = f"{MARKER_ENV}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def children(pid: int) -> set[int]:
    """Direct children of a process (from /proc/*/stat)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def component_pids(sa: Standalone) -> set[int]:
    """The processes `airflow standalone` runs its components in (api-server, scheduler, dag-processor,
    triggerer): the children of the script's python child. The same set later means nothing restarted."""
    return {pid for standalone in children(sa.proc.pid) for pid in children(standalone)}


def stop_standalone(sa: Standalone, grace: float = 60.0) -> list[int]:
    """SIGTERM to the script (what Ctrl-C amounts to), then SIGKILL to whatever marked process is left.
    Returns the pids that had to be killed; calling it again is harmless."""
    if sa.proc.poll() is None:
        sa.proc.send_signal(signal.SIGTERM)
        try:
            sa.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 10
    while marked_pids(sa.marker) and time.monotonic() < deadline:  # components still winding down
        time.sleep(0.5)
    killed = []
    for pid in marked_pids(sa.marker):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    if sa.proc.poll() is None:
        sa.proc.kill()
    sa.proc.wait(timeout=10)
    if sa._log is not None:
        sa._log.close()
        sa._log = None
    return killed


def wait_for(what: str, check: Callable[[], Any], bound: float, sa: Standalone | None = None,
             every: float = 1.0) -> Any:
    """check() until it returns something truthy; AssertionError naming `what` after `bound` seconds
    (or as soon as standalone has exited)."""
    deadline = time.monotonic() + bound
    last_error = None
    while time.monotonic() < deadline:
        if sa is not None and sa.proc.poll() is not None:
            raise AssertionError(f"airflow standalone exited ({sa.proc.returncode}) while waiting for "
                                 f"{what}:\n{sa.output()}")
        try:
            value = check()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            value, last_error = None, exc
        if value:
            return value
        time.sleep(every)
    tail = f"\n--- standalone output ---\n{sa.output()}" if sa is not None else ""
    raise AssertionError(f"gave up waiting for {what} after {bound:.0f}s (last error: {last_error}){tail}")


# --- the REST API ----------------------------------------------------------------------------
class RestApi:
    """Airflow 3's public API (/api/v2) with a JWT from the simple auth manager's /auth/token."""

    def __init__(self, base_url: str, timeout: float = 20.0):
        self.base_url = base_url
        self.timeout = timeout
        self.token: str | None = None

    def request(self, method: str, path: str, body: Any = None, *, attempts: int = 6) -> tuple[int, Any]:
        """One call; an HTTP 5xx is retried a few times (standalone's SQLite metadatabase answers
        "Database error" while the scheduler holds its write lock; the write was rolled back)."""
        for attempt in range(attempts):
            status, answer = self._request(method, path, body)
            if status < 500 or attempt == attempts - 1:
                return status, answer
            time.sleep(1.0 + attempt)
        return status, answer

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.request(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status}: {answer}"
        return answer

    def healthy(self) -> dict | None:
        """The health answer once every component standalone runs reports healthy."""
        status, answer = self.request("GET", "/api/v2/monitor/health", attempts=1)
        if status != 200 or not isinstance(answer, dict):
            return None
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return answer if all((answer.get(p) or {}).get("status") == "healthy" for p in parts) else None

    def login(self, home: Path, username: str = "admin") -> None:
        """POST /auth/token with the password standalone generated into AIRFLOW_HOME."""
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        answer = self.ok("POST", "/auth/token", {"username": username, "password": passwords[username]})
        self.token = answer["access_token"]

    def set_variable(self, key: str, value: str) -> None:
        status, answer = self.request("POST", "/api/v2/variables", {"key": key, "value": value})
        if status == 409:  # already there: replace its value
            self.ok("PATCH", f"/api/v2/variables/{key}", {"key": key, "value": value})
            return
        assert status == 201, f"POST /api/v2/variables {key}: HTTP {status}: {answer}"

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=50")["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        from urllib.parse import quote

        answer = self.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return {f"{ti['task_id']}[{ti['map_index']}]": ti["state"] for ti in answer["task_instances"]}

"""Figure 3: latency from a new item appearing in a local feed to its alert arriving at a webhook.

One in-process HTTP server on 127.0.0.1 is the publisher (an RSS feed plus article pages) and the
desk's webhook receiver. A sample: publish item n (time t0), wait for the POST whose alert URL
names page n (t1); latency = t1 - t0. Before each sample a random 0-1 s pause (watch) or
0-15 s pause (Airflow) spreads the publication moments over the poll cycle.

- `newsmon watch --interval 1`, a subprocess with its own store and config.
- `airflow standalone` (scripts/airflow-standalone.sh) with a temporary AIRFLOW_HOME and port,
  news_monitor scheduled by the FeedWatchTrigger on the local feed (cron set to once a year so
  only the trigger starts runs). newsmon_settings floors a watcher's poll interval at 15 s
  (MIN_WATCH_INTERVAL: politeness to publishers), so that is the interval used.

The alert rule is a query on a word only these pages contain, with relevant_only off, so the
figure measures the pipeline's latency, not the tagger's judgement. Every process started is in
a process group that is killed on the way out, error or not.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import (
    REPO_ROOT,
    Row,
    bench_env,
    children_cleaned,
    free_port,
    kill_group,
    start_group,
    summary,
    venv_bin,
    write_config,
)

TARGET_WATCH_P95 = 5.0
TARGET_AIRFLOW_P95 = 60.0
MARKER = "benchlatency"
_VOCAB = (
    "officials delegation border crossing traders convoy province district council statement week "
    "morning evening minister envoy spokesman meeting agenda proposal draft committee observers "
    "residents market highway checkpoint trucks villages elders schools clinic harvest weather river "
    "bridge railway airport customs ledger schedule report survey archive budget tariff license "
    "permit visa office desk editor bureau reporter camera studio bulletin briefing interview summit "
    "capital valley mountain pass plateau garrison patrol engineer contractor supplier warehouse"
).split()


def _sentence(rng: random.Random, words: int) -> str:
    picked = [rng.choice(_VOCAB) for _ in range(words)]
    picked += [f"{rng.choice(_VOCAB)}{rng.randrange(10_000)}"]  # a token no other page shares
    return " ".join(picked).capitalize() + "."


def page_html(n: int) -> bytes:
    """An article page of our own random text: unique per n (its own story), with the rule's marker."""
    rng = random.Random(n * 7919 + 17)
    paragraphs = [" ".join(_sentence(rng, rng.randrange(12, 20)) for _ in range(5)) for _ in range(4)]
    paragraphs[0] = f"The {MARKER} desk test number {n} begins here. " + paragraphs[0]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Bench item {n}</title></head>"
            f"<body><nav>Home | World | Region</nav><article><h1>Bench item {n}: crossing report</h1>{body}"
            f"</article><footer>Local test publisher</footer></body></html>").encode()


class LatencySite:
    """Feed, pages and webhook on one 127.0.0.1 port; records feed requests and webhook arrivals."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.published: dict[int, float] = {}
        self.arrivals: dict[int, float] = {}
        self.feed_requests: list[tuple[float, str, int]] = []  # (time, user agent, status)
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.startswith("/feed.xml"):
                    with site.lock:
                        items = list(site.items)
                    etag = f'"items-{len(items)}-{items[0] if items else 0}"'
                    status = 304 if self.headers.get("If-None-Match") == etag else 200
                    with site.lock:
                        site.feed_requests.append((time.time(), self.headers.get("User-Agent", ""), status))
                    if status == 304:
                        self._send(304, headers={"ETag": etag})
                    else:
                        self._send(200, site.feed(items), {"ETag": etag,
                                                           "Content-Type": "application/rss+xml; charset=utf-8"})
                    return
                match = re.fullmatch(r"/page/(\d+)", self.path)
                if match:
                    self._send(200, page_html(int(match.group(1))), {"Content-Type": "text/html; charset=utf-8"})
                    return
                self._send(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                now = time.time()
                self._send(200, b"ok")
                with contextlib.suppress(ValueError, AttributeError):
                    url = json.loads(body).get("url") or ""
                    match = re.search(r"/page/(\d+)", url)
                    if match:
                        with site.arrived:
                            site.arrivals.setdefault(int(match.group(1)), now)
                            site.arrived.notify_all()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def feed(self, items: list[int]) -> bytes:
        entries = "".join(
            f"<item><title>Bench item {n}: crossing report</title><link>{self.base}/page/{n}</link>"
            f'<guid isPermaLink="false">latency-{n}</guid><description>Item {n}</description></item>'
            for n in items)
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Latency bench</title>'
                f"<link>{self.base}/</link><description>local</description>{entries}</channel></rss>").encode()

    def publish(self, n: int) -> float:
        with self.lock:
            self.items.insert(0, n)
            del self.items[20:]
            self.published[n] = time.time()
            return self.published[n]

    def wait_arrival(self, n: int, timeout: float) -> float | None:
        deadline = time.time() + timeout
        with self.arrived:
            while n not in self.arrivals:
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.arrived.wait(left)
            return self.arrivals[n]

    def feed_polls(self, agent_part: str = "", since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for t, agent, _s in self.feed_requests if agent_part in agent and t >= since)

    def __enter__(self) -> LatencySite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(target: Path, site: LatencySite, interval: int, schedule: str | None = None) -> Path:
    alerts = {
        "channels": [{"id": "hook", "type": "webhook", "url": f"{site.base}/hook", "format": "generic", "timeout": 10}],
        "desks": [{"id": desk, "channels": ["hook"]} for desk in ("security", "diplomacy", "regional")],
        "rules": [{"id": "bench-latency", "desk": "security", "query": MARKER, "relevant_only": False,
                   "window": "24h"}],
    }
    return write_config(target, [{"id": "latency", "url": f"{site.base}/feed.xml", "desk": "security",
                                  "interval": interval}], alerts=alerts, schedule=schedule)


def _sample(site: LatencySite, count: int, pause: tuple[float, float], timeout: float,
            alive: Any = None, start_at: int = 1) -> tuple[list[float], int]:
    latencies, missed = [], 0
    rng = random.Random(12345)
    for n in range(start_at, start_at + count):
        time.sleep(rng.uniform(*pause))
        if alive is not None and not alive():
            raise RuntimeError("the process under test died")
        t0 = site.publish(n)
        arrived = site.wait_arrival(n, timeout)
        if arrived is None:
            missed += 1
        else:
            latencies.append(arrived - t0)
    return latencies, missed


def _wait_for(condition: Any, timeout: float, alive: Any, what: str, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if not alive():
            tail = log.read_text(errors="replace")[-1500:] if log and log.exists() else ""
            raise RuntimeError(f"process exited while waiting for {what}: {tail}")
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def newsmon_cmd() -> list[str]:
    script = venv_bin("newsmon")
    return [script] if os.path.isabs(script) else [sys.executable, "-m", "pipelines.cli"]


def measure_watch(samples: int = 15, work: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-watch-", dir=work) as tmp, LatencySite() as site, \
            children_cleaned():
        tmp_path = Path(tmp).resolve()
        config_dir = _config(tmp_path / "config", site, interval=1)
        log = tmp_path / "watch.log"
        cmd = newsmon_cmd() + ["--config", str(config_dir), "--store", f"sqlite:///{tmp_path / 'watch.db'}",
                               "watch", "--interval", "1"]
        proc = start_group(cmd, env=bench_env(), log=log, cwd=tmp_path)
        try:
            alive = lambda: proc.poll() is None  # noqa: E731
            _wait_for(lambda: site.feed_polls() >= 2, 90, alive, "newsmon watch to poll the feed twice", log)
            latencies, missed = _sample(site, samples, (0.0, 1.0), timeout=60, alive=alive)
        finally:
            kill_group(proc)
    return {"samples": samples, "missed": missed, "latencies": latencies, **summary(latencies)}


def _airflow_env(tmp_path: Path, config_dir: Path, port: int) -> dict[str, str]:
    home = tmp_path / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    airflow = venv_bin("airflow")
    # standalone starts its components as `airflow ...` from PATH: the venv's bin must come first
    path = os.pathsep.join([str(Path(airflow).parent), os.environ.get("PATH", "")])
    return bench_env(
        PATH=path,
        AIRFLOW_HOME=str(home),
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__HOST="127.0.0.1",  # loopback only (uvicorn's default is every interface)
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW_BIN=airflow,
        NEWSMON_CONFIG=str(config_dir),
        NEWSMON_STORE=f"sqlite:///{tmp_path / 'airflow-newsmon.db'}",
        NEWSMON_WATCH_FEEDS="latency",
        NEWSMON_DIGEST_DIR=str(tmp_path / "digests"),
    )


def measure_airflow(samples: int = 5, work: Path | None = None, startup_timeout: float = 600) -> dict[str, Any]:
    """Start Airflow standalone on a temp home and port, wait for the feed watcher, then sample."""
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-airflow-", dir=work) as tmp, LatencySite() as site, \
            children_cleaned():
        tmp_path = Path(tmp).resolve()
        config_dir = _config(tmp_path / "config", site, interval=15, schedule="0 0 1 1 *")
        env = _airflow_env(tmp_path, config_dir, free_port(["127.0.0.1"]))
        log = tmp_path / "airflow.log"
        started = time.time()
        proc = start_group(["bash", str(REPO_ROOT / "scripts" / "airflow-standalone.sh")], env=env, log=log,
                           cwd=REPO_ROOT)
        tree: dict[int, str] = {}
        try:
            alive = lambda: proc.poll() is None  # noqa: E731
            # two polls by the watcher: the baseline is set and the trigger is running
            _wait_for(lambda: site.feed_polls("feedwatch") >= 2, startup_timeout, alive,
                      "the FeedWatchTrigger to poll the local feed twice", log)
            ready_s = time.time() - started
            tree.update(_process_tree(proc.pid))
            latencies, missed = _sample(site, samples, (0.0, 15.0), timeout=300, alive=alive)
        except Exception:
            _keep_log(log, work)
            raise
        finally:
            tree.update(_process_tree(proc.pid))
            _stop_tree(proc, tree)
    return {"samples": samples, "missed": missed, "latencies": latencies, "startup_s": ready_s,
            "watch_interval_s": 15, **summary(latencies)}


def _keep_log(log: Path, work: Path | None) -> None:
    """A failed Airflow run's log outlives the temp dir (var/bench/airflow-failed.log)."""
    with contextlib.suppress(OSError):
        target = (work or REPO_ROOT / "var" / "bench") / "airflow-failed.log"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(log.read_bytes())
        print(f"bench: Airflow log kept at {target}", file=sys.stderr)


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _process_tree(root: int) -> dict[int, str]:
    """{pid: start time} of every live process below root (start time guards against pid reuse)."""
    return {pid: _start_time(pid) for pid in _descendants(root)}


def _stop_tree(proc: Any, tree: dict[int, str]) -> None:
    """SIGTERM the script (it stops standalone, which stops its components), then SIGKILL what is left.

    standalone runs in its own session (see scripts/airflow-standalone.sh), out of reach of the
    script's process group, hence the recorded tree."""
    import signal

    kill_group(proc, grace=90)
    for pid, started in tree.items():
        if started and _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _descendants(root: int) -> list[int]:
    """Every live process below `root` (by parent pid), so a setsid'd grandchild is still found."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in parents.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def rows_watch(result: dict[str, Any]) -> list[Row]:
    r = result
    return [Row("3. latency new item -> alert, newsmon watch --interval 1", _dist(r), f"p95 <= {TARGET_WATCH_P95:.0f} s",
                r["p95"] <= TARGET_WATCH_P95 and not r["missed"],
                note=f"n={r['n']} of {r['samples']} (missed {r['missed']}); webhook arrival minus publication")]


def rows_airflow(result: dict[str, Any]) -> list[Row]:
    r = result
    return [Row("3. latency new item -> alert, airflow standalone + FeedWatchTrigger", _dist(r),
                f"p95 <= {TARGET_AIRFLOW_P95:.0f} s", r["p95"] <= TARGET_AIRFLOW_P95 and not r["missed"],
                note=(f"n={r['n']} of {r['samples']} (missed {r['missed']}); trigger polls every "
                      f"{r['watch_interval_s']} s; Airflow ready after {r['startup_s']:.0f} s"))]


def _dist(r: dict[str, Any]) -> str:
    return f"p95 {r['p95']:.1f} s (min {r['min']:.1f}, p50 {r['p50']:.1f}, max {r['max']:.1f})"

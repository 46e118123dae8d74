"""What every benchmark shares: the result row, machine facts, the real pages, temp configs, child processes."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "config"
# The shared benchmark pages (read by path, never copied into the repo).
EXTRACTION_DIR = Path(os.environ.get("NEWSMON_EXTRACTION_DATA") or REPO_ROOT.parent / "shared" / "data" / "extraction")
EXTRACTION_SETS = ("scrapinghub", "wcxb")


@dataclass
class Row:
    """One line of the table: a figure, its measured value, the target and whether it was met."""

    figure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target (a figure reported for information)
    note: str = ""

    def met_text(self) -> str:
        return "-" if self.met is None else ("yes" if self.met else "NO")


@dataclass
class Page:
    set: str
    id: str
    url: str
    html: bytes
    truth: str
    title: str = ""
    path: str = ""  # the page file (the news-please peer reads it in its own process)


def load_pages(folder: Path | None = None, sets: tuple[str, ...] = EXTRACTION_SETS) -> list[Page]:
    """Every page of both extraction sets with its URL and ground-truth text; [] when the data is absent."""
    base = Path(folder or EXTRACTION_DIR)
    pages: list[Page] = []
    for name in sets:
        root = base / name
        if (root / "ground-truth.json").is_file():  # scrapinghub: {id: {"articleBody", "url"}}
            data = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
            records = [(pid, rec.get("url") or "", rec.get("articleBody") or "", rec.get("headline") or "")
                       for pid, rec in data.items()]
        elif (root / "ground-truth").is_dir():  # wcxb: <id>.json {"url", "ground_truth": {...}}
            records = []
            for path in sorted((root / "ground-truth").glob("*.json")):
                rec = json.loads(path.read_text(encoding="utf-8"))
                truth = rec.get("ground_truth") or {}
                records.append((path.stem, rec.get("url") or "", truth.get("main_content") or "",
                                truth.get("title") or ""))
        else:
            continue
        for pid, url, text, title in sorted(records):
            html_path = root / "html" / f"{pid}.html.gz"
            if not html_path.is_file():
                continue
            with gzip.open(html_path, "rb") as fh:
                html = fh.read()
            pages.append(Page(set=name, id=pid, url=url or f"https://{name}.example/{pid}", html=html,
                              truth=text, title=title, path=str(html_path)))
    return unique_urls(pages)


def unique_urls(pages: list[Page]) -> list[Page]:
    """Give repeated URLs a distinguishing query, so the store's URL de-duplication does not drop real pages."""
    seen: dict[str, int] = {}
    for page in pages:
        count = seen.get(page.url, 0)
        seen[page.url] = count + 1
        if count:
            page.url += ("&" if "?" in page.url else "?") + f"bench_copy={count}"
    return pages


def machine_facts() -> dict[str, Any]:
    """The facts docs/performance.md records next to the figures."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def summary(values: list[float]) -> dict[str, float]:
    """n, min, p50, p95 (nearest rank) and max of a sample."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "min": float("nan"), "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    rank = max(0, min(len(ordered) - 1, -(-95 * len(ordered) // 100) - 1))  # nearest-rank percentile
    return {"n": len(ordered), "min": ordered[0], "p50": statistics.median(ordered), "p95": ordered[rank],
            "max": ordered[-1]}


def rss_mb() -> float:
    """Resident set size of this process now, in MB."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


# --- loopback "hosts" ------------------------------------------------------------------------

def loopback_hosts(count: int) -> list[str]:
    """127.0.0.1, 127.0.0.2, ...: distinct hosts for per-host politeness, all on lo (Linux routes 127/8)."""
    hosts = []
    for i in range(count):
        third, fourth = divmod(i, 254)
        hosts.append(f"127.0.{third}.{fourth + 1}")
    return hosts


def free_port(hosts: list[str], attempts: int = 50) -> int:
    """A TCP port free on every one of these addresses."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        ok = True
        for host in hosts[1:]:
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError(f"no port free on all of {len(hosts)} loopback addresses")


# --- temp config dirs ------------------------------------------------------------------------

def write_config(target: Path, feeds: list[dict[str, Any]], *, fetch: dict[str, Any] | None = None,
                 alerts: dict[str, Any] | None = None, schedule: str | None = None,
                 jsonl_path: str | None = None) -> Path:
    """A config dir: the project's topics and settings (fetch defaults kept), these feeds, and the
    project's alert rules sent to one jsonl channel (or the given alerts.yaml data)."""
    from pipelines.config import parse_yaml

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG_DIR / "topics.yaml", target / "topics.yaml")
    settings = parse_yaml((CONFIG_DIR / "newsmon.yaml").read_text(encoding="utf-8")) or {}
    settings["store"] = None
    settings.pop("health", None)  # its channels are the project's alerts.yaml's, not this config's
    if schedule:
        settings["schedule"] = schedule
    if fetch:
        settings.setdefault("fetch", {}).update(fetch)
    (target / "newsmon.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    (target / "feeds.yaml").write_text(yaml.safe_dump({"feeds": feeds}, sort_keys=False), encoding="utf-8")
    if alerts is None:
        alerts = project_rules_to_jsonl(jsonl_path or str(target / "alerts.jsonl"))
    (target / "alerts.yaml").write_text(yaml.safe_dump(alerts, sort_keys=False), encoding="utf-8")
    return target


def project_rules_to_jsonl(path: str) -> dict[str, Any]:
    """The project's alerts.yaml with every channel replaced by one jsonl file (no console spam, no mail)."""
    from pipelines.config import parse_yaml

    data = parse_yaml((CONFIG_DIR / "alerts.yaml").read_text(encoding="utf-8"))
    data["channels"] = [{"id": "jsonl", "type": "jsonl", "path": path}]
    for desk in data.get("desks") or []:
        desk["channels"] = ["jsonl"]
    for rule in data.get("rules") or []:
        rule.pop("channels", None)
    return data


# --- child processes -------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen] = []


def start_group(cmd: list[str], *, env: dict[str, str] | None = None, log: Path | None = None,
                cwd: Path | None = None) -> subprocess.Popen:
    """Start a command in its own process group (session), registered for kill_all()."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    if log:
        out.close()
    _CHILDREN.append(proc)
    return proc


def kill_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the child's whole process group, wait, then SIGKILL whatever is left of the group."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    if proc in _CHILDREN:
        _CHILDREN.remove(proc)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_all() -> None:
    """Every child process group this run started and has not stopped yet."""
    for proc in list(_CHILDREN):
        kill_group(proc, grace=10.0)


@contextlib.contextmanager
def children_cleaned() -> Iterator[None]:
    """Kill every started process group on the way out, also on Ctrl-C or SIGTERM."""
    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        kill_all()
        signal.signal(signal.SIGTERM, previous)


def bench_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this repo importable, loopback allowed, nothing else changed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["NEWSMON_ALLOW_NETWORKS"] = "127.0.0.0/8"
    env.update(extra)
    return env


def venv_bin(name: str) -> str:
    """A script next to the running interpreter (the project venv's newsmon, airflow)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


class CpuWatch:
    """How much CPU other processes used while we measured (a noisy-neighbour gauge, approximate):
    all CPUs' busy time from /proc/stat minus this process's and its waited-for children's."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.busy0, self.own0 = _busy_seconds(), _own_seconds()

    def others_cores(self) -> float:
        wall = time.perf_counter() - self.started
        if wall <= 0:
            return 0.0
        others = (_busy_seconds() - self.busy0) - (_own_seconds() - self.own0)
        return max(0.0, others / wall)


def _busy_seconds() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

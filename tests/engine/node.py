"""A real search engine node on 127.0.0.1 for the test suite (OpenSearch 2.19, tests/engine/pom.xml).

build() compiles the launcher with Maven when its sources are newer than the last build (the Maven
cache is the repo's ignored .cache/maven); start() runs it with a small heap, waits for its port line
under a hard timeout and checks that ``GET /`` answers; stop() closes its stdin (the launcher's stop
signal), then kills it if it lingers. running_node() and the ``engine_url`` fixture wrap the two.

As a command, it runs another command with the node's URL in an environment variable:
``python -m tests.engine.node [--env NEWSMON_ES_URL] -- pytest tests/store`` (scripts/test-engine.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent
REPO = ENGINE_DIR.parents[1]
POM = ENGINE_DIR / "pom.xml"
CLASSPATH_FILE = ENGINE_DIR / "target" / "classpath.txt"
CLASSES_DIR = ENGINE_DIR / "target" / "classes"
MAIN_CLASS = "newsmon.engine.EngineNode"
PORT_PREFIX = "NEWSMON_ENGINE_PORT="
# Small and polite on a 2-core box: a 1 GiB heap, one GC thread, two JIT threads.
JAVA_OPTS = ("-Xms512m", "-Xmx1g", "-XX:+UseSerialGC", "-XX:CICompilerCount=2", "-Xss1m")
# What a test run's node gets unless told otherwise (-E): a refresh every 100 ms instead of every
# second. A search still sees only refreshed writes, so read-after-write is still tested; writes that
# wait for a refresh (the store's default) just wait less. Benchmarks start the node without it.
TEST_SETTINGS = {"cluster.default.index.refresh_interval": "100ms"}
START_TIMEOUT = 180.0
BUILD_TIMEOUT = 900.0


class EngineError(RuntimeError):
    """The test engine could not be built, started or reached."""


def maven_repo() -> Path:
    """The Maven cache: NEWSMON_MAVEN_REPO, else the repo's ignored .cache/maven."""
    return Path(os.environ.get("NEWSMON_MAVEN_REPO") or REPO / ".cache" / "maven")


def java_executable() -> str:
    """JAVA_HOME's java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME", "").strip()
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise EngineError("test engine: no java (set JAVA_HOME or put java on PATH; Java 17 or later)")
    return found


def _sources() -> list[Path]:
    return [POM, *sorted((ENGINE_DIR / "src").rglob("*"))]


def _classpath() -> list[str] | None:
    """The built classpath, or None when a build is due (never built, sources newer, jars gone)."""
    if not CLASSPATH_FILE.is_file() or not CLASSES_DIR.is_dir():
        return None
    built = CLASSPATH_FILE.stat().st_mtime
    if any(path.is_file() and path.stat().st_mtime > built for path in _sources()):
        return None
    jars = [entry for entry in CLASSPATH_FILE.read_text(encoding="utf-8").strip().split(os.pathsep) if entry]
    if not jars or not all(Path(jar).is_file() for jar in jars):
        return None
    return [str(CLASSES_DIR), *jars]


def build(*, force: bool = False, timeout: float = BUILD_TIMEOUT) -> list[str]:
    """The launcher's classpath, building it first when due (the first build downloads ~150 MB)."""
    classpath = None if force else _classpath()
    if classpath is not None:
        return classpath
    mvn = shutil.which("mvn")
    if not mvn:
        raise EngineError("test engine: no mvn on PATH (Maven 3.8 or later builds tests/engine/pom.xml)")
    command = [mvn, "-B", "-q", "-f", str(POM), f"-Dmaven.repo.local={maven_repo()}", "compile"]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise EngineError(f"test engine: Maven build of {POM} took over {timeout:.0f} s") from err
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise EngineError(f"test engine: Maven build of {POM} failed (exit {done.returncode}):\n{tail}")
    CLASSPATH_FILE.touch()  # Maven may keep an up-to-date file's old mtime
    classpath = _classpath()
    if classpath is None:
        raise EngineError(f"test engine: Maven built {POM} but left no usable {CLASSPATH_FILE}")
    return classpath


@dataclass
class Engine:
    """A running node: its URL, its process and the file that has its log."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        return _log_tail(self.log_path, lines)


def usage(process: subprocess.Popen) -> dict[str, float]:
    """The node's peak RSS (MiB) and CPU seconds so far, from /proc (empty where there is none)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text(encoding="utf-8")
        fields = Path(f"/proc/{process.pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    except OSError:
        return {}
    peak = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    ticks = os.sysconf("SC_CLK_TCK")
    return {"peak_rss_mib": peak / 1024, "cpu_s": (int(fields[11]) + int(fields[12])) / ticks}


def _read_lines(stream, lines: queue.Queue) -> None:
    """Every stdout line into the queue (the port line is waited for; later ones are drained)."""
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_root(url: str, timeout: float = 10.0) -> dict:
    """``GET /`` must answer 200 with the node's JSON (name, version)."""
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError) as err:
        raise EngineError(f"test engine at {url}: GET / failed: {err}") from err
    if not isinstance(body, dict) or "version" not in body:
        raise EngineError(f"test engine at {url}: GET / answered no node info: {str(body)[:200]}")
    return body


def start(base_dir: str | os.PathLike[str], *, timeout: float = START_TIMEOUT, product_header: bool = True,
          settings: dict[str, str] | None = None, java_opts: Sequence[str] = JAVA_OPTS,
          command: Sequence[str] | None = None) -> Engine:
    """Start a node whose data, logs and home are under base_dir, and wait until it answers.

    product_header makes the node send ``X-Elastic-Product: Elasticsearch``, which the Elasticsearch
    Python client demands; settings are extra node settings (``-Ekey=value``). command replaces the
    java command line (tests of this helper)."""
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    log_path = base / "engine.log"
    if command is None:
        args = [*(["--es-product-header"] if product_header else []),
                *(f"-E{key}={value}" for key, value in (settings or {}).items()), str(base / "node")]
        command = [java_executable(), *java_opts, "-cp", os.pathsep.join(build()), MAIN_CLASS, *args]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                   text=True, encoding="utf-8", errors="replace", cwd=base)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    port = None
    try:
        while port is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError(f"test engine: no {PORT_PREFIX} line within {timeout:.0f} s; "
                                  f"log {log_path}:\n{_log_tail(log_path)}")
            try:
                line = lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                code = process.wait(timeout=10)
                raise EngineError(f"test engine exited (code {code}) before printing its port; "
                                  f"log {log_path}:\n{_log_tail(log_path)}")
            if line.startswith(PORT_PREFIX):
                value = line[len(PORT_PREFIX):].strip()
                if not value.isdigit() or not 0 < int(value) < 65536:
                    raise EngineError(f"test engine printed a bad port line: {line!r}")
                port = int(value)
        engine = Engine(f"http://127.0.0.1:{port}", port, process, log_path)
        check_root(engine.url)
    except BaseException:
        _halt(process, grace=5.0)
        raise
    return engine


def _halt(process: subprocess.Popen, grace: float) -> int:
    """Close stdin and wait up to grace seconds; then SIGTERM, then SIGKILL (each given up to
    min(grace, 10) seconds). Returns the exit code."""
    with contextlib.suppress(OSError):
        if process.stdin:
            process.stdin.close()
    for signal_step in (None, process.terminate, process.kill):
        if signal_step is not None:
            with contextlib.suppress(OSError):
                signal_step()
        try:
            return process.wait(timeout=grace if signal_step is None else min(grace, 10.0))
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def stop(engine: Engine, grace: float = 30.0) -> int:
    """Stop the node by closing its stdin; SIGTERM, then SIGKILL, if it is still up after grace seconds."""
    return _halt(engine.process, grace)


def scratch_parent() -> str | None:
    """Where a throwaway node keeps its data: /dev/shm when it is writable, else the system temp dir.

    A test node's data is disposable, and on a disk every index creation waits for fsyncs of the
    cluster state: about 9 s per test namespace here against 0.4 s in memory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


@contextlib.contextmanager
def running_node(base_dir: str | os.PathLike[str] | None = None, **start_kwargs) -> Iterator[Engine]:
    """A node for the duration of the block (in a temporary directory unless base_dir is given)."""
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="newsmon-engine-",
                                                                       dir=scratch_parent()))
        engine = start(base_dir, **start_kwargs)
        try:
            yield engine
        finally:
            stop(engine)


try:  # the fixture, for a conftest: `from tests.engine.node import engine_url`
    import pytest
except ImportError:  # pragma: no cover - the command needs no pytest
    pytest = None
else:
    @pytest.fixture(scope="session")
    def engine_url() -> Iterator[str]:
        """The URL of one real node for the whole session (skips when Java or Maven is missing)."""
        if not shutil.which("mvn") or not (os.environ.get("JAVA_HOME") or shutil.which("java")):
            pytest.skip("the test engine needs java and mvn")
        with running_node(settings=TEST_SETTINGS) as engine:
            yield engine.url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.engine.node", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="NEWSMON_ES_URL", help="variable that gets the node's URL")
    parser.add_argument("--build-only", action="store_true", help="build the launcher and exit")
    parser.add_argument("--no-product-header", action="store_true",
                        help="do not answer X-Elastic-Product (a plain OpenSearch node)")
    parser.add_argument("-E", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra node setting (default: cluster.default.index.refresh_interval=100ms)")
    parser.add_argument("--dir", help="data/log directory (default: a temporary one)")
    parser.add_argument("command", nargs="*", help="command to run with the URL set (after --)")
    args = parser.parse_args(argv)
    try:
        if args.build_only:
            build()
            return 0
        if not args.command:
            parser.error("give a command to run after --")
        settings = {**TEST_SETTINGS, **dict(item.split("=", 1) for item in args.settings if "=" in item)}
        with running_node(args.dir, product_header=not args.no_product_header, settings=settings) as engine:
            info = check_root(engine.url)
            print(f"test engine: {info.get('version', {}).get('distribution', 'node')} "
                  f"{info.get('version', {}).get('number', '?')} at {engine.url} (log {engine.log_path})",
                  file=sys.stderr, flush=True)
            env = {**os.environ, args.env: engine.url}
            code = subprocess.run(args.command, env=env, check=False).returncode
            figures = usage(engine.process)
            if figures:
                print(f"test engine: peak RSS {figures['peak_rss_mib']:.0f} MiB, "
                      f"CPU {figures['cpu_s']:.1f} s", file=sys.stderr, flush=True)
            return code
    except EngineError as err:
        print(err, file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())

"""Shared parts of the reliability suite: real servers, a real config and store, and what to check.

Everything here is real: feeds and pages come from LocalServer over TCP on loopback, the store is a
SQLite file, alerts go over HTTP to a webhook receiver that applies each Idempotency-Key once (as a
desk's chat bridge or ticketing hook should), and SSRF victims are plain TCP listeners that count
every connection they accept.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import html
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from pipelines.cycle import Context, open_context, run_cycle
from pipelines.demo import DEMO_MAX_AGE
from pipelines.models import CycleReport
from pipelines.netguard import NetworkPolicy
from pipelines.notify import SIGNATURE_HEADER, verify_signature
from tests.localserver import LocalServer, Route

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "reliability"
PAGES = FIXTURES / "pages"
COVERAGE = REPO / "tests" / "fixtures" / "coverage"
REAL_FEEDS = Path("/work/shared/data/feeds")

HOOK_URL_ENV = "NEWSMON_RELIABILITY_HOOK_URL"
HOOK_SECRET_ENV = "NEWSMON_RELIABILITY_HOOK_SECRET"
HOOK_SECRET = "reliability-suite-hmac-key"  # test-only key for a loopback receiver, not a credential
LOOPBACK_ONLY = ("127.0.0.1/32",)

# Small limits so hostile servers are cut quickly (the slow-server cases shorten the total deadline
# further); every value passes config validation.
FAST_FETCH: dict[str, Any] = {
    "connect_timeout": 2, "read_timeout": 5, "total_timeout": 5, "max_bytes": 1_000_000,
    "max_redirects": 3, "per_host_concurrency": 4, "per_host_delay": 0.001, "workers": 8,
}
HTML = "text/html; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"


# --- feeds -----------------------------------------------------------------------------------------

def rfc822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def rss_item(*, title: str, link: str | None = None, guid: str | None = None, description: str = "",
             pub_date: str | None = None, raw: str = "") -> str:
    """One <item>; values are escaped, `raw` is inserted as given (for hostile markup)."""
    parts = [f"<title>{html.escape(title)}</title>"]
    if link is not None:
        parts.append(f"<link>{html.escape(link)}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{html.escape(guid)}</guid>')
    if description:
        parts.append(f"<description>{html.escape(description)}</description>")
    if pub_date is not None:
        parts.append(f"<pubDate>{html.escape(pub_date)}</pubDate>")
    return "<item>" + "".join(parts) + raw + "</item>"


def rss(items: list[str], *, title: str = "Reliability feed", prolog: str = '<?xml version="1.0" encoding="utf-8"?>',
        link: str = "http://127.0.0.1/") -> bytes:
    body = (f'{prolog}\n<rss version="2.0"><channel><title>{html.escape(title)}</title>'
            f"<link>{html.escape(link)}</link><description>newsmon reliability tests</description>"
            + "".join(items) + "</channel></rss>\n")
    return body.encode("utf-8")


def notice(n: int, subject: str = "the reliability feed") -> str:
    """A short, unique feed summary (unique so exact-duplicate detection leaves it alone)."""
    return (f"Notice {n} from {subject}: the parish council met on evening {n} to discuss street lighting, "
            f"bin collection rounds and the repair of bench number {n} in the memorial garden.")


GOOD_PAGES = ("harbour-ferry", "school-meals", "bridge-repair", "library-hours")


def good_feed(base: str, slugs: tuple[str, ...]) -> bytes:
    """The well-behaved neighbour feed: one item per fixture page."""
    now = datetime.now(UTC)
    items = [rss_item(title=f"Riverside Courier: {slug.replace('-', ' ')}", link=f"{base}/pages/{slug}.html",
                      guid=f"courier-{slug}", description=notice(i, "the Riverside Courier"),
                      pub_date=rfc822(now - timedelta(hours=i + 1)))
             for i, slug in enumerate(slugs)]
    return rss(items, title="Riverside Courier")


class Site(LocalServer):
    """LocalServer that notices shutdown within 20 ms (the default poll makes every test wait ~0.5 s)."""

    def __init__(self, routes: dict[str, Route] | None = None, host: str = "127.0.0.1"):
        super().__init__(routes, host)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)


def site(**extra_routes: Route) -> Site:
    """A local server with the fixture pages at /pages/<slug>.html, plus extra routes."""
    server = Site()
    for page in PAGES.glob("*.html"):
        server.routes[f"/pages/{page.name}"] = Route(body=page.read_bytes(), content_type=HTML)
    server.routes.update(extra_routes)
    return server


# --- the two feeds of the fault tests ---------------------------------------------------------

def notices_feed(count: int) -> bytes:
    now = datetime.now(UTC)
    return rss([rss_item(title=f"Council notice {n}", guid=f"notice-{n}", link=f"http://127.0.0.1:9/n{n}",
                         description=notice(n, "the council") + " " + "Minutes follow. " * 40,
                         pub_date=rfc822(now)) for n in range(count)])


def two_feeds(server: LocalServer) -> list[dict[str, Any]]:
    """alpha: the Riverside Courier (two pages); beta: council notices (one). Fault tests start here."""
    server.routes["/feeds/alpha.xml"] = Route(body=good_feed(server.base, GOOD_PAGES[:2]), content_type=RSS)
    server.routes["/feeds/beta.xml"] = Route(body=notices_feed(1), content_type=RSS)
    return [{"id": "alpha", "url": f"{server.base}/feeds/alpha.xml"},
            {"id": "beta", "url": f"{server.base}/feeds/beta.xml"}]


def publish_more(server: LocalServer) -> None:
    """alpha gets two more pages, beta eleven more notices: 13 new items for the faulty cycle."""
    server.routes["/feeds/alpha.xml"] = Route(body=good_feed(server.base, GOOD_PAGES), content_type=RSS)
    server.routes["/feeds/beta.xml"] = Route(body=notices_feed(12), content_type=RSS)


def all_items_held(ctx: Any, feed_id: str, item_ids: list[str]) -> None:
    """Feed state may only have moved on if every item of the document is seen or in the inbox."""
    queued = {item.item_id for _key, item in ctx.store.pending_items(limit=10_000) if item.feed_id == feed_id}
    seen = ctx.store.seen_items(feed_id, item_ids)
    missing = [i for i in item_ids if i not in queued and i not in seen]
    assert not missing, f"feed {feed_id} advanced past items held nowhere: {missing}"


ALPHA_IDS = [f"courier-{slug}" for slug in GOOD_PAGES]
BETA_IDS = [f"notice-{n}" for n in range(12)]


def finish_and_check(workdir: Path, feeds: list[dict[str, Any]], before: dict, **monitor_args: Any) -> None:
    """The cycle after a fault: everything stored exactly once, nothing left behind."""
    with monitor(workdir, feeds, **monitor_args) as ctx:
        report = run_cycle(ctx)
        assert not [e for e in report.errors if "store" in e], report.errors
        assert_nothing_lost(before, ctx.store)
        assert ctx.store.count_articles() == len(ALPHA_IDS) + len(BETA_IDS)
        assert inbox_size(ctx.store) == 0
        assert ctx.store.seen_items("beta", BETA_IDS) == set(BETA_IDS)
        assert ctx.store.seen_items("alpha", ALPHA_IDS) == set(ALPHA_IDS)
        again = run_cycle(ctx)
        assert again.items_new == 0 and again.articles_stored == 0


# --- config and context ----------------------------------------------------------------------------

def alerts_config(hook: bool) -> dict[str, Any]:
    """The project's alert rules, with every desk routed to one test channel (webhook or JSONL)."""
    data = yaml.safe_load((REPO / "config" / "alerts.yaml").read_text(encoding="utf-8"))
    if hook:
        channel = {"id": "hook", "type": "webhook", "url_env": HOOK_URL_ENV, "format": "generic",
                   "secret_env": HOOK_SECRET_ENV, "timeout": 5}
    else:
        channel = {"id": "hook", "type": "jsonl", "path": "alerts.jsonl"}
    data["channels"] = [channel]
    for desk in data.get("desks") or []:
        desk["channels"] = ["hook"]
    for rule in data.get("rules") or []:
        rule.pop("channels", None)
    return data


def write_config(target: Path, feeds: list[dict[str, Any]], *, hook: bool = False,
                 fetch: dict[str, Any] | None = None, batch_size: int | None = None) -> Path:
    """A config directory: the project's topics, the test alert routing, these feeds, fast fetch limits."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "topics.yaml").write_bytes((REPO / "config" / "topics.yaml").read_bytes())
    (target / "events.yaml").write_bytes((REPO / "config" / "events.yaml").read_bytes())
    (target / "alerts.yaml").write_text(yaml.safe_dump(alerts_config(hook), sort_keys=False), encoding="utf-8")
    entries = [{"desk": "regional", "language": "en", "interval": 60, **feed} for feed in feeds]
    (target / "feeds.yaml").write_text(yaml.safe_dump({"feeds": entries}, sort_keys=False), encoding="utf-8")
    # The sample coverage dates from 2025: as wide a freshness limit as the demo's, so it notifies.
    settings: dict[str, Any] = {"fetch": {**FAST_FETCH, **(fetch or {})}, "store": None,
                                "alerts": {"max_age": DEMO_MAX_AGE}}
    if batch_size:
        settings["batch_size"] = batch_size
    (target / "newsmon.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return target


@contextlib.contextmanager
def monitor(workdir: Path, feeds: list[dict[str, Any]], *, allow: tuple[str, ...] = LOOPBACK_ONLY,
            store_url: str | None = None, hook_url: str | None = None, store: Any = None,
            **config: Any) -> Iterator[Context]:
    """An open pipeline context over a real SQLite file in workdir (kept between calls).

    `store` swaps in an already opened store (a backend that needs client options a URL cannot
    carry); the context closes it at the end like its own."""
    config_dir = write_config(workdir / "config", feeds, hook=hook_url is not None, **config)
    ctx = open_context(str(config_dir), store_url or f"sqlite:///{workdir / 'store.db'}", store=store,
                       policy=NetworkPolicy(allow=list(allow)), base_dir=str(workdir))
    if hook_url is not None:
        # The notifier reads secrets from the environment; these tests give it its own mapping.
        ctx.notifier.env = {HOOK_URL_ENV: hook_url, HOOK_SECRET_ENV: HOOK_SECRET}
    try:
        yield ctx
    finally:
        ctx.fetcher.close()
        ctx.close()


# --- what must hold --------------------------------------------------------------------------------

def snapshot(store: Any) -> dict[str, tuple[str, str, str, str]]:
    """Every stored article: id -> (url, title, content hash, story)."""
    out: dict[str, tuple[str, str, str, str]] = {}
    after = None
    while batch := store.iter_articles(after_id=after):
        for article in batch:
            out[article.id] = (article.url, article.title, article.content_hash, article.story_id)
        after = batch[-1].id
    return out


def assert_nothing_lost(before: dict[str, tuple[str, str, str, str]], store: Any) -> None:
    after = snapshot(store)
    missing = sorted(set(before) - set(after))
    assert not missing, f"stored articles lost: {missing}"
    changed = sorted(i for i in before if after[i] != before[i])
    assert not changed, f"stored articles changed: {changed}"


def assert_one_line_errors(report: CycleReport) -> None:
    for line in report.errors:
        assert line.strip() and "\n" not in line and "\r" not in line, f"not one line: {line!r}"
        assert "Traceback" not in line, line


def accounted(report: CycleReport) -> int:
    """Spooled items whose fate the report states: stored, or dropped for a named reason.

    Entries the feed parser could not read are dropped before the inbox (PARSE_DROP_REASONS), so
    they are left out here: they never count in `items_new`."""
    from pipelines.feeds import PARSE_DROP_REASONS

    spooled_drops = sum(n for reason, n in report.dropped.items() if reason not in PARSE_DROP_REASONS)
    return report.articles_stored + spooled_drops


def feed_state(store: Any, feed_id: str):
    return next((s for s in store.list_feed_states() if s.feed_id == feed_id), None)


def inbox_size(store: Any) -> int:
    return len(store.pending_items(limit=1_000_000))


def stored_ids_for(store: Any, urls: list[str]) -> list[str]:
    from pipelines.identity import canonical_url, doc_id

    return [doc_id(canonical_url(u)) for u in urls]


# --- an idempotent webhook receiver ---------------------------------------------------------------

@dataclass
class Delivery:
    path: str
    key: str
    signed: bool
    time: float


@dataclass
class IdempotentReceiver:
    """A webhook endpoint that applies each Idempotency-Key once, as the contract asks receivers to.

    `raw` counts every POST, `effects` only the first per key: raw - effects is how many times the
    sender repeated itself (a crash between sending and recording "delivered" repeats a send).
    Bound to a fixed port so it can go down and come back at the same URL.
    """

    port: int = 0
    secret: bytes = HOOK_SECRET.encode()
    delay: float = 0.0  # seconds before answering (a slow chat bridge)
    deliveries: list[Delivery] = field(default_factory=list)
    effects: dict[str, list[str]] = field(default_factory=dict)  # path -> keys applied, in order
    lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> IdempotentReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key", "")
                signed = verify_signature(receiver.secret, body, self.headers.get(SIGNATURE_HEADER, ""))
                with receiver.lock:
                    receiver.deliveries.append(Delivery(self.path, key, signed, time.time()))
                    applied = receiver.effects.setdefault(self.path, [])
                    if key and key not in applied:
                        applied.append(key)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = 200 if key and signed else 400
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender was killed mid-request: what the crash tests do

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass

        self._httpd = QuietServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def raw(self, path: str = "/hook") -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path == path]

    def applied(self, path: str = "/hook") -> list[str]:
        with self.lock:
            return list(self.effects.get(path, []))

    def __enter__(self) -> IdempotentReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- SSRF victims ----------------------------------------------------------------------------------

class Victim:
    """A TCP listener on an address that must never be reached; counts every accepted connection."""

    def __init__(self, host: str, port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\n"
                             b"internal secret")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class _EgressGuard:
    def __init__(self) -> None:
        self.blocked: list[str] = []


@contextlib.contextmanager
def no_egress() -> Iterator[_EgressGuard]:
    """Only loopback may be resolved while this is active: any other name or address fails as if offline.

    A safety net (the suite's rule is no network beyond 127.0.0.1), not a stand-in for the code under
    test: fuzzed documents can spell links to arbitrary hosts, and the fetcher resolves a name before
    its policy can refuse the address (public addresses are allowed by design). Patches
    socket.getaddrinfo for the duration; every refused lookup is recorded.
    """
    real = socket.getaddrinfo
    guard = _EgressGuard()

    def loopback_only(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name != "localhost":
            try:
                infos = real(host, port, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})
            except socket.gaierror:
                infos = []
            if not infos or not all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos):
                guard.blocked.append(name)
                raise socket.gaierror(socket.EAI_NONAME, f"{name}: blocked by the test suite's no-egress guard")
        return real(host, port, *args, **kwargs)

    socket.getaddrinfo = loopback_only
    try:
        yield guard
    finally:
        socket.getaddrinfo = real


# --- helpers for bodies ----------------------------------------------------------------------------

@functools.cache
def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed (about a thousandth of the size)."""
    return gzip.compress(b"\0" * size, compresslevel=9)


def chunked_handler(total: int, content_type: str = RSS):
    """A Route handler streaming `total` bytes with chunked encoding (no Content-Length to refuse early)."""
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        chunk = b"<!-- " + b"x" * 65_000 + b" -->"
        sent = 0
        try:
            while sent < total:
                request.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            request.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
    return handle


def redirect(location: str, status: int = 302) -> Route:
    return Route(status=status, headers={"Location": location}, etag=False, last_modified=None)


# --- subprocess runner -----------------------------------------------------------------------------

RUNNER = REPO / "tests" / "reliability" / "runner.py"


def runner_env(hook_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update({"PYTHONPATH": str(REPO), "NEWSMON_ALLOW_NETWORKS": ",".join(LOOPBACK_ONLY),
                HOOK_URL_ENV: hook_url, HOOK_SECRET_ENV: HOOK_SECRET, "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def start_runner(config_dir: Path, store_path: Path, hook_url: str, workdir: Path,
                 go_file: Path | None = None) -> subprocess.Popen:
    """`newsmon run --once --json` in a child process that says "ready" once its imports are done."""
    args = [sys.executable, str(RUNNER), str(config_dir), f"sqlite:///{store_path}"]
    if go_file is not None:
        args.append(str(go_file))
    return subprocess.Popen(args, cwd=workdir, env=runner_env(hook_url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Block until the runner printed "ready" (imports done), so kill points fall inside the cycle."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "ready":
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"runner died before ready: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError("runner never became ready")


def finish_runner(proc: subprocess.Popen, timeout: float = 60.0) -> dict[str, Any]:
    """Wait for a runner; its cycle report (the CLI's --json line)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"runner exit {proc.returncode}: {err[-2000:]}"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no JSON report in runner output: {out[-2000:]!r} {err[-2000:]!r}"
    return json.loads(lines[-1])

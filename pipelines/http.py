"""Polite, bounded, SSRF-guarded HTTP GET for feeds and article pages.

Every URL we fetch comes from somebody else (feeds, redirects), so the fetcher
assumes hostile servers: the address check runs on the socket actually connected
(after DNS, on every redirect hop), one deadline bounds the whole request (slow
headers and slow-drip bodies included), bodies and decompressed bodies are capped,
and each host sees at most a few requests at a time, spaced out.
"""

from __future__ import annotations

import heapq
import itertools
import re
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from pipelines.errors import FetchError
from pipelines.models import utcnow
from pipelines.netguard import NetworkPolicy

DEFAULT_USER_AGENT = "newsmon/0.1 (+https://github.com/newsmon/newsmon; news monitoring for newsroom desks)"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 64 * 1024

PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
# Feeds are served under every label imaginable; refuse only what is clearly not text.
FEED_TYPES = frozenset({
    "application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml",
    "text/html", "text/plain", "application/octet-stream", "application/json", "application/feed+json",
    "application/x-rss+xml", "application/x-atom+xml", "application/gzip", "application/x-gzip",
})
ACCEPT = {
    "page": "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.5",
    "feed": ("application/rss+xml,application/atom+xml,application/rdf+xml;q=0.9,application/xml;q=0.9,"
             "text/xml;q=0.9,*/*;q=0.5"),
}

_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_UTF16_32_STARTS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\x00\x00\x00<", b"<\x00", b"\x00<")


@dataclass
class Response:
    url: str  # final URL, after redirects
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # decompressed
    content_type: str  # bare media type, lower-case ("" when the server sent none)
    charset: str | None
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


# -- total-request deadline ------------------------------------------------------------------------

@dataclass(eq=False)
class _Deadline:
    """One request's deadline, shared by all its redirect hops, and a duplicate of every socket the
    current hop uses, so the watchdog can shut them.

    Duplicates, not the originals: http.client drops its socket reference for a `Connection: close`
    or length-less response (conn.sock becomes None while the body is still being read), and ssl
    detaches the raw socket when it wraps it. A dup'd descriptor still names the same connection,
    and shutting it down makes a read blocked on any wrapper of it return at once.
    """

    total: float
    # The caller's not_after (time.monotonic()): the request ends by then, whatever its own total.
    cap: float | None = None
    at: float | None = None  # set by start(): min(first host's slot granted + total, cap)
    sockets: list[socket.socket] = field(default_factory=list)
    expired: bool = False
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        if self.at is None:
            own = time.monotonic() + self.total
            self.at = own if self.cap is None else min(own, self.cap)
            _watchdog.watch(self)

    def remaining(self) -> float:
        if self.at is not None:
            return self.at - time.monotonic()
        return self.total if self.cap is None else min(self.total, self.cap - time.monotonic())

    def slot_budget(self) -> float | None:
        """How long a hop may wait for its host's slot: a started deadline's rest, else the cap's
        (the first hop's queueing behind our own requests is not timed, but cannot outlast the cap)."""
        if self.at is not None:
            return self.at - time.monotonic()
        return None if self.cap is None else self.cap - time.monotonic()

    def cut_by_cap(self) -> bool:
        """The caller's cap, not the request's own total, is what ran out."""
        return self.cap is not None and (self.at is None or self.at == self.cap)

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        try:
            handle = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:  # already closed: nothing left to cut
            return
        with self.lock:
            if self.done:
                handle.close()
                return
            self.sockets.append(handle)
            if self.expired:
                _shut(handle)

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            for handle in self.sockets:
                _shut(handle)

    def release(self) -> None:
        """End of a hop: drop the duplicates (the connection itself is closed or pooled by the caller)."""
        with self.lock:
            handles, self.sockets = self.sockets, []
        for handle in handles:
            handle.close()

    def finish(self) -> None:
        with self.lock:
            self.done = True
        self.release()


def _shut(sock: socket.socket) -> None:
    """Shut the connection down so a blocked read in another thread returns at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One daemon thread enforcing every request's total deadline (a per-read timeout cannot:
    a server dripping a byte per second never trips it)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: _Deadline) -> None:
        assert deadline.at is not None
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._counter), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="newsmon-fetch-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            due: list[_Deadline] = []
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, deadline = heapq.heappop(self._heap)
                    if not deadline.done:
                        due.append(deadline)
                if not due and self._heap:
                    self._cond.wait(timeout=max(0.0, self._heap[0][0] - now))
            for deadline in due:
                deadline.expire()


_watchdog = _Watchdog()
_current = threading.local()  # .deadline: the _Deadline of the request running in this thread


def _attach_current(sock: socket.socket | None) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)


# -- guarded connections ---------------------------------------------------------------------------

class _Refused(Exception):
    """Raised inside urllib3 when the policy refuses an address; turned into FetchError by the fetcher."""

    def __init__(self, error: FetchError):
        super().__init__(error.reason)
        self.error = error


class _GuardedConnectionMixin:
    """Resolve, check every address against the policy, connect, then check the connected peer."""

    newsmon_policy: NetworkPolicy  # set on the per-Fetcher subclass

    def _new_conn(self) -> socket.socket:  # overrides urllib3's
        conn: HTTPConnection = self  # type: ignore[assignment]
        host, port, timeout = conn._dns_host, conn.port, conn.timeout
        where = f"{host}:{port}"
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise _summarised(NameResolutionError(conn.host, conn, err), f"DNS lookup failed for {host}") from err
        refused: FetchError | None = None
        last_error: OSError | None = None
        last_peer = where
        for family, socktype, proto, _, sockaddr in infos:
            try:
                self.newsmon_policy.check_address(str(sockaddr[0]), url=where)
            except FetchError as err:
                refused = refused or err
                continue
            sock = socket.socket(family, socktype, proto)
            peer_where = _host_port(str(sockaddr[0]), port)
            try:
                if isinstance(timeout, int | float):
                    sock.settimeout(timeout)
                for option in conn.socket_options or ():
                    sock.setsockopt(*option)
                sock.connect(sockaddr)
                peer = sock.getpeername()[0]
                self.newsmon_policy.check_address(str(peer), url=where)  # what we actually reached
            except FetchError as err:
                sock.close()
                raise _Refused(err) from None
            except TimeoutError as err:
                sock.close()
                seconds = f"{timeout:g} s " if isinstance(timeout, int | float) else ""
                raise _summarised(ConnectTimeoutError(conn, f"connecting to {where} timed out after {timeout}s"),
                                  f"timed out after {seconds}connecting to {peer_where}") from err
            except OSError as err:
                sock.close()
                last_error, last_peer = err, peer_where
                continue
            _attach_current(sock)  # before the TLS handshake, so the watchdog can cut that too
            return sock
        if last_error is None and refused is not None:
            raise _Refused(refused)
        if isinstance(last_error, ConnectionRefusedError):
            summary = f"connection refused by {last_peer}"
        elif last_error is not None:
            summary = f"cannot connect to {last_peer}: {last_error.strerror or last_error}"
        else:
            summary = f"no address for {host}"
        raise _summarised(NewConnectionError(conn, f"cannot connect to {where}: {last_error or 'no address'}"),
                          summary) from last_error

    def request(self, *args, **kwargs):  # reused keep-alive connections skip _new_conn
        _attach_current(self.sock)  # type: ignore[attr-defined]  # None on a fresh plain-HTTP connection
        return super().request(*args, **kwargs)  # type: ignore[misc]


def _pool_manager(policy: NetworkPolicy, maxsize: int) -> urllib3.PoolManager:
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection),
                     {"newsmon_policy": policy})
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection),
                      {"newsmon_policy": policy})
    http_pool = type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
    manager = urllib3.PoolManager(num_pools=200, maxsize=maxsize, block=False, retries=False)
    manager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}
    return manager


# -- per-host politeness ---------------------------------------------------------------------------

class _HostSlots:
    """At most `concurrency` requests in flight per host, and `delay` seconds between their starts."""

    def __init__(self, concurrency: int, delay: float):
        self.concurrency, self.delay = max(1, concurrency), max(0.0, delay)
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}

    def acquire(self, host: str, deadline: _Deadline | None = None) -> threading.BoundedSemaphore | None:
        """The host's slot, once its turn has come; None if a started deadline runs out first."""
        with self._lock:
            semaphore = self._semaphores.setdefault(host, threading.BoundedSemaphore(self.concurrency))
        # Later hops of a request wait for their host inside the request's deadline; the first hop's
        # wait is queueing behind this process's own requests and is not the server's doing.
        budget = deadline.slot_budget() if deadline is not None else None
        if not semaphore.acquire(timeout=None if budget is None else max(0.0, budget)):
            return None
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start.get(host, now))
            self._next_start[host] = start + self.delay
        if budget is not None and start - now >= deadline.remaining():  # type: ignore[union-attr]
            semaphore.release()
            return None
        if start > now:
            time.sleep(start - now)
        return semaphore


# -- helpers ---------------------------------------------------------------------------------------

def _media_type(value: str | None) -> tuple[str, str | None]:
    if not value:
        return "", None
    parts = value.split(";")
    media = parts[0].strip().lower()
    charset = None
    for param in parts[1:]:
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip("\"'").lower() or None
    return media, charset


def _acceptable(kind: str, media: str) -> bool:
    if not media:
        return True  # unlabeled: the body sniff decides
    if kind == "page":
        return media in PAGE_TYPES
    return media in FEED_TYPES or media.endswith(("+xml", "/xml")) or media.startswith("text/")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def _looks_binary(body: bytes) -> str | None:
    """Why this body is binary despite its label, or None. UTF-16/32 text has NULs but is not binary."""
    for magic in _BINARY_MAGIC:
        if body.startswith(magic):
            return f"body is binary ({magic.decode('latin-1').strip()!r} signature)"
    head = body[:1024]
    if b"\x00" in head and not body.startswith(_UTF16_32_STARTS):
        return "body is binary (NUL bytes in the first 1 KB)"
    return None


class _Inflater:
    """Incremental gzip/deflate decoding that never produces more than `limit` bytes (bomb-proof)."""

    def __init__(self, encoding: str, limit: int, url: str):
        self.encoding, self.limit, self.url = encoding, limit, url
        self.produced = 0
        wbits = 47 if encoding in ("gzip", "x-gzip") else 15  # 47: gzip or zlib header, auto-detected
        self._decoder = zlib.decompressobj(wbits)
        self._started = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        try:
            if self.encoding == "deflate" and not self._started:
                self._started = True
                try:
                    out += self._bounded(data)
                    return bytes(out)
                except zlib.error:
                    # Some servers send raw deflate without the zlib header.
                    self._decoder = zlib.decompressobj(-15)
                    self.produced = 0
                    out = bytearray()
            self._started = True
            out += self._bounded(data)
        except zlib.error as err:
            raise FetchError(self.url, f"cannot decode {self.encoding} body: {err}", kind="decode") from None
        return bytes(out)

    def _bounded(self, data: bytes) -> bytes:
        out = bytearray()
        pending = data
        while pending and not self._decoder.eof:
            room = self.limit - self.produced + 1
            chunk = self._decoder.decompress(pending, room)
            out += chunk
            self.produced += len(chunk)
            if self.produced > self.limit:
                raise FetchError(self.url, f"decompressed body larger than {self.limit} bytes "
                                 f"({self.encoding} bomb?)", kind="too-large")
            pending = self._decoder.unconsumed_tail
        return bytes(out)

    def finish(self) -> bytes:
        try:
            rest = self._decoder.flush()
        except zlib.error as err:
            raise FetchError(self.url, f"cannot decode {self.encoding} body: {err}", kind="decode") from None
        self.produced += len(rest)
        if self.produced > self.limit:
            raise FetchError(self.url, f"decompressed body larger than {self.limit} bytes", kind="too-large")
        if not self._decoder.eof and self.produced == 0:
            raise FetchError(self.url, f"truncated {self.encoding} body", kind="decode")
        return rest


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- the fetcher -----------------------------------------------------------------------------------

class Fetcher:
    """Thread-safe GET for feeds and pages; raises FetchError with a kind the caller can act on."""

    def __init__(self, policy: NetworkPolicy | None = None, user_agent: str = DEFAULT_USER_AGENT,
                 connect_timeout: float = 5.0, read_timeout: float = 15.0, total_timeout: float = 30.0,
                 max_bytes: int = 5 * 1024 * 1024, max_redirects: int = 5, per_host_concurrency: int = 2,
                 per_host_delay: float = 0.5):
        self.policy = policy if policy is not None else NetworkPolicy.from_env()
        self.user_agent = user_agent
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        # The whole request, redirects included, from the moment the first host's politeness slot is granted.
        self.total_timeout = total_timeout
        self.max_bytes, self.max_redirects = max_bytes, max_redirects
        self._slots = _HostSlots(per_host_concurrency, per_host_delay)
        self._pools = _pool_manager(self.policy, maxsize=max(1, per_host_concurrency))

    def close(self) -> None:
        self._pools.clear()

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
              kind: str = "page", not_after: float | None = None) -> Response:
        """GET with conditional validators; 304 gives Response(not_modified=True).

        kind "page" takes HTML/XHTML/plain text only; kind "feed" takes anything that may be XML or
        text (publishers mislabel feeds), and unpacks a .xml.gz served as-is. not_after (a
        time.monotonic() value, e.g. the end of a cycle's budget) caps the request's one deadline:
        it ends at min(total_timeout after its start, not_after), and waiting for a host's slot
        stops there too. Raises FetchError whose kind is one of refused, timeout, too-large,
        bad-content-type, http-status, redirects, connection, decode, or cut (not_after came
        first: the server was not necessarily at fault, the caller may simply try again later).
        """
        if kind not in ACCEPT:
            raise ValueError(f"kind must be 'page' or 'feed', not {kind!r}")
        headers = {
            "User-Agent": self.user_agent,
            "Accept": ACCEPT[kind],
            "Accept-Encoding": "gzip, deflate",
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url.strip()
        visited = {current}
        deadline = _Deadline(self.total_timeout, cap=not_after)  # one for every hop, started by the first host's slot
        try:
            for _hop in range(self.max_redirects + 1):
                self.policy.check_url(current)
                result = self._one_request(current, headers, kind, etag, last_modified, deadline)
                if isinstance(result, Response):
                    return result
                target = urljoin(current, result)
                if target in visited:
                    raise FetchError(url, f"redirect loop ({current} -> {target})", kind="redirects")
                visited.add(target)
                try:
                    self.policy.check_url(target)
                except FetchError as err:
                    raise FetchError(url, f"redirect to {target}: {err.reason}", kind="refused") from None
                current = target
        finally:
            deadline.finish()
        raise FetchError(url, f"too many redirects (more than {self.max_redirects})", kind="redirects")

    def _one_request(self, url: str, headers: dict[str, str], kind: str, etag: str | None,
                     last_modified: str | None, deadline: _Deadline) -> Response | str:
        """One hop: a Response, or the Location to follow."""
        host = (urlsplit(url).hostname or "").lower()
        semaphore = self._slots.acquire(host, deadline)
        if semaphore is None:
            deadline.expire()
            raise self._timeout_error(url, deadline, TimeoutError())
        deadline.start()
        _current.deadline = deadline
        response = None
        keep_connection = False
        try:
            remaining = max(0.001, deadline.remaining())
            timeout = urllib3.Timeout(connect=min(self.connect_timeout, remaining),
                                      read=min(self.read_timeout, remaining))
            response = self._pools.urlopen("GET", url, headers=headers, redirect=False, retries=False,
                                           preload_content=False, decode_content=False, timeout=timeout)
            result = self._handle(url, response, kind, etag, last_modified, deadline)
            # Only a fully read body (or none, as with 304) leaves the connection clean enough to reuse.
            keep_connection = isinstance(result, Response)
            return result
        except _Refused as refused:
            raise FetchError(url, refused.error.reason, kind="refused") from None
        except FetchError:
            raise
        except NewConnectionError as err:  # before timeouts: urllib3 makes it a ConnectTimeoutError subclass
            raise FetchError(url, f"connection failed: {_one_line(_short_reason(err))}",
                             kind="connection", summary=_summary_of(err)) from None
        except (ReadTimeoutError, ConnectTimeoutError, TimeoutError) as err:
            raise self._timeout_error(url, deadline, err) from None
        except (SSLError, ProtocolError, OSError) as err:
            if deadline.expired:
                raise self._timeout_error(url, deadline, err) from None
            summary = f"TLS error: {_one_line(_short_reason(err))}" if isinstance(err, SSLError) else None
            raise FetchError(url, f"connection failed: {_one_line(_short_reason(err))}",
                             kind="connection", summary=summary) from None
        except LocationParseError as err:
            raise FetchError(url, f"refused: malformed URL ({_one_line(err)})", kind="refused") from None
        except HTTPError as err:
            if deadline.expired:
                raise self._timeout_error(url, deadline, err) from None
            raise FetchError(url, f"HTTP error: {_one_line(_short_reason(err))}", kind="connection") from None
        finally:
            _current.deadline = None
            deadline.release()  # from here on the watchdog cuts nothing of this hop
            if response is not None:
                if keep_connection and not deadline.expired:
                    response.release_conn()
                else:
                    response.close()  # closes the connection: never reuse a half-read or cut socket
                    response.release_conn()
            semaphore.release()

    def _timeout_error(self, url: str, deadline: _Deadline, err: BaseException) -> FetchError:
        if deadline.expired and deadline.cut_by_cap():
            return FetchError(url, "cut: not finished by the caller's deadline (not_after)", kind="cut",
                              summary="not finished in the time the caller allowed")
        if deadline.expired:
            return FetchError(url, f"timed out: total deadline of {self.total_timeout:g}s exceeded",
                              kind="timeout", summary=f"timed out after {self.total_timeout:g} s")
        summary = _summary_of(err)
        if summary is None:
            summary = (f"timed out after {self.read_timeout:g} s waiting for the server"
                       if isinstance(err, ReadTimeoutError) else f"timed out after {self.connect_timeout:g} s")
        return FetchError(url, f"timed out: {_one_line(_short_reason(err))}", kind="timeout", summary=summary)

    def _handle(self, url: str, response: urllib3.BaseHTTPResponse, kind: str, etag: str | None,
                last_modified: str | None, deadline: _Deadline) -> Response | str:
        if deadline.expired:  # a cut in the middle of the headers looks like their end to http.client
            raise self._timeout_error(url, deadline, TimeoutError())
        status = response.status
        headers = {name.lower(): response.headers.get(name, "") for name in response.headers}
        if status in REDIRECT_STATUSES:
            location = headers.get("location", "").strip()
            if not location:
                raise FetchError(url, f"HTTP {status} redirect without a Location header", status=status,
                                 kind="http-status")
            return location
        if status == 304:
            return Response(url=url, status=304, headers=headers, body=b"", content_type="", charset=None,
                            etag=headers.get("etag") or etag,
                            last_modified=headers.get("last-modified") or last_modified, not_modified=True)
        if not 200 <= status < 300:
            retry_after = parse_retry_after(headers.get("retry-after")) if status in (429, 503) else None
            reason = f"HTTP {status}" + (f" {response.reason}" if response.reason else "")
            if retry_after is not None:
                reason += f" (retry after {retry_after:.0f}s)"
            raise FetchError(url, reason, status=status, retry_after=retry_after, kind="http-status")
        media, charset = _media_type(headers.get("content-type"))
        if not _acceptable(kind, media):
            raise FetchError(url, f"content type {media!r} is not acceptable for a {kind}", status=status,
                             kind="bad-content-type")
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(url, f"body of {declared} bytes is larger than the {self.max_bytes}-byte cap",
                             status=status, kind="too-large")
        body = self._read_body(url, response, headers.get("content-encoding", ""), deadline)
        if deadline.expired:
            raise self._timeout_error(url, deadline, TimeoutError())
        if kind == "feed" and body.startswith(b"\x1f\x8b"):  # a .xml.gz served as-is
            inflater = _Inflater("gzip", self.max_bytes, url)
            body = inflater.feed(body) + inflater.finish()
        why_binary = _looks_binary(body)
        if why_binary:
            raise FetchError(url, f"{why_binary}; not a {kind}", status=status, kind="bad-content-type")
        return Response(url=url, status=status, headers=headers, body=body, content_type=media,
                        charset=charset, etag=headers.get("etag") or None,
                        last_modified=headers.get("last-modified") or None)

    def _read_body(self, url: str, response: urllib3.BaseHTTPResponse, content_encoding: str,
                   deadline: _Deadline) -> bytes:
        encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
            raise FetchError(url, f"unsupported Content-Encoding {content_encoding!r}", kind="decode")
        inflater = _Inflater(encodings[0], self.max_bytes, url) if encodings else None
        raw_size = 0
        out = bytearray()
        for chunk in response.stream(READ_CHUNK, decode_content=False):
            if deadline.expired:
                break
            raw_size += len(chunk)
            if raw_size > self.max_bytes:
                raise FetchError(url, f"body larger than the {self.max_bytes}-byte cap", kind="too-large")
            out += inflater.feed(chunk) if inflater else chunk
            if len(out) > self.max_bytes:
                raise FetchError(url, f"body larger than the {self.max_bytes}-byte cap", kind="too-large")
        if inflater and not deadline.expired:
            out += inflater.finish()
        return bytes(out)


def _host_port(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def _summarised(err: BaseException, summary: str) -> BaseException:
    """Tag a connection error with its desk-language summary (FetchError.summary) on its way through urllib3."""
    err.newsmon_summary = summary  # type: ignore[attr-defined]
    return err


def _summary_of(err: BaseException) -> str | None:
    """The summary _summarised put on this error or one it wraps."""
    inner: BaseException | None = err
    for _ in range(6):
        if inner is None:
            return None
        summary = getattr(inner, "newsmon_summary", None)
        if summary:
            return summary
        reason = getattr(inner, "reason", None)
        inner = reason if isinstance(reason, BaseException) else inner.__cause__ or inner.__context__
    return None


def _short_reason(err: BaseException) -> str:
    """urllib3 wraps errors in errors; the innermost message is the readable one."""
    inner: BaseException = err
    seen = 0
    while seen < 5:
        reason = getattr(inner, "reason", None)
        if isinstance(reason, BaseException):
            inner = reason
        elif inner.__cause__ is not None:
            inner = inner.__cause__
        else:
            break
        seen += 1
    text = str(inner) or type(inner).__name__
    return text if inner is err else f"{type(inner).__name__}: {text}"

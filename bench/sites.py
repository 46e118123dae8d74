"""Local publishers for the benchmarks: many feeds and pages on many loopback addresses, one process.

The server runs in its own process (asyncio, one listening socket per 127.0.0.x address, all on
one port), so its CPU time never competes with the measured process for the GIL. Feeds answer
conditional GETs with 304 while unchanged; "bump" makes a feed publish one new item.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from bench.common import free_port

ITEMS_PER_FEED = 20
_WORD_RE = re.compile(r"\b([A-Za-z]{4,})\b")
_TEXT_RE = re.compile(r">([^<]{40,})<")
_SUMMARY = ("Officials said talks between the two sides would resume later this week after a pause "
            "in fighting along the frontier, while traders waited for the crossing to reopen.")


@dataclass
class FeedSpec:
    """Feed number `index` on `host`: items version..version+items-1, newest first; page links cycle over page_hosts."""

    index: int
    host: str
    items: int = ITEMS_PER_FEED
    version: int = 0
    page_hosts: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/feed/{self.index}.xml"


def feed_body(spec: FeedSpec, port: int) -> bytes:
    """RSS 2.0 of one feed at its current version (own text; no real publisher's content)."""
    hosts = spec.page_hosts or [spec.host]
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
             f"<title>Bench feed {spec.index}</title><link>http://{spec.host}:{port}/</link>",
             "<description>newsmon benchmark feed</description><language>en</language>"]
    for j in range(spec.version + spec.items - 1, spec.version - 1, -1):
        number = spec.index * spec.items + j  # global page number
        host = hosts[number % len(hosts)]
        date = formatdate(1_761_955_200 + number * 60, usegmt=True)
        parts.append(
            f"<item><title>Bench story {spec.index}-{j}: frontier crossing update</title>"
            f"<link>http://{host}:{port}/page/{spec.index}/{j}</link>"
            f'<guid isPermaLink="false">bench-{spec.index}-{j}</guid><pubDate>{date}</pubDate>'
            f"<description>{_SUMMARY}</description></item>")
    parts.append("</channel></rss>\n")
    return "".join(parts).encode("utf-8")


def perturb(html: bytes, copy: int) -> bytes:
    """The page with every third long word of its text suffixed by a copy tag: no 4-word shingle of the
    original survives, so copies are new stories with new content hashes, not duplicates."""
    tag = _copy_tag(copy)
    text = html.decode("utf-8", errors="replace")

    def words(match: re.Match[str]) -> str:
        count = 0

        def one(word: re.Match[str]) -> str:
            nonlocal count
            count += 1
            return word.group(1) + tag if count % 3 == 0 else word.group(1)

        return ">" + _WORD_RE.sub(one, match.group(1)) + "<"

    return _TEXT_RE.sub(words, text).encode("utf-8")


def _copy_tag(copy: int) -> str:
    letters = ""
    copy += 1
    while copy:
        copy, rest = divmod(copy, 26)
        letters += chr(ord("a") + rest)
    return "x" + letters


class _Site:
    def __init__(self, feeds: list[FeedSpec], page_files: list[str], port: int):
        self.feeds = {spec.path: spec for spec in feeds}
        self.page_files = page_files
        self.port = port
        self._pages: list[bytes] | None = None
        self._bodies: dict[tuple[str, int], bytes] = {}
        self.stats: Counter[str] = Counter()

    def pages(self) -> list[bytes]:
        if self._pages is None:
            import gzip

            self._pages = []
            for name in self.page_files:
                with gzip.open(name, "rb") if name.endswith(".gz") else open(name, "rb") as fh:
                    self._pages.append(fh.read())
        return self._pages

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        spec = self.feeds.get(path)
        if spec is not None:
            etag = f'"f{spec.index}v{spec.version}"'
            if headers.get("if-none-match") == etag:
                self.stats["feed-304"] += 1
                return 304, {"ETag": etag}, b""
            key = (path, spec.version)
            body = self._bodies.get(key)
            if body is None:
                body = self._bodies[key] = feed_body(spec, self.port)
            self.stats["feed-200"] += 1
            return 200, {"ETag": etag, "Content-Type": "application/rss+xml; charset=utf-8"}, body
        if path.startswith("/page/") and self.page_files:
            try:
                index, j = (int(x) for x in path[len("/page/"):].split("/"))
            except ValueError:
                return 404, {}, b""
            spec = self.feeds.get(f"/feed/{index}.xml")
            number = index * (spec.items if spec else ITEMS_PER_FEED) + j
            pages = self.pages()
            body = perturb(pages[number % len(pages)], number // len(pages))
            self.stats["page-200"] += 1
            return 200, {"Content-Type": "text/html; charset=utf-8"}, body
        self.stats["404"] += 1
        return 404, {}, b""


async def _handle(site: _Site, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError,
                    asyncio.CancelledError):
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            path = parts[1] if len(parts) > 1 else "/"
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            status, extra, body = site.answer(path.split("?", 1)[0], headers)
            reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}.get(status, "OK")
            out = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
            out += [f"{k}: {v}" for k, v in extra.items()]
            close = headers.get("connection", "").lower() == "close"
            if close:
                out.append("Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            if close:
                return
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _serve(hosts: list[str], port: int, feeds: list[FeedSpec], page_files: list[str], conn: Any) -> None:
    async def main() -> None:
        site = _Site(feeds, page_files, port)
        servers = []
        for host in hosts:
            servers.append(await asyncio.start_server(lambda r, w: _handle(site, r, w), host, port,
                                                      backlog=1024, reuse_address=True))
        conn.send(("ready", port))
        loop = asyncio.get_running_loop()
        while True:
            ready = await loop.run_in_executor(None, conn.poll, 0.2)
            if not ready:
                continue
            command, arg = conn.recv()
            if command == "stop":
                break
            if command == "bump":
                for index in arg:
                    spec = site.feeds[f"/feed/{index}.xml"]
                    spec.version += 1
                conn.send(("ok", None))
            elif command == "stats":
                conn.send(("ok", dict(site.stats)))
        for server in servers:
            server.close()

    asyncio.run(main())


class SiteServer:
    """`with SiteServer(hosts, feeds) as site:` serves every feed (and page) on every host, one port."""

    def __init__(self, hosts: list[str], feeds: list[FeedSpec], page_files: list[str] | None = None):
        self.hosts, self.feeds = hosts, feeds
        self.page_files = [str(p) for p in page_files or []]
        self.port = 0
        self._conn: Any = None
        self._proc: Any = None

    def url(self, spec: FeedSpec) -> str:
        return f"http://{spec.host}:{self.port}{spec.path}"

    def __enter__(self) -> SiteServer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        port = free_port(self.hosts)
        self._proc = ctx.Process(target=_serve, args=(self.hosts, port, self.feeds, self.page_files, child),
                                 daemon=True)
        self._proc.start()
        self._conn = parent
        if not parent.poll(60):
            self.__exit__()
            raise RuntimeError("benchmark site server did not start within 60 s")
        _ready, self.port = parent.recv()
        return self

    def bump(self, indexes: list[int]) -> None:
        """These feeds publish one new item each (their ETag changes)."""
        self._conn.send(("bump", list(indexes)))
        self._conn.recv()
        for spec in self.feeds:
            if spec.index in set(indexes):
                spec.version += 1

    def stats(self) -> dict[str, int]:
        self._conn.send(("stats", None))
        return self._conn.recv()[1]

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.send(("stop", None))
        if self._proc is not None:
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)


def extraction_page_files(folder: Path) -> list[str]:
    """The .html.gz files of both extraction sets, sorted (the memory benchmark's page pool)."""
    return sorted(str(p) for p in folder.glob("*/html/*.html.gz"))

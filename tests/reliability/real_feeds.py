"""Every real publisher feed in /work/shared/data/feeds through the whole pipeline, without the internet.

The feed files are read in place (never copied into the repository) and served from 127.0.0.1.
Their article links point at the publishers' real hosts; tests must not reach them, and a DNS
lookup alone would already leave the machine. So every absolute http(s) URL in the document is
rewritten on the fly from `scheme://host[:port]/path` to `http://127.0.0.1:PORT/ext/host/path`
(namespace URIs in xmlns attributes are left alone, or the XML would change meaning). The local
server answers those paths with 404, as a dead or paywalled site would, so each item is stored
from its own feed text, exactly as the pipeline does in production when a page fails. Before any
cycle runs, the parsed items are checked: a link that still points off-machine fails the scenario
instead of being fetched. Only the host part of URLs changes; bytes, encodings, structure and
item counts are the publishers'.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.cycle import run_cycle
from pipelines.feeds import parse_feed
from pipelines.models import FeedConfig
from tests.localserver import Route
from tests.reliability.harness import (
    REAL_FEEDS,
    accounted,
    assert_one_line_errors,
    feed_state,
    inbox_size,
    monitor,
    site,
)

_URL = re.compile(rb"""(xmlns(?::[\w.-]+)?\s*=\s*["'])?https?://([^/\s"'<>:?#]+)(:\d+)?""")


def real_feed_files() -> list[Path]:
    if not REAL_FEEDS.is_dir():
        return []
    return sorted(p for p in REAL_FEEDS.iterdir() if p.is_file() and p.suffix != ".md")


def feed_id(path: Path) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", path.name.lower())[:60].strip("-._")


def rewrite_hosts(body: bytes, base: str) -> bytes:
    """Point every absolute URL at `base/ext/<host>`; leave namespace declarations alone."""
    def swap(match: re.Match[bytes]) -> bytes:
        if match.group(1):
            return match.group(0)
        return f"{base}/ext/".encode() + match.group(2).lower()
    return _URL.sub(swap, body)


def served_body(path: Path, base: str) -> tuple[bytes, str]:
    raw = path.read_bytes()
    if path.suffix == ".gz":  # served as the .gz file it is, after rewriting inside
        return gzip.compress(rewrite_hosts(gzip.decompress(raw), base)), "application/x-gzip"
    return rewrite_hosts(raw, base), "application/xml"


@dataclass
class FeedRun:
    name: str
    items: int  # items the parser yields from the served document
    spooled: int
    stored: int
    dropped: dict[str, int] = field(default_factory=dict)
    problem: str | None = None  # the feed's health line (bozo), if any


def run_real_feeds(workdir: Path) -> list[FeedRun]:
    """One cycle per real feed (so each report is that feed's), then one more over all of them."""
    files = real_feed_files()
    server = site()
    feeds, expected = [], {}
    for path in files:
        fid = feed_id(path)
        body, content_type = served_body(path, server.base)
        route = f"/real/{path.name}"
        server.routes[route] = Route(body=body, content_type=content_type)
        url = server.base + route
        feeds.append({"id": fid, "url": url})
        plain = gzip.decompress(body) if path.suffix == ".gz" else body
        parsed = parse_feed(plain, FeedConfig(id=fid, url=url, desk="regional"), base_url=url,
                            headers={"content-type": content_type})
        outside = [i.link for i in parsed.items if i.link and not i.link.startswith(server.base + "/")]
        assert not outside, f"{path.name}: links would leave the machine: {outside[:3]}"
        expected[fid] = len(parsed.items)
    runs: list[FeedRun] = []
    with server, monitor(workdir, feeds) as ctx:
        for path, feed in zip(files, feeds, strict=True):
            report = run_cycle(ctx, feed_ids=[feed["id"]])
            assert_one_line_errors(report)
            state = feed_state(ctx.store, feed["id"])
            assert report.feeds_failed == 0, report.errors
            assert state.last_success and (state.last_error is None
                                           or state.last_error.startswith("feed parsed with problems")), state
            assert report.items_new == expected[feed["id"]], (path.name, report.items_new, expected[feed["id"]])
            assert accounted(report) == report.items_new, (path.name, report.dropped, report.articles_stored)
            assert report.dropped.get("processing-error", 0) == 0, report.errors
            assert inbox_size(ctx.store) == 0
            runs.append(FeedRun(path.name, expected[feed["id"]], report.items_new, report.articles_stored,
                                dict(report.dropped), state.last_error))
        again = run_cycle(ctx)
        assert again.feeds_not_modified == len(feeds) and again.items_new == 0, again.errors
        assert again.articles_stored == 0
    return runs

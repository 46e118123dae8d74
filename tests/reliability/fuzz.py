"""Seeded mutation fuzzing of real feeds through a whole cycle.

Sources are the real feed files (read in place, hosts rewritten to the local server as in
real_feeds.py); without them, the project's own sample coverage feeds. Each mutant is served
as its own feed and one cycle polls all of them: every mutant is fetched and parsed by the
real code, and up to batch_size x 64 of the resulting items are fetched, extracted, tagged and
stored. What must hold: no exception escapes, every problem is one line naming its feed, no item
hits the "processing-error" catch-all, every item is accounted for (stored, dropped for a named
reason, or still waiting in the inbox), and what was stored is well-formed. An entry the parser
cannot read costs that entry only (feeds.parse_feed's entry-by-entry fallback), so a whole feed
is lost to "parse failed" only when its head (outside the entries) is unreadable.
Mutated links that point off the machine are stopped at name resolution (harness.no_egress).
"""

from __future__ import annotations

import gzip
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.cycle import run_cycle
from tests.localserver import Route
from tests.reliability.harness import (
    COVERAGE,
    accounted,
    assert_one_line_errors,
    inbox_size,
    monitor,
    no_egress,
    site,
    snapshot,
)
from tests.reliability.real_feeds import real_feed_files, rewrite_hosts

MUTATIONS = 200
SEED = 7
HOSTILE_SNIPPETS = [
    b"\x00\x00\x00", b"<![CDATA[never closed", b"&undefined;", b"&#xD800;", b"&#0;", b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"<?xml version='1.0' encoding='utf-16'?>", b"\xff\xfe", b"</channel></rss>", b"<item><item><item>",
    b"<link>javascript:alert(1)</link>", b"<pubDate>Feb 30 99999</pubDate>", "\u202e\u0000".encode(),
    b"<title>" + b"A" * 5000 + b"</title>", b"\xc3\x28\xa0\xa1",
]
_ELEMENT = re.compile(rb"<(item|entry|title|link|description|summary|content|guid|pubDate|updated)\b[^>]*>.*?</\1>",
                      re.DOTALL)


@dataclass
class FuzzResult:
    mutants: int
    sources: int
    kinds: dict[str, int] = field(default_factory=dict)
    blocked_lookups: int = 0  # mutated links that tried to leave the machine (stopped by no_egress)
    feeds_ok: int = 0
    feeds_failed: int = 0
    items_new: int = 0
    stored: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    waiting: int = 0
    parse_failures: int = 0  # mutants on which the parser raised (the cycle reports "parse failed")


def sources(base: str) -> list[tuple[str, bytes]]:
    files = real_feed_files()
    if files:
        out = []
        for path in files:
            raw = path.read_bytes()
            body = gzip.decompress(raw) if path.suffix == ".gz" else raw
            out.append((path.name, rewrite_hosts(body, base)))
        return out
    return [(p.name, p.read_bytes().replace(b"{{BASE}}", base.encode())) for p in sorted((COVERAGE / "feeds").iterdir())]


def mutate(body: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["flip", "truncate", "duplicate", "delete", "insert", "splice", "gzip-truncated"])
    data = bytearray(body)
    if kind == "flip":
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "truncate":
        del data[rng.randrange(1, len(data)):]
    elif kind == "duplicate":
        found = list(_ELEMENT.finditer(body))
        if found:
            match = rng.choice(found)
            copies = match.group(0) * rng.randint(1, 10)
            data[match.end():match.end()] = copies
    elif kind == "delete":
        start = rng.randrange(len(data))
        del data[start:start + rng.randint(1, 2000)]
    elif kind == "insert":
        for _ in range(rng.randint(1, 5)):
            at = rng.randrange(len(data))
            data[at:at] = rng.choice(HOSTILE_SNIPPETS)
    elif kind == "splice":  # the head of the document, then a random later part of itself
        cut, resume = sorted(rng.randrange(len(data)) for _ in range(2))
        data = data[:cut] + data[resume:]
    else:  # a gzip file cut short
        data = bytearray(gzip.compress(bytes(data))[: rng.randrange(10, 2000)])
    return kind, bytes(data)


def run_fuzz(workdir: Path, mutations: int = MUTATIONS, seed: int = SEED) -> FuzzResult:
    rng = random.Random(seed)
    server = site()
    docs = sources(server.base)
    feeds, kinds = [], {}
    for n in range(mutations):
        name, body = docs[n % len(docs)]
        route = f"/fuzz/{n:03d}"
        kind, mutant = mutate(body, rng)
        content_type = "application/gzip" if kind == "gzip-truncated" else "application/xml"
        kinds[kind] = kinds.get(kind, 0) + 1
        server.routes[route] = Route(body=mutant, content_type=content_type)
        feeds.append({"id": f"m{n:03d}", "url": server.base + route})
    # A flipped byte can turn a local link into a name or a public address: no_egress() makes sure
    # such a link fails to resolve instead of leaving the machine.
    with no_egress() as guard, server, monitor(workdir, feeds, batch_size=2) as ctx:
        report = run_cycle(ctx)
        assert_one_line_errors(report)
        feed_ids = {f["id"] for f in feeds}
        for line in report.errors:
            named = re.match(r"feed (m\d{3})\b", line)
            assert named and named.group(1) in feed_ids, f"an error line names no feed: {line}"
        assert report.feeds_polled == mutations
        assert report.dropped.get("processing-error", 0) == 0, [e for e in report.errors if "Error:" in e][:5]
        waiting = inbox_size(ctx.store)
        # accounted() leaves out entries dropped while parsing: they never reach items_new
        assert accounted(report) + waiting == report.items_new, \
            (accounted(report), report.dropped, waiting, report.items_new)
        limit = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for article_id in snapshot(ctx.store):
            article = ctx.store.get_article(article_id)
            assert article.url.startswith(("http://", "https://")), article.url
            assert article.text.strip() and article.feed_id in feed_ids
            assert article.published is None or article.published <= limit, article.published
        for _key, item in ctx.store.pending_items(limit=100_000):
            assert item.link is None or item.link.startswith(("http://", "https://")), item.link
        return FuzzResult(mutations, len(docs), kinds, len(guard.blocked), report.feeds_polled - report.feeds_failed,
                          report.feeds_failed, report.items_new, report.articles_stored, dict(report.dropped), waiting,
                          sum("parse failed" in e for e in report.errors))

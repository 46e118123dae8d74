"""Real publishers' feed files (../shared/data/feeds): every one parses, yields items, links are absolute.

The data is read in place, never copied into the repository; the module skips when it is absent.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
import warnings
from pathlib import Path

import feedparser
import pytest

from pipelines.feeds import parse_feed, poll_feed
from pipelines.http import Fetcher
from pipelines.models import FeedConfig
from pipelines.netguard import NetworkPolicy
from tests.localserver import LocalServer, Route

DATA = Path("/work/shared/data/feeds")
if not DATA.is_dir():
    pytest.skip(f"real feed files not available ({DATA} is absent)", allow_module_level=True)

FEED_FILES = sorted(p for p in DATA.iterdir() if p.is_file() and p.suffix != ".md")
BASE = "https://publisher.example.net/rss/feed.xml"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def load(path: Path) -> bytes:
    body = path.read_bytes()
    return gzip.decompress(body) if path.suffix == ".gz" else body


def raw_nonempty_entries(body: bytes) -> int:
    """Entries feedparser itself sees that carry anything to identify or show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        entries = feedparser.parse(io.BytesIO(body)).entries
    return sum(1 for e in entries if any((e.get(k) or "").strip() for k in ("id", "link", "title", "summary")))


def config(path: Path) -> FeedConfig:
    return FeedConfig(id=path.name.split(".")[0], url=BASE, desk="eval")


def test_there_are_feed_files():
    assert len(FEED_FILES) >= 5


@functools.cache
def parsed_directly(path: Path):
    return parse_feed(load(path), config(path), base_url=BASE, headers={"content-type": "application/xml"})


@pytest.mark.parametrize("path", FEED_FILES, ids=lambda p: p.name)
def test_real_feed_parses_with_absolute_links(path):
    body = load(path)
    parsed = parsed_directly(path)
    assert parsed.version, f"{path.name}: not recognised as a feed ({parsed.bozo})"
    assert parsed.items, f"{path.name}: no items"
    # Nothing lost: every entry with an id, link, title or summary becomes an item. (One real file,
    # miniflux__no_encoding_ISO-8859-1.xml, has an <item> whose children are all empty; it is skipped.)
    assert len(parsed.items) == raw_nonempty_entries(body)
    ids = [item.item_id for item in parsed.items]
    assert all(ids) and len(set(ids)) == len(ids)
    linked = [item for item in parsed.items if item.link]
    # Every one of these real files links its items; a file that genuinely did not would need its own
    # explicit expectation here rather than a weaker check for all.
    assert linked, f"{path.name}: no item has a link"
    for item in linked:
        assert re.match(r"https?://[^/\s]+", item.link), f"{path.name}: {item.link!r} is not absolute http(s)"
        assert not any(ch.isspace() for ch in item.link)
    for item in parsed.items:
        assert item.published is None or ISO_UTC.fullmatch(item.published)
        assert item.language
        assert "<p>" not in item.summary and "<p>" not in item.content  # HTML stripped
    assert parsed.bozo is None or "\n" not in parsed.bozo


@pytest.fixture(scope="module")
def feed_server():
    routes = {}
    for path in FEED_FILES:
        # Served gzip-encoded with a bare XML type, as many publishers do: charset comes from the document.
        routes[f"/{path.name}"] = Route(body=gzip.compress(load(path)), content_type="application/xml",
                                        headers={"Content-Encoding": "gzip"})
    with LocalServer(routes) as server:
        yield server


@pytest.mark.parametrize("path", FEED_FILES, ids=lambda p: p.name)
def test_real_feed_polled_over_http_matches_direct_parse(feed_server, path):
    fetcher = Fetcher(policy=NetworkPolicy(["127.0.0.0/8"]), per_host_delay=0.0)
    url = feed_server.url(f"/{path.name}")
    result = poll_feed(FeedConfig(id=config(path).id, url=url, desk="eval"), None, fetcher)
    direct = parsed_directly(path)
    assert result.status == "ok", result.error
    # Same items as parsing the file directly; links differ only where the feed's were relative.
    assert [(i.item_id, i.title, i.published) for i in result.items] == \
        [(i.item_id, i.title, i.published) for i in direct.items]
    for polled, parsed in zip(result.items, direct.items, strict=True):
        assert polled.link == parsed.link or (polled.link.startswith(feed_server.base)
                                              and parsed.link.startswith("https://publisher.example.net/"))

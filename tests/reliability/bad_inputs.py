"""Hostile and broken feeds and pages, each facing a whole cycle next to a well-behaved feed.

One scenario = two real cycles over a real SQLite store and a real local server:
cycle 1 stores the neighbour feed's first items and a benign version of the "bad" feed; then the
neighbour publishes two more items and the bad feed turns into the case under test; cycle 2 must
report the bad feed in one line, store the neighbour's new items and lose nothing from cycle 1.
The test module asserts on the outcome; tests/reliability/figures.py prints the same outcomes.
"""

from __future__ import annotations

import gzip
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.cycle import run_cycle
from pipelines.models import CycleReport
from tests.localserver import LocalServer, Route
from tests.reliability.harness import (
    GOOD_PAGES,
    HTML,
    RSS,
    Victim,
    accounted,
    assert_nothing_lost,
    assert_one_line_errors,
    chunked_handler,
    feed_state,
    free_port,
    good_feed,
    gzip_bomb,
    monitor,
    notice,
    redirect,
    rfc822,
    rss,
    rss_item,
    site,
    snapshot,
    stored_ids_for,
)

BAD_FEED = "/feeds/bad.xml"
SHORT_DEADLINE = {"fetch": {"total_timeout": 1.5}}  # the slow-server cases: cut after 1.5 s
SECRET_MARKER = "XXE-MARKER-7f3c"  # written to a temp file that a hostile feed tries to include


@dataclass
class Outcome:
    """What one scenario produced, for assertions and for the figures."""

    case: str
    report: CycleReport
    bad_lines: list[str]  # report lines naming the bad feed
    bad_state: Any  # FeedState of the bad feed after cycle 2
    etag_before: str | None
    good_new_stored: int  # of the neighbour's two new items
    lost: int  # articles from cycle 1 missing after cycle 2 (always asserted 0)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    name: str
    what: str
    routes: Callable[[LocalServer, Path], dict[str, Route]]  # served from cycle 2 on
    expect: str  # "error": the bad feed fails with `fragment`; "parsed": its items go through
    fragment: str = ""
    check: Callable[[Any, Outcome, LocalServer], None] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    covered_by: str = ""  # component tests that cover the mechanism itself


def _items(base: str, count: int, prefix: str = "b", links: bool = True) -> list[str]:
    now = datetime.now(UTC)
    return [rss_item(title=f"Bad-feed item {prefix}{n}", guid=f"{prefix}-{n}",
                     link=f"{base}/nowhere/{prefix}{n}" if links else None,
                     description=notice(n, f"feed item {prefix}{n}"), pub_date=rfc822(now - timedelta(minutes=n)))
            for n in range(count)]


def _feed_route(body: bytes, **kw: Any) -> dict[str, Route]:
    return {BAD_FEED: Route(body=body, content_type=kw.pop("content_type", RSS), **kw)}


# --- cases whose feed must fail with one line --------------------------------------------------

def _status(code: int, headers: dict[str, str] | None = None):
    return lambda server, tmp: {BAD_FEED: Route(body=b"<html>nope</html>", status=code, content_type=HTML,
                                                headers=headers or {})}


def _redirect_loop(server, tmp):
    return {BAD_FEED: redirect("/r/a"), "/r/a": redirect("/r/b"), "/r/b": redirect(BAD_FEED)}


def _redirect_chain(server, tmp):
    routes = {BAD_FEED: redirect("/chain/1")}
    routes.update({f"/chain/{n}": redirect(f"/chain/{n + 1}") for n in range(1, 10)})
    return routes


def _refused(server, tmp):
    return {BAD_FEED: redirect(f"http://127.0.0.1:{free_port()}/feed.xml")}


def _oversize_declared(server, tmp):
    body = rss(_items(server.base, 1)) + b"<!--" + b"x" * 1_200_000 + b"-->"
    return _feed_route(body)


def _oversize_chunked(server, tmp):
    return {BAD_FEED: Route(handler=chunked_handler(3_000_000))}


def _gzip_bomb(server, tmp):
    return _feed_route(gzip_bomb(200_000_000), headers={"Content-Encoding": "gzip"}, etag=False)


def _gzip_file_bomb(server, tmp):
    return _feed_route(gzip_bomb(200_000_000), content_type="application/gzip", etag=False)


def _bad_gzip(server, tmp):
    return _feed_route(b"\x1f\x8b\x08\x00garbage that is not deflate data at all", headers={"Content-Encoding": "gzip"})


def _slow_drip_body(server, tmp):
    return _feed_route(rss(_items(server.base, 20)), drip=0.05)


def _slow_headers(server, tmp):
    return _feed_route(rss(_items(server.base, 2)), delay=3.0)


def _pdf(server, tmp):
    return _feed_route(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n", content_type="application/pdf")


def _png_as_xml(server, tmp):
    return _feed_route(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, content_type="application/xml")


def _html_page(server, tmp):
    return _feed_route(b"<!doctype html><html><body><h1>Subscribe to read</h1><p>Log in first.</p></body></html>",
                       content_type=HTML)


def _empty(server, tmp):
    return _feed_route(b"", content_type="application/xml")


# --- cases whose items must go through -----------------------------------------------------------

def _malformed(server, tmp):
    items = _items(server.base, 3)
    items[1] = items[1].replace("</title>", "<b>bold never closed</title>").replace("Notice", "Notice &nbsp; &bogus;")
    return _feed_route(rss(items).replace(b"</channel>", b"</chanel>"))


def _truncated(server, tmp):
    body = rss(_items(server.base, 3))
    cut = body.index(b"<item>", body.index(b"<item>", body.index(b"<item>") + 1) + 1) + 40
    return _feed_route(body[:cut])


def _encoding_route(prolog: str, codec: str, content_type: str):
    def routes(server, tmp):
        item = rss_item(title="Café owners in Zürich reopen", link=f"{server.base}/nowhere/enc",
                        guid="enc-1", description="Crème brûlée is back on the menu at the lakeside café.")
        return _feed_route(rss([item], prolog=prolog).decode("utf-8").encode(codec), content_type=content_type)
    return routes


def _check_encoded_title(ctx, outcome: Outcome, server) -> None:
    [article_id] = stored_ids_for(ctx.store, [f"{server.base}/nowhere/enc"])
    article = ctx.store.get_article(article_id)
    assert article is not None, "the item of the mis-encoded feed was not stored"
    assert article.title == "Café owners in Zürich reopen", article.title
    assert "brûlée" in article.text and "\ufffd" not in article.text
    outcome.extra["title"] = article.title


def _gzip_encoded(server, tmp):
    return _feed_route(gzip.compress(rss(_items(server.base, 2))), headers={"Content-Encoding": "gzip"})


def _gzip_file(server, tmp):
    return _feed_route(gzip.compress(rss(_items(server.base, 2))), content_type="application/gzip")


def _check_items_stored(count: int, prefix: str = "b"):
    def check(ctx, outcome: Outcome, server) -> None:
        urls = [f"{server.base}/nowhere/{prefix}{n}" for n in range(count)]
        stored = [i for i in stored_ids_for(ctx.store, urls) if ctx.store.has_article(i)]
        assert len(stored) == count, f"{len(stored)} of {count} items of the bad feed stored"
        outcome.extra["items_stored"] = len(stored)
    return check


def _check_parsed_cleanly(count: int):
    """The items are stored and the feed's health shows no problem (a .gz wrapper is not the XML's fault)."""
    def check(ctx, outcome: Outcome, server) -> None:
        _check_items_stored(count)(ctx, outcome, server)
        assert outcome.bad_state.last_error is None, outcome.bad_state.last_error
        assert not any("parsed with problems" in line for line in outcome.bad_lines), outcome.bad_lines
    return check


def _billion_laughs(server, tmp):
    doctype = ('<!DOCTYPE rss [<!ENTITY lol "lol">'
               + "".join(f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
                         for n in range(1, 10))
               + "]>")
    item = rss_item(title="Laughing matter", guid="b-0", link=f"{server.base}/nowhere/b0",
                    description=notice(0, "a hostile feed"), raw="<category>&lol9;</category>")
    body = rss([item], prolog='<?xml version="1.0" encoding="utf-8"?>\n' + doctype)
    return _feed_route(body.replace(b"Laughing matter", b"Laughing &lol9; matter"))


def _xxe(server, tmp):
    secret = tmp / "secret.txt"
    secret.write_text(SECRET_MARKER, encoding="utf-8")
    victim = Victim("127.0.0.2")
    server.victims = getattr(server, "victims", []) + [victim]
    doctype = (f'<!DOCTYPE rss [<!ENTITY file SYSTEM "file://{secret}">'
               f'<!ENTITY remote SYSTEM "http://{victim.netloc}/entity">'
               f'<!ENTITY % param SYSTEM "http://{victim.netloc}/param"> %param;]>')
    item = rss_item(title="Include attempt", guid="b-0", link=f"{server.base}/nowhere/b0",
                    description=notice(0, "a hostile feed"))
    body = rss([item], prolog='<?xml version="1.0" encoding="utf-8"?>\n' + doctype)
    body = body.replace(b"Include attempt", b"Include attempt &file; &remote;")
    return _feed_route(body)


def _check_xxe(ctx, outcome: Outcome, server) -> None:
    _check_items_stored(1)(ctx, outcome, server)
    for article_id in snapshot(ctx.store):
        article = ctx.store.get_article(article_id)
        assert SECRET_MARKER not in article.title + article.text, "a local file made it into an article"
    assert all(SECRET_MARKER not in line for line in outcome.report.errors)
    victims = getattr(server, "victims", [])
    assert victims and all(v.accepted == 0 for v in victims), "an external entity was fetched"
    outcome.extra["victim_connections"] = sum(v.accepted for v in victims)


def _check_bounded(ctx, outcome: Outcome, server) -> None:
    _check_items_stored(1)(ctx, outcome, server)
    article = ctx.store.get_article(stored_ids_for(ctx.store, [f"{server.base}/nowhere/b0"])[0])
    assert len(article.title) < 200 and "lollollol" not in article.title + article.text
    grown = outcome.extra["maxrss_growth_mb"]
    assert grown < 300, f"peak memory grew by {grown} MB on a billion-laughs feed"


def _ten_thousand(server, tmp):
    return _feed_route(rss(_items(server.base, 10_000, prefix="k")))


def _check_ten_thousand(ctx, outcome: Outcome, server) -> None:
    report = outcome.report
    assert report.items_new == 10_000 + 2, report.items_new  # the 10,000 plus the neighbour's two new items
    left = len(ctx.store.pending_items(limit=20_000))
    # A cycle processes a bounded number of items (batch_size x 64 batches); the rest wait, nothing is lost.
    assert accounted(report) + left == 10_002, (accounted(report), left)
    assert left > 0
    outcome.extra.update(spooled=report.items_new, processed=accounted(report), waiting_in_inbox=left)


def _links(server, tmp):
    base = server.base
    now = rfc822(datetime.now(UTC))
    items = [
        rss_item(title="No link at all", guid="l-none", description=notice(1, "an item without a link"), pub_date=now),
        rss_item(title="Relative link", guid="l-rel", link="/pages/relative-link.html", pub_date=now),
        rss_item(title="Script link", guid="l-js", link="javascript:alert(document.cookie)",
                 description=notice(2, "a script link"), pub_date=now),
        rss_item(title="Data link", guid="l-data", link="data:text/html,<script>alert(1)</script>",
                 description=notice(3, "a data link"), pub_date=now),
        rss_item(title="Mail link", guid="l-mail", link="mailto:desk@example.org", description=notice(4, "mail"),
                 pub_date=now),
        rss_item(title="Protocol-relative link", guid="l-proto", link=f"//{base.split('//')[1]}/nowhere/proto",
                 description=notice(5, "a protocol-relative link"), pub_date=now),
    ]
    return _feed_route(rss(items))


def _check_links(ctx, outcome: Outcome, server) -> None:
    report = outcome.report
    assert report.dropped.get("no-link") == 4, report.dropped  # none, javascript:, data:, mailto:
    relative, proto = stored_ids_for(ctx.store, [f"{server.base}/pages/relative-link.html",
                                                 f"{server.base}/nowhere/proto"])
    article = ctx.store.get_article(relative)
    assert article is not None and article.extraction_source == "page", "relative link not resolved and fetched"
    assert "allotment" in article.text.lower()
    assert ctx.store.has_article(proto)
    requested = {r.path for r in server.log}
    assert not any("script" in p or "alert" in p or "cookie" in p for p in requested)
    outcome.extra["dropped_no_link"] = report.dropped.get("no-link")


def _dates(server, tmp):
    base = server.base
    items = [
        rss_item(title="From the future", guid="d-future", link=f"{base}/nowhere/d0",
                 description=notice(0, "a clock-skewed feed"), pub_date="Mon, 01 Jan 2999 10:00:00 GMT"),
        rss_item(title="Unparseable date", guid="d-junk", link=f"{base}/nowhere/d1",
                 description=notice(1, "a feed with junk dates"), pub_date="next Tuesday-ish, after lunch"),
        rss_item(title="Year zero", guid="d-zero", link=f"{base}/nowhere/d2",
                 description=notice(2, "a feed with year zero"), pub_date="Sat, 00 Jan 0000 00:00:00 GMT"),
        rss_item(title="Sane date", guid="d-ok", link=f"{base}/nowhere/d3",
                 description=notice(3, "a sane feed"), pub_date="Sat, 01 Nov 2025 08:30:00 GMT"),
    ]
    return _feed_route(rss(items))


def _check_dates(ctx, outcome: Outcome, server) -> None:
    ids = stored_ids_for(ctx.store, [f"{server.base}/nowhere/d{n}" for n in range(4)])
    articles = [ctx.store.get_article(i) for i in ids]
    assert all(a is not None for a in articles), "an item with a bad date was not stored"
    limit = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for article in articles[:3]:
        assert article.published is None or article.published <= limit, article.published
    assert articles[3].published == "2025-11-01T08:30:00Z"
    outcome.extra["published"] = [a.published for a in articles]


def _bad_pages(server, tmp):
    """Items of a valid feed whose pages are hostile: each falls back to the item's own text."""
    pages = {
        "/p/pdf": Route(body=b"%PDF-1.7\n1 0 obj << >> endobj\n", content_type="application/pdf"),
        "/p/png-labelled-html": Route(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, content_type=HTML),
        "/p/jpeg": Route(body=b"\xff\xd8\xff\xe0" + b"\x00" * 64, content_type="image/jpeg"),
        "/p/octet": Route(body=b"\x00\x01\x02" * 100, content_type="application/octet-stream"),
        "/p/slow": Route(body=b"<p>" + b"drip " * 400 + b"</p>", content_type=HTML, drip=0.05),
        "/p/bomb": Route(body=gzip_bomb(200_000_000), content_type=HTML, headers={"Content-Encoding": "gzip"}),
        "/p/huge": Route(handler=chunked_handler(3_000_000, HTML)),
        "/p/loop": redirect("/p/loop2"),
        "/p/loop2": redirect("/p/loop"),
        "/p/500": Route(body=b"oops", status=500, content_type=HTML),
        "/p/refused": redirect(f"http://127.0.0.1:{free_port()}/gone"),
    }
    items = [rss_item(title=f"Hostile page {path}", guid=f"hp-{path}", link=f"{server.base}{path}",
                      description=notice(n, f"hostile page {path}"))
             for n, path in enumerate(p for p in pages if p != "/p/loop2")]
    server.bad_pages = [p for p in pages if p != "/p/loop2"]
    return {**pages, **_feed_route(rss(items))}


def _check_bad_pages(ctx, outcome: Outcome, server) -> None:
    report = outcome.report
    paths = server.bad_pages
    urls = [f"{server.base}{p}" for p in paths]
    for url, article_id in zip(urls, stored_ids_for(ctx.store, urls), strict=True):
        article = ctx.store.get_article(article_id)
        assert article is not None, f"{url}: item lost with its page"
        assert article.extraction_source.startswith("feed"), (url, article.extraction_source)
        lines = [e for e in report.errors if f"page {url}:" in e]
        assert len(lines) == 1 and lines[0].startswith("feed bad: page "), (url, lines)
    assert report.page_fallbacks == len(paths)
    outcome.extra["page_errors"] = {p: next(e for e in report.errors if f"page {server.base}{p}:" in e)
                                    .split(f"page {server.base}{p}: ", 1)[1] for p in paths}


def _surrogate_charref(server, tmp):
    items = _items(server.base, 3)
    items[1] = items[1].replace("</title>", " &#xD800;</title>")
    return _feed_route(rss(items))


def _unreadable_entry(server, tmp):
    """A stray </media:player> makes feedparser 6.0.14 raise KeyError for the whole document."""
    items = _items(server.base, 4)
    items[2] = items[2].replace("</title>", "</title></media:player>")
    return _feed_route(rss(items).replace(b"<rss ", b'<rss xmlns:media="http://search.yahoo.com/mrss/" ', 1))


def _check_entry_dropped(ctx, outcome: Outcome, server) -> None:
    urls = [f"{server.base}/nowhere/b{n}" for n in (0, 1, 3)]
    stored = [i for i in stored_ids_for(ctx.store, urls) if ctx.store.has_article(i)]
    assert len(stored) == 3, f"{len(stored)} of the 3 readable items stored"
    [lost] = stored_ids_for(ctx.store, [f"{server.base}/nowhere/b2"])
    assert not ctx.store.has_article(lost)
    assert outcome.bad_state.last_error and "1 of 4 entries dropped" in outcome.bad_state.last_error
    outcome.extra["items_stored"] = len(stored)


CASES: list[Case] = [
    Case("http-404", "feed URL answers 404", _status(404), "error", "HTTP 404", covered_by="test_http::test_error_statuses"),
    Case("http-410", "feed URL answers 410 Gone", _status(410), "error", "HTTP 410"),
    Case("http-500", "feed server error", _status(500), "error", "HTTP 500"),
    Case("http-503", "feed server unavailable, no Retry-After", _status(503), "error", "HTTP 503"),
    Case("redirect-loop", "feed redirects in a circle", _redirect_loop, "error", "redirect loop",
         covered_by="test_http::test_redirect_loop_is_detected"),
    Case("redirect-chain", "ten redirects in a row (cap 3)", _redirect_chain, "error", "too many redirects",
         covered_by="test_http::test_too_many_redirects"),
    Case("connection-refused", "feed redirects to a closed port", _refused, "error", "connection failed"),
    Case("oversize-declared", "1.2 MB body, Content-Length over the 1 MB cap", _oversize_declared, "error",
         "larger than the 1000000-byte cap", covered_by="test_http::test_content_length_over_cap_is_refused_before_reading"),
    Case("oversize-chunked", "3 MB chunked body, no Content-Length", _oversize_chunked, "error",
         "body larger than the 1000000-byte cap", covered_by="test_http::test_streamed_body_over_cap_is_cut"),
    Case("gzip-bomb", "200 MB of zeros as Content-Encoding: gzip (~200 KB on the wire)", _gzip_bomb, "error",
         "decompressed body larger than", covered_by="test_http::test_gzip_bomb_is_refused"),
    Case("gzip-file-bomb", "the same bomb served as a .gz file (application/gzip)", _gzip_file_bomb, "error",
         "decompressed body larger than", covered_by="test_http::test_gzipped_feed_file_bomb_is_refused_too"),
    Case("bad-gzip", "Content-Encoding: gzip over bytes that are not gzip", _bad_gzip, "error", "cannot decode gzip",
         covered_by="test_http::test_undecodable_bodies"),
    Case("slow-drip-body", "valid feed dripped 16 bytes every 50 ms (total deadline 1.5 s)", _slow_drip_body,
         "error", "total deadline of 1.5s exceeded", covered_by="test_http::test_slow_drip_body_hits_the_total_deadline",
         config=SHORT_DEADLINE),
    Case("slow-headers", "server waits 3 s before the status line", _slow_headers, "error",
         "total deadline of 1.5s exceeded", covered_by="test_http::test_slow_drip_headers_hit_the_total_deadline",
         config=SHORT_DEADLINE),
    Case("pdf-as-feed", "a PDF where the feed should be", _pdf, "error", "content type 'application/pdf' is not acceptable",
         covered_by="test_http::test_bad_content_types_refused"),
    Case("png-labelled-xml", "PNG bytes labelled application/xml", _png_as_xml, "error", "body is binary"),
    Case("html-not-a-feed", "an HTML login wall with status 200", _html_page, "error", "not a feed",
         covered_by="test_feeds::test_poll_html_page_is_not_a_feed"),
    Case("empty-body", "200 with an empty body", _empty, "error", "not a feed"),
    Case("malformed-xml", "unclosed tags, undefined entities, misspelt end tag", _malformed, "parsed",
         "parsed with problems", _check_items_stored(3), covered_by="test_feeds::test_truncated_malformed_feed_still_yields_items"),
    Case("truncated-xml", "body cut off inside the third item", _truncated, "parsed", "parsed with problems",
         _check_items_stored(2)),
    Case("latin1-undeclared", "ISO-8859-1 bytes, no encoding in the XML declaration or the header",
         _encoding_route('<?xml version="1.0"?>', "latin-1", "application/xml"), "parsed", "", _check_encoded_title,
         covered_by="test_feeds::test_encodings"),
    Case("latin1-declared-utf8", "ISO-8859-1 bytes declared as UTF-8",
         _encoding_route('<?xml version="1.0" encoding="utf-8"?>', "latin-1", RSS), "parsed", "", _check_encoded_title),
    Case("utf8-labelled-latin1", "UTF-8 bytes, header says charset=iso-8859-1",
         _encoding_route('<?xml version="1.0" encoding="utf-8"?>', "utf-8", "application/xml; charset=iso-8859-1"),
         "parsed", "", _check_encoded_title),
    Case("utf16-bom", "UTF-16 with a byte-order mark",
         _encoding_route('<?xml version="1.0" encoding="utf-16"?>', "utf-16", "application/xml"), "parsed", "",
         _check_encoded_title, covered_by="test_http::test_utf16_feed_with_nul_bytes_is_not_mistaken_for_binary"),
    Case("gzip-encoded", "valid feed with Content-Encoding: gzip", _gzip_encoded, "parsed", "", _check_parsed_cleanly(2),
         covered_by="test_http::test_compressed_bodies_are_decoded"),
    Case("gzip-file", "valid feed served as a .gz file (application/gzip)", _gzip_file, "parsed", "",
         _check_parsed_cleanly(2), covered_by="test_http::test_gzipped_feed_file_without_content_encoding_is_unpacked, "
         "test_feeds::test_a_gzip_file_type_is_not_blamed_on_the_xml"),
    Case("billion-laughs", "nested entities expanding to 10^9 'lol's", _billion_laughs, "parsed", "", _check_bounded,
         covered_by="test_feeds::test_billion_laughs_stays_bounded"),
    Case("external-entities", "SYSTEM entities pointing at a local file and at 127.0.0.2 (general and parameter)",
         _xxe, "parsed", "", _check_xxe, covered_by="test_feeds::test_external_entities_are_never_resolved"),
    Case("ten-thousand-items", "one feed document with 10,000 items", _ten_thousand, "parsed", "",
         _check_ten_thousand, config={"batch_size": 4, "fetch": {"max_bytes": 8_000_000}}),
    Case("odd-links", "items with no link, relative, javascript:, data:, mailto: and protocol-relative links",
         _links, "parsed", "", _check_links, covered_by="test_feeds::test_rss2_links_are_resolved_or_dropped"),
    Case("odd-dates", "future (2999), unparseable, year-zero and sane dates", _dates, "parsed", "", _check_dates,
         covered_by="test_feeds::test_future_and_unparseable_dates_become_none"),
    Case("hostile-pages", "valid feed whose pages are PDF, PNG-as-HTML, JPEG, octet-stream, slow-drip, gzip bomb, "
         "3 MB chunked, redirect loop, 500 and a refused port", _bad_pages, "parsed", "", _check_bad_pages,
         config=SHORT_DEADLINE),
    Case("surrogate-char-ref", "one item's title holds &#xD800; (a lone surrogate)", _surrogate_charref, "parsed",
         "replaced by U+FFFD", _check_items_stored(3),
         covered_by="test_feeds::test_character_references_to_non_characters_are_replaced"),
    Case("unreadable-entry", "one item holds a stray </media:player> the parser raises on", _unreadable_entry,
         "parsed", "1 of 4 entries dropped", _check_entry_dropped,
         covered_by="test_feeds::test_an_entry_the_parser_raises_on_costs_only_that_entry"),
]


def run_case(case: Case, workdir: Path) -> Outcome:
    """Both cycles of one scenario; raises AssertionError when a promise is broken."""
    server = site()
    base = server.base
    server.routes["/feeds/good.xml"] = Route(body=good_feed(base, GOOD_PAGES[:2]), content_type=RSS)
    server.routes[BAD_FEED] = Route(body=rss(_items(base, 1, prefix="v")), content_type=RSS)
    feeds = [{"id": "good", "url": f"{base}/feeds/good.xml"}, {"id": "bad", "url": f"{base}{BAD_FEED}"}]
    try:
        with server, monitor(workdir, feeds, **case.config) as ctx:
            first = run_cycle(ctx)
            assert first.feeds_failed == 0 and first.articles_stored == 3, first.errors
            before = snapshot(ctx.store)
            etag_before = feed_state(ctx.store, "bad").etag
            assert etag_before

            server.routes["/feeds/good.xml"] = Route(body=good_feed(base, GOOD_PAGES), content_type=RSS)
            server.routes.update(case.routes(server, workdir))
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            report = run_cycle(ctx)
            grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) // 1024

            assert_one_line_errors(report)
            new_good = stored_ids_for(ctx.store, [f"{base}/pages/{slug}.html" for slug in GOOD_PAGES[2:]])
            good_new_stored = sum(ctx.store.has_article(i) for i in new_good)
            assert good_new_stored == 2, f"the neighbour feed suffered: {report.errors}"
            assert_nothing_lost(before, ctx.store)
            state = feed_state(ctx.store, "bad")
            outcome = Outcome(case.name, report, [e for e in report.errors if e.startswith("feed bad")], state,
                              etag_before, good_new_stored, 0, {"maxrss_growth_mb": grown_mb})
            if case.expect == "error":
                feed_lines = [e for e in outcome.bad_lines if e.startswith(f"feed bad ({base}{BAD_FEED})")]
                assert len(feed_lines) == 1, report.errors
                assert case.fragment in feed_lines[0], (case.fragment, feed_lines[0])
                # stored for the feeds table, which shows the feed: the reason only, no id or URL
                assert state.last_error and not state.last_error.startswith("feed bad"), state.last_error
                assert state.etag == etag_before, "feed state advanced past a failed poll"
                assert state.error_count == 1 and report.feeds_failed == 1
            else:
                assert report.feeds_failed == 0, report.errors
                if case.fragment:
                    assert any(case.fragment in line for line in outcome.bad_lines), report.errors
                assert report.dropped.get("processing-error", 0) == 0, report.errors
                if case.check:
                    case.check(ctx, outcome, server)
            return outcome
    finally:
        for victim in getattr(server, "victims", []):
            victim.close()

"""Feed polling and parsing: bytes from the fetcher -> FeedItems, one PollResult per feed.

Feeds are third-party XML, often broken, sometimes hostile. A broken feed still
gives its items (feedparser's loose parser); a hostile one gets its DOCTYPE
defused before parsing (feedparser 6.0.14 keeps long literal entities, and a
100 KB entity referenced thousands of times hangs it: quadratic blowup).
Where feedparser itself raises (on one entry's odd markup), the feed is parsed
again entry by entry, so only the entries it cannot read are lost, each counted.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import feedparser

from pipelines.errors import FetchError
from pipelines.http import Fetcher
from pipelines.models import FeedConfig, FeedItem, FeedState, iso, utcnow

FUTURE_TOLERANCE = timedelta(days=1)
MAX_ENTITY_LITERAL = 8  # longest literal entity value expanded; a 3-byte reference grows < 3x
MAX_MESSAGE = 300
MAX_FEED_TITLE = 100  # a feed's <title>, the outlet's name when feeds.yaml gives none
UNPARSEABLE_ENTRY = "unparseable-entry"  # feedparser raised on this entry; the feed's others are kept
EMPTY_ENTRY = "empty-entry"  # no id, link, title or summary: nothing to identify or show
PARSE_DROP_REASONS = (UNPARSEABLE_ENTRY, EMPTY_ENTRY)
# The wire type of a .xml.gz file describes the wrapper the fetcher already took off, not the XML.
_WRAPPER_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/octet-stream"})


@dataclass
class ParsedFeed:
    title: str
    items: list[FeedItem]
    bozo: str | None  # one-line description of the XML problem, or None
    version: str = ""  # feedparser's guess (rss20, atom10, rss10...); "" when not a feed at all
    dropped: dict[str, int] = field(default_factory=dict)  # entries lost while parsing, by reason


@dataclass
class PollResult:
    feed_id: str
    status: str  # ok | not-modified | error
    items: list[FeedItem] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    http_status: int | None = None
    error: str | None = None  # one line naming the feed id and URL (the cycle's report)
    problem: str | None = None  # the same in a desk's words, without feed id and URL (FeedState.last_error)
    bozo: str | None = None
    retry_after: float | None = None
    dropped: dict[str, int] = field(default_factory=dict)  # entries lost while parsing, by reason
    feed_title: str | None = None  # the document's own <title> (also on each item, through the inbox)


# -- DOCTYPE defusing --------------------------------------------------------------------------------

_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
_ENTITY_DECL = re.compile(rb"""<!ENTITY\s+([A-Za-z_][\w.-]*)\s+(?:"([^"]*)"|'([^']*)')\s*>""")
_SAFE_CHARREF = re.compile(rb"&#(?:[0-9]{1,7}|x[0-9A-Fa-f]{1,6});")
_ENTITY_REF = re.compile(rb"&([A-Za-z_][\w.-]*);")
_UNSAFE_LITERAL = re.compile(rb"""[&%<>"']""")
_PREDEFINED = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})


def _skip_internal_subset(data: bytes, pos: int) -> int | None:
    """Index just past the `]` closing an internal subset starting at pos, honouring quotes and comments."""
    n = len(data)
    while pos < n:
        char = data[pos:pos + 1]
        if char in (b'"', b"'"):
            end = data.find(char, pos + 1)
            if end < 0:
                return None
            pos = end + 1
        elif data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                return None
            pos = end + 3
        elif data.startswith(b"<?", pos):
            end = data.find(b"?>", pos + 2)
            if end < 0:
                return None
            pos = end + 2
        elif char == b"]":
            return pos + 1
        else:
            pos += 1
    return None


def _declaration_end(data: bytes, pos: int) -> int | None:
    """Index just past the `>` closing the markup declaration whose body starts at pos (quotes, [subset])."""
    n = len(data)
    while pos < n:
        char = data[pos:pos + 1]
        if char in (b'"', b"'"):
            close = data.find(char, pos + 1)
            if close < 0:
                return None
            pos = close + 1
        elif char == b"[":
            subset_end = _skip_internal_subset(data, pos + 1)
            if subset_end is None:
                return None
            pos = subset_end
        elif char == b">":
            return pos + 1
        else:
            pos += 1
    return None


def defuse_doctype(data: bytes) -> bytes:
    """Remove the DOCTYPE (and any stray declaration before the root element); expand in place only
    entities declared as one character reference or a short literal.

    Nothing left can reach the file system or the network and the text grows at most a few-fold, so
    neither XXE nor billion laughs nor quadratic blowup survive, while a feed that declares &nbsp;
    keeps parsing strictly (and feedparser's loose parser, which mangles declared entities, never sees one).
    """
    if b"<!" not in data:
        return data
    kept: list[bytes] = []
    declarations: list[bytes] = []
    pos, n = 0, len(data)
    while pos < n:  # walk the prolog: comments and PIs stay, declarations go
        lt = data.find(b"<", pos)
        if lt < 0:
            kept.append(data[pos:])
            pos = n
            break
        kept.append(data[pos:lt])
        pos = lt
        if data.startswith(b"<!--", pos):
            close = data.find(b"-->", pos + 4)
            stop = n if close < 0 else close + 3
            kept.append(data[pos:stop])
            pos = stop
        elif data.startswith(b"<?", pos):
            close = data.find(b"?>", pos + 2)
            stop = n if close < 0 else close + 2
            kept.append(data[pos:stop])
            pos = stop
        elif data.startswith(b"<!", pos):
            stop = _declaration_end(data, pos + 2)
            if stop is None:  # unterminated: drop it up to the root element
                root = _ELEMENT_START.search(data, pos + 2)
                stop = root.start() if root else n
            declarations.append(data[pos:stop])
            pos = stop
        else:
            break  # the root element (or text the XML parser will reject anyway)
    if not declarations:
        return data
    replacements: dict[bytes, bytes] = {}
    for declaration in declarations:
        for name, double_quoted, single_quoted in _ENTITY_DECL.findall(declaration):
            value = double_quoted or single_quoted
            if name in _PREDEFINED or name in replacements:
                continue  # XML: the first declaration wins; predefined ones cannot be redefined
            if _SAFE_CHARREF.fullmatch(value) or (0 < len(value) <= MAX_ENTITY_LITERAL
                                                   and not _UNSAFE_LITERAL.search(value)):
                replacements[name] = value
    rest = data[pos:]
    if replacements:
        rest = _ENTITY_REF.sub(lambda m: replacements.get(m.group(1), m.group(0)), rest)
    return b"".join(kept) + rest


_UTF16_32 = (
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),
)
_XML_DECL_ENCODING = re.compile(rb"""^(<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")


def _to_ascii_compatible(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """UTF-16/32 feeds are re-encoded as UTF-8 so the byte-level DOCTYPE defusing can see them."""
    for prefix, codec in _UTF16_32:
        if body.startswith(prefix):
            bom = prefix in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\xfe\xff", b"\xff\xfe")
            text = body[len(prefix):] if bom else body
            utf8 = text.decode(codec, errors="replace").encode("utf-8")
            utf8 = _XML_DECL_ENCODING.sub(rb'\1"utf-8"', utf8, count=1)
            headers = {k: v for k, v in headers.items() if k != "content-type"}
            headers["content-type"] = "application/xml; charset=utf-8"
            return utf8, headers
    return body, headers


_NUMERIC_CHARREF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
_BAD_DECLARED_ENCODING = re.compile(rb"""^((?:\xef\xbb\xbf)?\s*<\?xml[^>]*?)\s+encoding\s*=\s*["']([^"']*)["']""")
_ENCODING_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9._:-]{0,39}\Z")


def _is_xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD \
        or 0x10000 <= code <= 0x10FFFF


def sanitise_references(data: bytes) -> tuple[bytes, list[str]]:
    """Replace character references to non-characters by &#xFFFD;, and drop a declared encoding that is
    no encoding name; returns the new bytes and one note per kind of repair.

    feedparser 6.0.14 raises on `&#xD800;` (a lone surrogate cannot be encoded), `&#x110000;` and
    `&#99999999999;`, and on an XML declaration whose encoding holds non-ASCII bytes or NUL: each
    would cost the whole document for one bad character. The replacement is what an HTML parser does.
    """
    notes: list[str] = []
    bad_refs: list[bytes] = []

    def replace(match: re.Match[bytes]) -> bytes:
        digits = match.group(1) or match.group(2)
        code = int(digits, 16 if match.group(1) else 10) if len(digits) <= 32 else -1  # zero-padded is fine
        if _is_xml_char(code):
            return match.group(0)
        bad_refs.append(match.group(0))
        return b"&#xFFFD;"

    if b"&#" in data:
        data = _NUMERIC_CHARREF.sub(replace, data)
    if bad_refs:
        first = bad_refs[0][:20].decode("ascii", "replace")
        notes.append(f"{len(bad_refs)} character reference(s) to a non-character (first {first}) "
                     "replaced by U+FFFD")
    declared = _BAD_DECLARED_ENCODING.match(data)
    if declared and not _ENCODING_NAME.match(declared.group(2)):
        data = declared.group(1) + data[declared.end():]
        notes.append(f"XML declaration names no encoding ({declared.group(2)[:20]!r}); ignored")
    return data, notes


# -- HTML to text ---------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "header", "footer", "aside", "blockquote", "pre", "ul", "ol", "li",
    "dl", "dt", "dd", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption", "hr",
    "address", "main", "nav", "details", "summary",
})
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg", "head"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[list[str]] = [[]]
        self.skip_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.blocks.append([])
        elif tag == "br":
            self.blocks[-1].append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.blocks.append([])

    def handle_data(self, data):
        if not self.skip_depth:
            self.blocks[-1].append(data.replace("\n", " "))  # source newlines are spaces; <br> is "\n"


def html_to_text(markup: str | None) -> str:
    """Plain text with paragraphs separated by a blank line; whitespace inside a paragraph collapsed."""
    if not markup:
        return ""
    if "<" not in markup and "&" not in markup:
        return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", markup) if p.strip())
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    paragraphs = []
    for block in parser.blocks:
        lines = [" ".join(line.split()) for line in "".join(block).split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            paragraphs.append(text)
    return "\n\n".join(paragraphs)


# -- parsing --------------------------------------------------------------------------------------

def _one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _safe_link(raw: str | None, base_url: str | None) -> str | None:
    if not raw:
        return None
    link = "".join(str(raw).split())  # feeds wrap long links over lines
    try:
        if base_url:
            link = urljoin(base_url, link)
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return link


def _iso_date(entry: dict, now: datetime) -> str | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = dict.get(entry, key)  # plain dict lookup: FeedParserDict aliases updated to published
        if not parsed:
            continue
        try:
            when = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
        except (OverflowError, ValueError, TypeError, OSError):
            continue
        if when > now + FUTURE_TOLERANCE:
            return None  # a clock-skewed or lying feed; "no date" beats a wrong one
        return iso(when)
    return None


def _content_html(entry: dict) -> str:
    contents = entry.get("content") or []
    values = [c.get("value", "") for c in contents if isinstance(c, dict) and c.get("value")]
    return max(values, key=len) if values else ""


def _bozo_text(result: dict) -> str | None:
    if not result.get("bozo"):
        return None
    exc = result.get("bozo_exception")
    if exc is None:
        return "malformed feed"
    return _one_line(f"{type(exc).__name__}: {exc}")


_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")


def _feedparser(body: bytes, response_headers: dict[str, str]) -> dict:
    # feedparser must get a stream: given bytes or a str it may treat them as a URL or a file path.
    return feedparser.parse(io.BytesIO(body), response_headers=response_headers)


def _split_entries(body: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(head, entries, tail) at <item>/<entry> boundaries: each entry can then be parsed as head+entry+tail."""
    starts = [m.start() for m in _ENTRY_START.finditer(body)]
    if not starts:
        return body, [], b""
    ends = list(_ENTRY_END.finditer(body, starts[-1]))
    stop = ends[-1].end() if ends else len(body)  # no end tag: a truncated document
    bounds = [*starts, stop]
    return body[:starts[0]], [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)], body[stop:]


def _parse_entry_by_entry(body: bytes, response_headers: dict[str, str],
                          failure: Exception) -> tuple[dict, list[dict], int, str]:
    """Fallback when feedparser raises on the whole document: the feed's head and tail around each
    entry in turn, so one entry feedparser cannot read costs that entry only.

    Returns (feed result, entries, entries lost, what went wrong); raises the original failure when
    even the feed without its entries cannot be parsed.
    """
    head, chunks, tail = _split_entries(body)
    try:
        result = _feedparser(head + tail, response_headers)
    except Exception:  # noqa: BLE001 - the problem is outside the entries: the feed is lost, as before
        raise failure from None
    entries: list[dict] = []
    lost, first_problem = 0, ""
    for chunk in chunks:
        try:
            entries.extend(_feedparser(head + chunk + tail, response_headers).get("entries", []))
        except Exception as err:  # noqa: BLE001 - hostile markup in one entry; count it, keep the rest
            lost += 1
            first_problem = first_problem or f"{type(err).__name__}: {err}"
    if not chunks:
        raise failure
    return result, entries, lost, first_problem


def parse_feed(body: bytes, feed: FeedConfig, base_url: str | None = None,
               headers: dict | None = None) -> ParsedFeed:
    """Items of one feed document. Never resolves external entities; a malformed feed still yields items,
    and an entry the parser chokes on is dropped (counted in `dropped`) without losing the others."""
    now = utcnow()
    base = base_url or feed.url
    # Only what bears on decoding: feedparser must not act on content-encoding or length (already undone).
    response_headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()
                        if str(k).lower() in ("content-type", "content-language")}
    media_type = response_headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in _WRAPPER_TYPES:
        del response_headers["content-type"]
    body, response_headers = _to_ascii_compatible(body or b"", response_headers)
    body, notes = sanitise_references(defuse_doctype(body))
    # No content-location: feedparser would resolve guids (ids) against it and make item ids depend on
    # the URL we happened to fetch; links are resolved below instead. xml:base in the feed still applies.
    response_headers.setdefault("content-type", "application/xml")  # unlabeled: sniff the XML declaration
    dropped: dict[str, int] = {}
    try:
        result = _feedparser(body, response_headers)
        entries = result.get("entries", [])
    except Exception as failure:  # noqa: BLE001 - feedparser bug on hostile input: retry entry by entry
        result, entries, lost, problem = _parse_entry_by_entry(body, response_headers, failure)
        if lost:
            dropped[UNPARSEABLE_ENTRY] = lost
            notes.append(f"{lost} of {lost + len(entries)} entries dropped, unreadable by the parser "
                         f"(first: {problem})")
    feed_meta = result.get("feed", {})
    language = (feed_meta.get("language") or "").strip() or feed.language
    feed_title = _one_line(html_to_text(feed_meta.get("title")), MAX_FEED_TITLE) or None
    items: list[FeedItem] = []
    seen: set[str] = set()
    for entry in entries:
        title = html_to_text(entry.get("title"))
        link = _safe_link(entry.get("link"), base)
        published = _iso_date(entry, now)
        summary = html_to_text(entry.get("summary"))
        content = html_to_text(_content_html(entry))
        guid = " ".join(str(entry.get("id") or "").split())
        if guid:
            item_id = guid
        elif link:
            item_id = link
        elif title or summary:
            basis = f"{title}\n{published or ''}\n{'' if title else summary[:500]}"
            item_id = "sha256:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]
        else:
            dropped[EMPTY_ENTRY] = dropped.get(EMPTY_ENTRY, 0) + 1  # nothing to identify or show
            continue
        if item_id in seen:
            continue  # the same item twice in one document: one item, nothing lost
        seen.add(item_id)
        author = html_to_text(entry.get("author")) or None
        items.append(FeedItem(feed_id=feed.id, item_id=item_id, link=link, title=title,
                              summary=summary, content=content, published=published,
                              author=author, language=language, feed_title=feed_title))
    problems = [p for p in (_bozo_text(result), *notes) if p]
    return ParsedFeed(title=html_to_text(feed_meta.get("title")), items=items,
                      bozo=_one_line("; ".join(problems)) if problems else None,
                      version=result.get("version") or "", dropped=dropped)


# -- polling --------------------------------------------------------------------------------------

def poll_feed(feed: FeedConfig, state: FeedState | None, fetcher: Fetcher) -> PollResult:
    """Conditional GET + parse of one feed. Never raises: every problem becomes status "error"."""
    etag = state.etag if state else None
    last_modified = state.last_modified if state else None
    where = f"feed {feed.id} ({feed.url})"
    try:
        response = fetcher.fetch(feed.url, etag=etag, last_modified=last_modified, kind="feed")
    except FetchError as err:
        hop = f" at {err.url}" if err.url != feed.url else ""  # the failing redirect target, if any
        reason = err.reason.removeprefix(f"{err.kind}:").lstrip()  # not "refused: refused: ..."
        return PollResult(feed_id=feed.id, status="error", etag=etag, last_modified=last_modified,
                          http_status=err.status, error=_one_line(f"{where}: {err.kind}{hop}: {reason}"),
                          problem=_one_line(f"{err.summary}{f' (at {err.url})' if hop else ''}"),
                          retry_after=err.retry_after)
    except Exception as err:  # noqa: BLE001 - one bad feed must never stop the cycle
        problem = f"unexpected {type(err).__name__}: {err}"
        return PollResult(feed_id=feed.id, status="error", etag=etag, last_modified=last_modified,
                          error=_one_line(f"{where}: {problem}"), problem=_one_line(problem))
    if response.not_modified:
        return PollResult(feed_id=feed.id, status="not-modified", etag=response.etag or etag,
                          last_modified=response.last_modified or last_modified, http_status=response.status)
    try:
        parsed = parse_feed(response.body, feed, base_url=response.url, headers=response.headers)
    except Exception as err:  # noqa: BLE001 - feedparser on hostile input; report, don't crash
        problem = f"parse failed: {type(err).__name__}: {err}"
        return PollResult(feed_id=feed.id, status="error", etag=etag, last_modified=last_modified,
                          http_status=response.status, error=_one_line(f"{where}: {problem}"),
                          problem=_one_line(problem))
    if not parsed.items and not parsed.version:
        # Not a feed at all (an HTML error page, a login wall): keep the old validators so it is retried.
        problem = parsed.bozo or f"no RSS/Atom content (content type {response.content_type or 'missing'})"
        return PollResult(feed_id=feed.id, status="error", etag=etag, last_modified=last_modified,
                          http_status=response.status, bozo=parsed.bozo,
                          error=_one_line(f"{where}: not a feed: {problem}"), problem=_one_line(f"not a feed: {problem}"))
    return PollResult(feed_id=feed.id, status="ok", items=parsed.items, etag=response.etag,
                      last_modified=response.last_modified, http_status=response.status, bozo=parsed.bozo,
                      dropped=parsed.dropped, feed_title=_one_line(parsed.title, MAX_FEED_TITLE) or None)


def _by_host_round_robin(feeds: list[FeedConfig]) -> list[int]:
    """Indexes of `feeds`, one feed per host in turn (host A, B, C, A, B, C, ...).

    A worker waiting out one host's politeness delay holds its thread; listed in file order, an
    outlet's sections sit next to each other and every worker ends up waiting on the same few
    hosts (1,000 feeds on 250 hosts: 43 s a round instead of 2 s; see docs/performance.md).
    """
    queues: dict[str, list[int]] = {}
    for index, feed in enumerate(feeds):
        try:
            host = (urlsplit(feed.url).hostname or "").lower()
        except ValueError:
            host = ""
        queues.setdefault(host, []).append(index)
    order: list[int] = []
    lanes = list(queues.values())
    for depth in range(max(map(len, lanes))):
        order.extend(lane[depth] for lane in lanes if depth < len(lane))
    return order


def poll_many(feeds: list[FeedConfig], states: dict[str, FeedState], fetcher: Fetcher,
              workers: int = 16) -> list[PollResult]:
    """Poll feeds concurrently (the fetcher keeps each host polite); results in the order of `feeds`."""
    feeds = list(feeds)
    if not feeds:
        return []
    order = _by_host_round_robin(feeds)
    results: list[PollResult | None] = [None] * len(feeds)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(feeds))),
                            thread_name_prefix="newsmon-poll") as pool:
        polled = pool.map(lambda i: poll_feed(feeds[i], states.get(feeds[i].id), fetcher), order)
        for index, result in zip(order, polled, strict=True):
            results[index] = result
    return [r for r in results if r is not None]

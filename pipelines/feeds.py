"""Feed polling and parsing: bytes from the fetcher -> FeedItems, one PollResult per feed.

Feeds are third-party XML, often broken, sometimes hostile. A broken feed still
gives its items (feedparser's loose parser); a hostile one is decoded to UTF-8
first and then gets every DOCTYPE/ENTITY declaration defused, wherever it hides
(feedparser 6.0.14 keeps long literal entities, and a 100 KB entity referenced
thousands of times hangs it: quadratic blowup). A few invalid bytes in a UTF-8
feed cost those bytes only. Where feedparser itself raises (on one entry's odd
markup), the entries are parsed again in groups, then one by one, so only the
entries it cannot read are lost, each counted, in time linear in the document.
Items are identified by GUID, or by canonical link when one GUID carries several.
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
from pipelines.identity import canonical_url
from pipelines.models import FeedConfig, FeedItem, FeedState, iso, utcnow

FUTURE_TOLERANCE = timedelta(days=1)
MAX_ENTITY_LITERAL = 8  # longest literal entity value expanded; a 3-byte reference grows < 3x
MAX_MESSAGE = 300
MAX_FEED_TITLE = 100  # a feed's <title>, the outlet's name when feeds.yaml gives none
UNPARSEABLE_ENTRY = "unparseable-entry"  # feedparser raised on this entry; the feed's others are kept
EMPTY_ENTRY = "empty-entry"  # no id, link, title or summary: nothing to identify or show
DUPLICATE_ENTRY = "duplicate-entry"  # the same GUID (or link) and link as an earlier entry of the document
PARSE_DROP_REASONS = (UNPARSEABLE_ENTRY, EMPTY_ENTRY, DUPLICATE_ENTRY)
MAX_ITEM_TITLE = 1_000  # characters of an entry's title (and author) kept
MAX_ITEM_TEXT = 100_000  # characters of an entry's summary, and of its content, kept
MAX_ITEM_MARKUP = 1_000_000  # characters of one field's HTML converted to text at all
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
    error_kind: str | None = None  # the FetchError's kind when the fetch failed ("cut": stopped at not_after)
    dropped: dict[str, int] = field(default_factory=dict)  # entries lost while parsing, by reason
    feed_title: str | None = None  # the document's own <title> (also on each item, through the inbox)


# -- DOCTYPE defusing --------------------------------------------------------------------------------

_ELEMENT_START = re.compile(rb"<[A-Za-z_:\x80-\xff]")  # a name start (non-ASCII: a UTF-8 letter)
_PROLOG_MARKUP = re.compile(rb"<[!?A-Za-z_:\x80-\xff]")  # what the prolog walk stops at; any other "<" is text
_DECLARATION_TOKEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
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
    """Remove the DOCTYPE (and any declaration before the root element, behind comments, PIs or stray
    markup such as `<>`); expand in place only entities declared as one character reference or a short
    literal; leave no declaration anywhere else either (_neutralise_declarations).

    Nothing left can reach the file system or the network and the text grows at most a few-fold, so
    neither XXE nor billion laughs nor quadratic blowup survive, while a feed that declares &nbsp;
    keeps parsing strictly (and feedparser's loose parser, which mangles declared entities, never sees one).
    The bytes must be UTF-8 (parse_feed decodes first): in UTF-7 or EBCDIC a DOCTYPE is other bytes.
    """
    if b"<!" not in data:
        return data
    kept: list[bytes] = []
    declarations: list[bytes] = []
    pos, n = 0, len(data)
    while pos < n:  # walk the prolog: comments and PIs stay, declarations go, stray "<>" or "</x>" is text
        markup = _PROLOG_MARKUP.search(data, pos)
        lt = markup.start() if markup else -1
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
            break  # the root element
    if not declarations:
        return _neutralise_declarations(data)
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
    return _neutralise_declarations(b"".join(kept) + rest)


def _neutralise_declarations(data: bytes) -> bytes:
    """Spell every remaining `<!DOCTYPE`/`<!ENTITY`/... (in a comment, a PI, CDATA or the body) `<?x-DOCTYPE`.

    feedparser collects `<!ENTITY` lines before the first element even inside comments and PIs, and
    gives them to its loose parser, which expands them (quadratic blowup behind a decoy). `<?x-` makes
    it a processing instruction: no declaration to any parser, dropped from a description's HTML like
    the `<!DOCTYPE html>` it may have been. One pass is enough: the replacement has no `<!`, so it
    cannot join its neighbours into a new declaration.
    """
    if b"<!" not in data:
        return data
    return _DECLARATION_TOKEN.sub(rb"<?x-\1", data)


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


_GUESSED_ENCODINGS = frozenset({"windows-1252", "iso-8859-2"})  # feedparser's last resorts, after UTF-8


def _mostly_utf8(data: bytes) -> tuple[str, int] | None:
    """The text decoded as UTF-8 with each bad byte sequence replaced, and how many were replaced, when
    valid multi-byte characters outnumber the bad sequences (UTF-8 with a few broken bytes); else None
    (Latin-1 labelled UTF-8: é as one byte is never valid UTF-8, so nothing valid is non-ASCII)."""
    text = data.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")  # genuine U+FFFD characters are not bad bytes
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return (text, replaced) if non_ascii - replaced > replaced else None


def _to_utf8(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str], list[str]]:
    """The document decoded once, here, and handed on as UTF-8 labelled UTF-8; notes on what was guessed.

    The choice of encoding is feedparser's own (HTTP charset, XML declaration, BOM, then guesses), made
    before defusing, so the DOCTYPE the parser would see cannot hide in UTF-7 or EBCDIC bytes. One
    difference: when a UTF-8 document (declared, sniffed or the default) has a few invalid bytes,
    feedparser re-decoded all of it as windows-1252 or iso-8859-2, garbling every other item (Urdu
    became mojibake); here only the bad bytes become U+FFFD.
    """
    found: dict = {}
    converted = feedparser.encodings.convert_to_utf8(headers, body, found)
    notes: list[str] = []
    override = found.get("bozo_exception")
    if not isinstance(override, feedparser.CharacterEncodingOverride):
        override = None
    if override is not None and found.get("encoding") in _GUESSED_ENCODINGS:
        repaired = _mostly_utf8(body.removeprefix(b"\xef\xbb\xbf"))
        if repaired is not None:
            text, replaced = repaired
            declaration = feedparser.encodings.RE_XML_DECLARATION
            utf8 = "<?xml version='1.0' encoding='utf-8'?>"
            text = declaration.sub(utf8, text, count=1) if declaration.match(text) else f"{utf8}\n{text}"
            converted = text.encode("utf-8", errors="replace")
            notes.append(f"{replaced} invalid UTF-8 byte sequence(s) replaced by U+FFFD")
            override = None
    if override is not None:
        notes.append(f"{type(override).__name__}: {override}")
    media_type = headers.get("content-type", "").split(";")[0].strip() or "application/xml"
    return converted, {**headers, "content-type": f"{media_type}; charset=utf-8"}, notes


_NUMERIC_CHARREF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
_BAD_DECLARED_ENCODING = re.compile(rb"""^((?:\xef\xbb\xbf)?\s*<\?xml[^>]*?)\s+encoding\s*=\s*["']([^"']*)["']""")
_ENCODING_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9._:-]{0,39}\Z")


def _is_xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD \
        or 0x10000 <= code <= 0x10FFFF


def drop_bad_declared_encoding(data: bytes) -> tuple[bytes, list[str]]:
    """Drop a declared encoding that is no encoding name (feedparser 6.0.14 raises on non-ASCII bytes or
    NUL there, losing the whole document); the encoding is then sniffed. Returns bytes and notes."""
    declared = _BAD_DECLARED_ENCODING.match(data)
    if declared and not _ENCODING_NAME.match(declared.group(2)):
        note = f"XML declaration names no encoding ({declared.group(2)[:20]!r}); ignored"
        return declared.group(1) + data[declared.end():], [note]
    return data, []


def sanitise_references(data: bytes) -> tuple[bytes, list[str]]:
    """Replace character references to non-characters by &#xFFFD;; returns the new bytes and a note.

    feedparser 6.0.14 raises on `&#xD800;` (a lone surrogate cannot be encoded), `&#x110000;` and
    `&#99999999999;`: each would cost the whole document for one bad character. The replacement is
    what an HTML parser does.
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


def _capped_text(markup: str | None, limit: int) -> tuple[str, bool]:
    """html_to_text of at most MAX_ITEM_MARKUP characters, cut to `limit`; and whether anything was cut.

    Defence in depth: whatever a parser expands, one entry stores a bounded amount of text."""
    markup = markup or ""
    text = html_to_text(markup[:MAX_ITEM_MARKUP])
    if len(text) <= limit and len(markup) <= MAX_ITEM_MARKUP:
        return text, False
    return text[:limit], True


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


_HEAD_MARKUP = re.compile(rb"</?[!?A-Za-z_:\x80-\xff]")  # "<>", "< " and the like are text
_TAG_NAME = re.compile(rb"[A-Za-z_:\x80-\xff][^\s/>]*")
_TAG_SPECIAL = re.compile(rb"[\"'>]")
MAX_WRAPPER = 16_384  # bytes of the open elements' start tags around each parsed group of entries
GROUP_ENTRIES = 128  # entries parsed together in the fallback (one bad one costs its group a re-parse)
GROUP_BYTES = 262_144


def _open_elements(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, start tag) of the elements still open where the first entry starts: <rss><channel>, <feed>.

    One pass over the head, honouring comments, CDATA, PIs and quoted attribute values."""
    stack: list[tuple[bytes, bytes]] = []
    depth: dict[bytes, int] = {}  # open elements by name: an end tag of none costs no scan of the stack
    pos, n = 0, len(head)
    while (markup := _HEAD_MARKUP.search(head, pos)) is not None:
        lt = markup.start()
        for opener, closer in ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"), (b"<!", b">")):
            if head.startswith(opener, lt):
                close = head.find(closer, lt + len(opener))
                pos = n if close < 0 else close + len(closer)
                break
        else:
            gt, scan = -1, lt + 1
            while (special := _TAG_SPECIAL.search(head, scan)) is not None:
                if special.group() == b">":
                    gt = special.start()
                    break
                close = head.find(special.group(), special.end())
                if close < 0:
                    break
                scan = close + 1
            if gt < 0:
                break  # an unterminated tag: the entries follow a broken head; wrap them in what is open
            closing = head.startswith(b"</", lt)
            name = _TAG_NAME.match(head, lt + 2 if closing else lt + 1)
            if name and closing:
                if depth.get(name.group()):  # close it and whatever was left open inside it
                    while True:
                        closed, _tag = stack.pop()
                        depth[closed] -= 1
                        if closed == name.group():
                            break
            elif name and head[gt - 1:gt] != b"/":
                stack.append((name.group(), head[lt:gt + 1]))
                depth[name.group()] = depth.get(name.group(), 0) + 1
            pos = gt + 1
    return stack


def _entry_wrapper(head: bytes) -> tuple[bytes, bytes]:
    """What goes before and after entries parsed on their own: the open elements (namespaces, xml:base
    and xml:lang included), not the channel's metadata, so each parse costs its entries, not the head."""
    pieces: list[bytes] = []
    names: list[bytes] = []
    size = 0
    for name, tag in _open_elements(head):  # outermost first; a hostile head loses attributes, then depth
        piece = tag if size + len(tag) <= MAX_WRAPPER else b"<" + name + b">"
        if size + len(piece) > MAX_WRAPPER:
            break
        pieces.append(piece)
        names.append(name)
        size += len(piece)
    return b"".join(pieces), b"".join(b"</" + name + b">" for name in reversed(names))


def _groups(chunks: list[bytes]) -> list[list[bytes]]:
    groups: list[list[bytes]] = [[]]
    size = 0
    for chunk in chunks:
        if groups[-1] and (len(groups[-1]) >= GROUP_ENTRIES or size + len(chunk) > GROUP_BYTES):
            groups.append([])
            size = 0
        groups[-1].append(chunk)
        size += len(chunk)
    return groups


def _parse_entry_by_entry(body: bytes, response_headers: dict[str, str],
                          failure: Exception) -> tuple[dict, list[dict], int, str]:
    """Fallback when feedparser raises on the whole document: the feed's head and tail once (for the
    feed's own fields), then its entries in groups inside the open elements only, and the entries of a
    group that raises (or yields fewer entries than it has) one by one. Linear in the document: each
    entry is parsed at most twice, with a wrapper of bounded size (the old head+entry+tail per entry
    took 94 s on a 4 MB feed).

    Returns (feed result, entries, entries lost, what went wrong); raises the original failure when
    even the feed without its entries cannot be parsed.
    """
    head, chunks, tail = _split_entries(body)
    try:
        result = _feedparser(head + tail, response_headers)
    except Exception:  # noqa: BLE001 - the problem is outside the entries: the feed is lost, as before
        raise failure from None
    if not chunks:
        raise failure
    opening, closing = _entry_wrapper(head)
    entries: list[dict] = []
    lost, first_problem = 0, ""
    for group in _groups(chunks):
        try:
            parsed = _feedparser(opening + b"".join(group) + closing, response_headers).get("entries", [])
        except Exception:  # noqa: BLE001 - some entry in this group is hostile: find which, below
            parsed = None
        if parsed is not None and len(parsed) == len(group):
            entries.extend(parsed)
            continue
        for chunk in group:
            try:
                entries.extend(_feedparser(opening + chunk + closing, response_headers).get("entries", []))
            except Exception as err:  # noqa: BLE001 - hostile markup in one entry; count it, keep the rest
                lost += 1
                first_problem = first_problem or f"{type(err).__name__}: {err}"
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
    # No content-location: feedparser would resolve guids (ids) against it and make item ids depend on
    # the URL we happened to fetch; links are resolved below instead. xml:base in the feed still applies.
    response_headers.setdefault("content-type", "application/xml")  # unlabeled: sniff the XML declaration
    body, response_headers = _to_ascii_compatible(body or b"", response_headers)
    body, notes = drop_bad_declared_encoding(body)
    body, response_headers, decoding_notes = _to_utf8(body, response_headers)
    body, reference_notes = sanitise_references(defuse_doctype(body))
    notes += decoding_notes + reference_notes
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
    feed_name = _capped_text(feed_meta.get("title"), MAX_ITEM_TITLE)[0]
    feed_title = _one_line(feed_name, MAX_FEED_TITLE) or None
    colliding = _colliding_guids(entries, base)
    items: list[FeedItem] = []
    seen: set[str] = set()
    cut = relinked = 0
    for entry in entries:
        title, title_cut = _capped_text(entry.get("title"), MAX_ITEM_TITLE)
        summary, summary_cut = _capped_text(entry.get("summary"), MAX_ITEM_TEXT)
        content, content_cut = _capped_text(_content_html(entry), MAX_ITEM_TEXT)
        cut += title_cut + summary_cut + content_cut
        link = _safe_link(entry.get("link"), base)
        published = _iso_date(entry, now)
        guid = _guid(entry)
        by_link = bool(guid and link and guid in colliding)
        if by_link:
            item_id = canonical_url(link)  # the GUID names several stories: the link tells them apart
        elif guid:
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
            dropped[DUPLICATE_ENTRY] = dropped.get(DUPLICATE_ENTRY, 0) + 1  # same GUID and link again
            continue
        seen.add(item_id)
        relinked += by_link
        author = _capped_text(entry.get("author"), MAX_ITEM_TITLE)[0] or None
        items.append(FeedItem(feed_id=feed.id, item_id=item_id, link=link, title=title,
                              summary=summary, content=content, published=published,
                              author=author, language=language, feed_title=feed_title))
    if relinked:
        notes.append(f"{relinked} entries share a GUID with an entry of another link; told apart by link")
    if cut:
        notes.append(f"{cut} entry field(s) cut to {MAX_ITEM_TITLE} (title) or {MAX_ITEM_TEXT} characters")
    problems = [p for p in (_bozo_text(result), *notes) if p]
    return ParsedFeed(title=feed_name, items=items,
                      bozo=_one_line("; ".join(problems)) if problems else None,
                      version=result.get("version") or "", dropped=dropped)


def _guid(entry: dict) -> str:
    return " ".join(str(entry.get("id") or "").split())


def _colliding_guids(entries: list[dict], base: str) -> set[str]:
    """GUIDs that more than one link carries in this document (a CMS reusing one id for every story).

    Their items are identified by canonical link instead, in this and every later cycle (the same
    document gives the same ids), so none is lost as "seen"; a GUID repeated with the same link
    stays one item, and its repeats are counted as duplicate-entry."""
    links: dict[str, set[str | None]] = {}
    for entry in entries:
        guid = _guid(entry)
        if guid:
            link = _safe_link(entry.get("link"), base)
            links.setdefault(guid, set()).add(canonical_url(link) if link else None)
    return {guid for guid, seen in links.items() if len(seen) > 1}


# -- polling --------------------------------------------------------------------------------------

def poll_feed(feed: FeedConfig, state: FeedState | None, fetcher: Fetcher,
              not_after: float | None = None) -> PollResult:
    """Conditional GET + parse of one feed. Never raises: every problem becomes status "error".

    not_after caps the request (Fetcher.fetch); a request it cuts is an error of error_kind "cut"."""
    etag = state.etag if state else None
    last_modified = state.last_modified if state else None
    where = f"feed {feed.id} ({feed.url})"
    try:
        response = fetcher.fetch(feed.url, etag=etag, last_modified=last_modified, kind="feed",
                                 not_after=not_after)
    except FetchError as err:
        hop = f" at {err.url}" if err.url != feed.url else ""  # the failing redirect target, if any
        reason = err.reason.removeprefix(f"{err.kind}:").lstrip()  # not "refused: refused: ..."
        return PollResult(feed_id=feed.id, status="error", etag=etag, last_modified=last_modified,
                          http_status=err.status, error=_one_line(f"{where}: {err.kind}{hop}: {reason}"),
                          problem=_one_line(f"{err.summary}{f' (at {err.url})' if hop else ''}"),
                          retry_after=err.retry_after, error_kind=err.kind)
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

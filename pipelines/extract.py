"""Article text and metadata out of a fetched page, with the feed item as the safety net.

Extraction runs trafilatura (2.3.x) over one parsed tree: one balanced pass, and a second,
precision pass only on pages whose text shows the symptom that pass cures (see
EXTRACTION_OPTIONS for the rules and the benchmark figures that chose them). Anything that goes
wrong with the page -- binary bytes, a wrong charset, an empty or boilerplate-only page -- ends
in the feed item's own text instead of an exception, so one bad page never stops a cycle.
"""

from __future__ import annotations

import codecs
import logging
import re
from typing import Any

from pipelines import trafilatura_shortcuts as shortcuts
from pipelines.models import ExtractedPage, FeedItem
from pipelines.textnorm import strip_controls

LOGGER = logging.getLogger(__name__)

# Every tunable of extraction in one place. Chosen on the shared benchmark
# (../shared/data/extraction, F1 over 4-token shingles, averaged per page):
#   trafilatura defaults (bare extract) ............... scrapinghub 0.953, wcxb 0.925
#   balanced pass, reader comments not appended ........ 0.957 / 0.938
#   + readability consulted only on short, structurally poor or unclean text (its length rule
#     skipped; pipelines.trafilatura_shortcuts) ........ 0.964 / 0.942, and ~30% cheaper
#   + precision pass when the text opens with the headline: 0.972 / 0.942, ~10% slower processing
#     (off by default since 2026-12-03, newsmon.yaml extract.precision_pass turns it on)
# A recall pass (0.973 / 0.941 with the precision pass) ran on 19 pages of 20 for two pages' gain.
# favor_precision alone (0.964 / 0.899), favor_recall alone (0.962 / 0.930), fast (0.964 / 0.915),
# include_tables=False (0.948 / 0.929) all scored worse. deduplicate=True scored worse (0.934 on
# scrapinghub) and keeps a process-wide cache, so a page's text would depend on what ran before it.
# include_comments stays on as in trafilatura's defaults: .text never holds the comments, and
# turning it off swaps a cheap pass over the cleaned tree for a costly prune of the raw one (one
# benchmark page keeps a "View Comments" button line; F1 -0.0001).
EXTRACTION_OPTIONS: dict[str, Any] = {
    # keyword arguments of every trafilatura.bare_extraction pass (fast/favor_* are set per pass)
    "trafilatura": {
        "include_comments": True,
        "include_tables": True,
        "include_images": False,
        "include_links": False,
        "deduplicate": False,
    },
    # second pass, favor_precision (fast: the external fallbacks add nothing here), run only when the
    # balanced text's first line is the page's headline: the balanced pass then started in the page
    # header, where the teasers, promos and related-story lists the precision pass drops sit (6 of the
    # 9 benchmark pages it improved open so, the one it harmed does not; 48 of 197 pages do). Its text
    # is taken when it kept between 20% and 90% of the balanced text and at least min_chars: it then
    # cut a block of boilerplate; a smaller trim mostly drops real headings and list items, a bigger
    # one the article. Off by default (see above); extract_page(precision_pass=...) overrides it.
    "precision_pass": False,
    "precision_keep": (0.2, 0.9),
    # headline and first line must share at least this many characters to count as the same line
    "headline_min_chars": 15,
    # htmldate's extensive date search (dateparser over the page's free text) when its quick search
    # found no date. Off: on the benchmark it ran on 17 of 197 pages for 3 ms a page on average (~35 ms
    # each) and found 2 right dates, 2 wrong ones and 13 that can't be checked, mostly January 1st of a
    # copyright year. The feed's own date comes first anyway (cycle._published).
    "extensive_date_fallback": False,
    # the feed's full content replaces the page text when it is this many times longer
    "feed_richer_ratio": 1.5,
    # bytes of HTML parsed at most; the rest of a huge page is dropped before parsing
    "max_html_bytes": 5_000_000,
    # above this many elements the main pass runs fast=True: trafilatura's justext fallback is
    # quadratic in the number of blocks (10k elements ~ 4 s, 40k ~ 50 s); benchmark pages have <= 2.4k
    "fast_above_elements": 5_000,
    # above this many the full extractor is superlinear even in fast mode (5 MB of divs ~ 80 s):
    # trafilatura's linear baseline (article/JSON-LD/<p> text) is used instead
    "baseline_above_elements": 40_000,
    # a page whose first 4 KB decode to more than this share of control/replacement chars is binary
    "max_garbage_share": 0.1,
}

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)
_GARBAGE_CHARS = re.compile(r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]")  # replacement and control chars but tab, LF, CR
_NOT_WORD = re.compile(r"\W+")
_LANG_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\Z")
_NOT_A_LANGUAGE = {"und", "mul", "zxx", "mis"}  # ISO 639 codes for undetermined, several, none, other
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def extract_page(
    html: bytes | str,
    url: str,
    item: FeedItem | None = None,
    *,
    min_chars: int = 250,
    charset: str | None = None,
    precision_pass: bool | None = None,
) -> ExtractedPage | None:
    """The page's article, or the feed item's text when the page has too little; None if neither has any.

    precision_pass: run the second, stricter pass where it may help (default: EXTRACTION_OPTIONS,
    which newsmon.yaml's extract.precision_pass overrides in a cycle).
    Every text field comes back without control characters (_without_controls).
    """
    return _without_controls(_extract_page(html, url, item, min_chars=min_chars, charset=charset,
                                           precision_pass=precision_pass), item)


def _extract_page(html: bytes | str, url: str, item: FeedItem | None, *, min_chars: int, charset: str | None,
                  precision_pass: bool | None) -> ExtractedPage | None:
    page = None
    if precision_pass is None:
        precision_pass = bool(EXTRACTION_OPTIONS["precision_pass"])
    try:
        page = _extract_from_html(html, url, min_chars, charset, precision_pass)
    except Exception as exc:  # trafilatura/lxml on hostile input: the feed text still counts
        LOGGER.warning("extraction failed for %s: %s: %s", url, type(exc).__name__, exc)
    if item is not None and page is not None and not page.language:
        page.language = _language_tag(item.language)

    feed_source, feed_text = _feed_text(item)
    page_len = len(page.text) if page is not None else 0
    if page is not None and page_len >= min_chars:
        if feed_text and len(feed_text) >= EXTRACTION_OPTIONS["feed_richer_ratio"] * page_len:
            return _from_feed(url, item, feed_source, feed_text, page)
        return page
    if feed_text:
        return _from_feed(url, item, feed_source, feed_text, page)
    return page if page_len else None


def _extract_from_html(html: bytes | str, url: str, min_chars: int, charset: str | None,
                       precision_pass: bool) -> ExtractedPage | None:
    import trafilatura

    markup = _decode(html, charset)
    if markup is None:
        return None
    tree = shortcuts.load_html(markup)
    if tree is None:
        return None
    options = EXTRACTION_OPTIONS
    base = options["trafilatura"]
    # a page has fewer elements than "<" characters: most need no count
    elements = markup.count("<")
    if elements > options["fast_above_elements"]:
        elements = int(tree.xpath("count(//*)"))
    huge = elements > options["fast_above_elements"]
    # before the text passes, as bare_extraction(with_metadata=True) does: they must see the same tree
    metadata = _metadata(tree, url, extensive_date=options["extensive_date_fallback"] and not huge)
    if elements > options["baseline_above_elements"]:
        LOGGER.info("page %s is huge: baseline extraction only", url)
        _, text, _ = trafilatura.baseline(tree)
        return _page(url, (text or "").strip(), metadata, tree)
    # bare_extraction copies a tree it is given, so the passes share one parse; the balanced pass
    # consults readability only on short, structurally poor or unclean text (trafilatura_shortcuts)
    main = trafilatura.bare_extraction(tree, options=shortcuts.extractor(url=url, fast=huge, **base))
    if main is None:
        return None
    text = (main.text or "").strip()
    if precision_pass and text and _opens_with_headline(text, metadata.title):
        precise = trafilatura.bare_extraction(tree, url=url, favor_precision=True, fast=True, **base)
        precise_text = (precise.text or "").strip() if precise is not None else ""
        low, high = options["precision_keep"]
        if len(precise_text) >= min_chars and low * len(text) <= len(precise_text) <= high * len(text):
            text = precise_text
    return _page(url, text, metadata, tree)


def _page(url: str, text: str, metadata: Any, tree: Any) -> ExtractedPage:
    return ExtractedPage(
        url=url,
        text=text,
        title=_clean(metadata.title),
        author=_clean(metadata.author),
        published=_clean(metadata.date),
        language=_page_language(tree),
        sitename=_clean(metadata.sitename),
        source="page",
    )


def _metadata(tree: Any, url: str, *, extensive_date: bool) -> Any:
    """trafilatura's extract_metadata minus what newsmon doesn't keep (categories, tags, licence:
    a fifth of its time) and with htmldate's quick date search first (see EXTRACTION_OPTIONS)."""
    from htmldate import find_date
    from trafilatura import metadata as meta
    from trafilatura.settings import set_date_params

    found = meta.examine_meta(tree)
    if found.author and " " not in found.author:  # as extract_metadata: one word is a handle, not a name
        found.author = None
    try:
        found = meta.extract_meta_json(tree, found)
    except Exception as exc:  # trafilatura's JSON-LD reader has bugs; the other sources still count
        LOGGER.debug("JSON-LD metadata of %s unreadable: %s", url, exc)
    found.title = found.title or meta.extract_title(tree)
    found.author = found.author or shortcuts.extract_author(tree)
    found.url = found.url or meta.extract_url(tree, url)
    found.date = find_date(tree, **{**set_date_params(False), "url": found.url})
    if found.date is None and extensive_date:
        found.date = find_date(tree, **{**set_date_params(True), "url": found.url})
    found.sitename = found.sitename or meta.extract_sitename(tree)
    if found.sitename:
        found.sitename = found.sitename.lstrip("@")  # a Twitter handle
        if found.sitename and "." not in found.sitename and not found.sitename[0].isupper():
            found.sitename = found.sitename.title()
    elif found.url and (from_url := meta.META_URL.match(found.url)):
        found.sitename = from_url[1]
    found.clean_and_trim()
    return found


def _opens_with_headline(text: str, title: str | None) -> bool:
    """Whether the text's first line is the headline (one contains the other, ignoring case and punctuation)."""
    first_line = _NOT_WORD.sub(" ", text.split("\n", 1)[0]).strip().lower()
    headline = _NOT_WORD.sub(" ", title or "").strip().lower()
    if min(len(first_line), len(headline)) < EXTRACTION_OPTIONS["headline_min_chars"]:
        return False
    return first_line in headline or headline in first_line


def _decode(html: bytes | str, charset: str | None) -> str | None:
    """Text of the page: BOM, else the given (HTTP) charset, else <meta charset>, else UTF-8 with
    replacement. A byte order mark is the strongest evidence there is, so it beats the header
    (as in browsers, WHATWG Encoding)."""
    cap = EXTRACTION_OPTIONS["max_html_bytes"]
    if isinstance(html, str):
        markup = html[:cap]
    elif isinstance(html, bytes | bytearray):
        raw = bytes(html[:cap])
        encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None) or _codec(charset)
        if encoding is None:
            found = _META_CHARSET.search(raw[:4096])
            encoding = _codec(found.group(1).decode("ascii")) if found else None
        markup = raw.decode(encoding or "utf-8", errors="replace")
    else:
        return None
    markup = markup.lstrip("\ufeff")
    if not markup or markup.isspace() or _looks_binary(markup[:4096]):
        return None
    # the parse (trafilatura's repair_faulty_html) drops the other control characters anyway
    return markup.replace("\x7f", "") if "\x7f" in markup else markup


def _codec(name: str | None) -> str | None:
    """A Python codec name for a declared charset, or None when Python does not know it."""
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    # browsers read latin-1 and ascii declarations as windows-1252 (WHATWG Encoding)
    if name in {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"}:
        name = "cp1252"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _looks_binary(head: str) -> bool:
    if not head:
        return False
    bad = len(_GARBAGE_CHARS.findall(head))
    return bad > EXTRACTION_OPTIONS["max_garbage_share"] * len(head)


def _page_language(tree: Any) -> str | None:
    """Declared language: <html lang>, og:locale, then Content-Language (no text-based detection here)."""
    root = tree.getroottree().getroot() if hasattr(tree, "getroottree") else tree
    declared = _language_tag(root.get("lang") or root.get("xml:lang"))
    if declared:  # it comes first: no need to read the meta tags
        return declared
    candidates: list[str] = []
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("http-equiv") or "").lower()
        if key in {"og:locale", "content-language", "language", "dc.language"}:
            candidates.append(meta.get("content") or "")
    for value in candidates:
        tag = _language_tag(value)
        if tag:
            return tag
    return None


def _language_tag(value: str | None) -> str | None:
    """The primary subtag, lower-cased ('en-GB', 'en_US' -> 'en'), or None when it is not a language tag."""
    if not value:
        return None
    first = value.split(",")[0].strip()
    match = _LANG_TAG.match(first)
    if not match or match.group(1).lower() in _NOT_A_LANGUAGE:
        return None
    return match.group(1).lower()


def _feed_text(item: FeedItem | None) -> tuple[str, str]:
    """The longer of the feed item's full content and summary, with its source label."""
    if item is None:
        return "feed-content", ""
    content, summary = (item.content or "").strip(), (item.summary or "").strip()
    if len(content) >= len(summary):
        return "feed-content", content
    return "feed-summary", summary


def _from_feed(url: str, item: FeedItem | None, source: str, text: str, page: ExtractedPage | None) -> ExtractedPage:
    """Feed text with the feed's metadata first: a failed page's title may be a captcha or error banner."""
    item_language = _language_tag(item.language) if item else None
    return ExtractedPage(
        url=url,
        text=text,
        title=(item.title.strip() if item and item.title else None) or (page.title if page else None),
        author=(item.author if item else None) or (page.author if page else None),
        published=(item.published if item else None) or (page.published if page else None),
        language=(page.language if page else None) or item_language,
        sitename=page.sitename if page else None,
        source=source,
    )


def _without_controls(page: ExtractedPage | None, item: FeedItem | None) -> ExtractedPage | None:
    """The page with C0/C1 controls stripped from every text field (terminal escapes in a feed's title
    must not reach the console channel or `newsmon search`), tab and newline kept in the body. The
    feed item's title and author fill a page's missing ones here, already clean, as the cycle would
    fall back to them anyway."""
    if page is None:
        return None
    if item is not None:
        page.title = page.title or _clean(item.title)
        page.author = page.author or _clean(item.author)
    page.text = strip_controls(page.text, multiline=True)
    for name in ("title", "author", "published", "language", "sitename"):
        value = getattr(page, name)
        if value:
            setattr(page, name, _clean(strip_controls(value)))
    page.url = strip_controls(page.url)
    return page


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None

"""Shortcuts around three slow paths of trafilatura 2.3.x, for newsmon's own calls only.

1. The readability comparison (a choice, not only a shortcut). In its balanced mode trafilatura
   runs readability over a copy of the raw page after its own extractor and prefers readability's
   text when its own is empty, structurally poor (no paragraph text, more tables than paragraphs)
   or less than half as long; justext runs on a short or "unclean" text. newsmon consults them
   only in those first cases: on a long, clean, paragraph-built text the one rule left is the
   length rule, which on the shared benchmark fired on 3 pages of 197 and made all 3 worse. So
   readability runs on 12 pages of 197 instead of all, and the pass costs ~30% less.
2. Parsing. lxml.html's parser picks each element's Python class by a Python callback; the same
   parser with a C-level lookup builds the same trees without it (a tenth of extraction time).
3. The author heuristic. trafilatura's author XPaths test classes and ids with EXSLT regular
   expressions, which lxml answers by calling back into Python for every element; the same tests
   in one Python walk over the elements that carry a likely class or id cost a third.

(2) and (3) give trafilatura's exact results. All three touch trafilatura internals (pinned by
constraints.txt); tests/test_trafilatura_shortcuts.py compares them with trafilatura's own on
built pages, every fixture page and, when present, the shared benchmark pages, so an upgrade that
changes them is caught. (1) wraps one private function of trafilatura.core; the wrapper defers to
the original for every caller but newsmon's own Extractor.
"""

from __future__ import annotations

import logging
import re
from copy import copy, deepcopy
from datetime import date
from typing import Any

LOGGER = logging.getLogger(__name__)

def _newsmon_extractor_class() -> type:
    from trafilatura.settings import Extractor

    class NewsmonExtractor(Extractor):  # type: ignore[misc,valid-type]
        """trafilatura's Extractor, marked so the wrapped comparison may skip a futile readability run."""

        __slots__ = ()
        skip_futile_fallback = True

    return NewsmonExtractor


_EXTRACTOR_CLASS: type | None = None
_INSTALLED = False


# bare_extraction's keyword arguments -> Extractor's
_EXTRACTOR_NAMES = {"fast": "fast", "favor_precision": "precision", "favor_recall": "recall",
                    "include_comments": "comments", "include_tables": "tables", "include_images": "images",
                    "include_links": "links", "include_formatting": "formatting", "deduplicate": "dedup",
                    "target_language": "lang"}


_TEMPLATES: dict[tuple, Any] = {}


def extractor(url: str | None = None, **bare_extraction_kwargs: Any) -> Any:
    """An Extractor for trafilatura.bare_extraction(options=...) from bare_extraction's own keyword
    arguments (its defaults included: output "python", comments on), with the shortcut switched on.

    Building one reads trafilatura's ConfigParser (~0.25 ms); a copy of a template built once per
    set of options (and day: its date parameters carry today's date) costs a few microseconds."""
    global _EXTRACTOR_CLASS
    install()
    key = (tuple(sorted(bare_extraction_kwargs.items())), date.today())
    template = _TEMPLATES.get(key)
    if template is None:
        if _EXTRACTOR_CLASS is None:
            _EXTRACTOR_CLASS = _newsmon_extractor_class()
        options = {"output_format": "python", "comments": True}
        options.update({_EXTRACTOR_NAMES[name]: value for name, value in bare_extraction_kwargs.items()})
        if len(_TEMPLATES) > 16:
            _TEMPLATES.clear()
        template = _TEMPLATES[key] = _EXTRACTOR_CLASS(**options)
    extractor_for_page = copy(template)
    extractor_for_page.url = url  # as Extractor.__init__ sets them
    extractor_for_page.source = url and url.encode("utf-8", "replace").decode("utf-8")
    return extractor_for_page


def install() -> bool:
    """Wrap trafilatura.core._extract_and_compare once; False (and no shortcut) if its shape changed."""
    global _INSTALLED
    if _INSTALLED:
        return True
    from trafilatura import core

    original = getattr(core, "_extract_and_compare", None)
    needed = ("extract_content", "compare_extraction")
    if original is None or not all(hasattr(core, name) for name in needed):
        LOGGER.warning("trafilatura.core changed shape: the readability shortcut is off")
        return False
    if getattr(original, "newsmon_wrapped", False):
        _INSTALLED = True
        return True

    def extract_and_compare(cleaned_tree: Any, cleaned_tree_backup: Any, tree: Any, options: Any) -> Any:
        if options.fast or options.focus != "balanced" or not getattr(options, "skip_futile_fallback", False):
            return original(cleaned_tree, cleaned_tree_backup, tree, options)
        postbody, text = core.extract_content(cleaned_tree, options)
        if comparison_is_futile(postbody, text, options):
            return postbody, text
        return core.compare_extraction(cleaned_tree_backup, copy(tree), postbody, text, options)

    extract_and_compare.newsmon_wrapped = True  # type: ignore[attr-defined]
    core._extract_and_compare = extract_and_compare
    _INSTALLED = True
    return True


def comparison_is_futile(body: Any, text: str, options: Any) -> bool:
    """True when only readability's length rule could change trafilatura's balanced result: the
    text is long enough, has paragraph text, no more tables than paragraphs and no "unclean" element."""
    from trafilatura.external import SANITIZED_XPATH

    if len(text) < options.min_extracted_size:  # justext would run
        return False
    if not body.xpath(".//p//text()") or len(body.findall(".//table")) > len(body.findall(".//p")):
        return False  # readability may win on structure
    return not body.xpath(SANITIZED_XPATH)  # "unclean": justext would run


# --- parsing ------------------------------------------------------------------------------------
# lxml.html's parser picks each element's Python class in Python (HtmlElementClassLookup.lookup,
# once per element proxy: ~700k calls over the benchmark's pages, a tenth of extraction time);
# the same parser with a C-level lookup making every element an HtmlElement gives the same trees
# (trafilatura uses no form-element API) without the callback.


def _parser() -> Any:
    from lxml import etree, html

    parser = html.HTMLParser(collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True,
                             remove_pis=True)  # trafilatura.utils.HTML_PARSER's options
    parser.set_element_class_lookup(etree.ElementDefaultClassLookup(
        element=html.HtmlElement, comment=html.HtmlComment, pi=html.HtmlProcessingInstruction,
        entity=html.HtmlEntity))
    return parser


_PARSER: Any = None


def load_html(markup: str) -> Any:
    """trafilatura.utils.load_html for decoded markup, parsed by the parser above; None if not HTML."""
    global _PARSER
    from lxml.html import fromstring
    from trafilatura.utils import is_dubious_html, repair_faulty_html

    if _PARSER is None:
        _PARSER = _parser()
    beginning = markup[:50].lower()
    dubious = is_dubious_html(beginning)
    markup = repair_faulty_html(markup, beginning)
    tree, from_bytes = None, False
    try:
        tree = fromstring(markup, parser=_PARSER)
    except ValueError:  # "Unicode strings with encoding declaration are not supported"
        tree, from_bytes = _from_bytes(markup), True
    except Exception as exc:  # as trafilatura: log, then try the bytes
        LOGGER.debug("lxml parsing failed: %s", exc)
    if (tree is None or len(tree) < 1) and not from_bytes:
        tree = _from_bytes(markup)
    if tree is not None and dubious and len(tree) < 2:
        return None  # as trafilatura: not (well-formed) HTML
    return tree


def _from_bytes(markup: str) -> Any:
    from lxml.html import fromstring

    try:
        return fromstring(markup.encode("utf8", "surrogatepass"), parser=_PARSER)
    except Exception as exc:
        LOGGER.debug("lxml parsing of bytes failed: %s", exc)
        return None


# --- author ---------------------------------------------------------------------------------
# trafilatura.xpaths.AUTHOR_DISCARD_XPATHS and AUTHOR_XPATHS as Python tests on one element each,
# with their own regular expressions: lxml answers an XPath re:test by calling back into Python
# for every element and expression, and even rewritten as XPath 1.0 string functions libxml2 took
# ~1 us an element per expression; one Python walk over the candidates costs a third of that.

_DISCARD_TAGS = frozenset({"a", "div", "section", "span"})
_DISCARD_ID = re.compile(r"^comments|comment-?list|ProductReviews")
_DISCARD_CLASS = re.compile(r"^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram|"
                            r"article-(?:share|support)|print|category|meta-date|meta-reviewer")
_AUTHOR_TAGS = (frozenset({"a", "address", "div", "link", "p", "span", "strong"}),
                frozenset({"a", "div", "h3", "h4", "p", "span"}))
_AUTHOR_CLASS = (re.compile(r"author-?name|AuthorName|authorName"),
                 re.compile(r"author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name"),
                 re.compile(r"[Aa]uthor|screenname|writer|[Bb]yline"))
_AUTHOR_ID = (re.compile(r"author|zuozhe|bianji|xiaobian"), re.compile(r"[Aa]uthor"))
# one search per element first: a class or id without any of these can't match the tests below
_DISCARD_HINT = re.compile(r"omment|ProductReviews|title|date|sidebar|is-hidden|quote|embedly-instagram|article-|print|"
                           r"category")
_AUTHOR_HINT = re.compile(r"uthor|yline|byl|BBL|username|screenname|writer|channel-name|zuozhe|bianji|xiaobian|"
                          r"submitted-by|posted-by|journalist-name")


def _discarded(element: Any) -> bool:
    """AUTHOR_DISCARD_XPATHS[0]: comment lists, sidebars, share bars, dates, figures' components."""
    if element.tag not in _DISCARD_TAGS:
        return False
    id_, cls = element.get("id") or "", element.get("class") or ""
    return bool(id_ == "comments" or cls in ("comments", "title", "date") or _DISCARD_ID.search(id_)
                or _DISCARD_CLASS.search(cls) or "Figure" in (element.get("data-component") or ""))


def _author_expression(element: Any) -> int | None:
    """The first of the three AUTHOR_XPATHS that selects this element (0-2), or None."""
    tag = element.tag
    get = element.get
    cls, id_, itemprop = get("class") or "", get("id") or "", get("itemprop") or ""
    if tag == "author" or (tag in _AUTHOR_TAGS[0] and (
            get("rel") == "author" or id_ == "author" or cls == "author" or itemprop == "author name"
            or get("data-testid") in ("AuthorCard", "AuthorURL") or _AUTHOR_CLASS[0].search(cls)
            or any(child.tag == "rel" and child.text_content() == "me" for child in element))):
        return 0
    if tag in _AUTHOR_TAGS[1] and (
            cls in ("byline", "username", "byl", "BBL") or "author" in itemprop
            or _AUTHOR_ID[0].search(id_) or _AUTHOR_CLASS[1].search(cls)):
        return 1
    if ("Byline" in (get("data-component") or "") or "author" in itemprop or _AUTHOR_ID[1].search(id_)
            or _AUTHOR_CLASS[2].search(cls)):
        return 2
    return None


def extract_author(tree: Any) -> str | None:
    """trafilatura.metadata.extract_author: the first element, by expression then document order,
    whose text is 3-119 characters, once comment lists, dates and figures are pruned."""
    from trafilatura.metadata import normalize_authors
    from trafilatura.utils import trim
    from trafilatura.xml import delete_element

    subtree = deepcopy(tree)
    hint = _DISCARD_HINT.search
    discarded = [element for element in subtree.iterdescendants(*_DISCARD_TAGS)
                 if (hint(element.get("class") or "") or hint(element.get("id") or "")
                     or element.get("data-component") is not None) and _discarded(element)]
    for element in discarded:
        delete_element(element)
    for element in list(subtree.iter("time", "figure")):
        delete_element(element)
    hint = _AUTHOR_HINT.search
    parents_of_rel = {rel.getparent() for rel in subtree.iter("rel")}
    found: list[str | None] = [None, None, None]
    for element in subtree.iter():
        tag, get = element.tag, element.get
        if not isinstance(tag, str) or not (
                hint(get("class") or "") or hint(get("id") or "") or tag == "author"
                or get("itemprop") is not None or get("rel") is not None or get("data-testid") is not None
                or get("data-component") is not None or element in parents_of_rel):
            continue
        expression = _author_expression(element)
        if expression is None or found[expression] is not None:
            continue
        content = trim(" ".join(element.itertext()))
        if content and 2 < len(content) < 120:
            if expression == 0:
                return normalize_authors(None, content)
            found[expression] = content
    author = found[1] or found[2]
    return normalize_authors(None, author) if author else None

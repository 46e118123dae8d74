"""extract_page on our own fixture pages: text, metadata, charsets, language, feed fallbacks, garbage."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipelines import extract
from pipelines.extract import EXTRACTION_OPTIONS, extract_page
from pipelines.models import FeedItem

PAGES = Path(__file__).parent / "fixtures" / "pages"
STORIES = PAGES / "stories"
URL = "https://frontier-ledger.example/news/chaman-crossing-reopens"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def story(name: str) -> str:
    """The body of a fixture story (its first line is the headline)."""
    return (STORIES / f"{name}.txt").read_text(encoding="utf-8").split("\n", 1)[1]


def item(**fields: str | None) -> FeedItem:
    values: dict = {"feed_id": "ledger", "item_id": "guid-1", "link": URL}
    values.update(fields)
    return FeedItem(**values)


def html_with(head: str, html_attrs: str = "", body_text: str | None = None) -> str:
    body = body_text if body_text is not None else story("refugees_return")
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    return f"<!DOCTYPE html><html {html_attrs}><head>{head}<title>T</title></head><body><article>{paragraphs}</article></body></html>"


# --- the page itself -----------------------------------------------------------------------------

def test_article_text_without_navigation_comments_or_footer():
    result = extract_page(page("border_crossing.html"), URL)
    assert result is not None and result.source == "page"
    assert "around 400 vehicles loaded with fresh fruit" in result.text
    assert result.text.rstrip().endswith("armed groups across the frontier.")
    for boilerplate in ("Reader4417", "QuettaWala", "Related stories", "Flour prices climb",
                        "Morning Ledger newsletter", "All rights reserved", "Privacy policy"):
        assert boilerplate not in result.text, boilerplate


def test_metadata_of_the_page():
    result = extract_page(page("border_crossing.html"), URL)
    assert result is not None
    assert result.title == "Chaman crossing reopens to trade after three-week closure"
    assert result.author == "Sana Qureshi"
    assert result.published == "2025-11-03"
    assert result.language == "en"
    assert result.sitename == "Frontier Ledger"
    assert result.url == URL


def test_meta_charset_windows_1252_is_honoured():
    raw = page("cricket_cp1252.html")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the fixture really is not UTF-8
    result = extract_page(raw, "https://crease.example/final")
    assert result is not None
    assert "My captain’s faith in me" in result.text
    assert "café of the members’ pavilion" in result.text
    assert result.author == "Zoë Fernandes"
    assert "\ufffd" not in result.text


def test_given_charset_overrides_a_wrong_meta_declaration():
    # the page says windows-1252 but the server (Content-Type) says, rightly, UTF-8
    raw = page("urdu_talks.html").replace(b'<meta charset="utf-8">', b'<meta charset="windows-1252">')
    result = extract_page(raw, "https://sarhad.example/talks", charset="utf-8")
    assert result is not None
    assert "استنبول" in result.text
    misread = extract_page(raw, "https://sarhad.example/talks")
    assert misread is None or "استنبول" not in misread.text


def test_unknown_charset_name_falls_back_to_utf8():
    result = extract_page(page("urdu_talks.html"), "https://sarhad.example/talks", charset="x-no-such-charset")
    assert result is not None and "جنگ بندی" in result.text


def test_str_input_is_accepted():
    result = extract_page(page("border_crossing.html").decode("utf-8"), URL)
    assert result is not None and "Spin Boldak" in result.text


# --- language ----------------------------------------------------------------------------------

def test_language_from_og_locale_when_html_has_no_lang():
    result = extract_page(page("urdu_talks.html"), "https://sarhad.example/talks")
    assert result is not None and result.language == "ur"


def test_language_from_content_language_meta():
    result = extract_page(page("cricket_cp1252.html"), "https://crease.example/final")
    assert result is not None and result.language == "en"


def test_html_lang_wins_over_og_locale():
    html = html_with('<meta property="og:locale" content="ur_PK">', 'lang="ps-AF"')
    result = extract_page(html, "https://example.org/a")
    assert result is not None and result.language == "ps"


def test_language_from_feed_item_when_page_declares_none():
    result = extract_page(html_with(""), "https://example.org/a", item(language="fa-AF"))
    assert result is not None and result.source == "page"
    assert result.language == "fa"


def test_undetermined_language_is_not_a_language():
    result = extract_page(html_with("", 'lang="und"'), "https://example.org/a")
    assert result is not None and result.language is None


# --- feed fallbacks ----------------------------------------------------------------------------

def test_paywall_page_falls_back_to_feed_content():
    feed_item = item(title="Foreign Office says talks have stalled", summary="Talks stalled, says FO.",
                     content=story("briefing_stalled"), author="Desk Reporter",
                     published="2025-11-07T09:00:00Z", language="en")
    result = extract_page(page("paywall.html"), URL, feed_item)
    assert result is not None
    assert result.source == "feed-content"
    assert result.text == story("briefing_stalled").strip()
    assert result.title == "Foreign Office says talks have stalled"  # not "Subscriber exclusive"
    assert result.author == "Desk Reporter"
    assert result.published == "2025-11-07T09:00:00Z"
    assert result.sitename == "The Border Post"


def test_summary_used_when_it_is_the_longer_feed_text():
    feed_item = item(title="Talks stalled", summary="Pakistan's Foreign Office says the talks have stalled.", content="")
    result = extract_page(page("paywall.html"), URL, feed_item)
    assert result is not None
    assert result.source == "feed-summary"
    assert result.text == "Pakistan's Foreign Office says the talks have stalled."


def test_min_chars_decides_what_counts_as_too_little():
    feed_item = item(summary="A short summary of the crossing story.")
    full = extract_page(page("border_crossing.html"), URL, feed_item, min_chars=250)
    assert full is not None and full.source == "page"
    demanding = extract_page(page("border_crossing.html"), URL, feed_item, min_chars=5000)
    assert demanding is not None and demanding.source == "feed-summary"


def test_richer_feed_content_beats_a_thin_page():
    thin = html_with("", 'lang="en"', body_text=story("crossing_reopens").split("\n\n")[0])
    long_content = story("crossing_reopens") + "\n\n" + story("refugees_return")
    result = extract_page(thin, URL, item(content=long_content, title="Crossing reopens"))
    assert result is not None
    assert result.source == "feed-content"
    assert result.language == "en"  # the page's declaration still counts


def test_page_kept_when_feed_content_is_not_clearly_longer():
    result = extract_page(page("border_crossing.html"), URL, item(content=story("crossing_reopens")[:1400]))
    assert result is not None and result.source == "page"


def test_short_page_text_kept_when_the_feed_has_nothing():
    result = extract_page(page("paywall.html"), URL, item(summary="", content=""))
    assert result is not None
    assert result.source == "page"
    assert "available to subscribers only" in result.text


def test_none_when_nothing_has_text():
    assert extract_page(b"", URL) is None
    assert extract_page("", URL, item()) is None
    assert extract_page("<html><body></body></html>", URL, item(summary="  ", content="")) is None


# --- garbage never raises ----------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    random.Random(1).randbytes(50_000),
    b"\x00" * 10_000,
    b"\xff\xfe\xfa" * 3000,
    "\ud800 lone surrogate <p>x</p>",
    b"<html><body><p>" + b"\x81\x82\x83" * 500 + b"</p>",
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >>",
    b"<?xml version='1.0' encoding='utf-8'?><rss><channel><title>not a page</title></channel></rss>",
])
def test_garbage_falls_back_to_the_feed(garbage):
    result = extract_page(garbage, URL, item(summary="The crossing reopened on Monday, officials said."))
    assert result is not None
    assert result.source == "feed-summary"
    assert result.text == "The crossing reopened on Monday, officials said."


def test_garbage_without_feed_text_is_none():
    assert extract_page(random.Random(2).randbytes(20_000), URL, item()) is None


def test_html_beyond_the_size_cap_is_not_parsed(monkeypatch):
    monkeypatch.setitem(EXTRACTION_OPTIONS, "max_html_bytes", 100_000)
    article = page("border_crossing.html")
    padded = b"<html><body><!--" + b"x" * 150_000 + b"-->" + article
    result = extract_page(padded, URL, item(summary="Feed summary of the crossing story."))
    assert result is not None and result.source == "feed-summary"
    in_cap = extract_page(article + b"<!--" + b"x" * 150_000 + b"-->", URL, item(summary="Feed summary."))
    assert in_cap is not None and in_cap.source == "page"


def test_page_with_a_huge_tree_still_gives_its_article():
    # 60k+ elements: beyond baseline_above_elements, so the linear baseline runs
    filler = b"<div><p>filler line of text</p></div>" * 30_000
    huge = page("border_crossing.html").replace(b"</body>", filler + b"</body>")
    result = extract_page(huge, URL)
    assert result is not None and result.source == "page"
    assert "Spin Boldak" in result.text
    assert result.title == "Chaman crossing reopens to trade after three-week closure"


def test_extractor_exception_becomes_a_fallback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("lxml exploded")

    monkeypatch.setattr(extract, "_extract_from_html", broken)  # no real input reliably crashes trafilatura
    result = extract_page(page("border_crossing.html"), URL, item(content="Feed content of the story."))
    assert result is not None and result.source == "feed-content"


def test_byte_order_mark_beats_a_wrong_header_charset():
    raw = b"\xef\xbb\xbf" + page("urdu_talks.html")
    result = extract_page(raw, "https://sarhad.example/talks", charset="iso-8859-1")
    assert result is not None and "استنبول" in result.text


# --- the precision pass and the metadata shortcut ---------------------------------------------

def test_teasers_inside_the_article_are_dropped():
    # the article container also holds an upper-case promo and two linked teasers of other stories
    result = extract_page(page("border_crossing_teasers.html"), URL, precision_pass=True)
    assert result is not None and result.source == "page"
    assert "around 400 vehicles loaded with fresh fruit" in result.text
    assert result.text.rstrip().endswith("armed groups across the frontier.")
    for teaser in ("FLOUR PRICES CLIMB", "Provincial cabinet approves", "40 new ambulances",
                   "writes our business editor", "FRONTIER LEDGER APP"):
        assert teaser not in result.text, teaser


def _count_passes(monkeypatch) -> list[bool]:
    """favor_precision of every trafilatura.bare_extraction call extract_page makes."""
    import trafilatura

    calls: list[bool] = []
    real = trafilatura.bare_extraction

    def spy(*args, **kwargs):
        calls.append(bool(kwargs.get("favor_precision")))
        return real(*args, **kwargs)

    monkeypatch.setattr(trafilatura, "bare_extraction", spy)
    return calls


def test_precision_pass_runs_when_the_text_opens_with_the_headline(monkeypatch):
    calls = _count_passes(monkeypatch)
    extract_page(page("border_crossing_teasers.html"), URL, precision_pass=True)
    assert calls == [False, True]


def test_precision_pass_is_off_by_default(monkeypatch):
    # the trade-off of docs/accuracy.md: one pass, so this page keeps its in-article teasers
    calls = _count_passes(monkeypatch)
    result = extract_page(page("border_crossing_teasers.html"), URL)
    assert calls == [False]
    assert result is not None and "FLOUR PRICES CLIMB" in result.text


def test_no_precision_pass_when_the_text_does_not_open_with_the_headline(monkeypatch):
    calls = _count_passes(monkeypatch)
    raw = page("border_crossing_teasers.html")
    headline = b"<h1>Chaman crossing reopens to trade after three-week closure</h1>"
    assert headline in raw
    result = extract_page(raw.replace(headline, b""), URL, precision_pass=True)
    assert result is not None and "around 400 vehicles" in result.text
    assert calls == [False]


@pytest.mark.parametrize(("text", "title", "expected"), [
    ("Chaman crossing reopens to trade\nCHAMAN — The main", "Chaman crossing reopens to trade | Frontier Ledger", True),
    ("CHAMAN CROSSING REOPENS TO TRADE!\nbody", "Chaman crossing reopens to trade", True),
    ("CHAMAN — The main border crossing reopened\nbody", "Chaman crossing reopens to trade", False),
    ("Home\nbody", "Home", False),  # too short to tell a headline from a menu item
    ("Chaman crossing reopens to trade\nbody", None, False),
])
def test_opens_with_headline(text, title, expected):
    assert extract._opens_with_headline(text, title) is expected


@pytest.mark.parametrize("name", ["border_crossing.html", "border_crossing_teasers.html", "cricket_cp1252.html",
                                  "urdu_talks.html", "paywall.html"])
def test_metadata_as_trafilaturas_own(name):
    # _metadata runs trafilatura.metadata's helpers itself (no categories, tags, licence); guard
    # against a trafilatura upgrade changing them under us
    import trafilatura
    from trafilatura.settings import set_date_params
    from trafilatura.utils import load_html

    raw = page(name)
    result = extract_page(raw, URL)
    expected = trafilatura.extract_metadata(load_html(extract._decode(raw, None)), URL, set_date_params(False))
    assert result is not None
    assert (result.title, result.author, result.published, result.sitename) == (
        expected.title, expected.author, expected.date, expected.sitename)

"""pipelines.trafilatura_shortcuts gives trafilatura's own results, cheaper.

Each shortcut is compared with the trafilatura function it stands in for: on small pages built
to hit each rule, on every fixture page, and on the shared benchmark pages when they are present.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trafilatura
from lxml import html as lxml_html
from trafilatura import core
from trafilatura.metadata import extract_author as trafilatura_author
from trafilatura.utils import load_html as trafilatura_load_html

from pipelines import extract
from pipelines import trafilatura_shortcuts as shortcuts

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAGES = sorted([*FIXTURES.joinpath("pages").glob("*.html"), *FIXTURES.joinpath("coverage").rglob("*.html")])
OPTIONS = extract.EXTRACTION_OPTIONS["trafilatura"]


def shared_pages() -> list:
    from bench.common import load_pages

    pages = load_pages()
    if not pages:
        pytest.skip("../shared/data/extraction is absent")
    return pages


def tree_of(markup: str):
    tree = shortcuts.load_html(markup)
    assert tree is not None
    return tree


def wrap(body: str) -> str:
    return f"<html><head><title>t</title></head><body><article><p>{'Words of the story. ' * 20}</p>{body}</article></body></html>"


# --- author ---------------------------------------------------------------------------------

BYLINES = {
    "rel author link": '<p>By <a rel="author" href="/people/farah">Farah Siddiqui</a></p>',
    "class author-name": '<span class="story-author-name">Imran Baloch</span>',
    "byline class, second expression": '<div class="byline">Reporting by Nadia Karim</div>',
    "id contains author": '<h4 id="post-author-box">Zarmina Wali</h4>',
    "last resort: writer class on any tag": '<em class="writer">Omar Farooq</em>',
    "last resort: data-component": '<section data-component="Byline">Hina Qadir</section>',
    "author element": "<author>Sami Yusuf</author>",
    "rel child says me": "<div><rel>me</rel>Tariq Aziz</div>",
    "comment thread is pruned": '<div class="comments"><span class="author">A Commenter</span></div>'
                                '<span class="byline">Laila Noor</span>',
    "date inside the byline is pruned, its tail kept": '<p class="author">By Ayesha Khan<time>3 Nov</time>, Quetta</p>',
    "tail merges with no space": '<div class="author-name">By<time>x</time>Bilal Shah</div>',
    "figure credit is pruned": '<figure><figcaption class="author">Photo: Wire</figcaption></figure>'
                               '<span class="author">Rabia Gul</span>',
    "sidebar author box is pruned": '<aside><div class="sidebar"><a class="author">Other Writer</a></div></aside>',
    "too long to be a name": f'<div class="author">{"Long biography text. " * 10}</div>',
    "no byline at all": "<p>Nothing here names a writer.</p>",
    "upper-case Author class": '<span class="Author">Kamran Ali</span>',
}


@pytest.mark.parametrize("body", BYLINES.values(), ids=BYLINES.keys())
def test_author_as_trafilaturas_own(body):
    markup = wrap(body)
    assert shortcuts.extract_author(tree_of(markup)) == trafilatura_author(trafilatura_load_html(markup))


def test_the_bylines_above_do_find_authors():
    # the comparison above would pass on two functions that both always say None
    found = [shortcuts.extract_author(tree_of(wrap(body))) for body in BYLINES.values()]
    assert sum(1 for author in found if author) >= 10
    assert shortcuts.extract_author(tree_of(wrap(BYLINES["comment thread is pruned"]))) == "Laila Noor"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_author_as_trafilaturas_own_on_fixture_pages(path):
    markup = extract._decode(path.read_bytes(), None)
    assert shortcuts.extract_author(tree_of(markup)) == trafilatura_author(trafilatura_load_html(markup))


def test_author_as_trafilaturas_own_on_the_shared_pages():
    differ = [page.url for page in shared_pages()
              if shortcuts.extract_author(tree_of(extract._decode(page.html, None)))
              != trafilatura_author(trafilatura_load_html(extract._decode(page.html, None)))]
    assert differ == []


# --- parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_parse_gives_trafilaturas_tree(path):
    markup = extract._decode(path.read_bytes(), None)
    ours, theirs = shortcuts.load_html(markup), trafilatura_load_html(markup)
    assert isinstance(ours, lxml_html.HtmlElement)
    assert lxml_html.tostring(ours) == lxml_html.tostring(theirs)


@pytest.mark.parametrize("markup", ["just a line of text", "<p>one block</p>"])
def test_parse_refuses_what_trafilatura_refuses(markup):
    assert trafilatura_load_html(markup) is None
    assert shortcuts.load_html(markup) is None


def test_parse_of_markup_declaring_an_encoding():
    markup = '<?xml version="1.0" encoding="utf-8"?><html><body><p>Kabul talks resume</p></body></html>'
    ours, theirs = shortcuts.load_html(markup), trafilatura_load_html(markup)
    assert ours is not None and lxml_html.tostring(ours) == lxml_html.tostring(theirs)


# --- the readability comparison ---------------------------------------------------------------

def count_comparisons(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = core.compare_extraction

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "compare_extraction", spy)
    return calls


def balanced(tree, url: str, *, ours: bool) -> str:
    if ours:
        result = trafilatura.bare_extraction(tree, options=shortcuts.extractor(url=url, **OPTIONS))
    else:
        result = trafilatura.bare_extraction(tree, url=url, **OPTIONS)
    return result.text if result is not None else ""


def test_long_clean_text_skips_readability_with_the_same_result(monkeypatch):
    tree = tree_of(extract._decode((FIXTURES / "pages" / "border_crossing.html").read_bytes(), None))
    calls = count_comparisons(monkeypatch)
    plain = balanced(tree, "https://frontier-ledger.example/a", ours=False)
    assert len(calls) == 1  # trafilatura on its own consults readability
    fast = balanced(tree, "https://frontier-ledger.example/a", ours=True)
    assert len(calls) == 1  # newsmon's extractor did not
    assert fast == plain and "400 vehicles" in fast


def test_short_text_still_gets_readability_and_justext(monkeypatch):
    markup = "<html><body><div><p>Border reopens.</p></div><div>Traders wait at the gate.</div></body></html>"
    calls = count_comparisons(monkeypatch)
    fast = balanced(tree_of(markup), "https://x.example/a", ours=True)
    assert len(calls) == 1
    assert fast == balanced(tree_of(markup), "https://x.example/a", ours=False)


def test_plain_trafilatura_calls_are_left_alone(monkeypatch):
    shortcuts.install()
    calls = count_comparisons(monkeypatch)
    markup = extract._decode((FIXTURES / "pages" / "border_crossing.html").read_bytes(), None)
    assert trafilatura.extract(markup) and len(calls) == 1


def test_shortcut_changes_few_shared_pages():
    # only readability's length rule is skipped; on the benchmark that changed 3 pages of 197
    # (all for the better, docs/decisions.md); many more would mean trafilatura changed under us
    pages = shared_pages()
    differ = 0
    for page in pages:
        tree = tree_of(extract._decode(page.html, None))
        differ += balanced(tree, page.url, ours=True) != balanced(tree, page.url, ours=False)
    assert differ <= 4

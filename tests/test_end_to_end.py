"""End to end over a real local HTTP server: the sample coverage through a whole cycle, twice.

The first cycle must store the expected articles with their topics and fire the
expected alerts; the second must use conditional GET (checked in the server's
request log), store nothing new and fire nothing again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cycle import open_context, run_cycle
from pipelines.demo import COVERAGE_DIR, write_demo_config
from pipelines.identity import canonical_url, doc_id
from pipelines.netguard import NetworkPolicy
from tests.dags.airflow_helpers import coverage_routes
from tests.localserver import LocalServer

REPO = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((COVERAGE_DIR / "manifest.json").read_text(encoding="utf-8"))


def coverage_server() -> LocalServer:
    """The sample coverage on a real local server (routes shared with the Airflow tests)."""
    server = LocalServer()
    server.routes.update(coverage_routes(server.base))
    return server


@pytest.fixture
def monitored(tmp_path):
    """Two cycles over the coverage: yields (server, ctx, first report, second report)."""
    with coverage_server() as server:
        config_dir = write_demo_config(REPO / "config", tmp_path / "config", server.base)
        ctx = open_context(str(config_dir), f"sqlite:///{tmp_path / 'store.db'}",
                           policy=NetworkPolicy(allow=["127.0.0.0/8"]), base_dir=str(tmp_path))
        try:
            first = run_cycle(ctx)
            second = run_cycle(ctx)
            yield server, ctx, first, second
        finally:
            ctx.close()


def item_url(server: LocalServer, item: dict) -> str:
    return server.base + item["item_link_path"]


def test_first_cycle_stores_expected_articles_and_topics(monitored):
    server, ctx, first, _ = monitored
    assert first.feeds_failed == 0, first.errors
    stored = 0
    for item in MANIFEST["items"]:  # the syndicated copy is a rewrite, so it is stored too (same story)
        article = ctx.store.get_article(doc_id(canonical_url(item_url(server, item))))
        assert article is not None, f"not stored: {item['item_link_path']}"
        stored += 1
        missing = set(item["expected_topics"]) - set(article.topic_ids())
        assert not missing, f"{item['item_link_path']}: topics {article.topic_ids()} lack {missing}"
        assert article.relevant == item["on_topic"], item["item_link_path"]
        if item["page"] is None:
            assert article.extraction_source.startswith("feed"), "404 page must fall back to the feed text"
        else:
            assert article.extraction_source == "page"
    assert first.articles_stored == stored == ctx.store.count_articles()


def test_syndicated_copy_joins_the_original_story(monitored):
    server, ctx, _, _ = monitored
    copy = next(i for i in MANIFEST["items"] if i["duplicate_of"])
    original = next(i for i in MANIFEST["items"] if i["item_link_path"] == copy["duplicate_of"]
                    or i["page"] and copy["duplicate_of"].endswith(i["page"].split("/")[-1]))
    original_article = ctx.store.get_article(doc_id(canonical_url(item_url(server, original))))
    copy_article = ctx.store.get_article(doc_id(canonical_url(item_url(server, copy))))
    assert copy_article.story_id == original_article.story_id
    story = ctx.store.get_story(original_article.story_id)
    assert story["copies"] == 2, story
    assert len(ctx.store.list_alerts(limit=500)) == len({(a.rule_id, a.story_id, a.development)
                                                         for a in ctx.store.list_alerts(limit=500)})


def test_expected_alerts_fire_once(monitored):
    server, ctx, first, second = monitored
    alerts = ctx.store.list_alerts(limit=500)
    fired = {(a.story_id, a.development) for a in alerts}
    notified_events = {a.event_id for a in alerts if a.event_id}
    for item in MANIFEST["items"]:
        article = ctx.store.get_article(doc_id(canonical_url(item_url(server, item))))
        if item["development"] and article is not None:
            # Its own alert, or the alert of the development event it joined (another outlet was first).
            assert (article.story_id, item["development"]) in fired or article.event_id in notified_events, \
                f"no {item['development']} alert for {item['item_link_path']}"
        if not item["on_topic"] and article is not None:
            assert all(a.story_id != article.story_id for a in alerts), \
                f"off-topic item alerted: {item['item_link_path']}"
    keys = [(a.rule_id, a.story_id, a.development) for a in alerts]
    assert len(keys) == len(set(keys))
    assert first.alerts_fired == len(alerts) > 0
    assert second.alerts_fired == 0
    lines = (Path(ctx.notifier.base_dir) / "var" / "alerts.jsonl").read_text(encoding="utf-8").splitlines() \
        if hasattr(ctx.notifier, "base_dir") else []
    if lines:
        assert len({json.loads(line)["id"] for line in lines}) == len(lines), "an alert was delivered twice"


def test_second_cycle_is_conditional_and_stores_nothing(monitored):
    server, ctx, first, second = monitored
    for feed in ("/feeds/frontier-wire.xml", "/feeds/kabul-ledger.atom", "/feeds/world-desk.xml"):
        requests = server.requests_for(feed)
        assert len(requests) == 2, feed
        assert "If-None-Match" not in requests[0].headers
        assert requests[1].headers.get("If-None-Match"), f"{feed}: second poll was not conditional"
        assert requests[1].headers.get("If-Modified-Since"), f"{feed}: no If-Modified-Since"
    assert second.feeds_not_modified >= 3
    assert second.items_new == 0 and second.articles_stored == 0
    assert ctx.store.count_articles() == first.articles_stored


def test_xss_item_is_stored_as_text(monitored):
    server, ctx, _, _ = monitored
    item = next(i for i in MANIFEST["items"] if i.get("xss"))
    article = ctx.store.get_article(doc_id(canonical_url(item_url(server, item))))
    assert article is not None
    hits = ctx.store.search(None, limit=50)
    assert hits
    for hit in hits:
        assert "<script" not in hit.snippet and "<img" not in hit.snippet


@pytest.mark.parametrize("precision_pass", [False, True])
def test_newsmon_yaml_precision_pass_reaches_extraction(tmp_path, monkeypatch, precision_pass):
    import pipelines.extract

    seen: list[bool] = []
    real = pipelines.extract.extract_page

    def spy(*args, **kwargs):
        seen.append(kwargs["precision_pass"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipelines.extract, "extract_page", spy)
    with coverage_server() as server:
        config_dir = write_demo_config(REPO / "config", tmp_path / "config", server.base)
        settings_file = config_dir / "newsmon.yaml"
        settings_text = settings_file.read_text(encoding="utf-8")
        assert "precision_pass: false" in settings_text
        settings_file.write_text(settings_text.replace("precision_pass: false", f"precision_pass: {str(precision_pass).lower()}"),
                                 encoding="utf-8")
        ctx = open_context(str(config_dir), f"sqlite:///{tmp_path / 'store.db'}",
                           policy=NetworkPolicy(allow=["127.0.0.0/8"]), base_dir=str(tmp_path))
        try:
            report = run_cycle(ctx)
        finally:
            ctx.close()
    assert report.articles_stored > 0 and seen and set(seen) == {precision_pass}


# --- an article's source is the outlet ---------------------------------------------------------------

# demo-feeds.yaml names three feeds; border-bulletin has no name, so its feed document's title counts.
EXPECTED_SOURCES = {"frontier-wire": "Frontier Wire", "kabul-ledger": "Kabul Ledger", "world-desk": "World Desk",
                    "border-bulletin": "Border Bulletin"}


def test_each_article_source_is_its_outlet(monitored):
    server, ctx, _, _ = monitored
    for item in MANIFEST["items"]:
        article = ctx.store.get_article(doc_id(canonical_url(item_url(server, item))))
        # pages without og:site_name (World Desk) and the 404 page (feed text) are named too, never by host
        assert article.source == EXPECTED_SOURCES[item["feed_id"]], item["item_link_path"]


def _one_page_site(server, *, feed_title: str, site_name: str, headline: str) -> None:
    from tests.localserver import Route

    page = (f"<html><head><title>{headline}</title><meta property='og:title' content='{headline}'>"
            f"<meta property='og:site_name' content='{site_name}'></head><body><article><h1>{headline}</h1>"
            + "<p>The Fund said the staff-level agreement with Pakistan would unlock a further tranche of the "
              "loan programme once the board approves it, citing progress on revenue and energy reforms.</p>" * 3
            + "</article></body></html>")
    title = f"<title>{feed_title}</title>" if feed_title else ""
    rss = (f'<?xml version="1.0"?><rss version="2.0"><channel>{title}<item><title>{headline}</title>'
           f"<link>{server.base}/page.html</link><guid>imf-1</guid></item></channel></rss>")
    server.routes["/feed.xml"] = Route(body=rss.encode(), content_type="application/rss+xml")
    server.routes["/page.html"] = Route(body=page.encode(), content_type="text/html; charset=utf-8")


@pytest.mark.parametrize(("name", "feed_title", "site_name", "expected"), [
    ("IMF", "IMF News", "IMF staff reaches agreement with Pakistan", "IMF"),  # feeds.yaml name first
    (None, "IMF News", "IMF staff reaches agreement with Pakistan", "IMF News"),  # then the feed's title
    (None, "", "International Monetary Fund", "International Monetary Fund"),  # then the page's site name
    (None, "", "IMF staff reaches agreement with Pakistan", "127.0.0.1"),  # ...unless it is the headline
])
def test_source_falls_back_from_name_to_feed_title_to_site_name_to_host(tmp_path, name, feed_title, site_name,
                                                                        expected):
    from tests.localserver import LocalServer

    headline = "IMF staff reaches agreement with Pakistan"
    with LocalServer() as server:
        _one_page_site(server, feed_title=feed_title, site_name=site_name, headline=headline)
        config_dir = write_demo_config(REPO / "config", tmp_path / "config", server.base)
        named = f"\n    name: {name}" if name else ""
        (config_dir / "feeds.yaml").write_text(
            f"feeds:\n  - id: imf{named}\n    url: {server.base}/feed.xml\n    desk: diplomacy\n", encoding="utf-8")
        ctx = open_context(str(config_dir), f"sqlite:///{tmp_path / 'store.db'}",
                           policy=NetworkPolicy(allow=["127.0.0.0/8"]), base_dir=str(tmp_path))
        try:
            report = run_cycle(ctx)
            article = ctx.store.get_article(doc_id(canonical_url(f"{server.base}/page.html")))
        finally:
            ctx.close()
    assert report.articles_stored == 1, report.errors
    assert (article.title, article.source) == (headline, expected)


@pytest.mark.parametrize(("sitename", "url", "expected"), [
    ("Dawn", "https://www.imf.org/x", "Dawn"),
    ("IMF staff reaches agreement with Pakistan", "https://www.imf.org/x", "www.imf.org"),  # the headline
    ("imf staff reaches agreement with pakistan!", "https://www.imf.org/x", "www.imf.org"),  # in other case
    ("IMF staff reaches agreement with Pakistan | IMF", "https://www.imf.org/x", "www.imf.org"),  # + a suffix
    ("IMF Pakistan", "https://www.imf.org/x", "IMF Pakistan"),  # a short name sharing the first word stays
    ("www.imf.org", "https://www.imf.org/x", "www.imf.org"),
    ("127.0.0.1:34547", "http://127.0.0.1:34547/x", "127.0.0.1"),  # trafilatura's host:port is no name
    (None, "https://www.imf.org/x", "www.imf.org"), ("  ", "https://www.imf.org/x", "www.imf.org"),
])
def test_page_site_name_counts_only_when_it_names_a_site(sitename, url, expected):
    from pipelines.cycle import article_source
    from pipelines.models import ExtractedPage, FeedConfig, FeedItem

    headline = "IMF staff reaches agreement with Pakistan"
    item = FeedItem(feed_id="imf", item_id="1", link=url, title=headline)
    page = ExtractedPage(url=url, text="...", title=headline, sitename=sitename)
    feed = FeedConfig(id="imf", url="https://www.imf.org/feed", desk="diplomacy")
    assert article_source(feed, item, page, url) == expected

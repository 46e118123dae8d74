"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The server is uvicorn on 127.0.0.1 with the app mounted under /newsmon, the way Airflow's
api-server mounts plugin apps, over a copy of the store the real pipeline filled from the
sample coverage (plus hostile records, see conftest.py). Screenshots of every page go to
tests/artifacts/ (gitignored).

Without /usr/bin/chromium the suite skips, unless CI is set: there a missing browser fails
(the Makefile's test target installs it with scripts/ensure-chromium.sh first).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipelines.config import load_config
from pipelines.models import Alert, DevelopmentEvent, EventReport, FeedState, iso, utcnow
from pipelines.store import open_store
from pipelines.web import queries
from pipelines.web.app import PAGES, create_app
from tests.web.conftest import (
    EV_TALKS,
    EV_VIOLATED,
    HOSTILE_ARTICLE_ID,
    HOSTILE_EVIDENCE,
    HOSTILE_FEED_ID,
    HOSTILE_PLACE,
    HOSTILE_SOURCE,
    HOSTILE_STORY,
    HOSTILE_TITLE,
    copy_store,
    mounted,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PREFIX = "/newsmon"
LIVE_WAIT_MS = 10_000  # the page polls every 2 s; this is the "within seconds" bound

# Anything here after a page settles means markup from the data became live DOM.
XSS_PROBE = """() => ({
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  injected: Array.from(document.querySelectorAll('img, iframe, object, embed, [onerror], [onload]'))
    .map(el => el.outerHTML.slice(0, 160)),
  inlineScripts: Array.from(document.scripts).filter(s => !s.src).length,
  scripts: Array.from(document.scripts).map(s => s.src ? new URL(s.src).pathname : '(inline)'),
  jsLinks: Array.from(document.querySelectorAll('[href]'))
    .map(el => el.getAttribute('href')).filter(h => /^\\s*javascript:/i.test(h)),
  banner: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
})"""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(condition: bool, message: str) -> None:
    if not condition:
        if in_ci():
            pytest.fail(message + " (CI is set, so this is a failure, not a skip)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Any:
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} not found: run scripts/ensure-chromium.sh (Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed: pip install -c constraints.txt -e '.[test]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dashboard(filled, tmp_path_factory) -> Any:
    """(base URL, store URL): the app under /newsmon over a private copy of the filled store."""
    from tests.web.conftest import ServerThread

    store_url = copy_store(filled, tmp_path_factory.mktemp("browser") / "store.db")
    app = create_app(store_url, str(filled.config_dir))
    with ServerThread(mounted(app, PREFIX)) as server:
        yield server.origin + PREFIX, store_url
    app.state.dashboard.close()


class Watch:
    """Console errors, uncaught exceptions and dialogs of one page."""

    def __init__(self, page: Any):
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type in ("error", "assert") else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, url: str, ready: str | None = None) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]")
        if ready:
            self.page.wait_for_selector(ready)

    def assert_clean(self) -> dict:
        probe = self.page.evaluate(XSS_PROBE)
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"
        assert probe["pwned"] is None, f"injected script ran: window.__pwned = {probe['pwned']}"
        assert probe["injected"] == [], probe["injected"]
        assert probe["inlineScripts"] == 0 and probe["scripts"] == [f"{PREFIX}/static/app.js"], probe["scripts"]
        assert probe["jsLinks"] == [], probe["jsLinks"]
        assert probe["banner"] is None, probe["banner"]
        assert not self.errors, self.errors
        return probe


@pytest.fixture
def watch(browser) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield Watch(page)
    context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def xss_fixture_story(filled) -> str:
    """Story of the sample coverage's item whose title carries <script> (stored by the real pipeline)."""
    store = open_store(filled.store_url)
    try:
        hits = store.search("transit cargo", limit=5)
    finally:
        store.close()
    story = next((h.article.story_id for h in hits if "<script>" in h.article.title), None)
    assert story, "the coverage's XSS item must be stored"
    return story


PAGE_CHECKS = [
    ("alerts", "/", "#alert-list li"),
    ("search", "/search?q=ceasefire", "#results .result mark"),
    ("search-hostile", "/search?q=hostile", f'[data-article-id="{HOSTILE_ARTICLE_ID}"]'),
    ("stories", "/stories", "#stories tbody tr"),
    ("story-hostile", f"/stories/{HOSTILE_STORY}", "#copies tbody tr"),
    ("timeline", "/timeline", "#timeline .tl-item"),
    ("event", f"/events/{EV_VIOLATED}?desk=security", "#reports tbody tr"),
    ("event-hostile", f"/events/{EV_TALKS}", "#reports tbody tr"),
    ("topics", "/topics", "#volume-chart rect.bar"),
    ("map", "/map", "#place-map circle.place"),
    ("feeds", "/feeds", "#feeds tbody tr"),
]


@pytest.mark.parametrize("name,path,ready", PAGE_CHECKS, ids=[c[0] for c in PAGE_CHECKS])
def test_page_loads_without_errors_and_runs_no_injected_markup(dashboard, watch, name, path, ready):
    base, _ = dashboard
    watch.open(base + path, ready)
    shot(watch.page, name)
    watch.assert_clean()


def test_every_navigation_page_is_covered():
    assert {pid for pid, _path, _label in PAGES} <= {name for name, _p, _r in PAGE_CHECKS}


def test_xss_item_from_the_sample_coverage_stays_text(dashboard, watch, filled):
    base, _ = dashboard
    story = xss_fixture_story(filled)
    watch.open(f"{base}/stories/{story}", "#story-title")
    shot(watch.page, "story-xss-fixture")
    assert "<script>alert(1)</script>" in watch.page.inner_text("#story-title")
    watch.open(f"{base}/search?q=transit", "#results .result")
    assert "<script>alert(1)</script>" in watch.page.inner_text("#results")
    watch.assert_clean()


def test_hostile_fields_are_shown_as_text(dashboard, watch):
    base, _ = dashboard
    watch.open(f"{base}/search?q=hostile", f'[data-article-id="{HOSTILE_ARTICLE_ID}"]')
    result = watch.page.locator(f'[data-article-id="{HOSTILE_ARTICLE_ID}"]')
    assert HOSTILE_TITLE in result.locator("h3").inner_text()
    assert HOSTILE_SOURCE in result.locator(".meta").inner_text()
    assert result.locator("a.ext").count() == 0, "a javascript: URL must not become a link"
    watch.open(f"{base}/stories/{HOSTILE_STORY}", "#copies tbody tr")
    assert watch.page.inner_text("#story-title") == HOSTILE_TITLE
    watch.open(f"{base}/feeds", "#feeds tbody tr")
    assert HOSTILE_FEED_ID in watch.page.inner_text("#feeds")
    watch.open(f"{base}/map", "#place-list li")
    watch.page.click('#place-list li[data-place="hostile-town"]')
    assert watch.page.locator("#place-detail h2").text_content() == HOSTILE_PLACE
    watch.assert_clean()


def test_search_form_highlights_matches(dashboard, watch, filled):
    base, _ = dashboard
    watch.open(f"{base}/search?desk=security", "#results .result")
    watch.page.fill("#f-q", "ceasefire")
    watch.page.click("#search-form button[type=submit]")
    watch.page.wait_for_selector("#results .result mark")
    assert re.search(r"[?&]q=ceasefire\b", watch.page.url) and "desk=security" in watch.page.url
    marks = watch.page.locator("#results mark").all_text_contents()
    assert marks and {m.lower() for m in marks} == {"ceasefire"}
    store = open_store(filled.store_url)
    try:
        expected = store.search("ceasefire", desk="security", limit=20)
    finally:
        store.close()
    ids = watch.page.locator("#results .result").evaluate_all("els => els.map(e => e.dataset.articleId)")
    assert ids == [h.article.id for h in expected]
    assert watch.page.locator("#results .badge.desk").all_text_contents() == ["security"] * len(ids)
    watch.assert_clean()


def test_new_alert_appears_without_a_reload(dashboard, watch):
    base, store_url = dashboard
    watch.open(f"{base}/?desk=security", "#alert-list li")
    watch.page.evaluate("() => { window.__sameDocument = 'yes'; }")
    before = watch.page.locator("#alert-list li").count()
    stamp = str(time.time_ns())
    store = open_store(store_url)
    try:
        # The other desk's alert goes in first: if the desk filter were ignored it would show too.
        for desk in ("diplomacy", "security"):
            store.record_alert(Alert(
                id=f"live-{desk}-{stamp}", rule_id="live-test", desk=desk, article_id=HOSTILE_ARTICLE_ID,
                story_id=HOSTILE_STORY, title=f"Live {desk} alert {stamp}", url="https://example.org/live",
                source="Live Wire", development="ceasefire-agreed", topics=["ceasefire"], matched="test insert",
            ))
    finally:
        store.close()
    watch.page.wait_for_selector(f'#alert-list li[data-alert-id="live-security-{stamp}"]', timeout=LIVE_WAIT_MS)
    first = watch.page.locator("#alert-list li").first
    assert first.get_attribute("data-alert-id") == f"live-security-{stamp}"
    assert "fresh" in (first.get_attribute("class") or "")
    assert watch.page.locator(f'[data-alert-id="live-diplomacy-{stamp}"]').count() == 0
    assert watch.page.locator("#alert-list li").count() == before + 1
    assert watch.page.evaluate("() => window.__sameDocument") == "yes", "the page reloaded"
    shot(watch.page, "alerts-live")
    watch.assert_clean()


def test_desk_filter_stays_in_the_url_across_pages(dashboard, watch):
    base, _ = dashboard
    watch.open(f"{base}/timeline?desk=security", "#timeline .tl-item")
    hrefs = watch.page.locator("nav.nav a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert len(hrefs) == len(PAGES) and all(h.endswith("?desk=security") for h in hrefs), hrefs
    assert watch.page.input_value("#desk-filter") == "security"
    store = open_store(dashboard[1])
    try:
        notified = {a.event_id for a in store.list_alerts(limit=1000) if a.desk == "security" and a.event_id}
        expected = [e.id for e in store.list_events(limit=1000, newest_first=True) if e.id in notified]
    finally:
        store.close()
    rows = watch.page.locator("#timeline .tl-item").evaluate_all("els => els.map(e => e.dataset.eventId)")
    assert rows == expected and EV_TALKS not in rows  # the talks event went to the diplomacy desk only
    event_links = watch.page.locator("#timeline .tl-item a.event-link").evaluate_all(
        "els => els.map(a => a.getAttribute('href'))")
    assert event_links and all(urlsplit(h).query == "desk=security" for h in event_links)
    watch.page.click("nav.nav >> text=Search")
    watch.page.wait_for_selector("body[data-ready=true]")
    assert watch.page.url.endswith(f"{PREFIX}/search?desk=security")
    watch.page.select_option("#desk-filter", "diplomacy")
    watch.page.wait_for_url(re.compile(r"/search\?desk=diplomacy$"))
    watch.page.wait_for_selector("body[data-ready=true] #results .result")
    assert set(watch.page.locator("#results .badge.desk").all_text_contents()) == {"diplomacy"}
    story_link = urlsplit(watch.page.locator("#results .result h3 a").first.get_attribute("href"))
    assert story_link.path.startswith(f"{PREFIX}/stories/") and story_link.query == "desk=diplomacy"
    watch.assert_clean()


def test_topic_legend_hides_a_topic(dashboard, watch):
    base, _ = dashboard
    watch.open(f"{base}/topics", "#volume-chart rect.bar")
    bars = watch.page.locator("#volume-chart rect.bar").count()
    watch.page.locator("#volume-legend button").first.click()
    assert watch.page.locator("#volume-legend button").first.get_attribute("aria-pressed") == "false"
    assert 0 < watch.page.locator("#volume-chart rect.bar").count() < bars
    watch.assert_clean()


def test_dashboard_at_the_root_path_too(filled, browser, server_factory):
    """`newsmon serve` runs the app unmounted: the same pages must work at /."""
    app = create_app(filled.store_url, str(filled.config_dir))
    server = server_factory(app)
    context = browser.new_context()
    try:
        page = context.new_page()
        watch = Watch(page)
        watch.open(server.origin + "/search?q=talks", "#results .result mark")
        probe = page.evaluate(XSS_PROBE)
        assert probe["scripts"] == ["/static/app.js"] and probe["pwned"] is None and not watch.errors
        page.click("nav.nav >> text=Alerts")
        page.wait_for_selector("body[data-ready=true] #alert-list li")
        assert page.url == server.origin + "/" and not watch.errors and not watch.dialogs
    finally:
        context.close()
        app.state.dashboard.close()


def test_content_security_policy_blocks_markup_that_slips_in(dashboard, watch):
    """Defence in depth: even markup injected by a bug must not run (inline handler and inline script)."""
    base, _ = dashboard
    watch.open(base + "/", "#alert-list li")
    watch.page.evaluate("""() => {
        window.__violations = 0;
        document.addEventListener('securitypolicyviolation', () => { window.__violations += 1; });
        const holder = document.createElement('div');
        holder.innerHTML = '<img src="data:," onerror="window.__csp = 1" onload="window.__csp = 2">';
        document.body.appendChild(holder);
        const script = document.createElement('script');
        script.textContent = 'window.__csp = 3';
        document.body.appendChild(script);
    }""")
    watch.page.wait_for_function("() => window.__violations >= 2")
    assert watch.page.evaluate("() => window.__csp === undefined")
    assert not watch.dialogs


# --- development events ---------------------------------------------------------------------------


def test_event_page_lists_every_report_in_the_desks_time_zone(dashboard, watch):
    base, store_url = dashboard
    store = open_store(store_url)
    try:
        event = store.get_event(EV_VIOLATED)
    finally:
        store.close()
    watch.open(f"{base}/timeline?desk=security", f'#timeline .tl-item[data-event-id="{EV_VIOLATED}"]')
    row = watch.page.locator(f'#timeline .tl-item[data-event-id="{EV_VIOLATED}"]')
    text = row.text_content()
    assert "ceasefire: in-force → violated" in text and "corroborated by 3" in text
    assert "first reported by Frontier Wire at 2025-11-12 08:10 PKT" in text  # 03:10Z in Karachi
    row.locator("a.event-link").click()
    watch.page.wait_for_selector("body[data-ready=true] #reports tbody tr")
    assert urlsplit(watch.page.url).path == f"{PREFIX}/events/{EV_VIOLATED}"
    assert watch.page.inner_text("#event-status") == "corroborated by 3"
    assert watch.page.inner_text("#event-transition") == "ceasefire: in-force → violated"
    assert watch.page.inner_text("#event-outlets") == "3"
    rows = watch.page.locator("#reports tbody tr")
    assert rows.count() == len(event.reports) == 4
    assert rows.evaluate_all("els => els.map(e => e.dataset.mode)") == [r.mode for r in event.reports]
    outlets = watch.page.locator("#reports tbody tr td:nth-child(2)").all_text_contents()
    assert outlets == [r.outlet for r in event.reports]
    links = watch.page.locator("#reports a.report-title").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert links == [r.url for r in event.reports]
    assert "PKT" in rows.first.inner_text() and "Torkham" in watch.page.inner_text("#event-facts")
    shot(watch.page, "event-violated")
    watch.assert_clean()


def test_hostile_report_on_the_event_page_is_text(dashboard, watch):
    base, _ = dashboard
    watch.open(f"{base}/events/{EV_TALKS}", "#reports tbody tr")
    denied = watch.page.locator('#reports tbody tr[data-mode="denied"]')
    assert HOSTILE_SOURCE in denied.inner_text() and HOSTILE_EVIDENCE in denied.inner_text()
    assert HOSTILE_TITLE in denied.locator(".report-title").inner_text()
    assert denied.locator("a.report-title").count() == 0, "a javascript: URL must not become a link"
    assert watch.page.inner_text("#event-status") == "disputed"
    watch.assert_clean()


def test_unknown_event_page_says_so(dashboard, watch):
    base, _ = dashboard
    watch.open(f"{base}/events/no-such-event", "#event-missing")
    assert "no event no-such-event" in watch.page.inner_text("#event-missing")
    assert not watch.errors or all("404" in e for e in watch.errors)  # the failed fetch is logged by the browser


def test_event_alert_card_shows_reach_times_and_links_to_the_event(dashboard, watch):
    base, _ = dashboard
    watch.open(f"{base}/?desk=security", '#alert-list li[data-alert-id="ev-alert-violated"]')
    card = watch.page.locator('#alert-list li[data-alert-id="ev-alert-violated"]')
    text = card.text_content()
    assert "3 outlets; first reported by Frontier Wire at 2025-11-12 08:10 PKT" in text
    assert "published 2025-11-12 08:10 PKT · first seen 2025-11-12 08:17 PKT" in text
    assert "rules ceasefire-status, border-clashes" in text and card.get_attribute("data-kind") == "event"
    badge = watch.page.locator('[data-alert-id="ev-alert-violated-3"] .badge.kind').text_content()
    assert badge == "escalation · corroborated 3"
    card.locator("a.event-link").click()
    watch.page.wait_for_selector("body[data-ready=true] #reports tbody tr")
    assert urlsplit(watch.page.url).path == f"{PREFIX}/events/{EV_VIOLATED}"
    assert urlsplit(watch.page.url).query == "desk=security"
    watch.assert_clean()


def test_side_panels_refresh_without_a_reload(dashboard, watch, filled):
    """Latest developments and feed health follow the store on the alert list's own poll."""
    base, store_url = dashboard
    watch.open(f"{base}/?desk=security", "#latest-developments li")
    watch.page.evaluate("() => { window.__sameDocument = 'yes'; }")
    counts = "() => Object.fromEntries([...document.querySelectorAll('#feed-summary [data-status]')]" \
             ".map(e => [e.dataset.status, parseInt(e.textContent, 10)]))"
    before = watch.page.evaluate(counts)
    feed = next(f for f in load_config(str(filled.config_dir)).feeds
                if f.enabled and f.desk == "security" and f.id != HOSTILE_FEED_ID)
    stamp = str(time.time_ns())
    now = iso(utcnow())
    store = open_store(store_url)
    try:
        for desk in ("diplomacy", "security"):  # the other desk's event must not show on this desk's panel
            event_id = f"live-{desk}-{stamp}"
            store.save_event(DevelopmentEvent(
                id=event_id, watch="pak-afg", family="ceasefire", type="ceasefire-collapsed", opened=now, updated=now,
                state_before="violated", state_after="collapsed", reports=[EventReport(
                    article_id=HOSTILE_ARTICLE_ID, url="https://example.org/collapse", outlet="Live Wire", time=now,
                    first_seen=now, language="en", evidence=f"The truce collapsed ({desk} {stamp}).",
                    type="ceasefire-collapsed")]))
            store.record_alert(Alert(
                id=f"live-event-{desk}-{stamp}", rule_id="live-test", desk=desk, article_id=HOSTILE_ARTICLE_ID,
                story_id=HOSTILE_STORY, title=f"Truce collapsed {stamp}", url="https://example.org/collapse",
                source="Live Wire", development="ceasefire-collapsed", topics=["ceasefire"], matched="test insert",
                event_id=event_id, kind="event"))
        old = store.get_feed_state(feed.id) or FeedState(feed_id=feed.id)
        old_status = queries.feed_health([old], [feed])[0]["status"]
        assert old_status != "failing"
        store.save_feed_state(FeedState(feed_id=feed.id, last_polled=now, last_success=old.last_success,
                                        last_error=f"HTTP 503 live {stamp}", last_status=503, error_count=1))
    finally:
        store.close()
    watch.page.wait_for_selector(f'#latest-developments li[data-event-id="live-security-{stamp}"]',
                                 timeout=LIVE_WAIT_MS)
    first = watch.page.locator("#latest-developments li").first
    assert first.get_attribute("data-event-id") == f"live-security-{stamp}"
    assert "1 outlet; first reported by Live Wire" in first.inner_text()
    assert watch.page.locator(f'[data-event-id="live-diplomacy-{stamp}"]').count() == 0
    watch.page.wait_for_selector(f'#feeds-panel li[data-feed-id="{feed.id}"]', timeout=LIVE_WAIT_MS)
    assert f"HTTP 503 live {stamp}" in watch.page.locator(f'#feeds-panel li[data-feed-id="{feed.id}"]').text_content()
    after = watch.page.evaluate(counts)
    assert after.get("failing", 0) == before.get("failing", 0) + 1
    assert after.get(old_status, 0) == before.get(old_status, 0) - 1
    assert watch.page.evaluate("() => window.__sameDocument") == "yes", "the page reloaded"
    shot(watch.page, "alerts-live-panels")
    watch.assert_clean()


def test_search_collapses_by_event(dashboard, watch, filled):
    base, _ = dashboard
    watch.open(f"{base}/search?q=Torkham", "#results .result")
    everything = watch.page.locator("#results .result").count()
    watch.page.select_option("#f-collapse", "event")
    watch.page.click("#search-form button[type=submit]")
    watch.page.wait_for_url(re.compile(r"collapse=event"))
    watch.page.wait_for_function(f"() => document.querySelectorAll('#results .result').length < {everything}")
    store = open_store(filled.store_url)
    try:
        expected = store.search("Torkham", limit=20, collapse="event")
    finally:
        store.close()
    ids = watch.page.locator("#results .result").evaluate_all("els => els.map(e => e.dataset.articleId)")
    assert ids == [h.article.id for h in expected]
    assert "one per event" in watch.page.inner_text("#results-info")
    event_links = watch.page.locator("#results a.event-link").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert sum(1 for h in event_links if h.split("?")[0].endswith(f"/events/{EV_VIOLATED}")) == 1
    watch.assert_clean()

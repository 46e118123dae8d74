"""The dashboard's JSON API and page shells, through FastAPI's TestClient over the real filled store.

Expected values are computed from the store itself (or the coverage manifest), never typed in.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from datetime import UTC, datetime

import pytest

from pipelines.demo import COVERAGE_DIR
from pipelines.identity import canonical_url, doc_id
from pipelines.models import FeedConfig, FeedState
from pipelines.store import open_store
from pipelines.web import queries
from pipelines.web.app import PAGES, create_app
from tests.web.conftest import (
    HOSTILE_ARTICLE_ID,
    HOSTILE_FEED_ID,
    HOSTILE_PLACE,
    HOSTILE_STORY,
    HOSTILE_TITLE,
    mounted,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2; httpx is what is installed
    from fastapi.testclient import TestClient

MANIFEST = json.loads((COVERAGE_DIR / "manifest.json").read_text(encoding="utf-8"))
API_PATHS = {"/api/health", "/api/meta", "/api/alerts", "/api/alerts/{alert_id}", "/api/search",
             "/api/articles/{article_id}", "/api/stories", "/api/stories/{story_id}", "/api/timeline",
             "/api/topics/volume", "/api/places", "/api/feeds"}


@pytest.fixture(scope="module")
def store(filled):
    opened = open_store(filled.store_url)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def client(filled):
    app = create_app(filled.store_url, str(filled.config_dir))
    with TestClient(app) as test_client:
        yield test_client
    app.state.dashboard.close()


@pytest.fixture(scope="module")
def prefixed(filled):
    app = create_app(filled.store_url, str(filled.config_dir))
    with TestClient(mounted(app, "/newsmon")) as test_client:
        yield test_client
    app.state.dashboard.close()


def all_articles(store):
    articles, after = [], None
    while batch := store.iter_articles(after_id=after, batch=200):
        articles.extend(batch)
        after = batch[-1].id
    return articles


def article_for(filled, item):
    return doc_id(canonical_url(filled.coverage_base + item["item_link_path"]))


# --- OpenAPI, pages, headers ------------------------------------------------------------------


def test_openapi_documents_every_endpoint(client):
    doc = client.get("/openapi.json").json()
    assert API_PATHS <= set(doc["paths"]), API_PATHS - set(doc["paths"])
    snippet_doc = doc["components"]["schemas"]["SearchHitOut"]["properties"]["snippet_html"]["description"]
    assert "<mark>" in snippet_doc


def test_openapi_and_api_work_under_a_prefix(prefixed):
    doc = prefixed.get("/newsmon/openapi.json")
    assert doc.status_code == 200
    assert {"url": "/newsmon"} in doc.json().get("servers", [])
    assert prefixed.get("/newsmon/api/health").json()["status"] == "ok"


@pytest.mark.parametrize("page_id,path,label", PAGES)
def test_pages_under_a_prefix_link_inside_it_and_keep_the_desk(prefixed, page_id, path, label):
    response = prefixed.get("/newsmon" + path, params={"desk": "security"})
    assert response.status_code == 200
    body = response.text
    assert 'src="/newsmon/static/app.js?v=' in body and 'href="/newsmon/static/app.css?v=' in body
    assert f'data-page="{page_id}"' in body and 'data-root="/newsmon"' in body
    for _pid, other_path, _label in PAGES:
        assert f'href="/newsmon{other_path}?desk=security"' in body, other_path
    assert f"<title>{label} · newsmon</title>" in body
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert prefixed.get("/newsmon/static/app.js").status_code == 200


def test_story_page_escapes_the_id_and_query(client):
    response = client.get('/stories/<img src=x onerror=alert(1)>', params={"desk": '"><script>alert(1)</script>'})
    assert response.status_code == 200
    assert "<img src=x" not in response.text and "<script>alert" not in response.text
    assert 'data-story="&lt;img src=x onerror=alert(1)&gt;"' in response.text


def test_security_headers_on_every_kind_of_response(client):
    for path in ("/", "/api/alerts", "/static/app.css", "/openapi.json"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert "default-src 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
    assert client.get("/api/alerts").headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/app.css").headers.get("cache-control", "")


def test_swagger_ui_is_off_because_it_needs_a_cdn(client):
    assert client.get("/docs").status_code == 404


# --- alerts -----------------------------------------------------------------------------------


def test_alerts_newest_first_as_stored(client, store):
    data = client.get("/api/alerts", params={"limit": 500}).json()
    assert [a["id"] for a in data["alerts"]] == [a.id for a in store.list_alerts(limit=500)]
    assert data["server_time"].endswith("Z")
    created = [a["created"] for a in data["alerts"]]
    assert created == sorted(created, reverse=True)


def test_alerts_desk_filter(client, store):
    stored = store.list_alerts(limit=500)
    for desk in {a.desk for a in stored}:
        got = client.get("/api/alerts", params={"desk": desk, "limit": 500}).json()["alerts"]
        assert [a["id"] for a in got] == [a.id for a in stored if a.desk == desk], desk
    assert client.get("/api/alerts", params={"desk": "no-such-desk"}).json()["alerts"] == []


def test_alerts_since_includes_the_newest_for_pollers(client):
    alerts = client.get("/api/alerts").json()["alerts"]
    newest = alerts[0]["created"]
    since = client.get("/api/alerts", params={"since": newest}).json()["alerts"]
    assert since and all(a["created"] >= newest for a in since)
    assert alerts[0]["id"] in {a["id"] for a in since}


def test_alert_by_id_and_unknown_ids(client):
    alert = client.get("/api/alerts").json()["alerts"][0]
    assert client.get(f"/api/alerts/{alert['id']}").json() == alert
    assert client.get("/api/alerts/nope").status_code == 404


# --- search and articles ------------------------------------------------------------------------


def test_search_returns_highlighted_snippets(client):
    hits = client.get("/api/search", params={"q": "ceasefire"}).json()["hits"]
    assert hits
    for hit in hits:
        assert "<mark>" in hit["snippet_html"], hit["article"]["title"]


def test_search_snippet_of_hostile_text_is_escaped(client):
    hits = client.get("/api/search", params={"q": "hostile ceasefire"}).json()["hits"]
    hostile = [h for h in hits if h["article"]["id"] == HOSTILE_ARTICLE_ID]
    assert hostile, "the hostile article must be findable"
    snippet = hostile[0]["snippet_html"]
    assert "<script" not in snippet and "<img" not in snippet
    assert "&lt;script&gt;" in snippet or "&lt;img" in snippet
    assert hostile[0]["article"]["title"] == HOSTILE_TITLE  # the API carries text as text


@pytest.mark.parametrize("field", ["topic", "desk", "source", "language"])
def test_search_filters_match_the_store(client, store, field):
    articles = all_articles(store)
    values = Counter(
        t for a in articles for t in (a.topic_ids() if field == "topic" else [getattr(a, field)]) if t
    )
    for value in values:
        hits = client.get("/api/search", params={field: value, "limit": 100}).json()["hits"]
        assert len(hits) == values[value], (field, value)
        for hit in hits:
            got = hit["article"]["topics"] if field == "topic" else [hit["article"][field]]
            assert value in got


def test_search_date_range_is_inclusive_exclusive(client, store):
    times = sorted(queries.event_time(a) for a in all_articles(store))
    middle = times[len(times) // 2]
    since = client.get("/api/search", params={"since": middle, "limit": 100}).json()["hits"]
    until = client.get("/api/search", params={"until": middle, "limit": 100}).json()["hits"]
    assert {h["article"]["event_time"] >= middle for h in since} == {True}
    assert {h["article"]["event_time"] < middle for h in until} == {True}
    assert len(since) + len(until) == len(times)


def test_search_rejects_a_bad_date_with_one_line(client):
    response = client.get("/api/search", params={"since": "last tuesday"})
    assert response.status_code == 400
    assert "since" in response.json()["detail"] and "\n" not in response.json()["detail"]


def test_search_pages_with_offset(client):
    first = client.get("/api/search", params={"limit": 3}).json()["hits"]
    second = client.get("/api/search", params={"limit": 3, "offset": 3}).json()["hits"]
    assert len(first) == len(second) == 3
    assert not {h["article"]["id"] for h in first} & {h["article"]["id"] for h in second}


def test_article_detail(client, store):
    article = all_articles(store)[0]
    data = client.get(f"/api/articles/{article.id}").json()
    assert data["text"] == article.text and data["topics"] == article.topic_ids()
    assert client.get("/api/articles/nope").status_code == 404


# --- stories ------------------------------------------------------------------------------------


def test_story_detail_lists_every_copy(client, filled, store):
    copy = next(i for i in MANIFEST["items"] if i["duplicate_of"])
    copy_article = store.get_article(article_for(filled, copy))
    story = store.get_story(copy_article.story_id)
    data = client.get(f"/api/stories/{copy_article.story_id}").json()
    assert data["copies"] == story["copies"] >= 2
    assert sorted(a["id"] for a in data["articles"]) == sorted(story["articles"])
    assert data["sources"] == story["sources"] and data["first_seen"] == story["first_seen"]
    times = [a["event_time"] for a in data["articles"]]
    assert times == sorted(times) and data["lead"]["id"] == data["articles"][0]["id"]
    assert client.get("/api/stories/nope").status_code == 404


def test_story_list_groups_copies(client, store):
    stories = client.get("/api/stories", params={"limit": 200}).json()["stories"]
    ids = [s["id"] for s in stories]
    assert len(ids) == len(set(ids)) == len({a.story_id for a in all_articles(store)})
    for listed in stories:
        assert listed["copies"] == store.get_story(listed["id"])["copies"]
    assert client.get("/api/stories", params={"desk": "security", "limit": 200}).json()["stories"]


# --- timeline, topics, places, feeds ----------------------------------------------------------


def test_timeline_has_each_development_once_newest_first(client, store):
    expected = {(a.story_id, a.development.type) for a in all_articles(store) if a.development}
    entries = client.get("/api/timeline").json()["entries"]
    assert {(e["story_id"], e["type"]) for e in entries} == expected
    assert len(entries) == len(expected)
    times = [e["time"] for e in entries]
    assert times == sorted(times, reverse=True)
    for entry in entries:
        assert entry["article"]["url"] and entry["article"]["source"] and entry["evidence"]


def test_timeline_family_and_desk_filters(client, store):
    articles = [a for a in all_articles(store) if a.development]
    for family in ("ceasefire", "talks"):
        entries = client.get("/api/timeline", params={"family": family}).json()["entries"]
        expected = {(a.story_id, a.development.type) for a in articles
                    if queries.development_family(a.development.type) == family}
        assert {(e["story_id"], e["type"]) for e in entries} == expected, family
    entries = client.get("/api/timeline", params={"desk": "security"}).json()["entries"]
    assert {e["article"]["desk"] for e in entries} == {"security"}
    assert client.get("/api/timeline", params={"family": "weather"}).status_code == 422


def test_topic_volume_adds_up_to_the_store_counts(client, store):
    expected = Counter()
    for row in store.topic_counts():
        expected[row["topic"]] += row["count"]
    data = client.get("/api/topics/volume").json()
    assert {s["topic"]: sum(s["counts"]) for s in data["series"]} == dict(expected)
    assert all(len(s["counts"]) == len(data["buckets"]) for s in data["series"])
    buckets = [datetime.fromisoformat(b.replace("Z", "+00:00")) for b in data["buckets"]]
    steps = {b - a for a, b in zip(buckets, buckets[1:], strict=False)}
    assert len(steps) <= 1, "buckets must be evenly spaced (empty ones filled)"


def test_topic_volume_per_desk_and_hourly(client, store):
    desk_counts = Counter(t for a in all_articles(store) if a.desk == "diplomacy" for t in set(a.topic_ids()))
    data = client.get("/api/topics/volume", params={"desk": "diplomacy", "bucket": "day"}).json()
    assert data["bucket"] == "day"
    assert {s["topic"]: s["total"] for s in data["series"]} == dict(desk_counts)
    hourly = client.get("/api/topics/volume", params={"bucket": "hour", "since": "2025-10-19",
                                                      "until": "2025-10-20"}).json()
    assert hourly["bucket"] == "hour"
    assert all(b.startswith("2025-10-19T") for b in hourly["buckets"])


def test_places_count_articles_per_place(client, store):
    expected = Counter(p["id"] for a in all_articles(store) for p in {p["id"]: p for p in a.places}.values())
    data = client.get("/api/places").json()
    assert {p["id"]: p["count"] for p in data["places"]} == dict(expected)
    by_id = {p["id"]: p for p in data["places"]}
    assert by_id["hostile-town"]["name"] == HOSTILE_PLACE
    assert by_id["pakistan"]["kind"] == "country"  # kinds come from the taxonomy
    topic = client.get("/api/places", params={"topic": "trade-connectivity"}).json()
    assert topic["articles"] == len([a for a in all_articles(store) if "trade-connectivity" in a.topic_ids()])


def test_feeds_lists_configured_and_stored_feeds(client, filled, store):
    data = client.get("/api/feeds").json()
    by_id = {f["feed_id"]: f for f in data["feeds"]}
    configured = {f["id"] for f in MANIFEST["feeds"]}
    assert configured | {HOSTILE_FEED_ID} == set(by_id)
    for state in store.list_feed_states():
        row = by_id[state.feed_id]
        assert (row["items_total"], row["last_error"], row["last_status"]) == \
               (state.items_total, state.last_error, state.last_status)
    assert by_id[HOSTILE_FEED_ID]["status"] == "unconfigured" and by_id[HOSTILE_FEED_ID]["url"] is None
    assert data["config_error"] is None
    security = client.get("/api/feeds", params={"desk": "security"}).json()["feeds"]
    assert {f["desk"] for f in security} <= {"security", None}


def test_feed_status_words():
    now = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    feeds = [FeedConfig(id=i, url=f"https://example.org/{i}", desk="d", interval=300) for i in
             ("ok", "warn", "fail", "stale", "never")] + [FeedConfig(id="off", url="https://x.org", desk="d",
                                                                     enabled=False)]
    recent, old = "2025-11-01T11:58:00Z", "2025-11-01T10:00:00Z"
    states = [
        FeedState("ok", last_polled=recent, last_success=recent),
        FeedState("warn", last_polled=recent, last_success=recent, last_error="feed parsed with problems"),
        FeedState("fail", last_polled=recent, last_success=old, last_error="HTTP 503"),
        FeedState("stale", last_polled=old, last_success=old),
        FeedState("gone", last_polled=recent, last_success=recent),
    ]
    rows = {r["feed_id"]: r["status"] for r in queries.feed_health(states, feeds, now=now)}
    assert rows == {"ok": "ok", "warn": "warning", "fail": "failing", "stale": "stale", "never": "never",
                    "off": "disabled", "gone": "unconfigured"}
    order = [r["status"] for r in queries.feed_health(states, feeds, now=now)]
    assert order[0] == "failing" and order[-1] == "disabled"


def test_meta_lists_filter_choices(client, store):
    data = client.get("/api/meta").json()
    articles = all_articles(store)
    assert {d["id"] for d in data["desks"]} >= {a.desk for a in articles}
    assert {s["id"] for s in data["sources"]} == {a.source for a in articles}
    assert {lang["id"] for lang in data["languages"]} == {a.language for a in articles if a.language}
    assert all(t["name"] for t in data["topics"])
    assert data["articles"] == store.count_articles() and data["store"] == "sqlite"


# --- failures -----------------------------------------------------------------------------------


def test_unusable_store_is_a_503_with_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    app = create_app(f"sqlite:///{blocker}/sub/store.db", str(tmp_path / "no-config"))
    with TestClient(app) as test_client:
        response = test_client.get("/api/alerts")
    assert response.status_code == 503
    assert "store" in response.json()["detail"] and "\n" not in response.json()["detail"]


def test_missing_config_still_serves_the_store(filled, tmp_path):
    app = create_app(filled.store_url, str(tmp_path / "no-config"))
    with TestClient(app) as test_client:
        meta = test_client.get("/api/meta").json()
        feeds = test_client.get("/api/feeds").json()
        hits = test_client.get("/api/search", params={"q": "ceasefire"}).json()["hits"]
    app.state.dashboard.close()
    assert "no-config" in meta["config_error"]
    assert {f["status"] for f in feeds["feeds"]} == {"unconfigured"} and feeds["config_error"]
    assert hits and {d["id"] for d in meta["desks"]} >= {"security"}


def test_hostile_story_detail_is_plain_text(client):
    data = client.get(f"/api/stories/{HOSTILE_STORY}").json()
    assert data["title"] == HOSTILE_TITLE
    assert data["lead"]["url"].startswith("javascript:")  # the API does not rewrite; the pages refuse it

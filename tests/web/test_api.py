"""The dashboard's JSON API and page shells, through FastAPI's TestClient over the real filled store.

Expected values are computed from the store itself (or the coverage manifest), never typed in.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pipelines.config import load_config
from pipelines.demo import COVERAGE_DIR
from pipelines.events import status_label
from pipelines.identity import canonical_url, doc_id
from pipelines.models import FeedConfig, FeedState
from pipelines.store import open_store
from pipelines.web import queries
from pipelines.web.app import PAGES, create_app
from tests.web.conftest import (
    EV_STALLED,
    EV_TALKS,
    EV_VIOLATED,
    HOSTILE_ARTICLE_ID,
    HOSTILE_EVIDENCE,
    HOSTILE_FEED_ID,
    HOSTILE_PLACE,
    HOSTILE_SOURCE,
    HOSTILE_STORY,
    HOSTILE_TITLE,
    SEEDED_ALERTS,
    SEEDED_EVENTS,
    mounted,
    seeded_article_id,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2; httpx is what is installed
    from fastapi.testclient import TestClient

MANIFEST = json.loads((COVERAGE_DIR / "manifest.json").read_text(encoding="utf-8"))
API_PATHS = {"/api/health", "/api/meta", "/api/alerts", "/api/alerts/{alert_id}", "/api/search",
             "/api/articles/{article_id}", "/api/stories", "/api/stories/{story_id}", "/api/timeline",
             "/api/topics/volume", "/api/places", "/api/feeds", "/api/events/{event_id}"}


@pytest.fixture(scope="module")
def store(filled):
    opened = open_store(filled.store_url)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def desks(filled):
    """desk id -> DeskConfig (its time zone) from the config the dashboard reads."""
    return load_config(str(filled.config_dir)).alerts.desks


def local(value, zone_name):
    """An ISO UTC time as the desk reads it, computed here with zoneinfo (not with the app's helper)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(zone_name)).strftime("%Y-%m-%d %H:%M %Z")


def all_events(store):
    return store.list_events(limit=100_000, newest_first=True)


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
    schemas = doc["components"]["schemas"]
    assert {"kind", "rules", "event_id", "published_local", "first_seen_local", "event"} <= set(
        schemas["AlertOut"]["properties"])
    assert {"reports", "desks", "status_label", "state_before", "state_after"} <= set(
        schemas["EventDetail"]["properties"])
    assert schemas["Timeline"]["properties"]["entries"]["items"]["$ref"].endswith("/EventSummary")
    collapse = next(p for p in doc["paths"]["/api/search"]["get"]["parameters"] if p["name"] == "collapse")
    assert "story" in json.dumps(collapse) and "event" in json.dumps(collapse)


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
    refused = client.get("/api/alerts", params={"desk": "no-such-desk"})
    assert refused.status_code == 422 and "no-such-desk" in refused.json()["detail"]
    assert "security" in refused.json()["detail"]  # names the known desks


@pytest.mark.parametrize(("path", "params", "says"), [
    ("/api/search", {"topic": "ceasfire"}, "unknown topic 'ceasfire'"),
    ("/api/search", {"desk": "securty"}, "unknown desk 'securty'"),
    ("/api/places", {"topic": "nope"}, "unknown topic"),
    ("/api/stories", {"desk": "nope"}, "unknown desk"),
    ("/api/search", {"q": "("}, "unclosed '(' (at position 0)"),
    ("/api/search", {"q": "ceasefire AND"}, "(at position 13)"),
    ("/api/search", {"q": '"unterminated'}, "unclosed quote (at position 0)"),
])
def test_unknown_filters_and_malformed_queries_are_422(client, path, params, says):
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"] and "\n" not in response.json()["detail"]


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


def test_alerts_show_kind_rules_and_times_in_the_desks_time_zone(client, store, desks):
    stored = {a.id: a for a in store.list_alerts(limit=500)}
    got = client.get("/api/alerts", params={"limit": 500}).json()["alerts"]
    assert len(got) == len(stored)
    for alert in got:
        raw = stored[alert["id"]]
        zone = desks[raw.desk].timezone if raw.desk in desks else "UTC"
        assert alert["timezone"] == zone
        assert alert["kind"] == raw.kind and alert["event_id"] == raw.event_id
        assert alert["rules"] == (raw.rules or [raw.rule_id])
        assert alert["created_local"] == local(raw.created, zone)
        for key in ("published", "first_seen"):
            value = getattr(raw, key)
            assert alert[f"{key}_local"] == (local(value, zone) if value else None), key
    # The seeded alerts: the security desk reads Asia/Karachi, so these are not UTC clocks.
    assert desks["security"].timezone != "UTC"
    seeded = {a["id"]: a for a in got if a["id"] in {s[0] for s in SEEDED_ALERTS}}
    for alert_id, desk, event_id, kind, escalation, rules in SEEDED_ALERTS:
        alert = seeded[alert_id]
        assert (alert["desk"], alert["event_id"], alert["kind"], alert["escalation"], alert["rules"]) == (
            desk, event_id, kind, escalation, rules)
        assert not alert["published_local"].endswith("UTC")


def test_event_alert_card_says_how_many_outlets_and_who_was_first(client, store, desks):
    event = store.get_event(EV_VIOLATED)
    zone = desks["security"].timezone
    alert = client.get("/api/alerts/ev-alert-violated").json()
    summary = alert["event"]
    assert summary["id"] == EV_VIOLATED and summary["status_label"] == status_label(event)
    assert summary["outlet_count"] == len(event.outlets) == 3  # four reports, one outlet twice
    first = event.reports[0]
    assert summary["reach"] == f"3 outlets; first reported by {first.outlet} at {local(first.time, zone)}"
    assert (summary["state_before"], summary["state_after"]) == (event.state_before, event.state_after)
    assert [r["outlet"] for r in alert["reports"]] == [r.outlet for r in event.reports]
    escalation = client.get("/api/alerts/ev-alert-violated-3").json()
    assert escalation["kind"] == "escalation" and escalation["escalation"] == "corroborated:3"
    story = client.get("/api/alerts/hostile-alert").json()
    assert story["kind"] == "story" and story["event"] is None and story["reports"] == []


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
def test_search_filters_match_the_store(client, store, filled, field):
    articles = all_articles(store)
    values = Counter(
        t for a in articles for t in (a.topic_ids() if field == "topic" else [getattr(a, field)]) if t
    )
    known_topics = {t.id for t in load_config(str(filled.config_dir)).taxonomy.topics}
    for value in values:
        response = client.get("/api/search", params={field: value, "limit": 100})
        if field == "topic" and value not in known_topics:  # seeded "talks": not a topics.yaml topic
            assert response.status_code == 422 and "topics.yaml" in response.json()["detail"]
            continue
        hits = response.json()["hits"]
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
    # 422 like every other parameter the request cannot be answered with (was 400 before issue 16,
    # which made a time with no UTC form, 9999-12-31T23:59:59-14:00, the same answer)
    response = client.get("/api/search", params={"since": "last tuesday"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("since=") and "\n" not in response.json()["detail"]


def test_search_pages_with_offset(client):
    first = client.get("/api/search", params={"limit": 3}).json()["hits"]
    second = client.get("/api/search", params={"limit": 3, "offset": 3}).json()["hits"]
    assert len(first) == len(second) == 3
    assert not {h["article"]["id"] for h in first} & {h["article"]["id"] for h in second}


@pytest.mark.parametrize("collapse,key", [("story", "story_id"), ("event", "event_id")])
def test_search_collapses_by_story_and_by_event_in_the_store(client, store, collapse, key):
    everything = client.get("/api/search", params={"limit": 100}).json()["hits"]
    data = client.get("/api/search", params={"limit": 100, "collapse": collapse}).json()
    assert data["collapse"] == collapse
    hits = data["hits"]
    assert [h["article"]["id"] for h in hits] == [h.article.id for h in store.search(None, limit=100, collapse=collapse)]
    groups = [h["article"][key] for h in hits if h["article"][key]]
    assert len(groups) == len(set(groups)), "one hit per group"
    assert {h["article"][key] for h in everything if h["article"][key]} == set(groups)
    assert len(hits) < len(everything)
    if collapse == "event":  # four reports of the violation: one hit
        assert sum(1 for h in everything if h["article"]["event_id"] == EV_VIOLATED) == 4
        assert groups.count(EV_VIOLATED) == 1
        assert sum(1 for h in hits if h["article"]["event_id"] is None) == sum(
            1 for h in everything if h["article"]["event_id"] is None)  # no event: each its own group
    worded = client.get("/api/search", params={"q": "Torkham", "collapse": collapse}).json()["hits"]
    worded_groups = [h["article"][key] for h in worded if h["article"][key]]
    assert worded_groups and len(set(worded_groups)) == len(worded_groups)
    if collapse == "event":
        assert worded_groups.count(EV_VIOLATED) == 1


def test_search_collapse_refuses_other_values(client):
    assert client.get("/api/search", params={"collapse": "source"}).status_code == 422
    assert client.get("/api/search", params={"collapse": ""}).json()["collapse"] is None


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


def test_timeline_is_one_row_per_event_newest_first(client, store):
    events = all_events(store)
    data = client.get("/api/timeline", params={"limit": 1000}).json()
    entries = data["entries"]
    assert [e["id"] for e in entries] == [e.id for e in events]
    assert data["timezone"] == "UTC"  # no desk: UTC
    opened = [e["opened"] for e in entries]
    assert opened == sorted(opened, reverse=True)
    by_id = {e.id: e for e in events}
    for entry in entries:
        event = by_id[entry["id"]]
        first = event.reports[0]
        assert entry["status_label"] == status_label(event)
        assert (entry["family"], entry["type"], entry["state_before"], entry["state_after"]) == (
            event.family, event.type, event.state_before, event.state_after)
        assert entry["outlet_count"] == len(event.outlets) and entry["report_count"] == len(event.reports)
        assert entry["evidence"] == first.evidence
        assert (entry["first_report"]["outlet"], entry["first_report"]["url"], entry["first_report"]["time"]) == (
            first.outlet, first.url, first.time)
        assert entry["first_report"]["time_local"] == local(first.time, "UTC")
    violated = next(e for e in entries if e["id"] == EV_VIOLATED)
    assert violated["status_label"] == "corroborated by 3" and violated["report_count"] == 4
    assert [e["status_label"] for e in entries if e["id"] == EV_TALKS] == ["disputed"]
    # Every seeded event's reports are one row each, however many outlets carried it.
    assert {s["id"] for s in SEEDED_EVENTS} <= {e["id"] for e in entries}


def test_timeline_desk_filter_is_the_events_notified_to_the_desk(client, store, desks):
    alerts = store.list_alerts(limit=1000)
    listed = {e.id for e in all_events(store)}
    assert EV_STALLED not in {a.event_id for a in alerts}
    for desk in desks:
        data = client.get("/api/timeline", params={"desk": desk, "limit": 1000}).json()
        expected = {a.event_id for a in alerts if a.desk == desk and a.event_id} & listed
        assert {e["id"] for e in data["entries"]} == expected, desk
        assert data["timezone"] == desks[desk].timezone
        for entry in data["entries"]:
            assert entry["opened_local"] == local(entry["opened"], desks[desk].timezone)
    security = {e["id"] for e in client.get("/api/timeline", params={"desk": "security"}).json()["entries"]}
    assert EV_VIOLATED in security and EV_TALKS not in security and EV_STALLED not in security
    assert client.get("/api/timeline", params={"desk": "no-such-desk"}).status_code == 422


def test_timeline_family_filter(client, store):
    for family in ("ceasefire", "talks"):
        entries = client.get("/api/timeline", params={"family": family, "limit": 1000}).json()["entries"]
        assert [e["id"] for e in entries] == [e.id for e in all_events(store) if e.family == family], family
        assert entries
    assert client.get("/api/timeline", params={"family": "weather"}).status_code == 422


# --- development events -------------------------------------------------------------------------


def test_event_detail_lists_every_report(client, store, desks, filled):
    event = store.get_event(EV_VIOLATED)
    zone = desks["security"].timezone
    data = client.get(f"/api/events/{EV_VIOLATED}", params={"desk": "security"}).json()
    assert data["timezone"] == zone and data["status_label"] == "corroborated by 3"
    assert (data["state_before"], data["state_after"]) == ("in-force", "violated")
    assert data["desks"] == ["security"]
    fields = ("outlet", "time", "language", "mode", "evidence", "title", "url", "article_id", "story_id")
    assert [tuple(r[f] for f in fields) for r in data["reports"]] == [
        tuple(getattr(r, f) for f in fields) for r in event.reports]
    assert [r["time_local"] for r in data["reports"]] == [local(r.time, zone) for r in event.reports]
    assert {r["language"] for r in data["reports"]} == {"en", "fa", "ur"}
    assert {r["mode"] for r in data["reports"]} == {"asserted", "alleged"}
    names = {p.id: p.name for p in load_config(str(filled.config_dir)).taxonomy.places}
    assert data["places"] == [{"id": "torkham", "name": names.get("torkham", "torkham")}]
    assert [p["id"] for p in data["parties"]] == event.parties
    # Without a desk the times are UTC; an unknown id is a 404.
    assert client.get(f"/api/events/{EV_VIOLATED}").json()["timezone"] == "UTC"
    missing = client.get("/api/events/no-such-event")
    assert missing.status_code == 404 and missing.json()["detail"] == "no event no-such-event"


def test_event_detail_keeps_hostile_text_as_text(client):
    data = client.get(f"/api/events/{EV_TALKS}").json()
    denied = [r for r in data["reports"] if r["mode"] == "denied"]
    assert [r["outlet"] for r in denied] == [HOSTILE_SOURCE] and denied[0]["evidence"] == HOSTILE_EVIDENCE
    assert data["status"] == "disputed" and data["desks"] == ["diplomacy"]
    assert data["outlet_count"] == 1  # a denial is not an outlet reporting it


def test_event_page_shell_escapes_the_id(client):
    response = client.get(f"/events/{EV_VIOLATED}", params={"desk": "security"})
    assert response.status_code == 200
    assert 'data-page="event"' in response.text and f'data-event="{EV_VIOLATED}"' in response.text
    assert 'href="/timeline?desk=security" class="active"' in response.text
    hostile = client.get("/events/<img src=x onerror=alert(1)>")
    assert hostile.status_code == 200 and "<img src=x" not in hostile.text
    assert 'data-event="&lt;img src=x onerror=alert(1)&gt;"' in hostile.text


def test_articles_say_which_event_they_report(client):
    data = client.get(f"/api/articles/{seeded_article_id(EV_VIOLATED, 1)}").json()
    assert data["event_id"] == EV_VIOLATED
    assert client.get(f"/api/articles/{HOSTILE_ARTICLE_ID}").json()["event_id"] is None


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


def test_config_is_reloaded_after_a_config_file_changes(filled, tmp_path):
    import os
    import shutil

    import yaml

    config = tmp_path / "config"
    shutil.copytree(filled.config_dir, config)
    # A callable config dir is what the Airflow plugin passes (Variable newsmon_config_dir first).
    app = create_app(filled.store_url, lambda: str(config))
    try:
        with TestClient(app) as test_client:
            assert test_client.get("/api/meta").status_code == 200
            state = app.state.dashboard
            before = state.config()[0]
            assert state.config()[0] is before  # unchanged files: no reload
            settings_path = config / "newsmon.yaml"
            data = yaml.safe_load(settings_path.read_text()) or {}
            data["batch_size"] = before.settings.batch_size + 7
            settings_path.write_text(yaml.safe_dump(data))
            stat = settings_path.stat()
            os.utime(settings_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
            assert test_client.get("/api/meta").status_code == 200
            after = state.config()[0]
            assert after is not before and after.settings.batch_size == before.settings.batch_size + 7
    finally:
        app.state.dashboard.close()

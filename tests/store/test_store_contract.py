"""The Store contract, through the `store` fixture only, so every backend must pass it unchanged."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import replace

import pytest

from pipelines.errors import NewsmonError
from pipelines.models import (
    Alert,
    Development,
    DevelopmentEvent,
    EventReport,
    FeedItem,
    FeedState,
    SearchHit,
    TopicHit,
)
from pipelines.query import QuerySyntaxError
from pipelines.store.base import Store, delivery_claimer

from .conftest import make_article


def keys_of(hits: list[SearchHit], articles) -> list[str]:
    by_id = {a.id: key for key, a in articles.items()}
    return [by_id[h.article.id] for h in hits]


def event_time(article) -> str:
    return article.published or article.fetched


def outside_marks(snippet: str) -> str:
    return snippet.replace("<mark>", "").replace("</mark>", "")


# --- articles -----------------------------------------------------------------------------------


def test_store_satisfies_protocol(store):
    assert isinstance(store, Store)
    assert isinstance(store.url, str) and store.url


def test_upsert_new_then_update(store, articles):
    original = articles["chaman-ceasefire"]
    assert store.upsert_article(original) is True
    assert store.count_articles() == 1

    changed = replace(
        original,
        title="Truce frays along the Chaman crossing",
        text="Shots were heard near the gate overnight and the stalls stayed shut.",
        topics=[TopicHit(id="border", score=0.4)],
    )
    assert store.upsert_article(changed) is False
    assert store.count_articles() == 1
    stored = store.get_article(original.id)
    assert stored.title == changed.title and stored.text == changed.text
    # the index follows the update: old words gone, new words found, topics replaced
    assert store.search("lorries") == []
    assert [h.article.id for h in store.search("shots")] == [original.id]
    assert store.search(topic="ceasefire") == []
    assert [h.article.id for h in store.search(topic="border")] == [original.id]


def test_article_round_trip_keeps_every_field(store, articles):
    article = articles["istanbul-round"]
    store.upsert_article(article)
    assert store.get_article(article.id) == article
    assert store.has_article(article.id)


def test_missing_article(store):
    assert store.get_article("0" * 32) is None
    assert store.has_article("0" * 32) is False


def test_find_by_content_hash(loaded_store, articles):
    article = articles["ttp-checkpoint"]
    assert loaded_store.find_by_content_hash(article.content_hash) == article.id
    assert loaded_store.find_by_content_hash("f" * 32) is None


def test_count_articles(loaded_store, articles):
    assert loaded_store.count_articles() == len(articles)


def test_iter_articles_pages_in_id_order(loaded_store, articles):
    seen: list[str] = []
    after = None
    while True:
        batch = loaded_store.iter_articles(after_id=after, batch=4)
        if not batch:
            break
        assert len(batch) <= 4
        seen.extend(a.id for a in batch)
        after = batch[-1].id
    assert seen == sorted(a.id for a in articles.values())
    assert loaded_store.iter_articles(after_id=max(seen)) == []


# --- search ------------------------------------------------------------------------------------


def test_title_match_ranks_above_body_matches(loaded_store, articles):
    hits = loaded_store.search("ceasefire")
    # Three body mentions in quetta-markets lose to one title mention in chaman-ceasefire.
    assert keys_of(hits, articles) == ["chaman-ceasefire", "quetta-markets"]
    assert hits[0].score > hits[1].score


def test_snippet_marks_matches(loaded_store, articles):
    hits = loaded_store.search("convoys")
    assert keys_of(hits, articles) == ["quetta-markets"]
    assert re.search(r"<mark>convoys</mark>", hits[0].snippet, re.IGNORECASE)


def test_snippet_escapes_html_from_article_text(loaded_store, articles):
    hits = loaded_store.search("escorts")
    assert keys_of(hits, articles) == ["kurram-monitors"]
    snippet = hits[0].snippet
    assert "<mark>escorts</mark>" in snippet
    assert "<" not in outside_marks(snippet), snippet
    assert "&lt;script&gt;" in snippet
    assert "&amp;" in snippet


def test_snippets_without_query_are_escaped_too(loaded_store):
    hits = loaded_store.search(None, source="Frontier Ledger")
    assert hits
    for hit in hits:
        assert "<" not in hit.snippet
    assert any("&lt;script&gt;" in hit.snippet for hit in hits)


def test_no_query_lists_newest_first(loaded_store, articles):
    hits = loaded_store.search(None, limit=100)
    expected = sorted(articles, key=lambda k: event_time(articles[k]), reverse=True)
    assert keys_of(hits, articles) == expected
    assert keys_of(loaded_store.search("", limit=100), articles) == expected
    assert keys_of(loaded_store.search("   ", limit=100), articles) == expected


def test_limit_and_offset_page_through_results(loaded_store, articles):
    everything = keys_of(loaded_store.search(None, limit=100), articles)
    pages = []
    for offset in range(0, len(everything), 4):
        pages.extend(keys_of(loaded_store.search(None, limit=4, offset=offset), articles))
    assert pages == everything
    assert loaded_store.search(None, limit=0) == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"topic": "ceasefire"}, {"chaman-ceasefire", "quetta-markets", "urdu-ceasefire"}),
        ({"topic": "militancy"}, {"ttp-checkpoint", "bannu-denial"}),
        ({"topic": "no-such-topic"}, set()),
        ({"desk": "security"}, {"ttp-checkpoint", "bannu-denial"}),
        ({"source": "Karachi Courier"}, {"quetta-markets", "cricket-tour", "ttp-checkpoint"}),
        ({"language": "ur"}, {"urdu-ceasefire"}),
        ({"desk": "pakistan", "topic": "border"}, {"chaman-ceasefire", "kurram-monitors"}),
        # published missing -> fetched decides (kurram-monitors); until is exclusive
        ({"since": "2025-10-22T00:00:00Z", "until": "2025-10-23T04:00:00Z"}, {"kurram-monitors", "ttp-checkpoint"}),
        ({"until": "2025-10-23T03:10:00Z", "since": "2025-10-22T00:00:00Z"}, {"kurram-monitors"}),
        ({"since": "2025-10-23T03:10:00Z", "until": "2025-10-24T00:00:00Z"}, {"ttp-checkpoint", "bannu-denial"}),
        # a date alone, and an offset other than UTC
        ({"since": "2025-10-25"}, {"istanbul-round", "turkiye-host"}),
        ({"since": "2025-10-23T08:00:00+05:00", "until": "2025-10-24"}, {"ttp-checkpoint", "bannu-denial"}),
    ],
)
def test_filters(loaded_store, articles, filters, expected):
    assert set(keys_of(loaded_store.search(None, limit=100, **filters), articles)) == expected


def test_filters_combine_with_query(loaded_store, articles):
    assert keys_of(loaded_store.search("ceasefire", desk="business"), articles) == ["quetta-markets"]
    assert keys_of(loaded_store.search("ceasefire", since="2025-10-20T09:00:00Z"), articles) == ["quetta-markets"]
    assert loaded_store.search("ceasefire", language="ur") == []


def test_bad_time_bound_is_a_clear_error(loaded_store):
    with pytest.raises(NewsmonError, match="yesterday"):
        loaded_store.search("ceasefire", since="yesterday")


@pytest.mark.parametrize("query", ["Türkiye", "turkiye", "TURKIYE"])
def test_accent_and_case_insensitive(loaded_store, articles, query):
    assert set(keys_of(loaded_store.search(query), articles)) == {"istanbul-round", "turkiye-host"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"peace talks" Istanbul', {"istanbul-round"}),
        ("peace talks Istanbul", {"istanbul-round", "turkiye-host"}),
        ('TTP OR "Tehrik-i-Taliban"', {"ttp-checkpoint", "bannu-denial"}),
        ("talks NOT cricket", {"istanbul-round", "turkiye-host"}),
        ("talks", {"istanbul-round", "turkiye-host", "cricket-tour"}),
        ("(TTP OR Bannu) AND police", {"ttp-checkpoint"}),
        ("title:ceasefire", {"chaman-ceasefire"}),
        ("Talib*", {"bannu-denial"}),
        ("جنگ بندی", {"urdu-ceasefire"}),
        ("ceasefire NOT cricket", {"chaman-ceasefire", "quetta-markets"}),
        ("source:Anatolia Istanbul", {"istanbul-round", "turkiye-host"}),
    ],
)
def test_query_forms(loaded_store, articles, query, expected):
    assert set(keys_of(loaded_store.search(query), articles)) == expected


def test_phrase_is_highlighted(loaded_store):
    hits = loaded_store.search('"peace talks" Istanbul')
    snippet = hits[0].snippet.lower()
    assert "<mark>peace" in snippet and "<mark>istanbul</mark>" in snippet


@pytest.mark.parametrize(
    ("query", "position"),
    [("(", 0), ("ceasefire AND", 13), ('"unterminated', 0), ("ceasefire AND (((", 16), ('"ceasefire', 0),
     ("ceasefire)))", 9), ("ceasefire OR", 12), ("OR OR", 0), ("NOT", 3), ("title:", 6), ("()", 0),
     ("talks AND OR border", 10)],
)
def test_malformed_queries_are_errors_naming_the_position(loaded_store, query, position):
    """Both stores refuse a malformed query alike: a typo must not read as "no news"."""
    with pytest.raises(QuerySyntaxError) as info:
        loaded_store.search(query)
    assert info.value.position == position
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "query",
    ["AND (((", '"unclosed', ")))", "NOT", "OR OR", "*", '"', "^", "title:", "source:", ":", "-", '""',
     "NEAR(", "a:b:c", "\\", "'", "%", "{title}: x", "ceasefire^2", "x~2", "[", "💥", "\x00", "AND OR NOT",
     "title:(", 'NOT "', "-(", "((((((((((((((((((((x"],
)
def test_junk_queries_answer_or_name_the_problem(loaded_store, query):
    try:
        hits = loaded_store.search(query)
    except QuerySyntaxError as exc:  # a one-line message with a position, nothing else
        assert 0 <= exc.position <= len(query) and "\n" not in str(exc)
        return
    assert isinstance(hits, list)
    assert all(isinstance(h, SearchHit) and h.article.id for h in hits)


# --- topic counts ------------------------------------------------------------------------------


def test_topic_counts_per_hour(loaded_store, articles):
    expected: Counter = Counter()
    for article in articles.values():
        hour = event_time(article)[:13] + ":00:00Z"
        for topic in article.topic_ids():
            expected[(topic, hour)] += 1
    counts = loaded_store.topic_counts()
    assert {(c["topic"], c["hour"]): c["count"] for c in counts} == dict(expected)
    # two ceasefire articles in the 08:00 hour (08:15 and 08:50)
    assert {"topic": "ceasefire", "hour": "2025-10-20T08:00:00Z", "count": 2} in counts


def test_topic_counts_window(loaded_store):
    counts = loaded_store.topic_counts(since="2025-10-23T00:00:00Z", until="2025-10-24T00:00:00Z")
    assert sorted((c["topic"], c["hour"], c["count"]) for c in counts) == [
        ("militancy", "2025-10-23T03:00:00Z", 1),
        ("militancy", "2025-10-23T05:00:00Z", 1),
    ]


def test_topic_counts_empty_store(store):
    assert store.topic_counts() == []


# --- feed state and seen items -----------------------------------------------------------------


def test_feed_state_round_trip(store):
    assert store.get_feed_state("dawn") is None
    state = FeedState(
        feed_id="dawn", etag='W/"abc"', last_modified="Sat, 01 Nov 2025 10:00:00 GMT",
        last_polled="2025-11-01T10:00:05Z", last_success="2025-11-01T10:00:05Z", last_error=None,
        last_status=200, items_total=12, not_modified_count=3, error_count=1,
        last_new_items="2025-11-01T09:00:05Z", first_polled="2025-10-01T08:00:00Z",
    )
    store.save_feed_state(state)
    assert store.get_feed_state("dawn") == state
    later = replace(state, etag=None, last_status=304, not_modified_count=4, last_error="timeout after 20s")
    store.save_feed_state(later)
    store.save_feed_state(FeedState(feed_id="geo"))
    assert store.get_feed_state("dawn") == later
    assert {s.feed_id: s for s in store.list_feed_states()} == {"dawn": later, "geo": FeedState(feed_id="geo")}


def test_seen_items_are_per_feed(store):
    assert store.seen_items("f1", ["a", "b"]) == set()
    store.mark_items_seen("f1", ["a", "b", "a"])
    store.mark_items_seen("f1", ["b"])
    assert store.seen_items("f1", ["a", "b", "c"]) == {"a", "b"}
    assert store.seen_items("f2", ["a", "b"]) == set()
    assert store.seen_items("f1", []) == set()


# --- inbox -------------------------------------------------------------------------------------


def feed_item(feed_id: str, item_id: str, **extra) -> FeedItem:
    return FeedItem(
        feed_id=feed_id, item_id=item_id, link=f"https://news.example.org/{feed_id}/{item_id}",
        title=f"Headline {item_id}", summary="Short summary with “quotes” and ü.",
        published="2025-11-01T09:00:00Z", **extra,
    )


def test_spool_skips_queued_and_seen(store):
    first = [feed_item("f1", "i0"), feed_item("f1", "i1"), feed_item("f2", "i0")]
    assert store.spool_items(first) == 3
    assert store.spool_items(first) == 0
    store.mark_items_seen("f1", ["old"])
    assert store.spool_items([feed_item("f1", "old"), feed_item("f1", "i2"), feed_item("f1", "i2")]) == 1
    pending = store.pending_items()
    # Round-robin by feed, oldest first within each feed: one big feed never starves the rest.
    assert [item for _key, item in pending] == [first[0], first[2], first[1], feed_item("f1", "i2")]
    assert len({key for key, _item in pending}) == 4
    assert store.spool_items([]) == 0


def test_pending_items_oldest_first_and_limited(store):
    items = [feed_item("f1", f"i{n}") for n in range(5)]
    for item in items:
        store.spool_items([item])
    assert [item for _key, item in store.pending_items(limit=3)] == items[:3]


def test_get_and_finish_items(store):
    items = [feed_item("f1", "i0", author="A. Writer", language="ur"), feed_item("f1", "i1"), feed_item("f1", "i2")]
    store.spool_items(items)
    keys = [key for key, _item in store.pending_items()]
    fetched = dict(store.get_items([keys[2], keys[0], "no-such-key"]))
    assert fetched == {keys[0]: items[0], keys[2]: items[2]}

    store.finish_items([keys[0], keys[1]])
    assert [key for key, _item in store.pending_items()] == [keys[2]]
    assert store.get_items([keys[0]]) == []
    assert store.seen_items("f1", ["i0", "i1", "i2"]) == {"i0", "i1"}
    assert store.spool_items([items[0]]) == 0  # finished items never come back
    store.finish_items([keys[0], "no-such-key"])  # repeating is harmless
    assert [key for key, _item in store.pending_items()] == [keys[2]]


# --- alerts and outbox -------------------------------------------------------------------------


def make_alert(alert_id: str, created: str, **extra) -> Alert:
    values = dict(
        id=alert_id, rule_id="ceasefire-desk", desk="pakistan", article_id="a" * 32, story_id="story-1",
        title="Ceasefire extended by two weeks", url="https://news.example.org/extended",
        source="Frontier Ledger", development="ceasefire-extended", topics=["ceasefire", "talks"],
        matched="topic ceasefire + development ceasefire-extended", created=created,
        channels=["email", "webhook"],
    )
    values.update(extra)
    return Alert(**values)


def test_record_alert_is_idempotent_and_counts_copies(store):
    alert = make_alert("alert-1", "2025-10-28T10:00:00Z")
    assert store.record_alert(alert) is True
    assert store.get_alert("alert-1") == alert
    assert store.record_alert(alert) is False
    assert store.record_alert(replace(alert, title="a later copy")) is False
    stored = store.get_alert("alert-1")
    assert stored.copies == 3
    assert stored.title == alert.title  # the first firing is what the desk saw
    assert store.get_alert("nope") is None


def test_list_alerts_newest_first_with_since(store):
    for n, created in enumerate(["2025-10-28T10:00:00Z", "2025-10-28T12:00:00Z", "2025-10-27T09:00:00Z"]):
        store.record_alert(make_alert(f"alert-{n}", created))
    assert [a.id for a in store.list_alerts()] == ["alert-1", "alert-0", "alert-2"]
    assert [a.id for a in store.list_alerts(since="2025-10-28T00:00:00Z")] == ["alert-1", "alert-0"]
    assert [a.id for a in store.list_alerts(since="2025-10-28T10:00:00Z")] == ["alert-1", "alert-0"]
    assert [a.id for a in store.list_alerts(limit=1)] == ["alert-1"]


def test_list_alerts_of_one_desk_or_one_event(store):
    store.record_alert(make_alert("a-sec-e1", "2025-10-28T10:00:00Z", desk="security", event_id="e1", kind="event"))
    store.record_alert(make_alert("a-dip-e1", "2025-10-28T11:00:00Z", desk="diplomacy", event_id="e1", kind="event"))
    store.record_alert(make_alert("a-sec-e2", "2025-10-28T12:00:00Z", desk="security", event_id="e2", kind="event"))
    store.record_alert(make_alert("a-sec-story", "2025-10-28T13:00:00Z", desk="security"))
    assert [a.id for a in store.list_alerts(desk="security")] == ["a-sec-story", "a-sec-e2", "a-sec-e1"]
    assert [a.id for a in store.list_alerts(event_id="e1")] == ["a-dip-e1", "a-sec-e1"]
    assert [a.id for a in store.list_alerts(desk="security", event_id="e1")] == ["a-sec-e1"]
    assert [a.id for a in store.list_alerts(desk="security", since="2025-10-28T12:00:00Z", limit=1)] == [
        "a-sec-story"]
    assert store.list_alerts(desk="nobody") == []


def test_outbox_lifecycle(store):
    store.record_alert(make_alert("alert-1", "2025-10-28T10:00:00Z"))
    store.enqueue_delivery("alert-1", "email")
    store.enqueue_delivery("alert-1", "email")
    store.enqueue_delivery("alert-1", "webhook")
    assert store.pending_deliveries() == [("alert-1", "email", 0), ("alert-1", "webhook", 0)]

    store.mark_delivery_failed("alert-1", "email", "smtp 127.0.0.1:2525 refused the connection")
    store.mark_delivery_failed("alert-1", "email", "timeout")
    assert store.pending_deliveries() == [("alert-1", "email", 2), ("alert-1", "webhook", 0)]

    store.mark_delivered("alert-1", "email")
    assert store.pending_deliveries() == [("alert-1", "webhook", 0)]
    store.enqueue_delivery("alert-1", "email")  # already delivered: stays delivered
    assert store.pending_deliveries() == [("alert-1", "webhook", 0)]
    assert store.pending_deliveries(limit=0) == []
    store.mark_delivered("alert-1", "webhook")
    assert store.pending_deliveries() == []


def dead_claimer_on_this_machine() -> str:
    """A claimer id of a process of this machine that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    machine = delivery_claimer().rsplit("|", 2)[0]
    return f"{machine}|{proc.pid}|0badc0de"


def test_delivery_claim_lifecycle(store):
    """Issue 7: a claim keeps an overlapping run off a row until it is delivered, failed or expired."""
    store.enqueue_delivery("alert-1", "webhook")
    first, second = delivery_claimer(), delivery_claimer()
    assert first != second
    assert store.claim_delivery("alert-1", "webhook", first, 600) is True
    assert store.claim_delivery("alert-1", "webhook", second, 600) is False  # held by a live run
    assert store.claim_delivery("alert-1", "webhook", first, 600) is True  # the holder may renew
    assert store.pending_deliveries() == [("alert-1", "webhook", 0)]  # claimed rows still count as pending

    store.mark_delivery_failed("alert-1", "webhook", "HTTP 503")  # releases the claim
    assert store.claim_delivery("alert-1", "webhook", second, 600) is True
    assert store.claim_delivery("alert-1", "webhook", first, 600) is False

    store.mark_delivered("alert-1", "webhook")
    for claimer in (first, second):  # delivered: nobody may send it again
        assert store.claim_delivery("alert-1", "webhook", claimer, 600) is False
    assert store.claim_delivery("never-queued", "webhook", first, 600) is False
    assert store.pending_deliveries() == []


def test_expired_or_orphaned_claims_are_taken_over(store):
    """At least once: a crashed sender's row is sent by the next run, after its lease or at once
    when its process is known dead; a live holder elsewhere is waited for."""
    store.enqueue_delivery("alert-1", "email")
    assert store.claim_delivery("alert-1", "email", delivery_claimer(), 0) is True  # a lease already over
    assert store.claim_delivery("alert-1", "email", delivery_claimer(), 600) is True

    store.enqueue_delivery("alert-2", "email")
    assert store.claim_delivery("alert-2", "email", dead_claimer_on_this_machine(), 600) is True
    assert store.claim_delivery("alert-2", "email", delivery_claimer(), 600) is True  # its process is gone

    store.enqueue_delivery("alert-3", "email")
    elsewhere = "worker-7.example.net/pid:[4026531836]|4242|feedface"  # cannot be checked from here
    assert store.claim_delivery("alert-3", "email", elsewhere, 600) is True
    assert store.claim_delivery("alert-3", "email", delivery_claimer(), 600) is False


def test_racing_claims_have_exactly_one_winner(store):
    """Eight threads, each its own run, claim the same rows at once: one winner per row."""
    rows = [(f"alert-{n}", "webhook") for n in range(5)]
    for alert_id, channel in rows:
        store.enqueue_delivery(alert_id, channel)
    start = threading.Barrier(8)
    wins: list[tuple[str, str]] = []
    failures: list[BaseException] = []

    def run() -> None:
        claimer = delivery_claimer()
        try:
            start.wait()
            for alert_id, channel in rows:
                if store.claim_delivery(alert_id, channel, claimer, 600):
                    wins.append((alert_id, channel))
        except BaseException as err:  # noqa: BLE001 - reported below
            failures.append(err)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(wins) == sorted(rows)


# --- stories -----------------------------------------------------------------------------------


def test_story_keys_oldest_story_wins(store):
    assert store.story_for_keys(["k1"]) is None
    assert store.story_for_keys([]) is None
    store.add_story_keys("story-old", ["k1", "shared"])
    store.add_story_keys("story-new", ["shared", "k3"])
    assert store.story_for_keys(["shared"]) == "story-old"
    assert store.story_for_keys(["k3"]) == "story-new"
    assert store.story_for_keys(["k3", "k1"]) == "story-old"
    assert store.story_for_keys(["unknown"]) is None


def test_bump_and_get_story(store):
    assert store.get_story("story-1") is None
    store.add_story_keys("story-1", ["k1"])
    assert store.bump_story("story-1", "a1", "Frontier Ledger") == 1
    assert store.bump_story("story-1", "a2", "Karachi Courier") == 2
    assert store.bump_story("story-1", "a3", "Frontier Ledger") == 3
    assert store.bump_story("story-1", "a2", "Karachi Courier") == 3  # the same article counts once
    story = store.get_story("story-1")
    assert story["id"] == "story-1"
    assert story["copies"] == 3
    assert story["articles"] == ["a1", "a2", "a3"]
    assert story["sources"] == ["Frontier Ledger", "Karachi Courier"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", story["first_seen"])


def test_bump_story_without_keys_creates_it(store):
    assert store.bump_story("story-2", "a9", "Peshawar Post") == 1
    assert store.get_story("story-2")["articles"] == ["a9"]



# --- development events ------------------------------------------------------------------------


def make_event(event_id: str, opened: str, **extra) -> DevelopmentEvent:
    reports = [
        EventReport(article_id="a" * 32, url="https://news.example.org/agreed", outlet="Frontier Ledger",
                    time=opened, first_seen="2025-11-01T08:05:00Z", language="en",
                    evidence="Both sides agreed to a ceasefire at Torkham.", type="ceasefire-agreed",
                    story_id="story-1", title="Ceasefire agreed"),
        EventReport(article_id="b" * 32, url="https://news.example.org/denied", outlet="Karachi Courier",
                    time="2025-11-01T09:00:00Z", first_seen="2025-11-01T09:01:00Z", language=None,
                    evidence="Officials denied any ceasefire.", type="ceasefire-agreed", mode="denied"),
    ]
    values = dict(id=event_id, watch="pak-afg", family="ceasefire", type="ceasefire-agreed", opened=opened,
                  updated="2025-11-01T09:00:00Z", status="disputed", venue="doha", places=["torkham"],
                  parties=["pk", "af"], state_before="hostilities", state_after="ceasefire", reports=reports,
                  confidence=0.75)
    values.update(extra)
    return DevelopmentEvent(**values)


def test_save_and_get_event_round_trip(store):
    assert store.count_events() == 0
    assert store.get_event("ev-1") is None
    event = make_event("ev-1", "2025-11-01T08:00:00Z")
    store.save_event(event)
    assert store.get_event("ev-1") == event
    assert store.count_events() == 1


def test_save_event_replaces(store):
    store.save_event(make_event("ev-1", "2025-11-01T08:00:00Z"))
    later = make_event("ev-1", "2025-11-01T08:00:00Z", status="superseded", superseded_by="ev-2",
                       state_after="talks", reports=[], updated="2025-11-02T00:00:00Z")
    store.save_event(later)
    assert store.get_event("ev-1") == later
    assert store.count_events() == 1
    assert store.list_events() == [later]


def test_list_events_filters_and_order(store):
    events = {
        "ev-4": make_event("ev-4", "2025-11-03T00:00:00Z", watch="sudan"),
        "ev-2": make_event("ev-2", "2025-11-01T08:00:00Z", family="talks", type="talks-held"),
        "ev-3": make_event("ev-3", "2025-11-02T10:00:00+05:00"),  # 05:00 UTC
        "ev-1": make_event("ev-1", "2025-11-01T08:00:00Z"),
    }
    for event in events.values():
        store.save_event(event)

    def ids(**kwargs) -> list[str]:
        found = store.list_events(**kwargs)
        assert found == [events[e.id] for e in found]  # whole events, unchanged
        return [e.id for e in found]

    assert ids() == ["ev-1", "ev-2", "ev-3", "ev-4"]  # opened, then id
    assert ids(newest_first=True) == ["ev-4", "ev-3", "ev-2", "ev-1"]
    assert ids(limit=2) == ["ev-1", "ev-2"]
    assert ids(limit=2, newest_first=True) == ["ev-4", "ev-3"]
    assert ids(watch="pak-afg") == ["ev-1", "ev-2", "ev-3"]
    assert ids(family="talks") == ["ev-2"]
    assert ids(watch="pak-afg", family="ceasefire") == ["ev-1", "ev-3"]
    assert ids(watch="nowhere") == []
    # both bounds inclusive, any offset, a date alone
    assert ids(since="2025-11-01T08:00:00Z") == ["ev-1", "ev-2", "ev-3", "ev-4"]
    assert ids(since="2025-11-01T08:00:01Z") == ["ev-3", "ev-4"]
    assert ids(until="2025-11-02T05:00:00Z") == ["ev-1", "ev-2", "ev-3"]
    assert ids(until="2025-11-02") == ["ev-1", "ev-2"]
    assert ids(since="2025-11-02T09:00:00+05:00", until="2025-11-02T23:59:59Z") == ["ev-3"]
    with pytest.raises(NewsmonError, match="yesterday"):
        store.list_events(since="yesterday")


def test_iter_events_pages_in_id_order(store):
    wanted = [f"ev-{n:02d}" for n in (5, 0, 3, 6, 1, 4, 2)]
    for event_id in wanted:
        store.save_event(make_event(event_id, "2025-11-01T08:00:00Z"))
    seen: list[str] = []
    after = None
    while True:
        batch = store.iter_events(after_id=after, batch=3)
        if not batch:
            break
        assert len(batch) <= 3
        seen.extend(e.id for e in batch)
        after = batch[-1].id
    assert seen == sorted(wanted)
    assert store.iter_events(after_id=seen[-1]) == []
    assert store.count_events() == len(wanted)


def test_set_article_event(store, articles):
    article = articles["chaman-ceasefire"]
    store.upsert_article(article)
    assert store.get_article(article.id).event_id is None
    store.set_article_event(article.id, "ev-1")
    stored = store.get_article(article.id)
    assert stored.event_id == "ev-1"
    assert stored == replace(article, event_id="ev-1")  # nothing else changes
    assert [h.article.event_id for h in store.search("ceasefire", source="Frontier Ledger")] == ["ev-1"]
    store.set_article_event(article.id, None)
    assert store.get_article(article.id).event_id is None
    store.set_article_event("0" * 32, "ev-1")  # an unknown article: nothing to attach, no error
    assert store.get_article("0" * 32) is None


def test_article_keeps_event_id_and_development_fields(store):
    development = Development(type="ceasefire-agreed", evidence="Pakistan and Afghanistan agreed a truce in Doha.",
                              start=0, end=48, field="title", mode="alleged", parties=["pk", "af"],
                              mediators=["qa", "tr"], venue="doha", places=["torkham", "chaman"], confidence=0.6)
    article = make_article("dev-fields", "Pakistan and Afghanistan agreed a truce in Doha",
                           "Officials said the truce starts at midnight.", development=development, event_id="ev-7")
    store.upsert_article(article)
    assert store.get_article(article.id) == article
    assert store.iter_articles() == [article]
    assert [h.article for h in store.search("truce")] == [article]


def collapse_articles() -> dict:
    """Four stories and four event groups; ev-1 spans two stories, story-m has no event."""
    specs = [
        ("a1", "Truce holds at Torkham", "The truce held overnight at Torkham.", "story-t", "ev-1"),
        ("a2", "Torkham crossing reopens", "Traders said the truce let lorries through.", "story-t", "ev-1"),
        ("b1", "Truce talks in Doha", "Delegations discussed a truce and a truce monitor in Doha.", "story-d",
         "ev-1"),
        ("c1", "Truce broken in Kurram", "The truce in Kurram broke down.", "story-k", "ev-2"),
        ("d1", "Markets and the truce", "Prices steadied with the truce.", "story-m", None),
        ("d2", "Markets again", "Prices steadied again with the truce, traders said.", "story-m", None),
    ]
    return {
        key: (make_article(f"collapse-{key}", title, text, story_id=story, published=f"2025-11-01T{8 + n:02d}:00:00Z"),
              event)
        for n, (key, title, text, story, event) in enumerate(specs)
    }


def best_of_each(hits: list[SearchHit], collapse: str) -> list[str]:
    groups: set = set()
    kept = []
    for hit in hits:
        article = hit.article
        group = article.story_id if collapse == "story" else (article.event_id or ("article", article.id))
        if group not in groups:
            groups.add(group)
            kept.append(article.id)
    return kept


@pytest.mark.parametrize("collapse", ["story", "event"])
@pytest.mark.parametrize("query", ["truce", None])
def test_search_collapse_keeps_the_best_hit_of_each_group(store, collapse, query):
    for article, event in collapse_articles().values():
        store.upsert_article(article)
        if event:
            store.set_article_event(article.id, event)
    full = store.search(query, limit=100)
    assert len(full) == 6
    expected = best_of_each(full, collapse)
    assert len(expected) == 4
    collapsed = store.search(query, limit=100, collapse=collapse)
    assert [h.article.id for h in collapsed] == expected
    by_id = {h.article.id: h for h in full}
    for hit in collapsed:  # the same hit as uncollapsed: score, snippet, article
        assert hit.article == by_id[hit.article.id].article
        assert hit.snippet == by_id[hit.article.id].snippet
        assert hit.score == pytest.approx(by_id[hit.article.id].score)
    # limit and offset page the collapsed list
    pages = [h.article.id for offset in range(0, 4) for h in store.search(query, limit=1, offset=offset,
                                                                          collapse=collapse)]
    assert pages == expected
    assert [h.article.id for h in store.search(query, limit=2, offset=1, collapse=collapse)] == expected[1:3]
    assert store.search(query, limit=5, offset=4, collapse=collapse) == []
    # filters apply before collapsing
    late = store.search(query, since="2025-11-01T12:00:00Z", limit=100, collapse=collapse)
    assert [h.article.id for h in late] == best_of_each(store.search(query, since="2025-11-01T12:00:00Z",
                                                                     limit=100), collapse)


def test_collapse_by_event_keeps_articles_without_an_event_apart(store):
    for article, _event in collapse_articles().values():
        store.upsert_article(article)  # no events at all: every article is its own group
    assert len(store.search("truce", collapse="event", limit=100)) == 6
    assert len(store.search("truce", collapse="story", limit=100)) == 4


def test_unknown_collapse_mode_is_a_clear_error(store):
    with pytest.raises(NewsmonError, match="collapse"):
        store.search("truce", collapse="outlet")


def test_event_alert_fields_round_trip(store):
    alert = make_alert("alert-ev", "2025-11-01T09:00:00Z", rules=["ceasefire-desk", "border-desk"], event_id="ev-1",
                       kind="escalation", escalation="corroborated:3", published="2025-11-01T08:00:00Z",
                       first_seen="2025-11-01T08:05:00Z", state_before="hostilities", state_after="ceasefire",
                       evidence="Both sides agreed to a ceasefire at Torkham.", confidence=0.85)
    assert store.record_alert(alert) is True
    assert store.get_alert("alert-ev") == alert
    assert store.list_alerts() == [alert]
    plain = make_alert("alert-plain", "2025-11-01T10:00:00Z")
    store.record_alert(plain)
    stored = store.get_alert("alert-plain")
    assert stored == plain and stored.kind == "story" and stored.rules == [] and stored.confidence is None

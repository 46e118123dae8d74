"""newsmon reindex: SQLite -> Elasticsearch -> SQLite loses nothing, and an interrupted copy resumes.

The Elasticsearch side is the osmem-server stand-in (or NEWSMON_ES_URL), via tests/store/conftest.py.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.errors import NewsmonError
from pipelines.models import FeedItem, FeedState
from pipelines.reindex import Checkpoint, add_reindex_parser, reindex, state_tables
from pipelines.store import open_store
from tests.store import conftest as store_fixtures
from tests.store.conftest import EsTarget, load_fixture_articles, make_article
from tests.store.test_store_contract import make_alert, make_event

# the store suite's Elasticsearch fixtures (stand-in or NEWSMON_ES_URL), for this module too
es_base = store_fixtures.es_base
es_engine = store_fixtures.es_engine
es_target = store_fixtures.es_target


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def opener_for(es_target: EsTarget | None):
    """open_store, except that the test cluster's URL opens with the test client options."""
    def opener(url: str):
        if es_target is not None and url == es_target.url:
            return es_target.open()
        return open_store(url)
    return opener


def fill(store) -> dict:
    """Every kind of state a running newsmon has, in one store."""
    articles = load_fixture_articles()
    for article in articles.values():
        store.upsert_article(article)
    store.save_feed_state(FeedState(feed_id="dawn", etag='W/"e1"', last_status=200, items_total=7, error_count=1))
    store.save_feed_state(FeedState(feed_id="geo"))
    store.mark_items_seen("dawn", ["old-1", "old-2"])
    store.spool_items([FeedItem(feed_id="dawn", item_id=f"new-{n}", link=f"https://x.example/{n}", title=f"T{n}",
                                published="2025-11-01T09:00:00Z") for n in range(3)])
    store.record_alert(make_alert("alert-1", "2025-10-28T10:00:00Z"))
    store.record_alert(make_alert("alert-1", "2025-10-28T10:00:00Z"))  # copies 2
    store.record_alert(make_alert("alert-2", "2025-10-29T10:00:00Z", channels=["log"]))
    store.enqueue_delivery("alert-1", "email")
    store.enqueue_delivery("alert-1", "webhook")
    store.enqueue_delivery("alert-2", "log")
    store.mark_delivery_failed("alert-1", "email", "timeout")
    store.mark_delivered("alert-2", "log")
    store.add_story_keys("story-old", ["k1", "shared"])
    store.add_story_keys("story-new", ["shared", "k3"])
    store.bump_story("story-old", "a1", "Frontier Ledger")
    store.bump_story("story-old", "a2", "Karachi Courier")
    store.bump_story("story-new", "a3", "Peshawar Post")
    store.save_event(make_event("ev-1", "2025-10-20T08:15:00Z"))
    store.save_event(make_event("ev-2", "2025-10-25T11:00:00+00:00", family="talks", type="talks-held",
                                status="reported", reports=[]))
    store.set_article_event(articles["chaman-ceasefire"].id, "ev-1")
    store.set_article_event(articles["urdu-ceasefire"].id, "ev-1")
    store.set_article_event(articles["istanbul-round"].id, "ev-2")
    store.record_alert(make_alert("alert-ev", "2025-10-30T10:00:00Z", rules=["r1", "r2"], event_id="ev-1",
                                  kind="event", published="2025-10-20T08:15:00Z", first_seen="2025-10-20T08:20:00Z",
                                  state_before="hostilities", state_after="ceasefire", evidence="Agreed.",
                                  confidence=0.9))
    return articles


def snapshot(store, articles) -> dict:
    """Everything the contract lets a caller read back."""
    return {
        "articles": {key: store.get_article(a.id) for key, a in articles.items()},
        "count": store.count_articles(),
        "search": [h.article.id for h in store.search("ceasefire")],
        "topic_counts": store.topic_counts(),
        "feeds": store.list_feed_states(),
        "seen": store.seen_items("dawn", ["old-1", "old-2", "new-0", "nope"]),
        "pending": store.pending_items(),
        "alerts": store.list_alerts(),
        "deliveries": store.pending_deliveries(),
        "stories": {s: store.get_story(s) for s in ("story-old", "story-new")},
        "story_for": [store.story_for_keys(["shared"]), store.story_for_keys(["k3"])],
        "events": store.list_events(),
        "event_count": store.count_events(),
        "by_event": [h.article.id for h in store.search("ceasefire", collapse="event")],
    }


def test_sqlite_to_elasticsearch_and_back_loses_nothing(tmp_path, es_target):
    original_url = sqlite_url(tmp_path / "original.db")
    original = open_store(original_url)
    articles = fill(original)
    expected = snapshot(original, articles)
    original.close()
    assert expected["deliveries"] == [("alert-1", "email", 1), ("alert-1", "webhook", 0)]
    assert expected["alerts"][2].copies == 2
    assert [e.id for e in expected["events"]] == ["ev-1", "ev-2"] and expected["events"][0].reports
    assert expected["articles"]["chaman-ceasefire"].event_id == "ev-1"
    assert expected["alerts"][0].kind == "event" and expected["alerts"][0].rules == ["r1", "r2"]

    seen_progress: list[tuple[int, int]] = []
    opener = opener_for(es_target)
    summary = reindex(original_url, es_target.url, progress=lambda d, t: seen_progress.append((d, t)), batch=4,
                      checkpoint_dir=tmp_path / "ckpt", opener=opener)
    assert summary["articles"] == summary["articles_total"] == len(articles)
    assert summary["tables"] == {"feed_states": 2, "seen_items": 2, "inbox": 3, "alerts": 3, "deliveries": 3,
                                 "stories": 2, "story_keys": 4}
    assert summary["events"] == summary["events_total"] == 2
    assert seen_progress[0] == (0, len(articles)) and seen_progress[-1] == (len(articles), len(articles))
    assert [d for d, _t in seen_progress] == sorted(d for d, _t in seen_progress)
    assert not list((tmp_path / "ckpt").glob("*.json"))  # done: the checkpoint is gone

    es = es_target.open()
    try:
        assert snapshot(es, articles) == expected
    finally:
        es.close()

    back_url = sqlite_url(tmp_path / "back.db")
    summary = reindex(es_target.url, back_url, batch=3, checkpoint_dir=tmp_path / "ckpt", opener=opener)
    assert summary["articles"] == len(articles)
    assert summary["events"] == 2
    back = open_store(back_url)
    original = open_store(original_url)
    try:
        assert snapshot(back, articles) == expected
        assert back.delivery_status("alert-1") == original.delivery_status("alert-1")
    finally:
        back.close()
        original.close()

    # copying again is harmless: nothing duplicated, nothing overwritten
    again = reindex(original_url, es_target.url, checkpoint_dir=tmp_path / "ckpt", opener=opener)
    assert again["tables"] == dict.fromkeys(again["tables"], 0)
    es = es_target.open()
    try:
        assert snapshot(es, articles) == expected
    finally:
        es.close()


class FailingTarget:
    """A real store that stops accepting articles after some batches, like a cluster going away."""

    def __init__(self, store, fail_on_call: int):
        self.store, self.fail_on_call, self.calls, self.written = store, fail_on_call, 0, []
        self.tables = state_tables(store)

    def export_state(self, table):
        return self.tables.export_state(table)

    def import_state(self, table, rows):
        return self.tables.import_state(table, rows)

    def __getattr__(self, name):
        return getattr(self.store, name)

    def upsert_article(self, article):
        self.calls += 1
        if self.calls >= self.fail_on_call:
            raise NewsmonError("store went away")
        self.written.append(article.id)
        return self.store.upsert_article(article)


def test_interrupted_copy_resumes_after_the_last_complete_batch(tmp_path):
    source_url, target_url = sqlite_url(tmp_path / "src.db"), sqlite_url(tmp_path / "dst.db")
    source = open_store(source_url)
    ids = []
    for n in range(10):
        article = make_article(f"resume-{n}", f"Story {n}", f"Body {n}.")
        source.upsert_article(article)
        ids.append(article.id)
    source.close()
    ids.sort()
    targets: list[FailingTarget] = []

    def failing_opener(url):
        store = open_store(url)
        if url == target_url:
            targets.append(FailingTarget(store, fail_on_call=8))  # dies inside the third batch of 3
            return targets[-1]
        return store

    with pytest.raises(NewsmonError, match="store went away"):
        reindex(source_url, target_url, batch=3, checkpoint_dir=tmp_path / "ckpt", opener=failing_opener)
    checkpoint = Checkpoint(tmp_path / "ckpt", source_url, target_url).load()
    assert checkpoint["after_id"] == ids[5] and checkpoint["copied"] == 6

    counting: list[FailingTarget] = []

    def counting_opener(url):
        store = open_store(url)
        if url == target_url:
            counting.append(FailingTarget(store, fail_on_call=10**9))
            return counting[-1]
        return store

    progress: list[tuple[int, int]] = []
    summary = reindex(source_url, target_url, progress=lambda d, t: progress.append((d, t)), batch=3,
                      checkpoint_dir=tmp_path / "ckpt", opener=counting_opener)
    assert summary["resumed_after"] == ids[5]
    assert summary["articles"] == 10
    assert counting[0].written == ids[6:]  # only what the first run had not finished
    assert progress[0] == (6, 10) and progress[-1] == (10, 10)
    target = open_store(target_url)
    try:
        assert [a.id for a in target.iter_articles(batch=100)] == ids
    finally:
        target.close()


class FailingEventTarget(FailingTarget):
    """A real store that stops accepting events after some, like a cluster going away."""

    def upsert_article(self, article):
        return self.store.upsert_article(article)

    def save_event(self, event):
        self.calls += 1
        if self.calls >= self.fail_on_call:
            raise NewsmonError("store went away")
        self.written.append(event.id)
        return self.store.save_event(event)


def test_interrupted_event_copy_resumes_after_the_last_complete_batch(tmp_path):
    source_url, target_url = sqlite_url(tmp_path / "src.db"), sqlite_url(tmp_path / "dst.db")
    source = open_store(source_url)
    source.upsert_article(make_article("only", "Only article", "Body."))
    ids = [f"ev-{n}" for n in range(7)]
    for event_id in ids:
        source.save_event(make_event(event_id, "2025-11-01T08:00:00Z"))
    source.close()
    targets: list[FailingEventTarget] = []

    def opener_failing_at(call):
        def opener(url):
            store = open_store(url)
            if url == target_url:
                targets.append(FailingEventTarget(store, fail_on_call=call))
                return targets[-1]
            return store
        return opener

    with pytest.raises(NewsmonError, match="store went away"):
        reindex(source_url, target_url, batch=2, checkpoint_dir=tmp_path / "ckpt", opener=opener_failing_at(6))
    checkpoint = Checkpoint(tmp_path / "ckpt", source_url, target_url).load()
    assert checkpoint["phase"] == "events" and checkpoint["events_after_id"] == ids[3]
    assert checkpoint["events_copied"] == 4 and checkpoint["copied"] == 1

    summary = reindex(source_url, target_url, batch=2, checkpoint_dir=tmp_path / "ckpt",
                      opener=opener_failing_at(10**9))
    assert targets[-1].written == ids[4:]  # only what the first run had not finished
    assert summary["events"] == summary["events_total"] == 7 and summary["articles"] == 1
    target = open_store(target_url)
    try:
        assert [e.id for e in target.iter_events(batch=100)] == ids
    finally:
        target.close()


def test_a_document_the_target_refuses_stops_the_copy_and_names_it(tmp_path, es_target):
    source_url = sqlite_url(tmp_path / "src.db")
    source = open_store(source_url)
    articles = list(load_fixture_articles().values())
    istanbul = next(a for a in articles if a.development)
    bad = replace(istanbul, development=replace(istanbul.development, start="not-a-number"))
    for article in articles:
        source.upsert_article(bad if article.id == istanbul.id else article)
    source.close()
    ordered = sorted(a.id for a in articles)
    batch = 2
    bad_batch = ordered.index(bad.id) // batch
    with pytest.raises(NewsmonError, match=rf"article\(s\) in this batch were not written \(first: {bad.id}: "):
        reindex(source_url, es_target.url, batch=batch, checkpoint_dir=tmp_path / "ckpt",
                opener=opener_for(es_target))
    saved = Checkpoint(tmp_path / "ckpt", source_url, es_target.url).load()
    if bad_batch == 0:
        assert saved == {}
    else:
        assert saved["after_id"] == ordered[bad_batch * batch - 1]


def test_refuses_same_store_and_foreign_checkpoints_and_keeps_secrets_out(tmp_path):
    url = sqlite_url(tmp_path / "a.db")
    with pytest.raises(NewsmonError, match="--from and --to are the same store"):
        reindex(url, url + "/", checkpoint_dir=tmp_path)
    checkpoint = Checkpoint(tmp_path, "elasticsearch+https://elastic:s3cret@es:9200", url)
    checkpoint.save(after_id="x", copied=1)
    assert "s3cret" not in checkpoint.path.read_text()
    assert checkpoint.load()["after_id"] == "x"
    checkpoint.path.write_text(json.dumps({"from": "elsewhere", "to": url}))
    with pytest.raises(NewsmonError, match="belongs to another copy"):
        checkpoint.load()
    checkpoint.path.write_text("{not json")
    with pytest.raises(NewsmonError, match="unreadable"):
        checkpoint.load()


def test_cli_wiring(tmp_path, capsys):
    source_url, target_url = sqlite_url(tmp_path / "src.db"), sqlite_url(tmp_path / "dst.db")
    source = open_store(source_url)
    source.upsert_article(make_article("cli", "CLI copy", "Body."))
    source.close()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    parser = argparse.ArgumentParser(prog="newsmon")
    sub = parser.add_subparsers(dest="command", required=True)
    add_reindex_parser(sub, parents=[common])
    args = parser.parse_args(["reindex", "--from", source_url, "--to", target_url, "--json",
                              "--checkpoint-dir", str(tmp_path / "ckpt"), "--batch", "10"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["articles"] == 1 and summary["to"] == target_url
    with pytest.raises(SystemExit):
        parser.parse_args(["reindex", "--from", source_url])  # --to is required

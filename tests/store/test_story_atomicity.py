"""Issue 16, §3 on every backend: story assignment is atomic, a half-written story is repaired by the
rerun, and the inbox is served round-robin by feed. The Elasticsearch backend runs on the suite's
osmem-server stand-in (or NEWSMON_ES_URL), like the contract tests."""

from __future__ import annotations

import threading

import pytest

from pipelines.models import FeedItem
from tests.store.conftest import STORE_OPENERS, make_article


def _second_handle(request: pytest.FixtureRequest, store, tmp_path):
    """Another store object on the same data (another worker process would have its own)."""
    if store.url.startswith("sqlite"):
        from pipelines.store import open_store

        return open_store(store.url)
    return STORE_OPENERS["elasticsearch"](request, tmp_path)


def test_assign_story_joins_the_oldest_owner_and_adds_the_keys(store):
    assert store.assign_story("s-first", ["k1", "k2"]) == "s-first"
    assert store.get_story("s-first") is not None
    assert store.assign_story("s-second", ["k2", "k3"]) == "s-first"  # shares k2
    assert store.assign_story("s-third", ["k3"]) == "s-first"  # k3 was added to s-first
    assert store.assign_story("s-alone", ["k9"]) == "s-alone"
    assert store.assign_story("s-empty", []) == "s-empty"  # too short for keys: its own story
    assert store.get_story("s-empty") is not None


def test_assign_story_sees_keys_written_by_add_story_keys(store):
    """Stores written before assign_story existed (and reindexed ones) keep their stories."""
    store.add_story_keys("story-old", ["k1", "shared"])
    store.add_story_keys("story-new", ["shared", "k3"])
    assert store.assign_story("s-x", ["k3", "shared"]) == "story-old"
    assert store.assign_story("s-y", ["k3"]) == "story-old"


@pytest.mark.parametrize("round_", range(3))
def test_two_writers_racing_on_overlapping_keys_get_one_story(store, request, tmp_path, round_):
    other = _second_handle(request, store, tmp_path)
    shared = [f"b{n}:shared" for n in range(60)]
    keys_a = shared + [f"b{n}:only-a" for n in range(60, 85)]
    keys_b = [f"b{n}:only-b" for n in range(60, 85)] + shared
    go = threading.Barrier(2, timeout=10)
    chosen: dict[str, str] = {}

    def assign(handle, name, keys):
        go.wait()
        chosen[name] = handle.assign_story(f"s-{name}-{round_}", keys)

    try:
        threads = [threading.Thread(target=assign, args=(store, "a", keys_a)),
                   threading.Thread(target=assign, args=(other, "b", keys_b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(chosen) == 2 and chosen["a"] == chosen["b"], chosen
        assert store.assign_story("s-later", keys_b[:3]) == chosen["a"]
    finally:
        other.close()


def test_a_rerun_repairs_a_story_bump_lost_between_upsert_and_bump(store):
    """What a SIGKILL between upsert_article and bump_story leaves (article stored, story not
    counting it), and the cycle's repair on rerun (pipelines/cycle.py _repair_story)."""
    from pipelines.cycle import _repair_story

    first = make_article("a1", "Crossing reopens", "The crossing reopens to lorries.", story_id="s-one")
    second = make_article("a2", "Crossing reopens (copy)", "The crossing reopens to lorries!", story_id="s-one")
    store.assign_story("s-one", ["k1"])
    store.upsert_article(first)
    store.bump_story("s-one", first.id, first.source)
    store.upsert_article(second)  # killed here: no bump_story
    assert store.get_story("s-one")["copies"] == 1
    _repair_story(store, second.id)
    _repair_story(store, second.id)  # a second rerun changes nothing
    story = store.get_story("s-one")
    assert story["copies"] == 2 and sorted(story["articles"]) == sorted([first.id, second.id])


def test_pending_items_are_round_robin_by_feed(store):
    huge = [FeedItem(feed_id="huge", item_id=f"i{n}", link=f"https://a.example/{n}", title=str(n))
            for n in range(300)]
    store.spool_items(huge)
    store.spool_items([FeedItem(feed_id="small", item_id="new", link="https://b.example/1", title="new")])
    store.spool_items([FeedItem(feed_id="other", item_id="x", link="https://c.example/1", title="x")])
    first = [(item.feed_id, item.item_id) for _key, item in store.pending_items(limit=5)]
    assert first == [("huge", "i0"), ("small", "new"), ("other", "x"), ("huge", "i1"), ("huge", "i2")]
    everything = store.pending_items(limit=10_000)
    assert len(everything) == 302
    assert [item.item_id for _key, item in everything if item.feed_id == "huge"] == [f"i{n}" for n in range(300)]

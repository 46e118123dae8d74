"""Two workers attaching reports of one development at the same moment open one event, on every
backend (the store's events_lock, held by EventBook while it reads, matches and saves). The
Elasticsearch backend runs on the suite's test cluster, like the contract tests."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from pipelines.events import EventBook
from tests.store.test_story_atomicity import _second_handle
from tests.test_events import T0, report, rules


def test_events_lock_excludes_a_second_holder(store, request, tmp_path):
    other = _second_handle(request, store, tmp_path)
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        inside.wait(timeout=10)
        with other.events_lock():
            order.append("second")

    try:
        thread = threading.Thread(target=second)
        thread.start()
        with store.events_lock():
            inside.set()
            thread.join(timeout=0.5)  # it must be waiting for us
            order.append("first")
        thread.join(timeout=30)
        assert order == ["first", "second"]
    finally:
        other.close()


@pytest.mark.parametrize("round_", range(3))
def test_two_workers_attaching_one_development_open_one_event(store, request, tmp_path, round_):
    other = _second_handle(request, store, tmp_path)
    go = threading.Barrier(2, timeout=10)
    at = T0 + timedelta(days=round_)
    reports = {"a": report("ceasefire-agreed", "Wire A", at), "b": report("ceasefire-agreed", "Daily B", at)}
    books = {"a": EventBook(rules(), store), "b": EventBook(rules(), other)}
    for name in books:
        books[name].events()  # each worker has read the (empty) events before the race, as a busy cycle has
    handles = {"a": store, "b": other}
    results: dict[str, object] = {}

    def attach(name: str) -> None:
        handles[name].upsert_article(reports[name])
        go.wait()
        results[name] = books[name].attach(reports[name])

    try:
        threads = [threading.Thread(target=attach, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == 2
        opened = sorted(bool(getattr(result, "opened", False)) for result in results.values())
        assert opened == [False, True], results
        events = store.list_events(watch=rules().watch)
        assert len(events) == 1 and sorted(r.outlet for r in events[0].reports) == ["Daily B", "Wire A"]
    finally:
        other.close()

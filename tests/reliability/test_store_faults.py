"""Issue 7, point 3: the store fails under a cycle (locked, disk full) or the webhook receiver is down.

Each test: cycle 1 stores a first batch; the feeds publish more; the fault hits cycle 2 at a chosen
point; cycle 2 must report it in one line and not raise, lose nothing, and never advance a feed's
state past items that are not durably held (stored, or waiting in the inbox); cycle 3, with the
fault gone, must finish the job with every item stored exactly once. Store-level behaviour of the
same faults: tests/store/test_sqlite_specific.py (test_locked_database_*, test_disk_full_*).
"""

from __future__ import annotations

import sqlite3

from pipelines.cycle import run_cycle
from tests.reliability.crash import coverage_feeds, coverage_site
from tests.reliability.harness import (
    ALPHA_IDS,
    BETA_IDS,
    IdempotentReceiver,
    accounted,
    all_items_held,
    assert_nothing_lost,
    assert_one_line_errors,
    feed_state,
    finish_and_check,
    free_port,
    inbox_size,
    monitor,
    publish_more,
    site,
    snapshot,
    two_feeds,
)


def test_locked_store_during_polling(tmp_path):
    server = site()
    feeds = two_feeds(server)
    db = tmp_path / "store.db"
    with server:
        with monitor(tmp_path, feeds) as ctx:
            assert run_cycle(ctx).articles_stored == 3
            before = snapshot(ctx.store)
            states = {s.feed_id: s for s in ctx.store.list_feed_states()}
        publish_more(server)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock for the whole cycle
        try:
            with monitor(tmp_path, feeds, store_url=f"sqlite:///{db}?busy_timeout=0.2") as ctx:
                report = run_cycle(ctx)
                assert_one_line_errors(report)
                [alpha] = [e for e in report.errors if e.startswith("feed alpha:")]
                assert "poll not recorded, feed state kept" in alpha and "locked" in alpha and str(db) in alpha
                assert any(e.startswith("feed beta: poll result not recorded") for e in report.errors)
                assert report.errors[-1].startswith("alert deliveries left queued")
                for feed_id, old in states.items():  # reads still work in WAL mode
                    assert feed_state(ctx.store, feed_id) == old, "feed state moved although nothing was stored"
                assert not ctx.store.seen_items("beta", BETA_IDS[1:])
                assert_nothing_lost(before, ctx.store)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        finish_and_check(tmp_path, feeds, before)


def test_locked_store_in_the_middle_of_processing(tmp_path):
    server = site()
    feeds = two_feeds(server)
    db = tmp_path / "store.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    with server:
        with monitor(tmp_path, feeds) as ctx:
            run_cycle(ctx)
            before = snapshot(ctx.store)
        publish_more(server)
        with monitor(tmp_path, feeds, store_url=f"sqlite:///{db}?busy_timeout=0.2") as ctx:
            def lock_after_five(done: int, _total: int) -> None:
                if done == 5 and not holder.in_transaction:
                    holder.execute("BEGIN EXCLUSIVE")

            ctx.progress = lock_after_five
            try:
                report = run_cycle(ctx)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert_one_line_errors(report)
            assert report.articles_stored == 5
            assert any("locked" in e and "unfinished items stay in the inbox" in e for e in report.errors)
            assert inbox_size(ctx.store) == 13 - 5  # two alpha + eleven beta items were new
            all_items_held(ctx, "alpha", ALPHA_IDS)
            all_items_held(ctx, "beta", BETA_IDS)
            assert_nothing_lost(before, ctx.store)
        finish_and_check(tmp_path, feeds, before)


def test_disk_full_in_the_middle_of_processing(tmp_path):
    server = site()
    feeds = two_feeds(server)
    db = tmp_path / "store.db"
    with server:
        with monitor(tmp_path, feeds) as ctx:
            run_cycle(ctx)
            before = snapshot(ctx.store)
        publish_more(server)
        with monitor(tmp_path, feeds) as ctx:
            def disk_full_after_three(done: int, _total: int) -> None:
                if done == 3:
                    # Fault injection on the store's own connection for this thread (private on
                    # purpose): VACUUM leaves no free page, and the file may not grow any more.
                    with sqlite3.connect(db, isolation_level=None) as other:
                        other.execute("VACUUM")
                    conn = ctx.store._conn()
                    pages = conn.execute("PRAGMA page_count").fetchone()[0]
                    conn.execute(f"PRAGMA max_page_count = {pages}")

            ctx.progress = disk_full_after_three
            report = run_cycle(ctx)
            assert_one_line_errors(report)
            assert report.articles_stored == 3
            [line] = [e for e in report.errors if "full" in e]
            assert str(db) in line and "unfinished items stay in the inbox" in line
            assert inbox_size(ctx.store) == 13 - 3
            all_items_held(ctx, "alpha", ALPHA_IDS)
            all_items_held(ctx, "beta", BETA_IDS)
            assert_nothing_lost(before, ctx.store)
        finish_and_check(tmp_path, feeds, before)


def test_disk_full_while_spooling_keeps_the_feed_state(tmp_path):
    server = site()
    feeds = two_feeds(server)
    db = tmp_path / "store.db"
    with server:
        with monitor(tmp_path, feeds) as ctx:
            run_cycle(ctx)
            before = snapshot(ctx.store)
            states = {s.feed_id: s for s in ctx.store.list_feed_states()}
        publish_more(server)
        with sqlite3.connect(db, isolation_level=None) as other:
            other.execute("VACUUM")
        with monitor(tmp_path, feeds) as ctx:
            conn = ctx.store._conn()  # fault injection, as above
            conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
            report = run_cycle(ctx)
            assert_one_line_errors(report)
            [failed] = [e for e in report.errors if "poll not recorded, feed state kept" in e]
            assert failed.startswith("feed beta: ") and "its 12 items" in failed and "full" in failed, report.errors
            assert feed_state(ctx.store, "beta").etag == states["beta"].etag
            assert not ctx.store.seen_items("beta", BETA_IDS[1:])
            # alpha's two new items fitted: its state moved on only because they are in the inbox
            assert feed_state(ctx.store, "alpha").etag != states["alpha"].etag
            all_items_held(ctx, "alpha", ALPHA_IDS)
            assert report.articles_stored == 0 and inbox_size(ctx.store) == 2
            assert_nothing_lost(before, ctx.store)
        finish_and_check(tmp_path, feeds, before)


def test_webhook_receiver_down_then_back(tmp_path):
    port = free_port()
    receiver = IdempotentReceiver(port=port)
    with coverage_site() as server:
        feeds = coverage_feeds(server.base)
        with monitor(tmp_path, feeds, hook_url=receiver.url()) as ctx:
            first = run_cycle(ctx)
            assert first.alerts_fired > 5 and first.alerts_delivered == 0
            assert any("POST failed" in e and f"127.0.0.1:{port}" in e for e in first.errors)
            queued = {alert_id for alert_id, _channel, _n in ctx.store.pending_deliveries(limit=1000)}
            assert queued == {a.id for a in ctx.store.list_alerts(limit=1000)}
            second = run_cycle(ctx)  # still down: still queued, nothing dropped
            assert second.alerts_delivered == 0
            assert len(ctx.store.pending_deliveries(limit=1000)) == len(queued)
            with receiver:
                third = run_cycle(ctx)
                assert third.alerts_delivered == len(queued) and not third.errors
                assert set(receiver.applied()) == queued and len(receiver.raw()) == len(queued)
            assert ctx.store.pending_deliveries(limit=1000) == []
            assert accounted(first) == first.items_new

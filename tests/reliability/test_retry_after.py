"""Issue 7, point 1: a 429 (or 503) with Retry-After is honoured across cycles and processes.

"Honoured" means: the time is kept in the feed's state (FeedState.retry_after, persisted by the
store), the feed is not requested again before it (one report line says so; `watch`/due-only
cycles just treat it as not due), it is capped at 24 hours so one header cannot silence a feed
for good, and the first successful poll clears it. Parsing the header is covered by
tests/test_http.py::test_429_with_retry_after_seconds / test_503_with_retry_after_http_date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pipelines.cycle import MAX_RETRY_AFTER, run_cycle
from pipelines.models import iso
from tests.localserver import Route
from tests.reliability.harness import (
    GOOD_PAGES,
    RSS,
    assert_one_line_errors,
    feed_state,
    good_feed,
    monitor,
    rss,
    rss_item,
    site,
)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def feeds(base: str) -> list[dict]:
    return [{"id": "good", "url": f"{base}/feeds/good.xml"}, {"id": "busy", "url": f"{base}/feeds/busy.xml"}]


def busy_route(headers: dict[str, str], status: int = 429) -> Route:
    return Route(body=b"slow down", status=status, content_type="text/plain", headers=headers, etag=False)


def test_retry_after_is_kept_skipped_then_cleared(tmp_path):
    server = site()
    server.routes["/feeds/good.xml"] = Route(body=good_feed(server.base, GOOD_PAGES[:1]), content_type=RSS)
    server.routes["/feeds/busy.xml"] = busy_route({"Retry-After": "120"})
    with server:
        with monitor(tmp_path, feeds(server.base)) as ctx:
            started = datetime.now(UTC)
            first = run_cycle(ctx)
            assert_one_line_errors(first)
            [line] = [e for e in first.errors if e.startswith("feed busy (")]
            assert "HTTP 429" in line and "retry after 120s" in line and "not polled again before" in line
            state = feed_state(ctx.store, "busy")
            until = parse(state.retry_after)
            assert started + timedelta(seconds=115) <= until <= datetime.now(UTC) + timedelta(seconds=125)
            assert state.last_status == 429 and state.error_count == 1

            second = run_cycle(ctx)
            assert len(server.requests_for("/feeds/busy.xml")) == 1, "polled again inside Retry-After"
            assert len(server.requests_for("/feeds/good.xml")) == 2, "the other feed must still be polled"
            [skip] = [e for e in second.errors if e.startswith("feed busy (")]
            assert "not polled" in skip and state.retry_after in skip
            assert second.feeds_polled == 1 and second.feeds_failed == 0

            quiet = run_cycle(ctx, due_only=True)  # `newsmon watch`: simply not due, no line every tick
            assert not [e for e in quiet.errors if "busy" in e]
            assert len(server.requests_for("/feeds/busy.xml")) == 1

        with monitor(tmp_path, feeds(server.base)) as ctx:  # a new process: the pause is in the store
            assert feed_state(ctx.store, "busy").retry_after == state.retry_after
            run_cycle(ctx)
            assert len(server.requests_for("/feeds/busy.xml")) == 1

            # Two minutes pass: the stored time is moved into the past (the clock itself cannot be).
            state = feed_state(ctx.store, "busy")
            state.retry_after = iso(datetime.now(UTC) - timedelta(seconds=1))
            ctx.store.save_feed_state(state)
            item = rss_item(title="Back in business", link=f"{server.base}/pages/{GOOD_PAGES[1]}.html", guid="busy-1")
            server.routes["/feeds/busy.xml"] = Route(body=rss([item]), content_type=RSS)
            after = run_cycle(ctx)
            assert len(server.requests_for("/feeds/busy.xml")) == 2
            assert after.feeds_failed == 0, after.errors
            state = feed_state(ctx.store, "busy")
            assert state.retry_after is None and state.last_error is None and state.etag
            assert after.articles_stored == 1


@pytest.mark.parametrize("header, expected", [
    ("http-date-90s", timedelta(seconds=90)),
    ("1000000000", MAX_RETRY_AFTER),  # a hostile or broken value is capped
])
def test_503_retry_after_forms_and_cap(tmp_path, header, expected):
    server = site()
    server.routes["/feeds/good.xml"] = Route(body=good_feed(server.base, GOOD_PAGES[:1]), content_type=RSS)
    if header.startswith("http-date"):
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    server.routes["/feeds/busy.xml"] = busy_route({"Retry-After": header}, status=503)
    with server, monitor(tmp_path, feeds(server.base)) as ctx:
        now = datetime.now(UTC)
        run_cycle(ctx)
        until = parse(feed_state(ctx.store, "busy").retry_after)
        assert now + expected - timedelta(seconds=5) <= until <= now + expected + timedelta(seconds=5)
        run_cycle(ctx)
        assert len(server.requests_for("/feeds/busy.xml")) == 1


def test_429_without_retry_after_is_retried_on_the_normal_schedule(tmp_path):
    server = site()
    server.routes["/feeds/good.xml"] = Route(body=good_feed(server.base, GOOD_PAGES[:1]), content_type=RSS)
    server.routes["/feeds/busy.xml"] = busy_route({})
    with server, monitor(tmp_path, feeds(server.base)) as ctx:
        run_cycle(ctx)
        assert feed_state(ctx.store, "busy").retry_after is None
        run_cycle(ctx)
        assert len(server.requests_for("/feeds/busy.xml")) == 2

"""Feed health: when a cycle counts as failed, and when a feed has been down long enough to page ops.

Two checks, both settings of newsmon.yaml's `health:` section (pipelines/config.py):

* max_failed_share: a poll in which more than this share of the feeds it tried failed makes the
  cycle fail (`newsmon run --once` exits 1 after storing what it could; the DAG's poll task fails
  after recording every result). Unset (the default): only a poll in which every feed failed.
* stale_after: N. A feed that brought no new items for longer than N × its interval (failing, or
  answering with nothing new) raises one alert of kind "health" to `health.channels`, through the
  store's outbox like every other alert. Its id is a hash of the feed and the moment the quiet began
  (FeedState.last_new_items, or first_polled for a feed that never brought any), so every later
  cycle of the same outage finds it recorded and pages no one again; new items end the outage, and
  the next one gets a new id.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from pipelines.models import Alert, CycleReport, FeedConfig, FeedState, iso, parse_iso

HEALTH_RULE = "feed-health"
HEALTH_DESK = "ops"  # a label, not an alerts.yaml desk: health alerts stay out of the desks' digests
DEFAULT_STALE_AFTER = 12


def failed_share_problem(report: CycleReport, max_failed_share: float | None) -> str | None:
    """The failure line when this poll's failed share is over the limit, else None.

    The share is failed / tried, over the feeds whose poll result came back this cycle (feeds_polled;
    a feed skipped for Retry-After or not due is not tried). None as the limit: only all of them."""
    tried = report.feeds_polled
    failed = min(report.feeds_failed, tried)
    if tried == 0 or failed == 0:
        return None
    share = failed / tried
    if max_failed_share is None:
        if failed < tried:
            return None
        limit = "all feeds failed"
    elif share > max_failed_share:
        limit = f"more than health.max_failed_share {max_failed_share:g}"
    else:
        return None
    return f"{failed} of {tried} feeds failed ({limit}); see the feed lines above"


def health_alert_id(feed_id: str, quiet_since: str) -> str:
    """One id per feed per outage: the outage is named by the moment the feed went quiet."""
    return hashlib.sha256(f"health|{feed_id}|{quiet_since}".encode()).hexdigest()[:32]


def quiet_since(state: FeedState) -> datetime | None:
    """When the feed last brought new items; its first poll if it never did; None if never polled."""
    return parse_iso(state.last_new_items) or parse_iso(state.first_polled) or parse_iso(state.last_polled)


def failing(state: FeedState) -> bool:
    """The feed's last poll failed (a success sets last_success to the poll's time)."""
    return bool(state.last_polled) and state.last_success != state.last_polled


def _hours(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def stale_feed_alert(feed: FeedConfig, state: FeedState, now: datetime, stale_after: float,
                     channels: list[str]) -> Alert | None:
    """The feed-health alert for this feed's current outage, or None while the feed is healthy."""
    since = quiet_since(state)
    if since is None:
        return None
    limit = timedelta(seconds=feed.interval * stale_after)
    quiet = now - since
    if quiet <= limit:
        return None
    since_text = iso(since) or ""
    if failing(state):
        down_from = parse_iso(state.last_success) or since
        title = f"feed {feed.id} failing for {_hours(now - down_from)}: {state.last_error or 'unknown error'}"
    else:
        title = f"feed {feed.id} silent: no new items for {_hours(quiet)}"
    matched = (f"no new items since {since_text}, more than {stale_after:g} × its {feed.interval} s interval "
               f"(health.stale_after); last success {state.last_success or 'never'}")
    return Alert(id=health_alert_id(feed.id, since_text), rule_id=HEALTH_RULE, desk=HEALTH_DESK, article_id="",
                 story_id="", title=title, url=feed.url, source=feed.id, development=None, topics=[],
                 matched=matched, created=iso(now) or "", channels=list(channels), rules=[HEALTH_RULE],
                 kind="health", first_seen=since_text, evidence=state.last_error or "")


def check_feed_health(ctx: Any, report: CycleReport, now: datetime) -> list[str]:
    """Raise (record and queue) a health alert for every enabled feed quiet for too long. Returns new ids.

    A replay (ctx.as_of) checks nothing: its clock jumps by days between cycles. Only enabled channels
    are queued, as for desk alerts; with no health.channels the stale feeds are only counted."""
    if ctx.as_of is not None:
        return []
    settings = ctx.config.settings
    channels = [c for c in settings.health_channels
                if (channel := ctx.config.alerts.channels.get(c)) is not None and channel.enabled]
    states = {s.feed_id: s for s in ctx.store.list_feed_states()}
    fired: list[str] = []
    for feed in ctx.config.feeds:
        state = states.get(feed.id)
        if not feed.enabled or state is None:
            continue
        alert = stale_feed_alert(feed, state, now, settings.stale_after, channels)
        if alert is None:
            continue
        report.feeds_stale += 1
        if not channels:
            continue
        existing = ctx.store.get_alert(alert.id)
        if existing is None:
            if ctx.store.record_alert(alert):
                fired.append(alert.id)
        else:
            alert = existing  # this outage has paged already; record_alert would only count a copy
        for channel in alert.channels:  # idempotent: repairs a crash between recording and queuing
            ctx.store.enqueue_delivery(alert.id, channel)
    report.health_alerts += len(fired)
    return fired

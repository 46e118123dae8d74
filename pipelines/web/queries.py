"""Read models for the dashboard, built only from Store protocol methods.

The timeline and the event page read development events (store.list_events / get_event);
an event's desks are the desks of its alerts. The protocol has no "list stories", "place
counts" or facet queries, so those views scan recent articles through ``store.search(None, ...)`` (filters
only, newest first) and aggregate in Python. Each scan is capped (SCAN_LIMIT): on a
large store the views cover the newest SCAN_LIMIT matching articles and say so
(``truncated``). Cheaper store methods that would replace the scans are named in
docs/dashboard.md.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipelines.alerts import local_time, log_entry
from pipelines.events import reach_text, status_label
from pipelines.models import (
    Alert,
    Article,
    DevelopmentEvent,
    FeedConfig,
    FeedState,
    SearchHit,
    iso,
    parse_iso,
)

SCAN_LIMIT = 5000  # articles one aggregate view reads at most
FACET_SCAN = 2000  # recent articles sampled for the source/language filter lists
ALERT_SCAN = 1000  # a desk's alerts read to find the events it was notified of
EVENT_SCAN = 5000  # events read for a desk's timeline (an event's desks are those of its alerts)
MAX_BUCKETS = 400  # chart columns; an hourly range longer than this falls back to days
STALE_FACTOR = 3  # a feed not successfully polled for this many intervals is "stale"
PLACE_EXAMPLES = 5




def event_time(article: Article) -> str:
    """When the article happened for the desk: published, else fetched (as the store orders them)."""
    return iso(parse_iso(article.published)) or iso(parse_iso(article.fetched)) or article.fetched or ""


def development_family(dev_type: str) -> str:
    """ceasefire-* developments belong to the ceasefire; everything else (talks-*, agreement-*) to the talks."""
    return "ceasefire" if dev_type.startswith("ceasefire") else "talks"


# --- serialisation ---------------------------------------------------------------------------


def article_summary(article: Article) -> dict[str, Any]:
    """An article without its body: what lists and tables need."""
    dev = article.development
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title,
        "source": article.source,
        "desk": article.desk,
        "feed_id": article.feed_id,
        "language": article.language,
        "author": article.author,
        "published": article.published,
        "fetched": article.fetched,
        "event_time": event_time(article),
        "story_id": article.story_id,
        "topics": article.topic_ids(),
        "development": {"type": dev.type, "evidence": dev.evidence, "family": development_family(dev.type)}
        if dev else None,
        "places": [{"id": str(p.get("id", "")), "name": str(p.get("name", ""))} for p in article.places],
        "relevant": article.relevant,
        "extraction_source": article.extraction_source,
        "event_id": article.event_id,
    }


def article_detail(article: Article) -> dict[str, Any]:
    return article_summary(article) | {
        "text": article.text,
        "original_url": article.original_url,
        "entities": [{"id": str(e.get("id", "")), "name": str(e.get("name", "")), "kind": str(e.get("kind", ""))}
                     for e in article.entities],
        "topic_scores": [{"id": t.id, "score": t.score} for t in article.topics],
    }


def hit_out(hit: SearchHit) -> dict[str, Any]:
    return {"article": article_summary(hit.article), "score": hit.score, "snippet_html": hit.snippet}


def alert_out(alert: Alert, event: DevelopmentEvent | None = None, alert_config: Any = None) -> dict[str, Any]:
    """An alert as pipelines.alerts.log_entry shows it (its event so far, times in the desk's time zone),
    plus what the card needs: the development family and, for event alerts, the reach line."""
    data = log_entry(alert, event, alert_config)
    data["family"] = development_family(alert.development) if alert.development else None
    data["rules"] = list(data.get("rules") or []) or [alert.rule_id]
    summary = data.get("event")
    if summary is not None:
        first = summary.get("first_report") or {}
        summary["reach"] = reach_text(int(summary.get("outlet_count") or 0), first.get("outlet"),
                                      first.get("time_local"))
    return data


def alerts_out(store: Any, alerts: Iterable[Alert], alert_config: Any = None) -> list[dict[str, Any]]:
    """alert_out for many alerts, each event read once."""
    events: dict[str, DevelopmentEvent | None] = {}
    out = []
    for alert in alerts:
        event = None
        if alert.event_id:
            if alert.event_id not in events:
                events[alert.event_id] = store.get_event(alert.event_id)
            event = events[alert.event_id]
        out.append(alert_out(alert, event, alert_config))
    return out


def desk_zone(alert_config: Any, desk: str | None) -> ZoneInfo:
    """The desk's time zone (alerts.yaml), UTC for no desk, an unknown desk or no config."""
    found = alert_config.desks.get(desk) if alert_config is not None and desk else None
    return found.zone() if found is not None else ZoneInfo("UTC")


def _named(ids: Iterable[str], names: dict[str, str] | None) -> list[dict[str, str]]:
    names = names or {}
    return [{"id": str(i), "name": names.get(str(i), str(i))} for i in ids]


def event_summary(event: DevelopmentEvent, zone: ZoneInfo, names: dict[str, str] | None = None) -> dict[str, Any]:
    """One event as the timeline shows it: transition, status, first report, reach, evidence."""
    first = event.first_report
    outlets = event.outlets
    return {
        "id": event.id,
        "watch": event.watch,
        "family": event.family,
        "type": event.type,
        "status": event.status,
        "status_label": status_label(event),
        "state_before": event.state_before,
        "state_after": event.state_after,
        "opened": event.opened,
        "opened_local": local_time(event.opened, zone),
        "updated": event.updated,
        "updated_local": local_time(event.updated, zone),
        "outlets": outlets,
        "outlet_count": len(outlets),
        "report_count": len(event.reports),
        "evidence": first.evidence if first else "",
        "first_report": {
            "outlet": first.outlet, "time": first.time, "time_local": local_time(first.time, zone),
            "url": first.url, "title": first.title, "article_id": first.article_id, "story_id": first.story_id,
            "language": first.language, "mode": first.mode,
        } if first else None,
        "reach": reach_text(len(outlets), first.outlet if first else None,
                            local_time(first.time, zone) if first else None),
        "venue": _named([event.venue], names)[0] if event.venue else None,
        "places": _named(event.places, names),
        "parties": _named(event.parties, names),
        "superseded_by": event.superseded_by,
        "confidence": event.confidence,
    }


def event_detail(store: Any, event_id: str, zone: ZoneInfo, names: dict[str, str] | None = None) -> dict[str, Any] | None:
    """An event with every report (first first) and the desks it was notified to."""
    event = store.get_event(event_id)
    if event is None:
        return None
    desks = sorted({a.desk for a in store.list_alerts(limit=ALERT_SCAN, event_id=event.id)})
    reports = [{
        "article_id": r.article_id, "story_id": r.story_id, "url": r.url, "title": r.title, "outlet": r.outlet,
        "time": r.time, "time_local": local_time(r.time, zone), "first_seen": r.first_seen,
        "first_seen_local": local_time(r.first_seen, zone), "language": r.language, "mode": r.mode,
        "type": r.type, "evidence": r.evidence,
    } for r in event.reports]
    return event_summary(event, zone, names) | {"timezone": str(zone), "reports": reports, "desks": desks}


# --- scans -----------------------------------------------------------------------------------


def scan_articles(store: Any, *, desk: str | None = None, topic: str | None = None,
                  source: str | None = None, language: str | None = None, since: str | None = None,
                  until: str | None = None, limit: int = SCAN_LIMIT) -> tuple[list[Article], bool]:
    """Newest matching articles, at most limit; (articles, truncated)."""
    hits = store.search(None, topic=topic, desk=desk, source=source, language=language,
                        since=since, until=until, limit=limit + 1)
    articles = [h.article for h in hits]
    return articles[:limit], len(articles) > limit


def list_alerts(store: Any, *, since: str | None = None, desk: str | None = None,
                limit: int = 100) -> list[Alert]:
    """Newest first; since is inclusive (a poller dedupes by id)."""
    return store.list_alerts(since=since, limit=limit, desk=desk or None)


def desk_event_ids(store: Any, desk: str) -> set[str]:
    """Events notified to a desk: the event ids of its newest ALERT_SCAN alerts."""
    return {a.event_id for a in store.list_alerts(limit=ALERT_SCAN, desk=desk) if a.event_id}


def timeline(store: Any, *, desk: str | None = None, since: str | None = None, until: str | None = None,
             family: str | None = None, limit: int = 200, zone: ZoneInfo | None = None,
             names: dict[str, str] | None = None) -> dict[str, Any]:
    """Development events newest first (by first report), one row per event however many outlets
    reported it. With a desk: only the events notified to that desk."""
    zone = zone or ZoneInfo("UTC")
    scan = EVENT_SCAN if desk else limit
    events = store.list_events(family=family, since=since, until=until, limit=scan + 1, newest_first=True)
    truncated = len(events) > scan
    events = events[:scan]
    if desk:
        notified = desk_event_ids(store, desk)
        events = [e for e in events if e.id in notified]
    truncated = truncated or len(events) > limit
    return {"entries": [event_summary(e, zone, names) for e in events[:limit]], "timezone": str(zone),
            "truncated": truncated}


def _bucket_start(moment: datetime, bucket: str) -> datetime:
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def topic_volume(store: Any, *, desk: str | None = None, since: str | None = None, until: str | None = None,
                 bucket: str = "auto", topic_names: dict[str, str] | None = None) -> dict[str, Any]:
    """Articles per topic per hour or day, empty buckets filled, so the chart's x axis is time."""
    per_hour: Counter[tuple[str, datetime]] = Counter()
    truncated = False
    if desk:  # topic_counts has no desk filter
        articles, truncated = scan_articles(store, desk=desk, since=since, until=until)
        for article in articles:
            moment = parse_iso(event_time(article))
            if moment is None:
                continue
            for topic in dict.fromkeys(article.topic_ids()):
                per_hour[(topic, _bucket_start(moment, "hour"))] += 1
    else:
        for row in store.topic_counts(since=since, until=until):
            moment = parse_iso(row["hour"])
            if moment is not None:
                per_hour[(row["topic"], moment)] += int(row["count"])
    hours = sorted({moment for _topic, moment in per_hour})
    if bucket not in ("hour", "day"):
        span = (hours[-1] - hours[0]) if hours else timedelta(0)
        bucket = "hour" if span <= timedelta(hours=72) else "day"
    if bucket == "hour" and hours and (hours[-1] - hours[0]) / timedelta(hours=1) >= MAX_BUCKETS:
        bucket = "day"
    counts: Counter[tuple[str, datetime]] = Counter()
    for (topic, moment), count in per_hour.items():
        counts[(topic, _bucket_start(moment, bucket))] += count
    buckets: list[datetime] = []
    if counts:
        step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
        first = min(m for _t, m in counts)
        last = max(m for _t, m in counts)
        current = first
        while len(buckets) < MAX_BUCKETS:
            buckets.append(current)
            if last - current < step:  # not current += step past the last: 9999-12-31 has no next day
                break
            current += step
    index = {moment: i for i, moment in enumerate(buckets)}
    names = topic_names or {}
    series: dict[str, list[int]] = {}
    for (topic, moment), count in counts.items():
        if moment in index:
            series.setdefault(topic, [0] * len(buckets))[index[moment]] += count
    ordered = sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    return {
        "bucket": bucket,
        "buckets": [iso(b) for b in buckets],
        "series": [{"topic": topic, "name": names.get(topic, topic), "counts": values, "total": sum(values)}
                   for topic, values in ordered],
        "truncated": truncated,
    }


def _coordinate(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) <= 180 else None  # NaN and nonsense out


def place_counts(store: Any, *, desk: str | None = None, topic: str | None = None, since: str | None = None,
                 until: str | None = None, place_kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """Places mentioned by matching articles, with counts and the newest few articles for each.

    place_kinds (id -> country/city/..., from the taxonomy) lets the map list countries
    instead of drawing a dot at their centre."""
    kinds = place_kinds or {}
    articles, truncated = scan_articles(store, desk=desk, topic=topic, since=since, until=until)
    places: dict[str, dict[str, Any]] = {}
    for article in articles:  # newest first, so the examples are the latest
        for place in article.places:
            lat, lon = _coordinate(place.get("lat")), _coordinate(place.get("lon"))
            if lat is None or lon is None or abs(lat) > 90:
                continue
            key = str(place.get("id") or place.get("name") or f"{lat},{lon}")
            entry = places.setdefault(key, {"id": key, "name": str(place.get("name") or key), "lat": lat,
                                            "lon": lon, "kind": kinds.get(key), "count": 0, "articles": []})
            if any(a["id"] == article.id for a in entry["articles"]):
                continue
            entry["count"] += 1
            if len(entry["articles"]) < PLACE_EXAMPLES:
                entry["articles"].append({"id": article.id, "title": article.title, "story_id": article.story_id,
                                          "source": article.source, "time": event_time(article)})
    ordered = sorted(places.values(), key=lambda p: (-p["count"], p["name"]))
    return {"places": ordered, "articles": len(articles), "truncated": truncated}


def recent_stories(store: Any, *, desk: str | None = None, topic: str | None = None, since: str | None = None,
                   until: str | None = None, limit: int = 50) -> dict[str, Any]:
    """Stories of the newest matching articles, newest first, with their copy counts and sources."""
    articles, truncated = scan_articles(store, desk=desk, topic=topic, since=since, until=until)
    by_story: dict[str, list[Article]] = {}
    for article in articles:
        by_story.setdefault(article.story_id, []).append(article)
    stories = []
    for story_id, members in list(by_story.items())[:limit]:
        story = store.get_story(story_id) or {}
        members.sort(key=lambda a: (event_time(a), a.id))
        lead = members[0]
        developments = sorted({a.development.type for a in members if a.development})
        stories.append({
            "id": story_id,
            "title": lead.title,
            "first_seen": story.get("first_seen"),
            "first_published": event_time(lead),
            "latest": event_time(members[-1]),
            "copies": story.get("copies", len(members)),
            "sources": story.get("sources") or list(dict.fromkeys(a.source for a in members)),
            "topics": list(dict.fromkeys(t for a in members for t in a.topic_ids())),
            "developments": developments,
            "lead_article_id": lead.id,
        })
    return {"stories": stories, "truncated": truncated}


def story_detail(store: Any, story_id: str) -> dict[str, Any] | None:
    """A story with every stored copy (oldest first). Copies whose article is gone are listed by id only."""
    story = store.get_story(story_id)
    if story is None:
        return None
    copies, missing = [], []
    for article_id in story.get("articles", []):
        article = store.get_article(article_id)
        if article is None:
            missing.append(article_id)
        else:
            copies.append(article)
    copies.sort(key=lambda a: (event_time(a), a.id))
    lead = copies[0] if copies else None
    return {
        "id": story["id"],
        "first_seen": story.get("first_seen"),
        "copies": story.get("copies", len(copies)),
        "sources": story.get("sources", []),
        "title": lead.title if lead else "",
        "lead": article_detail(lead) if lead else None,
        "articles": [article_summary(a) for a in copies],
        "missing_articles": missing,
        "developments": sorted({a.development.type for a in copies if a.development}),
    }


def feed_health(states: Iterable[FeedState], feeds: list[FeedConfig] | None,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """Configured feeds joined with their stored state, each with one status word.

    failing: the last poll failed. warning: fetched, but parsed with problems. stale: no
    success for STALE_FACTOR intervals. never: configured, not polled yet. disabled.
    unconfigured: state in the store for a feed no longer in feeds.yaml."""
    now = now or datetime.now(UTC)
    by_id = {s.feed_id: s for s in states}
    rows = []
    configured = {f.id: f for f in feeds or []}
    for feed_id in list(configured) + sorted(set(by_id) - set(configured)):
        feed = configured.get(feed_id)
        state = by_id.get(feed_id)
        status = _feed_status(feed, state, now)
        rows.append({
            "feed_id": feed_id,
            "url": feed.url if feed else None,
            "desk": feed.desk if feed else None,
            "language": feed.language if feed else None,
            "interval": feed.interval if feed else None,
            "enabled": feed.enabled if feed else None,
            "status": status,
            "last_polled": state.last_polled if state else None,
            "last_success": state.last_success if state else None,
            "last_status": state.last_status if state else None,
            "last_error": state.last_error if state else None,
            "items_total": state.items_total if state else 0,
            "not_modified_count": state.not_modified_count if state else 0,
            "error_count": state.error_count if state else 0,
            "retry_after": getattr(state, "retry_after", None) if state else None,
        })
    order = {"failing": 0, "stale": 1, "warning": 2, "never": 3, "unconfigured": 4, "ok": 5, "disabled": 6}
    rows.sort(key=lambda r: (order.get(r["status"], 9), r["feed_id"]))
    return rows


def _feed_status(feed: FeedConfig | None, state: FeedState | None, now: datetime) -> str:
    if feed is None:
        return "unconfigured"
    if not feed.enabled:
        return "disabled"
    if state is None or not state.last_polled:
        return "never"
    if state.last_error and state.last_success != state.last_polled:
        return "failing"
    last_success = parse_iso(state.last_success)
    if last_success is None or now - last_success > timedelta(seconds=STALE_FACTOR * max(feed.interval, 60)):
        return "stale"
    return "warning" if state.last_error else "ok"


# --- facets ----------------------------------------------------------------------------------


class TTLCache:
    """One value per key for a few seconds: the filter lists need not be exact to the second."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
            if hit and now - hit[0] < self.seconds:
                return hit[1]
        value = compute()
        with self._lock:
            self._values[key] = (now, value)
        return value


def observed_facets(store: Any) -> dict[str, list[dict[str, Any]]]:
    """Sources, languages and desks seen in the newest FACET_SCAN articles, most frequent first."""
    articles, _ = scan_articles(store, limit=FACET_SCAN)
    counted = {"sources": Counter(a.source for a in articles if a.source),
               "languages": Counter(a.language for a in articles if a.language),
               "desks": Counter(a.desk for a in articles if a.desk)}
    return {name: [{"id": value, "count": count} for value, count in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]
            for name, c in counted.items()}

"""Plain data records passed between pipeline stages.

Every stage takes and returns these, so stages can be tested alone and the
Airflow tasks only need to pass ids and counts between them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def _build(cls: Any, data: dict[str, Any]) -> Any:
    """A record from a stored dict, ignoring keys the class no longer (or not yet) has."""
    known = cls.__dataclass_fields__
    return cls(**{k: v for k, v in data.items() if k in known})


def parse_iso(value: str | None) -> datetime | None:
    """ISO-8601 date or datetime (Z or offset) -> aware UTC datetime; None when missing or unparseable.

    A time without a zone is UTC, like every time the store keeps. None too when the time has no
    UTC form (9999-12-31T23:59:59-14:00 is in year 10000): callers treat it as an unparseable value."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def iso(dt: datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, the one timestamp format of the store and the API.

    The year always has four digits (strftime writes 999, not 0999), so string order is time order;
    None when the time has no UTC form (beyond year 1..9999)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:
        return None
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"


@dataclass
class FeedConfig:
    id: str
    url: str
    desk: str
    language: str = "en"
    interval: int = 300  # seconds between polls
    enabled: bool = True
    name: str | None = None  # the outlet as desks know it (articles' `source`); None: the feed's own title


@dataclass
class FeedState:
    """What we remember about one feed between cycles (conditional GET + health)."""

    feed_id: str
    etag: str | None = None
    last_modified: str | None = None
    last_polled: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_status: int | None = None
    items_total: int = 0
    not_modified_count: int = 0
    error_count: int = 0
    retry_after: str | None = None  # ISO UTC: the server asked (429/503 Retry-After) not to poll before then
    # Feed health (pipelines/health.py): when a poll last brought new items, and when the feed was first
    # polled (the clock of a feed that never brought any). ISO UTC.
    last_new_items: str | None = None
    first_polled: str | None = None


@dataclass
class FeedItem:
    """One entry of a feed document, as parsed, before its page is fetched."""

    feed_id: str
    item_id: str  # guid/id, or the link when the feed gives none
    link: str | None
    title: str = ""
    summary: str = ""  # feed summary/description, HTML stripped
    content: str = ""  # feed full content (content:encoded / atom content), HTML stripped
    published: str | None = None  # ISO UTC, None when missing or unparseable
    author: str | None = None
    language: str | None = None
    # The feed document's own <title> at poll time: the outlet when feeds.yaml gives the feed no `name`.
    # Kept on the item (not in FeedState) so it crosses the durable inbox with no schema change.
    feed_title: str | None = None


@dataclass
class ExtractedPage:
    """What extraction got out of one page (or out of the feed item when the page failed)."""

    url: str
    text: str
    title: str | None = None
    author: str | None = None
    published: str | None = None  # ISO date or datetime
    language: str | None = None
    sitename: str | None = None
    source: str = "page"  # page | feed-content | feed-summary


@dataclass
class TopicHit:
    id: str
    score: float
    evidence: list[dict[str, Any]] = field(default_factory=list)  # {"text", "start", "end", "field"}


# How a development statement is made: only "asserted" and "alleged" can open an event; "denied"
# disputes one; the others restate or speculate and change nothing.
MODES = ("asserted", "alleged", "denied", "hypothetical", "future", "question", "background")
OPENING_MODES = ("asserted", "alleged")  # the modes that announce a development (and can open an event)


@dataclass
class Development:
    """One development statement: who did what, in which mode, where (the tagger's reading of a sentence)."""

    type: str  # e.g. ceasefire-agreed, talks-broke-down; "hostilities" or "talks-continue" before the state reads them
    evidence: str  # the sentence that announces it
    start: int | None = None
    end: int | None = None
    field: str = "text"  # where start/end point: "title" or "text"
    mode: str = "asserted"  # one of MODES
    # (dataclasses.field: the attribute `field` above shadows the name inside this class)
    parties: list[str] = dataclasses.field(default_factory=list)  # entity ids of the parties in the sentence
    mediators: list[str] = dataclasses.field(default_factory=list)  # entity ids of mediators in the sentence
    venue: str | None = None  # place id of the venue or round (doha, istanbul, riyadh)
    places: list[str] = dataclasses.field(default_factory=list)  # place ids named in the sentence (crossings, districts)
    when: str | None = None  # the day the sentence says it happened: a weekday, "today" or "yesterday"
    confidence: float = 1.0  # 0..1: how sure the reading is (pattern strength, mode, corroboration)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Development:
        return _build(cls, data)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def happened_on(dev: Development | None, published: datetime | None) -> date | None:
    """The date a statement says it happened, read against its publication ("on Thursday": the latest
    Thursday on or before it; "yesterday": the day before), or None."""
    if dev is None or dev.when is None or published is None:
        return None
    day = published.date()
    if dev.when == "today":
        return day
    if dev.when == "yesterday":
        return day - timedelta(days=1)
    if dev.when in _WEEKDAYS:
        return day - timedelta(days=(day.weekday() - _WEEKDAYS.index(dev.when)) % 7)
    return None


def announced_type(dev: Development | None) -> str | None:
    """The type a statement announces: only asserted and alleged ones do (a denial disputes an event)."""
    return dev.type if dev is not None and dev.mode in OPENING_MODES else None


@dataclass
class TagResult:
    topics: list[TopicHit] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)  # {"id","name","kind"}
    places: list[dict[str, Any]] = field(default_factory=list)  # {"id","name","lat","lon"}
    development: Development | None = None
    relevant: bool = False  # inside the watch's theatre (Pakistan–Afghanistan)
    alert_worthy: bool = False

    def topic_ids(self) -> list[str]:
        return [t.id for t in self.topics]

    def to_dict(self) -> dict[str, Any]:
        return {
            "topics": [asdict(t) for t in self.topics],
            "entities": self.entities,
            "places": self.places,
            "development": asdict(self.development) if self.development else None,
            "relevant": self.relevant,
            "alert_worthy": self.alert_worthy,
        }


# Article fields whose text comes from a feed or a page (one-line; the body is `text`).
_THIRD_PARTY_FIELDS = ("url", "original_url", "source", "title", "language", "author", "published")


@dataclass
class Article:
    """A stored article: the unit the store indexes and alert rules look at."""

    id: str  # sha256 of the canonical URL (hex, 32 chars)
    url: str  # canonical URL
    original_url: str
    feed_id: str
    desk: str
    source: str  # the outlet: feeds.yaml name, else feed title, else page site name, else host
    title: str
    text: str
    content_hash: str
    story_id: str
    language: str | None = None
    author: str | None = None
    published: str | None = None  # ISO UTC
    fetched: str = field(default_factory=lambda: iso(utcnow()) or "")
    extraction_source: str = "page"
    topics: list[TopicHit] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    places: list[dict[str, Any]] = field(default_factory=list)
    development: Development | None = None
    relevant: bool = False
    event_id: str | None = None  # the development event this report is attached to, if any

    def __post_init__(self) -> None:
        """No control characters in the text a feed or page gave (terminal escapes): extract.py strips
        them at ingest; this catches every other way in (a feed item's fields the cycle falls back to,
        rows stored before). A no-op on clean text."""
        from pipelines.textnorm import strip_controls

        for name in _THIRD_PARTY_FIELDS:
            value = getattr(self, name)
            if value:
                setattr(self, name, strip_controls(value))
        if self.text:
            self.text = strip_controls(self.text, multiline=True)

    def topic_ids(self) -> list[str]:
        return [t.id for t in self.topics]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def seen_time(self) -> str:
        """When the report happened, as far as we know: published, else first fetched."""
        return self.published or self.fetched

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        data = dict(data)
        data["topics"] = [TopicHit(**t) for t in data.get("topics") or []]
        dev = data.get("development")
        data["development"] = Development.from_dict(dev) if dev else None
        return _build(cls, data)


@dataclass
class EventReport:
    """One outlet's report of a development event."""

    article_id: str
    url: str
    outlet: str
    time: str  # ISO UTC: published, or first seen when undated
    first_seen: str  # ISO UTC: when newsmon first stored it
    language: str | None
    evidence: str  # the sentence that carries the development
    type: str  # the development type this report gave
    mode: str = "asserted"  # asserted | alleged | denied | background (no development of its own)
    story_id: str = ""
    title: str = ""
    happened: str | None = None  # YYYY-MM-DD the report says it happened ("agreed on Thursday"), if it says


EVENT_STATUSES = ("reported", "corroborated", "disputed", "superseded")


@dataclass
class DevelopmentEvent:
    """One real-world development, however many outlets report it (see pipelines/events.py)."""

    id: str  # hash of watch, type and the first report's article id
    watch: str  # the watch (theatre) it belongs to
    family: str  # ceasefire | talks
    type: str  # the development type of the first report
    opened: str  # ISO UTC: time of the first report
    updated: str  # ISO UTC: time of the latest report
    status: str = "reported"  # one of EVENT_STATUSES
    venue: str | None = None
    places: list[str] = field(default_factory=list)
    parties: list[str] = field(default_factory=list)
    state_before: str | None = None  # the watch's state of this family before the event
    state_after: str | None = None  # and after it
    reports: list[EventReport] = field(default_factory=list)  # first report first
    superseded_by: str | None = None
    confidence: float = 1.0

    @property
    def first_report(self) -> EventReport | None:
        """The first report of the development itself (not a denial or background piece)."""
        return next((r for r in self.reports if r.mode in OPENING_MODES), None)

    @property
    def outlets(self) -> list[str]:
        """Independent outlets that reported it (denials and background excluded), in order of first report."""
        return list(dict.fromkeys(r.outlet for r in self.reports if r.mode in OPENING_MODES))

    def has_report(self, article_id: str) -> bool:
        return any(r.article_id == article_id for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DevelopmentEvent:
        data = dict(data)
        data["reports"] = [_build(EventReport, r) for r in data.get("reports") or []]
        return _build(cls, data)


@dataclass
class Alert:
    """One notification to one desk: an event opened or escalated, or a keyword rule's story."""

    id: str  # the idempotency key: hash(desk, event, kind) for event alerts, hash(rule, story, dev) otherwise
    rule_id: str  # the first matching rule (rules lists them all)
    desk: str
    article_id: str  # the report that raised it
    story_id: str
    title: str
    url: str
    source: str
    development: str | None
    topics: list[str]
    matched: str  # why the rule matched, readable
    created: str = field(default_factory=lambda: iso(utcnow()) or "")
    copies: int = 1
    channels: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)  # every rule that matched (event alerts fold them)
    event_id: str | None = None
    kind: str = "story"  # story (keyword/topic rule) | event (an event opened) | escalation | health (a feed down)
    escalation: str | None = None  # for kind=escalation: "corroborated:3", "disputed"
    published: str | None = None  # the raising report's published time (ISO UTC)
    first_seen: str | None = None  # when newsmon first stored that report
    state_before: str | None = None
    state_after: str | None = None
    evidence: str = ""
    confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return _build(cls, data)


@dataclass
class SearchHit:
    article: Article
    score: float
    snippet: str  # with <mark>…</mark> around matches; the rest HTML-escaped


@dataclass
class CycleReport:
    """Counts of one monitoring cycle: what came in, and every reason something was dropped."""

    feeds_polled: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    items_seen: int = 0
    items_new: int = 0
    articles_stored: int = 0
    alerts_fired: int = 0
    alerts_delivered: int = 0
    page_fallbacks: int = 0  # page unreachable: the feed's own text was used if it had any
    dropped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    topics: dict[str, int] = field(default_factory=dict)
    article_ids: list[str] = field(default_factory=list)
    feeds_stale: int = 0  # failing or silent for longer than health.stale_after intervals
    health_alerts: int = 0  # feed-health alerts raised by this cycle (one per feed per outage)
    # Not answered within the cycle budget (newsmon.yaml cycle_budget): left as they were for the next cycle.
    feeds_deferred: int = 0
    items_deferred: int = 0
    # Why this cycle counts as failed (newsmon run exits 1): the store was unavailable, or more feeds
    # failed than health.max_failed_share allows. Empty: the cycle did its job, whatever report.errors says.
    failures: list[str] = field(default_factory=list)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

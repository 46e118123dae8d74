"""Response models of the dashboard API: they document the API in /openapi.json.

All text fields are plain text exactly as stored (a client must escape them);
the one exception is SearchHit.snippet_html, whose text is HTML-escaped by the
store with only <mark>…</mark> added around matches.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class PlaceRef(BaseModel):
    id: str
    name: str


class DevelopmentOut(BaseModel):
    type: str
    evidence: str = Field(description="the sentence that announced it (plain text)")
    family: str = Field(description="ceasefire | talks")


class ArticleSummary(BaseModel):
    id: str
    url: str
    title: str
    source: str
    desk: str
    feed_id: str
    language: str | None = None
    author: str | None = None
    published: str | None = None
    fetched: str | None = None
    event_time: str = Field(description="published, else fetched (ISO UTC)")
    story_id: str
    topics: list[str]
    development: DevelopmentOut | None = None
    places: list[PlaceRef]
    relevant: bool
    extraction_source: str
    event_id: str | None = Field(None, description="the development event this article reports, if any")


class EntityRef(BaseModel):
    id: str
    name: str
    kind: str


class TopicScore(BaseModel):
    id: str
    score: float


class ArticleDetail(ArticleSummary):
    text: str
    original_url: str
    entities: list[EntityRef]
    topic_scores: list[TopicScore]


class SearchHitOut(BaseModel):
    article: ArticleSummary
    score: float
    snippet_html: str = Field(description="HTML-escaped text with <mark>…</mark> around matches")


class SearchResult(BaseModel):
    query: str | None
    offset: int
    limit: int
    collapse: str | None = Field(None, description="story | event when results were collapsed")
    hits: list[SearchHitOut]


class FirstReportRef(BaseModel):
    outlet: str
    time: str = Field(description="published, else first seen (ISO UTC)")
    time_local: str | None = Field(None, description="the same time in the desk's time zone, e.g. 2025-10-19 14:05 PKT")
    url: str


class AlertEvent(BaseModel):
    """The alert's development event as it stands now (later reports keep adding to it)."""

    id: str
    type: str
    family: str
    status: str = Field(description="reported | corroborated | disputed | superseded")
    status_label: str = Field(description="as a desk reads it: 'corroborated by 5', 'disputed', 'alleged', ...")
    opened: str
    updated: str
    venue: str | None = None
    places: list[str]
    parties: list[str]
    state_before: str | None = None
    state_after: str | None = None
    outlets: list[str] = Field(description="independent outlets that reported it (denials excluded), first first")
    outlet_count: int
    confidence: float
    first_report: FirstReportRef | None = None
    reach: str = Field(description="'5 outlets; first reported by X at T' (T in the desk's time zone)")


class AlertReport(BaseModel):
    outlet: str
    time: str
    url: str
    language: str | None = None
    evidence: str
    type: str
    mode: str = Field(description="asserted | alleged | denied")
    title: str


class AlertOut(BaseModel):
    id: str
    rule_id: str = Field(description="the first matching rule")
    rules: list[str] = Field(description="every rule folded into this alert")
    desk: str
    kind: str = Field(description="event (an event opened) | escalation | story (a keyword/topic rule's story)")
    escalation: str | None = Field(None, description="for kind=escalation: corroborated:N or disputed")
    event_id: str | None = None
    article_id: str
    story_id: str
    title: str
    url: str
    source: str
    development: str | None = None
    family: str | None = None
    topics: list[str]
    matched: str
    created: str
    published: str | None = Field(None, description="the raising report's published time (ISO UTC)")
    first_seen: str | None = Field(None, description="when newsmon first stored that report (ISO UTC)")
    timezone: str = Field(description="the desk's time zone, which the *_local fields use")
    created_local: str | None = None
    published_local: str | None = None
    first_seen_local: str | None = None
    state_before: str | None = None
    state_after: str | None = None
    evidence: str = ""
    confidence: float | None = None
    copies: int
    channels: list[str]
    event: AlertEvent | None = None
    reports: list[AlertReport] = Field(description="the event's reports so far, first first (empty without an event)")


class AlertList(BaseModel):
    alerts: list[AlertOut]
    server_time: str = Field(description="now on the server, ISO UTC")


class StorySummary(BaseModel):
    id: str
    title: str
    first_seen: str | None = None
    first_published: str
    latest: str
    copies: int
    sources: list[str]
    topics: list[str]
    developments: list[str]
    lead_article_id: str


class StoryList(BaseModel):
    stories: list[StorySummary]
    truncated: bool


class StoryDetail(BaseModel):
    id: str
    first_seen: str | None = None
    copies: int
    sources: list[str]
    title: str
    lead: ArticleDetail | None = None
    articles: list[ArticleSummary]
    missing_articles: list[str]
    developments: list[str]


class EventFirstReport(BaseModel):
    outlet: str
    time: str = Field(description="published, else first seen (ISO UTC)")
    time_local: str | None = None
    url: str
    title: str
    article_id: str
    story_id: str
    language: str | None = None
    mode: str


class EventSummary(BaseModel):
    """One development event: one real-world development, however many outlets report it."""

    id: str
    watch: str
    family: str = Field(description="ceasefire | talks")
    type: str = Field(description="the development type of the first report")
    status: str = Field(description="reported | corroborated | disputed | superseded")
    status_label: str = Field(description="'reported', 'corroborated by 5', 'disputed', 'alleged', 'superseded'")
    state_before: str | None = Field(None, description="the family's state before the event")
    state_after: str | None = Field(None, description="and after it")
    opened: str = Field(description="time of the first report (ISO UTC)")
    opened_local: str | None = Field(None, description="the same in the desk's time zone (UTC without a desk)")
    updated: str
    updated_local: str | None = None
    outlets: list[str]
    outlet_count: int = Field(description="independent outlets (denials excluded)")
    report_count: int
    evidence: str = Field(description="the first report's sentence (plain text)")
    first_report: EventFirstReport | None = None
    reach: str = Field(description="'5 outlets; first reported by X at T'")
    venue: PlaceRef | None = None
    places: list[PlaceRef]
    parties: list[PlaceRef] = Field(description="entity ids with their names from the taxonomy")
    superseded_by: str | None = None
    confidence: float


class Timeline(BaseModel):
    entries: list[EventSummary]
    timezone: str = Field(description="the time zone of the *_local fields: the desk's, else UTC")
    truncated: bool


class EventReportOut(BaseModel):
    article_id: str
    story_id: str
    url: str
    title: str
    outlet: str
    time: str
    time_local: str | None = None
    first_seen: str
    first_seen_local: str | None = None
    language: str | None = None
    mode: str = Field(description="asserted | alleged | denied")
    type: str
    evidence: str


class EventDetail(EventSummary):
    timezone: str
    reports: list[EventReportOut] = Field(description="every report, first first")
    desks: list[str] = Field(description="desks the event was notified to")


class TopicSeries(BaseModel):
    topic: str
    name: str
    counts: list[int]
    total: int


class TopicVolume(BaseModel):
    bucket: str = Field(description="hour | day")
    buckets: list[str] = Field(description="start of each bucket, ISO UTC")
    series: list[TopicSeries]
    truncated: bool


class PlaceArticle(BaseModel):
    id: str
    title: str
    story_id: str
    source: str
    time: str


class PlaceOut(BaseModel):
    id: str
    name: str
    lat: float
    lon: float
    kind: str | None = Field(None, description="country, city, crossing, ... (from the taxonomy, when known)")
    count: int
    articles: list[PlaceArticle]


class PlaceList(BaseModel):
    places: list[PlaceOut]
    articles: int = Field(description="articles scanned")
    truncated: bool


class FeedHealth(BaseModel):
    feed_id: str
    url: str | None = None
    desk: str | None = None
    language: str | None = None
    interval: int | None = None
    enabled: bool | None = None
    status: str = Field(description="ok | warning | stale | failing | never | disabled | unconfigured")
    last_polled: str | None = None
    last_success: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    items_total: int
    not_modified_count: int
    error_count: int
    retry_after: str | None = Field(None, description="the publisher asked us not to poll before this (ISO UTC)")


class FeedList(BaseModel):
    feeds: list[FeedHealth]
    config_error: str | None = None


class Choice(BaseModel):
    id: str
    name: str | None = None
    count: int | None = None


class Meta(BaseModel):
    desks: list[Choice]
    topics: list[Choice]
    sources: list[Choice]
    languages: list[Choice]
    development_types: list[Choice]
    store: str = Field(description="the store backend in use (no credentials)")
    articles: int
    config_error: str | None = None

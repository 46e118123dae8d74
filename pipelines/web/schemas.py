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
    hits: list[SearchHitOut]


class AlertOut(BaseModel):
    id: str
    rule_id: str
    desk: str
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
    copies: int
    channels: list[str]


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


class TimelineCopy(BaseModel):
    id: str
    source: str
    url: str
    time: str
    title: str


class TimelineEntry(BaseModel):
    story_id: str
    type: str
    family: str
    time: str
    evidence: str
    article: ArticleSummary
    also: list[TimelineCopy]


class Timeline(BaseModel):
    entries: list[TimelineEntry]
    truncated: bool


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

"""One monitoring cycle, split into steps the CLI runs in a row and the DAG runs as tasks.

poll_feeds -> pending_batches -> process_items (per batch) -> evaluate_alerts -> deliver_alerts.
Only ids, counts and paths cross step boundaries, so Airflow's XCom never carries article bodies.

Crash safety: polled items go to the store's durable inbox before a feed's
ETag advances; an inbox item is finished only after its article is stored;
ids are canonical-URL hashes and alert ids are (rule, story, development)
hashes, so any step can be repeated without duplicating anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.errors import FetchError, NewsmonError
from pipelines.models import Article, CycleReport, FeedItem, FeedState, iso, utcnow
from pipelines.store.base import StoreError

FETCHER_ARGS = ("user_agent", "connect_timeout", "read_timeout", "total_timeout", "max_bytes",
                "max_redirects", "per_host_concurrency", "per_host_delay")


@dataclass
class Context:
    """Everything a step needs: config, store, HTTP fetcher, tagger, alert engine, notifier."""

    config: Any
    store: Any
    fetcher: Any
    tagger: Any
    alert_engine: Any
    notifier: Any
    stop: threading.Event | None = None  # set by Ctrl-C in `newsmon watch`: finish the item, then stop
    progress: Callable[[int, int], None] | None = None  # (done, total) for progress bars

    def close(self) -> None:
        self.store.close()

    def stopping(self) -> bool:
        return bool(self.stop and self.stop.is_set())


def open_context(config_dir: str | None = None, store_url: str | None = None, *,
                 policy: Any = None, base_dir: str = ".") -> Context:
    """Load and validate config (NEWSMON_CONFIG / ./config) and open the store (NEWSMON_STORE / var/)."""
    from pipelines.alerts import AlertEngine
    from pipelines.config import load_config
    from pipelines.http import Fetcher
    from pipelines.notify import Notifier
    from pipelines.store import default_store_url, open_store
    from pipelines.tag import Tagger

    config = load_config(config_dir)
    url = store_url or config.settings.store or default_store_url()
    fetch_args = {k: v for k, v in config.settings.fetch.items() if k in FETCHER_ARGS}
    fetcher = Fetcher(policy=policy, **fetch_args)
    store = open_store(url)
    return Context(config=config, store=store, fetcher=fetcher, tagger=Tagger(config.taxonomy),
                   alert_engine=AlertEngine(config.alerts), notifier=Notifier(config.alerts, base_dir=base_dir))


def _due(state: FeedState | None, interval: int, now: datetime) -> bool:
    if state is None or not state.last_polled:
        return True
    try:
        last = datetime.fromisoformat(state.last_polled.replace("Z", "+00:00"))
    except ValueError:
        return True
    return now - last >= timedelta(seconds=interval)


def poll_feeds(ctx: Context, report: CycleReport, feed_ids: list[str] | None = None,
               due_only: bool = False) -> int:
    """Poll feeds (conditional GET), spool new items durably, then advance feed state. Returns items spooled."""
    from pipelines.feeds import poll_many

    now = utcnow()
    store = ctx.store
    feeds = [f for f in ctx.config.feeds if f.enabled and (feed_ids is None or f.id in feed_ids)]
    states = {f.id: store.get_feed_state(f.id) or FeedState(feed_id=f.id) for f in feeds}
    if due_only:
        feeds = [f for f in feeds if _due(states[f.id], f.interval, now)]
    workers = int(ctx.config.settings.fetch.get("workers", 16))
    results = poll_many(feeds, states, ctx.fetcher, workers=workers)
    spooled_total = 0
    for result in results:
        state = states[result.feed_id]
        state.last_polled = iso(utcnow())
        state.last_status = result.http_status
        report.feeds_polled += 1
        if result.status == "error":
            report.feeds_failed += 1
            state.error_count += 1
            state.last_error = result.error
            report.errors.append(result.error or f"feed {result.feed_id}: unknown error")
            store.save_feed_state(state)
            continue
        if result.status == "not-modified":
            report.feeds_not_modified += 1
            state.not_modified_count += 1
            state.last_success = state.last_polled
            store.save_feed_state(state)
            continue
        report.items_seen += len(result.items)
        # Durable first: the items are in the inbox before the ETag moves on.
        spooled = store.spool_items(result.items)
        spooled_total += spooled
        report.items_new += spooled
        state.items_total += spooled
        state.etag = result.etag
        state.last_modified = result.last_modified
        state.last_success = state.last_polled
        state.last_error = f"feed parsed with problems: {result.bozo}" if result.bozo else None
        if result.bozo:
            report.errors.append(f"feed {result.feed_id}: parsed with problems: {result.bozo}")
        store.save_feed_state(state)
    return spooled_total


def pending_batches(ctx: Context, batch_size: int | None = None, max_batches: int = 64) -> list[list[str]]:
    """Inbox keys waiting to be processed, cut into batches (for dynamic task mapping)."""
    size = batch_size or ctx.config.settings.batch_size
    keys = [key for key, _item in ctx.store.pending_items(limit=size * max_batches)]
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def _fetch_page(ctx: Context, item: FeedItem) -> tuple[bytes | None, str | None, str | None, str | None]:
    """(body, charset, final url, error line); never raises, so one dead host costs one item only."""
    if not item.link:
        return None, None, None, None
    try:
        response = ctx.fetcher.fetch(item.link, kind="page")
    except FetchError as exc:
        return None, None, None, f"feed {item.feed_id}: page {exc}"
    except Exception as exc:  # a bug in one page must not end the batch
        return None, None, None, f"feed {item.feed_id}: page {item.link}: {type(exc).__name__}: {exc}"
    return response.body, response.charset, response.url, None


def process_items(ctx: Context, keys: list[str], report: CycleReport) -> list[str]:
    """Fetch, extract, identify, tag and store these inbox items.

    Returns the ids of the articles these items resolved to (new, or stored by
    an earlier interrupted run), so alert evaluation can be repeated safely.
    """
    store = ctx.store
    items = store.get_items(keys)
    workers = max(1, min(int(ctx.config.settings.fetch.get("workers", 16)), len(items) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pages = list(pool.map(lambda pair: _fetch_page(ctx, pair[1]), items))
    min_chars = int(ctx.config.settings.extract.get("min_chars", 250))
    article_ids: list[str] = []
    for done, ((key, item), (body, charset, _final_url, error)) in enumerate(zip(items, pages, strict=True)):
        if ctx.stopping():
            break
        if ctx.progress:
            ctx.progress(done, len(items))
        try:
            article_id = _process_one(ctx, key, item, body, charset, error, min_chars, report)
        except StoreError:
            raise  # the item stays in the inbox and is retried next cycle
        except Exception as exc:  # one poisoned item must not block the inbox for ever
            report.errors.append(f"feed {item.feed_id}: item {item.link or item.item_id}: "
                                 f"{type(exc).__name__}: {exc}")
            report.drop("processing-error")
            store.finish_items([key])
            continue
        if article_id:
            article_ids.append(article_id)
    report.article_ids.extend(article_ids)
    return article_ids


def _process_one(ctx: Context, key: str, item: FeedItem, body: bytes | None, charset: str | None,
                 error: str | None, min_chars: int, report: CycleReport) -> str | None:
    """One inbox item to one stored article id (or None when dropped); finishes the inbox item."""
    from pipelines.extract import extract_page
    from pipelines.identity import canonical_url, content_hash, doc_id, new_story_id, story_keys

    store = ctx.store
    if not item.link:
        report.drop("no-link")
        store.finish_items([key])
        return None
    if error:
        report.errors.append(error)
        report.page_fallbacks += 1
    canonical = canonical_url(item.link)
    article_id = doc_id(canonical)
    if store.has_article(article_id):
        report.drop("already-stored")
        store.finish_items([key])
        return article_id
    page = extract_page(body or b"", item.link, item, min_chars=min_chars, charset=charset)
    if page is None or not page.text.strip():
        report.drop("no-text")
        store.finish_items([key])
        return None
    text_hash = content_hash(page.text)
    same_text = store.find_by_content_hash(text_hash)
    feed = ctx.config.feed(item.feed_id)
    source = page.sitename or _host(canonical)
    if same_text and same_text != article_id:
        original = store.get_article(same_text)
        if original is not None:
            store.bump_story(original.story_id, article_id, source)
        report.drop("duplicate-content")
        store.finish_items([key])
        return same_text
    title = page.title or item.title or ""
    tags = ctx.tagger.tag(title, page.text)
    keys_for_story = story_keys(title, page.text)
    story_id = store.story_for_keys(keys_for_story) or new_story_id(article_id)
    store.add_story_keys(story_id, keys_for_story)
    article = Article(
        id=article_id, url=canonical, original_url=item.link, feed_id=item.feed_id,
        desk=feed.desk if feed else "unknown", source=source, title=title, text=page.text,
        content_hash=text_hash, story_id=story_id,
        language=page.language or item.language or (feed.language if feed else None),
        author=page.author or item.author, published=_published(item.published, page.published),
        extraction_source=page.source, topics=tags.topics, entities=tags.entities,
        places=tags.places, development=tags.development, relevant=tags.relevant,
    )
    if store.upsert_article(article):
        store.bump_story(story_id, article_id, source)
        report.articles_stored += 1
        for topic in article.topic_ids():
            report.topics[topic] = report.topics.get(topic, 0) + 1
    store.finish_items([key])
    return article_id


def _published(item_date: str | None, page_date: str | None) -> str | None:
    """The feed's timestamp is more precise; the page's date fills in when the feed has none."""
    if item_date:
        return item_date
    if page_date:
        return page_date if "T" in page_date else page_date + "T00:00:00Z"
    return None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def evaluate_alerts(ctx: Context, article_ids: list[str], report: CycleReport) -> list[str]:
    """Run alert rules over these articles; records alerts and queues deliveries. Returns new alert ids."""
    fired: list[str] = []
    for article_id in dict.fromkeys(article_ids):
        article = ctx.store.get_article(article_id)
        if article is None:
            report.drop("alert-article-missing")
            continue
        for alert in ctx.alert_engine.evaluate(article, ctx.store):
            fired.append(alert.id)
    report.alerts_fired += len(fired)
    return fired


def deliver_alerts(ctx: Context, report: CycleReport) -> int:
    """Send every queued delivery; failures stay queued for the next call. Returns deliveries made."""
    delivered, errors = ctx.notifier.deliver_pending(ctx.store)
    report.alerts_delivered += delivered
    report.errors.extend(errors)
    return delivered


def run_cycle(ctx: Context, feed_ids: list[str] | None = None, due_only: bool = False) -> CycleReport:
    """All steps in a row (newsmon run --once / watch). Items left in the inbox by a crash are picked up too."""
    report = CycleReport()
    try:
        poll_feeds(ctx, report, feed_ids, due_only=due_only)
    except NewsmonError as exc:
        report.errors.append(str(exc))
    article_ids: list[str] = []
    for batch in pending_batches(ctx):
        if ctx.stopping():
            break
        article_ids.extend(process_items(ctx, batch, report))
    evaluate_alerts(ctx, article_ids, report)
    deliver_alerts(ctx, report)
    return report


def utc_since(hours: float) -> str:
    return iso(datetime.now(UTC) - timedelta(hours=hours)) or ""

"""One monitoring cycle, split into steps the CLI runs in a row and the DAG runs as tasks.

poll_feeds -> pending_batches -> process_items (per batch, evaluating alerts) -> deliver_alerts.
Only ids, counts and paths cross step boundaries, so Airflow's XCom never carries article bodies.

Crash safety: polled items go to the store's durable inbox before a feed's
ETag advances; an inbox item is finished only after its article is stored and
its alerts are recorded and queued (process_items(evaluate=True), as run_cycle
and the DAG's process_batch call it); ids are canonical-URL hashes and alert ids
are (rule, story, development) hashes, so any step can be repeated without
duplicating anything. Deliveries are claimed before they are sent (notify.py),
so two overlapping cycles never send one alert twice.

Events: each article's development statement is read by the watch's state before it is stored
(fighting while a truce is in force is stored as a violation), and attached to its development event
(pipelines/events.py) where its alerts are evaluated, so a crash between the two repeats the
attachment, which is idempotent per article.

The clock: Context.now() is the wall clock, or the --as-of time of a replay (newsmon run --once
--as-of ISO). It sets feed due times, first-seen times, freshness, rule windows and alert timestamps.

Store failures (locked, disk full, cluster down) never lose work: whatever was
not written stays where it was (feed state, inbox, outbox) and the next cycle
repeats it.

Slow servers: feeds and pages are fetched in parallel and each result is recorded as it arrives,
so one tar-pit never holds back the others' items. A cycle has a budget (newsmon.yaml
`cycle_budget`, of which polling may take half): feeds and pages still unanswered when it ends are deferred, not waited for (their
feed state and inbox items stay as they were, so the next cycle repeats them) and counted in
report.feeds_deferred / items_deferred. The budget's end is also each request's not_after
(Fetcher.fetch), so requests still running are cut then and `run --once` exits on time.
The inbox is served round-robin by feed (pending_items), so a feed's backlog never starves its neighbours. A Retry-After from a feed's server (429/503) is kept in the feed's
state and the feed is not polled again before then (capped at MAX_RETRY_AFTER).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.errors import FetchError, NewsmonError
from pipelines.models import Article, CycleReport, FeedItem, FeedState, iso, parse_iso, utcnow
from pipelines.store.base import StoreError

FETCHER_ARGS = ("user_agent", "connect_timeout", "read_timeout", "total_timeout", "max_bytes",
                "max_redirects", "per_host_concurrency", "per_host_delay")
# A hostile or broken server must not silence a feed for a year with one header.
MAX_RETRY_AFTER = timedelta(hours=24)
STOP_CHECK = 0.25  # seconds between checks of ctx.stop while waiting for fetches
HOLD_BACK = 1.0  # seconds a slow feed or page may hold back the results after it (as_completed_until)
POLL_SHARE = 0.5  # of the cycle budget, at most, for polling feeds; the rest is for their pages


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
    events: Any = None  # pipelines.events.EventBook, None when config/ has no events.yaml
    as_of: datetime | None = None  # the replay clock: the cycle runs as if it were this time

    def close(self) -> None:
        self.store.close()

    def now(self) -> datetime:
        return self.as_of or utcnow()

    def stopping(self) -> bool:
        return bool(self.stop and self.stop.is_set())


def open_context(config_dir: str | None = None, store_url: str | None = None, *, store: Any = None,
                 policy: Any = None, base_dir: str = ".", as_of: datetime | None = None) -> Context:
    """Load and validate config and open the store, both resolved by pipelines.settings.

    store: a store opened by the caller (the Airflow plugin builds one from a connection); the
    Context owns it from here and closes it, also when the config fails to load."""
    from pipelines.alerts import AlertEngine
    from pipelines.config import load_config
    from pipelines.http import Fetcher
    from pipelines.notify import Notifier
    from pipelines.settings import store_url as resolve_store_url
    from pipelines.store import open_store
    from pipelines.tag import Tagger

    try:
        config = load_config(config_dir)
        fetch_args = {k: v for k, v in config.settings.fetch.items() if k in FETCHER_ARGS}
        fetcher = Fetcher(policy=policy, **fetch_args)
    except BaseException:
        if store is not None:
            store.close()
        raise
    if store is None:
        # The one resolver (pipelines.settings): the caller's URL, NEWSMON_STORE, newsmon.yaml, the default.
        store = open_store(resolve_store_url(store_url, config_dir=config.dir, yaml=config.settings.store))
    from pipelines.events import EventBook

    events = EventBook(config.events, store) if config.events is not None else None
    model = None
    if config.settings.model:
        from pipelines.devmodel import load_default_model

        model = load_default_model(config.settings.model_threshold)
    return Context(config=config, store=store, fetcher=fetcher, tagger=Tagger(config.taxonomy, model=model),
                   alert_engine=AlertEngine(config.alerts, max_age=config.settings.max_age),
                   notifier=Notifier(config.alerts, base_dir=base_dir), events=events, as_of=as_of)




def _deferred(state: FeedState | None, now: datetime) -> bool:
    """The feed's server asked us (Retry-After) not to come back yet."""
    until = parse_iso(state.retry_after) if state else None
    return until is not None and until > now


def _due(state: FeedState | None, interval: int, now: datetime) -> bool:
    if _deferred(state, now):
        return False
    if state is None or not state.last_polled:
        return True
    last = parse_iso(state.last_polled)
    if last is None:
        return True
    return now - last >= timedelta(seconds=interval)


def _retry_until(seconds: float | None, now: datetime) -> str | None:
    if seconds is None or seconds != seconds or seconds <= 0:  # absent, NaN, or "now"
        return None
    return iso(now + min(timedelta(seconds=seconds), MAX_RETRY_AFTER))


def cycle_deadline(ctx: Context, share: float = 1.0) -> float:
    """time.monotonic() at which this share of the cycle's budget (newsmon.yaml cycle_budget) ends."""
    return time.monotonic() + share * ctx.config.settings.cycle_budget.total_seconds()


def _budget_text(ctx: Context) -> str:
    return f"cycle budget ({ctx.config.settings.cycle_budget.total_seconds():g} s)"


def as_completed_until(work: Callable[[Any], Any], tasks: Iterable[Any], workers: int, deadline: float,
                       stopping: Callable[[], bool] = lambda: False,
                       name: str = "newsmon-fetch") -> Iterator[tuple[Any, Future | None]]:
    """(task, finished future) for each task as it finishes, then (task, None) for every task not
    finished at the deadline (or when stopping() turns true): those are not waited for.

    Results come in task order while they keep up, so a cycle over fast servers records feeds and
    builds stories in a repeatable order; a task still running HOLD_BACK s after the one before it
    was handed over no longer holds back those after it, which are then handed over as they finish.
    The pool is shut down without waiting: `work` should stop by the deadline itself (the fetches of
    poll_feeds and process_items have it as their not_after); a late result is dropped (the caller
    recorded nothing for it, so the next cycle repeats it). The caller records results in its own
    thread, so store writes never run in a fetch thread."""
    tasks = list(tasks)
    if not tasks:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))), thread_name_prefix=name)
    handed: set[int] = set()
    try:
        futures = [pool.submit(work, task) for task in tasks]
        head, head_since = 0, time.monotonic()
        while head < len(tasks) and not stopping():
            while head < len(tasks) and (head in handed or futures[head].done()):
                if head not in handed:
                    handed.add(head)
                    yield tasks[head], futures[head]
                head, head_since = head + 1, time.monotonic()
            if head >= len(tasks) or stopping():
                break
            now = time.monotonic()
            if now >= deadline:
                break
            if now - head_since >= HOLD_BACK:  # the head is a straggler: the others go on without it
                for index in range(head + 1, len(tasks)):
                    if index not in handed and futures[index].done():
                        handed.add(index)
                        yield tasks[index], futures[index]
            waiting = [f for i, f in enumerate(futures) if i not in handed and not f.done()]
            wait(waiting, timeout=max(0.0, min(deadline - now, STOP_CHECK)), return_when=FIRST_COMPLETED)
        for index, task in enumerate(tasks):
            if index not in handed:
                yield task, None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def poll_feeds(ctx: Context, report: CycleReport, feed_ids: list[str] | None = None,
               due_only: bool = False, deadline: float | None = None) -> int:
    """Poll feeds (conditional GET), spool new items durably, then advance feed state. Returns items spooled.

    Each feed's result is recorded as soon as it arrives; feeds still unanswered at the deadline
    (default: now + half the cycle_budget, as in run_cycle) are deferred: one line each, report.feeds_deferred, state untouched.
    Feeds whose server asked for a pause (Retry-After) are skipped until then; with due_only they are
    simply not due, otherwise each skip is one line in report.errors. On a store failure the feed's
    state is not saved (the next cycle polls it again with the old validators, so nothing is lost),
    the other results are still recorded where they can be, and the first StoreError is raised.
    """
    from pipelines.feeds import _by_host_round_robin, poll_feed

    now = ctx.now()
    store = ctx.store
    if ctx.events is not None:
        ctx.events.refresh()  # another worker may have stored events since the last cycle
    feeds = [f for f in ctx.config.feeds if f.enabled and (feed_ids is None or f.id in feed_ids)]
    states = {f.id: store.get_feed_state(f.id) or FeedState(feed_id=f.id) for f in feeds}
    if due_only:
        feeds = [f for f in feeds if _due(states[f.id], f.interval, now)]
    else:
        for feed in feeds:
            if _deferred(states[feed.id], now):
                report.errors.append(f"feed {feed.id} ({feed.url}): not polled: its server asked not to "
                                     f"before {states[feed.id].retry_after} (Retry-After)")
        feeds = [f for f in feeds if not _deferred(states[f.id], now)]
    workers = int(ctx.config.settings.fetch.get("workers", 16))
    deadline = cycle_deadline(ctx, POLL_SHARE) if deadline is None else deadline
    ordered = [feeds[i] for i in _by_host_round_robin(feeds)] if feeds else []  # spread hosts over workers
    spooled_total = 0
    answered = 0
    failure: StoreError | None = None

    def poll(feed: Any) -> Any:
        return poll_feed(feed, states.get(feed.id), ctx.fetcher, not_after=deadline)

    for feed, future in as_completed_until(poll, ordered, workers, deadline, ctx.stopping, name="newsmon-poll"):
        result = future.result() if future is not None else None  # poll_feed never raises
        if result is None or result.error_kind == "cut":  # unanswered, or cut by the fetcher at the deadline
            if not ctx.stopping():
                report.feeds_deferred += 1
                report.errors.append(f"feed {feed.id} ({feed.url}): deferred: no answer within the "
                                     f"{_budget_text(ctx)}; polled again next cycle")
            continue
        answered += 1
        try:
            spooled_total += _record_poll(store, states[result.feed_id], result, report, ctx.now())
        except StoreError as exc:
            report.feeds_failed += 1
            if failure is None:
                failure = exc
                report.errors.append(f"feed {result.feed_id}: poll not recorded, feed state kept (its "
                                     f"{len(result.items)} items are polled again next cycle): {exc}")
            else:
                report.errors.append(f"feed {result.feed_id}: poll result not recorded (store failed: see "
                                     "above); it is polled again next cycle")
    if failure is not None:
        raise failure
    if answered:  # a watch tick that polled nothing has nothing new to judge
        from pipelines.health import check_feed_health

        check_feed_health(ctx, report, now)
    return spooled_total


def poll_failure(ctx: Context, report: CycleReport) -> str | None:
    """Why this poll counts as failed (more feeds failed than health.max_failed_share allows), or None.

    The results are recorded by then: callers fail the run (exit 1, a failed task) after storing."""
    from pipelines.health import failed_share_problem

    return failed_share_problem(report, ctx.config.settings.max_failed_share)


def _record_poll(store: Any, state: FeedState, result: Any, report: CycleReport, polled_at: datetime) -> int:
    """Persist one poll result: items into the inbox first, then the feed state. Returns items spooled."""
    state.last_polled = iso(polled_at)
    state.first_polled = state.first_polled or state.last_polled
    state.last_status = result.http_status
    state.retry_after = None
    if result.status == "error":
        state.error_count += 1
        line = result.error or f"feed {result.feed_id}: unknown error"
        # The feeds table shows the feed's id and URL next to it: last_error is only the reason.
        short = getattr(result, "problem", None) or line
        state.retry_after = _retry_until(result.retry_after, polled_at)
        if state.retry_after:
            line += f"; not polled again before {state.retry_after}"
            short += f"; not polled again before {state.retry_after}"
        state.last_error = short
        store.save_feed_state(state)
        report.feeds_polled += 1
        report.feeds_failed += 1
        report.errors.append(line)
        return 0
    if result.status == "not-modified":
        state.not_modified_count += 1
        state.last_success = state.last_polled
        store.save_feed_state(state)
        report.feeds_polled += 1
        report.feeds_not_modified += 1
        return 0
    # Durable first: the items are in the inbox before the ETag moves on.
    spooled = store.spool_items(result.items)
    state.items_total += spooled
    state.etag = result.etag
    state.last_modified = result.last_modified
    state.last_success = state.last_polled
    if spooled:
        state.last_new_items = state.last_polled  # ends a feed-health outage (pipelines/health.py)
    state.last_error = f"feed parsed with problems: {result.bozo}" if result.bozo else None
    store.save_feed_state(state)
    report.feeds_polled += 1
    report.items_seen += len(result.items)
    report.items_new += spooled
    for reason, count in result.dropped.items():  # entries the parser could not read (never spooled)
        report.drop(reason, count)
    if result.bozo:
        report.errors.append(f"feed {result.feed_id}: parsed with problems: {result.bozo}")
    return spooled


def pending_batches(ctx: Context, batch_size: int | None = None, max_batches: int = 64) -> list[list[str]]:
    """Inbox keys waiting to be processed, cut into batches (for dynamic task mapping).

    The store lists them round-robin by feed (pending_items), so every feed with news is in the
    first batches, however long another feed's backlog is."""
    size = batch_size or ctx.config.settings.batch_size
    keys = [key for key, _item in ctx.store.pending_items(limit=size * max_batches)]
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def _fetch_page(ctx: Context, item: FeedItem,
                not_after: float | None = None) -> tuple[bytes | None, str | None, str | None, str | None]:
    """(body, charset, final url, error line), so one dead host costs one item only. Raises only the
    FetchError of kind "cut" (not_after came first): that item is deferred, not failed."""
    if not item.link:
        return None, None, None, None
    try:
        response = ctx.fetcher.fetch(item.link, kind="page", not_after=not_after)
    except FetchError as exc:
        if exc.kind == "cut":
            raise
        hop = f" (at {exc.url})" if exc.url != item.link else ""  # a redirect target failed
        return None, None, None, f"feed {item.feed_id}: page {item.link}: {exc.reason}{hop}"
    except Exception as exc:  # a bug in one page must not end the batch
        return None, None, None, f"feed {item.feed_id}: page {item.link}: {type(exc).__name__}: {exc}"
    return response.body, response.charset, response.url, None


def process_items(ctx: Context, keys: list[str], report: CycleReport, *, evaluate: bool = False,
                  deadline: float | None = None) -> list[str]:
    """Fetch, extract, identify, tag and store these inbox items.

    Pages are fetched in parallel and each item is stored as soon as its page arrives; items whose
    page has not arrived by the deadline (default: now + cycle_budget) stay in the inbox for the
    next cycle (report.items_deferred), not waited for.
    Returns the ids of the articles these items resolved to (new, or stored by
    an earlier interrupted run), so alert evaluation can be repeated safely.
    With evaluate=True each article's alerts are recorded and queued before its
    inbox item is finished, so a crash between storing and alerting cannot lose
    an alert (run_cycle and the DAG's process_batch do this).
    A StoreError propagates: the unfinished items stay in the inbox for the next cycle.
    """
    store = ctx.store
    items = store.get_items(keys)
    workers = int(ctx.config.settings.fetch.get("workers", 16))
    deadline = cycle_deadline(ctx) if deadline is None else deadline
    min_chars = int(ctx.config.settings.extract.get("min_chars", 250))
    article_ids: list[str] = []
    evaluated: set[str] = set()
    done = 0
    deferred = 0
    try:
        for (key, item), future in as_completed_until(lambda pair: _fetch_page(ctx, pair[1], deadline), items,
                                                      workers, deadline, ctx.stopping, name="newsmon-page"):
            cut = future is not None and isinstance(future.exception(), FetchError)  # kind "cut": see _fetch_page
            if future is None or cut or ctx.stopping():  # left in the inbox: the next cycle takes it
                deferred += not ctx.stopping()
                continue
            body, charset, _final_url, error = future.result()
            if ctx.progress:
                ctx.progress(done, len(items))
            done += 1
            try:
                article_id = _process_one(ctx, item, body, charset, error, min_chars, report)
                if evaluate and article_id and article_id not in evaluated:
                    _evaluate_one(ctx, article_id, report)
                    evaluated.add(article_id)
            except StoreError:
                raise  # the item stays in the inbox and is retried next cycle
            except Exception as exc:  # one poisoned item must not block the inbox for ever
                report.errors.append(f"feed {item.feed_id}: item {item.link or item.item_id}: "
                                     f"{type(exc).__name__}: {exc}")
                report.drop("processing-error")
                store.finish_items([key])
                continue
            store.finish_items([key])
            if article_id:
                article_ids.append(article_id)
    finally:
        report.article_ids.extend(article_ids)
    if deferred:
        report.items_deferred += deferred
        report.errors.append(f"{deferred} inbox item(s) deferred: their pages did not arrive within the "
                             f"{_budget_text(ctx)}; they stay in the inbox for the next cycle")
    return article_ids


def _process_one(ctx: Context, item: FeedItem, body: bytes | None, charset: str | None,
                 error: str | None, min_chars: int, report: CycleReport) -> str | None:
    """One inbox item to one stored article id (or None when dropped). The caller finishes the item."""
    from pipelines.extract import extract_page
    from pipelines.identity import canonical_url, content_hash, doc_id, new_story_id, story_keys

    store = ctx.store
    if not item.link:
        report.drop("no-link")
        return None
    if error:
        report.errors.append(error)
        report.page_fallbacks += 1
    canonical = canonical_url(item.link)
    article_id = doc_id(canonical)
    if store.has_article(article_id):
        _repair_story(store, article_id)
        report.drop("already-stored")
        return article_id
    page = extract_page(body or b"", item.link, item, min_chars=min_chars, charset=charset,
                        precision_pass=bool(ctx.config.settings.extract.get("precision_pass", False)))
    if page is None or not page.text.strip():
        report.drop("no-text")
        return None
    text_hash = content_hash(page.text)
    same_text = store.find_by_content_hash(text_hash)
    feed = ctx.config.feed(item.feed_id)
    source = article_source(feed, item, page, canonical)
    if same_text and same_text != article_id:
        original = store.get_article(same_text)
        if original is not None:
            store.bump_story(original.story_id, article_id, source)
        report.drop("duplicate-content")
        return same_text
    title = page.title or item.title or ""
    tags = ctx.tagger.tag(title, page.text)
    fetched = iso(ctx.now()) or ""
    published = _published(item.published, page.published)
    development = tags.development
    if ctx.events is not None:  # the watch's state reads the statement: fighting in a truce is a violation
        development = ctx.events.interpret(development, published or fetched)
    # One atomic step per backend: two batches storing syndicated copies at once join one story.
    story_id = store.assign_story(new_story_id(article_id), story_keys(title, page.text))
    article = Article(
        id=article_id, url=canonical, original_url=item.link, feed_id=item.feed_id,
        desk=feed.desk if feed else "unknown", source=source, title=title, text=page.text,
        content_hash=text_hash, story_id=story_id,
        language=page.language or item.language or (feed.language if feed else None),
        author=page.author or item.author, published=published, fetched=fetched,
        extraction_source=page.source, topics=tags.topics, entities=tags.entities,
        places=tags.places, development=development, relevant=tags.relevant,
    )
    if store.upsert_article(article):
        store.bump_story(story_id, article_id, source)
        report.articles_stored += 1
        for topic in article.topic_ids():
            report.topics[topic] = report.topics.get(topic, 0) + 1
    else:
        report.drop("already-stored")  # another worker stored it since has_article(): counted once, there
    return article_id


def _repair_story(store: Any, article_id: str) -> None:
    """Count a stored article in its story (idempotent per story and article): a run killed between
    upsert_article and bump_story left it stored but uncounted, and only its rerun comes back here."""
    article = store.get_article(article_id)
    if article is not None and article.story_id:
        store.bump_story(article.story_id, article.id, article.source)


def _evaluate_one(ctx: Context, article_id: str, report: CycleReport) -> list[str]:
    article = ctx.store.get_article(article_id)
    if article is None:
        report.drop("alert-article-missing")
        return []
    attachment = None
    if ctx.events is not None and article.relevant:
        attachment = ctx.events.attach(article) or ctx.events.relate(article)
    fired = [alert.id for alert in ctx.alert_engine.evaluate(article, ctx.store, ctx.now(), attachment)]
    report.alerts_fired += len(fired)
    return fired


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


def article_source(feed: Any, item: FeedItem, page: Any, url: str) -> str:
    """The outlet an article is from, as desks name it: the feed's `name` in feeds.yaml, else the feed
    document's own title (item.feed_title, carried through the inbox), else the page's site name when
    it is a name (trafilatura sometimes gives the headline, or the URL's host:port, as the site name),
    else the host."""
    for candidate in (getattr(feed, "name", None), item.feed_title):
        if candidate and candidate.strip():
            return " ".join(candidate.split())
    sitename = " ".join((page.sitename or "").split())
    if sitename and not _is_headline(sitename, (page.title, item.title)) and not _is_host(sitename, url):
        return sitename
    return _host(url)


def _words(text: str | None) -> list[str]:
    return re.findall(r"\w+", (text or "").casefold())


def _is_headline(sitename: str, headlines: tuple[str | None, ...]) -> bool:
    """The site name is (the start of) a headline, or a headline is the start of it ("<headline> | IMF")."""
    name = _words(sitename)
    for headline in headlines:
        words = _words(headline)
        if not words:
            continue
        shorter = min(len(name), len(words))
        if name == words or (shorter >= 4 and name[:shorter] == words[:shorter]):
            return True
    return False


def _is_host(sitename: str, url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    name = sitename.casefold().removeprefix("www.")
    return name in {(parts.netloc or "").casefold().removeprefix("www."),
                    (parts.hostname or "").removeprefix("www.")}


def evaluate_alerts(ctx: Context, article_ids: list[str], report: CycleReport) -> list[str]:
    """Run alert rules over these articles; records alerts and queues deliveries. Returns new alert ids."""
    fired: list[str] = []
    for article_id in dict.fromkeys(article_ids):
        fired.extend(_evaluate_one(ctx, article_id, report))
    return fired


def deliver_alerts(ctx: Context, report: CycleReport) -> int:
    """Send every queued delivery; failures stay queued for the next call. Returns deliveries made."""
    delivered, errors = ctx.notifier.deliver_pending(ctx.store)
    report.alerts_delivered += delivered
    report.errors.extend(errors)
    return delivered


def run_cycle(ctx: Context, feed_ids: list[str] | None = None, due_only: bool = False) -> CycleReport:
    """All steps in a row (newsmon run --once / watch). Items left in the inbox by a crash are picked up too.

    Never raises for a bad feed, page or item, nor for a store failure: each becomes a line in
    report.errors. After a store failure the cycle stops processing and leaves deliveries queued
    (sending while the store cannot record "delivered" would only send them twice).
    report.failures says why the cycle as a whole failed (`newsmon run` exits 1): the store was
    unavailable, or more feeds failed than health.max_failed_share allows (poll_failure).
    """
    report = CycleReport()
    store_failed = False
    # One budget for the feeds and pages of this cycle; feeds get its first half at most, so a tar-pit
    # feed cannot leave the pages of the feeds that did answer no time.
    deadline = cycle_deadline(ctx)
    try:
        poll_feeds(ctx, report, feed_ids, due_only=due_only, deadline=cycle_deadline(ctx, POLL_SHARE))
    except StoreError as exc:
        store_failed = True
        report.failures.append(f"store unavailable: {exc}")
        if not any(str(exc) in line for line in report.errors):  # poll_feeds names the feeds it could not record
            report.errors.append(f"{exc}; feeds not recorded are polled again next cycle")
    except NewsmonError as exc:
        report.errors.append(str(exc))
    if (problem := poll_failure(ctx, report)) is not None:
        report.failures.append(problem)
    try:
        batches = pending_batches(ctx)
        for number, batch in enumerate(batches):
            if ctx.stopping():
                break
            if time.monotonic() >= deadline:
                left = sum(len(b) for b in batches[number:])
                report.items_deferred += left
                report.errors.append(f"{left} inbox item(s) deferred: the {_budget_text(ctx)} was spent; "
                                     "they stay in the inbox for the next cycle")
                break
            process_items(ctx, batch, report, evaluate=True, deadline=deadline)
    except StoreError as exc:
        if not store_failed:
            report.failures.append(f"store unavailable: {exc}")
        store_failed = True
        report.errors.append(f"{exc}; unfinished items stay in the inbox for the next cycle")
    if store_failed:
        report.errors.append("alert deliveries left queued for the next cycle: the store failed in this one")
        return report
    try:
        deliver_alerts(ctx, report)
    except StoreError as exc:
        report.failures.append(f"store unavailable: {exc}")
        report.errors.append(f"{exc}; undelivered alerts stay queued for the next cycle")
    return report


def utc_since(hours: float) -> str:
    return iso(datetime.now(UTC) - timedelta(hours=hours)) or ""

"""news_monitor: one monitoring cycle per run (poll -> batches -> process -> alerts -> deliver).

Wiring only: the work is pipelines.cycle's, the settings are newsmon_settings' (plugins/).
Runs on the cron `schedule` of config/newsmon.yaml, and also as soon as a watched feed
changes (FeedWatchTrigger on an AssetWatcher). Only ids, counts and paths go through XCom.

A retried or overlapping task is harmless: feed state advances only after items are
spooled, articles and alerts have deterministic ids, and deliveries go through an
idempotent outbox whose rows are claimed before sending, so a repeat stores nothing
twice and re-sends nothing.

A poll in which more feeds failed than health.max_failed_share allows fails poll_feeds (after
every result is recorded), so the run shows red; before failing it sends what the outbox holds
(the same cycle.deliver_alerts), so the feed-health alerts of the outage (pipelines/health.py)
reach ops although the tasks downstream do not run.

Alerts are evaluated in process_batch, as each article is stored and before its inbox
item is finished (as `newsmon run` does), so a batch killed between storing and alerting
leaves the item in the inbox and its retry evaluates it. evaluate_alerts then only adds
the batches up and emits the articles asset; it evaluates nothing again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronTriggerTimetable,
    TriggerRule,
    dag,
    get_current_context,
    task,
)
from newsmon_settings import (
    ARTICLES_ASSET_NAME,
    ARTICLES_ASSET_URI,
    DEFAULT_SCHEDULE,
    parse_time_allow_networks,
    parse_time_config_dir,
    pipeline_context,
    read_schedule,
    read_watched_feeds,
)
from newsmon_triggers.feed_watch import FeedWatchTrigger

log = logging.getLogger(__name__)

# Downstream DAGs (news_digest, reports) schedule on this: it gets an event when a run indexed new articles.
ARTICLES = Asset(name=ARTICLES_ASSET_NAME, uri=ARTICLES_ASSET_URI, group="newsmon")
FEED_CHANGES_URI = "newsmon://feeds/changes"
# Mapped process_batch instances per run; far below core.max_map_length (1024). Items beyond
# MAX_BATCHES * batch_size stay in the durable inbox for the next run.
MAX_BATCHES = 64
# Parallel batches share each publisher's politeness budget (per-host limits are per process).
MAX_PARALLEL_BATCHES = 2

DEFAULT_ARGS = {
    "owner": "newsmon",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=20),
}


def build_schedule() -> CronTriggerTimetable | AssetOrTimeSchedule:
    """Cron from newsmon.yaml, OR-ed with an asset that feed watchers update (reads local YAML only)."""
    config_dir = parse_time_config_dir()  # one Variable read per parse: schedule and watchers agree
    cron = read_schedule(config_dir)
    try:
        timetable = CronTriggerTimetable(cron, timezone="UTC")
    except Exception as exc:
        log.warning("schedule %r rejected (%s); using %r", cron, exc, DEFAULT_SCHEDULE)
        cron, timetable = DEFAULT_SCHEDULE, CronTriggerTimetable(DEFAULT_SCHEDULE, timezone="UTC")
    watched = read_watched_feeds(config_dir, schedule=cron)
    if not watched:
        return timetable
    # The triggerer's own Variable reads are not counted on (old servers, no comms): the DAG file resolves
    # newsmon_allow_networks (Variable first, then env; README, Settings) and hands it over in the kwargs.
    allow_networks = parse_time_allow_networks()
    feed_changes = Asset(
        name="newsmon_feed_changes",
        uri=FEED_CHANGES_URI,
        group="newsmon",
        watchers=[
            AssetWatcher(
                name=f"newsmon_feed_{feed.feed_id}",
                trigger=FeedWatchTrigger(feed_id=feed.feed_id, url=feed.url, poll_interval=feed.poll_interval,
                                         allow_networks=allow_networks),
            )
            for feed in watched
        ],
    )
    return AssetOrTimeSchedule(timetable=timetable, assets=feed_changes)


def changed_feed_ids(context: Any) -> list[str] | None:
    """Feeds named by the watcher events that started this run; None (= all due feeds) for cron/manual runs."""
    events = context.get("triggering_asset_events") or {}
    feed_ids: set[str] = set()
    try:
        for asset_events in events.values():
            for event in asset_events:
                payload = (getattr(event, "extra", None) or {}).get("payload") or {}
                if isinstance(payload, dict) and isinstance(payload.get("feed_id"), str):
                    feed_ids.add(payload["feed_id"])
    except Exception as exc:  # never fail the poll over a malformed event: poll everything due instead
        log.warning("could not read triggering asset events (%s); polling all due feeds", exc)
        return None
    return sorted(feed_ids) or None


def all_batch_results(batch_results: Any) -> list[Any]:
    """Every mapped process_batch's return value, read in one request.

    Not `for batch in batch_results`: iterating Airflow's lazy XCom sequence asks for item after item
    until one is missing, and the task SDK's API client logs that last, expected 404 as an error
    ("XCom not found ... offset=N"), one false [error] line per successful run. A slice is one call
    with no miss.
    """
    if batch_results is None:
        return []
    return list(batch_results[:])


def report_counts(report: Any) -> dict[str, Any]:
    """The CycleReport without per-article lists: small enough for XCom and a log line."""
    counts = report.to_dict()
    counts.pop("article_ids", None)
    counts["errors"] = counts.get("errors", [])[:20]
    return counts


@dag(
    dag_id="news_monitor",
    schedule=build_schedule(),
    start_date=datetime(2025, 10, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=timedelta(hours=1),
    tags=["newsmon"],
    doc_md=__doc__,
)
def news_monitor():
    @task
    def poll_feeds() -> dict[str, Any]:
        from pipelines import cycle
        from pipelines.models import CycleReport

        feed_ids = changed_feed_ids(get_current_context())
        report = CycleReport()
        with pipeline_context() as ctx:
            spooled = cycle.poll_feeds(ctx, report, feed_ids)
            problem = cycle.poll_failure(ctx, report)
            if problem is not None:  # deliver_alerts will not run in this run: send the health alerts now
                cycle.deliver_alerts(ctx, report)
        counts = report_counts(report)
        log.info("poll: %d new items spooled; feeds %s; %s", spooled, feed_ids or "all due", counts)
        if problem is not None:
            # Every result is recorded (and spooled items wait in the inbox for the next run). Failing
            # without retries: re-polling the same dead feeds 30 s later tells nothing new.
            from airflow.sdk.exceptions import AirflowFailException

            for line in report.errors[:50]:
                log.error("%s", line)
            raise AirflowFailException(f"poll failed: {problem}")
        return {"spooled": spooled, "feeds": feed_ids, **counts}

    @task
    def plan_batches(polled: dict[str, Any]) -> list[list[str]]:
        # Takes everything pending, not only this poll's items, so work left by a failed run is picked up.
        from pipelines import cycle

        with pipeline_context() as ctx:
            batch_size = getattr(getattr(ctx.config, "settings", None), "batch_size", 25)
            batches = cycle.pending_batches(ctx, batch_size=batch_size, max_batches=MAX_BATCHES)
        log.info("%d pending items in %d batches (polled: %s new)", sum(map(len, batches)), len(batches),
                 polled.get("spooled"))
        return batches

    @task(max_active_tis_per_dag=MAX_PARALLEL_BATCHES)
    def process_batch(keys: list[str]) -> dict[str, Any]:
        from pipelines import cycle
        from pipelines.models import CycleReport

        report = CycleReport()
        with pipeline_context() as ctx:
            article_ids = cycle.process_items(ctx, keys, report, evaluate=True)
        log.info("batch of %d items: %d articles, %d alerts fired; %s", len(keys), len(article_ids),
                 report.alerts_fired, report_counts(report))
        return {"article_ids": article_ids, "alerts_fired": report.alerts_fired}

    @task(outlets=[ARTICLES], trigger_rule=TriggerRule.NONE_FAILED)
    def evaluate_alerts(batch_results: Any) -> dict[str, Any]:
        # The batches evaluated their articles already; this adds them up and emits the asset.
        # Skipping (not succeeding) when nothing is new is what keeps the asset quiet: no event, no digest run.
        from airflow.sdk.exceptions import AirflowSkipException

        article_ids: set[str] = set()
        alerts_fired = 0
        unevaluated: set[str] = set()
        for batch in all_batch_results(batch_results):
            if isinstance(batch, dict):
                article_ids.update(batch.get("article_ids") or [])
                alerts_fired += int(batch.get("alerts_fired") or 0)
            else:  # a bare id list: a batch run by the previous DAG version, which did not evaluate
                unevaluated.update(batch or [])
        article_ids |= unevaluated
        if not article_ids:
            raise AirflowSkipException("no new articles in this run")
        if unevaluated:
            from pipelines import cycle
            from pipelines.models import CycleReport

            with pipeline_context() as ctx:
                alerts_fired += len(cycle.evaluate_alerts(ctx, sorted(unevaluated), CycleReport()))
        get_current_context()["outlet_events"][ARTICLES].extra = {
            "articles": len(article_ids),
            "alerts": alerts_fired,
        }
        log.info("%d new articles, %d new alerts", len(article_ids), alerts_fired)
        return {"articles": len(article_ids), "alerts_fired": alerts_fired, "evaluated_here": len(unevaluated)}

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def deliver_alerts() -> int:
        # Runs on quiet cycles too: deliveries that failed earlier are still queued in the outbox.
        from pipelines import cycle
        from pipelines.models import CycleReport

        report = CycleReport()
        with pipeline_context() as ctx:
            delivered = cycle.deliver_alerts(ctx, report)
        log.info("%d deliveries made; %s", delivered, report_counts(report))
        return delivered

    batches = plan_batches(poll_feeds())
    evaluated = evaluate_alerts(process_batch.expand(keys=batches))
    evaluated >> deliver_alerts()


news_monitor()

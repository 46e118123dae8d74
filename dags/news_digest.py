"""news_digest: each desk's developments and top stories since its last digest, as HTML + Markdown.

Runs when news_monitor indexed new articles (the newsmon_articles asset), and hourly so a
digest held back by `min_interval_minutes` still goes out when the news stops. Files go
to <digest dir>/<desk>/<YYYY-MM-DDTHH-MM-SSZ>.{html,md} and to the desk's channels.
Rendering and bookkeeping are pipelines.digest's; this file only wires them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from newsmon_settings import ARTICLES_ASSET_NAME, ARTICLES_ASSET_URI, pipeline_context, runtime_settings

log = logging.getLogger(__name__)

ARTICLES = Asset(name=ARTICLES_ASSET_NAME, uri=ARTICLES_ASSET_URI, group="newsmon")
FLUSH_CRON = "0 * * * *"


@dag(
    dag_id="news_digest",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(FLUSH_CRON, timezone="UTC"), assets=[ARTICLES]),
    start_date=datetime(2025, 10, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "newsmon",
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(minutes=10),
    },
    params={
        # A burst of monitor runs must not become a burst of digests: a desk gets at most one per interval.
        "min_interval_minutes": Param(60, type="integer", minimum=0),
    },
    tags=["newsmon"],
    doc_md=__doc__,
)
def news_digest():
    @task
    def list_desks() -> list[str]:
        with pipeline_context() as ctx:
            return sorted(ctx.config.alerts.desks)

    @task(max_active_tis_per_dagrun=4)
    def desk_digest(desk: str) -> dict[str, Any]:
        from newsmon_settings import REPO_ROOT

        from pipelines.digest import run_desk_digest

        context = get_current_context()
        end = context["dag_run"].run_after  # fixed per run, so a retry rebuilds the same period and files
        min_interval = timedelta(minutes=int(context["params"]["min_interval_minutes"]))
        settings = runtime_settings()
        with pipeline_context() as ctx:
            alerts = ctx.config.alerts
            channels = [alerts.channel(c) for c in alerts.desk_channels(desk)]
            zone = alerts.desks[desk].timezone if desk in alerts.desks else None
            result = run_desk_digest(ctx.store, desk, channels, settings.digest_dir, end,
                                     min_interval=min_interval, base_dir=str(REPO_ROOT), timezone=zone)
        log.info("desk %s: %s %s sent=%s", desk, result.status, result.html or "", result.sent)
        if result.failed:
            # Files are written and the period stays open; a retry re-sends to these channels only.
            raise RuntimeError(f"desk {desk}: digest not delivered: " + " | ".join(result.failed))
        return {"desk": desk, "status": result.status, "html": result.html, "md": result.md, "sent": result.sent}

    desk_digest.expand(desk=list_desks())


news_digest()

"""Where the DAGs get newsmon's settings: Airflow Variables first, then env vars, then repo defaults.

Lives in plugins/ (on sys.path in every Airflow component) because pipelines/ must never
import Airflow. Two kinds of reads, kept apart on purpose:

* parse time (DAG-file top level, run by the DAG processor every few seconds): the Variables
  `newsmon_config_dir` and `newsmon_allow_networks` and small local YAML files, never the store
  or the network; any error falls back to a default and is logged, so a typo in config/ never
  makes the DAG disappear;
* run time (inside tasks): Variables `newsmon_config_dir`, `newsmon_store_url`,
  `newsmon_allow_networks`, `newsmon_digest_dir`, each falling back to env
  NEWSMON_CONFIG / NEWSMON_STORE / NEWSMON_ALLOW_NETWORKS / NEWSMON_DIGEST_DIR.

Every value comes from pipelines.settings.resolve, the one resolver, with the Variable and
connection lookups injected from here (precedence: README.md, "Settings"). For the store: Variable
`newsmon_store_url`, env NEWSMON_STORE, `store:` in newsmon.yaml, the Airflow connection
`elasticsearch_default` (if defined), the embedded SQLite file. At parse time the DAG file
resolves `newsmon_config_dir` (which feeds to watch, the schedule) and `newsmon_allow_networks`
(passed in the trigger's kwargs) by the same precedence, Variable first.
A store setting of just `elasticsearch` asks for the connection and fails if it is missing.
An explicit setting always beats the connection, so an `elasticsearch_default` kept for other
DAGs never moves newsmon's data by surprise when newsmon is configured.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEDULE = "*/5 * * * *"
# The asset news_monitor updates when a run indexed new articles; news_digest (and reports) schedule on it.
ARTICLES_ASSET_NAME = "newsmon_articles"
ARTICLES_ASSET_URI = "newsmon://articles"
DEFAULT_FEED_INTERVAL = 300
MIN_WATCH_INTERVAL = 15  # seconds; below this a watcher is a load test on the publisher

ES_CONNECTION_ID = "elasticsearch_default"

# Variable name -> env var name
VARIABLES = {
    "newsmon_config_dir": "NEWSMON_CONFIG",
    "newsmon_store_url": "NEWSMON_STORE",
    "newsmon_allow_networks": "NEWSMON_ALLOW_NETWORKS",
    "newsmon_channel_allow_networks": "NEWSMON_CHANNEL_ALLOW_NETWORKS",
    "newsmon_digest_dir": "NEWSMON_DIGEST_DIR",
}

_CRON_FIELD = re.compile(r"[\d*/,\-A-Za-z?LW#]+\Z")
_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Relative paths are taken from the repo root: Airflow components do not share a cwd."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else REPO_ROOT / candidate


# --- parse time ------------------------------------------------------------------------
def airflow_variable(name: str) -> str | None:
    """The Airflow Variable, None when unset or unreadable: the resolver's step 2."""
    try:
        from airflow.sdk import Variable

        return Variable.get(name, default=None)
    except Exception as exc:  # no task context (CLI, plain tests) or API server unreachable
        log.debug("Variable %s not read (%s); using env", name, exc)
        return None


def parse_time_config_dir() -> Path:
    """Config dir for DAG-file top level (schedule, watched feeds): Variable newsmon_config_dir, env
    NEWSMON_CONFIG, <repo>/config, as the tasks resolve it, so the watchers watch the feeds the tasks
    poll and a changed Variable reaches them with the next parse."""
    from pipelines.settings import resolve

    return _absolute(resolve("config_dir", variable=airflow_variable).value)


def parse_time_allow_networks() -> str | None:
    """newsmon_allow_networks for the feed watchers' kwargs: Variable first, then env (the resolver).

    Read when the DAG file is parsed, so a changed Variable reaches the triggerer with the next parse
    (the kwargs change, so the watcher is replaced); None when neither is set."""
    from pipelines.settings import resolve

    return resolve("allow_networks", variable=airflow_variable).value


def _read_yaml(path: Path) -> Any:
    from pipelines.config import parse_yaml  # the one config loader: alias and depth limits

    with open(path, encoding="utf-8") as fh:
        return parse_yaml(fh)


def valid_cron(expr: str) -> bool:
    expr = expr.strip()
    if expr in _CRON_PRESETS:
        return True
    fields = expr.split()
    return len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)


def read_schedule(config_dir: Path | None = None) -> str:
    """`schedule` from newsmon.yaml; the default, with a logged warning, when missing or malformed."""
    path = (config_dir or parse_time_config_dir()) / "newsmon.yaml"
    if not path.exists():
        return DEFAULT_SCHEDULE
    try:
        data = _read_yaml(path) or {}
        schedule = data.get("schedule", DEFAULT_SCHEDULE) if isinstance(data, dict) else None
    except Exception as exc:  # a broken file must not take the DAG down with it
        log.warning("%s: unreadable (%s); using schedule %r", path, str(exc).splitlines()[0], DEFAULT_SCHEDULE)
        return DEFAULT_SCHEDULE
    if not isinstance(schedule, str) or not valid_cron(schedule):
        log.warning("%s: field 'schedule': not a cron expression (%r); using %r", path, schedule, DEFAULT_SCHEDULE)
        return DEFAULT_SCHEDULE
    return schedule.strip()


def cron_period_seconds(schedule: str) -> float | None:
    """Shortest gap between two ticks of a cron schedule (None when it cannot be computed)."""
    try:
        from datetime import UTC, datetime

        from croniter import croniter

        it = croniter(schedule, datetime(2025, 1, 1, tzinfo=UTC))
        ticks = [it.get_next(datetime) for _ in range(8)]
        return min((b - a).total_seconds() for a, b in zip(ticks, ticks[1:], strict=False))
    except Exception:
        return None


@dataclass(frozen=True)
class WatchedFeed:
    feed_id: str
    url: str
    poll_interval: int


def read_watched_feeds(config_dir: Path | None = None, schedule: str | None = None) -> list[WatchedFeed]:
    """Feeds the event trigger should watch, read from feeds.yaml without network or store access.

    Env NEWSMON_WATCH_FEEDS picks them: "auto" (default) watches every enabled feed whose poll
    interval is shorter than the cron period (for the others, cron is already as fast as the
    publisher allows us to ask); "all"; "none"; or a comma-separated list of feed ids. Each
    watcher polls at its feed's own interval (never below MIN_WATCH_INTERVAL): the feed's
    interval is the politeness budget agreed for that publisher.
    """
    config_dir = config_dir or parse_time_config_dir()
    choice = (os.environ.get("NEWSMON_WATCH_FEEDS") or "auto").strip()
    if choice.lower() == "none":
        return []
    path = config_dir / "feeds.yaml"
    try:
        data = _read_yaml(path)
    except FileNotFoundError:
        return []
    except Exception as exc:
        log.warning("%s: unreadable (%s); no feed watchers", path, str(exc).splitlines()[0])
        return []
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        return []
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    period = cron_period_seconds(schedule or read_schedule(config_dir)) or float("inf")
    wanted = None if choice.lower() in ("auto", "all") else {s.strip() for s in choice.split(",") if s.strip()}
    watched: list[WatchedFeed] = []
    for raw in data["feeds"]:
        if not isinstance(raw, dict):
            continue
        entry = {**defaults, **raw}
        feed_id, url = entry.get("id"), entry.get("url")
        if not isinstance(feed_id, str) or not isinstance(url, str) or not url.startswith(("http://", "https://")):
            continue  # the pipeline's config loader reports it with file/entry/field
        if entry.get("enabled", True) is False:
            continue
        interval = entry.get("interval", DEFAULT_FEED_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            interval = DEFAULT_FEED_INTERVAL
        if wanted is not None and feed_id not in wanted:
            continue
        if choice.lower() == "auto" and interval >= period:
            continue
        watched.append(WatchedFeed(feed_id, url, max(MIN_WATCH_INTERVAL, int(interval))))
    return watched


# --- run time (inside tasks only) ------------------------------------------------------
@dataclass(frozen=True)
class RuntimeSettings:
    config_dir: str
    store_url: str | None  # None: the pipeline's own default (NEWSMON_STORE or var/ under the cwd)
    allow_networks: str | None
    digest_dir: str
    channel_allow_networks: str | None = None  # alert channels' own allow-list (digests' too)


def setting(variable: str) -> str | None:
    """One setting: Airflow Variable, else its env var, else None (the resolver's steps 2 and 3).
    Call inside a task only."""
    from pipelines.settings import SETTINGS, resolve

    name = next(key for key, spec in SETTINGS.items() if spec.variable == variable)
    return resolve(name, variable=airflow_variable, config_dir=False, default=None).value


def runtime_settings() -> RuntimeSettings:
    """Variables first, then env, then defaults, all by pipelines.settings.resolve; the store's
    newsmon.yaml, connection and default steps are open_pipeline_store's and open_context's."""
    from pipelines.settings import resolve

    return RuntimeSettings(
        config_dir=str(_absolute(resolve("config_dir", variable=airflow_variable).value)),
        store_url=setting("newsmon_store_url"),
        allow_networks=setting("newsmon_allow_networks"),
        digest_dir=str(_absolute(resolve("digest_dir", variable=airflow_variable).value)),
        channel_allow_networks=setting("newsmon_channel_allow_networks"),
    )


def dashboard_config_dir() -> str:
    """The dashboard's config dir in the api-server: Variable newsmon_config_dir, NEWSMON_CONFIG, <repo>/config."""
    return runtime_settings().config_dir


def es_connection(conn_id: str = ES_CONNECTION_ID) -> Any | None:
    """The Airflow connection, or None when it is not defined (or Airflow is not there).

    airflow.sdk's Connection.get works in a task (through the supervisor), in the api-server
    (metadata DB) and elsewhere (AIRFLOW_CONN_* env vars and configured secrets backends)."""
    try:
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        return None
    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def connection_store(conn: Any) -> Any:
    """An Elasticsearch store from an Airflow connection's host, port, schema, login, password and extra."""
    from pipelines.store.elasticsearch import from_connection_fields

    return from_connection_fields(conn.host, conn.port, conn.schema, conn.login, conn.password,
                                  conn.extra_dejson)


def open_pipeline_store(settings: RuntimeSettings) -> Any | None:
    """The store from the Airflow connection when the settings ask for it or name none; None means
    open_context opens the configured URL (or the SQLite default)."""
    from pipelines.errors import NewsmonError
    from pipelines.settings import resolve
    from pipelines.store import AIRFLOW_CONNECTION_STORE

    # settings.store_url is the Variable-or-env answer already (runtime_settings), so it ranks as the flag.
    resolved = resolve("store", flag=settings.store_url, config_dir=settings.config_dir, connection=es_connection)
    if resolved.source == "connection":
        log.info("store: Airflow connection %s", ES_CONNECTION_ID)
        return connection_store(resolved.value)
    wanted = str(resolved.value)
    if resolved.source != "flag" or wanted.lower() != AIRFLOW_CONNECTION_STORE:
        return None  # an explicit URL (or newsmon.yaml's, or the default) beats the connection
    conn = es_connection()
    if conn is None:
        raise NewsmonError(f"store setting {wanted!r}: Airflow connection {ES_CONNECTION_ID} is not defined "
                           "(add it, or give newsmon_store_url / NEWSMON_STORE a full store URL)")
    log.info("store: Airflow connection %s", ES_CONNECTION_ID)
    return connection_store(conn)


@contextmanager
def pipeline_context() -> Iterator[Any]:
    """Open pipelines.cycle's Context with the resolved settings, and always close it."""
    settings = runtime_settings()
    if settings.allow_networks is not None:
        # NetworkPolicy.from_env() reads it; each Airflow task runs in its own process.
        os.environ["NEWSMON_ALLOW_NETWORKS"] = settings.allow_networks
    if settings.channel_allow_networks is not None:
        # The Notifier's (and the digest's) default channel policy reads it.
        os.environ["NEWSMON_CHANNEL_ALLOW_NETWORKS"] = settings.channel_allow_networks
    from pipelines.cycle import open_context

    store = open_pipeline_store(settings)
    # base_dir: relative channel paths (jsonl) resolve against the repo, whatever the task's cwd.
    ctx = open_context(settings.config_dir, None if store else settings.store_url, store=store,
                       base_dir=str(REPO_ROOT))
    try:
        yield ctx
    finally:
        ctx.close()

"""Load and validate config/ (feeds.yaml, topics.yaml, alerts.yaml, newsmon.yaml).

Every problem becomes a ConfigError naming file, entry and field, so an
editor fixing a typo at 6 a.m. is told exactly where it is.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pipelines.errors import ConfigError, UsageError
from pipelines.models import FeedConfig

DEFAULT_CONFIG_DIR = "config"
# \Z, not $: "$" also matches before a final newline, and "dawn\n" is not an id
FEED_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
LANG_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?\Z")
_URL_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
NONE = type(None)

FEED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "url": str, "desk": str, "language": str, "interval": (int, str), "enabled": bool, "name": str,
}
MAX_FEED_NAME = 100  # an outlet's name, shown as articles' source in alerts, digests and the dashboard
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
FETCH_FIELDS: dict[str, type | tuple[type, ...]] = {
    "user_agent": str, "connect_timeout": (int, float), "read_timeout": (int, float),
    "total_timeout": (int, float), "max_bytes": int, "max_redirects": int,
    "per_host_concurrency": int, "per_host_delay": (int, float), "workers": int,
}
SETTINGS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schedule": str, "fetch": (dict, NONE), "extract": (dict, NONE), "batch_size": int, "store": (str, NONE),
    "alerts": (dict, NONE), "developments": (dict, NONE), "health": (dict, NONE),
}
DEVELOPMENT_FIELDS: dict[str, type | tuple[type, ...]] = {"model": bool, "threshold": (int, float)}
ALERT_SETTINGS_FIELDS: dict[str, type | tuple[type, ...]] = {"max_age": (str, int)}
DEFAULT_MAX_AGE = "48h"
EXTRACT_FIELDS: dict[str, type | tuple[type, ...]] = {"min_chars": int, "precision_pass": bool}
HEALTH_FIELDS: dict[str, type | tuple[type, ...]] = {
    "max_failed_share": (int, float, NONE), "stale_after": (int, float), "channels": (list, NONE),
}


_DURATION = re.compile(r"\s*(\d+)\s*([smhdw]?)\s*\Z")
_DURATION_UNITS = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> timedelta:
    """Every duration field of config/ is read here, written one way: '30s', '5m', '1h', '2d', '1w',
    or a whole number of seconds (300 or '300'). ValueError (the message for a ConfigError) otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a duration like '30s', '5m', '24h', '7d' or seconds, not {type(value).__name__}")
    m = _DURATION.match(str(value))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad duration {value!r}: use a positive whole number of seconds or one with "
                         "s, m, h, d or w ('30s', '5m', '24h', '7d', '1w')")
    return timedelta(**{_DURATION_UNITS[m.group(2)]: int(m.group(1))})


@dataclass
class Settings:
    schedule: str = "*/5 * * * *"
    fetch: dict[str, Any] = field(default_factory=dict)
    extract: dict[str, Any] = field(default_factory=lambda: {"min_chars": 250, "precision_pass": False})
    batch_size: int = 25
    store: str | None = None
    # An item published longer than this before it is polled never notifies (stored, tagged, counted).
    max_age: timedelta = timedelta(hours=48)
    # The learned development reader (pipelines/devmodel.py), asked when the rules find nothing; off:
    # it does not beat the rules on unseen text (docs/accuracy.md). None: the model's own threshold.
    model: bool = False
    model_threshold: float | None = None
    # Feed health (pipelines/health.py). max_failed_share: a poll fails when the failed share of the feeds
    # it tried is above it; None: only when every feed failed. stale_after: intervals without new items
    # before a feed raises a health alert to health_channels (alerts.yaml channel ids).
    max_failed_share: float | None = None
    stale_after: float = 12
    health_channels: list[str] = field(default_factory=list)


@dataclass
class AppConfig:
    dir: str
    feeds: list[FeedConfig]
    taxonomy: Any  # pipelines.tag.Taxonomy
    alerts: Any  # pipelines.alerts.AlertConfig
    settings: Settings
    events: Any = None  # pipelines.events.EventRules; None when the dir has no events.yaml

    def feed(self, feed_id: str) -> FeedConfig | None:
        return next((f for f in self.feeds if f.id == feed_id), None)


def config_dir_from(value: str | None = None) -> str:
    """--config, else NEWSMON_CONFIG, else ./config (pipelines.settings, the one resolver)."""
    from pipelines.settings import resolve

    return resolve("config_dir", flag=value, default=DEFAULT_CONFIG_DIR).value


def load_yaml(path: str | Path) -> Any:
    """Read one YAML file; syntax errors name the file and line."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(path, None, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, None, None, f"YAML syntax error: {where}{problem}") from None


def check_fields(path: str, entry: str | None, data: Any, fields: dict[str, Any],
                 required: tuple[str, ...] = ()) -> None:
    """Reject unknown keys, missing required keys and wrong types, one field at a time.

    A null is only accepted where the field's type allows None: elsewhere it would reach a
    comparison or a str method later and fail without naming the field.
    """
    if not isinstance(data, dict):
        raise ConfigError(path, entry, None, f"expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            raise ConfigError(path, entry, str(key), f"unknown key (allowed: {allowed})")
    for key in required:
        if data.get(key) in (None, ""):
            raise ConfigError(path, entry, key, "missing required field")
    for key, value in data.items():
        expected = fields[key]
        # bool is an int in Python; a 'true' interval is a mistake, not a number
        if isinstance(value, bool) and expected in (int, (int, float)):
            raise ConfigError(path, entry, key, f"expected {_type_name(expected)}, got bool")
        if value is None and not _allows_none(expected):
            raise ConfigError(path, entry, key, f"no value (expected {_type_name(expected)}; "
                                                "remove the key to use the default)")
        if value is not None and not isinstance(value, expected):
            raise ConfigError(path, entry, key, f"expected {_type_name(expected)}, got {type(value).__name__}")


def _allows_none(expected: Any) -> bool:
    return isinstance(expected, tuple) and NONE in expected


def _without_nulls(data: Any) -> Any:
    """A feed entry's (or the defaults') null means "not set": the default applies."""
    return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


def _type_name(expected: Any) -> str:
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected if t is not type(None))
    return expected.__name__


def check_http_url(path: str, entry: str | None, field_name: str, url: str) -> None:
    if _URL_UNSAFE.search(url):
        raise ConfigError(path, entry, field_name, f"URL contains whitespace or control characters: {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in 0-65535
    except ValueError as err:  # "http://[": unbalanced brackets, a bad port...
        raise ConfigError(path, entry, field_name, f"malformed URL {url!r} ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, entry, field_name, f"not an http(s) URL: {url!r}")


def validate_feeds(data: Any, path: str, desks: set[str] | None = None) -> list[FeedConfig]:
    if not isinstance(data, dict):
        raise ConfigError(path, None, None, "expected a mapping with a 'feeds:' list")
    check_fields(path, None, data, {"feeds": list, "defaults": (dict, NONE)}, required=("feeds",))
    defaults = _without_nulls(data.get("defaults") or {})
    # id, url and name belong to one feed: a default name would call every outlet the same
    check_fields(path, "defaults", defaults, {k: v for k, v in FEED_FIELDS.items() if k not in ("id", "url", "name")})
    if "interval" in defaults:
        try:
            parse_duration(defaults["interval"])
        except ValueError as exc:
            raise ConfigError(path, "defaults", "interval", str(exc)) from None
    feeds: list[FeedConfig] = []
    seen_ids: set[str] = set()
    seen_urls: dict[str, str] = {}
    for index, raw in enumerate(data["feeds"]):
        entry = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{index + 1}"
        merged = {**defaults, **_without_nulls(raw)} if isinstance(raw, dict) else raw
        check_fields(path, entry, merged, FEED_FIELDS, required=("id", "url", "desk"))
        feed_id = merged["id"]
        if not FEED_ID_RE.match(feed_id):
            raise ConfigError(path, entry, "id", "use lower-case letters, digits, '.', '_' or '-' (max 64)")
        if feed_id in seen_ids:
            raise ConfigError(path, entry, "id", "duplicate id")
        seen_ids.add(feed_id)
        check_http_url(path, entry, "url", merged["url"])
        if merged["url"] in seen_urls:
            raise ConfigError(path, entry, "url", f"same URL as feed {seen_urls[merged['url']]!r}")
        seen_urls[merged["url"]] = feed_id
        if desks is not None and merged["desk"] not in desks:
            raise ConfigError(path, entry, "desk", f"unknown desk {merged['desk']!r} (desks in alerts.yaml: "
                                                   f"{', '.join(sorted(desks))})")
        language = merged.get("language", "en")
        if not LANG_RE.match(language):
            raise ConfigError(path, entry, "language", f"not a language code: {language!r}")
        try:
            interval = int(parse_duration(merged.get("interval", 300)).total_seconds())
        except ValueError as exc:
            raise ConfigError(path, entry, "interval", str(exc)) from None
        feeds.append(FeedConfig(id=feed_id, url=merged["url"], desk=merged["desk"], language=language,
                                interval=interval, enabled=merged.get("enabled", True),
                                name=_feed_name(path, entry, merged.get("name"))))
    return feeds


def _feed_name(path: str, entry: str, name: str | None) -> str | None:
    """A feed's `name` (the outlet, articles' source): one line of text, trimmed; None when not set."""
    if name is None:
        return None
    if _NAME_UNSAFE.search(name):
        raise ConfigError(path, entry, "name", f"contains a line break or control character: {name!r}")
    name = " ".join(name.split())
    if not name:
        raise ConfigError(path, entry, "name", "empty (remove the key to use the feed's own title)")
    if len(name) > MAX_FEED_NAME:
        raise ConfigError(path, entry, "name", f"longer than {MAX_FEED_NAME} characters")
    return name


def validate_settings(data: Any, path: str) -> Settings:
    if data is None:
        return Settings()
    check_fields(path, None, data, SETTINGS_FIELDS)
    fetch = data.get("fetch") or {}
    check_fields(path, "fetch", fetch, FETCH_FIELDS)
    for key, value in fetch.items():
        if key != "user_agent" and not (value > 0 and math.isfinite(value)):  # `not >`: NaN fails too
            raise ConfigError(path, "fetch", key, "must be a positive finite number")
    extract = data.get("extract") or {}
    check_fields(path, "extract", extract, EXTRACT_FIELDS)
    batch_size = data.get("batch_size", 25)
    if batch_size < 1:
        raise ConfigError(path, None, "batch_size", "must be at least 1")
    schedule = data.get("schedule", Settings.schedule)
    if len(schedule.split()) != 5 and not schedule.startswith("@"):
        raise ConfigError(path, None, "schedule", f"not a 5-field cron expression: {schedule!r}")
    alert_settings = data.get("alerts") or {}
    check_fields(path, "alerts", alert_settings, ALERT_SETTINGS_FIELDS)
    try:
        max_age = parse_duration(alert_settings.get("max_age", DEFAULT_MAX_AGE))
    except ValueError as exc:
        raise ConfigError(path, "alerts", "max_age", str(exc)) from None
    developments = data.get("developments") or {}
    check_fields(path, "developments", developments, DEVELOPMENT_FIELDS)
    threshold = developments.get("threshold")
    if threshold is not None and not 0 < threshold <= 1:
        raise ConfigError(path, "developments", "threshold", "must be a probability in (0, 1]")
    health = _health_settings(data.get("health") or {}, path)
    return Settings(schedule=schedule, fetch=fetch, extract={"min_chars": 250, "precision_pass": False, **extract},
                    batch_size=batch_size, store=data.get("store"), max_age=max_age,
                    model=developments.get("model", False), model_threshold=threshold, **health)


def _health_settings(health: Any, path: str) -> dict[str, Any]:
    """newsmon.yaml's `health:` section as Settings fields (channel ids are checked against alerts.yaml
    by load_config, which has both files)."""
    check_fields(path, "health", health, HEALTH_FIELDS)
    share = health.get("max_failed_share")
    if isinstance(share, bool):
        raise ConfigError(path, "health", "max_failed_share", "expected a number in [0, 1], got bool")
    if share is not None and not 0 <= share <= 1:  # `not <=`: NaN fails too
        raise ConfigError(path, "health", "max_failed_share", "must be a share in [0, 1] (remove the key for "
                                                              "the default: fail only when every feed failed)")
    stale_after = health.get("stale_after", 12)
    if not (stale_after > 0 and math.isfinite(stale_after)):
        raise ConfigError(path, "health", "stale_after", "must be a positive number of feed intervals")
    channels = health.get("channels") or []
    for channel in channels:
        if not isinstance(channel, str) or not channel:
            raise ConfigError(path, "health", "channels", f"expected a list of channel ids, got {channel!r}")
    return {"max_failed_share": None if share is None else float(share), "stale_after": stale_after,
            "health_channels": list(dict.fromkeys(channels))}


def load_config(config_dir: str | None = None) -> AppConfig:
    """Load all of config/; raises the first ConfigError found (see validate_config_dir for all)."""
    from pipelines.alerts import load_alert_config
    from pipelines.tag import load_taxonomy

    base = Path(config_dir_from(config_dir))
    if not base.is_dir():
        raise ConfigError(str(base), None, None, "config directory not found")
    topics_path = str(base / "topics.yaml")
    taxonomy = load_taxonomy(_mapping(load_yaml(topics_path), topics_path), topics_path)
    alerts_path = str(base / "alerts.yaml")
    topic_ids = {t.id for t in taxonomy.topics}
    # Development types too: a rule naming "ceasfire-agreed" would load and never fire.
    alerts = load_alert_config(_mapping(load_yaml(alerts_path), alerts_path), alerts_path, topic_ids,
                               taxonomy.development_types())
    desks = set(alerts.desks) or None
    feeds_path = str(base / "feeds.yaml")
    feeds = validate_feeds(load_yaml(feeds_path), feeds_path, desks)
    events = load_events(base, taxonomy.development_types(), topic_ids)
    settings = load_settings(base)
    for channel in settings.health_channels:
        if channel not in alerts.channels:
            raise ConfigError(str(base / "newsmon.yaml"), "health", "channels",
                              f"unknown channel {channel!r} (channels in alerts.yaml: "
                              f"{', '.join(sorted(alerts.channels))})")
    return AppConfig(dir=str(base), feeds=feeds, taxonomy=taxonomy, alerts=alerts, settings=settings,
                     events=events)


def load_events(config_dir: str | Path, development_types: list[str] | None = None,
                topic_ids: set[str] | None = None) -> Any:
    """events.yaml of a config dir (pipelines.events.EventRules), or None when the file is absent.

    development_types and topic_ids (from topics.yaml): every event type must be one the tagger can
    report, every family topic one it tags."""
    from pipelines.events import load_event_rules

    events_path = Path(config_dir) / "events.yaml"
    if not events_path.exists():
        return None
    rules = load_event_rules(load_yaml(events_path), str(events_path))
    if development_types is not None:
        known = set(development_types)
        for dev_type in sorted(rules.event_types()):
            if dev_type not in known:
                raise ConfigError(str(events_path), None, "families",
                                  f"development type {dev_type!r} is not in topics.yaml's developments")
    for family in rules.families.values():
        for topic in sorted(family.topics - (topic_ids if topic_ids is not None else family.topics)):
            raise ConfigError(str(events_path), f"family {family.id}", "topics",
                              f"unknown topic {topic!r} (not in topics.yaml)")
    return rules


def load_settings(config_dir: str | Path) -> Settings:
    """newsmon.yaml of a config dir, validated; the defaults when the file is absent."""
    settings_path = Path(config_dir) / "newsmon.yaml"
    if not settings_path.exists():
        return Settings()
    return validate_settings(load_yaml(settings_path), str(settings_path))


def _mapping(data: Any, path: str) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(path, None, None, f"expected a mapping at top level, got {type(data).__name__}")
    return data


def check_choice(option: str, value: str | None, known: Any, where: str) -> None:
    """UsageError when value (a --topic, a desk filter) is not one of known: a typo must not read as
    "no matches". None passes."""
    if value is None or value in known:
        return
    listed = ", ".join(sorted(known)) or "none"
    raise UsageError(f"unknown {option} {value!r} (known in {where}: {listed})")


def check_filters(config: AppConfig, *, topic: str | None = None, desk: str | None = None,
                  extra_desks: Any = ()) -> None:
    """A topic must be one of topics.yaml's, a desk one of alerts.yaml's (or extra_desks)."""
    check_choice("topic", topic, {t.id for t in config.taxonomy.topics}, "topics.yaml")
    check_choice("desk", desk, set(config.alerts.desks) | set(extra_desks), "alerts.yaml")


def config_warnings(config: AppConfig, allow_networks: str | None = None) -> list[str]:
    """What loads but will not work as meant, one line each: a channel no desk or rule sends to, a
    feed on a network the fetcher refuses (loopback, private... without NEWSMON_ALLOW_NETWORKS).
    Only literal IPs and 'localhost' are judged: no DNS lookups."""
    import ipaddress

    from pipelines.errors import FetchError
    from pipelines.netguard import ENV_ALLOW, NetworkPolicy

    warnings: list[str] = []
    alerts = config.alerts
    used = {c for d in alerts.desks.values() for c in d.channels} | {c for r in alerts.rules for c in r.channels}
    for channel in alerts.channels:
        if channel not in used:
            warnings.append(f"{alerts.path}: entry {channel!r}: channel is used by no desk or rule")
    raw = os.environ.get(ENV_ALLOW, "") if allow_networks is None else allow_networks
    policy = NetworkPolicy(raw.split(","))
    feeds_path = os.path.join(config.dir, "feeds.yaml")
    for feed in config.feeds:
        host = (urlsplit(feed.url).hostname or "").rstrip(".").lower()
        try:
            if host == "localhost" or host.endswith(".localhost"):
                policy.check_address("127.0.0.1", url=feed.url)
            else:
                ipaddress.ip_address(host.split("%", 1)[0])  # a name is judged after DNS, when fetched
                policy.check_url(feed.url)
        except ValueError:
            continue
        except FetchError as exc:
            warnings.append(f"{feeds_path}: entry {feed.id!r}: field 'url': {exc.reason}")
    return warnings

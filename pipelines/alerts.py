"""Alert rules (config/alerts.yaml): which new developments and stories a desk must hear about, and where.

One notification per development event per desk. When an article reports a development event
(pipelines/events.py), every rule of a desk that matches it is folded into that desk's one alert for
the event, keyword and topic rules included: alert id sha256("event|desk|event id")[:32]. Later reports
of the event update that alert (its copy count; the event keeps the reports) without a new notification.
A transition is a new event and so a new alert. A rule may ask to be told of an escalation
(`escalate: {corroborated: N, disputed: true}`): one more notification when the event reaches N
independent outlets, or when a party denies it.

Articles without an event (keyword and topic rules; or any rule when config/ has no events.yaml) fire
at most once per (desk, story, development type) within the longest window of the desk's matching rules:
syndicated copies of one story do not page a desk twice.

Freshness: an article published more than `alerts.max_age` (newsmon.yaml, default 48h) before it was
first seen never notifies; it is still stored, tagged and attached to its event, so a new feed's
backlog builds the watch's state silently.

Keying. A story alert's first firing's id is sha256("desk:D|story|dev")[:32] (dev is "-" when the
article announces none); that id is also the delivery idempotency key. When that
alert is older than the rule's window and the story moves again with the same
development type, the next firing gets generation 1: sha256("rule|story|dev|1"),
then |2, and so on. The engine walks the generations with store.get_alert() to
find the latest (there are few: one per window per story). Because the ids are
deterministic, two workers evaluating the same article race on store.record_alert
and exactly one wins; re-running a crashed cycle finds the alert and fires nothing.
Generations beat time buckets: a bucketed key would fire twice a minute apart
across a bucket boundary.

alerts.yaml layout (every key validated at load; see config/alerts.yaml):

    channels:            # where alerts go
      - {id: console, type: console}
      - {id: jsonl, type: jsonl, path: var/alerts.jsonl}
      - {id: desk-hook, type: webhook, url_env: NEWSMON_WEBHOOK_URL, format: slack|generic,
         secret_env: NEWSMON_WEBHOOK_SECRET, headers: {..}, headers_env: {Header: ENV}, timeout: 10}
      - {id: mail, type: email, to: [..], from: .., smtp_host | smtp_host_env, smtp_port,
         smtp_user | smtp_user_env, password_env, starttls: true, ssl: false, timeout: 30}
      (every channel: enabled: true|false, description)
    desks:               # who reads them; a desk's channels are the default for its rules and for digests
      - {id: security, channels: [console, jsonl], description: .., timezone: Asia/Karachi (UTC)}
    rules:
      - id, desk, description, enabled (true), topics: [any of], developments: [any of; 'talks-*' = prefix],
        query: desk query (pipelines/query.py), channels (default: the desk's), window ("24h"; s/m/h/d/w or seconds),
        min_score (best score among the rule's topics, or all topics), relevant_only (true),
        escalate: {corroborated: N, disputed: true|false}
A rule matches when every condition it gives holds; it must give at least one of
topics, developments or query.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from pipelines.config import parse_duration, parse_yaml, shown
from pipelines.errors import ConfigError
from pipelines.events import Attachment
from pipelines.models import Alert, Article, DevelopmentEvent, announced_type, iso, parse_iso, utcnow
from pipelines.query import PreparedDoc, Query, QuerySyntaxError, parse_query, prepare_doc
from pipelines.store.base import Store

CHANNEL_TYPES = ("console", "jsonl", "webhook", "email")
WEBHOOK_FORMATS = ("generic", "slack")
DEFAULT_WINDOW = "24h"
MAX_GENERATIONS = 10_000  # a safety stop for the generation walk, never reached in practice

# \Z, not $: "$" also matches before a final newline, and "desk\n" is not an id ("a@b\n" no address)
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DEV_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*\*?\Z")
_EMAIL = re.compile(r"[^@\s<>,]+@[^@\s<>,]+\Z")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")

_COMMON_CHANNEL_KEYS = {"id", "type", "enabled", "description"}
_CHANNEL_KEYS = {
    "console": set(),
    "jsonl": {"path"},
    "webhook": {"url", "url_env", "format", "secret_env", "headers", "headers_env", "timeout"},
    "email": {"to", "from", "subject_prefix", "smtp_host", "smtp_host_env", "smtp_port", "smtp_user",
              "smtp_user_env", "password_env", "starttls", "ssl", "timeout"},
}
_DESK_KEYS = {"id", "channels", "description", "timezone"}
_RULE_KEYS = {"id", "desk", "description", "enabled", "topics", "developments", "query", "channels",
              "window", "min_score", "relevant_only", "escalate"}
_ESCALATE_KEYS = {"corroborated", "disputed"}


@dataclass(frozen=True)
class ChannelConfig:
    id: str
    type: str
    enabled: bool = True
    description: str = ""
    # jsonl
    path: str | None = None
    # webhook
    url: str | None = None
    url_env: str | None = None
    format: str = "generic"
    secret_env: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    headers_env: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    # email
    to: tuple[str, ...] = ()
    from_addr: str | None = None
    subject_prefix: str = "[newsmon]"
    smtp_host: str | None = None
    smtp_host_env: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_user_env: str | None = None
    password_env: str | None = None
    starttls: bool = True
    ssl: bool = False


@dataclass(frozen=True)
class DeskConfig:
    id: str
    channels: tuple[str, ...] = ()
    description: str = ""
    timezone: str = "UTC"  # IANA name: alert cards and payloads show times in it

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Escalation:
    corroborated: int | None = None  # notify again when the event reaches this many outlets
    disputed: bool = False  # notify again when a party denies it


@dataclass(frozen=True)
class Rule:
    id: str
    desk: str
    channels: tuple[str, ...]
    description: str = ""
    enabled: bool = True
    topics: tuple[str, ...] = ()
    developments: tuple[str, ...] = ()  # exact types, or 'prefix*'
    query: Query | None = None
    window: timedelta = timedelta(hours=24)
    window_text: str = DEFAULT_WINDOW
    min_score: float | None = None
    relevant_only: bool = True
    escalate: Escalation | None = None


@dataclass(frozen=True)
class AlertConfig:
    path: str
    channels: dict[str, ChannelConfig]
    desks: dict[str, DeskConfig]
    rules: list[Rule]

    def channel(self, channel_id: str) -> ChannelConfig | None:
        return self.channels.get(channel_id)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def desk_channels(self, desk_id: str) -> list[str]:
        """Enabled channels of a desk (for digests)."""
        desk = self.desks.get(desk_id)
        if desk is None:
            return []
        return [c for c in desk.channels if self.channels[c].enabled]


# --------------------------------------------------------------------------- loading


class _Entry:
    """Reads one YAML mapping and raises ConfigError naming the file, this entry and the field."""

    def __init__(self, path: str, name: str, data: Any, allowed: set[str]):
        self.path, self.name = path, name
        if not isinstance(data, dict):
            raise ConfigError(path, name, None, f"must be a mapping, not {type(data).__name__}")
        self.data = data
        for key in data:
            if key not in allowed:
                raise ConfigError(path, name, str(key), f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def fail(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(self.path, self.name, key, message)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.fail(key, "is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a YAML 'yes' must not pass as a port or a score.
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"must be {_kind_name(kinds)}, not a boolean")
        if not isinstance(value, kinds):
            raise self.fail(key, f"must be {_kind_name(kinds)}, not {type(value).__name__}")
        return value

    def text(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.get(key, str, default, required)
        if required and isinstance(value, str) and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def str_list(self, key: str, required: bool = False) -> list[str]:
        value = self.get(key, list, None, required)
        if value is None:
            return []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise self.fail(key, f"must be a list of non-empty strings (got {shown(item)})")
        if required and not value:
            raise self.fail(key, "must not be empty")
        return [v.strip() for v in value]

    def env_name(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and not _ENV_NAME.match(value):
            raise self.fail(key, f"{shown(value)} is not an environment variable name (the secret itself "
                                 "never goes in the file)")
        return value

    def str_map(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, None)
        if value is None:
            return {}
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not _HEADER_NAME.match(k):
                raise self.fail(key, f"bad header name {shown(k)}")
            if not isinstance(v, str) or "\n" in v or "\r" in v:
                raise self.fail(key, f"value of {shown(k)} must be a one-line string")
            out[k] = v
        return out


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "text", list: "a list", dict: "a mapping", bool: "true or false", int: "an integer",
             float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _entry_id(path: str, kind: str, index: int, data: Any, seen: set[str]) -> str:
    fallback = f"{kind} #{index + 1}"
    if not isinstance(data, dict):
        raise ConfigError(path, fallback, None, f"must be a mapping, not {type(data).__name__}")
    raw = data.get("id")
    if raw is None:
        raise ConfigError(path, fallback, "id", "is required")
    if not isinstance(raw, str) or not _ID.match(raw):
        raise ConfigError(path, fallback, "id",
                          f"{shown(raw)} is not a valid id (lower-case letters, digits, '-', '_', '.')")
    if raw in seen:
        raise ConfigError(path, f"{kind} {raw}", "id", f"duplicate {kind} id {shown(raw)}")
    seen.add(raw)
    return raw


def _check_url(entry: _Entry, key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise entry.fail(key, f"bad URL {shown(url, 200)}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise entry.fail(key, f"bad URL {shown(url, 200)}: need http(s)://host/...")
    if any(ch.isspace() for ch in url):
        raise entry.fail(key, f"bad URL {shown(url, 200)}: contains whitespace")


def _load_channel(path: str, name: str, data: dict[str, Any], cid: str) -> ChannelConfig:
    ctype = data.get("type")
    if ctype not in CHANNEL_TYPES:
        raise ConfigError(path, name, "type", f"must be one of {', '.join(CHANNEL_TYPES)} (got {shown(ctype)})")
    e = _Entry(path, name, data, _COMMON_CHANNEL_KEYS | _CHANNEL_KEYS[ctype])
    common = dict(id=cid, type=ctype, enabled=e.get("enabled", bool, True),
                  description=e.text("description", ""))
    if ctype == "console":
        return ChannelConfig(**common)
    if ctype == "jsonl":
        return ChannelConfig(**common, path=e.text("path", required=True))
    timeout = float(e.get("timeout", (int, float), 10 if ctype == "webhook" else 30))
    if not 0 < timeout <= 300:
        raise e.fail("timeout", "must be between 0 and 300 seconds")
    if ctype == "webhook":
        url, url_env = e.text("url"), e.env_name("url_env")
        if (url is None) == (url_env is None):
            raise e.fail("url", "give exactly one of url or url_env")
        if url is not None:
            _check_url(e, "url", url)
        fmt = e.text("format", "generic")
        if fmt not in WEBHOOK_FORMATS:
            raise e.fail("format", f"must be one of {', '.join(WEBHOOK_FORMATS)} (got {shown(fmt)})")
        headers_env = e.str_map("headers_env")
        for header, env in headers_env.items():
            if not _ENV_NAME.match(env):
                raise e.fail("headers_env", f"{shown(env)} (for {header}) is not an environment variable name")
        return ChannelConfig(**common, url=url, url_env=url_env, format=fmt, secret_env=e.env_name("secret_env"),
                             headers=e.str_map("headers"), headers_env=headers_env, timeout=timeout)
    # email
    to = e.str_list("to", required=True)
    for addr in to:
        if not _EMAIL.match(addr):
            raise e.fail("to", f"{shown(addr)} is not an email address")
    from_addr = e.text("from", required=True)
    if not _EMAIL.match(from_addr or ""):
        raise e.fail("from", f"{shown(from_addr)} is not an email address")
    host, host_env = e.text("smtp_host"), e.env_name("smtp_host_env")
    if (host is None) == (host_env is None):
        raise e.fail("smtp_host", "give exactly one of smtp_host or smtp_host_env")
    user, user_env = e.text("smtp_user"), e.env_name("smtp_user_env")
    if user is not None and user_env is not None:
        raise e.fail("smtp_user", "give at most one of smtp_user or smtp_user_env")
    port = e.get("smtp_port", int, 587)
    if not 0 < port < 65536:
        raise e.fail("smtp_port", f"{port} is not a TCP port")
    starttls, use_ssl = e.get("starttls", bool, True), e.get("ssl", bool, False)
    if starttls and use_ssl:
        raise e.fail("starttls", "use either starttls (port 587) or ssl (port 465), not both")
    return ChannelConfig(**common, to=tuple(to), from_addr=from_addr, subject_prefix=e.text("subject_prefix", "[newsmon]"),
                         smtp_host=host, smtp_host_env=host_env, smtp_port=port, smtp_user=user,
                         smtp_user_env=user_env, password_env=e.env_name("password_env"), starttls=starttls,
                         ssl=use_ssl, timeout=timeout)


def _section(path: str, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(path, key, None, f"must be a list, not {type(value).__name__}")
    return value


def load_alert_config(data: Any, path: str, topic_ids: Iterable[str] | None = None,
                      development_types: Iterable[str] | None = None) -> AlertConfig:
    """Validate parsed alerts.yaml; ConfigError(path, entry, field, message) on the first problem.

    topic_ids / development_types, when given (from topics.yaml), catch rules that
    name a topic or development the tagger never produces."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, None, None, f"must be a mapping with channels, desks and rules, "
                                            f"not {type(data).__name__}")
    for key in data:
        if key not in ("channels", "desks", "rules"):
            raise ConfigError(path, None, str(key), "unknown top-level key (allowed: channels, desks, rules)")
    known_topics = set(topic_ids) if topic_ids is not None else None
    known_devs = set(development_types) if development_types is not None else None

    channels: dict[str, ChannelConfig] = {}
    seen: set[str] = set()
    for i, raw in enumerate(_section(path, data, "channels")):
        cid = _entry_id(path, "channel", i, raw, seen)
        channels[cid] = _load_channel(path, f"channel {cid}", raw, cid)

    def channel_refs(e: _Entry, key: str) -> tuple[str, ...]:
        refs = e.str_list(key)
        for ref in refs:
            if ref not in channels:
                known = ", ".join(channels) or "none defined"
                raise e.fail(key, f"unknown channel {shown(ref)} (channels: {known})")
        return tuple(dict.fromkeys(refs))

    desks: dict[str, DeskConfig] = {}
    seen = set()
    for i, raw in enumerate(_section(path, data, "desks")):
        did = _entry_id(path, "desk", i, raw, seen)
        e = _Entry(path, f"desk {did}", raw, _DESK_KEYS)
        timezone = e.text("timezone", "UTC") or "UTC"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise e.fail("timezone", f"unknown time zone {shown(timezone)} (an IANA name such as Asia/Karachi)") from None
        desks[did] = DeskConfig(did, channel_refs(e, "channels"), e.text("description", ""), timezone)

    rules: list[Rule] = []
    seen = set()
    for i, raw in enumerate(_section(path, data, "rules")):
        rid = _entry_id(path, "rule", i, raw, seen)
        e = _Entry(path, f"rule {rid}", raw, _RULE_KEYS)
        desk = e.text("desk", required=True)
        if desks and desk not in desks:
            raise e.fail("desk", f"unknown desk {shown(desk)} (desks: {', '.join(desks)})")
        topics = e.str_list("topics")
        if known_topics is not None:
            for t in topics:
                if t not in known_topics:
                    raise e.fail("topics", f"unknown topic {shown(t)} (not in topics.yaml)")
        developments = e.str_list("developments")
        for d in developments:
            if not _DEV_PATTERN.match(d):
                raise e.fail("developments", f"{shown(d)} is not a development type (e.g. ceasefire-agreed, talks-*)")
            if known_devs is not None:
                hit = any(k.startswith(d[:-1]) for k in known_devs) if d.endswith("*") else d in known_devs
                if not hit:
                    raise e.fail("developments", f"unknown development type {shown(d)}")
        query_text, query = e.text("query"), None
        if query_text is not None:
            try:
                query = parse_query(query_text)
            except QuerySyntaxError as exc:
                raise e.fail("query", f"{exc} in {shown(query_text, 200)}") from None
        if not (topics or developments or query):
            raise e.fail(None, "give at least one condition: topics, developments or query")
        rule_channels = channel_refs(e, "channels") if "channels" in raw else ()
        if not rule_channels:
            rule_channels = desks[desk].channels if desk in desks else ()
        if not rule_channels:
            raise e.fail("channels", "no channels: list some here or on the rule's desk")
        window_text = str(e.get("window", (str, int), DEFAULT_WINDOW))
        try:
            window = parse_duration(window_text)
        except ValueError as exc:
            raise e.fail("window", str(exc)) from None
        min_score = e.get("min_score", (int, float))
        if min_score is not None and min_score < 0:
            raise e.fail("min_score", "must not be negative")
        rules.append(Rule(
            id=rid, desk=desk, channels=rule_channels, description=e.text("description", ""),
            enabled=e.get("enabled", bool, True), topics=tuple(topics), developments=tuple(developments),
            query=query, window=window, window_text=window_text.strip(),
            min_score=float(min_score) if min_score is not None else None,
            relevant_only=e.get("relevant_only", bool, True), escalate=_escalation(e),
        ))
    return AlertConfig(path=path, channels=channels, desks=desks, rules=rules)


def _escalation(e: _Entry) -> Escalation | None:
    raw = e.get("escalate", dict)
    if raw is None:
        return None
    for key in raw:
        if key not in _ESCALATE_KEYS:
            raise e.fail("escalate", f"unknown key {shown(key)} (allowed: {', '.join(sorted(_ESCALATE_KEYS))})")
    corroborated = raw.get("corroborated")
    if corroborated is not None and (isinstance(corroborated, bool) or not isinstance(corroborated, int)
                                     or corroborated < 2):
        raise e.fail("escalate", "corroborated must be a whole number of outlets >= 2")
    disputed = raw.get("disputed", False)
    if not isinstance(disputed, bool):
        raise e.fail("escalate", "disputed must be true or false")
    return Escalation(corroborated, disputed)


def load_alert_config_file(path: str, topic_ids: Iterable[str] | None = None,
                           development_types: Iterable[str] | None = None) -> AlertConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            data = parse_yaml(fh)
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, None, None, f"invalid YAML{where}: {problem}") from None
    return load_alert_config(data, path, topic_ids, development_types)


# --------------------------------------------------------------------------- matching


def article_doc(article: Article) -> dict[str, Any]:
    """The query-language view of an article (entities/places by name and by id)."""

    def names(items: list[dict[str, Any]]) -> list[str]:
        out: list[str] = []
        for item in items or []:
            for key in ("name", "id"):
                value = item.get(key) if isinstance(item, dict) else None
                if value and value not in out:
                    out.append(str(value))
        return out

    return {
        "title": article.title,
        "text": article.text,
        "topics": article.topic_ids(),
        "development": article.development.type if article.development else None,
        "desk": article.desk,
        "source": article.source,
        "language": article.language,
        "entities": names(article.entities),
        "places": names(article.places),
    }


def _dev_matches(pattern: str, dev_type: str) -> bool:
    return dev_type.startswith(pattern[:-1]) if pattern.endswith("*") else dev_type == pattern


def rule_matches(rule: Rule, article: Article, prepared: PreparedDoc | None = None) -> str | None:
    """Why this rule matches this article (readable), or None. Pure: no store, no clock."""
    if rule.relevant_only and not article.relevant:
        return None
    reasons: list[str] = []
    if rule.developments:
        dev = article.development
        dev_type = announced_type(dev)
        if not dev_type or not any(_dev_matches(p, dev_type) for p in rule.developments):
            return None
        reasons.append(f"development {dev_type}")
    if rule.topics:
        hits = [t for t in article.topics if t.id in rule.topics]
        if not hits:
            return None
        reasons.append("topic " + ", ".join(t.id for t in hits))
    if rule.min_score is not None:
        pool = [t for t in article.topics if not rule.topics or t.id in rule.topics]
        best = max((t.score for t in pool), default=None)
        if best is None or best < rule.min_score:
            return None
        reasons.append(f"score {best:.2f} >= {rule.min_score:g}")
    if rule.query is not None:
        why = rule.query.explain(prepared or prepare_doc(article_doc(article)))
        if not why:
            return None
        reasons.append(why)
    return "; ".join(reasons)


def alert_id(key: str, story_id: str, development: str | None, generation: int = 0) -> str:
    """Deterministic story alert id = idempotency key; key is "desk:<desk>"; generation > 0 only for
    re-firings after the window."""
    text = f"{key}|{story_id}|{development or '-'}"
    if generation:
        text += f"|{generation}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def event_alert_id(desk: str, event_id: str, escalation: str | None = None) -> str:
    """One notification per (desk, event), and one per escalation ("corroborated:3", "disputed")."""
    text = f"event|{desk}|{event_id}" + (f"|{escalation}" if escalation else "")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]




def local_time(value: str | None, zone: ZoneInfo) -> str | None:
    """An ISO UTC time shown in a desk's time zone: '2025-10-19 14:05 PKT'.

    The year has four digits, as in models.iso. A time the zone would push beyond years 0001-9999
    (9999-12-31T23:00Z in Karachi) is shown in UTC instead of failing the whole alert entry."""
    moment = parse_iso(value)
    if moment is None:
        return None
    try:
        moment = moment.astimezone(zone)
    except OverflowError:
        pass  # parse_iso's moment is UTC, which always has a form
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {moment.hour:02d}:{moment.minute:02d} "
            f"{moment.tzname() or 'UTC'}")


def log_entry(alert: Alert, event: DevelopmentEvent | None, config: AlertConfig | None = None) -> dict[str, Any]:
    """One notification as the alert log, the API and the payloads show it: the alert, its event so far,
    and its times in the desk's time zone."""
    from pipelines.events import reach_text, status_label

    data = alert.to_dict()
    desk = config.desks.get(alert.desk) if config is not None else None
    zone = desk.zone() if desk is not None else ZoneInfo("UTC")
    data["timezone"] = str(zone)
    for key in ("created", "published", "first_seen"):
        data[f"{key}_local"] = local_time(data.get(key), zone)
    data["event"] = None
    data["reports"] = []
    if event is not None:
        first = event.first_report
        data["event"] = {
            "id": event.id, "type": event.type, "family": event.family, "status": event.status,
            "status_label": status_label(event), "opened": event.opened, "updated": event.updated,
            "venue": event.venue, "places": event.places, "parties": event.parties,
            "state_before": event.state_before, "state_after": event.state_after,
            "outlets": event.outlets, "outlet_count": len(event.outlets), "confidence": event.confidence,
            "first_report": {"outlet": first.outlet, "time": first.time, "url": first.url,
                             "time_local": local_time(first.time, zone)} if first else None,
        }
        data["event"]["reach"] = reach_text(len(event.outlets), first.outlet if first else None,
                                            data["event"]["first_report"]["time_local"] if first else None)
        data["reports"] = [{"outlet": r.outlet, "time": r.time, "url": r.url, "language": r.language,
                            "evidence": r.evidence, "type": r.type, "mode": r.mode, "title": r.title}
                           for r in event.reports]
    return data


def is_stale(article: Article, max_age: timedelta | None) -> bool:
    """Published longer than max_age before newsmon first saw it (undated: first seen counts, so fresh)."""
    if max_age is None:
        return False
    published, seen = parse_iso(article.published), parse_iso(article.fetched)
    return published is not None and seen is not None and seen - published > max_age


class AlertEngine:
    """Evaluates every enabled rule against one article, fires per event or story and desk, queues deliveries."""

    def __init__(self, config: AlertConfig, max_age: timedelta | None = None):
        self.config = config
        self.rules = [r for r in config.rules if r.enabled]
        self.max_age = max_age
        self._needs_doc = any(r.query is not None for r in self.rules)

    def evaluate(self, article: Article, store: Store, now: datetime | None = None,
                 attachment: Attachment | None = None) -> list[Alert]:
        """Newly fired alerts for this article (already recorded and queued for delivery).

        attachment: what pipelines.events.EventBook.attach did with the article, when it reports an event."""
        now = now or utcnow()
        prepared = prepare_doc(article_doc(article)) if self._needs_doc else None
        hits: dict[str, list[tuple[Rule, str]]] = {}
        for rule in self.rules:
            why = rule_matches(rule, article, prepared)
            if why is not None:
                hits.setdefault(rule.desk, []).append((rule, why))
        notify = not is_stale(article, self.max_age)
        fired: list[Alert] = []
        if attachment is not None and not attachment.related:
            # Every desk: one whose rules do not match this report may still be owed an escalation.
            for desk in dict.fromkeys([*hits, *self.config.desks]):
                fired.extend(self._event_alerts(desk, hits.get(desk, []), article, attachment, store, now, notify))
            return fired
        for desk, desk_hits in hits.items():
            if attachment is not None:  # background to an event: folded into the desk's alert for it, if any
                existing = store.get_alert(event_alert_id(desk, attachment.event.id))
                if existing is not None:
                    self._touch(existing, store, count=attachment.added)
                    continue
            alert = self._story_alert(desk, desk_hits, article, store, now, notify)
            if alert is not None:
                fired.append(alert)
        return fired

    def _channels(self, rules: list[Rule]) -> list[str]:
        out = [c for rule in rules for c in rule.channels if self.config.channels[c].enabled]
        return list(dict.fromkeys(out))

    def _record(self, alert: Alert, store: Store) -> bool:
        if not store.record_alert(alert):
            return False  # another worker fired it first; its deliveries are queued by that worker
        for channel in alert.channels:
            store.enqueue_delivery(alert.id, channel)
        return True

    @staticmethod
    def _touch(alert: Alert, store: Store, count: bool = True) -> None:
        """Count one more report (count) and re-queue idempotently: a repeated evaluation repairs a crash
        that happened between recording an alert and queuing its deliveries."""
        if count:
            store.record_alert(alert)
        for channel in alert.channels:
            store.enqueue_delivery(alert.id, channel)

    def _new_alert(self, alert_id: str, desk: str, rules: list[tuple[Rule, str]], article: Article,
                   now: datetime, **extra: Any) -> Alert:
        dev = article.development
        return Alert(
            id=alert_id, rule_id=rules[0][0].id, desk=desk, article_id=article.id, story_id=article.story_id,
            title=article.title, url=article.url, source=article.source,
            development=extra.pop("development", dev.type if dev else None), topics=article.topic_ids(),
            matched="; ".join(f"{rule.id}: {why}" for rule, why in rules), created=iso(now) or "",
            channels=self._channels([r for r, _ in rules]), rules=[r.id for r, _ in rules],
            published=article.published, first_seen=article.fetched,
            evidence=extra.pop("evidence", dev.evidence if dev else ""), **extra,
        )

    def _event_alerts(self, desk: str, hits: list[tuple[Rule, str]], article: Article, attachment: Attachment,
                      store: Store, now: datetime, notify: bool) -> list[Alert]:
        event = attachment.event
        main_id = event_alert_id(desk, event.id)
        existing = store.get_alert(main_id)
        fired: list[Alert] = []
        if existing is None:
            if not hits or not notify:
                return []
            alert = self._event_alert(main_id, desk, hits, article, event, now, kind="event")
            if self._record(alert, store):
                fired.append(alert)
            return fired
        self._touch(existing, store, count=attachment.added)
        # Escalations the desk's rules asked for, judged by the rules that raised its alert, from the
        # event as it stands (so a run repeated after a crash finds and repairs them; ids dedupe).
        outlets = len(event.outlets)
        denied = any(r.mode == "denied" for r in event.reports)
        for rule in (r for r in self.rules if r.id in existing.rules and r.escalate is not None):
            esc = rule.escalate
            assert esc is not None
            reasons = []
            if esc.corroborated and outlets >= esc.corroborated:
                reasons.append(f"corroborated:{esc.corroborated}")
            if esc.disputed and denied:
                reasons.append("disputed")
            for reason in reasons:
                esc_id = event_alert_id(desk, event.id, reason)
                known = store.get_alert(esc_id)
                if known is not None:
                    self._touch(known, store, count=False)
                    continue
                if not notify:
                    continue
                why = f"escalation: {reason.replace(':', ' by ')}"
                alert = self._event_alert(esc_id, desk, [(rule, why)], article, event, now, kind="escalation",
                                          escalation=reason)
                if self._record(alert, store):
                    fired.append(alert)
        return fired

    def _event_alert(self, alert_id: str, desk: str, hits: list[tuple[Rule, str]], article: Article,
                     event: DevelopmentEvent, now: datetime, **extra: Any) -> Alert:
        evidence = next((r.evidence for r in event.reports if r.article_id == article.id), "")
        # The type the raising report gave: an outcome reaches the diplomacy desk as "talks resumed" and
        # the security desk as "truce extended", one event either way.
        dev = article.development
        dev_type = announced_type(dev) or event.type
        return self._new_alert(alert_id, desk, hits, article, now, event_id=event.id, development=dev_type,
                               state_before=event.state_before, state_after=event.state_after,
                               evidence=evidence or (event.first_report.evidence if event.first_report else ""),
                               confidence=event.confidence, **extra)

    def _story_alert(self, desk: str, hits: list[tuple[Rule, str]], article: Article, store: Store,
                     now: datetime, notify: bool) -> Alert | None:
        dev = article.development
        dev_type = announced_type(dev)
        window = max(rule.window for rule, _ in hits)
        latest, generation = self._latest(store, f"desk:{desk}", article.story_id, dev_type)
        if latest is not None:
            created = parse_iso(latest.created)
            if created is None or now - created < window:
                self._touch(latest, store)  # the same story again inside the window: count the copy
                return None
        if not notify:
            return None
        alert = self._new_alert(alert_id(f"desk:{desk}", article.story_id, dev_type, generation), desk, hits,
                                article, now, development=dev_type)
        return alert if self._record(alert, store) else None

    @staticmethod
    def _latest(store: Store, key: str, story_id: str, dev_type: str | None) -> tuple[Alert | None, int]:
        """(latest stored firing, next free generation) for this desk, story and development type."""
        latest: Alert | None = None
        for generation in range(MAX_GENERATIONS):
            found = store.get_alert(alert_id(key, story_id, dev_type, generation))
            if found is None:
                return latest, generation
            latest = found
        return latest, MAX_GENERATIONS

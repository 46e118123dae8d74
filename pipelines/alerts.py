"""Alert rules (config/alerts.yaml): which new articles a desk must hear about, and where.

A rule fires at most once per (rule, story, development type) within its window:
syndicated copies of one story do not page a desk twice, but a *new* development
in the same story (talks opened -> talks broke down) does.

Keying. The first firing's id is sha256("rule|story|dev")[:32] (dev is "-" when the
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
      - {id: security, channels: [console, jsonl], description: ..}
    rules:
      - id, desk, description, enabled (true), topics: [any of], developments: [any of; 'talks-*' = prefix],
        query: desk query (pipelines/query.py), channels (default: the desk's), window ("24h"; m/h/d/w),
        min_score (best score among the rule's topics, or all topics), relevant_only (true)
A rule matches when every condition it gives holds; it must give at least one of
topics, developments or query.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import yaml

from pipelines.errors import ConfigError
from pipelines.models import Alert, Article, iso, utcnow
from pipelines.query import PreparedDoc, Query, QuerySyntaxError, parse_query, prepare_doc
from pipelines.store.base import Store

CHANNEL_TYPES = ("console", "jsonl", "webhook", "email")
WEBHOOK_FORMATS = ("generic", "slack")
DEFAULT_WINDOW = "24h"
MAX_GENERATIONS = 10_000  # a safety stop for the generation walk, never reached in practice

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEV_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*\*?$")
_EMAIL = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_WINDOW = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

_COMMON_CHANNEL_KEYS = {"id", "type", "enabled", "description"}
_CHANNEL_KEYS = {
    "console": set(),
    "jsonl": {"path"},
    "webhook": {"url", "url_env", "format", "secret_env", "headers", "headers_env", "timeout"},
    "email": {"to", "from", "subject_prefix", "smtp_host", "smtp_host_env", "smtp_port", "smtp_user",
              "smtp_user_env", "password_env", "starttls", "ssl", "timeout"},
}
_DESK_KEYS = {"id", "channels", "description"}
_RULE_KEYS = {"id", "desk", "description", "enabled", "topics", "developments", "query", "channels",
              "window", "min_score", "relevant_only"}


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


def parse_window(text: Any) -> timedelta:
    """'30m' / '24h' / '7d' / '2w' -> timedelta; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"window must be text like '24h' or '7d', not {type(text).__name__}")
    m = _WINDOW.match(text)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad window {text!r}: use a positive number with m, h, d or w ('24h', '7d')")
    return timedelta(**{_WINDOW_UNITS[m.group(2)]: int(m.group(1))})


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
                raise self.fail(key, f"must be a list of non-empty strings (got {item!r})")
        if required and not value:
            raise self.fail(key, "must not be empty")
        return [v.strip() for v in value]

    def env_name(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and not _ENV_NAME.match(value):
            raise self.fail(key, f"{value!r} is not an environment variable name (the secret itself "
                                 "never goes in the file)")
        return value

    def str_map(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, None)
        if value is None:
            return {}
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not _HEADER_NAME.match(k):
                raise self.fail(key, f"bad header name {k!r}")
            if not isinstance(v, str) or "\n" in v or "\r" in v:
                raise self.fail(key, f"value of {k!r} must be a one-line string")
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
                          f"{raw!r} is not a valid id (lower-case letters, digits, '-', '_', '.')")
    if raw in seen:
        raise ConfigError(path, f"{kind} {raw}", "id", f"duplicate {kind} id {raw!r}")
    seen.add(raw)
    return raw


def _check_url(entry: _Entry, key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise entry.fail(key, f"bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise entry.fail(key, f"bad URL {url!r}: need http(s)://host/...")
    if any(ch.isspace() for ch in url):
        raise entry.fail(key, f"bad URL {url!r}: contains whitespace")


def _load_channel(path: str, name: str, data: dict[str, Any], cid: str) -> ChannelConfig:
    ctype = data.get("type")
    if ctype not in CHANNEL_TYPES:
        raise ConfigError(path, name, "type", f"must be one of {', '.join(CHANNEL_TYPES)} (got {ctype!r})")
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
            raise e.fail("format", f"must be one of {', '.join(WEBHOOK_FORMATS)} (got {fmt!r})")
        headers_env = e.str_map("headers_env")
        for header, env in headers_env.items():
            if not _ENV_NAME.match(env):
                raise e.fail("headers_env", f"{env!r} (for {header}) is not an environment variable name")
        return ChannelConfig(**common, url=url, url_env=url_env, format=fmt, secret_env=e.env_name("secret_env"),
                             headers=e.str_map("headers"), headers_env=headers_env, timeout=timeout)
    # email
    to = e.str_list("to", required=True)
    for addr in to:
        if not _EMAIL.match(addr):
            raise e.fail("to", f"{addr!r} is not an email address")
    from_addr = e.text("from", required=True)
    if not _EMAIL.match(from_addr or ""):
        raise e.fail("from", f"{from_addr!r} is not an email address")
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
                raise e.fail(key, f"unknown channel {ref!r} (channels: {known})")
        return tuple(dict.fromkeys(refs))

    desks: dict[str, DeskConfig] = {}
    seen = set()
    for i, raw in enumerate(_section(path, data, "desks")):
        did = _entry_id(path, "desk", i, raw, seen)
        e = _Entry(path, f"desk {did}", raw, _DESK_KEYS)
        desks[did] = DeskConfig(did, channel_refs(e, "channels"), e.text("description", ""))

    rules: list[Rule] = []
    seen = set()
    for i, raw in enumerate(_section(path, data, "rules")):
        rid = _entry_id(path, "rule", i, raw, seen)
        e = _Entry(path, f"rule {rid}", raw, _RULE_KEYS)
        desk = e.text("desk", required=True)
        if desks and desk not in desks:
            raise e.fail("desk", f"unknown desk {desk!r} (desks: {', '.join(desks)})")
        topics = e.str_list("topics")
        if known_topics is not None:
            for t in topics:
                if t not in known_topics:
                    raise e.fail("topics", f"unknown topic {t!r} (not in topics.yaml)")
        developments = e.str_list("developments")
        for d in developments:
            if not _DEV_PATTERN.match(d):
                raise e.fail("developments", f"{d!r} is not a development type (e.g. ceasefire-agreed, talks-*)")
            if known_devs is not None:
                hit = any(k.startswith(d[:-1]) for k in known_devs) if d.endswith("*") else d in known_devs
                if not hit:
                    raise e.fail("developments", f"unknown development type {d!r}")
        query_text, query = e.text("query"), None
        if query_text is not None:
            try:
                query = parse_query(query_text)
            except QuerySyntaxError as exc:
                raise e.fail("query", f"{exc} in {query_text!r}") from None
        if not (topics or developments or query):
            raise e.fail(None, "give at least one condition: topics, developments or query")
        rule_channels = channel_refs(e, "channels") if "channels" in raw else ()
        if not rule_channels:
            rule_channels = desks[desk].channels if desk in desks else ()
        if not rule_channels:
            raise e.fail("channels", "no channels: list some here or on the rule's desk")
        window_text = e.get("window", str, DEFAULT_WINDOW)
        try:
            window = parse_window(window_text)
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
            relevant_only=e.get("relevant_only", bool, True),
        ))
    return AlertConfig(path=path, channels=channels, desks=desks, rules=rules)


def load_alert_config_file(path: str, topic_ids: Iterable[str] | None = None,
                           development_types: Iterable[str] | None = None) -> AlertConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
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
        dev_type = article.development.type if article.development else None
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


def alert_id(rule_id: str, story_id: str, development: str | None, generation: int = 0) -> str:
    """Deterministic alert id = idempotency key; generation > 0 only for re-firings after the window."""
    key = f"{rule_id}|{story_id}|{development or '-'}"
    if generation:
        key += f"|{generation}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class AlertEngine:
    """Evaluates every enabled rule against one article, fires, and queues deliveries."""

    def __init__(self, config: AlertConfig):
        self.config = config
        self.rules = [r for r in config.rules if r.enabled]
        self._needs_doc = any(r.query is not None for r in self.rules)

    def evaluate(self, article: Article, store: Store, now: datetime | None = None) -> list[Alert]:
        """Newly fired alerts for this article (already recorded and queued for delivery)."""
        now = now or utcnow()
        prepared = prepare_doc(article_doc(article)) if self._needs_doc else None
        dev_type = article.development.type if article.development else None
        fired: list[Alert] = []
        for rule in self.rules:
            why = rule_matches(rule, article, prepared)
            if why is None:
                continue
            channels = [c for c in rule.channels if self.config.channels[c].enabled]
            latest, generation = self._latest(store, rule.id, article.story_id, dev_type)
            if latest is not None:
                created = _parse_iso(latest.created)
                if created is None or now - created < rule.window:
                    # Same story again inside the window: count the copy, fire nothing. Re-queuing is
                    # idempotent (one outbox row per alert and channel) and repairs a crash that
                    # happened between recording the alert and queuing it.
                    store.record_alert(latest)
                    for channel in channels:
                        store.enqueue_delivery(latest.id, channel)
                    continue
            alert = Alert(
                id=alert_id(rule.id, article.story_id, dev_type, generation),
                rule_id=rule.id, desk=rule.desk, article_id=article.id, story_id=article.story_id,
                title=article.title, url=article.url, source=article.source, development=dev_type,
                topics=article.topic_ids(), matched=why, created=iso(now) or "", channels=channels,
            )
            if not store.record_alert(alert):
                continue  # another worker fired it first; its deliveries are queued by that worker
            for channel in channels:
                store.enqueue_delivery(alert.id, channel)
            fired.append(alert)
        return fired

    @staticmethod
    def _latest(store: Store, rule_id: str, story_id: str, dev_type: str | None) -> tuple[Alert | None, int]:
        """(latest stored firing, next free generation) for this rule, story and development type."""
        latest: Alert | None = None
        for generation in range(MAX_GENERATIONS):
            found = store.get_alert(alert_id(rule_id, story_id, dev_type, generation))
            if found is None:
                return latest, generation
            latest = found
        return latest, MAX_GENERATIONS

"""The Elasticsearch store: the same contract as the embedded SQLite store, for newsrooms that outgrow one machine.

Layout (``prefix`` defaults to ``newsmon``):

    {prefix}-articles-NNNNNN   articles, from config/elasticsearch/articles-template.json; written through
                               the ``{prefix}-articles`` write alias (rolled over by ILM), read through
                               ``{prefix}-articles-read`` (every backing index joins it via the template)
    {prefix}-feeds, -seen, -inbox, -alerts, -outbox, -stories, -story-keys, -events
                               the small state tables and the development events, one index each
                               (config/elasticsearch/indices/*.json)

Consistency: Elasticsearch has no transactions, so every multi-step operation is ordered so that a
crash in the middle repeats work instead of losing it (finish_items marks items seen before deleting
them from the inbox), and every write is idempotent: ``_id`` is the article id (canonical-URL hash),
the alert id, or a hash of the natural key, creates use ``op_type=create`` and counters are
read-modify-write with ``if_seq_no``/``if_primary_term`` retries (no painless scripts, so the
update path works on any server that speaks the document API).

Read-after-write: writes that add a row a search must list at once (articles, alerts, outbox and
inbox rows, events) make it searchable before they return: ``refresh=true`` by default (the shard
refreshes now; a cycle runs about 12x as fast as with ``wait_for``, which waits up to a refresh
interval per write: docs/performance.md, 7), or ``?refresh=wait_for`` for clusters that take heavy
writes from elsewhere. Updates (counters, claims, marks, feed state) never wait: they are read back
by realtime GET, and listings re-read their hits (``_fresh``). ``?refresh=false`` is for bulk loads
(reindex) only: a cycle would not see its own inbox until the next refresh.

De-duplication across rollover: before an article is written its id is looked up across the read
alias, and an existing copy is overwritten in the backing index that holds it; only unknown ids are
created (``op_type=create``) through the write alias.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import hashlib
import html
import json
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pipelines.errors import ConfigError, NewsmonError
from pipelines.models import Alert, Article, DevelopmentEvent, FeedItem, FeedState, SearchHit, iso, utcnow
from pipelines.query import words as query_words
from pipelines.store.base import StoreError, claimer_is_gone, delivery_claimer
from pipelines.store.search_query import parse_query
from pipelines.store.sqlite import check_collapse, fts_fallback_query, inbox_key, normalise_time

DEFAULT_PREFIX = "newsmon"
TITLE_BOOST = 10.0
FRAGMENT_CHARS = 200
# Far below index.highlight.max_analyzed_offset (1,000,000): a snippet needs only the first match, and
# highlighting costs CPU per match (a phrase over a 1 MB transcript held a real node for over 30 s).
HIGHLIGHT_CHARS = 100_000
PLAIN_SNIPPET_CHARS = 240
PIT_KEEP_ALIVE = "2m"  # per page of a consistent scan
MAX_RESULT_WINDOW = 10_000  # index.max_result_window: from + size must stay below it
PAGE = 1000  # search_after page size for long listings
ID_CHUNK = 500  # ids per mget / ids query
CAS_ATTEMPTS = 50
# assign_story's lock (a document of the stories index, left out of exports): held for a few realtime
# requests; a crashed holder's lease ends after ASSIGN_LEASE s; a writer waits at most ASSIGN_WAIT s.
ASSIGN_LOCK_ID = "lock:assign-story"
EVENTS_LOCK_ID = "lock:events"  # EventBook's attach: read the events, match, save (events_lock)
LOCK_IDS = (ASSIGN_LOCK_ID, EVENTS_LOCK_ID)  # documents of the stories index that are not stories
_HELD_LOCKS: set[str] = set()  # tokens of the lock documents this process holds right now
ASSIGN_LEASE = 30.0
ASSIGN_WAIT = 120.0
BULK_CHUNK = 500
BULK_RETRIES = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)
STATE_INDICES = ("feeds", "seen", "inbox", "alerts", "outbox", "stories", "story-keys", "events")
_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,80}")
_SAFE_ID_RE = re.compile(r"[A-Za-z0-9._:@-]{1,200}")

# Random per process, so article text can never forge the markers that become <mark> tags.
_MARK_OPEN = "\x02" + secrets.token_hex(8) + "\x03"
_MARK_CLOSE = "\x02" + secrets.token_hex(8) + "\x04"

_FEED_STATE_FIELDS = tuple(f.name for f in fields(FeedState))
_FEED_ITEM_FIELDS = frozenset(f.name for f in fields(FeedItem))
_ALERT_FIELDS = tuple(f.name for f in fields(Alert)) + ("last_seen",)
_ARTICLE_FIELDS = frozenset(f.name for f in fields(Article))

_seq_lock = threading.Lock()
_last_seq = 0


def _next_seq() -> int:
    """Strictly increasing within a process, wall-clock ordered across processes (arrival order)."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def _now() -> str:
    return iso(utcnow()) or ""


def _hash_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _safe_id(value: str) -> str:
    """The value itself when it is a short plain token, else its hash (ES ids are at most 512 bytes)."""
    return value if _SAFE_ID_RE.fullmatch(value) else "h-" + _hash_id(value)


def _chunks(values: list, size: int = ID_CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _one_line(text: Any, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit]


def _bound(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    normalised = normalise_time(value)
    if normalised is None:
        raise NewsmonError(f"{name}={value!r} is not an ISO-8601 date or datetime")
    return normalised


def redact_url(url: str) -> str:
    """The URL without user:password, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


# --- config files ------------------------------------------------------------------------------


def config_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """config/elasticsearch: explicit, else $NEWSMON_CONFIG/elasticsearch, ./config/..., the source tree's."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    from pipelines.settings import resolve

    configured = resolve("config_dir")  # the one resolver; only an explicitly set dir is a candidate here
    if configured.source != "default":
        candidates.append(Path(configured.value) / "elasticsearch")
    candidates.append(Path("config") / "elasticsearch")
    candidates.append(Path(__file__).resolve().parents[2] / "config" / "elasticsearch")
    for candidate in candidates:
        if (candidate / "articles-template.json").is_file():
            return candidate
    raise NewsmonError(
        "Elasticsearch config not found: expected articles-template.json in "
        + ", ".join(str(c) for c in candidates)
    )


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), None, None, "file not found") from None
    except json.JSONDecodeError as err:
        raise ConfigError(str(path), None, None, f"invalid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, None, "expected a JSON object")
    return data


def _renamed(value: Any, prefix: str) -> Any:
    """The config files name indices 'newsmon-...'; another prefix renames them."""
    if prefix == DEFAULT_PREFIX:
        return value
    if isinstance(value, str):
        return prefix + value[len(DEFAULT_PREFIX):] if value.startswith(DEFAULT_PREFIX + "-") else value
    if isinstance(value, list):
        return [_renamed(v, prefix) for v in value]
    if isinstance(value, dict):
        return {_renamed(k, prefix): _renamed(v, prefix) for k, v in value.items()}
    return value


@dataclass
class EsConfig:
    """The index template, ILM policy and state index bodies, loaded and checked once."""

    directory: Path
    ilm_policy: dict
    articles_template: dict
    state_indices: dict[str, dict]

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | None = None, prefix: str = DEFAULT_PREFIX) -> EsConfig:
        base = config_dir(directory)
        template_path = base / "articles-template.json"
        template = _load_json(template_path)
        for key in ("index_patterns", "template"):
            if key not in template:
                raise ConfigError(str(template_path), None, key, "missing")
        mappings = template["template"].get("mappings", {}).get("properties", {})
        for required in ("id", "title", "text", "event_time", "topic_ids", "place_points"):
            if required not in mappings:
                raise ConfigError(str(template_path), "template.mappings", required, "field mapping missing")
        policy_path = base / "ilm-policy.json"
        policy = _load_json(policy_path)
        if "phases" not in policy:
            raise ConfigError(str(policy_path), None, "phases", "missing")
        states = {}
        for name in STATE_INDICES:
            path = base / "indices" / f"{name}.json"
            body = _load_json(path)
            if "mappings" not in body:
                raise ConfigError(str(path), None, "mappings", "missing")
            states[name] = body
        return cls(base, _renamed(policy, prefix), _renamed(template, prefix), _renamed(states, prefix))

    def template_body(self, ilm: bool) -> dict:
        body = copy.deepcopy(self.articles_template)
        if not ilm:
            settings = body["template"].get("settings", {})
            for key in [k for k in settings if k.startswith("index.lifecycle.")]:
                del settings[key]
            settings.get("index", {}).pop("lifecycle", None)
        return body


# --- connection ------------------------------------------------------------------------------


_AUTH_KEYS = ("api_key", "basic_auth", "bearer_auth", "http_auth")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, raw: Any, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise NewsmonError(f"{source}: {name}={raw!r} is not true/false")


def _refresh_value(raw: Any, source: str) -> bool | str:
    text = str(raw).strip().lower()
    if text == "wait_for":
        return "wait_for"
    try:
        return _flag("refresh", text, source)
    except NewsmonError:
        raise NewsmonError(f"{source}: refresh={raw!r} must be wait_for, true or false") from None


ENGINES = ("elasticsearch", "opensearch")


def _engine_value(raw: Any, source: str) -> str:
    text = str(raw).strip().lower()
    if text not in ENGINES:
        raise NewsmonError(f"{source}: engine={raw!r} must be elasticsearch or opensearch")
    return text


def _compat_value(raw: Any, source: str) -> int | None:
    text = str(raw).strip()
    if text in ("", "auto", "0"):
        return None
    if text not in ("7", "8", "9"):
        raise NewsmonError(f"{source}: compat={raw!r} must be 7, 8 or 9 (the server's major version)")
    return int(text)


def client_options_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Elasticsearch(...) keyword arguments from NEWSMON_ES_* variables (secrets never come from files)."""
    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    api_key = (env.get("NEWSMON_ES_API_KEY") or "").strip()
    username = (env.get("NEWSMON_ES_USERNAME") or "").strip()
    password = env.get("NEWSMON_ES_PASSWORD") or ""
    if api_key:
        options["api_key"] = api_key
    elif username:
        options["basic_auth"] = (username, password)
    ca_certs = (env.get("NEWSMON_ES_CA_CERTS") or "").strip()
    if ca_certs:
        if not os.path.isfile(ca_certs):
            raise NewsmonError(f"NEWSMON_ES_CA_CERTS={ca_certs}: no such file")
        options["ca_certs"] = ca_certs
    if (env.get("NEWSMON_ES_VERIFY_CERTS") or "").strip():
        options["verify_certs"] = _flag("NEWSMON_ES_VERIFY_CERTS", env["NEWSMON_ES_VERIFY_CERTS"], "environment")
    return options


def parse_url(url: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """elasticsearch+https://[user:pass@]host:port[/?prefix=..&ilm=..&refresh=..&engine=..] ->
    (http(s) node URL, store options, client options from the URL's user info)."""
    scheme, sep, _rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("elasticsearch+http", "elasticsearch+https"):
        raise NewsmonError(f"store URL {redact_url(url)}: expected elasticsearch+http(s)://host:port")
    parts = urlsplit(url)
    if not parts.hostname:
        raise NewsmonError(f"store URL {redact_url(url)}: no host")
    try:
        port = parts.port or 9200
    except ValueError:
        raise NewsmonError(f"store URL {redact_url(url)}: bad port") from None
    http_scheme = scheme.split("+", 1)[1]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    node = f"{http_scheme}://{host}:{port}"
    if parts.path not in ("", "/"):
        node += parts.path.rstrip("/")  # a cluster behind a reverse proxy path
    client: dict[str, Any] = {}
    if parts.username:
        client["basic_auth"] = (unquote(parts.username), unquote(parts.password or ""))
    raw = parse_qs(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    source = f"store URL {redact_url(url)}"
    for key, values in raw.items():
        value = values[-1]
        if key == "prefix":
            options["prefix"] = value
        elif key == "ilm":
            options["ilm"] = _flag("ilm", value, source)
        elif key == "refresh":
            options["refresh"] = _refresh_value(value, source)
        elif key == "setup":
            options["setup"] = _flag("setup", value, source)
        elif key == "compat":
            options["compat"] = _compat_value(value, source)
        elif key == "engine":
            options["engine"] = _engine_value(value, source)
        else:
            raise NewsmonError(f"{source}: unknown option {key!r} (prefix, ilm, refresh, setup, compat, engine)")
    return node, options, client


def make_client(node: str, **client_kwargs: Any):
    """An Elasticsearch client with retries and full-jitter back-off on 429/5xx and timeouts."""
    from elasticsearch import Elasticsearch

    options: dict[str, Any] = {
        "request_timeout": 30,
        "max_retries": 5,
        "retry_on_timeout": True,
        "retry_on_status": RETRY_STATUSES,
        "retry_backoff_base": 0.5,
        "retry_backoff_cap": 30.0,
    }
    options.update(client_kwargs)
    basic = options.get("basic_auth")
    if isinstance(basic, list | tuple):
        # Elasticsearch reads Basic credentials as UTF-8; the client would encode them as ASCII only.
        options["basic_auth"] = base64.b64encode(":".join(basic).encode("utf-8")).decode("ascii")
    return Elasticsearch(node, **options)


_COMPAT_RE = re.compile(r"compatible-with=\d+")
_VND_RE = re.compile(r"application/vnd\.elasticsearch\+([\w-]+)\s*;\s*compatible-with=\d+")


def _wrap_transport(client, *, compat: int | None = None, opensearch: bool = False):
    """Rewrite every request's media types on the client's transport (so every client derived
    with .options() shares it): compat pins ``compatible-with`` to that server major; opensearch
    sends plain ``application/json`` (OpenSearch answers 406 to Elasticsearch's vendor types) and
    accepts an answer without ``X-Elastic-Product``, which OpenSearch never sends."""
    transport = client.transport
    wanted = (compat, opensearch)
    if getattr(transport, "_newsmon_wrap", None) == wanted:
        return client
    original = getattr(transport, "_newsmon_original_perform", transport.perform_request)
    replacement = f"compatible-with={int(compat)}" if compat else None

    def perform_request(method, target, *, headers=None, **kwargs):
        from elastic_transport import HttpHeaders, TransportApiResponse

        if headers:
            headers = HttpHeaders(headers)
            for name in ("accept", "content-type"):
                if headers.get(name) and opensearch:
                    headers[name] = _VND_RE.sub(r"application/\1", headers[name])
                elif headers.get(name) and replacement:
                    headers[name] = _COMPAT_RE.sub(replacement, headers[name])
            kwargs["headers"] = headers
        response = original(method, target, **kwargs)
        if opensearch and "x-elastic-product" not in response.meta.headers:
            answered = HttpHeaders(response.meta.headers)
            answered["x-elastic-product"] = "Elasticsearch"  # the client's product check, answered for OpenSearch
            response = TransportApiResponse(dataclasses.replace(response.meta, headers=answered), response.body)
        return response

    transport._newsmon_original_perform = original
    transport._newsmon_wrap = wanted
    transport.perform_request = perform_request
    return client


def pin_compatibility(client, major: int):
    """Make every request ask for REST compatibility with this server major (8 for an 8.x cluster):
    the 9.x client always asks for compatible-with=9, which 8.x servers refuse."""
    return _wrap_transport(client, compat=major)


def open_store(url: str, *, client=None, config_directory: str | os.PathLike[str] | None = None,
               prefix: str | None = None, ilm: bool | None = None, refresh: bool | str | None = None,
               setup: bool | None = None, compat: int | str | None = None, engine: str | None = None,
               **client_kwargs: Any) -> ElasticsearchStore:
    """The store for an elasticsearch+http(s):// URL.

    Credentials and the CA certificate come from NEWSMON_ES_* env vars (client_options_from_env);
    keyword arguments override the URL's options, and client_kwargs go to the Elasticsearch client
    (or pass a ready ``client``). engine=opensearch speaks to an OpenSearch 2.x cluster with the
    same client (plain JSON media types, no product check) and turns ILM off: OpenSearch has none."""
    node, url_options, url_client = parse_url(url)
    options = {**url_options}
    for key, value in (("prefix", prefix), ("ilm", ilm), ("refresh", refresh), ("setup", setup),
                       ("compat", compat), ("engine", engine)):
        if value is not None:
            options[key] = value
    source = f"store URL {redact_url(url)}"
    opensearch = _engine_value(options.get("engine", "elasticsearch"), source) == "opensearch"
    if opensearch and options.get("ilm"):
        raise NewsmonError(f"{source}: ilm=true needs Elasticsearch; OpenSearch has no ILM (drop ilm; "
                           "roll the articles alias over with an ISM policy of your own)")
    if "compat" not in options and os.environ.get("NEWSMON_ES_COMPAT", "").strip():
        options["compat"] = _compat_value(os.environ["NEWSMON_ES_COMPAT"], "NEWSMON_ES_COMPAT")
    elif "compat" in options:
        options["compat"] = _compat_value(options["compat"], f"store URL {redact_url(url)}")
    if client is None:
        given = {**url_client, **client_kwargs}
        env = client_options_from_env()
        if any(key in given for key in _AUTH_KEYS):
            env = {k: v for k, v in env.items() if k not in _AUTH_KEYS}  # one identity, the explicit one
        client = make_client(node, **{**env, **given})
    if options.get("compat") or opensearch:
        _wrap_transport(client, compat=options.get("compat"), opensearch=opensearch)
    env_prefix = os.environ.get("NEWSMON_ES_PREFIX", "").strip()
    return ElasticsearchStore(
        client,
        url=redact_url(url),
        prefix=options.get("prefix") or env_prefix or DEFAULT_PREFIX,
        ilm=options.get("ilm", not opensearch),
        engine="opensearch" if opensearch else "elasticsearch",
        refresh=options.get("refresh", True),
        setup=options.get("setup", True),
        config_directory=config_directory,
    )


def from_connection_fields(host: str, port: int | None = None, schema: str | None = None,
                           login: str | None = None, password: str | None = None,
                           extra: dict[str, Any] | None = None, **store_kwargs: Any) -> ElasticsearchStore:
    """The store for an Airflow connection's fields (``elasticsearch_default``), without importing Airflow.

    host may carry a scheme (https://es:9200); schema is http or https; extra may hold api_key,
    ca_certs, verify_certs, prefix, ilm, refresh, compat, engine, request_timeout."""
    extra = dict(extra or {})
    host = (host or "").strip()
    if not host:
        raise NewsmonError("Elasticsearch connection: no host")
    scheme = (schema or "").strip().lower()
    if "://" in host:
        given, _, host = host.partition("://")
        scheme = scheme if scheme in ("http", "https") else given.lower()
    if scheme not in ("http", "https"):
        scheme = "https" if extra.get("ca_certs") or extra.get("use_ssl") else "http"
    host = host.rstrip("/")
    if port and not re.search(r":\d+$", host):
        host = f"{host}:{int(port)}"
    url = f"elasticsearch+{scheme}://{host}"
    client_kwargs: dict[str, Any] = {}
    if extra.get("api_key"):
        client_kwargs["api_key"] = extra.pop("api_key")
    elif login:
        client_kwargs["basic_auth"] = (login, password or "")
    for key in ("ca_certs", "verify_certs", "request_timeout", "ssl_assert_fingerprint"):
        if key in extra:
            value = extra.pop(key)
            if key == "verify_certs":
                value = _flag(key, value, "Elasticsearch connection extra")
            client_kwargs[key] = value
    for key in ("prefix", "ilm", "refresh", "setup", "compat", "engine"):
        if key in extra and key not in store_kwargs:
            value = extra.pop(key)
            if key in ("ilm", "setup"):
                value = _flag(key, value, "Elasticsearch connection extra")
            elif key == "refresh":
                value = _refresh_value(value, "Elasticsearch connection extra")
            store_kwargs[key] = value
    return open_store(url, **store_kwargs, **client_kwargs)


# --- user query -> Elasticsearch bool query --------------------------------------------------------

_ALL_COLUMNS = frozenset(("title", "text"))


def _field_names(columns: frozenset[str], prefix: bool) -> list[str]:
    names = []
    for column in ("title", "text"):
        if column in columns:
            name = f"{column}.plain" if prefix else column
            names.append(f"{name}^{TITLE_BOOST:g}" if column == "title" else name)
    return names


def _prefix_query(value: str, names: list[str]) -> dict:
    """word* as a `prefix` query on the .plain fields: complete however many terms share the prefix
    (phrase_prefix stops at max_expansions terms, SQLite's FTS5 never does); the template's
    index_prefixes answer prefixes of up to 5 characters from one term each. A phrase ending in a
    prefix ("al-qa*") stays phrase_prefix, complete while its last word is within index_prefixes."""
    tokens = query_words(value)  # the desk queries' fold, as near the analyzer's as a prefix needs
    if len(tokens) != 1:
        return {"multi_match": {"query": value, "type": "phrase_prefix", "fields": names, "max_expansions": 1000}}
    should = []
    for name in names:
        field_name, _, boost = name.partition("^")
        should.append({"prefix": {field_name: {"value": tokens[0], "boost": float(boost or 1)}}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def compile_query(node, columns: frozenset[str] = _ALL_COLUMNS) -> dict:
    """AST -> query DSL. A word or phrase is a phrase match on title (boosted) and text, so a
    hyphenated word stays one phrase as in FTS5; a prefix* matches the unstemmed .plain subfields."""
    kind = node[0]
    if kind == "word":
        _kind, value, prefix = node
        names = _field_names(columns, prefix)
        if not names:
            return {"match_none": {}}
        if prefix:
            return _prefix_query(value, names)
        return {"multi_match": {"query": value, "type": "phrase", "fields": names}}
    if kind == "field":
        return compile_query(node[2], columns & {node[1]})
    if kind == "or":
        return {"bool": {"should": [compile_query(n, columns) for n in node[1]], "minimum_should_match": 1}}
    _kind, positive, negative = node
    query: dict[str, Any] = {"must": [compile_query(n, columns) for n in positive]}
    if negative:
        query["must_not"] = [compile_query(n, columns) for n in negative]
    return {"bool": query}


def fallback_query(user_query: str | None) -> dict | None:
    """All plain words ANDed: used if the cluster refuses the translated query anyway."""
    words = re.findall(r"\w+", user_query or "")
    if not words or fts_fallback_query(user_query) is None:
        return None
    return {"bool": {"must": [compile_query(("word", w, False)) for w in words]}}


def _highlighted(raw: str) -> str:
    return html.escape(raw).replace(_MARK_OPEN, "<mark>").replace(_MARK_CLOSE, "</mark>")


def _plain_snippet(text: str) -> str:
    if len(text) <= PLAIN_SNIPPET_CHARS:
        return html.escape(text)
    cut = text[:PLAIN_SNIPPET_CHARS]
    space = cut.rfind(" ")
    if space > PLAIN_SNIPPET_CHARS // 2:
        cut = cut[:space]
    return html.escape(cut) + "…"


_HIGHLIGHT = {
    "pre_tags": [_MARK_OPEN],
    "post_tags": [_MARK_CLOSE],
    "encoder": "default",  # escaped by us after the markers are placed, exactly once
    "fields": {
        "text": {"fragment_size": FRAGMENT_CHARS, "number_of_fragments": 1},
        "text.plain": {"fragment_size": FRAGMENT_CHARS, "number_of_fragments": 1},
        "title": {"number_of_fragments": 0},
        "title.plain": {"number_of_fragments": 0},
    },
}


def _snippet_from(hit: dict, text: str) -> str:
    """The body fragment with the most matches, else the title's, else the start of the text."""
    highlight = hit.get("highlight") or {}
    for group in (("text", "text.plain"), ("title", "title.plain")):
        fragments = [f for name in group for f in highlight.get(name, [])[:1]]
        if fragments:
            best = max(fragments, key=lambda f: f.count(_MARK_OPEN))
            return _highlighted(best)
    return _plain_snippet(text)


# --- bulk results ------------------------------------------------------------------------------


@dataclass
class BulkResult:
    """What one bulk write did; errors hold one line per document that was not written."""

    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.created + self.updated


def _item_error(doc_id: str, info: dict) -> str:
    error = info.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason += f" ({cause.get('type')}: {cause.get('reason')})"
    else:
        reason = str(error or "unknown error")
    return _one_line(f"{doc_id}: status {info.get('status')}: {reason}", 400)


# --- the store -----------------------------------------------------------------------------------


class ElasticsearchStore:
    """Store protocol on an Elasticsearch (8.x/9.x) cluster."""

    def __init__(self, client, *, url: str, prefix: str = DEFAULT_PREFIX, ilm: bool = True,
                 refresh: bool | str = True, setup: bool = True,
                 config_directory: str | os.PathLike[str] | None = None, engine: str = "elasticsearch"):
        if not _PREFIX_RE.fullmatch(prefix):
            raise NewsmonError(f"store {url}: index prefix {prefix!r} must be lower case letters, digits, - _ .")
        self.client = client
        self.url = url
        self.prefix = prefix
        self.ilm = bool(ilm)
        self.refresh = refresh
        self.engine = _engine_value(engine, f"store {url}")
        # Highlighting analyses at most HIGHLIGHT_CHARS of a field (the rest is searchable, not
        # highlighted): past index.highlight.max_analyzed_offset the whole search would answer 400.
        # OpenSearch spells the request option max_analyzer_offset.
        offset_key = "max_analyzer_offset" if self.engine == "opensearch" else "max_analyzed_offset"
        self._highlight = {**_HIGHLIGHT, offset_key: HIGHLIGHT_CHARS}
        self.articles_write = f"{prefix}-articles"
        self.articles_read = f"{prefix}-articles-read"
        self.articles_pattern = f"{prefix}-articles-*"
        self._state = {name: f"{prefix}-{name}" for name in STATE_INDICES}
        # streaming_bulk's own retries of 429/5xx documents and whole chunks, with exponential back-off
        self.bulk_chunk_size = BULK_CHUNK
        self.bulk_max_retries = BULK_RETRIES
        self.bulk_initial_backoff = 0.5
        self.bulk_max_backoff = 30.0
        self.scan_page = PAGE  # hits per search_after page of long listings and exports
        self._closed = False
        self._config: EsConfig | None = None
        self._config_directory = config_directory
        if setup:
            self.ensure_setup()

    def __repr__(self) -> str:
        return f"ElasticsearchStore({self.url!r}, prefix={self.prefix!r})"

    def __enter__(self) -> ElasticsearchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a pool must never mask the caller's error
                pass

    @property
    def config(self) -> EsConfig:
        if self._config is None:
            self._config = EsConfig.load(self._config_directory, self.prefix)
        return self._config

    def index_name(self, table: str) -> str:
        """The index of one state table (feeds, seen, inbox, alerts, outbox, stories, story-keys, events)."""
        return self._state[table]

    # --- errors ------------------------------------------------------------------------------

    def _error(self, what: str, err: BaseException) -> StoreError:
        status = getattr(err, "status_code", None) or getattr(getattr(err, "meta", None), "status", None)
        body = getattr(err, "body", None)
        detail = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            detail = f"{error.get('type', '')}: {error.get('reason', '')}"
        elif getattr(err, "message", None):
            detail = str(err.message)
        else:
            detail = str(err) or type(err).__name__
        prefix = f"status {status}: " if isinstance(status, int) else ""
        hint = ""
        if type(err).__name__ == "UnsupportedProductError":
            prefix, detail = "", "the server is not Elasticsearch (no X-Elastic-Product header)"
            hint = " (for OpenSearch add engine=opensearch to the store URL)"
        elif status == 406 and "vnd.elasticsearch" in detail:  # OpenSearch refuses the vendor media types
            hint = " (for OpenSearch add engine=opensearch to the store URL)"
        elif status in (401, 403):
            hint = " (check NEWSMON_ES_API_KEY / NEWSMON_ES_USERNAME+PASSWORD and the user's privileges)"
        return StoreError(f"store {self.url}: {what} failed: {prefix}{_one_line(detail, 300)}{hint}")

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call; every client or transport failure becomes a one-line StoreError."""
        from elasticsearch import ApiError, TransportError

        if self._closed:
            raise StoreError(f"store {self.url}: already closed")
        try:
            response = fn(*args, **kwargs)
        except (ApiError, TransportError) as err:
            raise self._error(what, err) from err
        return getattr(response, "body", response)

    def _ignoring(self, *statuses: int):
        return self.client.options(ignore_status=statuses)

    # --- setup -------------------------------------------------------------------------------

    def ensure_setup(self) -> None:
        """Create what is missing: ILM policy, index template, first backing index, state indices.

        A fully set-up cluster costs one request here, so a user allowed only to read and write
        documents can open the store; the setup itself needs manage privileges."""
        names = [self.articles_write, *self._state.values()]
        existing = self._call("check indices", self._ignoring(404).indices.get_alias, index=",".join(names),
                              ignore_unavailable=True)
        have_write_alias = any(
            self.articles_write in (info.get("aliases") or {}) for info in (existing or {}).values()
            if isinstance(info, dict)
        )
        missing_state = [name for name in self._state.values() if name not in (existing or {})]
        if have_write_alias and not missing_state:
            return
        self.apply_setup()

    def apply_setup(self) -> None:
        """Apply the policy and template (always, so a new newsmon updates them) and create missing indices."""
        config = self.config
        if self.ilm:
            self._call(
                "put ILM policy (clusters without ILM: add ?ilm=false to the store URL)",
                self.client.ilm.put_lifecycle, name=self.articles_write, policy=config.ilm_policy,
            )
        body = config.template_body(self.ilm)
        self._call("put index template", self.client.indices.put_index_template, name=self.articles_write, body=body)
        if not self._call("check write alias", self.client.indices.exists_alias, name=self.articles_write):
            self._create_index(f"{self.articles_write}-000001",
                               aliases={self.articles_write: {"is_write_index": True}})
        for table, index in self._state.items():
            if not self._call(f"check index {index}", self.client.indices.exists, index=index):
                state_body = config.state_indices[table]
                self._create_index(index, settings=state_body.get("settings"), mappings=state_body["mappings"])

    def _create_index(self, index: str, **body: Any) -> None:
        from elasticsearch import BadRequestError

        try:
            self._call(f"create index {index}", self.client.indices.create, index=index,
                       **{k: v for k, v in body.items() if v is not None})
        except StoreError as err:
            if not isinstance(err.__cause__, BadRequestError) or "resource_already_exists" not in str(err):
                raise  # another process creating it at the same moment is fine; anything else is not

    def rollover(self, conditions: dict | None = None) -> dict:
        """Roll the articles write alias over now (ILM does it by policy; this is for operators and tests)."""
        kwargs: dict[str, Any] = {"alias": self.articles_write}
        if conditions:
            kwargs["conditions"] = conditions
        return self._call("rollover", self.client.indices.rollover, **kwargs)

    def backing_indices(self) -> list[str]:
        aliases = self._call("list backing indices", self.client.indices.get_alias, name=self.articles_read)
        return sorted(aliases)

    def write_index(self) -> str | None:
        aliases = self._call("find write index", self.client.indices.get_alias, name=self.articles_write)
        for index, info in aliases.items():
            if (info.get("aliases") or {}).get(self.articles_write, {}).get("is_write_index"):
                return index
        return next(iter(aliases), None) if len(aliases) == 1 else None

    # --- low-level helpers ---------------------------------------------------------------------

    def _search(self, what: str, index: str, **body: Any) -> dict:
        return self._call(what, self.client.search, index=index, **body)

    def _scan(self, what: str, index: str, *, query: dict | None, sort: list, limit: int | None = None,
              source: Any = True, page: int | None = None, consistent: bool = False) -> Iterator[dict]:
        """Hits in sort order, paged with search_after (sort must end in a unique field).

        consistent: every page reads one point in time (exports, reindex), so documents written
        during the scan are neither skipped nor seen twice; a server without point-in-time (the
        test stand-in) is scanned page by page as without it."""
        remaining = None if limit is None else max(0, int(limit))
        page = page or self.scan_page
        after = None
        pit = self._open_pit(what, index) if consistent else None
        try:
            while remaining is None or remaining > 0:
                size = page if remaining is None else min(page, remaining)
                body: dict[str, Any] = {"size": size, "sort": sort, "query": query or {"match_all": {}},
                                        "source": source}
                if after is not None:
                    body["search_after"] = after
                if pit is None:
                    response = self._search(what, index, **body)
                else:
                    response = self._call(what, self.client.search, pit={"id": pit, "keep_alive": PIT_KEEP_ALIVE},
                                          **body)
                    pit = response.get("pit_id") or pit
                hits = response["hits"]["hits"]
                yield from hits
                if remaining is not None:
                    remaining -= len(hits)
                if len(hits) < size:
                    return
                after = hits[-1]["sort"]
        finally:
            if pit is not None:
                self._close_pit(pit)

    def _open_pit(self, what: str, index: str) -> str | None:
        """A point in time on index (Elasticsearch /_pit, OpenSearch /_search/point_in_time), or None
        where the server has none."""
        from elasticsearch import BadRequestError, NotFoundError

        try:
            if self.engine == "opensearch":
                opened = self._call(what, self.client.perform_request, "POST", f"/{index}/_search/point_in_time",
                                    params={"keep_alive": PIT_KEEP_ALIVE}, headers={"accept": "application/json"})
                return opened.get("pit_id")
            return self._call(what, self.client.open_point_in_time, index=index, keep_alive=PIT_KEEP_ALIVE).get("id")
        except StoreError as err:
            if isinstance(err.__cause__, BadRequestError | NotFoundError) and "index_not_found" not in str(err):
                return None
            raise

    def _close_pit(self, pit: str) -> None:
        """Release a point in time early (it would expire after PIT_KEEP_ALIVE anyway)."""
        try:
            if self.engine == "opensearch":
                self.client.perform_request("DELETE", "/_search/point_in_time", body={"pit_id": [pit]},
                                            headers={"accept": "application/json",
                                                     "content-type": "application/json"})
            else:
                self.client.close_point_in_time(id=pit)
        except Exception:  # noqa: BLE001 - a scan that finished must not fail on its clean-up
            pass

    def _fresh(self, what: str, index: str, hits: list[dict],
               keep: Callable[[dict], bool] | None = None) -> list[dict]:
        """The hits with their sources as last written (realtime mget): a search sees the index as
        of its last refresh, so a document updated or deleted since without waiting for one is
        re-read here, dropped when gone or when keep refuses its current state."""
        if not hits:
            return []
        current = self._mget(what, index, [h["_id"] for h in hits])
        fresh = []
        for hit in hits:
            source = current.get(hit["_id"])
            if source is not None and (keep is None or keep(source)):
                fresh.append({**hit, "_source": source})
        return fresh

    def _scan_fresh(self, what: str, index: str, *, query: dict | None, sort: list, limit: int | None = None,
                    keep: Callable[[dict], bool] | None = None) -> list[dict]:
        """_scan with _fresh applied page by page, until limit hits survive."""
        wanted = None if limit is None else max(0, int(limit))
        if wanted == 0:
            return []
        kept: list[dict] = []
        page: list[dict] = []
        size = self.scan_page if wanted is None else min(self.scan_page, wanted)
        for hit in self._scan(what, index, query=query, sort=sort, page=size):
            page.append(hit)
            if len(page) == size:
                kept += self._fresh(what, index, page, keep)
                page = []
                if wanted is not None and len(kept) >= wanted:
                    return kept[:wanted]
        kept += self._fresh(what, index, page, keep)
        return kept if wanted is None else kept[:wanted]

    def _get(self, what: str, index: str, doc_id: str) -> dict | None:
        """The document with its seq_no/primary_term, or None; realtime, needs no refresh."""
        response = self._call(what, self._ignoring(404).get, index=index, id=doc_id)
        if response.get("found"):
            return response
        if "error" in response:
            raise StoreError(f"store {self.url}: {what} failed: {_one_line(response['error'], 300)}")
        return None

    def _mget(self, what: str, index: str, ids: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for chunk in _chunks(list(dict.fromkeys(ids))):
            response = self._call(what, self.client.mget, index=index, ids=chunk)
            for doc in response.get("docs", []):
                if doc.get("error"):
                    raise StoreError(f"store {self.url}: {what} failed: {_one_line(doc['error'], 300)}")
                if doc.get("found"):
                    found[doc["_id"]] = doc["_source"]
        return found

    def _create(self, what: str, index: str, doc_id: str, document: dict) -> bool:
        """Index unless the id exists; False when it did (the idempotency of alerts, outbox, inbox).
        A create is searchable when it returns (the store's refresh option): it adds a row to a listing."""
        response = self._call(what, self._ignoring(409).index, index=index, id=doc_id, document=document,
                              op_type="create", refresh=self.refresh)
        if response.get("status") == 409 or "error" in response:
            error = response.get("error")
            if isinstance(error, dict) and error.get("type") != "version_conflict_engine_exception":
                raise StoreError(f"store {self.url}: {what} failed: {_one_line(error, 300)}")
            return False
        return True

    def _cas(self, what: str, index: str, doc_id: str, change: Callable[[dict], dict | None],
             create: Callable[[], dict] | None = None, refresh: bool | str = False) -> dict | None:
        """Read-modify-write with if_seq_no/if_primary_term, retried on conflict (no scripts needed).

        change returns the new document, or None to leave it; create builds the document when
        there is none (None: leave it missing). Returns the document as stored afterwards. The
        update does not wait for a refresh by default: claims, counters and marks are read back by
        realtime GET, and listings re-read their hits (_fresh)."""
        for attempt in range(CAS_ATTEMPTS):
            current = self._get(what, index, doc_id)
            if current is None:
                if create is None:
                    return None
                document = create()
                if self._create(what, index, doc_id, document):
                    return document
            else:
                document = change(dict(current["_source"]))
                if document is None:
                    return current["_source"]
                response = self._call(
                    what, self._ignoring(409).index, index=index, id=doc_id, document=document,
                    if_seq_no=current["_seq_no"], if_primary_term=current["_primary_term"],
                    refresh=refresh and self.refresh,
                )
                if response.get("status") != 409 and "error" not in response:
                    return document
            time.sleep(min(0.5, 0.005 * 2 ** min(attempt, 7)) * random.random())
        raise StoreError(f"store {self.url}: {what} failed: still conflicting after {CAS_ATTEMPTS} attempts")

    def _bulk(self, what: str, actions: Iterable[dict], *, conflicts_ok: bool = False,
              refresh: bool | str | None = None) -> tuple[list, list[str]]:
        """streaming_bulk in chunks, retrying 429/5xx with exponential back-off.

        Returns ([(ok, op, info)], [one-line error per failed document]); a 409 on a create counts as
        ok when conflicts_ok (the document was already there)."""
        from elasticsearch import helpers

        results: list[tuple[bool, str, dict]] = []
        errors: list[str] = []
        try:
            for ok, item in helpers.streaming_bulk(
                self.client, actions, chunk_size=self.bulk_chunk_size, max_retries=self.bulk_max_retries,
                initial_backoff=self.bulk_initial_backoff, max_backoff=self.bulk_max_backoff,
                retry_on_status=RETRY_STATUSES, raise_on_error=False, raise_on_exception=False,
                refresh=self.refresh if refresh is None else refresh,
            ):
                op, info = next(iter(item.items()))
                if not ok and conflicts_ok and info.get("status") == 409:
                    ok = True
                results.append((ok, op, info))
                if not ok:
                    errors.append(_item_error(str(info.get("_id")), info))
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001 - transport failures after the client's own retries
            raise self._error(what, err) from err
        return results, errors

    # --- articles ----------------------------------------------------------------------------

    @staticmethod
    def _article_doc(article: Article, now: str, first_stored: str | None, stored_seq: int | None) -> dict:
        doc = article.to_dict()
        event_time = normalise_time(article.published) or normalise_time(article.fetched) or now
        doc["event_time"] = event_time
        doc["topic_ids"] = list(dict.fromkeys(t.id for t in article.topics))
        points, names = [], []
        for place in article.places or []:
            if not isinstance(place, dict):
                continue
            if place.get("name"):
                names.append(str(place["name"]))
            lat, lon = place.get("lat"), place.get("lon")
            if isinstance(lat, int | float) and isinstance(lon, int | float) and -90 <= lat <= 90 \
                    and -180 <= lon <= 180:
                points.append({"lat": lat, "lon": lon})
        doc["place_points"] = points
        doc["place_names"] = names
        doc["first_stored"] = first_stored or now
        doc["last_stored"] = now
        doc["stored_seq"] = stored_seq or _next_seq()
        return doc

    @staticmethod
    def _doc_article(source: dict) -> Article:
        return Article.from_dict({k: v for k, v in source.items() if k in _ARTICLE_FIELDS})

    def _locate(self, ids: list[str]) -> dict[str, dict]:
        """Where each stored id lives, across every backing index of the read alias."""
        located: dict[str, dict] = {}
        for chunk in _chunks(list(dict.fromkeys(ids))):
            response = self._search(
                "look up article ids", self.articles_read, query={"ids": {"values": chunk}},
                size=len(chunk) * 2, source=["first_stored", "stored_seq"],
                sort=[{"stored_seq": "asc"}],
            )
            for hit in response["hits"]["hits"]:
                located.setdefault(hit["_id"], {"index": hit["_index"], **(hit.get("_source") or {})})
        return located

    def upsert_article(self, article: Article) -> bool:
        result = self.upsert_articles([article])
        if result.errors:
            raise StoreError(f"store {self.url}: upsert article {article.id} failed: {result.errors[0]}")
        return result.created == 1

    def upsert_articles(self, articles: list[Article]) -> BulkResult:
        """Bulk upsert: existing ids are overwritten where they live, new ids created via the write alias.

        Every document that could not be written is in the result's errors (one line each)."""
        batch: dict[str, Article] = {}
        for article in articles:
            batch[article.id] = article  # the last copy of a repeated id wins, as with sequential upserts
        result = BulkResult()
        if not batch:
            return result
        now = _now()
        located = self._locate(list(batch))

        def actions(ids: Iterable[str], retry_existing: dict[str, dict]) -> Iterator[dict]:
            for article_id in ids:
                where = retry_existing.get(article_id) or located.get(article_id)
                article = batch[article_id]
                if where:
                    doc = self._article_doc(article, now, where.get("first_stored"), where.get("stored_seq"))
                    yield {"_op_type": "index", "_index": where["index"], "_id": article_id, "_source": doc}
                else:
                    doc = self._article_doc(article, now, None, None)
                    yield {"_op_type": "create", "_index": self.articles_write, "_id": article_id, "_source": doc}

        raced: list[str] = []
        results, _ = self._bulk("bulk index articles", actions(batch, {}))
        for ok, op, info in results:
            if ok:
                if op == "create":
                    result.created += 1
                else:
                    result.updated += 1
            elif op == "create" and info.get("status") == 409:
                raced.append(str(info.get("_id")))  # created by another writer since we looked
            else:
                result.errors.append(_item_error(str(info.get("_id")), info))
        if raced:
            again = self._locate(raced)
            missing = [i for i in raced if i not in again]
            for article_id in missing:  # visible to create but not yet to search: it is in the write index
                again[article_id] = {"index": self.articles_write}
            results, _ = self._bulk("bulk index articles", actions(raced, again))
            for ok, _op, info in results:
                if ok:
                    result.updated += 1
                else:
                    result.errors.append(_item_error(str(info.get("_id")), info))
        return result

    def get_article(self, article_id: str) -> Article | None:
        response = self._search("get article", self.articles_read, query={"ids": {"values": [article_id]}},
                                size=1, sort=[{"stored_seq": "asc"}])
        hits = response["hits"]["hits"]
        return self._doc_article(hits[0]["_source"]) if hits else None

    def has_article(self, article_id: str) -> bool:
        response = self._call("has article", self.client.count, index=self.articles_read,
                              query={"ids": {"values": [article_id]}})
        return response["count"] > 0

    def find_by_content_hash(self, content_hash: str) -> str | None:
        response = self._search("find by content hash", self.articles_read,
                                query={"term": {"content_hash": content_hash}}, size=1,
                                sort=[{"stored_seq": "asc"}, {"id": "asc"}], source=False)
        hits = response["hits"]["hits"]
        return hits[0]["_id"] if hits else None

    def count_articles(self) -> int:
        return self._call("count articles", self.client.count, index=self.articles_read)["count"]

    def iter_articles(self, after_id: str | None = None, batch: int = 500) -> list[Article]:
        batch = max(1, min(int(batch), MAX_RESULT_WINDOW))
        query = {"range": {"id": {"gt": after_id}}} if after_id else {"match_all": {}}
        response = self._search("iterate articles", self.articles_read, query=query, size=batch,
                                sort=[{"id": "asc"}])
        articles, seen = [], set()
        for hit in response["hits"]["hits"]:
            if hit["_id"] not in seen:
                seen.add(hit["_id"])
                articles.append(self._doc_article(hit["_source"]))
        return articles

    # --- stories -----------------------------------------------------------------------------

    def _new_story(self, story_id: str, members: list[dict]) -> dict:
        return {"id": story_id, "first_seen": _now(), "created_seq": _next_seq(), "copies": len(members),
                "members": members}

    def story_for_keys(self, keys: list[str]) -> str | None:
        keys = [k for k in dict.fromkeys(keys)]
        if not keys:
            return None
        story_ids: set[str] = set()
        for chunk in _chunks(keys):
            for hit in self._scan("story for keys", self._state["story-keys"], query={"terms": {"key": chunk}},
                                  sort=[{"story_id": "asc"}, {"key": "asc"}], source=["story_id"]):
                story_ids.add(hit["_source"]["story_id"])
        if not story_ids:
            return None
        stories = self._mget("story for keys", self._state["stories"], [_safe_id(s) for s in story_ids])
        ranked = sorted((s.get("created_seq", 0), s["id"]) for s in stories.values())
        return ranked[0][1] if ranked else None

    def add_story_keys(self, story_id: str, keys: list[str]) -> None:
        self._create(f"add keys to story {story_id}", self._state["stories"], _safe_id(story_id),
                     self._new_story(story_id, []))
        actions = ({"_op_type": "create", "_index": self._state["story-keys"], "_id": _hash_id(key, story_id),
                    "_source": {"key": key, "story_id": story_id}} for key in dict.fromkeys(keys))
        _, errors = self._bulk(f"add keys to story {story_id}", actions, conflicts_ok=True)
        if errors:
            raise StoreError(f"store {self.url}: add keys to story {story_id} failed: {errors[0]}")

    @staticmethod
    def _owner_id(key: str) -> str:
        """_id of a key's owner document in the story-keys index (one per key, read by realtime GET;
        the (key, story) pair documents of add_story_keys and imports have other ids)."""
        return "k-" + _hash_id("owner", key)

    def _owners(self, what: str, keys: list[str]) -> dict[str, dict]:
        """key -> its owner document (realtime mget: no refresh needed to see the last holder's writes)."""
        owners: dict[str, dict] = {}
        for chunk in _chunks([self._owner_id(k) for k in keys]):
            response = self._call(what, self.client.mget, index=self._state["story-keys"], ids=chunk)
            for doc in response.get("docs", []):
                if doc.get("error"):
                    raise StoreError(f"store {self.url}: {what} failed: {_one_line(doc['error'], 300)}")
                if doc.get("found"):
                    owners[doc["_source"]["key"]] = doc
        return owners

    def _oldest(self, what: str, story_ids: set[str]) -> str | None:
        """The oldest of these stories (created_seq, then id) that has a story document."""
        stories = self._mget(what, self._state["stories"], [_safe_id(s) for s in story_ids])
        ranked = sorted((int(s.get("created_seq") or 0), s["id"]) for s in stories.values())
        return ranked[0][1] if ranked else None

    def assign_story(self, story_id: str, keys: list[str]) -> str:
        """Read, check and write under the story lock (a leased document created with op_type=create,
        ASSIGN_LEASE), as SQLite does under BEGIN IMMEDIATE: Elasticsearch has no transactions, and
        optimistic claims per key cannot stop a writer that finished from being overruled by an older
        story that claimed later. Inside, every read is a realtime GET (no refresh waited for) and the
        key owners are written with refresh=false, so the lock is held for a few short requests."""
        keys = list(dict.fromkeys(keys))
        what = f"assign story for {story_id}"
        token = self._take_lock(what, ASSIGN_LOCK_ID)
        try:
            owners = self._owners(what, keys)
            candidates = {doc["_source"]["story_id"] for doc in owners.values()}
            if keys and len(owners) < len(keys):  # keys written by add_story_keys or an import: by search
                candidates |= {self.story_for_keys([k for k in keys if k not in owners])} - {None}
            chosen = (self._oldest(what, candidates) if candidates else None) or story_id
            if chosen == story_id:
                self._call(what, self._ignoring(409).index, index=self._state["stories"], id=_safe_id(story_id),
                           document=self._new_story(story_id, []), op_type="create", refresh=False)
            actions = [{"_op_type": "index", "_index": self._state["story-keys"], "_id": self._owner_id(key),
                        "_source": {"key": key, "story_id": chosen}}
                       for key in keys if owners.get(key, {}).get("_source", {}).get("story_id") != chosen]
            if actions:
                from elasticsearch import helpers

                try:
                    _ok, errors = helpers.bulk(self.client, actions, refresh=False, raise_on_error=False,
                                               max_retries=self.bulk_max_retries)
                except Exception as err:  # noqa: BLE001 - transport failures after the client's own retries
                    raise self._error(what, err) from err
                if errors:
                    raise StoreError(f"store {self.url}: {what} failed: {_one_line(errors[0], 300)}")
            return chosen
        finally:
            self._release_lock(what, ASSIGN_LOCK_ID, token)

    @contextlib.contextmanager
    def events_lock(self) -> Iterator[None]:
        """Hold the events lock: one worker at a time reads the events, matches a report and saves
        (EventBook.attach), so two workers never open two events for one development. The same leased
        lock document as the story lock, under another id."""
        token = self._take_lock("lock events", EVENTS_LOCK_ID)
        try:
            yield
        finally:
            self._release_lock("unlock events", EVENTS_LOCK_ID, token)

    def _take_lock(self, what: str, lock_id: str) -> str:
        """Take a lock document of the stories index (waiting for its holder, or for a dead holder's
        lease to end); its token, 'machine|pid|random' (delivery_claimer). A lock left by a process
        known dead on this machine, or by this process outside any held lock (its release failed in
        an outage), is taken at once instead of after the lease."""
        token = delivery_claimer()
        index = self._state["stories"]
        _HELD_LOCKS.add(token)  # before any write: another thread must never see it as abandoned
        try:
            return self._take_lock_as(what, lock_id, token, index)
        except BaseException:
            _HELD_LOCKS.discard(token)
            raise

    def _take_lock_as(self, what: str, lock_id: str, token: str, index: str) -> str:
        deadline = time.monotonic() + ASSIGN_WAIT
        attempt = 0
        while True:
            now = time.time()
            lock = {"lock": token, "until": now + ASSIGN_LEASE}
            created = self._call(what, self._ignoring(409).index, index=index, id=lock_id, document=lock,
                                 op_type="create", refresh=False)
            if created.get("status") != 409 and "error" not in created:
                return token
            current = self._get(what, index, lock_id)
            if current is not None and (float(current["_source"].get("until") or 0) < now
                                        or claimer_is_gone(current["_source"].get("lock"), held=_HELD_LOCKS)):
                taken = self._call(what, self._ignoring(409).index, index=index, id=lock_id, document=lock,
                                   if_seq_no=current["_seq_no"], if_primary_term=current["_primary_term"],
                                   refresh=False)
                if taken.get("status") != 409 and "error" not in taken:
                    return token
            if time.monotonic() > deadline:
                raise StoreError(f"store {self.url}: {what} failed: the lock {lock_id} was held for more than "
                                 f"{ASSIGN_WAIT:g} s")
            time.sleep(min(0.2, 0.002 * 2 ** min(attempt, 7)) * (0.5 + random.random()))
            attempt += 1

    def _release_lock(self, what: str, lock_id: str, token: str) -> None:
        _HELD_LOCKS.discard(token)  # whatever happens below, this process no longer holds it
        current = self._get(what, self._state["stories"], lock_id)
        if current is not None and current["_source"].get("lock") == token:
            self._call(what, self._ignoring(404, 409).delete, index=self._state["stories"], id=lock_id,
                       if_seq_no=current["_seq_no"], if_primary_term=current["_primary_term"], refresh=False)

    def bump_story(self, story_id: str, article_id: str, source: str) -> int:
        """Idempotent per (story, article): the member list lives in the story document itself."""
        member = {"article_id": article_id, "source": source, "first_seen": _now()}

        def change(doc: dict) -> dict | None:
            members = doc.get("members") or []
            if any(m.get("article_id") == article_id for m in members):
                return None
            doc["members"] = [*members, member]
            doc["copies"] = int(doc.get("copies") or 0) + 1
            return doc

        stored = self._cas(f"bump story {story_id}", self._state["stories"], _safe_id(story_id), change,
                           create=lambda: self._new_story(story_id, [member]))
        return int(stored["copies"])

    def get_story(self, story_id: str) -> dict | None:
        found = self._get(f"get story {story_id}", self._state["stories"], _safe_id(story_id))
        if found is None:
            return None
        doc = found["_source"]
        members = doc.get("members") or []
        return {
            "id": doc["id"],
            "first_seen": doc["first_seen"],
            "copies": int(doc.get("copies") or 0),
            "articles": [m["article_id"] for m in members],
            "sources": list(dict.fromkeys(m["source"] for m in members)),
        }

    # --- search and counts ---------------------------------------------------------------------

    @staticmethod
    def _filters(topic: str | None, desk: str | None, source: str | None, language: str | None,
                 since: str | None, until: str | None) -> list[dict]:
        filters: list[dict] = []
        if topic:
            filters.append({"term": {"topic_ids": topic}})
        for name, value in (("desk", desk), ("source", source), ("language", language)):
            if value:
                filters.append({"term": {name: value}})
        time_range = {}
        if since:
            time_range["gte"] = since
        if until:
            time_range["lt"] = until
        if time_range:
            filters.append({"range": {"event_time": time_range}})
        return filters

    def search(
        self,
        query: str | None = None,
        *,
        topic: str | None = None,
        desk: str | None = None,
        source: str | None = None,
        language: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 20,
        offset: int = 0,
        collapse: str | None = None,
    ) -> list[SearchHit]:
        """Full-text search plus filters, as the SQLite store: since inclusive, until exclusive, on
        published else fetched; a query without searchable terms means filters only."""
        collapse = check_collapse(collapse)
        since_bound, until_bound = _bound("since", since), _bound("until", until)
        offset = max(0, int(offset))
        limit = max(0, min(int(limit), MAX_RESULT_WINDOW - offset))
        if limit == 0:
            return []
        filters = self._filters(topic, desk, source, language, since_bound, until_bound)
        tree = parse_query(query)
        if tree is None:
            hits = self._ranked_hits(limit, offset, collapse, query={"bool": {"filter": filters}},
                                     sort=[{"event_time": "desc"}, {"id": "asc"}])
            return [SearchHit(article=self._doc_article(h["_source"]), score=0.0,
                              snippet=_plain_snippet(h["_source"].get("text") or ""))
                    for h in hits]

        from elasticsearch import BadRequestError

        hits = None
        translated = compile_query(tree)
        # A refused request is tried again without highlighting (one article past the analysis limit
        # of an older index must not blank the search), then as plain words; an outage is not retried.
        for candidate, highlight in ((translated, self._highlight), (translated, None),
                                     (fallback_query(query), None)):
            if candidate is None:
                break
            extra = {"highlight": highlight} if highlight else {}
            try:
                hits = self._ranked_hits(
                    limit, offset, collapse, query={"bool": {"must": [candidate], "filter": filters}},
                    track_scores=True, sort=[{"_score": "desc"}, {"event_time": "desc"}, {"id": "asc"}], **extra,
                )
                break
            except StoreError as err:
                if not isinstance(err.__cause__, BadRequestError):
                    raise
        if hits is None:
            return []
        return [
            SearchHit(article=self._doc_article(h["_source"]), score=float(h.get("_score") or 0.0),
                      snippet=_snippet_from(h, h["_source"].get("text") or ""))
            for h in hits
        ]

    @staticmethod
    def _group(hit: dict, collapse: str) -> tuple[str, str]:
        """The story or event a hit belongs to; an article without one is its own group."""
        value = (hit.get("_source") or {}).get("story_id" if collapse == "story" else "event_id")
        return (collapse, value) if value else ("article", hit["_id"])

    def _ranked_hits(self, limit: int, offset: int, collapse: str | None, **body: Any) -> list[dict]:
        """One page of ranked hits; collapsed, the best-ranked hit of each story or event, paged by group.

        Collapsed here, not with the search `collapse` option: that groups every article without an
        event into one (missing values collapse together) and needs event_id mapped in every backing
        index, which indices created before events lack. So ranked hits are read page by page with
        only their group fields until offset+limit groups are known (within the first
        MAX_RESULT_WINDOW hits), then just the chosen hits are fetched with sources and highlights."""
        if collapse is None:
            return self._search("search", self.articles_read, size=limit, from_=offset, **body)["hits"]["hits"]
        wanted = offset + limit
        best: dict[tuple[str, str], str] = {}  # group -> id of its best hit, in rank order
        page = min(MAX_RESULT_WINDOW, max(PAGE, 2 * wanted))
        start = 0
        lean = {k: v for k, v in body.items() if k != "highlight"}
        while len(best) < wanted and start < MAX_RESULT_WINDOW:
            size = min(page, MAX_RESULT_WINDOW - start)
            hits = self._search("search", self.articles_read, size=size, from_=start,
                                source=["story_id", "event_id"], **lean)["hits"]["hits"]
            for hit in hits:
                best.setdefault(self._group(hit, collapse), hit["_id"])
            if len(hits) < size:
                break
            start += size
        chosen = list(best.values())[offset:wanted]
        if not chosen:
            return []
        query = {"bool": {"must": [body["query"]], "filter": [{"ids": {"values": chosen}}]}}
        hits = self._search("search", self.articles_read, size=2 * len(chosen), **{**body, "query": query})
        by_id: dict[str, dict] = {}
        for hit in hits["hits"]["hits"]:
            by_id.setdefault(hit["_id"], hit)
        return [by_id[i] for i in chosen if i in by_id]

    def topic_counts(self, since: str | None = None, until: str | None = None) -> list[dict]:
        """Articles per (topic, hour of event_time), paged with a composite aggregation."""
        since_bound, until_bound = _bound("since", since), _bound("until", until)
        query = {"bool": {"filter": self._filters(None, None, None, None, since_bound, until_bound)}}
        counts: list[dict] = []
        after = None
        while True:
            composite: dict[str, Any] = {
                "size": 1000,
                "sources": [
                    {"hour": {"date_histogram": {"field": "event_time", "calendar_interval": "hour"}}},
                    {"topic": {"terms": {"field": "topic_ids"}}},
                ],
            }
            if after:
                composite["after"] = after
            response = self._search("topic counts", self.articles_read, size=0, query=query,
                                    aggs={"counts": {"composite": composite}})
            agg = response.get("aggregations", {}).get("counts", {})
            for bucket in agg.get("buckets", []):
                hour = iso(_from_millis(bucket["key"]["hour"])) or ""
                counts.append({"topic": bucket["key"]["topic"], "hour": hour[:13] + ":00:00Z",
                               "count": int(bucket["doc_count"])})
            after = agg.get("after_key")
            if not agg.get("buckets") or not after:
                break
        counts.sort(key=lambda c: (c["hour"], c["topic"]))
        return counts

    # --- feed state and seen items ---------------------------------------------------------------

    def get_feed_state(self, feed_id: str) -> FeedState | None:
        found = self._get("get feed state", self._state["feeds"], _safe_id(feed_id))
        return self._feed_state(found["_source"]) if found else None

    @staticmethod
    def _feed_state(doc: dict) -> FeedState:
        state = FeedState(**{k: doc.get(k) for k in _FEED_STATE_FIELDS if k in doc})
        # A document written before feed health (no key at all) reads as SQLite's v5 migration fills it.
        if "last_new_items" not in doc and (state.items_total or 0) > 0:
            state.last_new_items = state.last_success
        if "first_polled" not in doc:
            state.first_polled = state.last_polled or state.last_success
        return state

    def save_feed_state(self, state: FeedState) -> None:
        """Several saves per feed and cycle, so an update does not wait for a refresh (get_feed_state
        is realtime, list_feed_states re-reads its hits); a feed's first save does, to be listed."""
        what, index, doc_id = f"save feed state {state.feed_id}", self._state["feeds"], _safe_id(state.feed_id)
        saved = self._call(what, self.client.index, index=index, id=doc_id, document=asdict(state), refresh=False)
        if saved.get("result") == "created" and self.refresh:
            self._call(what, self.client.index, index=index, id=doc_id, document=asdict(state), refresh=self.refresh)

    def list_feed_states(self) -> list[FeedState]:
        return [self._feed_state(h["_source"]) for h in
                self._scan_fresh("list feed states", self._state["feeds"], query=None, sort=[{"feed_id": "asc"}])]

    def seen_items(self, feed_id: str, item_ids: list[str]) -> set[str]:
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return set()
        keys = {inbox_key(feed_id, item_id): item_id for item_id in ids}
        found = self._mget("seen items", self._state["seen"], list(keys))
        return {keys[key] for key in found}

    def _mark_seen(self, what: str, pairs: Iterable[tuple[str, str]]) -> None:
        now = _now()
        actions = ({"_op_type": "create", "_index": self._state["seen"], "_id": inbox_key(f, i),
                    "_source": {"feed_id": f, "item_id": i, "seen": now}} for f, i in dict.fromkeys(pairs))
        _, errors = self._bulk(what, actions, conflicts_ok=True, refresh=False)  # read by realtime mget only
        if errors:
            raise StoreError(f"store {self.url}: {what} failed for {len(errors)} item(s): {errors[0]}")

    def mark_items_seen(self, feed_id: str, item_ids: list[str]) -> None:
        self._mark_seen(f"mark items seen for feed {feed_id}", ((feed_id, i) for i in item_ids))

    # --- inbox ---------------------------------------------------------------------------------

    @staticmethod
    def _inbox_item(doc: dict) -> tuple[str, FeedItem]:
        data = doc.get("item") or {}
        return doc["key"], FeedItem(**{k: v for k, v in data.items() if k in _FEED_ITEM_FIELDS})

    def spool_items(self, items: list[FeedItem]) -> int:
        """Queue unseen items with op_type=create (a queued key is never queued twice).

        Not one transaction as in SQLite: an item finished between the seen check and the create
        comes back once, and processing it again is harmless (deterministic ids)."""
        unique: dict[str, FeedItem] = {}
        for item in items:
            unique.setdefault(inbox_key(item.feed_id, item.item_id), item)
        if not unique:
            return 0
        seen = self._mget("spool feed items", self._state["seen"], list(unique))
        now = _now()
        actions = [
            {"_op_type": "create", "_index": self._state["inbox"], "_id": key,
             "_source": {"key": key, "feed_id": item.feed_id, "item_id": item.item_id, "item": asdict(item),
                         "queued": now, "seq": _next_seq()}}
            for key, item in unique.items() if key not in seen
        ]
        if not actions:
            return 0
        results, errors = self._bulk("spool feed items", actions, conflicts_ok=True)
        if errors:
            raise StoreError(f"store {self.url}: spool feed items failed for {len(errors)} item(s): {errors[0]}")
        return sum(1 for ok, _op, info in results if ok and info.get("status") in (200, 201))

    def _pending_counts(self) -> dict[str, int]:
        """Inbox items per feed (a composite aggregation, paged)."""
        counts: dict[str, int] = {}
        after = None
        while True:
            composite: dict[str, Any] = {"size": 1000, "sources": [{"feed": {"terms": {"field": "feed_id"}}}]}
            if after:
                composite["after"] = after
            response = self._search("pending items", self._state["inbox"], size=0,
                                    aggs={"feeds": {"composite": composite}})
            agg = response.get("aggregations", {}).get("feeds", {})
            for bucket in agg.get("buckets", []):
                counts[bucket["key"]["feed"]] = int(bucket["doc_count"])
            after = agg.get("after_key")
            if not agg.get("buckets") or not after:
                return counts

    def pending_items(self, limit: int = 1000) -> list[tuple[str, FeedItem]]:
        """Round-robin by feed, as in SQLite: each feed's n-th oldest item ranks n. Reads at most
        `depth` items of each feed, the fewest rounds of the round-robin that fill `limit`."""
        limit = max(0, int(limit))
        if not limit:
            return []
        counts = self._pending_counts()
        depth = 1
        while sum(min(count, depth) for count in counts.values()) < limit and depth < max(counts.values(), default=0):
            depth = min(max(counts.values()), depth * 2)  # doubling: a few sums even for a long backlog
        sort = [{"seq": "asc"}, {"key": "asc"}]
        ranked: list[tuple[int, int, str, dict]] = []
        for feed_id in sorted(counts):
            hits = self._scan_fresh("pending items", self._state["inbox"], query={"term": {"feed_id": feed_id}},
                                    sort=sort, limit=min(counts[feed_id], depth))
            ranked.extend((nth, int(h["_source"].get("seq") or 0), h["_source"]["key"], h["_source"])
                          for nth, h in enumerate(hits))
        ranked.sort(key=lambda entry: entry[:3])
        return [self._inbox_item(doc) for *_rank, doc in ranked[:limit]]

    def get_items(self, keys: list[str]) -> list[tuple[str, FeedItem]]:
        found = self._mget("get items", self._state["inbox"], list(keys))
        docs = sorted(found.values(), key=lambda d: d.get("seq", 0))
        return [self._inbox_item(doc) for doc in docs]

    def finish_items(self, keys: list[str]) -> None:
        """Seen first, then out of the inbox: a crash in between leaves a seen item queued, which
        the next cycle processes again harmlessly; the reverse order could lose it."""
        found = self._mget("finish inbox items", self._state["inbox"], list(keys))
        if not found:
            return
        self._mark_seen("finish inbox items", ((d["feed_id"], d["item_id"]) for d in found.values()))
        actions = ({"_op_type": "delete", "_index": self._state["inbox"], "_id": key} for key in found)
        results, _ = self._bulk("finish inbox items", actions, refresh=False)  # pending_items re-reads its hits
        errors = [_item_error(str(info.get("_id")), info) for ok, _op, info in results
                  if not ok and info.get("status") != 404]
        if errors:
            raise StoreError(f"store {self.url}: finish inbox items failed for {len(errors)} item(s): {errors[0]}")

    # --- development events ------------------------------------------------------------------------

    def save_event(self, event: DevelopmentEvent) -> None:
        self._call(f"save event {event.id}", self.client.index, index=self._state["events"],
                   id=_safe_id(event.id), document=event.to_dict(), refresh=self.refresh)

    def save_events(self, events: list[DevelopmentEvent]) -> BulkResult:
        """Bulk save_event (reindex); every event that could not be written is in the result's errors."""
        actions = ({"_op_type": "index", "_index": self._state["events"], "_id": _safe_id(e.id),
                    "_source": e.to_dict()} for e in events)
        results, errors = self._bulk("bulk save events", actions)
        result = BulkResult(errors=errors)
        for ok, _op, info in results:
            if ok and info.get("status") == 201:
                result.created += 1
            elif ok:
                result.updated += 1
        return result

    def get_event(self, event_id: str) -> DevelopmentEvent | None:
        found = self._get("get event", self._state["events"], _safe_id(event_id))
        return DevelopmentEvent.from_dict(found["_source"]) if found else None

    def list_events(self, *, watch: str | None = None, family: str | None = None, since: str | None = None,
                    until: str | None = None, limit: int = 1000, newest_first: bool = False) -> list[DevelopmentEvent]:
        """since and until are both inclusive, on `opened`."""
        since_bound, until_bound = _bound("since", since), _bound("until", until)
        filters: list[dict] = [{"term": {name: value}} for name, value in (("watch", watch), ("family", family))
                               if value]
        opened = {key: value for key, value in (("gte", since_bound), ("lte", until_bound)) if value}
        if opened:
            filters.append({"range": {"opened": opened}})
        order = "desc" if newest_first else "asc"
        hits = self._scan("list events", self._state["events"], query={"bool": {"filter": filters}},
                          sort=[{"opened": order}, {"id": order}], limit=limit)
        return [DevelopmentEvent.from_dict(h["_source"]) for h in hits]

    def iter_events(self, after_id: str | None = None, batch: int = 500) -> list[DevelopmentEvent]:
        query = {"range": {"id": {"gt": after_id}}} if after_id else None
        hits = self._scan("iterate events", self._state["events"], query=query, sort=[{"id": "asc"}],
                          limit=max(1, int(batch)))
        return [DevelopmentEvent.from_dict(h["_source"]) for h in hits]

    def count_events(self) -> int:
        return self._call("count events", self.client.count, index=self._state["events"])["count"]

    def set_article_event(self, article_id: str, event_id: str | None) -> None:
        """Rewrites the article where it lives (read-modify-write); an unknown article is left alone."""
        where = self._locate([article_id]).get(article_id)
        if where is None:
            return
        event_id = event_id or None

        def change(doc: dict) -> dict | None:
            if doc.get("event_id") == event_id:
                return None
            doc["event_id"] = event_id
            return doc

        self._cas(f"set event of article {article_id}", where["index"], article_id, change, refresh=True)

    # --- alerts and outbox -------------------------------------------------------------------------

    @staticmethod
    def _alert(doc: dict) -> Alert:
        return Alert.from_dict(doc)

    def record_alert(self, alert: Alert) -> bool:
        now = _now()
        doc = asdict(alert)
        doc["created"] = alert.created or now
        doc["copies"] = max(1, int(alert.copies or 1))
        doc["last_seen"] = now
        doc["seq"] = _next_seq()
        index, doc_id = self._state["alerts"], _safe_id(alert.id)
        if self._create(f"record alert {alert.id}", index, doc_id, doc):
            return True

        def change(current: dict) -> dict:
            current["copies"] = int(current.get("copies") or 1) + 1
            current["last_seen"] = now
            return current

        self._cas(f"record alert {alert.id}", index, doc_id, change)
        return False

    def get_alert(self, alert_id: str) -> Alert | None:
        found = self._get("get alert", self._state["alerts"], _safe_id(alert_id))
        return self._alert(found["_source"]) if found else None

    def list_alerts(self, since: str | None = None, limit: int = 100, *, desk: str | None = None,
                    event_id: str | None = None) -> list[Alert]:
        since_bound = _bound("since", since)
        filters: list[dict[str, Any]] = [{"range": {"created": {"gte": since_bound}}}] if since_bound else []
        filters += [{"term": {key: value}} for key, value in (("desk", desk), ("event_id", event_id)) if value]
        query = {"bool": {"filter": filters}} if filters else None
        hits = self._scan_fresh("list alerts", self._state["alerts"], query=query,
                                sort=[{"created": "desc"}, {"seq": "desc"}], limit=limit)
        return [self._alert(h["_source"]) for h in hits]

    def enqueue_delivery(self, alert_id: str, channel: str) -> None:
        self._create(f"enqueue delivery {alert_id}/{channel}", self._state["outbox"], _hash_id(alert_id, channel),
                     {"alert_id": alert_id, "channel": channel, "attempts": 0, "last_error": None,
                      "queued": _now(), "last_attempt": None, "delivered": None, "seq": _next_seq()})

    def pending_deliveries(self, limit: int = 100) -> list[tuple[str, str, int]]:
        hits = self._scan_fresh("pending deliveries", self._state["outbox"],
                                query={"bool": {"must_not": [{"exists": {"field": "delivered"}}]}},
                                sort=[{"seq": "asc"}, {"channel": "asc"}], limit=limit,
                                keep=lambda doc: not doc.get("delivered"))
        return [(h["_source"]["alert_id"], h["_source"]["channel"], int(h["_source"].get("attempts") or 0))
                for h in hits]

    def claim_delivery(self, alert_id: str, channel: str, claimer: str, lease: float) -> bool:
        """Read the row, then write the claim only if nobody changed it since (if_seq_no /
        if_primary_term): of two racing cycles one write wins, the other re-reads and sees the claim.
        claimed_until is Unix seconds from the claimer's clock (leases are minutes, so small
        clock skew between workers only shortens or stretches a lease a little)."""
        now = time.time()
        won = False

        def change(doc: dict) -> dict | None:
            nonlocal won
            won = False
            if doc.get("delivered"):
                return None
            holder, until = doc.get("claimed_by"), float(doc.get("claimed_until") or 0.0)
            if holder and holder != claimer and until > now and not claimer_is_gone(holder):
                return None
            doc["claimed_by"] = claimer
            doc["claimed_until"] = now + max(0.0, float(lease))
            won = True
            return doc

        self._cas(f"claim delivery {alert_id}/{channel}", self._state["outbox"], _hash_id(alert_id, channel), change)
        return won

    def mark_delivered(self, alert_id: str, channel: str) -> None:
        now = _now()

        def change(doc: dict) -> dict | None:
            if doc.get("delivered"):
                return None
            doc["delivered"] = now
            doc["last_attempt"] = now
            doc["claimed_by"] = doc["claimed_until"] = None
            return doc

        self._cas(f"mark delivered {alert_id}/{channel}", self._state["outbox"], _hash_id(alert_id, channel), change)

    def mark_delivery_failed(self, alert_id: str, channel: str, error: str) -> None:
        message = " ".join(str(error).split())[:1000]
        now = _now()

        def change(doc: dict) -> dict | None:
            if doc.get("delivered"):
                return None
            doc["attempts"] = int(doc.get("attempts") or 0) + 1
            doc["last_error"] = message
            doc["last_attempt"] = now
            doc["claimed_by"] = doc["claimed_until"] = None
            return doc

        self._cas(f"mark delivery failed {alert_id}/{channel}", self._state["outbox"],
                  _hash_id(alert_id, channel), change)

    def delivery_status(self, alert_id: str) -> list[dict[str, Any]]:
        """Every outbox row of one alert (for the CLI and the dashboard; not in the protocol)."""
        hits = self._scan_fresh("delivery status", self._state["outbox"], query={"term": {"alert_id": alert_id}},
                                sort=[{"seq": "asc"}, {"channel": "asc"}])
        keys = ("alert_id", "channel", "attempts", "last_error", "queued", "last_attempt", "delivered",
                "claimed_by", "claimed_until")
        return [{k: h["_source"].get(k) for k in keys} for h in hits]

    # --- export / import of the state tables (newsmon reindex) ------------------------------------

    def _export_scan(self, what: str, index: str, *, query: dict | None, sort: list) -> Iterator[dict]:
        """An export's scan: refresh first (updates and seen marks do not wait for one), then read
        one point in time. Without the right to refresh (a writer role), it reads the last refresh."""
        self._call(what, self._ignoring(401, 403).indices.refresh, index=index)
        return self._scan(what, index, query=query, sort=sort, consistent=True)

    def export_state(self, table: str) -> Iterator[dict]:
        """Rows of one state table in the SQLite store's column layout, in creation order."""
        if table == "feed_states":
            for state in self.list_feed_states():
                yield asdict(state)
        elif table == "seen_items":
            for hit in self._export_scan("export seen items", self._state["seen"], query=None,
                                         sort=[{"feed_id": "asc"}, {"item_id": "asc"}]):
                yield {k: hit["_source"].get(k) for k in ("feed_id", "item_id", "seen")}
        elif table == "inbox":
            for hit in self._export_scan("export inbox", self._state["inbox"], query=None,
                                         sort=[{"seq": "asc"}, {"key": "asc"}]):
                doc = hit["_source"]
                yield {k: doc.get(k) for k in ("key", "feed_id", "item_id", "item", "queued")}
        elif table == "alerts":
            for hit in self._export_scan("export alerts", self._state["alerts"], query=None,
                                         sort=[{"seq": "asc"}, {"id": "asc"}]):
                yield {k: hit["_source"][k] for k in _ALERT_FIELDS if k in hit["_source"]}  # absent: default
        elif table == "deliveries":
            for hit in self._export_scan("export deliveries", self._state["outbox"], query=None,
                                         sort=[{"seq": "asc"}, {"channel": "asc"}]):
                keys = ("alert_id", "channel", "attempts", "last_error", "queued", "last_attempt", "delivered")
                yield {k: hit["_source"].get(k) for k in keys}
        elif table == "stories":
            for hit in self._export_scan("export stories", self._state["stories"],
                                         query={"bool": {"must_not": [{"ids": {"values": list(LOCK_IDS)}}]}},
                                         sort=[{"created_seq": "asc"}, {"id": "asc"}]):
                doc = hit["_source"]
                yield {"id": doc["id"], "first_seen": doc.get("first_seen"), "copies": int(doc.get("copies") or 0),
                       "members": list(doc.get("members") or [])}
        elif table == "story_keys":
            for hit in self._export_scan("export story keys", self._state["story-keys"], query=None,
                                         sort=[{"story_id": "asc"}, {"key": "asc"}]):
                yield {"key": hit["_source"]["key"], "story_id": hit["_source"]["story_id"]}
        else:
            raise NewsmonError(f"unknown state table {table!r}")

    def import_state(self, table: str, rows: Iterable[dict]) -> int:
        """Write rows exported by either backend; rows already present are kept as they are
        (create-if-absent), so an interrupted copy can simply run again. Returns rows written."""
        rows = list(rows)
        if not rows:
            return 0
        if table == "feed_states":
            actions = [{"_op_type": "create", "_index": self._state["feeds"], "_id": _safe_id(r["feed_id"]),
                        "_source": {k: r.get(k) for k in _FEED_STATE_FIELDS}} for r in rows]
        elif table == "seen_items":
            actions = [{"_op_type": "create", "_index": self._state["seen"],
                        "_id": inbox_key(r["feed_id"], r["item_id"]),
                        "_source": {"feed_id": r["feed_id"], "item_id": r["item_id"], "seen": r.get("seen")}}
                       for r in rows]
        elif table == "inbox":
            actions = [{"_op_type": "create", "_index": self._state["inbox"], "_id": r["key"],
                        "_source": {"key": r["key"], "feed_id": r["feed_id"], "item_id": r["item_id"],
                                    "item": r["item"], "queued": r.get("queued"), "seq": _next_seq()}}
                       for r in rows]
        elif table == "alerts":
            actions = [{"_op_type": "create", "_index": self._state["alerts"], "_id": _safe_id(r["id"]),
                        "_source": {**{k: r[k] for k in _ALERT_FIELDS if k in r}, "seq": _next_seq()}}
                       for r in rows]
        elif table == "deliveries":
            actions = [{"_op_type": "create", "_index": self._state["outbox"],
                        "_id": _hash_id(r["alert_id"], r["channel"]),
                        "_source": {**{k: r.get(k) for k in ("alert_id", "channel", "attempts", "last_error",
                                                               "queued", "last_attempt", "delivered")},
                                    "seq": _next_seq()}} for r in rows]
        elif table == "stories":
            actions = [{"_op_type": "create", "_index": self._state["stories"], "_id": _safe_id(r["id"]),
                        "_source": {"id": r["id"], "first_seen": r.get("first_seen"), "created_seq": _next_seq(),
                                    "copies": int(r.get("copies") or len(r.get("members") or [])),
                                    "members": list(r.get("members") or [])}} for r in rows]
        elif table == "story_keys":
            actions = [{"_op_type": "create", "_index": self._state["story-keys"],
                        "_id": _hash_id(r["key"], r["story_id"]),
                        "_source": {"key": r["key"], "story_id": r["story_id"]}} for r in rows]
        else:
            raise NewsmonError(f"unknown state table {table!r}")
        results, errors = self._bulk(f"import {table}", actions, conflicts_ok=True)
        if errors:
            raise StoreError(f"store {self.url}: import {table} failed for {len(errors)} row(s): {errors[0]}")
        return sum(1 for ok, _op, info in results if ok and info.get("status") in (200, 201))


def _from_millis(value: Any):
    from datetime import UTC, datetime

    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


__all__ = [
    "BulkResult", "ElasticsearchStore", "EsConfig", "client_options_from_env", "compile_query", "config_dir",
    "from_connection_fields", "make_client", "open_store", "parse_query", "parse_url", "redact_url",
]

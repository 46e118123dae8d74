"""The embedded store: one SQLite file with an FTS5 index, so newsmon runs with zero services.

Concurrency model: WAL journal, one connection per thread (a single locked connection for
``:memory:``), every write in a short ``BEGIN IMMEDIATE`` transaction, and a busy timeout, so
threads of one process and two overlapping cycles (an Airflow retry next to a scheduled run)
queue for the write lock instead of failing or losing rows.

Durability: ``synchronous=NORMAL`` for everything (a crash of the process never loses a
commit; a power cut may lose the last few, always a suffix, so the inbox, feed state and
articles stay consistent with each other). Alerts and the delivery outbox commit with
``synchronous=FULL`` because they pair with something outside the file (an e-mail sent), and
forgetting that an alert went out would send it twice. A FULL commit also makes every earlier
WAL commit durable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import MISSING, asdict, fields
from typing import Any

from pipelines.errors import NewsmonError
from pipelines.models import (
    Alert,
    Article,
    DevelopmentEvent,
    FeedItem,
    FeedState,
    SearchHit,
    iso,
    parse_iso,
    utcnow,
)
from pipelines.store.base import StoreError, claimer_is_gone
from pipelines.store.search_query import parse_query

SCHEMA_VERSION = 5

# bm25 column weights: a term in the headline says far more about an article than one in the body.
TITLE_WEIGHT = 10.0
TEXT_WEIGHT = 1.0
SNIPPET_TOKENS = 24
PLAIN_SNIPPET_CHARS = 240
MAX_LIMIT = 10_000
IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit

# Random per process, so article text can never forge the markers that become <mark> tags.
_MARK_OPEN = "\x02" + secrets.token_hex(8) + "\x03"
_MARK_CLOSE = "\x02" + secrets.token_hex(8) + "\x04"

_SCHEMA_V1: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS articles (
        pk INTEGER PRIMARY KEY,            -- FTS5 content_rowid; stable across upserts
        id TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        original_url TEXT NOT NULL,
        feed_id TEXT NOT NULL,
        desk TEXT NOT NULL,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        story_id TEXT NOT NULL,
        language TEXT,
        author TEXT,
        published TEXT,                    -- as given
        fetched TEXT NOT NULL,
        event_time TEXT NOT NULL,          -- published, else fetched; normalised ISO UTC (Z)
        extraction_source TEXT NOT NULL,
        topics TEXT NOT NULL DEFAULT '[]',       -- JSON [TopicHit]
        entities TEXT NOT NULL DEFAULT '[]',     -- JSON
        places TEXT NOT NULL DEFAULT '[]',       -- JSON
        development TEXT,                        -- JSON Development or NULL
        relevant INTEGER NOT NULL DEFAULT 0,
        first_stored TEXT NOT NULL,
        last_stored TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS articles_event_time ON articles(event_time)",
    "CREATE INDEX IF NOT EXISTS articles_content_hash ON articles(content_hash)",
    "CREATE INDEX IF NOT EXISTS articles_desk_time ON articles(desk, event_time)",
    "CREATE INDEX IF NOT EXISTS articles_source_time ON articles(source, event_time)",
    """CREATE TABLE IF NOT EXISTS article_topics (
        article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        topic TEXT NOT NULL,
        score REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (article_id, topic)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS article_topics_topic ON article_topics(topic, article_id)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5(
        title, text, content='articles', content_rowid='pk',
        tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER IF NOT EXISTS articles_fts_insert AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts(rowid, title, text) VALUES (new.pk, new.title, new.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, text)
            VALUES ('delete', old.pk, old.title, old.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS articles_fts_update AFTER UPDATE OF title, text ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, text)
            VALUES ('delete', old.pk, old.title, old.text);
        INSERT INTO articles_fts(rowid, title, text) VALUES (new.pk, new.title, new.text);
    END""",
    """CREATE TABLE IF NOT EXISTS stories (
        seq INTEGER PRIMARY KEY,           -- creation order: the oldest story wins a shared key
        id TEXT NOT NULL UNIQUE,
        first_seen TEXT NOT NULL,
        copies INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS story_keys (
        key TEXT NOT NULL,
        story_id TEXT NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
        PRIMARY KEY (key, story_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS story_articles (
        story_id TEXT NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
        article_id TEXT NOT NULL,
        source TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        UNIQUE (story_id, article_id)
    )""",
    """CREATE TABLE IF NOT EXISTS feed_states (
        feed_id TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        last_polled TEXT,
        last_success TEXT,
        last_error TEXT,
        last_status INTEGER,
        items_total INTEGER NOT NULL DEFAULT 0,
        not_modified_count INTEGER NOT NULL DEFAULT 0,
        error_count INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS seen_items (
        feed_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        seen TEXT NOT NULL,
        PRIMARY KEY (feed_id, item_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS inbox (
        seq INTEGER PRIMARY KEY,           -- arrival order
        key TEXT NOT NULL UNIQUE,          -- inbox_key(feed_id, item_id)
        feed_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        item TEXT NOT NULL,                -- JSON FeedItem
        queued TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS alerts (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        rule_id TEXT NOT NULL,
        desk TEXT NOT NULL,
        article_id TEXT NOT NULL,
        story_id TEXT NOT NULL,
        title TEXT NOT NULL,
        url TEXT NOT NULL,
        source TEXT NOT NULL,
        development TEXT,
        topics TEXT NOT NULL DEFAULT '[]',
        matched TEXT NOT NULL,
        created TEXT NOT NULL,
        copies INTEGER NOT NULL DEFAULT 1,
        channels TEXT NOT NULL DEFAULT '[]',
        last_seen TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS alerts_created ON alerts(created)",
    # No foreign key to alerts: the Elasticsearch backend cannot enforce one, and the contract
    # must behave the same on both.
    """CREATE TABLE IF NOT EXISTS deliveries (
        seq INTEGER PRIMARY KEY,
        alert_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        queued TEXT NOT NULL,
        last_attempt TEXT,
        delivered TEXT,
        UNIQUE (alert_id, channel)
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(seq) WHERE delivered IS NULL",
)

# v2: FeedState.retry_after (a feed's Retry-After, honoured by the cycle).
_SCHEMA_V2: tuple[str, ...] = ("ALTER TABLE feed_states ADD COLUMN retry_after TEXT",)

# v3: the outbox claim (claim_delivery): who is sending a row and until when (Unix seconds), so two
# overlapping cycles never send one alert twice. NULL = unclaimed; existing rows start unclaimed.
_SCHEMA_V3: tuple[str, ...] = (
    "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT",
    "ALTER TABLE deliveries ADD COLUMN claimed_until REAL",
)

# v4: development events (one real-world development, however many outlets report it), the event an
# article reports, and the event alert's fields. Existing alerts read as keyword-rule ("story") alerts.
_SCHEMA_V4: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY,
        watch TEXT NOT NULL,
        family TEXT NOT NULL,
        type TEXT NOT NULL,
        opened TEXT NOT NULL,              -- normalised ISO UTC (Z), so string order is time order
        updated TEXT NOT NULL,
        status TEXT NOT NULL,
        event TEXT NOT NULL                -- JSON DevelopmentEvent, reports included
    )""",
    "CREATE INDEX IF NOT EXISTS events_watch_opened ON events(watch, opened)",
    "CREATE INDEX IF NOT EXISTS events_opened ON events(opened, id)",
    "ALTER TABLE articles ADD COLUMN event_id TEXT",
    "CREATE INDEX IF NOT EXISTS articles_event ON articles(event_id)",
    "ALTER TABLE alerts ADD COLUMN rules TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE alerts ADD COLUMN event_id TEXT",
    "ALTER TABLE alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'story'",
    "ALTER TABLE alerts ADD COLUMN escalation TEXT",
    "ALTER TABLE alerts ADD COLUMN published TEXT",
    "ALTER TABLE alerts ADD COLUMN first_seen TEXT",
    "ALTER TABLE alerts ADD COLUMN state_before TEXT",
    "ALTER TABLE alerts ADD COLUMN state_after TEXT",
    "ALTER TABLE alerts ADD COLUMN evidence TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE alerts ADD COLUMN confidence REAL",
    "CREATE INDEX IF NOT EXISTS alerts_event ON alerts(event_id)",
    "CREATE INDEX IF NOT EXISTS alerts_desk_created ON alerts(desk, created)",
)

# v5: feed health (FeedState.last_new_items, first_polled). An existing feed that ever brought items is
# counted from its last success (never earlier than the truth), one that never did from its last poll:
# upgrading never raises an outage the old store cannot show.
_SCHEMA_V5: tuple[str, ...] = (
    "ALTER TABLE feed_states ADD COLUMN last_new_items TEXT",
    "ALTER TABLE feed_states ADD COLUMN first_polled TEXT",
    "UPDATE feed_states SET last_new_items = last_success WHERE items_total > 0",
    "UPDATE feed_states SET first_polled = COALESCE(last_polled, last_success)",
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4,
                                           5: _SCHEMA_V5}

_ARTICLE_COLUMNS = (
    "id", "url", "original_url", "feed_id", "desk", "source", "title", "text", "content_hash",
    "story_id", "language", "author", "published", "fetched", "event_time", "extraction_source",
    "topics", "entities", "places", "development", "relevant", "first_stored", "last_stored", "event_id",
)
_ARTICLE_UPDATE_COLUMNS = tuple(c for c in _ARTICLE_COLUMNS if c not in ("id", "first_stored"))
_FEED_STATE_FIELDS = tuple(f.name for f in fields(FeedState))
_FEED_ITEM_FIELDS = frozenset(f.name for f in fields(FeedItem))
_ALERT_COLUMNS = (
    "id", "rule_id", "desk", "article_id", "story_id", "title", "url", "source", "development",
    "topics", "matched", "created", "copies", "channels", "last_seen", "rules", "event_id", "kind",
    "escalation", "published", "first_seen", "state_before", "state_after", "evidence", "confidence",
)
_ALERT_LIST_COLUMNS = ("topics", "channels", "rules")  # JSON text in the table, lists in an Alert
_ALERT_DEFAULTS = {f.name: f.default for f in fields(Alert) if f.default is not MISSING}
_EVENT_COLUMNS = ("id", "watch", "family", "type", "opened", "updated", "status", "event")
COLLAPSE_MODES = (None, "story", "event")


def check_collapse(collapse: str | None) -> str | None:
    """The search collapse mode, refused early when unknown (both backends share the rule)."""
    if collapse not in COLLAPSE_MODES:
        raise NewsmonError(f"collapse={collapse!r} must be one of story, event (or none)")
    return collapse


def inbox_key(feed_id: str, item_id: str) -> str:
    """Fixed-length key of one feed item in the inbox (feed and item ids can be long URLs)."""
    return hashlib.sha256(f"{feed_id}\x1f{item_id}".encode()).hexdigest()[:32]


def normalise_time(value: str | None) -> str | None:
    """ISO-8601 (date or datetime, any offset) -> 'YYYY-MM-DDTHH:MM:SSZ'; None when unparseable.

    One format makes string comparison equal time comparison, in SQL and in Python."""
    return iso(parse_iso(value))


def _bound(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    normalised = normalise_time(value)
    if normalised is None:
        raise NewsmonError(f"{name}={value!r} is not an ISO-8601 date or datetime")
    return normalised


def _chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def alert_row(data: dict[str, Any], now: str) -> dict[str, Any]:
    """An alerts table row from an Alert's fields (or a reindexed row): list columns as JSON text,
    missing or null fields as the Alert defaults, so rows from an older store fill in."""
    row = {}
    for column in _ALERT_COLUMNS:
        value = data.get(column)
        row[column] = _ALERT_DEFAULTS.get(column) if value is None else value
    for column in _ALERT_LIST_COLUMNS:
        row[column] = _json_text(list(data.get(column) or []))
    row["created"] = data.get("created") or now
    row["copies"] = max(1, int(data.get("copies") or 1))
    row["last_seen"] = data.get("last_seen") or row["created"]
    return row


def alert_fields(row: sqlite3.Row) -> dict[str, Any]:
    """An alerts table row back as plain values (list columns decoded), last_seen included."""
    data = {key: row[key] for key in row.keys()}
    for column in _ALERT_LIST_COLUMNS:
        data[column] = json.loads(data.get(column) or "[]")
    return data


# --- user query -> safe FTS5 expression -------------------------------------------------------

def _fts(node: tuple) -> str:
    """FTS5 MATCH text of a search_query AST node: every term quoted, so '-', ':', '^', '*' inside
    words are literal; FTS5 has no bare negation, so a negated node is a NOT after the others."""
    kind = node[0]
    if kind == "word":
        quoted = '"' + node[1].replace('"', '""') + '"'
        return quoted + "*" if node[2] else quoted
    if kind == "field":
        return f"{node[1]} : ({_fts(node[2])})"
    if kind == "or":
        return _join("OR", [_fts(part) for part in node[1]])
    expression = _join("AND", [_fts(part) for part in node[1]])
    for excluded in node[2]:
        expression = f"({expression} NOT {_fts(excluded)})"
    return expression


def _join(operator: str, parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + f" {operator} ".join(parts) + ")"


def fts_query(user_query: str | None) -> str | None:
    """Translate what a user typed into a safe FTS5 MATCH expression; None when it has no terms.

    Every term is quoted (so '-', ':', '^', '*' in words are literal), AND/OR/NOT (upper case),
    parentheses and "phrases" keep their meaning, title:/text: restrict to a column,
    other field:value parts are dropped, a trailing * asks for a prefix."""
    tree = parse_query(user_query)  # NULs become spaces there: FTS5 reads one as the end of the string
    return _fts(tree) if tree is not None else None


def fts_fallback_query(user_query: str | None) -> str | None:
    """All words quoted and ANDed: used if the translated expression is refused anyway."""
    words = re.findall(r"\w+", user_query or "")
    return " ".join(f'"{w}"' for w in words) or None


def _is_query_error(err: sqlite3.Error) -> bool:
    message = str(err).lower()
    return message.startswith("fts5:") or any(
        part in message for part in ("syntax error", "no such column", "unterminated string",
                                     "unknown special query", "malformed match")
    )


def _highlighted(raw: str) -> str:
    """Escape everything, then turn the snippet() markers into <mark> tags."""
    return html.escape(raw).replace(_MARK_OPEN, "<mark>").replace(_MARK_CLOSE, "</mark>")


def _plain_snippet(text: str) -> str:
    if len(text) <= PLAIN_SNIPPET_CHARS:
        return html.escape(text)
    cut = text[:PLAIN_SNIPPET_CHARS]
    space = cut.rfind(" ")
    if space > PLAIN_SNIPPET_CHARS // 2:
        cut = cut[:space]
    return html.escape(cut) + "…"


# search(collapse=...): the groups a hit belongs to. PARTITION BY treats NULLs as equal, so an
# article without an event is kept apart by its own pk.
_COLLAPSE_KEYS = {"story": "story_id", "event": "event_id, CASE WHEN event_id IS NULL THEN pk END"}


def _ranked(select: str, order: str, collapse: str | None) -> str:
    """select ordered and paged (LIMIT ? OFFSET ?); collapsed, only each group's first row in that
    order survives, before paging."""
    if collapse is None:
        return f"{select} ORDER BY {order} LIMIT ? OFFSET ?"
    return (
        f"SELECT * FROM (SELECT hit.*, row_number() OVER (PARTITION BY {_COLLAPSE_KEYS[collapse]} "
        f"ORDER BY {order}) AS nth FROM ({select}) hit) WHERE nth = 1 ORDER BY {order} LIMIT ? OFFSET ?"
    )


# --- the store ----------------------------------------------------------------------------------


class SQLiteStore:
    """Store protocol on one SQLite file (articles, FTS index, feeds, inbox, alerts, outbox, stories)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0, url: str | None = None):
        self.path = os.fspath(path)
        self.memory = self.path == ":memory:" or self.path == ""
        if self.memory:
            self.path = ":memory:"
        self.url = url or f"sqlite:///{self.path}"
        self.busy_timeout = float(busy_timeout)
        self._closed = False
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        # :memory: is private to one connection, so all threads share it behind a lock;
        # a file gets one connection per thread and SQLite's own locking.
        self._memory_lock = threading.RLock() if self.memory else None
        self._events_mutex = threading.Lock()
        if not self.memory:
            parent = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as err:
                raise StoreError(f"store {self.path}: cannot create directory {parent}: {err.strerror}") from err
        self.journal_mode = ""
        self._migrate()

    # --- connections and transactions -----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as err:
            raise self._error("open", err) from err
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {max(0, int(self.busy_timeout * 1000))}")
            conn.execute("PRAGMA foreign_keys = ON")
            self.journal_mode = self._wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as err:
            conn.close()
            raise self._error("open", err) from err
        return conn

    def _wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL, waiting out a process that is creating or migrating the same file: SQLite
        does not call the busy handler for a journal-mode change, so "locked" comes back at once."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"store {self.path}: already closed")
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._registry_lock:
            if self.memory and self._connections:
                conn = self._connections[0][1]
            else:
                # Connections of threads that have ended are closed here, not leaked.
                alive = []
                for thread, old in self._connections:
                    if thread.is_alive():
                        alive.append((thread, old))
                    else:
                        old.close()
                self._connections = alive
                conn = self._connect()
                self._connections.append((threading.current_thread(), conn))
        self._local.conn = conn
        return conn

    def _guard(self):
        return self._memory_lock if self._memory_lock is not None else nullcontext()

    def _error(self, what: str, err: BaseException) -> StoreError:
        message = " ".join(str(err).split()) or type(err).__name__
        return StoreError(f"store {self.path}: {what} failed: {message}")

    @staticmethod
    def _maps_to_store_error(err: BaseException) -> bool:
        # Locked, busy, I/O, full, read-only, not a database: the caller may retry or must
        # fix the file. Integrity and programming errors are bugs and stay what they are.
        return isinstance(err, sqlite3.OperationalError) or type(err) is sqlite3.DatabaseError

    @contextmanager
    def _write(self, what: str, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One short write transaction; rolled back entirely on any error."""
        with self._guard():
            conn = self._conn()
            try:
                if durable:
                    conn.execute("PRAGMA synchronous = FULL")
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                self._restore_sync(conn, durable)
                raise self._error(what, err) from err
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as err:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is what the caller needs to see
                if self._maps_to_store_error(err):
                    raise self._error(what, err) from err
                raise
            finally:
                self._restore_sync(conn, durable)

    @staticmethod
    def _restore_sync(conn: sqlite3.Connection, durable: bool) -> None:
        if durable:
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error:
                pass

    @contextmanager
    def _read(self, what: str, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """Reads; snapshot=True wraps several statements in one read transaction."""
        with self._guard():
            conn = self._conn()
            try:
                if snapshot:
                    conn.execute("BEGIN")
                yield conn
                if snapshot:
                    conn.execute("COMMIT")
            except BaseException as err:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if self._maps_to_store_error(err):
                    raise self._error(what, err) from err
                raise

    def _migrate(self) -> None:
        with self._read("read schema version") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self._write("create schema") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path}: schema version {version} is newer than this newsmon "
                    f"supports ({SCHEMA_VERSION}); upgrade newsmon"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    def schema_version(self) -> int:
        with self._read("read schema version") as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._registry_lock:
            self._closed = True
            for _thread, conn in self._connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._connections = []
        self._local = threading.local()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # --- articles -------------------------------------------------------------------------

    @staticmethod
    def _article_row(article: Article, now: str) -> dict[str, Any]:
        published = article.published or None
        event_time = normalise_time(published) or normalise_time(article.fetched) or article.fetched or now
        return {
            "id": article.id,
            "url": article.url,
            "original_url": article.original_url,
            "feed_id": article.feed_id,
            "desk": article.desk,
            "source": article.source,
            "title": article.title or "",
            "text": article.text or "",
            "content_hash": article.content_hash,
            "story_id": article.story_id,
            "language": article.language,
            "author": article.author,
            "published": published,
            "fetched": article.fetched or now,
            "event_time": event_time,
            "extraction_source": article.extraction_source,
            "topics": _json_text([asdict(t) for t in article.topics]),
            "entities": _json_text(article.entities),
            "places": _json_text(article.places),
            "development": _json_text(asdict(article.development)) if article.development else None,
            "relevant": 1 if article.relevant else 0,
            "first_stored": now,
            "last_stored": now,
            "event_id": article.event_id or None,
        }

    @staticmethod
    def _row_article(row: sqlite3.Row) -> Article:
        data = {key: row[key] for key in row.keys() if key in Article.__dataclass_fields__}
        data["topics"] = json.loads(row["topics"] or "[]")
        data["entities"] = json.loads(row["entities"] or "[]")
        data["places"] = json.loads(row["places"] or "[]")
        data["development"] = json.loads(row["development"]) if row["development"] else None
        data["relevant"] = bool(row["relevant"])
        return Article.from_dict(data)

    def upsert_article(self, article: Article) -> bool:
        row = self._article_row(article, iso(utcnow()) or "")
        # Serialise before the transaction so bad data fails without touching the file.
        topic_rows = [(article.id, t.id, float(t.score or 0.0)) for t in article.topics]
        columns = ", ".join(_ARTICLE_COLUMNS)
        placeholders = ", ".join(f":{c}" for c in _ARTICLE_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ARTICLE_UPDATE_COLUMNS)
        with self._write(f"upsert article {article.id}") as conn:
            existed = conn.execute("SELECT 1 FROM articles WHERE id = ?", (article.id,)).fetchone()
            conn.execute(
                f"INSERT INTO articles ({columns}) VALUES ({placeholders}) "
                f"ON CONFLICT(id) DO UPDATE SET {updates}",
                row,
            )
            conn.execute("DELETE FROM article_topics WHERE article_id = ?", (article.id,))
            conn.executemany(
                "INSERT INTO article_topics (article_id, topic, score) VALUES (?, ?, ?) "
                "ON CONFLICT(article_id, topic) DO UPDATE SET score = max(score, excluded.score)",
                topic_rows,
            )
        return existed is None

    def get_article(self, article_id: str) -> Article | None:
        with self._read("get article") as conn:
            row = conn.execute("SELECT * FROM articles WHERE id = ?", (article_id,)).fetchone()
        return self._row_article(row) if row else None

    def has_article(self, article_id: str) -> bool:
        with self._read("has article") as conn:
            return conn.execute("SELECT 1 FROM articles WHERE id = ?", (article_id,)).fetchone() is not None

    def find_by_content_hash(self, content_hash: str) -> str | None:
        with self._read("find by content hash") as conn:
            row = conn.execute(
                "SELECT id FROM articles WHERE content_hash = ? ORDER BY pk LIMIT 1", (content_hash,)
            ).fetchone()
        return row["id"] if row else None

    def count_articles(self) -> int:
        with self._read("count articles") as conn:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]

    def iter_articles(self, after_id: str | None = None, batch: int = 500) -> list[Article]:
        batch = max(1, int(batch))
        with self._read("iterate articles") as conn:
            rows = conn.execute(
                "SELECT * FROM articles WHERE id > ? ORDER BY id LIMIT ?", (after_id or "", batch)
            ).fetchall()
        return [self._row_article(r) for r in rows]

    def rebuild_index(self) -> None:
        """Rebuild the FTS index from the articles table (repair after manual edits)."""
        with self._write("rebuild index") as conn:
            conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('rebuild')")

    # --- stories ---------------------------------------------------------------------------

    def story_for_keys(self, keys: list[str]) -> str | None:
        with self._read("story for keys", snapshot=True) as conn:
            return self._oldest_story(conn, list(dict.fromkeys(keys)))

    @staticmethod
    def _oldest_story(conn: sqlite3.Connection, keys: list[str]) -> str | None:
        """The oldest story (creation order) owning any of these keys, read on this connection."""
        best: tuple[int, str] | None = None
        for chunk in _chunks(keys):
            row = conn.execute(
                "SELECT s.seq, s.id FROM story_keys k JOIN stories s ON s.id = k.story_id "
                f"WHERE k.key IN ({_marks(len(chunk))}) ORDER BY s.seq LIMIT 1",
                tuple(chunk),
            ).fetchone()
            if row and (best is None or row["seq"] < best[0]):
                best = (row["seq"], row["id"])
        return best[1] if best else None

    @contextlib.contextmanager
    def events_lock(self) -> Iterator[None]:
        """Hold the events lock: one worker at a time reads the events, matches a report and saves
        (EventBook.attach), so two processes never open two events for one development. An flock on
        a file beside the database (the kernel drops it if its holder dies); in memory, a thread lock."""
        if self.memory:
            with self._events_mutex:
                yield
            return
        lock_path = self.path + ".events-lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StoreError(f"store {self.path}: cannot open the events lock {lock_path}: {err.strerror}") from err
        try:
            wait = max(self.busy_timeout, 1.0)
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreError(f"store {self.path}: the events lock {lock_path} was held for more than "
                                         f"{wait:g} s") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # releases the lock

    def assign_story(self, story_id: str, keys: list[str]) -> str:
        """Read, check and write in one BEGIN IMMEDIATE transaction: a second writer waits for the
        lock and then sees the first one's keys, so it joins that story instead of starting another."""
        keys = list(dict.fromkeys(keys))
        now = iso(utcnow()) or ""
        with self._write(f"assign story for {story_id}") as conn:
            chosen = self._oldest_story(conn, keys) or story_id
            self._ensure_story(conn, chosen, now)
            conn.executemany(
                "INSERT INTO story_keys (key, story_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(key, chosen) for key in keys],
            )
        return chosen

    @staticmethod
    def _ensure_story(conn: sqlite3.Connection, story_id: str, now: str) -> None:
        conn.execute(
            "INSERT INTO stories (id, first_seen, copies) VALUES (?, ?, 0) ON CONFLICT(id) DO NOTHING",
            (story_id, now),
        )

    def add_story_keys(self, story_id: str, keys: list[str]) -> None:
        now = iso(utcnow()) or ""
        with self._write(f"add keys to story {story_id}") as conn:
            self._ensure_story(conn, story_id, now)
            conn.executemany(
                "INSERT INTO story_keys (key, story_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(key, story_id) for key in dict.fromkeys(keys)],
            )

    def bump_story(self, story_id: str, article_id: str, source: str) -> int:
        """Idempotent per (story, article): reprocessing an article after a crash counts it once."""
        now = iso(utcnow()) or ""
        with self._write(f"bump story {story_id}") as conn:
            self._ensure_story(conn, story_id, now)
            added = conn.execute(
                "INSERT INTO story_articles (story_id, article_id, source, first_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(story_id, article_id) DO NOTHING",
                (story_id, article_id, source, now),
            ).rowcount
            if added:
                conn.execute("UPDATE stories SET copies = copies + 1 WHERE id = ?", (story_id,))
            return conn.execute("SELECT copies FROM stories WHERE id = ?", (story_id,)).fetchone()[0]

    def get_story(self, story_id: str) -> dict | None:
        with self._read("get story", snapshot=True) as conn:
            story = conn.execute(
                "SELECT id, first_seen, copies FROM stories WHERE id = ?", (story_id,)
            ).fetchone()
            if story is None:
                return None
            members = conn.execute(
                "SELECT article_id, source FROM story_articles WHERE story_id = ? ORDER BY rowid",
                (story_id,),
            ).fetchall()
        return {
            "id": story["id"],
            "first_seen": story["first_seen"],
            "copies": story["copies"],
            "articles": [m["article_id"] for m in members],
            "sources": list(dict.fromkeys(m["source"] for m in members)),
        }

    # --- search and counts -------------------------------------------------------------------

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
        """Full-text search plus filters. since is inclusive, until exclusive (on published,
        else fetched). A query without searchable terms ("AND (((") means filters only.
        collapse keeps the best-ranked hit per story or event; limit and offset page the groups."""
        collapse = check_collapse(collapse)
        since_bound, until_bound = _bound("since", since), _bound("until", until)
        limit = max(0, min(int(limit), MAX_LIMIT))
        offset = max(0, int(offset))
        conditions: list[str] = []
        params: list[Any] = []
        if topic:
            conditions.append("EXISTS (SELECT 1 FROM article_topics t WHERE t.article_id = a.id AND t.topic = ?)")
            params.append(topic)
        for column, value in (("desk", desk), ("source", source), ("language", language)):
            if value:
                conditions.append(f"a.{column} = ?")
                params.append(value)
        if since_bound:
            conditions.append("a.event_time >= ?")
            params.append(since_bound)
        if until_bound:
            conditions.append("a.event_time < ?")
            params.append(until_bound)
        if limit == 0:
            return []

        expression = fts_query(query)
        if expression is None:
            where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = _ranked(f"SELECT a.* FROM articles a {where}", "event_time DESC, id", collapse)
            with self._read("search") as conn:
                rows = conn.execute(sql, (*params, limit, offset)).fetchall()
            return [SearchHit(article=self._row_article(r), score=0.0, snippet=_plain_snippet(r["text"]))
                    for r in rows]

        extra = "".join(f" AND {c}" for c in conditions)
        sql = _ranked(
            f"SELECT a.*, bm25(articles_fts, {TITLE_WEIGHT}, {TEXT_WEIGHT}) AS rank, "
            f"snippet(articles_fts, -1, ?, ?, '…', {SNIPPET_TOKENS}) AS snip "
            "FROM articles_fts JOIN articles a ON a.pk = articles_fts.rowid "
            f"WHERE articles_fts MATCH ?{extra}",
            "rank, event_time DESC, id", collapse,
        )
        rows = None
        for candidate in (expression, fts_fallback_query(query)):
            if candidate is None:
                break
            try:
                with self._guard():
                    conn = self._conn()
                    rows = conn.execute(
                        sql, (_MARK_OPEN, _MARK_CLOSE, candidate, *params, limit, offset)
                    ).fetchall()
                break
            except sqlite3.OperationalError as err:
                if not _is_query_error(err):
                    raise self._error("search", err) from err
        if rows is None:
            return []  # even the plain-words form was refused: nothing to find, not a crash
        return [
            SearchHit(article=self._row_article(r), score=-float(r["rank"]), snippet=_highlighted(r["snip"] or ""))
            for r in rows
        ]

    def topic_counts(self, since: str | None = None, until: str | None = None) -> list[dict]:
        since_bound, until_bound = _bound("since", since), _bound("until", until)
        conditions, params = [], []
        if since_bound:
            conditions.append("a.event_time >= ?")
            params.append(since_bound)
        if until_bound:
            conditions.append("a.event_time < ?")
            params.append(until_bound)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._read("topic counts") as conn:
            rows = conn.execute(
                "SELECT t.topic AS topic, substr(a.event_time, 1, 13) || ':00:00Z' AS hour, count(*) AS count "
                f"FROM article_topics t JOIN articles a ON a.id = t.article_id {where} "
                "GROUP BY t.topic, hour ORDER BY hour, t.topic",
                params,
            ).fetchall()
        return [{"topic": r["topic"], "hour": r["hour"], "count": r["count"]} for r in rows]

    # --- feed state and seen items -----------------------------------------------------------

    def get_feed_state(self, feed_id: str) -> FeedState | None:
        with self._read("get feed state") as conn:
            row = conn.execute("SELECT * FROM feed_states WHERE feed_id = ?", (feed_id,)).fetchone()
        return FeedState(**{k: row[k] for k in _FEED_STATE_FIELDS}) if row else None

    def save_feed_state(self, state: FeedState) -> None:
        columns = ", ".join(_FEED_STATE_FIELDS)
        values = ", ".join(f":{f}" for f in _FEED_STATE_FIELDS)
        updates = ", ".join(f"{f} = excluded.{f}" for f in _FEED_STATE_FIELDS if f != "feed_id")
        with self._write(f"save feed state {state.feed_id}") as conn:
            conn.execute(
                f"INSERT INTO feed_states ({columns}) VALUES ({values}) "
                f"ON CONFLICT(feed_id) DO UPDATE SET {updates}",
                asdict(state),
            )

    def list_feed_states(self) -> list[FeedState]:
        with self._read("list feed states") as conn:
            rows = conn.execute("SELECT * FROM feed_states ORDER BY feed_id").fetchall()
        return [FeedState(**{k: r[k] for k in _FEED_STATE_FIELDS}) for r in rows]

    def seen_items(self, feed_id: str, item_ids: list[str]) -> set[str]:
        ids = list(dict.fromkeys(item_ids))
        seen: set[str] = set()
        with self._read("seen items", snapshot=True) as conn:
            for chunk in _chunks(ids):
                rows = conn.execute(
                    f"SELECT item_id FROM seen_items WHERE feed_id = ? AND item_id IN ({_marks(len(chunk))})",
                    (feed_id, *chunk),
                ).fetchall()
                seen.update(r["item_id"] for r in rows)
        return seen

    def mark_items_seen(self, feed_id: str, item_ids: list[str]) -> None:
        now = iso(utcnow()) or ""
        with self._write(f"mark items seen for feed {feed_id}") as conn:
            conn.executemany(
                "INSERT INTO seen_items (feed_id, item_id, seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(feed_id, item_id, now) for item_id in dict.fromkeys(item_ids)],
            )

    # --- inbox ---------------------------------------------------------------------------------

    @staticmethod
    def _row_item(row: sqlite3.Row) -> tuple[str, FeedItem]:
        data = json.loads(row["item"])
        return row["key"], FeedItem(**{k: v for k, v in data.items() if k in _FEED_ITEM_FIELDS})

    def spool_items(self, items: list[FeedItem]) -> int:
        now = iso(utcnow()) or ""
        rows = [
            (inbox_key(item.feed_id, item.item_id), item.feed_id, item.item_id,
             _json_text(asdict(item)), now, item.feed_id, item.item_id)
            for item in items
        ]
        queued = 0
        with self._write("spool feed items") as conn:
            for row in rows:
                queued += conn.execute(
                    "INSERT INTO inbox (key, feed_id, item_id, item, queued) SELECT ?, ?, ?, ?, ? "
                    "WHERE NOT EXISTS (SELECT 1 FROM seen_items WHERE feed_id = ? AND item_id = ?) "
                    "ON CONFLICT(key) DO NOTHING",
                    row,
                ).rowcount
        return queued

    def pending_items(self, limit: int = 1000) -> list[tuple[str, FeedItem]]:
        """Round-robin by feed: each feed's n-th oldest item ranks n (ties in arrival order)."""
        with self._read("pending items") as conn:
            rows = conn.execute(
                "SELECT i.key, i.item FROM (SELECT seq, row_number() OVER (PARTITION BY feed_id ORDER BY seq) "
                "AS nth FROM inbox) r JOIN inbox i ON i.seq = r.seq ORDER BY r.nth, r.seq LIMIT ?",
                (max(0, int(limit)),),
            ).fetchall()
        return [self._row_item(r) for r in rows]

    def get_items(self, keys: list[str]) -> list[tuple[str, FeedItem]]:
        """Items still in the inbox, in arrival order; finished or unknown keys are left out."""
        found: list[tuple[int, sqlite3.Row]] = []
        with self._read("get items", snapshot=True) as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                rows = conn.execute(
                    f"SELECT seq, key, item FROM inbox WHERE key IN ({_marks(len(chunk))})", tuple(chunk)
                ).fetchall()
                found.extend((r["seq"], r) for r in rows)
        found.sort(key=lambda pair: pair[0])
        return [self._row_item(r) for _seq, r in found]

    def finish_items(self, keys: list[str]) -> None:
        now = iso(utcnow()) or ""
        with self._write("finish inbox items") as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                marks = _marks(len(chunk))
                conn.execute(
                    "INSERT INTO seen_items (feed_id, item_id, seen) "
                    f"SELECT feed_id, item_id, ? FROM inbox WHERE key IN ({marks}) ON CONFLICT DO NOTHING",
                    (now, *chunk),
                )
                conn.execute(f"DELETE FROM inbox WHERE key IN ({marks})", tuple(chunk))

    # --- development events -------------------------------------------------------------------

    @staticmethod
    def _row_event(row: sqlite3.Row) -> DevelopmentEvent:
        return DevelopmentEvent.from_dict(json.loads(row["event"]))

    def save_event(self, event: DevelopmentEvent) -> None:
        row = {
            "id": event.id, "watch": event.watch, "family": event.family, "type": event.type,
            "opened": normalise_time(event.opened) or event.opened,
            "updated": normalise_time(event.updated) or event.updated,
            "status": event.status, "event": _json_text(event.to_dict()),
        }
        columns = ", ".join(_EVENT_COLUMNS)
        values = ", ".join(f":{c}" for c in _EVENT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _EVENT_COLUMNS if c != "id")
        with self._write(f"save event {event.id}") as conn:
            conn.execute(
                f"INSERT INTO events ({columns}) VALUES ({values}) ON CONFLICT(id) DO UPDATE SET {updates}", row
            )

    def get_event(self, event_id: str) -> DevelopmentEvent | None:
        with self._read("get event") as conn:
            row = conn.execute("SELECT event FROM events WHERE id = ?", (event_id,)).fetchone()
        return self._row_event(row) if row else None

    def list_events(self, *, watch: str | None = None, family: str | None = None, since: str | None = None,
                    until: str | None = None, limit: int = 1000, newest_first: bool = False) -> list[DevelopmentEvent]:
        """since and until are both inclusive, on `opened`."""
        since_bound, until_bound = _bound("since", since), _bound("until", until)
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (("watch", watch), ("family", family)):
            if value:
                conditions.append(f"{column} = ?")
                params.append(value)
        if since_bound:
            conditions.append("opened >= ?")
            params.append(since_bound)
        if until_bound:
            conditions.append("opened <= ?")
            params.append(until_bound)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        direction = "DESC" if newest_first else "ASC"
        with self._read("list events") as conn:
            rows = conn.execute(
                f"SELECT event FROM events {where} ORDER BY opened {direction}, id {direction} LIMIT ?",
                (*params, max(0, int(limit))),
            ).fetchall()
        return [self._row_event(r) for r in rows]

    def iter_events(self, after_id: str | None = None, batch: int = 500) -> list[DevelopmentEvent]:
        with self._read("iterate events") as conn:
            rows = conn.execute(
                "SELECT event FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id or "", max(1, int(batch)))
            ).fetchall()
        return [self._row_event(r) for r in rows]

    def count_events(self) -> int:
        with self._read("count events") as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def set_article_event(self, article_id: str, event_id: str | None) -> None:
        """An unknown article is left alone (nothing to attach), as on Elasticsearch."""
        with self._write(f"set event of article {article_id}") as conn:
            conn.execute("UPDATE articles SET event_id = ? WHERE id = ?", (event_id or None, article_id))

    # --- alerts and outbox ---------------------------------------------------------------------

    @staticmethod
    def _row_alert(row: sqlite3.Row) -> Alert:
        return Alert.from_dict(alert_fields(row))

    def record_alert(self, alert: Alert) -> bool:
        now = iso(utcnow()) or ""
        row = alert_row(asdict(alert), now)
        row["last_seen"] = now
        columns = ", ".join(_ALERT_COLUMNS)
        values = ", ".join(f":{c}" for c in _ALERT_COLUMNS)
        with self._write(f"record alert {alert.id}", durable=True) as conn:
            existed = conn.execute("SELECT 1 FROM alerts WHERE id = ?", (alert.id,)).fetchone()
            conn.execute(
                f"INSERT INTO alerts ({columns}) VALUES ({values}) "
                "ON CONFLICT(id) DO UPDATE SET copies = copies + 1, last_seen = excluded.last_seen",
                row,
            )
        return existed is None

    def get_alert(self, alert_id: str) -> Alert | None:
        with self._read("get alert") as conn:
            row = conn.execute(
                f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE id = ?", (alert_id,)
            ).fetchone()
        return self._row_alert(row) if row else None

    def list_alerts(self, since: str | None = None, limit: int = 100, *, desk: str | None = None,
                    event_id: str | None = None) -> list[Alert]:
        """Newest first by creation time; since is inclusive."""
        since_bound = _bound("since", since)
        conditions, params = [], []
        for clause, value in (("created >= ?", since_bound), ("desk = ?", desk), ("event_id = ?", event_id)):
            if value:
                conditions.append(clause)
                params.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._read("list alerts") as conn:
            rows = conn.execute(
                f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts {where} ORDER BY created DESC, seq DESC LIMIT ?",
                (*params, max(0, int(limit))),
            ).fetchall()
        return [self._row_alert(r) for r in rows]

    def enqueue_delivery(self, alert_id: str, channel: str) -> None:
        with self._write(f"enqueue delivery {alert_id}/{channel}", durable=True) as conn:
            conn.execute(
                "INSERT INTO deliveries (alert_id, channel, queued) VALUES (?, ?, ?) "
                "ON CONFLICT(alert_id, channel) DO NOTHING",
                (alert_id, channel, iso(utcnow())),
            )

    def pending_deliveries(self, limit: int = 100) -> list[tuple[str, str, int]]:
        with self._read("pending deliveries") as conn:
            rows = conn.execute(
                "SELECT alert_id, channel, attempts FROM deliveries WHERE delivered IS NULL ORDER BY seq LIMIT ?",
                (max(0, int(limit)),),
            ).fetchall()
        return [(r["alert_id"], r["channel"], r["attempts"]) for r in rows]

    def claim_delivery(self, alert_id: str, channel: str, claimer: str, lease: float) -> bool:
        """The row is read and claimed under one write lock (BEGIN IMMEDIATE), so of two racing
        cycles exactly one wins. Not a FULL-sync commit: a claim lost in a power cut belongs to a
        process that died with it, which is what an expired claim means anyway."""
        now = time.time()
        with self._write(f"claim delivery {alert_id}/{channel}") as conn:
            row = conn.execute(
                "SELECT claimed_by, claimed_until FROM deliveries "
                "WHERE alert_id = ? AND channel = ? AND delivered IS NULL",
                (alert_id, channel),
            ).fetchone()
            if row is None:
                return False
            holder, until = row["claimed_by"], row["claimed_until"]
            if holder and holder != claimer and (until or 0.0) > now and not claimer_is_gone(holder):
                return False
            conn.execute(
                "UPDATE deliveries SET claimed_by = ?, claimed_until = ? WHERE alert_id = ? AND channel = ?",
                (claimer, now + max(0.0, float(lease)), alert_id, channel),
            )
        return True

    def mark_delivered(self, alert_id: str, channel: str) -> None:
        now = iso(utcnow())
        with self._write(f"mark delivered {alert_id}/{channel}", durable=True) as conn:
            conn.execute(
                "UPDATE deliveries SET delivered = ?, last_attempt = ?, claimed_by = NULL, claimed_until = NULL "
                "WHERE alert_id = ? AND channel = ? AND delivered IS NULL",
                (now, now, alert_id, channel),
            )

    def mark_delivery_failed(self, alert_id: str, channel: str, error: str) -> None:
        message = " ".join(str(error).split())[:1000]
        with self._write(f"mark delivery failed {alert_id}/{channel}", durable=True) as conn:
            conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, last_attempt = ?, "
                "claimed_by = NULL, claimed_until = NULL WHERE alert_id = ? AND channel = ? AND delivered IS NULL",
                (message, iso(utcnow()), alert_id, channel),
            )

    def delivery_status(self, alert_id: str) -> list[dict[str, Any]]:
        """Every outbox row of one alert (for the CLI and the dashboard; not in the protocol)."""
        with self._read("delivery status") as conn:
            rows = conn.execute(
                "SELECT alert_id, channel, attempts, last_error, queued, last_attempt, delivered, "
                "claimed_by, claimed_until FROM deliveries WHERE alert_id = ? ORDER BY seq",
                (alert_id,),
            ).fetchall()
        return [dict(r) for r in rows]


__all__ = ["SQLiteStore", "SCHEMA_VERSION", "fts_query", "fts_fallback_query", "inbox_key", "normalise_time"]

"""`newsmon reindex --from URL --to URL`: copy a whole store to another backend (SQLite <-> Elasticsearch).

Articles go first, in id order and in batches (bulk on Elasticsearch); after every batch that was
written completely, a small checkpoint (var/reindex/<hash of the two URLs>.json, no credentials in
it) remembers the last id, so an interrupted copy resumes where it stopped. A batch with any
failed document stops the copy before the checkpoint moves, naming the document; running the
command again retries it. Development events follow the same way (by id, checkpointed, replacing
what the target has, as articles do). Then the state tables (feed state, seen items, inbox, alerts
and their outbox, stories and their keys) are copied create-if-absent, so repeating them is
harmless and nothing already in the target is overwritten. The checkpoint is removed when
everything is copied.

The store protocol has no way to list seen items, story keys or the outbox, so each backend here
gets an exporter/importer of those tables in one row layout (the SQLite store's columns).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import fields
from pathlib import Path
from typing import Any

from pipelines.errors import NewsmonError
from pipelines.models import FeedState
from pipelines.store import open_store
from pipelines.store.base import Store
from pipelines.store.sqlite import _ALERT_COLUMNS, SCHEMA_VERSION, alert_fields, alert_row

STATE_TABLES = ("feed_states", "seen_items", "inbox", "alerts", "deliveries", "stories", "story_keys")
DEFAULT_CHECKPOINT_DIR = Path("var") / "reindex"

Progress = Callable[[int, int], None]

_FEED_COLUMNS = tuple(f.name for f in fields(FeedState))  # the feed_states table follows the dataclass
_DELIVERY_COLUMNS = ("alert_id", "channel", "attempts", "last_error", "queued", "last_attempt", "delivered")


def _redact(url: str) -> str:
    from pipelines.store.elasticsearch import redact_url

    return redact_url(url)


# --- checkpoint -----------------------------------------------------------------------------------


class Checkpoint:
    """The resume point of one (from, to) copy, as JSON under var/reindex/."""

    def __init__(self, directory: str | os.PathLike[str], from_url: str, to_url: str):
        self.from_url, self.to_url = _redact(from_url), _redact(to_url)
        key = hashlib.sha256(f"{self.from_url}\n{self.to_url}".encode()).hexdigest()[:16]
        self.path = Path(directory) / f"{key}.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as err:
            raise NewsmonError(f"reindex checkpoint {self.path}: unreadable ({err}); delete it or use --restart") \
                from None
        if not isinstance(data, dict) or data.get("from") != self.from_url or data.get("to") != self.to_url:
            raise NewsmonError(f"reindex checkpoint {self.path}: belongs to another copy; delete it or use --restart")
        return data

    def save(self, **state: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"from": self.from_url, "to": self.to_url, **state}, indent=1),
                             encoding="utf-8")
        os.replace(temporary, self.path)  # never a half-written checkpoint

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# --- state tables ---------------------------------------------------------------------------------


class SqliteTables:
    """Export/import of the state tables of a file-backed SQLite store (at this newsmon's schema version)."""

    def __init__(self, store: Store):
        path = getattr(store, "path", None)
        if not path or getattr(store, "memory", False):
            raise NewsmonError(f"reindex: {store.url} is an in-memory SQLite store; copy from or to a file")
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:  # opening the store migrated it, so this is a newer newsmon's file
            conn.close()
            raise NewsmonError(f"reindex: {self.path} has schema version {version}; this newsmon copies "
                               f"version {SCHEMA_VERSION}")
        return conn

    def export_state(self, table: str) -> Iterator[dict]:
        queries = {
            "feed_states": f"SELECT {', '.join(_FEED_COLUMNS)} FROM feed_states ORDER BY feed_id",
            "seen_items": "SELECT feed_id, item_id, seen FROM seen_items ORDER BY feed_id, item_id",
            "inbox": "SELECT key, feed_id, item_id, item, queued FROM inbox ORDER BY seq",
            "alerts": f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts ORDER BY seq",
            "deliveries": f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries ORDER BY seq",
            "stories": "SELECT id, first_seen, copies FROM stories ORDER BY seq",
            "story_keys": "SELECT key, story_id FROM story_keys ORDER BY story_id, key",
        }
        if table not in queries:
            raise NewsmonError(f"unknown state table {table!r}")
        with closing(self._connect()) as conn:
            members: dict[str, list[dict]] = {}
            if table == "stories":
                for row in conn.execute("SELECT story_id, article_id, source, first_seen FROM story_articles "
                                        "ORDER BY rowid"):
                    members.setdefault(row["story_id"], []).append(
                        {"article_id": row["article_id"], "source": row["source"], "first_seen": row["first_seen"]})
            for row in conn.execute(queries[table]):
                data = alert_fields(row) if table == "alerts" else dict(row)
                if table == "inbox":
                    data["item"] = json.loads(data["item"])
                elif table == "stories":
                    data["members"] = members.get(data["id"], [])
                yield data

    def import_state(self, table: str, rows: Iterable[dict]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        written = 0
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    written += self._insert(conn, table, row)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return written

    @staticmethod
    def _insert(conn: sqlite3.Connection, table: str, row: dict) -> int:
        def insert(sql_table: str, columns: tuple[str, ...], values: dict) -> int:
            marks = ", ".join("?" * len(columns))
            return conn.execute(
                f"INSERT INTO {sql_table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                tuple(values.get(c) for c in columns),
            ).rowcount

        if table == "feed_states":
            values = {c: row.get(c) for c in _FEED_COLUMNS}
            for counter in ("items_total", "not_modified_count", "error_count"):
                values[counter] = values[counter] or 0
            return insert("feed_states", _FEED_COLUMNS, values)
        if table == "seen_items":
            return insert("seen_items", ("feed_id", "item_id", "seen"), {**row, "seen": row.get("seen") or ""})
        if table == "inbox":
            values = {**row, "item": json.dumps(row["item"], ensure_ascii=False), "queued": row.get("queued") or ""}
            return insert("inbox", ("key", "feed_id", "item_id", "item", "queued"), values)
        if table == "alerts":
            return insert("alerts", _ALERT_COLUMNS, alert_row(row, ""))
        if table == "deliveries":
            values = {c: row.get(c) for c in _DELIVERY_COLUMNS}
            values["attempts"] = int(values["attempts"] or 0)
            values["queued"] = values["queued"] or ""
            return insert("deliveries", _DELIVERY_COLUMNS, values)
        if table == "stories":
            members = row.get("members") or []
            added = insert("stories", ("id", "first_seen", "copies"),
                           {"id": row["id"], "first_seen": row.get("first_seen") or "",
                            "copies": int(row.get("copies") or len(members))})
            if added:
                for member in members:
                    insert("story_articles", ("story_id", "article_id", "source", "first_seen"),
                           {"story_id": row["id"], **member, "first_seen": member.get("first_seen") or ""})
            return added
        if table == "story_keys":
            return insert("story_keys", ("key", "story_id"), row)
        raise NewsmonError(f"unknown state table {table!r}")


def state_tables(store: Store):
    """The exporter/importer of a store's state tables."""
    if hasattr(store, "export_state") and hasattr(store, "import_state"):
        return store
    from pipelines.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SqliteTables(store)
    raise NewsmonError(f"reindex: cannot copy the state tables of {type(store).__name__} ({store.url})")


def _batched(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the copy -------------------------------------------------------------------------------------


def _write(target: Store, items: list, what: str) -> None:
    """Write one batch of articles or events, in bulk where the backend can (upsert_articles, save_events)."""
    bulk_name, one_name = {"article": ("upsert_articles", "upsert_article"),
                           "event": ("save_events", "save_event")}[what]
    bulk = getattr(target, bulk_name, None)
    if bulk is None:
        for item in items:
            getattr(target, one_name)(item)
        return
    result = bulk(items)
    if result.errors:
        raise NewsmonError(
            f"reindex: {len(result.errors)} of {len(items)} {what}(s) in this batch were not written "
            f"(first: {result.errors[0]}); nothing after the last complete batch is marked done, run again "
            "to retry"
        )


def reindex(from_url: str, to_url: str, progress: Progress | None = None, batch: int = 500, *,
            checkpoint_dir: str | os.PathLike[str] = DEFAULT_CHECKPOINT_DIR, restart: bool = False,
            opener: Callable[[str], Store] = open_store) -> dict:
    """Copy every article, every development event and every state table from one store to another;
    resumable.

    Returns {"from","to","articles","articles_total","resumed_after","events","events_total",
    "tables":{table: rows written}}."""
    if _redact(from_url).rstrip("/") == _redact(to_url).rstrip("/"):
        raise NewsmonError(f"reindex: --from and --to are the same store ({_redact(from_url)})")
    batch = max(1, int(batch))
    checkpoint = Checkpoint(checkpoint_dir, from_url, to_url)
    if restart:
        checkpoint.clear()
    state = checkpoint.load()
    # The source must exist: a mistyped --from would copy an empty new store and report success.
    source = opener(from_url, create=False) if opener is open_store else opener(from_url)
    try:
        target = opener(to_url)
        try:
            total = source.count_articles()
            after = state.get("after_id")
            copied = int(state.get("copied") or 0)
            resumed_after = after
            if progress:
                progress(copied, total)
            while True:
                articles = source.iter_articles(after_id=after, batch=batch)
                if not articles:
                    break
                _write(target, articles, "article")
                after = articles[-1].id
                copied += len(articles)
                checkpoint.save(after_id=after, copied=copied, phase="articles")
                if progress:
                    progress(copied, max(total, copied))
            events_total = source.count_events()
            events_after = state.get("events_after_id")
            events = int(state.get("events_copied") or 0)
            while True:
                batch_events = source.iter_events(after_id=events_after, batch=batch)
                if not batch_events:
                    break
                _write(target, batch_events, "event")
                events_after = batch_events[-1].id
                events += len(batch_events)
                checkpoint.save(after_id=after, copied=copied, events_after_id=events_after, events_copied=events,
                                phase="events")
            exporter, importer = state_tables(source), state_tables(target)
            tables: dict[str, int] = {}
            for table in STATE_TABLES:
                written = 0
                for rows in _batched(exporter.export_state(table), batch):
                    written += importer.import_state(table, rows)
                tables[table] = written
            checkpoint.clear()
        finally:
            target.close()
    finally:
        source.close()
    return {"from": _redact(from_url), "to": _redact(to_url), "articles": copied, "articles_total": total,
            "resumed_after": resumed_after, "events": events, "events_total": events_total, "tables": tables}


# --- CLI --------------------------------------------------------------------------------------------


def add_reindex_parser(subparsers, parents: Iterable[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """`newsmon reindex`: the lead's build_parser() calls this with its subparsers (and common parents)."""
    parser = subparsers.add_parser(
        "reindex", parents=list(parents), help="copy every article and all state between stores (resumable)",
        description="Copy a store to another backend, e.g. from the embedded SQLite default to Elasticsearch. "
                    "Interrupted copies resume from a checkpoint under var/reindex/.",
    )
    parser.add_argument("--from", dest="from_url", default=None,
                        help="source store URL (default: the resolved store, README, Settings)")
    parser.add_argument("--to", dest="to_url", required=True,
                        help="target store URL, e.g. elasticsearch+https://es.example:9200")
    parser.add_argument("--batch", type=int, default=500, help="articles per bulk request (default 500)")
    parser.add_argument("--restart", action="store_true", help="ignore an earlier checkpoint and copy everything")
    parser.add_argument("--checkpoint-dir", default=str(DEFAULT_CHECKPOINT_DIR),
                        help="where resume checkpoints live (default var/reindex)")
    parser.set_defaults(func=cmd_reindex)
    return parser


def cmd_reindex(args: argparse.Namespace) -> int:
    from pipelines.config import config_dir_from
    from pipelines.progress import ProgressBar
    from pipelines.settings import store_url

    from_url = args.from_url or store_url(getattr(args, "store", None),
                                          config_dir=config_dir_from(getattr(args, "config", None)))
    bar = ProgressBar("reindex articles")
    try:
        summary = reindex(from_url, args.to_url, progress=lambda done, total: bar.update(done, total),
                          batch=args.batch, checkpoint_dir=args.checkpoint_dir, restart=args.restart)
    finally:
        bar.close()
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=2))
    else:
        resumed = f" (resumed after {summary['resumed_after']})" if summary["resumed_after"] else ""
        tables = ", ".join(f"{name} {count}" for name, count in summary["tables"].items())
        print(f"{summary['from']} -> {summary['to']}: {summary['articles']} article(s) copied{resumed}, "
              f"{summary['events']} event(s); state rows written: {tables}")
    sys.stdout.flush()
    return 0


__all__ = ["Checkpoint", "STATE_TABLES", "SqliteTables", "add_reindex_parser", "cmd_reindex", "reindex",
           "state_tables"]

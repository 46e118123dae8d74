"""The store contract every backend (SQLite/FTS5, Elasticsearch) implements.

One interface so the cycle, the CLI, the DAGs and the dashboard never know
which backend is behind them, and one test suite runs against all of them.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Container
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from pipelines.errors import NewsmonError
from pipelines.models import Alert, Article, DevelopmentEvent, FeedItem, FeedState, SearchHit


class StoreError(NewsmonError, RuntimeError):
    """A backend failure the caller may retry (locked DB, disk full, cluster down)."""


# --- delivery claims: who is sending an outbox row right now ---------------------------------------


def _this_machine() -> str:
    """Host name plus PID namespace: two containers may share a host name but never a PID namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # 'pid:[4026531836]'
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def delivery_claimer() -> str:
    """A fresh claimer id for one delivery run: 'machine/pid-namespace|pid|token'."""
    return f"{_this_machine()}|{os.getpid()}|{secrets.token_hex(6)}"


def claimer_is_gone(claimer: str | None, held: Container[str] | None = None) -> bool:
    """True only when the claimer's process is known to be dead (same machine and PID namespace,
    no such process or a zombie), so a crashed run's claim need not wait out its lease.

    Unknown (another machine, no /proc, a malformed id) means alive: waiting is safe, stealing
    a live claim would send twice. held: the claims this process holds right now; with it, a claim
    of this process that is not among them is gone too (its release was lost)."""
    machine, pid_text = "", ""
    if claimer and claimer.count("|") >= 2:
        machine, pid_text, _token = claimer.rsplit("|", 2)
    if not pid_text.isdigit() or machine != _this_machine() or machine.endswith("/"):
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        # this process is alive by definition (another thread's run), unless it says what it holds
        return held is not None and claimer not in held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[:1] == ["Z"]  # killed, not yet reaped
    except OSError:
        return False


@runtime_checkable
class Store(Protocol):
    url: str

    # --- articles -------------------------------------------------------
    def upsert_article(self, article: Article) -> bool:
        """Insert or replace by article.id; True when the id was not stored before."""

    def get_article(self, article_id: str) -> Article | None: ...

    def has_article(self, article_id: str) -> bool: ...

    def find_by_content_hash(self, content_hash: str) -> str | None:
        """Id of a stored article with exactly this text, if any."""

    def count_articles(self) -> int: ...

    def iter_articles(self, after_id: str | None = None, batch: int = 500) -> list[Article]:
        """Next batch of articles ordered by id (for reindex/resume)."""

    # --- stories (near-duplicate groups) --------------------------------
    def story_for_keys(self, keys: list[str]) -> str | None:
        """Story id that already owns any of these LSH band keys."""

    def add_story_keys(self, story_id: str, keys: list[str]) -> None: ...

    def assign_story(self, story_id: str, keys: list[str]) -> str:
        """The story an article with these LSH band keys joins, in one atomic step: the oldest story
        owning any of the keys, else story_id (created); the keys are added to it either way.

        Atomic, unlike story_for_keys then add_story_keys: two writers with overlapping keys at
        the same time (parallel batches storing syndicated copies) get the same story."""

    def bump_story(self, story_id: str, article_id: str, source: str) -> int:
        """Record one more copy of a story; returns its copy count."""

    def get_story(self, story_id: str) -> dict | None:
        """{"id","first_seen","copies","articles":[ids],"sources":[...]}"""

    # --- search and counts ----------------------------------------------
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
        """bm25-ranked hits; collapse="story" or "event" keeps the best hit of each story or event
        (an article without an event is its own group)."""

    def topic_counts(self, since: str | None = None, until: str | None = None) -> list[dict]:
        """[{"topic","hour":"YYYY-MM-DDTHH:00:00Z","count"}] by article published (or fetched) time."""

    # --- feed state -----------------------------------------------------
    def get_feed_state(self, feed_id: str) -> FeedState | None: ...

    def save_feed_state(self, state: FeedState) -> None: ...

    def list_feed_states(self) -> list[FeedState]: ...

    def seen_items(self, feed_id: str, item_ids: list[str]) -> set[str]:
        """Which of these feed item ids were already processed."""

    def mark_items_seen(self, feed_id: str, item_ids: list[str]) -> None: ...

    # --- inbox: durable spool between polling and processing ----------
    def spool_items(self, items: list[FeedItem]) -> int:
        """Queue new feed items (skipping ones seen or already queued); returns how many were queued.

        The poll step calls this before advancing the feed's ETag, so a crash
        after polling repeats nothing and loses nothing."""

    def pending_items(self, limit: int = 1000) -> list[tuple[str, FeedItem]]:
        """[(inbox key, item)] still waiting to be processed: round-robin by feed (every feed's oldest
        item, then every feed's second oldest, ...; ties in arrival order), oldest first within a feed,
        so one feed's backlog never starves the others."""

    def get_items(self, keys: list[str]) -> list[tuple[str, FeedItem]]: ...

    def finish_items(self, keys: list[str]) -> None:
        """Mark these inbox items processed (stored or dropped) and seen; one transaction."""

    # --- development events (pipelines/events.py) -----------------------
    def events_lock(self) -> AbstractContextManager[None]:
        """Held while a report is matched to the events and saved: across every process on this store,
        one at a time, so two workers never open two events for one development."""

    def save_event(self, event: DevelopmentEvent) -> None:
        """Insert or replace by event.id: the whole event, its reports, status and states."""

    def get_event(self, event_id: str) -> DevelopmentEvent | None: ...

    def list_events(self, *, watch: str | None = None, family: str | None = None, since: str | None = None,
                    until: str | None = None, limit: int = 1000, newest_first: bool = False) -> list[DevelopmentEvent]:
        """Events whose `opened` is within [since, until], ordered by (opened, id), oldest first unless asked."""

    def iter_events(self, after_id: str | None = None, batch: int = 500) -> list[DevelopmentEvent]:
        """Next batch of events ordered by id (for reindex/resume)."""

    def count_events(self) -> int: ...

    def set_article_event(self, article_id: str, event_id: str | None) -> None:
        """Record which event an article reports (so search can collapse by event)."""

    # --- alerts and their delivery outbox -------------------------------
    def record_alert(self, alert: Alert) -> bool:
        """Insert by alert.id; False (and copies+1) when it already exists."""

    def get_alert(self, alert_id: str) -> Alert | None: ...

    def list_alerts(self, since: str | None = None, limit: int = 100, *, desk: str | None = None,
                    event_id: str | None = None) -> list[Alert]:
        """Newest first by creation time (since inclusive); only one desk's, or one event's, when asked."""

    def enqueue_delivery(self, alert_id: str, channel: str) -> None:
        """Idempotent: one outbox row per (alert, channel)."""

    def pending_deliveries(self, limit: int = 100) -> list[tuple[str, str, int]]:
        """[(alert_id, channel, attempts)] not yet delivered (claimed or not)."""

    def claim_delivery(self, alert_id: str, channel: str, claimer: str, lease: float) -> bool:
        """Atomically take one undelivered row for `lease` seconds before sending it.

        False when the row is delivered or unknown, or another claimer holds a live lease (one
        not expired, by a process not known to be dead: claimer_is_gone). The same claimer may
        renew. mark_delivered and mark_delivery_failed release the claim. Two overlapping
        cycles therefore never send one row at the same time; a crashed sender's row is sent
        again once its lease ends (at least once)."""

    def mark_delivered(self, alert_id: str, channel: str) -> None:
        """Record the row delivered (and release any claim)."""

    def mark_delivery_failed(self, alert_id: str, channel: str, error: str) -> None:
        """attempts+1, keep the error, release any claim so the next run retries at once."""

    def close(self) -> None: ...

"""Feed-watching event trigger: starts the monitor DAG as soon as a feed publishes something new.

Runs in the Airflow triggerer (one asyncio loop shared by many triggers), so nothing blocking or
CPU-heavy runs on the loop: the request goes through the project's guarded fetcher
(pipelines/http.py: it connects only to the address it checked, and one deadline bounds the whole
request, redirects included) in a worker thread, and so does the digest of the body. It only
*notices* change; the DAG's poll step does the real conditional GET, parsing and spooling, so a
missed or spurious event costs latency, never data.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

CLASSPATH = "newsmon_triggers.feed_watch.FeedWatchTrigger"
USER_AGENT = "newsmon-feedwatch/0.1 (+https://github.com/newsmon)"
MAX_BACKOFF_SECONDS = 900.0

# Identity of the entries, not the whole document: many feeds rewrite <lastBuildDate> or
# <updated> on every request, which would fire an event on every poll. Feeds are hostile input, so
# these patterns never scan past what they match: no lazy ".*?" to a closing tag that may not come.
_ID_OPEN_RE = re.compile(rb"<(guid|id|link)\b", re.IGNORECASE)
_HREF_RE = re.compile(rb"\bhref=[\"']([^\"']+)[\"']", re.IGNORECASE)
_ID_CLOSE_RE = {name: re.compile(rb"</" + name + rb"\s*>", re.IGNORECASE) for name in (b"guid", b"id", b"link")}

# Worker threads for the fetches and digests of every watcher in this triggerer (the loop's
# default executor is small and shared with everything else).
_WORKERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="newsmon-feed-watch")


@dataclass
class PollResult:
    """What one conditional GET found out."""

    status: int
    changed: bool
    etag: str | None = None
    last_modified: str | None = None
    digest: str | None = None
    retry_after: float | None = None


def feed_digest(body: bytes) -> str:
    """Hash of the entry identities (guid/id/link) in a feed; whole-body hash when it has none."""
    tokens = {token for token in _entry_ids(body) if token}
    material = b"\n".join(sorted(tokens)) if tokens else body
    return hashlib.sha256(material).hexdigest()


def _entry_ids(body: bytes) -> Iterator[bytes]:
    """The href of each <link href=...>, and the text of each <guid>, <id> and <link> element.

    One forward pass, linear in the body however its tags are left unclosed: each search starts
    where the previous one stopped, and the search for a closing tag is remembered per name, so no
    byte is scanned more than a few times (the old regex rescanned to the end for every open tag).
    """
    closes: dict[bytes, re.Match[bytes] | None] = {}
    pos = 0
    while (opening := _ID_OPEN_RE.search(body, pos)) is not None:
        end = body.find(b">", opening.end())
        if end < 0:
            return  # no tag is ever finished after this point
        name = opening.group(1).lower()
        attributes = body[opening.end():end]
        pos = end + 1
        if name == b"link" and (href := _HREF_RE.search(attributes)) is not None:
            yield href.group(1).strip()
            continue
        if attributes.endswith(b"/"):
            continue  # <guid/>: no text
        if name not in closes or ((close := closes[name]) is not None and close.start() < pos):
            closes[name] = _ID_CLOSE_RE[name].search(body, pos)
        close = closes[name]
        if close is None:
            continue  # never closed: no text, and no later tag of this name has any either
        yield body[pos:close.start()].strip()
        pos = close.end()


async def _in_worker(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking or CPU-heavy work in a worker thread, keeping the triggerer's loop free."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_WORKERS, functools.partial(func, *args, **kwargs))


def _airflow_variable(name: str) -> Any:
    from airflow.sdk import Variable

    return Variable.get(name, default=None)


async def _resolve_in_thread(func: Any) -> Any:
    """Run a sync lookup off the event loop, in asgiref's thread, where the triggerer's comms work."""
    try:
        from asgiref.sync import sync_to_async
    except ImportError:
        return await asyncio.to_thread(func)
    return await sync_to_async(func)()


class FeedWatchTrigger(BaseEventTrigger):
    """Poll one feed with conditional GETs; fire a TriggerEvent only when its entries changed.

    The first successful poll sets the baseline and fires nothing (the DAG's cron schedule
    covers a fresh start), unless ``fire_on_start`` is set. 304s and unchanged bodies never
    fire. Where the triggerer offers the asset state store, the baseline survives restarts.
    """

    def __init__(
        self,
        feed_id: str,
        url: str,
        poll_interval: float = 60.0,
        timeout: float = 20.0,
        max_bytes: int = 5_000_000,
        max_redirects: int = 3,
        fire_on_start: bool = False,
        allow_networks: str | None = None,
    ):
        super().__init__()
        # CIDRs the watcher may reach besides public addresses, resolved when the DAG file is parsed
        # (Variable newsmon_allow_networks first); None: resolved in the triggerer at run time.
        self.allow_networks = allow_networks
        self.feed_id = feed_id
        self.url = url
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self.max_redirects = int(max_redirects)
        self.fire_on_start = bool(fire_on_start)
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.digest: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Only static settings: the hash of these kwargs identifies the watcher, so state must stay out.
        return (
            CLASSPATH,
            {
                "feed_id": self.feed_id,
                "url": self.url,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "max_bytes": self.max_bytes,
                "max_redirects": self.max_redirects,
                "fire_on_start": self.fire_on_start,
                "allow_networks": self.allow_networks,
            },
        )

    # --- state that should survive a triggerer restart ------------------------------------
    @property
    def _state_key(self) -> str:
        return f"feedwatch:{self.feed_id}"

    async def _load_state(self) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return
        try:
            saved = await store.aget(self._state_key)
        except Exception as exc:  # no supervisor comms, several assets, old server: run without persistence
            self.log.debug("feed %s: no asset state store (%s)", self.feed_id, exc)
            return
        if isinstance(saved, dict):
            self.etag = saved.get("etag")
            self.last_modified = saved.get("last_modified")
            self.digest = saved.get("digest")

    async def _save_state(self) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return
        try:
            await store.aset(
                self._state_key,
                {"etag": self.etag, "last_modified": self.last_modified, "digest": self.digest},
            )
        except Exception as exc:
            self.log.debug("feed %s: could not persist watch state (%s)", self.feed_id, exc)

    # --- network --------------------------------------------------------------------------
    def fetcher(self, policy: Any) -> Any:
        """The project's guarded client with this watcher's limits: `timeout` bounds the whole request."""
        from pipelines.http import Fetcher

        return Fetcher(policy=policy, user_agent=USER_AGENT, connect_timeout=self.timeout,
                       read_timeout=self.timeout, total_timeout=self.timeout, max_bytes=self.max_bytes,
                       max_redirects=self.max_redirects, per_host_concurrency=1, per_host_delay=0.0)

    async def poll_once(self, fetcher: Any, policy: Any) -> PollResult:
        """One conditional GET (redirects followed and checked by the fetcher); updates the remembered state.

        `fetcher` is the pipelines.http.Fetcher run() keeps open; anything else (None) gets a one-off
        one for `policy`. Both the request and the digest run in a worker thread.
        """
        from pipelines.http import Fetcher

        own = not isinstance(fetcher, Fetcher)
        client = self.fetcher(policy) if own else fetcher
        try:
            response = await _in_worker(client.fetch, self.url, etag=self.etag, last_modified=self.last_modified,
                                        kind="feed")
        finally:
            if own:
                client.close()
        if response.not_modified:
            return PollResult(304, False, self.etag, self.last_modified, self.digest)
        digest = await _in_worker(feed_digest, response.body)
        first = self.digest is None
        changed = digest != self.digest and (not first or self.fire_on_start)
        self.etag = response.etag
        self.last_modified = response.last_modified
        self.digest = digest
        return PollResult(response.status, changed, self.etag, self.last_modified, digest)

    def wait_after_failure(self, failures: int, retry_after: float | None = None) -> float:
        """Exponential back-off from the poll interval, capped, and never sooner than Retry-After asks."""
        wait = min(self.poll_interval * 2 ** min(failures, 16), MAX_BACKOFF_SECONDS)
        if retry_after:
            wait = max(wait, min(retry_after, MAX_BACKOFF_SECONDS))
        return wait

    async def network_policy(self) -> Any:
        """The fetcher's network policy: the allow list from the kwargs, else the one resolver's answer
        (Variable newsmon_allow_networks, read through the triggerer's supervisor, then env)."""
        from pipelines.netguard import NetworkPolicy
        from pipelines.settings import resolve

        allow = self.allow_networks
        if allow is None:
            allow = await _resolve_in_thread(lambda: resolve("allow_networks", variable=_airflow_variable).value)
        return NetworkPolicy(allow or ())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from pipelines.errors import FetchError

        policy = await self.network_policy()
        await self._load_state()
        failures = 0
        fetcher = self.fetcher(policy)
        try:
            while True:
                wait = self.poll_interval
                try:
                    result = await self.poll_once(fetcher, policy)
                    failures = 0
                except (FetchError, OSError) as exc:
                    failures += 1
                    wait = self.wait_after_failure(failures, getattr(exc, "retry_after", None))
                    self.log.warning("feed %s: watch failed (%s); next try in %.0fs", self.feed_id,
                                     str(exc).splitlines()[0] if str(exc) else type(exc).__name__, wait)
                else:
                    if result.status != 304:
                        await self._save_state()
                    if result.changed:
                        yield TriggerEvent(
                            {
                                "feed_id": self.feed_id,
                                "url": self.url,
                                "status": result.status,
                                "etag": result.etag,
                                "last_modified": result.last_modified,
                                "digest": result.digest,
                            }
                        )
                await asyncio.sleep(wait)
        finally:
            fetcher.close()

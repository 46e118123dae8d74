"""Feed-watching event trigger: starts the monitor DAG as soon as a feed publishes something new.

Runs in the Airflow triggerer (one asyncio loop shared by many triggers), so every wait is
async and every request is bounded in time and size. It only *notices* change; the DAG's
poll step does the real conditional GET, parsing and spooling, so a missed or spurious
event costs latency, never data.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

CLASSPATH = "newsmon_triggers.feed_watch.FeedWatchTrigger"
USER_AGENT = "newsmon-feedwatch/0.1 (+https://github.com/newsmon)"
MAX_BACKOFF_SECONDS = 900.0

# Identity of the entries, not the whole document: many feeds rewrite <lastBuildDate> or
# <updated> on every request, which would fire an event on every poll.
_ENTRY_ID_RE = re.compile(
    rb"<link\b[^>]*?\bhref=[\"']([^\"']+)[\"']|<(guid|id|link)\b[^>]*?(?:/>|>(.*?)</\2\s*>)",
    re.IGNORECASE | re.DOTALL,
)


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
    tokens = []
    for match in _ENTRY_ID_RE.finditer(body):
        value = match.group(1) or match.group(3)
        if value:
            tokens.append(value.strip())
    material = b"\n".join(sorted(set(tokens))) if tokens else body
    return hashlib.sha256(material).hexdigest()


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


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
    async def _check_host(self, policy: Any, url: str) -> None:
        """Refuse URLs and resolved addresses the network policy forbids, before connecting."""
        policy.check_url(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = sorted({info[4][0] for info in infos})
        for address in addresses:
            policy.check_address(address)

    async def poll_once(self, client: Any, policy: Any) -> PollResult:
        """One conditional GET (following a few redirects, each one checked); updates the remembered state."""
        from pipelines.errors import FetchError

        headers = {"User-Agent": USER_AGENT, "Accept": "application/rss+xml, application/atom+xml, */*"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        url = self.url
        for _hop in range(self.max_redirects + 1):
            await self._check_host(policy, url)
            async with client.stream("GET", url, headers=headers) as response:
                stream = response.extensions.get("network_stream")
                peer = stream.get_extra_info("server_addr") if stream is not None else None
                if peer:  # the address actually connected to, in case DNS changed since the check
                    policy.check_address(peer[0])
                if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status_code == 304:
                    return PollResult(304, False, self.etag, self.last_modified, self.digest)
                if response.status_code != 200:
                    raise FetchError(
                        url,
                        f"feed watch got HTTP {response.status_code}",
                        status=response.status_code,
                        retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                        kind="http",
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise FetchError(url, f"feed larger than {self.max_bytes} bytes", kind="too-large")
                digest = feed_digest(bytes(body))
                first = self.digest is None
                changed = digest != self.digest and (not first or self.fire_on_start)
                self.etag = response.headers.get("ETag")
                self.last_modified = response.headers.get("Last-Modified")
                self.digest = digest
                return PollResult(200, changed, self.etag, self.last_modified, digest)
        raise FetchError(self.url, f"more than {self.max_redirects} redirects", kind="redirect")

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
        import httpx

        from pipelines.errors import FetchError

        policy = await self.network_policy()
        await self._load_state()
        failures = 0
        # trust_env=False: a proxy from the environment would hide the peer address the guard checks.
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False) as client:
            while True:
                wait = self.poll_interval
                try:
                    result = await self.poll_once(client, policy)
                    failures = 0
                except (FetchError, httpx.HTTPError, OSError) as exc:
                    failures += 1
                    wait = self.wait_after_failure(failures, getattr(exc, "retry_after", None))
                    self.log.warning("feed %s: watch failed (%s); next try in %.0fs", self.feed_id,
                                     str(exc).splitlines()[0] if str(exc) else type(exc).__name__, wait)
                else:
                    if result.status == 200:
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

"""Figure 2: one poll round over 1,000 local feeds, unchanged (all 304) and with 10% changed.

The feeds live on 250 loopback addresses (127.0.0.1-127.0.0.250, 4 feeds each) served by one
asyncio process (bench/sites.py): per-host politeness keys on the hostname, and distinct
hostnames would need DNS, but Linux routes all of 127.0.0.0/8 to lo, so each address is a
"host" to the fetcher. Politeness stays at the configured defaults (config/newsmon.yaml:
per_host_concurrency 2, per_host_delay 0.5 s, 16 fetch workers): with 4 feeds per host a round
cannot take less than 3 x 0.5 s, whatever the CPU.

A round is `pipelines.cycle.poll_feeds` on a real SQLite store: conditional GET, parsing of the
changed feeds, spooling of their new items and one feed-state write per feed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Row, loopback_hosts, write_config
from bench.sites import FeedSpec, SiteServer

TARGET_UNCHANGED_S = 5.0


def feed_specs(feeds: int, hosts: list[str], order: str = "interleaved") -> list[FeedSpec]:
    """`interleaved`: feed k on host k mod H (consecutive feeds on different hosts);
    `grouped`: each host's feeds next to each other, as a feeds.yaml listing an outlet's sections does."""
    per_host = -(-feeds // len(hosts))
    specs = []
    for k in range(feeds):
        host = hosts[k % len(hosts)] if order == "interleaved" else hosts[k // per_host]
        specs.append(FeedSpec(index=k, host=host))
    return specs


def _round(ctx: Any) -> dict[str, Any]:
    from pipelines.cycle import poll_feeds
    from pipelines.models import CycleReport

    report = CycleReport()
    started = time.perf_counter()
    spooled = poll_feeds(ctx, report)
    return {"seconds": time.perf_counter() - started, "spooled": spooled, "polled": report.feeds_polled,
            "not_modified": report.feeds_not_modified, "failed": report.feeds_failed,
            "errors": report.errors[:3]}


def measure(feeds: int = 1000, hosts: int = 250, rounds: int = 3, changed_share: float = 0.1,
            order: str = "interleaved", work: Path | None = None) -> dict[str, Any]:
    """A first (all new) round, then `rounds` unchanged and `rounds` 10%-changed rounds, alternating."""
    from pipelines.cycle import open_context
    from pipelines.netguard import NetworkPolicy

    host_list = loopback_hosts(hosts)
    specs = feed_specs(feeds, host_list, order)
    changed_count = max(1, round(feeds * changed_share))
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-poll-", dir=work) as tmp, \
            SiteServer(host_list, specs) as site:
        tmp_path = Path(tmp).resolve()
        config_dir = write_config(tmp_path / "config", [
            {"id": f"bench-{s.index}", "url": site.url(s), "desk": "security", "interval": 300} for s in specs])
        ctx = open_context(str(config_dir), f"sqlite:///{tmp_path / 'poll.db'}",
                           policy=NetworkPolicy(allow=["127.0.0.0/8"]))
        try:
            first = _round(ctx)
            unchanged, changed = [], []
            for r in range(rounds):
                unchanged.append(_round(ctx))
                # a different 10% each time, spread over the hosts
                site.bump([(r + i * int(1 / changed_share)) % feeds for i in range(changed_count)])
                changed.append(_round(ctx))
            fetch = dict(ctx.config.settings.fetch)
        finally:
            ctx.close()
        served = site.stats()
    return {
        "feeds": feeds, "hosts": hosts, "order": order, "changed_feeds": changed_count,
        "first_s": first["seconds"], "first_spooled": first["spooled"],
        "unchanged_s": statistics.median(r["seconds"] for r in unchanged),
        "unchanged_max_s": max(r["seconds"] for r in unchanged),
        "changed_s": statistics.median(r["seconds"] for r in changed),
        "changed_max_s": max(r["seconds"] for r in changed),
        "changed_spooled": changed[-1]["spooled"],
        "not_modified": unchanged[-1]["not_modified"], "failed": sum(r["failed"] for r in unchanged + changed),
        "errors": (unchanged[-1]["errors"] or changed[-1]["errors"] or first["errors"]),
        "politeness": {k: fetch.get(k) for k in ("per_host_concurrency", "per_host_delay", "workers")},
        "served": served,
        "floor_s": (-(-feeds // hosts) - 1) * float(fetch.get("per_host_delay", 0.5)),
    }


def rows(result: dict[str, Any], label: str = "") -> list[Row]:
    r = result
    tag = f" ({r['order']} order)" if label or r["order"] != "interleaved" else ""
    pol = r["politeness"]
    note = (f"{r['hosts']} hosts x {r['feeds'] // r['hosts']} feeds; politeness {pol['per_host_concurrency']}/host, "
            f"{pol['per_host_delay']} s apart (floor {r['floor_s']:.1f} s), {pol['workers']} workers; "
            f"{r['not_modified']} x 304; failures {r['failed']}")
    out = [
        Row(f"2. poll round, {r['feeds']} unchanged feeds{tag}", f"{r['unchanged_s']:.2f} s",
            f"<= {TARGET_UNCHANGED_S:.0f} s", r["unchanged_s"] <= TARGET_UNCHANGED_S,
            note=f"median; max {r['unchanged_max_s']:.2f} s; {note}"),
        Row(f"2. poll round, {r['changed_feeds']} of {r['feeds']} changed{tag}", f"{r['changed_s']:.2f} s",
            note=f"median; max {r['changed_max_s']:.2f} s; {r['changed_spooled']} new items spooled"),
    ]
    if not tag:
        out.append(Row(f"2. first poll, {r['feeds']} feeds all new", f"{r['first_s']:.2f} s",
                       note=f"{r['first_spooled']} items spooled"))
    return out

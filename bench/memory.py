"""Figure 4: peak RSS while 10,000 pages go through full monitoring cycles, and store size per 10,000 articles.

The measured process runs `pipelines.cycle.run_cycle` again and again, as `newsmon watch` does,
against a local publisher (bench/sites.py, its own process): 100 feeds of 100 items each on
100 loopback addresses, every item's page fetched over real HTTP by the real Fetcher (SSRF
guard and per-host politeness on, defaults kept). Pages are the ~200 real benchmark pages
served cyclically, each copy with every third word of its text changed (see sites.perturb), so
no two are duplicates and each is a new story. Bounded by design: a cycle takes at most
64 batches x 25 items from the durable inbox; a batch holds 25 pages; articles are written
one by one. RSS is sampled every 250 items; the peak is the kernel's ru_maxrss.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import EXTRACTION_DIR, Row, loopback_hosts, peak_rss_mb, rss_mb, write_config
from bench.sites import FeedSpec, SiteServer, extraction_page_files

TARGET_PEAK_MB = 400.0


def _worker(config_dir: str, store_url: str, expected: int, out: Any) -> None:
    """The measured process: cycles until every item has been processed (or a cycle makes no progress)."""
    try:
        from pipelines.cycle import open_context, run_cycle

        samples: list[tuple[int, float]] = []
        ctx = open_context(config_dir, store_url)
        samples.append((0, rss_mb()))
        calls = 0

        def progress(_done: int, _total: int) -> None:  # called once per item, before it is processed
            nonlocal calls
            calls += 1
            if calls - samples[-1][0] >= 250:
                samples.append((calls, rss_mb()))

        ctx.progress = progress
        stored = dropped = cycles = 0
        reasons: dict[str, int] = {}
        errors: list[str] = []
        started = time.perf_counter()
        while True:
            report = run_cycle(ctx)
            cycles += 1
            handled = report.articles_stored + sum(report.dropped.values())
            stored += report.articles_stored
            dropped += sum(report.dropped.values())
            for reason, count in report.dropped.items():
                reasons[reason] = reasons.get(reason, 0) + count
            errors.extend(report.errors[:5])
            samples.append((stored + dropped, rss_mb()))
            if handled == 0 or stored + dropped >= expected:
                break
        seconds = time.perf_counter() - started
        ctx.close()
        out.put({"stored": stored, "dropped": dropped, "cycles": cycles, "seconds": seconds,
                 "peak_mb": peak_rss_mb(), "samples": samples, "errors": errors[:5], "reasons": reasons})
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def _store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def measure(pages: int = 10_000, feeds: int = 100, hosts: int = 100, page_files: list[str] | None = None,
            work: Path | None = None, store_url: str | None = None) -> dict[str, Any]:
    """Run the measured process over `pages` items; its peak RSS, RSS curve, and the store's size
    (a SQLite file in the work dir, or store_url, whose size is not measured: bench/engine.py)."""
    files = page_files if page_files is not None else extraction_page_files(EXTRACTION_DIR)
    if not files:
        raise ValueError("no page files to serve")
    host_list = loopback_hosts(hosts)
    per_feed = -(-pages // feeds)
    specs = [FeedSpec(index=k, host=host_list[k % len(host_list)], items=per_feed, page_hosts=host_list)
             for k in range(feeds)]
    total = per_feed * feeds
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-mem-", dir=work) as tmp, \
            SiteServer(host_list, specs, files) as site:
        tmp_path = Path(tmp).resolve()
        config_dir = write_config(tmp_path / "config", [
            {"id": f"bench-{s.index}", "url": site.url(s), "desk": "security", "interval": 300} for s in specs])
        db = tmp_path / "memory.db"
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        env_before = os.environ.get("NEWSMON_ALLOW_NETWORKS")
        os.environ["NEWSMON_ALLOW_NETWORKS"] = "127.0.0.0/8"  # the spawned worker's Fetcher reads it
        try:
            proc = ctx.Process(target=_worker, args=(str(config_dir), store_url or f"sqlite:///{db}", total, out))
            proc.start()
            try:
                result = out.get(timeout=4 * 3600)
            finally:
                proc.join(timeout=60)
                if proc.is_alive():
                    proc.kill()
        finally:
            if env_before is None:
                os.environ.pop("NEWSMON_ALLOW_NETWORKS", None)
            else:
                os.environ["NEWSMON_ALLOW_NETWORKS"] = env_before
        if "error" in result:
            raise RuntimeError(f"memory worker failed: {result['error']}")
        size = _store_bytes(db) if store_url is None else 0
        served = site.stats()
    stored = result["stored"]
    return {**result, "pages": total, "files": len(files), "store_bytes": size,
            "store_mb_per_10k": size / 1e6 * 10_000 / stored if stored and size else float("nan"),
            "pages_per_s": (stored + result["dropped"]) / result["seconds"] if result["seconds"] else 0.0,
            "served": served}


def rows(result: dict[str, Any]) -> list[Row]:
    r = result
    curve = ", ".join(f"{n}: {mb:.0f}" for n, mb in _thin(r["samples"], 6))
    return [
        Row(f"4. peak RSS, {r['pages']} pages through full cycles", f"{r['peak_mb']:.0f} MB",
            f"<= {TARGET_PEAK_MB:.0f} MB", r["peak_mb"] <= TARGET_PEAK_MB,
            note=f"RSS MB by items done: {curve}; {r['cycles']} cycles, {r['pages_per_s']:.1f} pages/s"),
        Row("4. store size per 10,000 articles", f"{r['store_mb_per_10k']:.0f} MB",
            note=f"SQLite + FTS5, {r['stored']} articles stored, {r['dropped']} dropped {r.get('reasons') or ''}"),
    ]


def _thin(samples: list[Any], keep: int) -> list[Any]:
    if len(samples) <= keep:
        return samples
    step = (len(samples) - 1) / (keep - 1)
    return [samples[round(i * step)] for i in range(keep)]

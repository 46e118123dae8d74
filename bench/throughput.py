"""Figure 1: processing throughput (extract + canonicalise + de-duplicate + tag + store) on real pages.

Each round runs three sides, each in a fresh spawned process set up (imports, config, store, one
warm-up page) before a shared start signal, so start-up costs are not counted:
- the ratio: one process alternating, page by page, bare `trafilatura.extract` of a page and
  newsmon's processing of the same page (`process_items` over a one-item batch), each side's CPU
  time summed apart. Run as two separate processes one after the other, the two sides saw
  different moments of this shared VM (the same code measured 0.55-0.73 from round to round);
  interleaved finely they see the same ones (see INTERLEAVE_PAGES).
- newsmon's processing alone in one process, and the same with two worker processes sharing one
  store (as two parallel Airflow `process_batch` tasks do), both by the wall clock: their quotient
  is the speed-up.
Ratios are taken per round, then the median over rounds.

"Processing" is `pipelines.cycle.process_items` over inbox batches with the page bodies served
from memory instead of the network (MemoryFetcher below): the figure is about our CPU cost,
not about publishers' latency.
"""

from __future__ import annotations

import cProfile
import multiprocessing
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import CpuWatch, Page, Row, write_config

FEED_ID = "bench"
TARGET_RATIO = 0.85
TARGET_SPEEDUP = 1.7
# pages per slice of the interleaved ratio measurement: one page of bare extraction, then
# process_items over that page. Slices of a 25-page batch (~0.7 s a side) still read 0.78-0.86
# from round to round, single pages 0.85-0.87; a one-item batch also charges newsmon a batch's
# fixed costs (inbox read, fetch pool) per page, so it errs against newsmon, not for it.
INTERLEAVE_PAGES = 1


class MemoryFetcher:
    """Stands in for pipelines.http.Fetcher with the page bodies in memory (no network in this figure)."""

    def __init__(self, bodies: dict[str, bytes]):
        self.bodies = bodies

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None, kind: str = "page",
              not_after: float | None = None):
        from pipelines.errors import FetchError
        from pipelines.http import Response

        body = self.bodies.get(url)
        if body is None:
            raise FetchError(url, "not in the benchmark's page set", status=404, kind="http-status")
        return Response(url=url, status=200, headers={}, body=body, content_type="text/html", charset=None,
                        etag=None, last_modified=None)

    def close(self) -> None:
        pass


def feed_items(pages: list[Page]) -> list[Any]:
    from pipelines.models import FeedItem

    return [FeedItem(feed_id=FEED_ID, item_id=page.url, link=page.url, title=page.title, language="en")
            for page in pages]


def bench_config(work: Path) -> Path:
    return write_config(work / "config", [{"id": FEED_ID, "url": "http://127.0.0.1:9/feed.xml", "desk": "security"}])


def spool(store_url: str, pages: list[Page]) -> None:
    """Put the pages' feed items in the store's inbox, as a poll would have."""
    from pipelines.store import open_store

    store = open_store(store_url)
    try:
        store.spool_items(feed_items(pages))
    finally:
        store.close()


def _worker(kind: str, pages: list[Page], store_url: str, config_dir: str, ready: Any, go: Any, out: Any) -> None:
    """One measured process: set up, say ready, wait for the start signal, process every page."""
    try:
        if kind == "interleaved":
            _interleaved(pages, store_url, config_dir, ready, go, out)
            return
        from pipelines.cycle import process_items
        from pipelines.models import CycleReport
        from pipelines.store.sqlite import inbox_key

        ctx = _ready_context(pages, store_url, config_dir)
        keys = [inbox_key(FEED_ID, page.url) for page in pages]
        size = ctx.config.settings.batch_size
        report = CycleReport()
        ready.put(os.getpid())
        go.wait()
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(keys), size):
            process_items(ctx, keys[i:i + size], report)
        ended = time.perf_counter()
        ctx.close()
        out.put({"kind": kind, "start": started, "end": ended, "cpu": time.process_time() - cpu,
                 "pages": len(pages), "stored": report.articles_stored, "dropped": dict(report.dropped),
                 "errors": len(report.errors)})
    except BaseException as exc:  # report instead of hanging the parent
        out.put({"kind": kind, "error": f"{type(exc).__name__}: {exc}"})
        raise


def _ready_context(pages: list[Page], store_url: str, config_dir: str) -> Any:
    """A cycle context over this store with the pages served from memory, warmed up outside the
    store: newsmon's lazy imports and caches, as trafilatura's are warmed by one extract() call."""
    from pipelines.cycle import open_context
    from pipelines.extract import extract_page
    from pipelines.identity import story_keys, warm_caches

    ctx = open_context(config_dir, store_url)
    ctx.fetcher = MemoryFetcher({page.url: page.html for page in pages})
    warm = extract_page(pages[0].html, pages[0].url)
    if warm is not None:
        ctx.tagger.tag(warm.title or "", warm.text)
        story_keys(warm.title or "", warm.text)
    warm_caches()
    return ctx


def _interleaved(pages: list[Page], store_url: str, config_dir: str, ready: Any, go: Any, out: Any) -> None:
    """Bare trafilatura.extract and newsmon's processing, slice by slice on the same pages, CPU time apart."""
    import trafilatura

    from pipelines.cycle import process_items
    from pipelines.models import CycleReport
    from pipelines.store.sqlite import inbox_key

    ctx = _ready_context(pages, store_url, config_dir)
    trafilatura.extract(pages[0].html, url=pages[0].url)  # the bare side's warm-up
    size = INTERLEAVE_PAGES
    report = CycleReport()
    bare_cpu = newsmon_cpu = 0.0
    extracted = 0
    ready.put(os.getpid())
    go.wait()
    started = time.perf_counter()
    for i in range(0, len(pages), size):
        batch = pages[i:i + size]
        cpu = time.process_time()
        extracted += sum(1 for page in batch if trafilatura.extract(page.html, url=page.url))
        bare_cpu += time.process_time() - cpu
        cpu = time.process_time()
        process_items(ctx, [inbox_key(FEED_ID, page.url) for page in batch], report)
        newsmon_cpu += time.process_time() - cpu
    ended = time.perf_counter()
    ctx.close()
    out.put({"kind": "interleaved", "start": started, "end": ended, "cpu": bare_cpu + newsmon_cpu,
             "bare_cpu": bare_cpu, "newsmon_cpu": newsmon_cpu, "pages": len(pages), "extracted": extracted,
             "stored": report.articles_stored, "dropped": dict(report.dropped), "errors": len(report.errors)})


def _run_side(kind: str, shards: list[list[Page]], store_url: str, config_dir: str) -> dict[str, Any]:
    """Start one process per shard, release them together, return the group's pages/s (wall clock)."""
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(kind, shard, store_url, config_dir, ready, go, out))
             for shard in shards]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=300)
        watch = CpuWatch()
        go.set()
        results = [out.get(timeout=3600) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    others = watch.others_cores()  # workers are joined: their CPU is in our children's times
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"{kind} worker failed: {errors[0]}")
    pages = sum(r["pages"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"pages": pages, "seconds": wall, "pages_per_s": pages / wall if wall else 0.0, "others_cores": others,
            "bare_cpu": sum(r.get("bare_cpu", 0.0) for r in results),
            "newsmon_cpu": sum(r.get("newsmon_cpu", 0.0) for r in results),
            "cpu": sum(r["cpu"] for r in results), "stored": sum(r.get("stored", 0) for r in results),
            "extracted": sum(r.get("extracted", 0) for r in results),
            "dropped": _merge([r.get("dropped", {}) for r in results])}


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            merged[k] = merged.get(k, 0) + v
    return merged


def measure(pages: list[Page], rounds: int = 3, workers: int = 2, work: Path | None = None) -> dict[str, Any]:
    """Rounds of bare / one process / `workers` processes over the same pages; medians of per-round ratios."""
    if not pages:
        raise ValueError("no pages to measure")
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-tp-", dir=work) as tmp:
        tmp_path = Path(tmp).resolve()
        config_dir = str(bench_config(tmp_path))
        per_round = []
        for r in range(rounds):
            both_url = f"sqlite:///{tmp_path / f'both-{r}.db'}"
            spool(both_url, pages)
            both = _run_side("interleaved", [pages], both_url, config_dir)
            one_url = f"sqlite:///{tmp_path / f'one-{r}.db'}"
            spool(one_url, pages)
            one = _run_side("pipeline", [pages], one_url, config_dir)
            many_url = f"sqlite:///{tmp_path / f'many-{r}.db'}"
            spool(many_url, pages)
            many = _run_side("pipeline", [pages[i::workers] for i in range(workers)], many_url, config_dir)
            per_round.append({"both": both, "one": one, "many": many,
                              "bare_pages_per_s": both["pages"] / both["bare_cpu"],
                              "ratio": both["bare_cpu"] / both["newsmon_cpu"],
                              "speedup": many["pages_per_s"] / one["pages_per_s"]})
    return {
        "pages": len(pages),
        "rounds": rounds,
        "workers": workers,
        "bare_pages_per_s": statistics.median(r["bare_pages_per_s"] for r in per_round),
        "interleaved_pages_per_s": statistics.median(r["both"]["pages"] / r["both"]["newsmon_cpu"]
                                                     for r in per_round),
        "one_pages_per_s": statistics.median(r["one"]["pages_per_s"] for r in per_round),
        "many_pages_per_s": statistics.median(r["many"]["pages_per_s"] for r in per_round),
        "ratio": statistics.median(r["ratio"] for r in per_round),
        "speedup": statistics.median(r["speedup"] for r in per_round),
        "ratio_range": [min(r["ratio"] for r in per_round), max(r["ratio"] for r in per_round)],
        "speedup_range": [min(r["speedup"] for r in per_round), max(r["speedup"] for r in per_round)],
        "others_cores_many": statistics.median(r["many"]["others_cores"] for r in per_round),
        "cpu_parallelism_many": statistics.median(r["many"]["cpu"] / r["many"]["seconds"] for r in per_round),
        "stored": per_round[-1]["one"]["stored"],
        "dropped": per_round[-1]["one"]["dropped"],
        "per_round": [{k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "dropped"})
                       for k, v in r.items()} for r in per_round],
    }


# Where the processing time goes: cumulative time of these functions, as shares of the total.
STAGES = {
    "extraction (extract_page)": ("pipelines/extract.py", "extract_page"),
    "  trafilatura passes (bare_extraction)": ("trafilatura/core.py", "bare_extraction"),
    "tagging (Tagger.tag)": ("pipelines/tag.py", "tag"),
    "story keys (MinHash)": ("pipelines/identity.py", "story_keys"),
    "content hash": ("pipelines/identity.py", "content_hash"),
    "canonical URL + id": ("pipelines/identity.py", "doc_id"),
}


def profile(pages: list[Page], top: int = 12, work: Path | None = None) -> dict[str, Any]:
    """cProfile of one-process processing: stage shares and the functions with the most own time."""
    from pipelines.cycle import process_items
    from pipelines.models import CycleReport
    from pipelines.store.sqlite import inbox_key

    with tempfile.TemporaryDirectory(prefix="newsmon-bench-prof-", dir=work) as tmp:
        tmp_path = Path(tmp).resolve()
        config_dir = str(bench_config(tmp_path))
        url = f"sqlite:///{tmp_path / 'prof.db'}"
        spool(url, pages)
        ctx = _ready_context(pages, url, config_dir)
        keys = [inbox_key(FEED_ID, page.url) for page in pages]
        size = ctx.config.settings.batch_size
        profiler = cProfile.Profile()
        report = CycleReport()
        profiler.enable()
        for i in range(0, len(keys), size):
            process_items(ctx, keys[i:i + size], report)
        profiler.disable()
        ctx.close()
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    total = max((ct for (_f, _l, name), (_cc, _nc, _tt, ct, _callers) in raw.items()
                 if name == "process_items"), default=0.0) or stats.total_tt  # type: ignore[attr-defined]
    shares = {}
    for label, (file_end, func) in STAGES.items():
        seconds = sum(ct for (f, _l, name), (_cc, _nc, _tt, ct, _callers) in raw.items()
                      if name == func and f.endswith(file_end))
        shares[label] = seconds / total if total else 0.0
    store_seconds = sum(tt for (f, _l, _name), (_cc, _nc, tt, _ct, _callers) in raw.items()
                        if "sqlite3" in f or f.endswith("store/sqlite.py") or "method 'execute" in _name
                        or "method 'commit" in _name)
    shares["store (SQLite, own time)"] = store_seconds / total if total else 0.0
    own = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    hot = [{"function": f"{Path(f).name}:{line}({name})", "own_s": round(tt, 3), "calls": nc,
            "share": round(tt / total, 3) if total else 0.0}
           for (f, line, name), (_cc, nc, tt, _ct, _callers) in own]
    return {"pages": len(pages), "seconds": total, "stage_shares": shares, "hot": hot}


def rows(result: dict[str, Any]) -> list[Row]:
    r = result
    return [
        Row("1. bare trafilatura.extract, 1 process", f"{r['bare_pages_per_s']:.1f} pages/s",
            note=f"{r['pages']} real pages, CPU time, median of {r['rounds']} rounds"),
        Row("1. newsmon processing, 1 process", f"{r['one_pages_per_s']:.1f} pages/s",
            note=(f"wall clock, alone; {r['interleaved_pages_per_s']:.1f} pages/s by CPU time interleaved with bare; "
                  f"stored {r['stored']}, dropped {r['dropped'] or 'none'}")),
        Row("1. processing / bare trafilatura (1 process)", f"{r['ratio']:.2f}", f">= {TARGET_RATIO}",
            r["ratio"] >= TARGET_RATIO,
            note=(f"CPU time, page by page in one process; rounds "
                  f"{r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}")),
        Row(f"1. newsmon processing, {r['workers']} processes", f"{r['many_pages_per_s']:.1f} pages/s"),
        Row(f"1. {r['workers']} processes / 1 process", f"{r['speedup']:.2f}x", f">= {TARGET_SPEEDUP}x",
            r["speedup"] >= TARGET_SPEEDUP,
            note=(f"rounds {r['speedup_range'][0]:.2f}-{r['speedup_range'][1]:.2f}; the workers kept "
                  f"{r['cpu_parallelism_many']:.2f} cores busy while other processes used {r['others_cores_many']:.2f}")),
    ]


def profile_rows(result: dict[str, Any]) -> list[Row]:
    shares = result["stage_shares"]
    main = ("extraction (extract_page)", "story keys (MinHash)", "content hash", "tagging (Tagger.tag)",
            "store (SQLite, own time)")
    value = ", ".join(f"{k.split(' (')[0]} {shares[k]:.0%}" for k in main if k in shares)
    hot = "; ".join(f"{h['function']} {h['share']:.0%}" for h in result["hot"][:5])
    inner = shares.get("  trafilatura passes (bare_extraction)", 0.0)
    return [Row("1. where processing time goes (cProfile)", value,
                note=f"trafilatura passes alone {inner:.0%}; top own time: {hot}")]

"""Figure 7: the Elasticsearch backend on a real search node (OpenSearch 2.19, tests/engine/).

- Cycle time: full monitoring cycles (bench/memory.py's measured process: real HTTP from a local
  publisher, extraction, tagging, stories, alerts) writing to the node with each ``refresh`` mode of
  the store URL (wait_for, the default; true; false), each on a fresh index prefix.
- Bulk indexing: ``upsert_articles`` of synthetic articles (about 1,000 words each, refresh=false,
  as ``newsmon reindex`` writes) at several chunk sizes, documents per second.

The node runs on this machine with its data in memory (/dev/shm), a 1 GiB heap and serial GC,
sharing the two cores with the measured process: a production cluster on its own hosts, with
disks that fsync, differs in both directions. Needs java and mvn (skipped without them).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import Row

CHUNKS = (100, 500, 2000)
WORDS = ("ceasefire talks border crossing delegation mediators statement ministry officials province "
         "district strikes civilians forces agreement round venue spokesman security trade traders "
         "refugees returnees monitoring mechanism guarantee").split()


def _articles(count: int, seed: int) -> list[Any]:
    from pipelines.models import Article

    rng = random.Random(seed)
    out = []
    for n in range(count):
        url = f"https://bench.example/{seed}/{n}"
        text = " ".join(rng.choice(WORDS) for _ in range(1000))
        out.append(Article(id=hashlib.sha256(url.encode()).hexdigest()[:32], url=url, original_url=url,
                           feed_id="bench", desk="security", source="bench.example", title=f"Bench {n}",
                           text=text, content_hash=hashlib.sha256(text.encode()).hexdigest()[:32],
                           story_id=f"s{seed}-{n}", language="en", published="2025-10-20T08:00:00Z"))
    return out


def _bulk(url: str, docs: int) -> dict[int, float]:
    from pipelines.store.elasticsearch import open_store

    rates: dict[int, float] = {}
    for chunk in CHUNKS:
        store = open_store(f"elasticsearch+{url}", prefix="bench-bulk-" + secrets.token_hex(3), engine="opensearch",
                           refresh=False)
        try:
            store.bulk_chunk_size = chunk
            articles = _articles(docs, seed=chunk)
            store.upsert_articles(articles[:50])  # warm-up: mappings, JIT
            started = time.perf_counter()
            result = store.upsert_articles(articles[50:])
            seconds = time.perf_counter() - started
            if result.errors:
                raise RuntimeError(f"bulk at chunk {chunk}: {result.errors[0]}")
            rates[chunk] = (docs - 50) / seconds
        finally:
            store.close()
    return rates


def measure(pages: int = 300, bulk_docs: int = 5000, work: Path | None = None) -> dict[str, Any]:
    if not shutil.which("mvn"):
        raise FileNotFoundError("the search node needs mvn and java (tests/engine/)")
    from bench import memory
    from tests.engine.node import running_node

    cycles: dict[str, dict[str, Any]] = {}
    with running_node() as engine:
        for refresh in ("wait_for", "true", "false"):
            store_url = (f"elasticsearch+{engine.url}/?prefix=bench-{refresh.replace('_', '')}-{secrets.token_hex(3)}"
                         f"&engine=opensearch&refresh={refresh}")
            result = memory.measure(pages=pages, feeds=20, hosts=20, work=work, store_url=store_url)
            cycles[refresh] = result
        rates = _bulk(engine.url, bulk_docs)
    return {"pages": pages, "cycles": cycles, "bulk": rates, "bulk_docs": bulk_docs}


def rows(result: dict[str, Any]) -> list[Row]:
    out = []
    for refresh, r in result["cycles"].items():
        handled = r["stored"] + r["dropped"]
        note = (f"{handled} items in {r['seconds']:.1f} s over {r['cycles']} cycles; "
                f"stored {r['stored']}, dropped {r['reasons'] or 'none'}; errors {r['errors'][:1] or 'none'}")
        if handled == 0:
            note += "; the cycle found none of the items it had just spooled (visible only after the next refresh)"
        out.append(Row(f"7. cycles on the search node, refresh={refresh}", f"{r['pages_per_s']:.1f} pages/s",
                       note=note))
    for chunk, rate in result["bulk"].items():
        out.append(Row(f"7. bulk indexing on the search node, chunk {chunk}", f"{rate:.0f} docs/s",
                       note=f"{result['bulk_docs'] - 50} articles of 1,000 words, refresh=false"))
    return out

"""`python -m bench.whatif`: what would close the processing-throughput gap (figure 1)? Not run by `make bench`.

Measures, on the same real pages in one process (CPU time per page):
- extraction as configured (balanced pass and metadata) vs the same with the precision pass on pages
  whose text opens with the headline (newsmon.yaml extract.precision_pass) vs bare trafilatura.extract,
  with F1 of each;
- the identity step: normalise_text, content_hash, story_keys as they are, and two cheaper MinHash
  signatures written here only to size the possible gain (256 values from one shake_128 call per
  shingle; one-permutation hashing, one 64-bit hash per shingle). Either would change every stored
  story key, so adopting one is a migration, not a tweak.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import time
from typing import Any

from bench.common import load_pages


def _cpu_per_page(fn: Any, items: list[Any]) -> tuple[float, list[Any]]:
    started = time.process_time()
    out = [fn(item) for item in items]
    return (time.process_time() - started) / len(items), out


def _shake_signature(grams: set[bytes], num_perm: int = 256) -> list[int]:
    layout = f"<{num_perm}I"
    rows = [struct.unpack(layout, hashlib.shake_128(g).digest(4 * num_perm)) for g in grams]
    return list(map(min, zip(*rows, strict=True))) if rows else []


def _one_permutation_signature(grams: set[bytes], bins: int = 256) -> list[int]:
    """One 64-bit hash per shingle, the minimum kept per bin (one-permutation hashing; empty bins
    stay at the maximum here, where a real implementation would densify them)."""
    mins = [1 << 64] * bins
    for g in grams:
        h = int.from_bytes(hashlib.blake2b(g, digest_size=8).digest(), "little")
        b = h % bins
        if h < mins[b]:
            mins[b] = h
    return mins


def main() -> int:
    from pipelines import extract, identity
    from pipelines.evaluation import shingle_f1

    pages = load_pages()
    if not pages:
        print("no extraction pages", file=sys.stderr)
        return 1
    import trafilatura

    results: list[tuple[str, float, float]] = []

    def f1_of(texts: list[str]) -> float:
        return sum(shingle_f1(t, p.truth)[2] for t, p in zip(texts, pages, strict=True)) / len(pages)

    extract.extract_page(pages[0].html, pages[0].url)  # warm-up
    cpu, out = _cpu_per_page(lambda p: extract.extract_page(p.html, p.url), pages)
    texts = [o.text if o else "" for o in out]
    results.append(("extract_page as configured", cpu, f1_of(texts)))
    cpu, out = _cpu_per_page(lambda p: extract.extract_page(p.html, p.url, precision_pass=True), pages)
    results.append(("extract_page with the precision pass", cpu, f1_of([o.text if o else "" for o in out])))
    cpu, out = _cpu_per_page(lambda p: trafilatura.extract(p.html, url=p.url) or "", pages)
    results.append(("bare trafilatura.extract", cpu, f1_of(out)))
    print(f"{'extraction':40} {'ms/page':>8} {'pages/s':>8} {'F1':>6}")
    for name, cpu, f1 in results:
        print(f"{name:40} {cpu * 1000:8.1f} {1 / cpu:8.1f} {f1:6.3f}")

    print(f"\n{'identity step (on extracted text)':40} {'ms/page':>8}")
    for name, fn in (
        ("normalise_text", lambda t: identity.normalise_text(t)),
        ("content_hash", lambda t: identity.content_hash(t)),
        ("story_keys (pipelines.identity as it is)", lambda t: identity.story_keys("", t)),
        ("shingles only (_grams)", lambda t: identity.shingles("", t)),
        ("shake_128 MinHash (1 call per shingle)", lambda t: _shake_signature(identity.shingles("", t))),
        ("one-permutation MinHash (1 blake2b/shingle)", lambda t: _one_permutation_signature(identity.shingles("", t))),
    ):
        cpu, _ = _cpu_per_page(fn, texts)
        print(f"{name:40} {cpu * 1000:8.1f}")
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(f"\n{len(pages)} pages, {words:.0f} words of extracted text on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())

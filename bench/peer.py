"""Figure 6: news-please (PyPI) beside newsmon's extraction on the same pages, in the same run.

news-please pulls in Scrapy, newspaper4k, boto3 and pins that clash with the project's Airflow
stack, so it lives in its own venv (var/bench-venv, created here on first use, pinned by
bench/constraints-newsplease.txt) and runs as a subprocess (bench/newsplease_runner.py) that
reads the page files and prints JSON. F1 is pipelines.evaluation.shingle_f1 (4-token shingles,
averaged per page) for every extractor; pages/s is CPU time of the extraction call only, on
both sides, as evaluate_extraction counts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import EXTRACTION_DIR, REPO_ROOT, Page, Row

BENCH_VENV = REPO_ROOT / "var" / "bench-venv"
CONSTRAINTS = Path(__file__).with_name("constraints-newsplease.txt")
RUNNER = Path(__file__).with_name("newsplease_runner.py")
NEWSPLEASE = "news-please==1.6.16"


def ensure_venv(venv: Path = BENCH_VENV) -> Path:
    """The peer venv's python, creating/syncing it when the constraints changed; RuntimeError saying why not."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = hashlib.sha256(CONSTRAINTS.read_bytes() + NEWSPLEASE.encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    steps = []
    if not python.exists():
        steps.append([sys.executable, "-m", "venv", str(venv)])
    steps.append([str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), NEWSPLEASE])
    for step in steps:
        print(f"bench: {' '.join(step)}", file=sys.stderr, flush=True)
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
            raise RuntimeError(f"cannot set up the news-please venv ({' '.join(step[:4])}...): {tail}")
    stamp.write_text(wanted)
    return python


def run_newsplease(pages: list[Page], python: Path) -> dict[str, Any]:
    """news-please's text per page id, its CPU seconds and version (subprocess in its own venv)."""
    request = json.dumps({"pages": [{"id": f"{p.set}/{p.id}", "url": p.url, "path": p.path} for p in pages]})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), str(RUNNER)], input=request, capture_output=True, text=True,
                          env=env, timeout=3600, start_new_session=True)
    texts: dict[str, str] = {}
    final: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("done"):
            final = record
        else:
            texts[record["id"]] = record["text"]
    if done.returncode != 0 or not final:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"news-please runner failed (exit {done.returncode}): {tail}")
    return {"texts": texts, **final}


def _ours(pages: list[Page]) -> dict[str, dict[str, float]]:
    """newsmon's extraction per set: evaluate_extraction on the benchmark folders when these are
    exactly their pages, else the same measure inline (extract_page, shingle_f1, CPU time)."""
    from pipelines.evaluation import evaluate_extraction, shingle_f1
    from pipelines.extract import extract_page

    out: dict[str, dict[str, float]] = {}
    for name in sorted({p.set for p in pages}):
        subset = [p for p in pages if p.set == name]
        folder = EXTRACTION_DIR / name
        if subset[0].path.startswith(str(folder)) and len(subset) == len(list((folder / "html").glob("*.html.gz"))):
            result = evaluate_extraction(str(folder))
            out[name] = {"pages": result["pages"], "f1": result["f1"], "pages_per_s": result["pages_per_s"]}
            continue
        scores, cpu = [], 0.0
        for page in subset:
            started = time.process_time()
            extracted = extract_page(page.html, page.url)
            cpu += time.process_time() - started
            scores.append(shingle_f1(extracted.text if extracted else "", page.truth)[2])
        out[name] = {"pages": len(subset), "f1": sum(scores) / len(scores), "pages_per_s": len(subset) / cpu}
    return out


def _bare_trafilatura(pages: list[Page]) -> dict[str, dict[str, float]]:
    import trafilatura

    from pipelines.evaluation import shingle_f1

    out: dict[str, dict[str, float]] = {}
    for name in sorted({p.set for p in pages}):
        subset = [p for p in pages if p.set == name]
        scores, cpu = [], 0.0
        for page in subset:
            started = time.process_time()
            text = trafilatura.extract(page.html, url=page.url) or ""
            cpu += time.process_time() - started
            scores.append(shingle_f1(text, page.truth)[2])
        out[name] = {"pages": len(subset), "f1": sum(scores) / len(scores), "pages_per_s": len(subset) / cpu}
    return out


def measure(pages: list[Page], python: Path | None = None) -> dict[str, Any]:
    """F1 and pages/s per set for newsmon, news-please and bare trafilatura defaults."""
    from pipelines.evaluation import shingle_f1

    if not pages:
        raise ValueError("no pages to measure")
    python = python or ensure_venv()
    peer = run_newsplease(pages, python)
    theirs: dict[str, dict[str, float]] = {}
    for name in sorted({p.set for p in pages}):
        subset = [p for p in pages if p.set == name]
        scores = [shingle_f1(peer["texts"].get(f"{p.set}/{p.id}", ""), p.truth)[2] for p in subset]
        theirs[name] = {"pages": len(subset), "f1": sum(scores) / len(scores)}
    # news-please's CPU is reported in total only; per-set rates would need per-page times (kept simple)
    peer_rate = len(pages) / peer["cpu"] if peer["cpu"] else 0.0
    for stats in theirs.values():
        stats["pages_per_s"] = peer_rate
    return {"pages": len(pages), "newsmon": _ours(pages), "newsplease": theirs,
            "trafilatura": _bare_trafilatura(pages), "newsplease_version": peer.get("version"),
            "newsplease_failures": peer.get("failures", 0)}


def _overall(per_set: dict[str, dict[str, float]]) -> tuple[float, float]:
    """Page-weighted F1 over all sets and pages per CPU-second over all sets."""
    pages = sum(s["pages"] for s in per_set.values())
    f1 = sum(s["f1"] * s["pages"] for s in per_set.values()) / pages
    seconds = sum(s["pages"] / s["pages_per_s"] for s in per_set.values() if s["pages_per_s"])
    return f1, (pages / seconds if seconds else 0.0)


def rows(result: dict[str, Any]) -> list[Row]:
    r = result
    out = []
    for name in sorted(r["newsmon"]):
        ours, theirs, bare = r["newsmon"][name], r["newsplease"][name], r["trafilatura"][name]
        out.append(Row(f"6. extraction F1, {name} ({ours['pages']} pages)",
                       f"newsmon {ours['f1']:.3f} | news-please {theirs['f1']:.3f}",
                       note=f"trafilatura defaults {bare['f1']:.3f}"))
    ours_f1, ours_rate = _overall(r["newsmon"])
    theirs_f1, theirs_rate = _overall(r["newsplease"])
    bare_f1, bare_rate = _overall(r["trafilatura"])
    out.append(Row(f"6. extraction F1, all {r['pages']} pages", f"newsmon {ours_f1:.3f} | news-please {theirs_f1:.3f}",
                   note=f"trafilatura defaults {bare_f1:.3f}; news-please {r['newsplease_version']}, "
                        f"failed on {r['newsplease_failures']} of {r['pages']} pages"))
    out.append(Row("6. extraction speed (CPU time, 1 core)",
                   f"newsmon {ours_rate:.1f} | news-please {theirs_rate:.1f} pages/s",
                   note=f"trafilatura defaults {bare_rate:.1f} pages/s"))
    return out

"""`python -m bench [--only tagger,polling]`: run the benchmarks, print one table of figures vs targets.

Results also go to var/bench/results.json and var/bench/results.md (the table as Markdown, for
docs/performance.md). Missed targets are reported, never an error: the exit status is 1 only
when a benchmark itself broke.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import EXTRACTION_DIR, REPO_ROOT, CpuWatch, Row, load_pages, machine_facts

NAMES = ("throughput", "profile", "tagger", "peer", "polling", "memory", "watch", "airflow", "engine")
ALIASES = {"latency": ("watch", "airflow"), "all": NAMES, "quick": ("throughput", "tagger", "polling", "watch")}


def _selected(only: str | None) -> list[str]:
    if not only:
        return list(NAMES)
    chosen: list[str] = []
    for name in (part.strip().lower() for part in only.split(",") if part.strip()):
        expanded = ALIASES.get(name, (name,))
        for one in expanded:
            if one not in NAMES:
                raise SystemExit(f"bench: unknown benchmark {one!r} (choose from {', '.join(NAMES)}, "
                                 f"or {', '.join(ALIASES)})")
            if one not in chosen:
                chosen.append(one)
    return [n for n in NAMES if n in chosen]  # always in the canonical order


def _jobs(args: argparse.Namespace, pages_cache: dict[str, Any]) -> dict[str, Callable[[], list[Row]]]:
    from bench import engine, latency, memory, peer, polling, tagger, throughput

    work = Path(args.work)

    def pages() -> list[Any]:
        if "pages" not in pages_cache:
            pages_cache["pages"] = load_pages()
        if not pages_cache["pages"]:
            raise _Skip(f"no extraction pages at {EXTRACTION_DIR}")
        return pages_cache["pages"]

    def search_node() -> dict[str, Any]:
        if not EXTRACTION_DIR.exists():
            raise _Skip(f"no extraction pages at {EXTRACTION_DIR}")
        try:
            return engine.measure(work=work)
        except FileNotFoundError as err:
            raise _Skip(str(err)) from None

    def grouped_polling() -> list[Row]:
        result = polling.measure(rounds=args.rounds, order="grouped", work=work)
        return polling.rows(result, label="grouped")

    return {
        "throughput": lambda: throughput.rows(throughput.measure(pages(), rounds=args.rounds, work=work)),
        "profile": lambda: throughput.profile_rows(throughput.profile(pages(), work=work)),
        "tagger": lambda: tagger.rows(tagger.measure(pages() if EXTRACTION_DIR.exists() else [])),
        "peer": lambda: peer.rows(peer.measure(pages())),
        "polling": lambda: polling.rows(polling.measure(rounds=args.rounds, work=work)) + grouped_polling(),
        "memory": lambda: memory.rows(memory.measure(pages=args.memory_pages, work=work)),
        "watch": lambda: latency.rows_watch(latency.measure_watch(samples=args.watch_samples, work=work)),
        "airflow": lambda: latency.rows_airflow(latency.measure_airflow(samples=args.airflow_samples, work=work)),
        "engine": lambda: engine.rows(search_node()),
    }


class _Skip(Exception):
    """A benchmark whose input is missing here (reported as skipped, not as broken)."""


def _figure_number(row: Row) -> int:
    head = row.figure.split(".", 1)[0]
    return int(head) if head.isdigit() else 99


def table(rows: list[Row], markdown: bool = False) -> str:
    header = ("figure", "value", "target", "met?")
    body = [(r.figure, r.value, r.target or "-", r.met_text()) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body]
        return "\n".join(lines)
    widths = [min(70, max(len(line[i]) for line in [header, *body])) for i in range(len(header))]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in body]
    return "\n".join(out)


def notes(rows: list[Row]) -> str:
    return "\n".join(f"- {r.figure}: {r.note}" for r in rows if r.note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(NAMES)} "
                                                     f"(aliases: {', '.join(ALIASES)})")
    parser.add_argument("--rounds", type=int, default=3, help="throughput and polling rounds (default 3)")
    parser.add_argument("--memory-pages", type=int, default=10_000, help="pages for the memory figure")
    parser.add_argument("--watch-samples", type=int, default=15)
    parser.add_argument("--airflow-samples", type=int, default=5)
    parser.add_argument("--work", default=str(REPO_ROOT / "var" / "bench"), help="temp files and results")
    args = parser.parse_args(argv)
    chosen = _selected(args.only)
    Path(args.work).mkdir(parents=True, exist_ok=True)

    facts = machine_facts()
    print(f"bench: {facts['nproc']} x {facts['cpu']}, {facts['memory_gib']} GiB, Python {facts['python']}, "
          f"load {facts['loadavg_at_start']}; running {', '.join(chosen)}", file=sys.stderr, flush=True)
    pages_cache: dict[str, Any] = {}
    jobs = _jobs(args, pages_cache)
    rows: list[Row] = []
    timings: dict[str, float] = {}
    broken = False
    overall = CpuWatch()
    run_started = time.perf_counter()
    for name in chosen:
        started = time.perf_counter()
        watch = CpuWatch()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            produced = jobs[name]()
        except _Skip as skip:
            produced = [Row(f"{name}", "skipped", note=str(skip))]
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            broken = True
            traceback.print_exc()
            produced = [Row(f"{name}", f"ERROR: {type(exc).__name__}", note=" ".join(str(exc).split())[:300])]
        timings[name] = time.perf_counter() - started
        others = watch.others_cores()
        print(f"bench: {name} done in {timings[name]:.0f} s (other processes used {others:.2f} cores meanwhile)",
              file=sys.stderr, flush=True)
        for row in produced:
            print(f"  {row.figure}: {row.value} [{row.met_text()}]", file=sys.stderr, flush=True)
        rows.extend(produced)
        timings[f"{name}_others_cores"] = others
    rows.sort(key=_figure_number)  # the order, whatever order they ran in
    total = time.perf_counter() - run_started
    facts["others_cores_during_run"] = round(overall.others_cores(), 2)
    facts["seconds"] = round(total)

    print()
    print(table(rows))
    print()
    print("notes:")
    print(notes(rows))
    print(f"\n{facts['nproc']} x {facts['cpu']}, {facts['memory_gib']} GiB, Python {facts['python']}, "
          f"{facts['date']}; took {total:.0f} s; other processes used {facts['others_cores_during_run']} cores "
          f"on average meanwhile")
    results = {"machine": facts, "timings": {k: round(v, 2) for k, v in timings.items()},
               "rows": [r.__dict__ for r in rows]}
    work = Path(args.work)
    (work / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (work / "results.md").write_text(table(rows, markdown=True) + "\n\n" + notes(rows) + "\n", encoding="utf-8")
    print(f"(also in {work / 'results.json'} and {work / 'results.md'})")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

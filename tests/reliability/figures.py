"""Print the figures of docs/reliability.md by running the reliability scenarios (not a test).

    .venv/bin/python -m tests.reliability.figures            # everything, ~2 minutes
    .venv/bin/python -m tests.reliability.figures --trials 5 # fewer SIGKILL trials

The scenarios are the ones the suite asserts on (tests/reliability/*.py); this script only runs
them and prints what happened, as Markdown. Every scenario still asserts, so a broken promise
stops the script with the assertion that failed. Ports and temporary paths are normalised so two
runs can be compared.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _norm(text: str) -> str:
    text = re.sub(r"(://(?:\[[^\]]+\]|[^/\s:@]+)):\d+", r"\1:PORT", text)
    text = re.sub(r"/tmp/[^\s:;)]+", "<tmp>", text)
    text = re.sub(r"\b[0-9a-f]{16,32}\b", "<id>", text)
    return text.replace("|", "\\|")


def _cut(text: str, limit: int = 150) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Capture:
    """Records every CycleReport a module's run_cycle returns (for scenarios written as tests)."""

    def __init__(self, module: Any):
        self.module, self.reports = module, []
        self.original: Callable = module.run_cycle

    def __enter__(self) -> Capture:
        def spy(*args, **kwargs):
            report = self.original(*args, **kwargs)
            self.reports.append(report)
            return report

        self.module.run_cycle = spy
        return self

    def __exit__(self, *exc: object) -> None:
        self.module.run_cycle = self.original


def section(title: str) -> None:
    print(f"\n### {title}\n")


def bad_inputs(work: Path) -> None:
    from tests.reliability.bad_inputs import CASES, run_case

    section("Bad inputs, each next to a well-behaved feed (tests/reliability/test_bad_inputs.py)")
    print("| case | input | what the cycle reported for the bad feed | bad feed's items stored | "
          "neighbour's new items stored | stored articles lost |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        outcome = run_case(case, work / case.name)
        if case.expect == "error":
            said = outcome.bad_state.last_error or ""
            said = said.split("): ", 1)[-1]
            bad_stored = "— (feed failed; ETag kept)"
        else:
            lines = [e for e in outcome.bad_lines if "/nowhere/" not in e]
            said = "; ".join(lines[:1]) or "nothing: parsed cleanly"
            extra = {k: v for k, v in outcome.extra.items() if k not in ("maxrss_growth_mb", "page_errors")}
            bad_stored = ", ".join(f"{k}={v}" for k, v in extra.items()) or str(outcome.report.articles_stored - 2)
        print(f"| {case.name} | {_norm(case.what)} | {_cut(_norm(said))} | {_norm(bad_stored)} | "
              f"{outcome.good_new_stored}/2 | {outcome.lost} |")
        if "page_errors" in outcome.extra:
            hostile = outcome.extra["page_errors"]
    print("\nHostile pages (each item stored from its feed text; one line per page):\n")
    print("| page | line |\n|---|---|")
    for path, line in hostile.items():
        print(f"| {path} | {_cut(_norm(line), 120)} |")


def retry_after(work: Path) -> None:
    import tests.reliability.test_retry_after as module

    section("Retry-After (tests/reliability/test_retry_after.py)")
    (work / "retry").mkdir(parents=True)
    with Capture(module) as capture:
        module.test_retry_after_is_kept_skipped_then_cleared(work / "retry")
    first, second = capture.reports[0], capture.reports[1]
    print("| cycle | line about the busy feed |\n|---|---|")
    for n, report in ((1, first), (2, second)):
        line = next(e for e in report.errors if e.startswith("feed busy"))
        line = re.sub(r"20\d\d-\d\d-\d\dT[0-9:]+Z", "<T>", line)
        print(f"| {n} | {_cut(_norm(line), 170)} |")
    print("\nCycle 2 made no request to the busy feed (and polled the other one); a new process read the "
          "pause from the store; once the time had passed the feed was polled, its item stored and the "
          "pause cleared. A Retry-After of 10^9 s is capped at 24 h.")


def real_feeds(work: Path) -> None:
    from tests.reliability.real_feeds import real_feed_files, run_real_feeds

    section("Every real feed through the whole pipeline (tests/reliability/test_real_feeds_pipeline.py)")
    if not real_feed_files():
        print("Skipped: /work/shared/data/feeds is absent.")
        return
    runs = run_real_feeds(work / "real")
    print("| feed file | items | stored | dropped (reason: n) | feed health |\n|---|---|---|---|---|")
    for run in runs:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(run.dropped.items())) or "—"
        print(f"| {run.name} | {run.items} | {run.stored} | {dropped} | {_cut(_norm(run.problem or 'ok'), 90)} |")
    total = sum(r.items for r in runs)
    print(f"\n{len(runs)} feeds, {total} items, {sum(r.stored for r in runs)} stored, "
          f"{total - sum(r.stored for r in runs)} dropped for a named reason, 0 unaccounted, 0 processing errors.")


def ssrf(work: Path) -> None:
    import tests.reliability.test_ssrf as module
    from tests.reliability.harness import Victim, ipv6_loopback_available

    section("SSRF (tests/reliability/test_ssrf.py)")
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"] + (["::1"] if ipv6_loopback_available() else [])
    victims = {h: Victim(h) for h in hosts}
    try:
        (work / "ssrf").mkdir(parents=True)
        with Capture(module) as capture:
            module.test_internal_targets_in_items_redirects_and_feed_urls_receive_nothing(work / "ssrf", victims)
        report = capture.reports[0]
        refused = [e for e in report.errors if "refused" in e]
        print(f"Refused fetch attempts in the steering cycle: {len(refused)} (feed URLs, item links and redirect "
              f"targets); connections accepted by the victims during it: 0 on each of {', '.join(hosts)} "
              f"(the control fetch afterwards, with loopback allowed, reached them).\n")
        print("| attempt | line |\n|---|---|")
        for line in refused:
            target = line.split(": page ", 1)[-1].split(": ", 1)[0] if ": page " in line else line.split(" (")[0]
            print(f"| {_norm(target)} | {_cut(_norm(line.split(': refused: ', 1)[-1]), 110)} |")
    finally:
        for victim in victims.values():
            victim.close()


def crashes(work: Path, trials: int) -> None:
    from tests.reliability.crash import kill_trials, overlap_rounds

    section(f"SIGKILL at random points, then a rerun ({trials} seeded trials; tests/reliability/"
            "test_crash_and_overlap.py)")
    started = time.monotonic()
    expected, results = kill_trials(work / "kill", trials=trials)
    took = time.monotonic() - started
    print(f"Reference: {len(expected.articles)} articles in {len(expected.stories)} stories, "
          f"{len(expected.alerts)} alerts, one webhook channel.\n")
    print("| trial | killed after \"ready\" (s) | where the kill landed | state at the kill (feeds, inbox, "
          "articles, alerts, undelivered) | after rerun: articles, alerts | webhook POSTs (raw / unique) |")
    print("|---|---|---|---|---|---|")
    for t in results:
        at = t.at_kill
        state = (f"{at.get('feeds_recorded', 0)}, {at.get('inbox', 0)}, {at.get('articles', 0)}, "
                 f"{at.get('alerts', 0)}, {at.get('undelivered', 0)}") if at else "no store yet"
        print(f"| {t.number} | {t.kill_after:.3f} | {t.phase} | {state} | "
              f"{len(expected.articles)} = ref, {len(expected.alerts)} = ref | {t.raw} / {t.unique} |")
    phases = collections.Counter(t.phase for t in results)
    repeats = sum(t.raw - t.unique for t in results)
    print(f"\nKill points: {dict(phases)}. Every trial ended in the reference state. Raw re-deliveries "
          f"(the same Idempotency-Key POSTed again after a kill between sending and recording): {repeats} "
          f"in {trials} trials; unique effects at the receiver: exactly one per alert in every trial. "
          f"Wall time {took:.0f} s.")

    section("Two cycles started at once (3 rounds)")
    expected, rounds = overlap_rounds(work / "overlap", rounds=3)
    print("| round | articles stored by A / B | alerts fired by A / B | items new A / B | webhook POSTs "
          "(raw / unique) |\n|---|---|---|---|---|")
    for r in rounds:
        a, b = r.reports
        print(f"| {r.round} | {a['articles_stored']} / {b['articles_stored']} | {a['alerts_fired']} / "
              f"{b['alerts_fired']} | {a['items_new']} / {b['items_new']} | {r.raw} / {r.unique} |")
    print(f"\nReference: {len(expected.articles)} articles, {len(expected.alerts)} alerts. Each round: the sums "
          "match the reference, every alert id once, every alert applied once by the receiver.")


def faults(work: Path) -> None:
    import tests.reliability.test_elasticsearch_outage as es_module
    import tests.reliability.test_store_faults as module

    section("Store and receiver faults (tests/reliability/test_store_faults.py, test_elasticsearch_outage.py)")
    print("Each scenario: 3 articles stored first, then 13 new items published; the fault hits the second "
          "cycle; the third cycle runs without it.\n")
    print("| fault | the faulty cycle's line(s) about it | items spooled / articles stored in the faulty cycle | "
          "next cycle |\n|---|---|---|---|")
    scenarios = [
        ("SQLite locked for the whole cycle", module, module.test_locked_store_during_polling),
        ("SQLite locked after 5 items", module, module.test_locked_store_in_the_middle_of_processing),
        ("disk full after 3 items", module, module.test_disk_full_in_the_middle_of_processing),
        ("disk full while spooling", module, module.test_disk_full_while_spooling_keeps_the_feed_state),
    ]
    for name, mod, scenario in scenarios:
        target = work / re.sub(r"\W+", "-", name)
        target.mkdir(parents=True)
        with Capture(mod) as capture:
            scenario(target)
        faulty = capture.reports[1]
        lines = [e for e in faulty.errors if "store" in e or "alert deliveries" in e]
        print(f"| {name} | {_cut(_norm(' / '.join(lines)), 300)} | {faulty.items_new} / {faulty.articles_stored} | "
              f"all 16 stored once, inbox empty |")
    try:
        import osmem_server

        server = osmem_server.OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    except Exception as err:  # noqa: BLE001 - the figure is skipped, the test says why
        print(f"| Elasticsearch stand-in stopped mid-bulk | (stand-in unavailable: {err}) | | |")
    else:
        from tests.reliability.test_elasticsearch_outage import test_cluster_stopped_mid_bulk_loses_nothing
        from tests.store.conftest import STANDIN_CLIENT_KWARGS, STANDIN_OPTIONS, EsTarget

        try:
            from pipelines.store.elasticsearch import open_store

            open_store(f"elasticsearch+{server.url}", **STANDIN_OPTIONS, **STANDIN_CLIENT_KWARGS).close()
            target = EsTarget(f"elasticsearch+{server.url}", True, {**STANDIN_OPTIONS, **STANDIN_CLIENT_KWARGS},
                              lambda: None)
            (work / "es").mkdir(parents=True)
            with Capture(es_module) as capture:
                test_cluster_stopped_mid_bulk_loses_nothing(work / "es", target)
            faulty = capture.reports[1]
            lines = [e for e in faulty.errors if e.startswith("store ")]
            print(f"| Elasticsearch stand-in stopped mid-bulk (half the bulk applied) | {_cut(_norm(lines[0]), 300)} | "
                  f"{faulty.items_new} / {faulty.articles_stored} | all 16 stored once, inbox empty |")
        finally:
            server.close()
    (work / "webhook").mkdir(parents=True)
    with Capture(module) as capture:
        module.test_webhook_receiver_down_then_back(work / "webhook")
    first, _second, third = capture.reports[:3]
    down = [e for e in first.errors if "POST failed" in e or "deferred" in e]
    print(f"| webhook receiver down for two cycles (sample coverage) | {_cut(_norm(' / '.join(down)), 300)} | "
          f"{first.items_new} / {first.articles_stored}; alerts fired {first.alerts_fired}, delivered "
          f"{first.alerts_delivered}, all queued (still queued after cycle 2) | receiver back: "
          f"{third.alerts_delivered} delivered, each applied once |")


def fuzz(work: Path) -> None:
    from tests.reliability.fuzz import run_fuzz

    section("Mutation fuzzing through a whole cycle (tests/reliability/test_fuzz.py)")
    result = run_fuzz(work / "fuzz")
    print(f"{result.mutants} mutants of {result.sources} source feeds (seed 7): "
          f"{', '.join(f'{k} {v}' for k, v in sorted(result.kinds.items()))}.\n")
    print(f"- feeds polled: {result.mutants}; parsed (with or without problems): {result.feeds_ok}; "
          f"failed with one line: {result.feeds_failed}, of which the parser itself raised: {result.parse_failures}")
    from pipelines.feeds import PARSE_DROP_REASONS

    # entries the feed parser could not read never reached the inbox: not "processed"
    processed_drops = sum(n for reason, n in result.dropped.items() if reason not in PARSE_DROP_REASONS)
    print(f"- items queued: {result.items_new}; processed this cycle (bounded by batch_size 2 x 64): "
          f"{result.stored + processed_drops} (stored {result.stored}, dropped "
          f"{dict(result.dropped) or 0}); waiting in the inbox: {result.waiting}; unaccounted: 0")
    print(f"- exceptions escaping the cycle: 0; processing errors: 0; lookups stopped by the no-egress guard: "
          f"{result.blocked_lookups}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="SIGKILL trials (default 20)")
    parser.add_argument("--only", action="append", help="run only these sections (bad, retry, real, ssrf, "
                                                        "crash, faults, fuzz)")
    args = parser.parse_args(argv)
    sections: dict[str, Callable[[Path], None]] = {
        "bad": bad_inputs, "retry": retry_after, "real": real_feeds, "ssrf": ssrf,
        "crash": lambda w: crashes(w, args.trials), "faults": faults, "fuzz": fuzz,
    }
    print("## Figures\n")
    print(f"Produced by `.venv/bin/python -m tests.reliability.figures` on {time.strftime('%Y-%m-%d')} "
          f"(Python {sys.version.split()[0]}).")
    timings = {}
    with tempfile.TemporaryDirectory(prefix="newsmon-figures-") as tmp:
        for name, run in sections.items():
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            run(Path(tmp) / name)
            timings[name] = time.monotonic() - started
    print("\nWall time per section (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

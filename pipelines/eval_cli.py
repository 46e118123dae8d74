"""`newsmon eval ...`: extraction, tagging and story figures from the command line (docs/accuracy.md).

eval extraction DIR   F1 over 4-token shingles, date accuracy, pages/s on a benchmark folder
eval tagging FILE...  relevance, development, alert and per-topic figures on labelled JSONL
eval stories FILE...  how often near-duplicate and unrelated pairs share a story key
eval replay FILE...   dated labelled reports replayed through real daily cycles: event alerts (eval_replay.py)
eval all              all of it on the shared data and our fixtures; exit 1 when a target is missed
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import evaluation as ev
from pipelines.errors import NewsmonError

EXIT_OK, EXIT_FAIL = 0, 1
REPO = Path(__file__).resolve().parents[1]
# Our labelled sets, in the order docs/accuracy.md reports them: tuned on, held out, and two sets
# written blind (each before the tagger had seen it; both were tuned on after their first run).
TAGGING_SETS = ("cases", "holdout", "blind", "blind2")


def add_eval_parser(subparsers, parents: Iterable[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """`newsmon eval`: the lead's build_parser() calls this with its subparsers (and common parents)."""
    parents = list(parents)
    parser = subparsers.add_parser("eval", parents=parents, help="measure extraction, tagging and story accuracy",
                                   description="Accuracy figures on labelled data (method: docs/accuracy.md).")
    sub = parser.add_subparsers(dest="eval_command", metavar="WHAT", required=True)

    p = sub.add_parser("extraction", parents=parents, help="text extraction on a benchmark folder")
    p.add_argument("dir", help="a folder of ../shared/data/extraction (scrapinghub or wcxb layout)")
    p.add_argument("--predictions", metavar="OUT.jsonl", help='write {"id","text"} per page here')
    p.add_argument("--limit", type=int, default=None, help="only the first N pages (by id)")
    p.add_argument("--precision-pass", action="store_true",
                   help="with the second, stricter pass (newsmon.yaml extract.precision_pass: true)")
    p.set_defaults(func=cmd_eval_extraction)

    p = sub.add_parser("tagging", parents=parents, help="topic tagging and development detection on labelled JSONL")
    p.add_argument("paths", nargs="+", metavar="FILE.jsonl",
                   help='labelled JSONL ({"id","title","text","relevant","development","topics"} or the shared '
                        "articles' topic_scope records), or a folder of them; all are pooled into one set")
    p.add_argument("--errors", action="store_true", help="list every case the tagger got wrong")
    p.add_argument("--model", action="store_true",
                   help="rules plus model: the learned reader (pipelines/data/devmodel.json) where the rules find "
                        "no development")
    p.add_argument("--model-threshold", type=float, default=None, metavar="P",
                   help="with --model: the probability it needs (default: the one stored in the model file)")
    p.set_defaults(func=cmd_eval_tagging)

    p = sub.add_parser("stories", parents=parents, help="near-duplicate story keys on pairs of documents")
    p.add_argument("paths", nargs="+", metavar="FILE.jsonl",
                   help='JSONL {"id","story","title","text"}: same story = near-duplicates, else unrelated; '
                        "a record without story is a story of its own")
    p.add_argument("--synthetic-copies", action="store_true",
                   help="add a mechanical syndicated copy of every record without a story label")
    p.add_argument("--errors", action="store_true", help="list missed and wrongly merged pairs")
    p.set_defaults(func=cmd_eval_stories)

    from pipelines.eval_replay import add_replay_parser

    add_replay_parser(sub, parents)

    p = sub.add_parser("all", parents=parents, help="every evaluation; exit 1 when a target is missed")
    p.add_argument("--data", default=None,
                   help="the shared data folder (env NEWSMON_SHARED_DATA, default ../shared/data beside the repo)")
    p.add_argument("--fixtures", default=str(REPO / "tests" / "fixtures"),
                   help="folder holding tagging/, stories/ and chronologies/ JSONL (default tests/fixtures)")
    p.add_argument("--no-extraction", action="store_true", help="skip the (slowest) extraction benchmarks")
    p.add_argument("--extraction-limit", type=int, default=None,
                   help="only the first N pages of each extraction set (floors are then not checked)")
    p.set_defaults(func=cmd_eval_all)
    return parser


# --- shared plumbing ------------------------------------------------------------------------------


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, default=str) if getattr(args, "json", False) else text)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _tagger_and_rules(config: str | None) -> tuple[Any, list[Any] | None]:
    """The tagger of config/topics.yaml and the enabled rules of config/alerts.yaml (None if absent)."""
    from pipelines.config import config_dir_from
    from pipelines.tag import Tagger, load_taxonomy_file

    config_dir = config_dir_from(config)
    taxonomy = load_taxonomy_file(os.path.join(config_dir, "topics.yaml"))
    rules = None
    if os.path.isfile(os.path.join(config_dir, "alerts.yaml")):
        rules = ev.load_alert_rules(config_dir, taxonomy.topic_ids(), taxonomy.development_types())
    return Tagger(taxonomy), rules


def _tagging_on(paths: list[str], tagger: Any, rules: list[Any] | None) -> dict[str, Any]:
    tx = tagger.taxonomy
    cases = ev.load_labelled(paths, tx.topic_ids(), tx.development_types())
    return ev.evaluate_tagging(cases, tagger, rules)


# --- text renderings ------------------------------------------------------------------------------


def extraction_text(name: str, result: dict[str, Any]) -> str:
    return (f"{name}: {result['pages']} pages  P {_fmt(result['precision'])}  R {_fmt(result['recall'])}  "
            f"F1 {_fmt(result['f1'])}  date accuracy {_fmt(result['date_accuracy'])}  "
            f"{result['pages_per_s']:.1f} pages/s")


def tagging_summary(result: dict[str, Any]) -> list[str]:
    rel, dev, nodev = result["relevance"], result["development"], result["false_development"]
    lines = [
        f"cases {result['cases']} ({result['relevant_cases']} relevant)",
        f"relevance            P {_fmt(rel['precision'])}  R {_fmt(rel['recall'])}  F1 {_fmt(rel['f1'])}"
        f"  (tp {rel['tp']} fp {rel['fp']} fn {rel['fn']} tn {rel['tn']})",
        f"development accuracy {_fmt(dev['accuracy'])} ({dev['correct']}/{dev['cases']} cases with one)",
        f"false developments   {_fmt(nodev['rate'])} ({nodev['false']}/{nodev['cases']} cases without one)",
    ]
    alerts = result.get("alerts")
    if alerts is not None:
        lines.append(f"alert precision      {_fmt(alerts['precision'])} ({alerts['correct']}/{alerts['predicted']}"
                     f" alerts)  recall {_fmt(alerts['recall'])} (of {alerts['expected']})")
    worthy = result["alert_worthy"]
    lines.append(f"alert-worthy prec.   {_fmt(worthy['precision'])} ({worthy['correct']}/{worthy['predicted']})")
    return lines


def tagging_text(result: dict[str, Any], show_errors: bool) -> str:
    lines = tagging_summary(result)
    if result["topics"]:
        lines.append("")
        lines.append(f"{'topic':26} {'P':>6} {'R':>6} {'F1':>6} {'support':>8}   (over {result['topic_cases']} cases)")
        for topic_id, row in result["topics"].items():
            lines.append(f"{topic_id:26} {_fmt(row['precision']):>6} {_fmt(row['recall']):>6} {_fmt(row['f1']):>6} "
                         f"{row['support']:>8}")
        micro = result["topics_micro"]
        lines.append(f"{'(all topics, micro)':26} {_fmt(micro['precision']):>6} {_fmt(micro['recall']):>6} "
                     f"{_fmt(micro['f1']):>6}")
    if show_errors and result["errors"]:
        lines.append("")
        lines.append("errors:")
        for err in result["errors"]:
            extra = f" rule {err['rule']}" if "rule" in err else ""
            lines.append(f"  {err['id']}: {err['kind']}{extra}: expected {err.get('expected')} got {err.get('got')}")
    return "\n".join(lines)


def stories_text(result: dict[str, Any], show_errors: bool) -> str:
    lines = [
        f"documents {result['documents']} in {result['stories']} stories",
        f"near-duplicate pairs sharing a story  {_fmt(result['duplicate_share_rate'])} "
        f"({result['duplicate_shared']}/{result['duplicate_pairs']})",
        f"unrelated pairs sharing a story       {_fmt(result['unrelated_share_rate'], 4)} "
        f"({result['unrelated_shared']}/{result['unrelated_pairs']})",
    ]
    for kind, row in result.get("duplicate_by_kind", {}).items():
        lines.append(f"  {kind:34} {_fmt(row['rate'])} ({row['shared']}/{row['pairs']})")
    if show_errors:
        for pair in result["missed_pairs"]:
            lines.append(f"  missed {pair['a']} ~ {pair['b']} (Jaccard {pair['jaccard']})")
        for pair in result["merged_pairs"]:
            lines.append(f"  merged {pair['a']} ~ {pair['b']} (Jaccard {pair['jaccard']})")
    return "\n".join(lines)


# --- commands -------------------------------------------------------------------------------------


def cmd_eval_extraction(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise NewsmonError("--limit must be at least 1")
    result = ev.evaluate_extraction(args.dir, args.predictions, limit=args.limit, precision_pass=args.precision_pass)
    _print(args, result, extraction_text(os.path.basename(os.path.normpath(args.dir)), result))
    return EXIT_OK


def cmd_eval_tagging(args: argparse.Namespace) -> int:
    tagger, rules = _tagger_and_rules(args.config)
    if args.model:
        from pipelines.devmodel import load_default_model

        tagger.model = load_default_model(args.model_threshold)
        if tagger.model is None:
            raise NewsmonError("no model file: run make model")
    result = _tagging_on(args.paths, tagger, rules)
    _print(args, result, tagging_text(result, args.errors))
    return EXIT_OK


def cmd_eval_stories(args: argparse.Namespace) -> int:
    result = ev.evaluate_stories(ev.load_story_docs(args.paths, synthetic_copies=args.synthetic_copies))
    _print(args, result, stories_text(result, args.errors))
    return EXIT_OK


@dataclass(frozen=True)
class StoryInput:
    """One story-evaluation input: a file or folder, and whether to add synthetic syndicated copies."""

    path: str
    synthetic: bool


def _data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("NEWSMON_SHARED_DATA") or REPO.parent / "shared" / "data")


def cmd_eval_all(args: argparse.Namespace) -> int:
    """Every figure of docs/accuracy.md in one run; missing data is reported and skipped, not failed."""
    data, fixtures = _data_dir(args.data), Path(args.fixtures)
    report: dict[str, Any] = {"extraction": {}, "tagging": {}, "stories": {}, "skipped": [], "misses": []}
    quiet = getattr(args, "json", False)

    def say(line: str = "") -> None:
        if not quiet:
            print(line, flush=True)

    if args.no_extraction:
        report["skipped"].append("extraction (--no-extraction)")
    else:
        say("== extraction (F1 over 4-token shingles, per page) ==")
        for name, floor in ev.EXTRACTION_FLOORS.items():
            folder = data / "extraction" / name
            if not folder.is_dir():
                report["skipped"].append(f"extraction {name}: {folder} is absent")
                continue
            result = ev.evaluate_extraction(str(folder), limit=args.extraction_limit)
            report["extraction"][name] = result | {"floor": floor}
            say(extraction_text(name, result) + f"  (trafilatura default {floor})")
            if args.extraction_limit is None and result["f1"] < floor:
                report["misses"].append(f"extraction {name}: F1 {result['f1']:.3f} < {floor}")
        say()

    tagger, rules = _tagger_and_rules(args.config)
    tagging_sets: list[tuple[str, list[str]]] = []
    articles = data / "articles"
    if articles.is_dir():
        tagging_sets.append(("shared-articles", [str(articles)]))
    else:
        report["skipped"].append(f"tagging shared-articles: {articles} is absent")
    for name in TAGGING_SETS:
        path = fixtures / "tagging" / f"{name}.jsonl"
        if path.is_file():
            tagging_sets.append((name, [str(path)]))
        else:
            report["skipped"].append(f"tagging {name}: {path} is absent")
    own = [paths[0] for name, paths in tagging_sets if name in TAGGING_SETS]
    if len(own) > 1:
        tagging_sets.append(("own-all", own))
    for name, paths in tagging_sets:
        result = _tagging_on(paths, tagger, rules)
        report["tagging"][name] = result
        say(f"== tagging: {name} ==")
        for line in tagging_summary(result):
            say(line)
        say()
        report["misses"].extend(f"tagging {name}: {miss}" for miss in ev.tagging_target_misses(result))

    story_sets: list[tuple[str, list[StoryInput]]] = []
    story_dir = fixtures / "stories"
    if story_dir.is_dir() and any(story_dir.glob("*.jsonl")):
        story_sets.append(("own-wires", [StoryInput(str(story_dir), False)]))
    else:
        report["skipped"].append(f"stories own-wires: no JSONL in {story_dir}")
    if own:  # every labelled case is its own story: thousands of unrelated same-topic pairs
        story_sets.append(("own-tagging-cases", [StoryInput(path, False) for path in own]))
    if articles.is_dir():
        story_sets.append(("shared-articles", [StoryInput(str(articles), True)]))
    for name, inputs in story_sets:
        docs = [doc for item in inputs for doc in ev.load_story_docs([item.path], item.synthetic)]
        result = ev.evaluate_stories(docs)
        report["stories"][name] = result
        say(f"== stories: {name} ==")
        say(stories_text(result, False))
        say()
        report["misses"].extend(f"stories {name}: {miss}" for miss in ev.story_target_misses(result))

    from pipelines.eval_replay import run_for_all

    run_for_all(data, fixtures, args.config, report, say)

    if quiet:
        print(json.dumps(report, ensure_ascii=False, default=str))
    else:
        for line in report["skipped"]:
            print(f"skipped: {line}")
        if report["misses"]:
            print("TARGETS MISSED:")
            for line in report["misses"]:
                print(f"  {line}")
        else:
            print("all targets met")
    if report["misses"]:
        print(f"newsmon: {len(report['misses'])} target(s) missed", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK

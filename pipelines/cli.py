"""`newsmon` command line: exit 0 ok, 1 failure, 2 usage; --json for machines."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from pipelines.errors import NewsmonError, UsageError
from pipelines.models import CycleReport

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


# json.dumps(ensure_ascii=False) escapes C0 controls but writes DEL and C1 (U+0080-U+009F) raw, and a
# terminal reads U+009B as CSI: escaped here, the JSON stays valid and other scripts stay readable.
_C1_ESCAPES = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0))}


def json_text(data: Any) -> str:
    """data as one line of JSON for stdout: UTF-8 text kept, no raw control character."""
    return json.dumps(data, ensure_ascii=False, indent=None, default=str).translate(_C1_ESCAPES)


def _out(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    if args.json:
        print(json_text(data))
    else:
        print(text())


def _err(message: str) -> None:
    print(f"newsmon: {message}", file=sys.stderr)


def _check_filters(args: argparse.Namespace, *, topic: str | None = None, desk: str | None = None) -> None:
    """An unknown --topic or --desk is a usage error naming the known ones (topics.yaml, alerts.yaml)."""
    if topic is None and desk is None:
        return
    from pipelines.config import check_filters, load_config

    try:
        check_filters(load_config(args.config), topic=topic, desk=desk)
    except UsageError as exc:
        raise UsageError(f"{args.command}: {exc}") from None


BOLD, RESET = "\033[1m", "\033[0m"


def _terminal_text(value: Any) -> str:
    """Third-party text as one safe terminal line: escape sequences dropped whole, other controls gone
    (textnorm.strip_controls, the same rule as at ingest)."""
    from pipelines.textnorm import strip_controls

    return strip_controls(str(value or ""))


def _snippet_parts(snippet_html: str) -> list[tuple[str, bool]]:
    """A store snippet (escaped text with <mark>…</mark>) as (plain text, is a match) pieces."""
    import html
    import re

    parts: list[tuple[str, bool]] = []
    marked = False
    for piece in re.split(r"(</?mark>)", snippet_html or ""):
        if piece in ("<mark>", "</mark>"):
            marked = piece == "<mark>"
        elif piece:
            parts.append((html.unescape(piece), marked))
    return parts


def plain_snippet(snippet_html: str) -> str:
    """The snippet as plain text: no tags, no entities."""
    return "".join(text for text, _ in _snippet_parts(snippet_html))


def terminal_snippet(snippet_html: str, emphasis: bool) -> str:
    """The snippet for a terminal: matches in bold only when emphasis (stdout is a TTY)."""
    return "".join(f"{BOLD}{_terminal_text(text)}{RESET}" if marked and emphasis else _terminal_text(text)
                   for text, marked in _snippet_parts(snippet_html))


def _context(args: argparse.Namespace, **kwargs: Any):
    from pipelines.cycle import open_context

    ctx = open_context(args.config, args.store, **kwargs)
    if args.json:  # stdout carries only JSON; the console channel's alert lines go to stderr
        ctx.notifier.stdout = sys.stderr
    return ctx


# --- run / watch -----------------------------------------------------------

def _report_text(report: CycleReport) -> str:
    lines = [
        f"feeds polled {report.feeds_polled} (not modified {report.feeds_not_modified}, "
        f"failed {report.feeds_failed}); items seen {report.items_seen}, new {report.items_new}",
        f"articles stored {report.articles_stored}; alerts fired {report.alerts_fired}, "
        f"delivered {report.alerts_delivered}",
    ]
    if report.feeds_stale or report.health_alerts:
        lines.append(f"feeds stale {report.feeds_stale} (health alerts raised {report.health_alerts})")
    if report.dropped:
        lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(report.dropped.items())))
    if report.topics:
        lines.append("topics: " + ", ".join(f"{k} {v}" for k, v in sorted(report.topics.items())))
    return "\n".join(lines)


def _print_errors(report: CycleReport) -> None:
    for line in report.errors:
        _err(line)
    for line in report.failures:
        _err(f"cycle failed: {line}")


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.cycle import run_cycle
    from pipelines.progress import ProgressBar

    ctx = _context(args, as_of=args.as_of)
    bar = ProgressBar("processing", enabled=None if not args.json else False)
    ctx.progress = bar.update
    try:
        report = run_cycle(ctx, feed_ids=args.feed or None)
    finally:
        bar.close()
        ctx.close()
    _print_errors(report)
    _out(args, report.to_dict() | {"article_ids": len(report.article_ids)}, lambda: _report_text(report))
    # Exit 1 when the cycle failed as a whole (store unavailable, too many feeds failed), after storing
    # what it could; single bad feeds, pages or items are report lines, not a failed run.
    return EXIT_FAIL if report.failures else EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    """Cycles until Ctrl-C/SIGTERM; the signal only sets a flag, so the current item finishes cleanly."""
    from pipelines.cycle import run_cycle

    ctx = _context(args)
    stop = threading.Event()
    ctx.stop = stop

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            print("\nnewsmon: stopping after the current item...", file=sys.stderr)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    tick = args.interval or 5.0
    cycles = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            report = run_cycle(ctx, due_only=args.interval is None)
            cycles += 1
            _print_errors(report)
            if report.items_new or report.alerts_fired or args.verbose:
                _out(args, report.to_dict() | {"article_ids": len(report.article_ids)},
                     lambda r=report: time.strftime("%H:%M:%S ") + _report_text(r).replace("\n", " | "))
            if args.max_cycles and cycles >= args.max_cycles:
                break
            stop.wait(max(0.0, tick - (time.monotonic() - started)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        ctx.close()
    return EXIT_OK


# --- search / alerts / feeds -------------------------------------------------

def cmd_search(args: argparse.Namespace) -> int:
    from pipelines.config import config_dir_from, shown
    from pipelines.query import QuerySyntaxError
    from pipelines.settings import store_url
    from pipelines.store import open_store
    from pipelines.store.search_query import parse_query

    try:
        parse_query(args.query)
    except QuerySyntaxError as exc:
        raise UsageError(f"search: query {shown(args.query)}: {exc}") from None  # exc has the position
    _check_filters(args, topic=args.topic, desk=args.desk)
    store = open_store(store_url(args.store, config_dir=config_dir_from(args.config)), create=False)
    try:
        hits = store.search(args.query, topic=args.topic, desk=args.desk, source=args.source,
                            language=args.language, since=args.since, until=args.until, limit=args.limit,
                            collapse=args.collapse)
    finally:
        store.close()
    data = [{"id": h.article.id, "score": h.score, "title": h.article.title, "url": h.article.url,
             "source": h.article.source, "published": h.article.published, "desk": h.article.desk,
             "topics": h.article.topic_ids(), "story_id": h.article.story_id, "event_id": h.article.event_id,
             "snippet": plain_snippet(h.snippet)}
            for h in hits]
    emphasis = sys.stdout.isatty()

    def text() -> str:
        if not data:
            return "no matches"
        return "\n".join(f"{d['published'] or '-':20} {_terminal_text(d['source'])[:24]:24} "
                         f"{_terminal_text(d['title'])[:80]}\n    {_terminal_text(d['url'])}\n"
                         f"    {terminal_snippet(h.snippet, emphasis)}" for d, h in zip(data, hits, strict=True))

    _out(args, data, text)
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    """The alert log: one entry per notification sent to a desk, with its event's reports so far."""
    from pipelines.alerts import load_alert_config_file, log_entry
    from pipelines.config import config_dir_from
    from pipelines.settings import store_url
    from pipelines.store import open_store

    _check_filters(args, desk=args.desk)
    config_dir = config_dir_from(args.config)
    alerts_path = os.path.join(config_dir, "alerts.yaml")
    config = load_alert_config_file(alerts_path) if os.path.exists(alerts_path) else None
    store = open_store(store_url(args.store, config_dir=config_dir), create=False)
    try:
        alerts = store.list_alerts(since=args.since, limit=args.limit, desk=args.desk or None)
        events = {eid: store.get_event(eid) for eid in {a.event_id for a in alerts if a.event_id}}
    finally:
        store.close()
    data = [log_entry(a, events.get(a.event_id) if a.event_id else None, config) for a in alerts]

    def text() -> str:
        if not data:
            return "no alerts"
        lines = []
        for a in data:
            event = a["event"]
            head = (f"{a['created_local'] or a['created']} [{a['desk']}] {a['kind']} "
                    f"{a['development'] or '-'} {_terminal_text(a['title'])[:80]}")
            more = f"\n    {_terminal_text(a['url'])}"
            if event:
                first = event["first_report"] or {}
                more += (f"\n    {event['outlet_count']} outlets, {event['status_label']}; first reported by "
                         f"{_terminal_text(first.get('outlet'))} at {first.get('time_local')}")
            lines.append(_terminal_text(head) + more)
        return "\n".join(lines)

    _out(args, data, text)
    return EXIT_OK


def cmd_feeds(args: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.settings import store_url
    from pipelines.store import open_store

    config = load_config(args.config)
    store = open_store(store_url(args.store, config_dir=config.dir, yaml=config.settings.store), create=False)
    try:
        states = {s.feed_id: s for s in store.list_feed_states()}
    finally:
        store.close()
    data = []
    for feed in config.feeds:
        state = states.get(feed.id)
        row = {"id": feed.id, "url": feed.url, "desk": feed.desk, "enabled": feed.enabled}
        row.update(asdict(state) if state else {"last_success": None, "last_error": None,
                                                "items_total": 0, "not_modified_count": 0})
        row.pop("feed_id", None)
        data.append(row)

    def text() -> str:
        header = f"{'feed':24} {'desk':10} {'last success':21} {'items':>6} {'304s':>5}  last error"
        rows = [f"{d['id'][:24]:24} {d['desk'][:10]:10} {d.get('last_success') or 'never':21} "
                f"{d.get('items_total', 0):>6} {d.get('not_modified_count', 0):>5}  {d.get('last_error') or ''}"
                for d in data]
        return "\n".join([header, *rows])

    _out(args, data, text)
    return EXIT_OK


# --- extract / tag / validate ------------------------------------------------

def cmd_extract(args: argparse.Namespace) -> int:
    from pipelines.config import config_dir_from, load_settings
    from pipelines.extract import extract_page

    # The same extraction a cycle runs: newsmon.yaml's extract.precision_pass, unless the flag says on.
    settings = load_settings(config_dir_from(args.config))
    precision_pass = args.precision_pass or bool(settings.extract.get("precision_pass", False))
    target = args.file_or_url
    out_dir = os.path.dirname(os.path.abspath(args.out)) if args.out else None
    if out_dir is not None and not os.path.isdir(out_dir):
        raise NewsmonError(f"--out {args.out}: directory {out_dir} does not exist")
    charset = None
    scheme, sep, _rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        from pipelines.http import Fetcher

        response = Fetcher().fetch(target, kind="page")
        body, url, charset = response.body, args.url or response.url, response.charset
    elif (sep or target.lower().startswith(("file:", "data:", "javascript:"))) and not os.path.exists(target):
        shown = scheme.lower() if sep else target.split(":", 1)[0].lower()
        raise NewsmonError(f"{target}: refused: scheme {shown}: is not http(s) (give a file path or an "
                           "http(s) URL)")
    else:
        try:
            with open(target, "rb") as fh:
                body = fh.read()
        except OSError as exc:
            raise NewsmonError(f"{target}: {exc.strerror}") from None
        if body[:2] == b"\x1f\x8b":  # .html.gz (or any gzip file): pages as they are archived
            import gzip
            import zlib

            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as exc:
                raise NewsmonError(f"{target}: not a readable gzip file ({exc})") from None
        url = args.url or "file://" + os.path.abspath(target)
    page = extract_page(body, url, None, min_chars=1, charset=charset, precision_pass=precision_pass)
    if page is None:
        raise NewsmonError(f"{target}: no article text found")
    data = {"url": page.url, "title": page.title, "author": page.author, "published": page.published,
            "language": page.language, "sitename": page.sitename, "text": page.text}
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(data, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise NewsmonError(f"--out {args.out}: {exc.strerror}") from None
        return EXIT_OK
    _out(args, data, lambda: "\n".join(
        [f"{k}: {v}" for k, v in data.items() if k != "text"] + ["", page.text]))
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    from pipelines.config import config_dir_from, load_yaml
    from pipelines.progress import ProgressBar
    from pipelines.tag import Tagger, load_taxonomy

    topics_path = os.path.join(config_dir_from(args.config), "topics.yaml")
    tagger = Tagger(load_taxonomy(load_yaml(topics_path), topics_path))
    try:
        source = sys.stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")
    except OSError as exc:
        raise NewsmonError(f"{args.jsonl}: {exc.strerror}") from None
    sink = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    bad = 0
    bar = ProgressBar("tagging", enabled=None if args.out else False)
    try:
        for line_no, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                title, text = record.get("title") or "", record.get("text") or ""
                if not isinstance(title, str) or not isinstance(text, str):
                    raise ValueError("'title' and 'text' must be strings")
            except ValueError as exc:
                _err(f"{args.jsonl}: line {line_no}: {exc}")
                bad += 1
                continue
            result = tagger.tag(title, text).to_dict()
            record.update(topics=[{k: t[k] for k in ("id", "score", "evidence")} for t in result["topics"]],
                          development=result["development"], alert_worthy=result["alert_worthy"],
                          relevant=result["relevant"])
            sink.write(json_text(record) + "\n")
            bar.update(line_no)
    finally:
        bar.close()
        if sink is not sys.stdout:
            sink.close()
        if source is not sys.stdin:
            source.close()
    return EXIT_FAIL if bad else EXIT_OK


def cmd_validate_config(args: argparse.Namespace) -> int:
    """Errors exit 1; warnings (an unused channel, a feed on a refused network) go to stderr, exit 0."""
    from pipelines.config import config_warnings, load_config
    from pipelines.notify import channel_warnings

    config = load_config(args.config)
    for warning in [*config_warnings(config), *channel_warnings(config.alerts)]:
        _err(f"warning: {warning}")
    summary = {"config": config.dir, "feeds": len(config.feeds), "topics": len(config.taxonomy.topics),
               "rules": len(config.alerts.rules), "ok": True}
    _out(args, summary, lambda: f"{config.dir}: ok ({summary['feeds']} feeds, {summary['topics']} topics, "
                                f"{summary['rules']} alert rules)")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo(args)


# --- parser -----------------------------------------------------------------

def _as_of(value: str):
    """--as-of: an ISO date or datetime (UTC when it names no zone)."""
    from datetime import UTC, datetime

    from pipelines.config import shown

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {shown(value)}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso_time(value: str) -> str:
    """--since/--until: an ISO date or datetime, refused at parse time (exit 2), passed on as given."""
    from pipelines.config import shown
    from pipelines.models import parse_iso

    if parse_iso(value) is None:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime within years 0001-9999 (UTC): "
                                         f"{shown(value)} (e.g. 2025-11-10 or 2025-11-10T08:00:00Z)")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON output")
    parser = argparse.ArgumentParser(prog="newsmon", description="News monitoring for newsroom desks.",
                                     parents=[common])
    parser.add_argument("--config", default=None, help="config directory (env NEWSMON_CONFIG, default ./config; precedence: README, Settings)")
    parser.add_argument("--store", default=None,
                        help="store URL, e.g. sqlite:///var/newsmon.db (env NEWSMON_STORE, then newsmon.yaml's store:; "
                             "precedence: README, Settings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", parents=[common], help="run one monitoring cycle")
    p.add_argument("--once", action="store_true", help="one cycle, then exit (the default)")
    p.add_argument("--feed", action="append", help="only this feed id (repeatable)")
    p.add_argument("--as-of", type=_as_of, default=None, metavar="ISO",
                   help="run the cycle as if it were this time (freshness, windows, alert times): for replays")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("watch", parents=[common], help="run cycles until Ctrl-C")
    p.add_argument("--interval", type=float, default=None,
                   help="poll every feed every N seconds (default: each feed's own interval)")
    p.add_argument("--max-cycles", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true", help="print every cycle, not only busy ones")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("search", parents=[common], help="full-text search of stored articles")
    p.add_argument("query", nargs="?", default=None)
    p.add_argument("--topic")
    p.add_argument("--desk")
    p.add_argument("--source")
    p.add_argument("--language")
    p.add_argument("--since", type=_iso_time, help="ISO date or datetime")
    p.add_argument("--until", type=_iso_time, help="ISO date or datetime")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--collapse", choices=("story", "event"), help="one hit per story, or per development event")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("alerts", parents=[common], help="the alert log")
    p.add_argument("--since", type=_iso_time, help="ISO date or datetime")
    p.add_argument("--desk", help="only this desk's notifications")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("feeds", parents=[common], help="feed health")
    p.set_defaults(func=cmd_feeds)

    p = sub.add_parser("extract", parents=[common], help="extract article text from a file or URL")
    p.add_argument("file_or_url")
    p.add_argument("--url", help="the page's URL when reading a file")
    p.add_argument("--out", help="write the extraction as JSON to this file (its directory must exist)")
    p.add_argument("--precision-pass", action="store_true",
                   help="run the stricter second pass even if newsmon.yaml's extract.precision_pass is off")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("tag", parents=[common], help="tag JSONL articles with topics and developments")
    p.add_argument("--jsonl", required=True, help="input JSONL file ({id,title,text} per line), - for stdin")
    p.add_argument("--out", help="output JSONL file (default stdout)")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("validate-config", parents=[common], help="check config/ and exit 1 on any problem")
    p.set_defaults(func=cmd_validate_config)

    p = sub.add_parser("demo", parents=[common],
                       help="serve the sample coverage on 127.0.0.1, run one cycle, print a summary")
    p.add_argument("--keep", action="store_true", help="keep the demo store (var/demo/) from earlier runs")
    p.set_defaults(func=cmd_demo)

    from pipelines.reindex import add_reindex_parser

    add_reindex_parser(sub, parents=[common])

    from pipelines.eval_cli import add_eval_parser

    add_eval_parser(sub, parents=[common])

    from pipelines.web_cli import add_serve_parser

    add_serve_parser(sub, parents=[common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    if args.store:
        os.environ["NEWSMON_STORE"] = args.store
    try:
        return args.func(args)
    except UsageError as exc:
        _err(str(exc).splitlines()[0])
        return EXIT_USAGE
    except NewsmonError as exc:
        _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return EXIT_FAIL
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_FAIL
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

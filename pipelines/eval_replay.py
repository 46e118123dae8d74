"""`newsmon eval replay FILE.jsonl...`: the alert pipeline replayed day by day over dated, labelled reports.

What it measures: how the desks would have been notified had newsmon watched these outlets while the
reports came out. One alert per real-world development per desk, fast, of the right type, and never
for a new feed's backlog.

How. Each case (a JSON line: id, outlet, published, title, text, relevant, development, event;
optional language) becomes an HTML page and an item of its outlet's RSS 2.0 feed (one feed per outlet,
named by the outlet's slug; the text is also the item's description, so a page too short to extract
falls back on it as a real feed does). A local HTTP server (pipelines.demo.CoverageServer) serves them on
127.0.0.1; a temporary config dir (the project's topics, events, alerts and settings, with these feeds)
and a temporary SQLite store hold the run. Then ONE real cycle (pipelines.cycle.run_cycle: poll, fetch,
extract, tag, interpret by the watch's state, attach to events, alert) runs per day, from the first
case's day to the last's, as of that day 23:00 UTC (the replay clock, ctx.as_of): a feed lists the cases
published up to then. A date-only `published` means 08:00 UTC that day; an undated case (published
null) is skipped and counted. With --start DATE the first cycle runs as of DATE 23:00 and every case
published before it is already in the feeds: those published more than `alerts.max_age` before that
first cycle are a new feed's BACKLOG, which must build the watch's state without notifying.

Everything is then read back from the store (alerts, events, articles; a stored article is mapped back
to its case by URL) and scored against the labels:

- event recall: gold events (event id set, at least one relevant report with a development label, not
  backlog-only) that got a notification raised by one of their reports, or whose system event (the
  alert's event_id and that event's reports) holds one of their reports. `development_recall` counts
  only notifications that carry a development.
- development-type precision: of notifications with a development (kind event or escalation, or a
  story alert with one), the share whose type is among the development labels of the raising report's
  gold event (neighbouring labels within one event are accepted: outlets word one outcome differently).
  A notification raised by an irrelevant report, or by one with no gold event, is wrong; `false
  development alerts` counts the wrong ones.
- notifications per event per desk: over (gold event, desk) pairs with at least one notification
  (every kind counts, escalations included), mean and max; per desk per day likewise over (desk, day)
  pairs with at least one.
- time from first report to alert: per recalled gold event, hours from its earliest report's published
  time to its first notification (whose time is the cycle's clock: a day's resolution).
- backlog notifications: notifications raised by backlog cases.
- article-level development accuracy: over stored relevant cases labelled with a development, the share
  whose stored development (the tagger's, as interpreted by the watch's state) has exactly that type;
  and the false-development rate over stored cases labelled with none.

Targets (TARGETS) are marked met or missed; `eval replay` exits 1 when one is missed. Several files
given together are one chronology (event ids shared); `eval all` replays each set on its own.
Nothing here tunes detection: the figures only measure it.
"""

from __future__ import annotations

import argparse
import html
import inspect
import io
import json
import re
import sys
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from pathlib import Path
from statistics import median
from typing import Any

import yaml

from pipelines import evaluation as ev
from pipelines.errors import NewsmonError
from pipelines.models import Alert, Article, DevelopmentEvent, announced_type, parse_iso

EXIT_OK, EXIT_FAIL = 0, 1
REPO = Path(__file__).resolve().parents[1]
DATE_ONLY_HOUR = 8  # a date-only `published` is 08:00 UTC that day
CYCLE_HOUR = 23  # each day's cycle runs as of 23:00 UTC
DEV_KINDS = ("event", "escalation")
# The targets of the event-alert rework: (figure, comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "event_recall": (">=", 0.95),
    "type_precision": (">=", 0.95),
    "notifications_per_event_desk": ("<=", 1.2),  # the mean over (event, desk) pairs
    "backlog_notifications": ("<=", 0),
    "article_development_accuracy": (">=", 0.85),
}
_LANG = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?\Z")


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class ReplayCase:
    id: str
    outlet: str
    published: datetime | None  # UTC; None = undated (not replayed)
    title: str
    text: str
    relevant: bool
    development: str | None
    event: str | None
    language: str | None = None
    where: str = ""  # "file: line N"


def parse_published(value: Any) -> datetime | None:
    """YYYY-MM-DD (08:00 UTC that day) or an ISO datetime (UTC when it names no zone); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected YYYY-MM-DD, an ISO datetime or null, got {value!r}")
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(DATE_ONLY_HOUR), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not YYYY-MM-DD or an ISO datetime: {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def load_cases(paths: list[str], development_types: Iterable[str] | None = None) -> list[ReplayCase]:
    """Cases from JSONL files (or folders of them); a bad line is a NewsmonError naming file, line, field."""
    types = set(development_types) if development_types is not None else None
    cases: list[ReplayCase] = []
    seen: set[str] = set()
    for path in ev.jsonl_paths(paths):
        for line_no, rec in ev._read_jsonl(path):
            where = f"{path}: line {line_no}"

            def bad(name: str, message: str, where: str = where) -> NewsmonError:
                return NewsmonError(f"{where}: field '{name}': {message}")

            def text_field(name: str, required: bool = True, rec: dict = rec) -> str | None:
                value = rec.get(name)
                if value is None and not required:
                    return None
                if not isinstance(value, str) or (required and not value.strip()):
                    raise bad(name, "missing, empty or not a string")
                return value

            case_id = text_field("id")
            assert case_id is not None
            if case_id in seen:
                raise bad("id", f"duplicate id {case_id!r}")
            seen.add(case_id)
            outlet = text_field("outlet")
            title = text_field("title", required=False) or ""
            text = text_field("text")
            if "published" not in rec:
                raise bad("published", "missing (give null for an undated report)")
            try:
                published = parse_published(rec["published"])
            except ValueError as exc:
                raise bad("published", str(exc)) from None
            relevant = rec.get("relevant")
            if not isinstance(relevant, bool):
                raise bad("relevant", f"expected true or false, got {relevant!r}")
            if "development" not in rec:
                raise bad("development", "missing (give null for no development)")
            development = rec["development"]
            if development is not None and (not isinstance(development, str)
                                            or (types is not None and development not in types)):
                raise bad("development", f"unknown development type {development!r}")
            if development is not None and not relevant:
                raise bad("development", "a case that is not relevant cannot have a development")
            if "event" not in rec:
                raise bad("event", "missing (give null when the report belongs to no event)")
            event = rec["event"]
            if event is not None and (not isinstance(event, str) or not event.strip()):
                raise bad("event", f"expected an event id or null, got {event!r}")
            language = text_field("language", required=False)
            cases.append(ReplayCase(case_id, (outlet or "").strip(), published, title, text or "", relevant,
                                    development, event, language.strip().lower() if language else None, where))
    return cases


def slug(name: str) -> str:
    """A feed id from an outlet name: ASCII letters and digits joined by '-' (max 60)."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:60].strip("-") or "outlet"


def outlet_feeds(cases: list[ReplayCase]) -> dict[str, str]:
    """outlet name -> feed id (slug; a clash gets -2, -3 ...), in order of first appearance."""
    feeds: dict[str, str] = {}
    used: set[str] = set()
    for case in cases:
        if case.outlet in feeds:
            continue
        base = candidate = slug(case.outlet)
        n = 1
        while candidate in used:
            n += 1
            candidate = f"{base[:56]}-{n}"
        used.add(candidate)
        feeds[case.outlet] = candidate
    return feeds


# --------------------------------------------------------------------------- metrics (pure)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None




def event_labels(cases: list[ReplayCase]) -> dict[str, set[str]]:
    """Gold event id -> the development labels of its relevant reports (events with none are absent)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for case in cases:
        if case.event and case.relevant and case.development:
            labels[case.event].add(case.development)
    return dict(labels)


def has_development(alert: Alert) -> bool:
    return alert.kind in DEV_KINDS or bool(alert.development)


@dataclass
class Scoring:
    """What the metrics read: the cases, the stored alerts and events, and stored articles by case."""

    cases: list[ReplayCase]
    alerts: list[Alert]
    events: list[DevelopmentEvent] = field(default_factory=list)
    article_case: dict[str, str] = field(default_factory=dict)  # stored article id -> case id
    stored: dict[str, Article] = field(default_factory=dict)  # case id -> its stored article
    backlog: set[str] = field(default_factory=set)  # case ids

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.cases}
        self.labels = event_labels(self.cases)
        self.events_by_id = {e.id: e for e in self.events}

    def case_of(self, article_id: str | None) -> ReplayCase | None:
        case_id = self.article_case.get(article_id or "", None)
        return self.by_id.get(case_id) if case_id else None

    def gold_events(self) -> dict[str, list[ReplayCase]]:
        """Gold event id -> its non-backlog reports, for events with a label on a non-backlog report."""
        out: dict[str, list[ReplayCase]] = {}
        for event_id in self.labels:
            reports = [c for c in self.cases if c.event == event_id and c.id not in self.backlog]
            if any(c.relevant and c.development for c in reports):
                out[event_id] = reports
        return out

    def alert_gold_events(self, alert: Alert) -> set[str]:
        """Gold events this alert told a desk about: its raising report's, and its system event's reports'."""
        found: set[str] = set()
        case = self.case_of(alert.article_id)
        if case is not None and case.event and case.id not in self.backlog:
            found.add(case.event)
        event = self.events_by_id.get(alert.event_id or "")
        for report in event.reports if event else ():
            other = self.case_of(report.article_id)
            if other is not None and other.event and other.id not in self.backlog:
                found.add(other.event)
        return found


def event_recall(s: Scoring) -> dict[str, Any]:
    """Gold events with a notification (any kind; development_recall: with a development), their first
    notification, and hours from their earliest report to it."""
    gold = s.gold_events()
    first: dict[str, Alert] = {}
    with_dev: set[str] = set()
    for alert in sorted(s.alerts, key=lambda a: (a.created, a.id)):
        for event_id in s.alert_gold_events(alert) & set(gold):
            first.setdefault(event_id, alert)
            if has_development(alert):
                with_dev.add(event_id)
    delays: dict[str, float] = {}
    for event_id, alert in first.items():
        published = [c.published for c in gold[event_id] if c.published is not None]
        created = parse_iso(alert.created)
        if published and created is not None:
            delays[event_id] = round((created - min(published)).total_seconds() / 3600, 2)
    missed = sorted(set(gold) - set(first))
    return {
        "gold_events": len(gold), "recalled": len(first), "recall": _ratio(len(first), len(gold)),
        "development_recalled": len(with_dev), "development_recall": _ratio(len(with_dev), len(gold)),
        "missed": [{"event": e, "labels": sorted(s.labels.get(e, ())), "reports": [c.id for c in gold[e]]}
                   for e in missed],
        "first_alert": {e: {"alert": a.id, "desk": a.desk, "created": a.created, "case": _case_id(s, a)}
                        for e, a in sorted(first.items())},
        "hours_to_alert": {
            "events": len(delays),
            "median": median(delays.values()) if delays else None,
            "max": max(delays.values()) if delays else None,
            "per_event": dict(sorted(delays.items())),
        },
    }


def _case_id(s: Scoring, alert: Alert) -> str | None:
    case = s.case_of(alert.article_id)
    return case.id if case else None


def type_precision(s: Scoring) -> dict[str, Any]:
    """Notifications with a development whose type is among the labels of the raising report's gold event."""
    judged = correct = 0
    wrong: list[dict[str, Any]] = []
    for alert in sorted(s.alerts, key=lambda a: (a.created, a.id)):
        if not has_development(alert):
            continue
        judged += 1
        case = s.case_of(alert.article_id)
        labels = s.labels.get(case.event, set()) if case is not None and case.relevant and case.event else set()
        if alert.development in labels:
            correct += 1
            continue
        why = ("report not in the cases" if case is None else "irrelevant report" if not case.relevant
               else "report of no event" if not case.event else "type not among the event's labels")
        wrong.append({"alert": alert.id, "case": case.id if case else None, "desk": alert.desk,
                      "kind": alert.kind, "type": alert.development, "event": case.event if case else None,
                      "gold": sorted(labels), "case_label": case.development if case else None, "why": why})
    return {"notifications": judged, "correct": correct, "precision": _ratio(correct, judged),
            "false_development_alerts": len(wrong), "wrong": wrong}


def notification_load(s: Scoring) -> dict[str, Any]:
    """Notifications per (gold event, desk) and per (desk, day), over pairs with at least one."""
    per_event: dict[tuple[str, str], list[Alert]] = defaultdict(list)
    per_day: Counter[tuple[str, str]] = Counter()
    for alert in s.alerts:
        per_day[(alert.desk, (alert.created or "")[:10])] += 1
        case = s.case_of(alert.article_id)
        if case is not None and case.event in s.labels:
            per_event[(case.event, alert.desk)].append(alert)
    counts = [len(v) for v in per_event.values()]
    repeated = [{"event": e, "desk": d, "notifications": len(alerts),
                 "alerts": [{"case": _case_id(s, a), "kind": a.kind, "type": a.development, "created": a.created}
                            for a in sorted(alerts, key=lambda a: (a.created, a.id))]}
                for (e, d), alerts in sorted(per_event.items()) if len(alerts) > 1]
    days = list(per_day.values())
    return {
        "per_event_desk": {"pairs": len(counts), "mean": _ratio(sum(counts), len(counts)),
                           "max": max(counts) if counts else None, "repeated": repeated},
        "per_desk_day": {"pairs": len(days), "mean": _ratio(sum(days), len(days)),
                         "max": max(days) if days else None,
                         "per_desk": {desk: sum(n for (d, _), n in per_day.items() if d == desk)
                                      for desk in sorted({d for d, _ in per_day})}},
    }


def backlog_notifications(s: Scoring) -> dict[str, Any]:
    raised = [a for a in s.alerts if (case := s.case_of(a.article_id)) is not None and case.id in s.backlog]
    return {"backlog_cases": len(s.backlog), "notifications": len(raised),
            "alerts": [{"case": _case_id(s, a), "desk": a.desk, "kind": a.kind, "type": a.development}
                       for a in raised]}


def article_development(s: Scoring) -> dict[str, Any]:
    """The stored (state-interpreted) development of each stored case against its label."""
    dev_cases = dev_right = nodev_cases = nodev_false = 0
    wrong: list[dict[str, Any]] = []
    by_language: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # language -> [right, cases]
    for case in s.cases:
        article = s.stored.get(case.id)
        if article is None:
            continue
        dev = article.development
        # A stored denial disputes an event; like the tagging figures, it is no development of its own.
        got = announced_type(dev)
        if case.development and case.relevant:
            dev_cases += 1
            dev_right += got == case.development
            tally = by_language[case.language or "?"]
            tally[0] += got == case.development
            tally[1] += 1
        elif case.development is None:
            nodev_cases += 1
            nodev_false += got is not None
        if got != case.development:
            wrong.append({"case": case.id, "expected": case.development, "got": got})
    languages = {lang: {"correct": right, "cases": n, "accuracy": _ratio(right, n)}
                 for lang, (right, n) in sorted(by_language.items())}
    return {"cases": dev_cases, "correct": dev_right, "accuracy": _ratio(dev_right, dev_cases),
            "false_development": {"cases": nodev_cases, "false": nodev_false, "rate": _ratio(nodev_false, nodev_cases)},
            "by_language": languages, "wrong": wrong}


def compute_metrics(s: Scoring) -> dict[str, Any]:
    recall = event_recall(s)
    precision = type_precision(s)
    load = notification_load(s)
    result = {
        "event_recall": recall,
        "type_precision": precision,
        "notifications": load,
        "backlog": backlog_notifications(s),
        "article_development": article_development(s),
    }
    result["targets"] = target_table(result)
    return result


def target_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its value and met (None when it could not be measured: no miss)."""
    values = {
        "event_recall": result["event_recall"]["recall"],
        "type_precision": result["type_precision"]["precision"],
        "notifications_per_event_desk": result["notifications"]["per_event_desk"]["mean"],
        "backlog_notifications": result["backlog"]["notifications"],
        "article_development_accuracy": result["article_development"]["accuracy"],
    }
    rows = []
    for name, (op, bound) in TARGETS.items():
        value = values[name]
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        rows.append({"target": name, "value": value, "op": op, "bound": bound, "met": met})
    return rows


def target_misses(result: dict[str, Any]) -> list[str]:
    return [f"{row['target'].replace('_', ' ')} {_num(row['value'])} (target {row['op']} {row['bound']})"
            for row in result["targets"] if row["met"] is False]


# --------------------------------------------------------------------------- serving and running


def page_path(index: int, case: ReplayCase) -> str:
    return f"pages/c{index:05d}-{slug(case.id)[:40]}.html"


def render_page(case: ReplayCase, outlet: str) -> str:
    published = case.published.strftime("%Y-%m-%dT%H:%M:%SZ") if case.published else ""
    paragraphs = [p.strip() for p in re.split(r"\n+", case.text) if p.strip()]
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    title = html.escape(case.title)
    return (f'<!DOCTYPE html>\n<html lang="{html.escape(case.language or "en")}"><head><meta charset="utf-8">\n'
            f"<title>{title}</title>\n"
            f'<meta property="og:title" content="{title}">\n'
            f'<meta property="og:site_name" content="{html.escape(outlet)}">\n'
            f'<meta property="article:published_time" content="{published}">\n'
            f"</head><body><article>\n<h1>{title}</h1>\n"
            f'<time datetime="{published}">{published[:10]}</time>\n{body}\n</article></body></html>\n')


def render_feed(outlet: str, items: list[tuple[str, ReplayCase]]) -> str:
    """RSS 2.0 of (page path, case), newest first; links carry the server's {{BASE}} placeholder."""
    out = ['<?xml version="1.0" encoding="utf-8"?>', '<rss version="2.0"><channel>',
           f"<title>{html.escape(outlet)}</title><link>{{{{BASE}}}}/</link>",
           f"<description>{html.escape(outlet)} (replay)</description>"]
    for path, case in sorted(items, key=lambda pc: (pc[1].published, pc[0]), reverse=True):
        assert case.published is not None
        link = "{{BASE}}/" + path
        out.append(f"<item><title>{html.escape(case.title)}</title><link>{link}</link>"
                   f'<guid isPermaLink="true">{link}</guid>'
                   f"<pubDate>{format_datetime(case.published, usegmt=True)}</pubDate>"
                   f"<description>{html.escape(case.text)}</description></item>")
    out.append("</channel></rss>")
    return "\n".join(out) + "\n"


@dataclass
class ReplayRun:
    """What a replay left behind, read back from its store."""

    cases: list[ReplayCase]  # the dated cases served
    undated: int
    days: list[date]
    backlog: set[str]
    alerts: list[Alert]
    events: list[DevelopmentEvent]
    stored: dict[str, Article]
    article_case: dict[str, str]
    cycle_errors: list[str]
    max_age_hours: float


def _first_desk(config_dir: Path) -> str:
    from pipelines.config import parse_yaml

    data = parse_yaml((config_dir / "alerts.yaml").read_text(encoding="utf-8")) or {}
    desks = [d.get("id") for d in data.get("desks") or [] if isinstance(d, dict) and d.get("id")]
    return desks[0] if desks else "security"


def replay(cases: list[ReplayCase], *, start: date | None = None, config: str | None = None,
           progress: Callable[[int, int, date], None] | None = None) -> ReplayRun:
    """Serve the dated cases and run one real cycle per day over them (see the module docstring)."""
    from pipelines.config import config_dir_from
    from pipelines.cycle import open_context, run_cycle
    from pipelines.demo import CoverageServer, write_demo_config
    from pipelines.identity import canonical_url
    from pipelines.netguard import NetworkPolicy

    dated = sorted((c for c in cases if c.published is not None), key=lambda c: (c.published, c.id))
    undated = len(cases) - len(dated)
    if not dated:
        raise NewsmonError("no dated cases to replay (every 'published' is null)")
    first_day = start or dated[0].published.date()  # type: ignore[union-attr]
    last_day = max(first_day, dated[-1].published.date())  # type: ignore[union-attr]
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    feeds = outlet_feeds(dated)
    paths = {c.id: page_path(i, c) for i, c in enumerate(dated)}
    config_src = Path(config_dir_from(config))
    with tempfile.TemporaryDirectory(prefix="newsmon-replay-") as tmp_name:
        tmp = Path(tmp_name)
        site = tmp / "site"
        (site / "pages").mkdir(parents=True)
        (site / "feeds").mkdir()
        for case in dated:
            (site / paths[case.id]).write_text(render_page(case, case.outlet), encoding="utf-8")
        desk = _first_desk(config_src)
        languages: dict[str, Counter[str]] = defaultdict(Counter)
        for case in dated:
            if case.language and _LANG.match(case.language):
                languages[case.outlet][case.language] += 1
        template = {"feeds": [{"id": feed_id, "url": "{{BASE}}/feeds/" + feed_id + ".xml", "desk": desk,
                               "language": (languages[outlet].most_common(1) or [("en", 0)])[0][0],
                               "interval": 60} for outlet, feed_id in feeds.items()]}
        (tmp / "feeds-template.yaml").write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
        with CoverageServer(root=site) as server:
            # the project's own freshness limit (the demo's default widens it for its 2025 sample)
            keep = {"max_age": None} if "max_age" in inspect.signature(write_demo_config).parameters else {}
            config_dir = write_demo_config(config_src, tmp / "config", server.base, tmp / "feeds-template.yaml",
                                           alerts_jsonl=tmp / "alerts.jsonl", per_host_delay=0.001, **keep)
            ctx = open_context(str(config_dir), f"sqlite:///{tmp / 'replay.db'}",
                               policy=NetworkPolicy(allow=["127.0.0.0/8"]), base_dir=str(tmp))
            try:
                ctx.notifier.stdout = io.StringIO()  # the console channel: not our output
                max_age = ctx.config.settings.max_age
                first_cycle = datetime.combine(days[0], time(CYCLE_HOUR), UTC)
                backlog = {c.id for c in dated if max_age is not None and c.published < first_cycle - max_age}
                errors: list[str] = []
                for n, day in enumerate(days):
                    as_of = datetime.combine(day, time(CYCLE_HOUR), UTC)
                    by_feed: dict[str, list[tuple[str, ReplayCase]]] = {f: [] for f in feeds.values()}
                    for case in dated:
                        if case.published <= as_of:  # type: ignore[operator]
                            by_feed[feeds[case.outlet]].append((paths[case.id], case))
                    outlets = {feed_id: outlet for outlet, feed_id in feeds.items()}
                    for feed_id, items in by_feed.items():
                        (site / "feeds" / f"{feed_id}.xml").write_text(render_feed(outlets[feed_id], items),
                                                                       encoding="utf-8")
                    ctx.as_of = as_of
                    report = run_cycle(ctx)
                    errors.extend(f"{day}: {line}" for line in report.errors)
                    if progress:
                        progress(n + 1, len(days), day)
                store = ctx.store
                alerts = store.list_alerts(limit=10_000_000)
                events = store.list_events(limit=10_000_000)
                url_case = {}
                for case in dated:
                    url = f"{server.base}/{paths[case.id]}"
                    url_case[url] = url_case[canonical_url(url)] = case.id
                stored: dict[str, Article] = {}
                article_case: dict[str, str] = {}
                after = None
                while batch := store.iter_articles(after_id=after):
                    for article in batch:
                        case_id = url_case.get(article.original_url) or url_case.get(article.url)
                        if case_id is not None:
                            stored[case_id] = article
                            article_case[article.id] = case_id
                    after = batch[-1].id
            finally:
                ctx.close()
    return ReplayRun(dated, undated, days, backlog, alerts, events, stored, article_case, errors,
                     max_age.total_seconds() / 3600 if max_age is not None else 0.0)


def evaluate_replay(paths: list[str], *, start: date | None = None, config: str | None = None,
                    progress: Callable[[int, int, date], None] | None = None) -> dict[str, Any]:
    """Load, replay and score: the result `eval replay --json` prints."""
    from pipelines.config import config_dir_from
    from pipelines.tag import load_taxonomy_file

    taxonomy = load_taxonomy_file(str(Path(config_dir_from(config)) / "topics.yaml"))
    cases = load_cases(paths, taxonomy.development_types())
    run = replay(cases, start=start, config=config, progress=progress)
    scoring = Scoring(run.cases, run.alerts, run.events, run.article_case, run.stored, run.backlog)
    result = compute_metrics(scoring)
    kinds = Counter(a.kind for a in run.alerts)
    result["run"] = {
        "cases": len(cases), "replayed": len(run.cases), "undated": run.undated,
        "outlets": len({c.outlet for c in run.cases}), "stored": len(run.stored),
        "not_stored": sorted(c.id for c in run.cases if c.id not in run.stored),
        "relevant_stored": sum(1 for c in run.cases if c.relevant and c.id in run.stored),
        "cycles": len(run.days), "first_cycle": run.days[0].isoformat(), "last_cycle": run.days[-1].isoformat(),
        "start": start.isoformat() if start else None, "max_age_hours": run.max_age_hours,
        "backlog": sorted(run.backlog), "alerts": len(run.alerts), "alert_kinds": dict(sorted(kinds.items())),
        "system_events": len(run.events), "cycle_errors": run.cycle_errors,
    }
    return result


# --------------------------------------------------------------------------- text


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def replay_text(result: dict[str, Any], show_errors: bool = False) -> str:
    run, rec, prec = result["run"], result["event_recall"], result["type_precision"]
    load, backlog, art = result["notifications"], result["backlog"], result["article_development"]
    hours = rec["hours_to_alert"]
    ped, pdd = load["per_event_desk"], load["per_desk_day"]
    kinds = ", ".join(f"{k} {n}" for k, n in run["alert_kinds"].items()) or "none"
    lines = [
        f"cases {run['cases']} ({run['undated']} undated, skipped) from {run['outlets']} outlets; "
        f"{run['cycles']} daily cycles {run['first_cycle']} .. {run['last_cycle']}; "
        f"stored {run['stored']}/{run['replayed']}; backlog {len(run['backlog'])} (older than "
        f"{run['max_age_hours']:g}h at the first cycle)",
        f"notifications {run['alerts']} ({kinds}); system events {run['system_events']}",
        f"event recall            {_num(rec['recall'])} ({rec['recalled']}/{rec['gold_events']} gold events)"
        f"  with a development {_num(rec['development_recall'])} ({rec['development_recalled']})",
        f"type precision          {_num(prec['precision'])} ({prec['correct']}/{prec['notifications']} "
        f"notifications with a development)",
        f"false development alerts {prec['false_development_alerts']}",
        f"per event per desk      mean {_num(ped['mean'], 2)}  max {_num(ped['max'])} "
        f"({ped['pairs']} event-desk pairs)",
        f"per desk per day        mean {_num(pdd['mean'], 2)}  max {_num(pdd['max'])} "
        f"({pdd['pairs']} desk-days with one)",
        f"hours to first alert    median {_num(hours['median'], 1)}  max {_num(hours['max'], 1)} "
        f"({hours['events']} events)",
        f"backlog notifications   {backlog['notifications']} (from {backlog['backlog_cases']} backlog cases)",
        f"article development     {_num(art['accuracy'])} ({art['correct']}/{art['cases']} stored relevant "
        f"cases with one)  false developments {_num(art['false_development']['rate'])} "
        f"({art['false_development']['false']}/{art['false_development']['cases']})",
        "  by language           " + ("  ".join(f"{lang} {v['correct']}/{v['cases']}"
                                               for lang, v in art["by_language"].items()) or "-"),
        "",
        "targets:",
    ]
    for row in result["targets"]:
        mark = "n/a" if row["met"] is None else "met" if row["met"] else "MISSED"
        lines.append(f"  {row['target']:30} {_num(row['value']):>7}  {row['op']} {row['bound']:<5}  {mark}")
    if run["cycle_errors"]:
        lines.append(f"cycle problems: {len(run['cycle_errors'])} (first: {run['cycle_errors'][0][:140]})")
    if show_errors:
        lines.append("")
        lines.append("errors:")
        first_error = len(lines)
        for miss in rec["missed"]:
            lines.append(f"  missed event {miss['event']} (labels {', '.join(miss['labels'])}; "
                         f"reports {', '.join(miss['reports'])})")
        for wrong in prec["wrong"]:
            lines.append(f"  wrong notification [{wrong['desk']}] {wrong['kind']} {wrong['type']} raised by "
                         f"{wrong['case']} (event {wrong['event'] or '-'}, gold {', '.join(wrong['gold']) or '-'};"
                         f" {wrong['why']})")
        for pair in ped["repeated"]:
            detail = "; ".join(f"{a['kind']} {a['type'] or '-'} by {a['case']} {a['created'][:10]}"
                               for a in pair["alerts"])
            lines.append(f"  {pair['notifications']} notifications for {pair['event']} to {pair['desk']}: {detail}")
        for alert in backlog["alerts"]:
            lines.append(f"  backlog notification [{alert['desk']}] {alert['kind']} {alert['type'] or '-'} "
                         f"raised by {alert['case']}")
        for wrong in art["wrong"]:
            lines.append(f"  article {wrong['case']}: labelled {wrong['expected'] or '-'}, stored "
                         f"{wrong['got'] or '-'}")
        if run["not_stored"]:
            lines.append(f"  not stored: {', '.join(run['not_stored'])}")
        if len(lines) == first_error:
            lines.append("  none")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _start_date(value: str) -> date:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def add_replay_parser(sub, parents: Iterable[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", parents=list(parents),
                       help="replay dated labelled reports through real daily cycles: event alerts",
                       description=(__doc__ or "").split("\n\n")[1])
    p.add_argument("paths", nargs="+", metavar="FILE.jsonl",
                   help='JSONL {"id","outlet","published","title","text","relevant","development","event"}'
                        " (or folders of them), pooled into one chronology")
    p.add_argument("--start", type=_start_date, default=None, metavar="DATE",
                   help="the first cycle runs as of DATE 23:00 UTC; older cases are the feeds' backlog")
    p.add_argument("--errors", action="store_true",
                   help="list missed events, wrong notifications and repeated (event, desk) notifications")
    p.set_defaults(func=cmd_eval_replay)
    return p


def _progress(quiet: bool) -> Callable[[int, int, date], None] | None:
    if quiet or not sys.stderr.isatty():
        return None

    def show(done: int, total: int, day: date) -> None:
        print(f"\rreplay: cycle {done}/{total} ({day})", end="" if done < total else "\n",
              file=sys.stderr, flush=True)
    return show


def cmd_eval_replay(args: argparse.Namespace) -> int:
    quiet = getattr(args, "json", False)
    result = evaluate_replay(args.paths, start=args.start, config=args.config, progress=_progress(quiet))
    if quiet:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        print(replay_text(result, args.errors))
    misses = target_misses(result)
    if misses:
        print(f"newsmon: {len(misses)} target(s) missed", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def replay_sets(data: Path, fixtures: Path) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The replays `eval all` runs: (name, paths) each, and a line per set that is absent."""
    sets: list[tuple[str, list[str]]] = []
    skipped: list[str] = []
    shared = data / "coverage2025" / "articles.jsonl"
    if shared.is_file():
        sets.append(("coverage2025", [str(shared)]))
    else:
        skipped.append(f"replay coverage2025: {shared} is absent")
    chronologies = fixtures / "chronologies"
    files = sorted(chronologies.glob("*.jsonl")) if chronologies.is_dir() else []
    if files:
        sets.extend((f"chronology {path.stem}", [str(path)]) for path in files)
    else:
        skipped.append(f"replay chronologies: no JSONL in {chronologies}")
    return sets, skipped


def run_for_all(data: Path, fixtures: Path, config: str | None, report: dict[str, Any],
                say: Callable[[str], None]) -> None:
    """`eval all`'s replay part: results into report["replay"], absent sets into skipped, misses into misses."""
    sets, skipped = replay_sets(data, fixtures)
    report.setdefault("replay", {})
    report["skipped"].extend(skipped)
    for name, paths in sets:
        result = evaluate_replay(paths, config=config)
        report["replay"][name] = result
        say(f"== replay: {name} ==")
        for line in replay_text(result).splitlines():
            say(line)
        say("")
        report["misses"].extend(f"replay {name}: {miss}" for miss in target_misses(result))

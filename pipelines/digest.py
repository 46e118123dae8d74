"""Desk digests: the period's developments (events), other alerts and top stories, as HTML and Markdown files.

Pure Python so the CLI, the news_digest DAG and tests share it. A digest covers the
articles *indexed* (fetched) in [start, end): each article appears in exactly one digest
even when it was published long before it reached us. Its id, sha256(desk|start|end),
is the idempotency key for files and sends: a retried run rewrites the same files and
skips channels that already got it (per-desk state.json next to the files).

Grouped by development event (pipelines/events.py): every event the desk was alerted to in
the period is one "Developments" entry ("ceasefire violated — 5 outlets; first reported by X
at T", its evidence sentence, status and state change) however many alerts and rules it raised;
alerts without an event follow as "Other alerts", then the top stories that are not reports of
a listed event. Times are shown in the desk's time zone (alerts.yaml `timezone`, default UTC).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from pipelines.alerts import AlertConfig
from pipelines.events import status_label
from pipelines.models import Alert, Article, DevelopmentEvent, iso
from pipelines.netguard import NetworkPolicy
from pipelines.notify import DeliveryError, Notifier
from pipelines.textnorm import strip_controls

MAX_STORIES = 10
MAX_DEVELOPMENTS = 50
# Articles are picked by the time they were indexed, but the store can only filter on published
# time (an item may be published days before we see it), so the newest SCAN_LIMIT articles of the
# desk by published time are read and filtered here. TODO: a store query by fetched time.
SCAN_LIMIT = 2000
FIRST_PERIOD = timedelta(hours=24)

_SAFE_NAME = re.compile(r"[^a-z0-9._-]+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


@dataclass
class StoryLine:
    """One story in the digest, represented by its first article indexed in the period."""

    story_id: str
    title: str
    url: str
    source: str
    published: str | None
    copies: int
    sources: list[str]
    development: str | None
    topics: list[str]


@dataclass
class EventLine:
    """One development event the desk was alerted to in the period, with those alerts."""

    event: DevelopmentEvent
    alerts: list[Alert]
    rules: list[str]  # every rule folded into those alerts, first seen first


@dataclass
class Digest:
    desk: str
    start: str  # ISO UTC, inclusive
    end: str  # ISO UTC, exclusive
    developments: list[Alert] = field(default_factory=list)  # every alert of the period (their ids go out)
    stories: list[StoryLine] = field(default_factory=list)  # top stories that are not reports of `events`
    articles: int = 0  # articles of the desk indexed in the period
    events: list[EventLine] = field(default_factory=list)  # one per event, in order of first report
    timezone: str = "UTC"  # the desk's: every time in the digest is shown in it

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.desk}|{self.start}|{self.end}".encode()).hexdigest()[:32]

    @property
    def empty(self) -> bool:
        return not self.developments and not self.stories

    @property
    def other_alerts(self) -> list[Alert]:
        """The period's alerts that no listed event covers (keyword and topic rules' stories)."""
        covered = {a.id for line in self.events for a in line.alerts}
        return [a for a in self.developments if a.id not in covered]

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def human(self, value: str | None) -> str:
        return _human(value, self.zone())

    def title(self) -> str:
        return f"{self.desk} desk digest, {self.human(self.start)} to {self.human(self.end)}"


@dataclass
class DigestFiles:
    html: Path
    md: Path


def _parse(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _human(value: str | None, zone: ZoneInfo | None = None) -> str:
    """'2025-11-12 08:10 PKT' in the zone (UTC when none)."""
    if not value:
        return "-"
    try:
        moment = _parse(value)
    except ValueError:
        return value
    if zone is None:
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def event_heading(event: DevelopmentEvent) -> str:
    """'ceasefire violated' for ceasefire-violated."""
    return event.type.replace("-", " ")


def event_transition(event: DevelopmentEvent) -> str:
    return f"{event.family}: {event.state_before or 'none'} → {event.state_after or '?'}"


def _in_period(value: str | None, start: datetime, end: datetime) -> bool:
    if not value:
        return False
    try:
        moment = _parse(value)
    except ValueError:
        return False
    return start <= moment < end


def _event_lines(store: Any, alerts: list[Alert]) -> list[EventLine]:
    """The alerts' events (one line each, however many alerts and rules), in order of first report.
    An alert whose event is not stored (any more) stays an other alert."""
    lines: dict[str, EventLine] = {}
    for alert in alerts:
        if not alert.event_id:
            continue
        line = lines.get(alert.event_id)
        if line is None:
            event = store.get_event(alert.event_id)
            if event is None:
                continue
            line = lines[alert.event_id] = EventLine(event, [], [])
        line.alerts.append(alert)
        for rule in alert.rules or [alert.rule_id]:
            if rule not in line.rules:
                line.rules.append(rule)
    return sorted(lines.values(), key=lambda line: (line.event.opened, line.event.id))


def build_digest(store: Any, desk: str, start: str | datetime, end: str | datetime,
                 max_stories: int = MAX_STORIES, timezone: str | None = None) -> Digest:
    """Query the store for one desk's period: its alerts grouped by event, and the other stories ranked
    by reach. timezone: the desk's (alerts.yaml), for every time shown; UTC when None."""
    start_dt, end_dt = _parse(start), _parse(end)
    digest = Digest(desk=desk, start=iso(start_dt) or "", end=iso(end_dt) or "", timezone=timezone or "UTC")
    alerts = [a for a in store.list_alerts(since=digest.start, limit=MAX_DEVELOPMENTS * 20)
              if a.desk == desk and _in_period(a.created, start_dt, end_dt)]
    alerts.sort(key=lambda a: a.created)
    digest.developments = alerts[:MAX_DEVELOPMENTS]
    digest.events = _event_lines(store, digest.developments)
    listed = {line.event.id for line in digest.events}
    event_stories = {r.story_id for line in digest.events for r in line.event.reports if r.story_id}

    hits = store.search(desk=desk, limit=SCAN_LIMIT)
    articles: list[Article] = [h.article for h in hits if _in_period(h.article.fetched, start_dt, end_dt)]
    digest.articles = len(articles)
    # Off-theatre pieces (the cricket, the chip market) are indexed but are not the desk's stories.
    articles = [a for a in articles if a.relevant]
    # A report of a listed event is told by its Developments entry: the stories are the other news.
    articles = [a for a in articles if a.event_id not in listed and a.story_id not in event_stories]
    alerted_stories = {a.story_id for a in alerts}
    by_story: dict[str, list[Article]] = {}
    for article in articles:
        by_story.setdefault(article.story_id, []).append(article)
    stories: list[StoryLine] = []
    for story_id, members in by_story.items():
        members.sort(key=lambda a: (a.fetched, a.id))
        lead = members[0]
        story = store.get_story(story_id) or {}
        sources = sorted({m.source for m in members} | set(story.get("sources") or []))
        development = next((m.development.type for m in members if m.development), None)
        topics = sorted({t for m in members for t in m.topic_ids()})
        stories.append(StoryLine(story_id=story_id, title=lead.title, url=lead.url, source=lead.source,
                                 published=lead.published, copies=max(int(story.get("copies") or 0), len(members)),
                                 sources=sources, development=development, topics=topics))
    # Reach first (how many outlets carry it), then whether it moved a development or an alert.
    stories.sort(key=lambda s: (-len(s.sources), -s.copies, s.story_id not in alerted_stories,
                                s.development is None, s.title))
    digest.stories = stories[:max_stories]
    return digest


# --- rendering -------------------------------------------------------------------------
def development_lines(digest: Digest) -> list[tuple[Alert, list[str]]]:
    """The other alerts (no listed event), one line per (story, development): several rules firing on the
    same news is one line."""
    lines: dict[tuple[str, str | None], tuple[Alert, list[str]]] = {}
    for alert in digest.other_alerts:
        key = (alert.story_id, alert.development)
        if key in lines:
            lines[key][1].append(alert.rule_id)
        else:
            lines[key] = (alert, [alert.rule_id])
    return list(lines.values())


def _safe_url(url: str | None) -> str | None:
    if url and url.startswith(("http://", "https://")) and not re.search(r"[\s<>\"']", url):
        return url
    return None


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _counts_line(digest: Digest, others: list) -> str:
    return (f"{_plural(digest.articles, 'article')} indexed, {_plural(len(digest.events), 'development')}, "
            f"{_plural(len(others), 'other alert')}, {_plural(len(digest.stories), 'other story', 'other stories')}.")


def _reach(outlets: int, who: str, when: str) -> str:
    """reach_text with the outlet and time already rendered (a link, escaped text)."""
    text = _plural(outlets, "outlet")
    if who:
        text += f"; first reported by {who}" + (f" at {when}" if when else "")
    return text


def _first(event: DevelopmentEvent) -> tuple[str | None, str | None, str | None]:
    first = event.first_report
    return (first.outlet, first.url, first.time) if first else (None, None, None)


def md_escape(text: str | None) -> str:
    """Markdown-escape one line of untrusted text (titles, sources come from third parties)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join((text or "").split()))


def render_markdown(digest: Digest) -> str:
    lines = [f"# {md_escape(digest.title())}", ""]
    others = development_lines(digest)
    lines.append(_counts_line(digest, others))
    lines += ["", f"Times in {md_escape(digest.timezone)}.", "", "## Developments", ""]
    if not digest.events:
        lines.append("No development events in this period.")
    for line in digest.events:
        event = line.event
        outlet, url, time = _first(event)
        safe = _safe_url(url)
        who = (f"[{md_escape(outlet)}](<{safe}>)" if safe else md_escape(outlet)) if outlet else ""
        reach = _reach(len(event.outlets), who, md_escape(digest.human(time)) if time else "")
        lines.append(f"- **{md_escape(event_heading(event))}** — {reach}; {md_escape(status_label(event))}; "
                     f"{md_escape(event_transition(event))} "
                     f"({'rules' if len(line.rules) > 1 else 'rule'} {', '.join(md_escape(r) for r in line.rules)})")
        evidence = event.first_report.evidence if event.first_report else ""
        if evidence:
            lines.append(f"  > {md_escape(evidence)}")
    lines += ["", "## Other alerts", ""]
    if not others:
        lines.append("No other alerts in this period.")
    for alert, rules in others:
        url = _safe_url(alert.url)
        title = f"[{md_escape(alert.title)}](<{url}>)" if url else md_escape(alert.title)
        dev = f"**{md_escape(alert.development)}**: " if alert.development else ""
        lines.append(f"- {digest.human(alert.created)}: {dev}{title} ({md_escape(alert.source)}; "
                     f"{'rules' if len(rules) > 1 else 'rule'} {', '.join(md_escape(r) for r in rules)})")
    lines += ["", "## Other stories", ""]
    if not digest.stories:
        lines.append("No other stories in this period.")
    for n, story in enumerate(digest.stories, 1):
        url = _safe_url(story.url)
        title = f"[{md_escape(story.title)}](<{url}>)" if url else md_escape(story.title)
        extra = [f"{len(story.sources)} source{'s' if len(story.sources) != 1 else ''}"]
        if story.development:
            extra.append(f"development: {md_escape(story.development)}")
        if story.topics:
            extra.append("topics: " + ", ".join(md_escape(t) for t in story.topics))
        lines.append(f"{n}. {title}, {md_escape(story.source)}, {digest.human(story.published)} ({'; '.join(extra)})")
    lines += ["", f"Digest {digest.id}", ""]
    return "\n".join(lines)


def render_html(digest: Digest) -> str:
    esc = html.escape

    def link(title: str, url: str | None) -> str:
        safe = _safe_url(url)
        return f'<a href="{esc(safe, quote=True)}">{esc(title)}</a>' if safe else esc(title)

    def event_item(line: EventLine) -> str:
        event = line.event
        outlet, url, time = _first(event)
        reach = _reach(len(event.outlets), link(outlet, url) if outlet else "", esc(digest.human(time)) if time else "")
        evidence = event.first_report.evidence if event.first_report else ""
        return (f'<li class="event"><strong>{esc(event_heading(event))}</strong> — {reach} '
                f'<span class="status">{esc(status_label(event))}</span>'
                f'<br><small>{esc(event_transition(event))}; '
                f"{'rules' if len(line.rules) > 1 else 'rule'} {esc(', '.join(line.rules))}</small>"
                + (f"<blockquote>{esc(evidence)}</blockquote>" if evidence else "") + "</li>")

    others = development_lines(digest)
    event_items = "".join(event_item(line) for line in digest.events) \
        or "<li>No development events in this period.</li>"
    other_items = "".join(
        f"<li><time>{esc(digest.human(a.created))}</time> "
        + (f"<strong>{esc(a.development)}</strong>: " if a.development else "")
        + f"{link(a.title, a.url)} <span class=\"src\">({esc(a.source)}; "
        + f"{'rules' if len(rules) > 1 else 'rule'} {esc(', '.join(rules))})</span></li>"
        for a, rules in others
    ) or "<li>No other alerts in this period.</li>"
    story_items = "".join(
        f"<li>{link(s.title, s.url)} <span class=\"src\">{esc(s.source)}, {esc(digest.human(s.published))}</span>"
        f"<br><small>{len(s.sources)} source{'s' if len(s.sources) != 1 else ''}"
        + (f"; development: {esc(s.development)}" if s.development else "")
        + (f"; topics: {esc(', '.join(s.topics))}" if s.topics else "")
        + "</small></li>"
        for s in digest.stories
    ) or "<li>No other stories in this period.</li>"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(digest.title())}</title>"
        "<style>body{font-family:sans-serif;max-width:48em;margin:2em auto;line-height:1.4}"
        ".src,small{color:#555}li{margin:.4em 0}.status{font-weight:600}"
        "blockquote{margin:.2em 0 .2em 1em;color:#333}</style></head><body>\n"
        f"<h1>{esc(digest.title())}</h1>\n"
        f"<p>{esc(_counts_line(digest, others))} Times in {esc(digest.timezone)}.</p>\n"
        f"<h2>Developments</h2>\n<ul>{event_items}</ul>\n"
        f"<h2>Other alerts</h2>\n<ul>{other_items}</ul>\n"
        f"<h2>Other stories</h2>\n<ol>{story_items}</ol>\n"
        f"<footer><small>Digest {esc(digest.id)}</small></footer>\n</body></html>\n"
    )


# --- files and state -------------------------------------------------------------------
def desk_dirname(desk: str) -> str:
    """A desk id as a directory name that cannot climb out of the digest folder."""
    name = _SAFE_NAME.sub("-", desk.lower()).strip(".-")
    return name or "desk"


def digest_stem(end: str) -> str:
    return _parse(end).strftime("%Y-%m-%dT%H-%M-%SZ")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_digest(digest: Digest, out_dir: str | Path) -> DigestFiles:
    folder = Path(out_dir) / desk_dirname(digest.desk)
    stem = digest_stem(digest.end)
    files = DigestFiles(html=folder / f"{stem}.html", md=folder / f"{stem}.md")
    _atomic_write(files.html, render_html(digest))
    _atomic_write(files.md, render_markdown(digest))
    return files


@dataclass
class DigestState:
    """Per-desk bookkeeping: where the last digest ended, and which channels got the one in progress."""

    last_end: str | None = None
    pending_id: str | None = None
    sent: list[str] = field(default_factory=list)

    @staticmethod
    def path(out_dir: str | Path, desk: str) -> Path:
        return Path(out_dir) / desk_dirname(desk) / "state.json"

    @classmethod
    def load(cls, out_dir: str | Path, desk: str) -> DigestState:
        try:
            data = json.loads(cls.path(out_dir, desk).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return cls()
        return cls(last_end=data.get("last_end"), pending_id=data.get("pending_id"),
                   sent=list(data.get("sent") or []))

    def save(self, out_dir: str | Path, desk: str) -> None:
        _atomic_write(self.path(out_dir, desk), json.dumps(
            {"last_end": self.last_end, "pending_id": self.pending_id, "sent": self.sent}, indent=1) + "\n")


def period_for(state: DigestState, end: str | datetime) -> tuple[str, str]:
    """[start, end) of the next digest: from where the last one ended, or the last 24 h for a first one."""
    end_dt = _parse(end)
    start_dt = _parse(state.last_end) if state.last_end else end_dt - FIRST_PERIOD
    return iso(start_dt) or "", iso(end_dt) or ""


# --- sending ---------------------------------------------------------------------------
class DigestDeliveryError(Exception):
    """One digest could not reach one channel; one line naming the channel and why."""


def digest_sender(channels: list[Any], env: Mapping[str, str] = os.environ,
                  policy: NetworkPolicy | None = None, base_dir: str = ".") -> Notifier:
    """The alerts' channel sender (pipelines/notify.py) for these channels: a digest reaches a JSONL
    file, a webhook or an SMTP host exactly as an alert does (fsync, url_env check, TLS rules, channel
    network policy, secret-free errors). policy: where channels may connect (default
    NEWSMON_CHANNEL_ALLOW_NETWORKS of env); base_dir: what relative JSONL paths are relative to."""
    config = AlertConfig(path="alerts.yaml", channels={c.id: c for c in channels if getattr(c, "id", None)},
                         desks={}, rules=[])
    return Notifier(config, env=env, policy=policy, base_dir=base_dir)


def send_digest(digest: Digest, files: DigestFiles, channel: Any, env: Mapping[str, str] = os.environ,
                base_dir: str = ".", stdout: IO[str] | None = None, sender: Notifier | None = None) -> None:
    """Send a digest to one alerts.yaml channel (console, jsonl, webhook, email).

    Webhooks and email go through the alerts' channel sender (`sender`, digest_sender's by default);
    the channel config and the idempotency rules (id in every message) are the same as for alerts."""
    kind = getattr(channel, "type", None)
    summary = (f"digest {digest.desk} {digest.human(digest.start)} -> {digest.human(digest.end)}: "
               f"{len(digest.events)} developments, {len(digest.other_alerts)} other alerts, "
               f"{len(digest.stories)} stories ({files.html})")
    if kind == "console":
        print(strip_controls(summary), file=stdout or sys.stdout, flush=True)
    elif kind == "jsonl":
        record = {"type": "digest", "id": digest.id, "desk": digest.desk, "start": digest.start,
                  "end": digest.end, "developments": [a.id for a in digest.developments],
                  "events": [line.event.id for line in digest.events], "stories": [s.story_id for s in digest.stories], "html": str(files.html),
                  "md": str(files.md), "channel": channel.id}
        sender = sender if sender is not None else digest_sender([channel], env, base_dir=base_dir)
        try:
            sender.append_jsonl(channel, record)
        except DeliveryError as exc:
            raise DigestDeliveryError(str(exc)) from None
    elif kind in ("webhook", "email"):
        sender = sender if sender is not None else digest_sender([channel], env, base_dir=base_dir)
        try:
            if kind == "webhook":
                sender.post_webhook(channel, _webhook_body(digest, channel), digest.id)
            else:
                sender.send_email_message(channel, _email_message(digest, channel))
        except DeliveryError as exc:
            raise DigestDeliveryError(str(exc)) from None
    else:
        raise DigestDeliveryError(f"channel {getattr(channel, 'id', '?')!r}: unknown channel type {kind!r}")


def _webhook_body(digest: Digest, channel: Any) -> bytes:
    markdown = render_markdown(digest)
    payload: dict[str, Any] = {"text": markdown} if channel.format == "slack" else {
        "type": "digest", "id": digest.id, "desk": digest.desk, "start": digest.start, "end": digest.end,
        "markdown": markdown, "developments": [a.id for a in digest.developments],
        "events": [line.event.id for line in digest.events],
        "stories": [{"story_id": s.story_id, "title": s.title, "url": s.url} for s in digest.stories]}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _email_message(digest: Digest, channel: Any) -> EmailMessage:
    from_addr = channel.from_addr or ""
    msg = EmailMessage()
    msg["Subject"] = strip_controls(f"{channel.subject_prefix} {digest.title()}")
    msg["From"] = from_addr
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<digest-{digest.id}@{from_addr.rpartition('@')[2] or 'newsmon.invalid'}>"
    msg.set_content(render_markdown(digest))
    msg.add_alternative(render_html(digest), subtype="html")
    return msg


@dataclass
class DeskDigestResult:
    desk: str
    status: str  # written | empty | too-soon | done
    html: str | None = None
    md: str | None = None
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # one line per channel that did not take it


def run_desk_digest(store: Any, desk: str, channels: list[Any], out_dir: str | Path, end: str | datetime,
                    min_interval: timedelta = timedelta(0), env: Mapping[str, str] = os.environ,
                    base_dir: str = ".", stdout: IO[str] | None = None,
                    timezone: str | None = None, policy: NetworkPolicy | None = None) -> DeskDigestResult:
    """Build, write and send one desk's digest for [last end, end); safe to repeat for the same end.

    Empty periods write nothing and do not move the period start, so the next digest covers
    them. The period closes (state.last_end = end) once every channel took the digest; a
    channel that failed keeps it open, and a retry re-sends to that channel only. timezone: the desk's
    (DeskConfig.timezone), for the times shown; UTC when None. policy: where webhook and email channels may
    connect (digest_sender)."""
    state = DigestState.load(out_dir, desk)
    start, end_iso = period_for(state, end)
    if _parse(start) >= _parse(end_iso):
        return DeskDigestResult(desk, "done")
    if state.last_end and _parse(end_iso) - _parse(state.last_end) < min_interval:
        return DeskDigestResult(desk, "too-soon")
    digest = build_digest(store, desk, start, end_iso, timezone=timezone)
    if digest.empty:
        return DeskDigestResult(desk, "empty")
    files = write_digest(digest, out_dir)
    if state.pending_id != digest.id:
        state.pending_id, state.sent = digest.id, []
    result = DeskDigestResult(desk, "written", html=str(files.html), md=str(files.md))
    sender = digest_sender(channels, env, policy, base_dir=base_dir)
    for channel in channels:
        if channel.id in state.sent:
            result.sent.append(channel.id)
            continue
        try:
            send_digest(digest, files, channel, env=env, base_dir=base_dir, stdout=stdout, sender=sender)
        except DigestDeliveryError as exc:
            result.failed.append(str(exc))
            continue
        state.sent.append(channel.id)
        result.sent.append(channel.id)
        state.save(out_dir, desk)
    if not result.failed:
        state.last_end, state.pending_id, state.sent = digest.end, None, []
    state.save(out_dir, desk)
    return result

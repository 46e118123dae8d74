"""Development events and the watch's state: one real-world development, however many outlets report it.

A report (a stored article whose development statement is asserted, alleged or denied) attaches to an
open event when it reports the same development: some `matching` group of config/events.yaml holds both
its type and the event's, it falls within that group's window of the event's first report, and venue,
places and parties agree where both sides name them. Otherwise an asserted or alleged report opens a new
event; a denial never opens one (it disputes the event it denies, when there is one).

The watch's state (per family: ceasefire none / in force / extended / violated / collapsed; talks none /
scheduled / in session / stalled / broken down / resumed / agreement) is a fold over the stored events in
order of their first report, so rebuilding it from the store after a restart or a reindex gives the same
state. The state reads the news (`interpret`): fighting between the two states' forces while a truce is in
force is a violation even when no outlet writes "ceasefire"; "talks continue" after a stall is a resumption.

Status: superseded once a later event of the same family moved the state on; disputed when a party
denies it or every report is an allegation; corroborated when `status.corroborated_at` independent
outlets report it; reported otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pipelines.config import shown
from pipelines.errors import ConfigError
from pipelines.models import (
    OPENING_MODES,
    Article,
    Development,
    DevelopmentEvent,
    EventReport,
    happened_on,
    iso,
    parse_iso,
)

# Modes the event layer acts on: the announcing ones open events, a denial disputes one.
ACTING_MODES = (*OPENING_MODES, "denied")
_TOP_KEYS = {"watch", "families", "readings", "matching", "status", "related"}
_FAMILY_KEYS = {"states", "types", "in_force", "topics"}
_READING_KEYS = {"statement", "family", "in_states", "becomes", "otherwise"}
_GROUP_KEYS = {"types", "window", "since", "venue", "places", "parties", "ordered"}
_SINCE = ("first", "latest")


@dataclass(frozen=True)
class Family:
    id: str
    states: tuple[str, ...]
    types: dict[str, str]  # development type -> the state it moves the family to
    in_force: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()  # topic ids an article on this family carries (for related reports)


@dataclass(frozen=True)
class Reading:
    statement: str
    family: str
    in_states: frozenset[str]
    becomes: str
    otherwise: str | None = None  # what it is in the other states (None: no development)


@dataclass(frozen=True)
class MatchGroup:
    types: frozenset[str]
    window: timedelta
    since: str = "first"  # the window runs from the event's first report, or from its latest one
    order: tuple[str, ...] = ()  # ordered groups: weakest first; a report joins only an event at least as strong
    venue: bool = False
    places: bool = False
    parties: bool = True


@dataclass(frozen=True)
class EventRules:
    path: str
    watch: str
    families: dict[str, Family]
    readings: dict[str, Reading]
    groups: tuple[MatchGroup, ...]
    corroborated_at: int = 2
    related_window: timedelta | None = None  # see EventBook.relate; None: off

    def family_of(self, dev_type: str) -> str | None:
        return next((f.id for f in self.families.values() if dev_type in f.types), None)

    def event_types(self) -> set[str]:
        return {t for f in self.families.values() for t in f.types}


# --------------------------------------------------------------------------- loading


def load_event_rules(data: Any, path: str) -> EventRules:
    """Validate parsed events.yaml; ConfigError(path, entry, field, message) on the first problem."""
    from pipelines.config import parse_duration

    if not isinstance(data, dict):
        raise ConfigError(path, None, None, "must be a mapping with watch, families, readings, matching")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(path, None, str(key), f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    watch = data.get("watch")
    if not isinstance(watch, str) or not watch.strip():
        raise ConfigError(path, None, "watch", "is required: the id of the watch (theatre)")
    raw_families = data.get("families")
    if not isinstance(raw_families, dict) or not raw_families:
        raise ConfigError(path, "families", None, "must map each family id to its states and types")
    families: dict[str, Family] = {}
    owner: dict[str, str] = {}
    for fid, raw in raw_families.items():
        entry = f"family {fid}"
        _keys(path, entry, raw, _FAMILY_KEYS)
        states = raw.get("states")
        if not isinstance(states, list) or not states or not all(isinstance(s, str) for s in states):
            raise ConfigError(path, entry, "states", "must be a non-empty list of state names")
        types = raw.get("types")
        if not isinstance(types, dict) or not types:
            raise ConfigError(path, entry, "types", "must map development types to states")
        for dev_type, state in types.items():
            if state not in states:
                raise ConfigError(path, entry, "types", f"{str(dev_type)[:80]}: unknown state {shown(state)} "
                                                        f"(states: {', '.join(states[:20])[:200]})")
            if dev_type in owner:
                raise ConfigError(path, entry, "types", f"{str(dev_type)[:80]} already belongs to family "
                                                        f"{str(owner[dev_type])[:80]}")
            owner[dev_type] = fid
        in_force = raw.get("in_force") or []
        for state in in_force:
            if state not in states:
                raise ConfigError(path, entry, "in_force", f"unknown state {shown(state)}")
        topics = raw.get("topics") or []
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ConfigError(path, entry, "topics", "must be a list of topic ids")
        families[fid] = Family(fid, tuple(states), dict(types), frozenset(in_force), frozenset(topics))

    readings: dict[str, Reading] = {}
    for i, raw in enumerate(data.get("readings") or []):
        entry = f"readings #{i + 1}"
        _keys(path, entry, raw, _READING_KEYS)
        family = raw.get("family")  # a list here is unhashable: a ConfigError, not a TypeError
        fam = families.get(family) if isinstance(family, str) else None
        if fam is None:
            raise ConfigError(path, entry, "family", f"unknown family {shown(family)}")
        if not isinstance(raw.get("becomes"), str) or raw.get("becomes") not in fam.types:
            raise ConfigError(path, entry, "becomes", f"{shown(raw.get('becomes'))} is not a type of family "
                                                     f"{str(fam.id)[:80]}")
        in_states = raw.get("in_states") or []
        for state in in_states:
            if state not in fam.states:
                raise ConfigError(path, entry, "in_states", f"unknown state {shown(state)}")
        statement = raw.get("statement")
        if not isinstance(statement, str) or not statement:
            raise ConfigError(path, entry, "statement", "is required")
        otherwise = raw.get("otherwise")
        if otherwise is not None and (not isinstance(otherwise, str) or otherwise not in fam.types):
            raise ConfigError(path, entry, "otherwise", f"{shown(otherwise)} is not a type of family "
                                                        f"{str(fam.id)[:80]}")
        readings[statement] = Reading(statement, fam.id, frozenset(in_states), raw["becomes"], otherwise)

    groups: list[MatchGroup] = []
    for i, raw in enumerate(data.get("matching") or []):
        entry = f"matching #{i + 1}"
        _keys(path, entry, raw, _GROUP_KEYS)
        types = raw.get("types")
        if not isinstance(types, list) or not types:
            raise ConfigError(path, entry, "types", "must be a non-empty list of development types")
        for dev_type in types:
            if not isinstance(dev_type, str) or dev_type not in owner:
                raise ConfigError(path, entry, "types", f"unknown development type {shown(dev_type)}")
        try:
            window = parse_duration(raw.get("window", "72h"))
        except ValueError as exc:
            raise ConfigError(path, entry, "window", str(exc)) from None
        since = raw.get("since", "first")
        if since not in _SINCE:
            raise ConfigError(path, entry, "since", f"must be one of {', '.join(_SINCE)} (got {shown(since)})")
        ordered = raw.get("ordered", False)
        if not isinstance(ordered, bool):
            raise ConfigError(path, entry, "ordered", "must be true or false")
        flags = {}
        for flag in ("venue", "places", "parties"):
            value = raw.get(flag, flag == "parties")
            if not isinstance(value, bool):
                raise ConfigError(path, entry, flag, "must be true or false")
            flags[flag] = value
        groups.append(MatchGroup(frozenset(types), window, since, tuple(types) if ordered else (), **flags))
    status = data.get("status") or {}
    if not isinstance(status, dict) or set(status) - {"corroborated_at"}:
        raise ConfigError(path, "status", None, "only corroborated_at is allowed")
    corroborated_at = status.get("corroborated_at", 2)
    if isinstance(corroborated_at, bool) or not isinstance(corroborated_at, int) or corroborated_at < 1:
        raise ConfigError(path, "status", "corroborated_at", "must be a whole number >= 1")
    related = data.get("related") or {}
    if not isinstance(related, dict) or set(related) - {"window"}:
        raise ConfigError(path, "related", None, "only window is allowed")
    related_window = None
    if "window" in related:
        try:
            related_window = parse_duration(related["window"])
        except ValueError as exc:
            raise ConfigError(path, "related", "window", str(exc)) from None
    return EventRules(path, watch.strip(), families, readings, tuple(groups), corroborated_at, related_window)


def _keys(path: str, entry: str, raw: Any, allowed: set[str]) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(path, entry, None, f"must be a mapping, not {type(raw).__name__}")
    for key in raw:
        if key not in allowed:
            raise ConfigError(path, entry, str(key), f"unknown key (allowed: {', '.join(sorted(allowed))})")



# --------------------------------------------------------------------------- the watch's state


@dataclass
class FamilyState:
    state: str
    since: str | None = None
    event_id: str | None = None


@dataclass
class WatchState:
    """Each family's current state, with the event that set it and since when."""

    families: dict[str, FamilyState] = field(default_factory=dict)

    @classmethod
    def initial(cls, rules: EventRules) -> WatchState:
        return cls({fid: FamilyState(f.states[0]) for fid, f in rules.families.items()})

    def get(self, family: str) -> str | None:
        fs = self.families.get(family)
        return fs.state if fs else None

    def apply(self, rules: EventRules, dev_type: str, at: str | None, event_id: str | None = None) -> None:
        fam = rules.family_of(dev_type)
        if fam is not None:
            self.families[fam] = FamilyState(rules.families[fam].types[dev_type], at, event_id)

    def to_dict(self) -> dict[str, Any]:
        return {fid: {"state": fs.state, "since": fs.since, "event": fs.event_id} for fid, fs in self.families.items()}


def state_from_events(rules: EventRules, events: list[DevelopmentEvent], until: str | None = None) -> WatchState:
    """The state after every event opened up to `until` (all when None), in time order.

    An event moves its own family's state when it opens; a report of another family folded into it (an
    outcome told as "talks revived" by one outlet and "truce extended" by another) moves that family's
    state too, at the time of its first such report."""
    moves: list[tuple[str, str, str]] = []  # (time, event id, type)
    for event in events:
        moves.append((event.opened, event.id, event.type))
        own = rules.family_of(event.type)
        seen = {own}
        for r in event.reports:
            family = rules.family_of(r.type)
            if family not in seen and r.mode in OPENING_MODES:
                seen.add(family)
                moves.append((r.time, event.id, r.type))
    state = WatchState.initial(rules)
    for at, event_id, dev_type in sorted(moves):
        if until is not None and at > until:
            break
        state.apply(rules, dev_type, at, event_id)
    return state


def interpret(dev: Development | None, state: WatchState, rules: EventRules) -> Development | None:
    """The development as the pipeline stores it: state-dependent statements read by the state.

    None for a statement that announces nothing (hypothetical, future, question, background) and for a
    state-dependent one the state does not turn into a development (fighting with no truce in force)."""
    if dev is None or dev.mode not in ACTING_MODES:
        return None
    reading = rules.readings.get(dev.type)
    if reading is not None:
        if state.get(reading.family) in reading.in_states:
            return replace(dev, type=reading.becomes)
        return replace(dev, type=reading.otherwise) if reading.otherwise else None
    if rules.family_of(dev.type) is None:
        return None
    return dev


# --------------------------------------------------------------------------- attaching reports


@dataclass
class Attachment:
    """What attaching one report did."""

    event: DevelopmentEvent
    opened: bool  # the report opened the event
    added: bool  # the report was new to the event (False on a repeat: idempotent)
    status_before: str | None  # None when opened
    outlets_before: int
    related: bool = False  # the article reports no development of its own; it is background to the event


def _report_time(article: Article) -> datetime | None:
    """When the report happened: published, else first seen."""
    return parse_iso(article.seen_time()) or parse_iso(article.fetched)


def event_id_for(watch: str, dev_type: str, article_id: str) -> str:
    return hashlib.sha256(f"{watch}|{dev_type}|{article_id}".encode()).hexdigest()[:32]




def _agree(a: list[str] | str | None, b: list[str] | str | None) -> bool:
    """Where both name something, they must share it."""
    left = {a} if isinstance(a, str) else set(a or ())
    right = {b} if isinstance(b, str) else set(b or ())
    return not left or not right or bool(left & right)


def _parties_agree(event: list[str], report: list[str]) -> bool:
    """Parties agree where both name them and share one, or where each names a single party: a report
    naming only Kabul and one naming only Islamabad tell one bilateral development."""
    return _agree(event, report) or (len(set(event)) == 1 and len(set(report)) == 1)


def compatible(rules: EventRules, event: DevelopmentEvent, dev: Development, at: datetime) -> bool:
    opened, updated = parse_iso(event.opened), parse_iso(event.updated)
    if opened is None or updated is None:
        return False
    event_types = {event.type} | {r.type for r in event.reports}
    for group in rules.groups:
        if dev.type not in group.types or not (event_types & group.types):
            continue
        if group.order and (event.type not in group.order
                            or group.order.index(dev.type) > group.order.index(event.type)):
            continue  # a stronger report after a weaker one is a transition: talks stalled, then broke down
        # From the first report: a report this long after the development is news of its own. From
        # the latest: a development reported day after day (an exchange of fire at one crossing) stays one.
        if at < opened - group.window or at - (opened if group.since == "first" else updated) > group.window:
            continue
        if group.venue and not _agree(event.venue, dev.venue):
            continue
        if group.places and not _agree(event.places, dev.places):
            continue
        if group.parties and not _parties_agree(event.parties, dev.parties):
            continue
        return True
    return False


class EventBook:
    """Attaches reports to events in a store and keeps the watch's state (rebuilt from the store)."""

    def __init__(self, rules: EventRules, store: Any):
        self.rules, self.store = rules, store
        self._events: list[DevelopmentEvent] | None = None

    def events(self) -> list[DevelopmentEvent]:
        if self._events is None:
            self._events = self.store.list_events(watch=self.rules.watch, limit=100_000)
        return self._events

    def refresh(self) -> None:
        """Forget the cached events (another worker may have stored some)."""
        self._events = None

    def state(self, until: str | None = None) -> WatchState:
        return state_from_events(self.rules, self.events(), until)

    def interpret(self, dev: Development | None, at: str | None) -> Development | None:
        return interpret(dev, self.state(at), self.rules)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's events lock, with the events re-read inside it: another worker may have opened
        or updated one since this book last read them."""
        lock = getattr(self.store, "events_lock", None)
        with lock() if lock is not None else contextlib.nullcontext():
            self.refresh()
            yield

    def attach(self, article: Article) -> Attachment | None:
        """Attach the article's development to its event, opening one when none matches; None when the
        article reports no development the events track. Idempotent per article; under the store's
        events lock, so concurrent workers agree on one event."""
        dev = article.development
        if dev is None or dev.mode not in ACTING_MODES or self.rules.family_of(dev.type) is None:
            return None
        with self._locked():
            return self._attach(article, dev)

    def _attach(self, article: Article, dev: Development) -> Attachment | None:
        events = self.events()
        done = self._attached(article, related=False)
        if done is not None:
            return done
        at = _report_time(article)
        if at is None:
            return None
        # A late report of an earlier day ("agreed on Thursday", published on Saturday) also matches by
        # the day it names (the nearest day word may belong to another clause, so never only by it); the
        # report keeps its publication time.
        day = happened_on(dev, at)
        when = datetime.combine(day, at.timetz()) if day is not None and day <= at.date() else at
        candidates = [e for e in events
                      if compatible(self.rules, e, dev, at) or (when != at and compatible(self.rules, e, dev, when))]
        report = self._report(article, at, dev.evidence, dev.type, dev.mode)
        report.happened = day.isoformat() if day is not None else None
        if candidates:
            event = min(candidates, key=lambda e: abs(at - (parse_iso(e.opened) or at)))
            status_before, outlets_before = event.status, len(event.outlets)
            event.reports.append(report)
            event.reports.sort(key=lambda r: (r.time, r.article_id))
            first = event.first_report  # a late-arriving earlier report moves the opening back
            event.opened = first.time if first is not None else event.opened
            event.updated = max(event.updated, report.time)
            event.venue = event.venue or dev.venue
            event.places = list(dict.fromkeys([*event.places, *dev.places]))
            event.parties = list(dict.fromkeys([*event.parties, *dev.parties]))
            self._settle(event)
            self._save(event, article)
            return Attachment(event, False, True, status_before, outlets_before)
        if dev.mode not in OPENING_MODES:
            return None  # a denial of something nobody reported: nothing to dispute
        family = self.rules.family_of(dev.type) or ""
        before = self.state(iso(at))
        event = DevelopmentEvent(
            id=event_id_for(self.rules.watch, dev.type, article.id), watch=self.rules.watch, family=family,
            type=dev.type, opened=report.time, updated=report.time, venue=dev.venue, places=list(dev.places),
            parties=list(dev.parties), state_before=before.get(family),
            state_after=self.rules.families[family].types[dev.type], reports=[report],
            confidence=dev.confidence,
        )
        self._settle(event)
        # The event moves the state on: the one that set the family's state before is superseded.
        previous = before.families.get(family)
        if previous and previous.event_id:
            old = next((e for e in events if e.id == previous.event_id), None)
            if old is not None and old.status != "superseded":
                old.status, old.superseded_by = "superseded", event.id
                self.store.save_event(old)
        self._save(event, article)
        events.append(event)
        return Attachment(event, True, True, None, 0)

    def relate(self, article: Article) -> Attachment | None:
        """Attach a relevant article that reports no development of its own (analysis, background, a
        restatement) to the event it is about: an event of a family whose topics the article carries,
        updated within `related.window` of the article, at the venue the article names if it names one.
        It becomes a background report (no outlet, no status change), so the keyword alerts it raises
        fold into the desk's alert for that event. None when no event fits."""
        window = self.rules.related_window
        dev = article.development
        if window is None or (dev is not None and dev.mode in ACTING_MODES):
            return None
        topics = set(article.topic_ids())
        families = {fid for fid, fam in self.rules.families.items() if fam.topics & topics}
        if not families:
            return None
        with self._locked():
            return self._relate(article, families, window)

    def _relate(self, article: Article, families: set[str], window: timedelta) -> Attachment | None:
        events = self.events()
        done = self._attached(article, related=True)
        if done is not None:
            return done
        at = _report_time(article)
        if at is None:
            return None
        venues = {e.venue for e in events if e.venue}
        named = {p.get("id") for p in article.places if isinstance(p, dict)} & venues
        candidates = []
        for event in events:
            opened, updated = parse_iso(event.opened), parse_iso(event.updated)
            if event.family not in families or opened is None or updated is None or event.status == "superseded":
                continue
            if not (opened - window <= at <= updated + window):
                continue
            if named and event.venue and event.venue not in named:
                continue  # the article is about another round
            candidates.append((updated, event))
        if not candidates:
            return None
        event = max(candidates, key=lambda pair: (pair[0], pair[1].id))[1]
        event.reports.append(self._report(article, at, "", "", "background"))
        event.reports.sort(key=lambda r: (r.time, r.article_id))
        self._save(event, article)
        return Attachment(event, False, True, event.status, len(event.outlets), related=True)

    def _attached(self, article: Article, related: bool) -> Attachment | None:
        """The attachment a repeated call finds (the article is already a report of an event)."""
        event = next((e for e in self.events() if e.has_report(article.id)), None)
        if event is None:
            return None
        return Attachment(event, False, False, event.status, len(event.outlets), related=related)

    @staticmethod
    def _report(article: Article, at: datetime, evidence: str, dev_type: str, mode: str) -> EventReport:
        return EventReport(article_id=article.id, url=article.url, outlet=article.source, time=iso(at) or "",
                           first_seen=article.fetched, language=article.language, evidence=evidence,
                           type=dev_type, mode=mode, story_id=article.story_id, title=article.title)

    def _save(self, event: DevelopmentEvent, article: Article) -> None:
        self.store.save_event(event)
        self.store.set_article_event(article.id, event.id)
        article.event_id = event.id

    def _settle(self, event: DevelopmentEvent) -> None:
        """Status and confidence from the reports so far (background reports count for neither)."""
        outlets = len(event.outlets)
        acting = [r for r in event.reports if r.mode in ACTING_MODES]
        if event.superseded_by:
            event.status = "superseded"
        elif any(r.mode == "denied" for r in acting) or all(r.mode == "alleged" for r in acting):
            event.status = "disputed"
        elif outlets >= self.rules.corroborated_at:
            event.status = "corroborated"
        else:
            event.status = "reported"
        event.confidence = event_confidence(event)


def event_confidence(event: DevelopmentEvent) -> float:
    """0..1: more independent outlets raise it, allegations and denials lower it."""
    outlets = len(event.outlets)
    acting = [r for r in event.reports if r.mode in ACTING_MODES]
    base = 1 - 0.5 ** (outlets + 1)  # 1 outlet 0.75, 2 0.875, 3 0.94
    if any(r.mode == "denied" for r in acting):
        base *= 0.6
    elif all(r.mode == "alleged" for r in acting):
        base *= 0.7
    return round(base, 3)


def status_label(event: DevelopmentEvent) -> str:
    """How a desk reads the status: 'corroborated by 5', 'disputed', ..."""
    if event.status == "corroborated":
        return f"corroborated by {len(event.outlets)}"
    if event.status == "disputed":
        acting = [r for r in event.reports if r.mode in ACTING_MODES]
        return "alleged" if all(r.mode == "alleged" for r in acting) else "disputed"
    return event.status


def reach_text(outlet_count: int, first_outlet: str | None, first_time_local: str | None) -> str:
    """'5 outlets; first reported by Dawn at 2025-10-19 14:05 PKT' (digest entries and alert cards)."""
    text = f"{outlet_count} outlet{'' if outlet_count == 1 else 's'}"
    if first_outlet:
        text += f"; first reported by {first_outlet}"
        if first_time_local:
            text += f" at {first_time_local}"
    return text

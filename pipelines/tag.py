"""Topic tagger: taxonomy loading/validation and the one-automaton matcher.

All terms of a taxonomy (topic terms, theatre anchors, entity and place names) go into a single
Aho-Corasick automaton over folded text (see pipelines.textnorm), so an article is scanned once
whatever the number of terms.  Mentions are then filtered (word boundaries, exact case), resolved
(longest match wins within one topic / anchor list / entity), anchored in the Pakistan–Afghanistan
theatre sentence by sentence, and scored.

Relevance rule: the article as a whole is anchored in the theatre (theatre.article in topics.yaml)
AND at least one *primary* topic is hit.  alert_worthy: relevant AND a development statement was
detected in mode asserted or alleged (developments are themselves anchored, so a Gaza truce never
raises one; a denied statement is returned but is not alert-worthy).  CJK ideographs count as word
ends (Chinese is written without spaces), so Chinese terms match inside running text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import ahocorasick_rs
import yaml

from pipelines import developments as dev_mod
from pipelines.config import parse_yaml, shown
from pipelines.errors import ConfigError
from pipelines.models import TagResult, TopicHit, announced_type
from pipelines.textnorm import Folded, fold, fold_term, split_sentences

ANCHORS = ("near", "bilateral", "article", "loose")
RELEVANCE = ("primary", "secondary")
LANGUAGES = ("urdu", "pashto", "dari", "chinese", "turkish", "arabic")
SIDES = dev_mod.SIDES  # who an entity or place stands with in a development statement
THEATRE_LISTS = ("strong", "weak", "foreign")

# --- taxonomy model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    text: str  # as written in the config
    folded: str
    weight: float = 1.0
    exact_case: bool = False
    prefix: bool = False  # trailing "*": no right word boundary


@dataclass
class Topic:
    id: str
    name: str
    description: str
    anchor: str
    relevance: str
    terms: list[Term]
    translations: dict[str, list[Term]]
    min_score: float | None = None
    weight: float = 1.0

    def all_terms(self) -> list[Term]:
        out = list(self.terms)
        for terms in self.translations.values():
            out.extend(terms)
        return out


@dataclass
class Entity:
    id: str
    name: str
    kind: str
    group: str  # person | organisation
    terms: list[Term]
    role: str = ""
    side: str | None = None  # pakistan | afghanistan | mediator | militant (see developments)
    stands_for: str | None = None  # the entity or place id it speaks for (a minister for a government)


@dataclass
class Place:
    id: str
    name: str
    kind: str
    lat: float
    lon: float
    terms: list[Term]
    side: str | None = None
    stands_for: str | None = None  # "Islamabad", "Kabul": the capital stands for its government


@dataclass
class Theatre:
    name: str
    window: int
    strong: list[Term]
    weak: list[Term]
    foreign: list[Term]
    min_strong: int = 2
    min_strong_with_weak: int = 1
    min_weak: int = 3
    title_weight: int = 3
    foreign_ratio: float = 0.5


@dataclass
class Settings:
    saturation: float = 3.0
    min_score: float = 0.25
    title_boost: float = 2.0
    max_repeats: int = 3
    max_evidence: int = 5


@dataclass
class Taxonomy:
    path: str
    settings: Settings
    theatre: Theatre
    topics: list[Topic]
    people: list[Entity]
    organisations: list[Entity]
    places: list[Place]
    developments: dev_mod.DevelopmentRules
    automaton: Automaton | None = field(default=None, repr=False)
    topic_anchor: list[str] = field(default_factory=list)  # anchor kind by topic index

    def topic_ids(self) -> list[str]:
        return [t.id for t in self.topics]

    def development_types(self) -> list[str]:
        return [t.id for t in self.developments.types]

    def topic(self, topic_id: str) -> Topic:
        for t in self.topics:
            if t.id == topic_id:
                return t
        raise KeyError(topic_id)


# --- loading and validation ----------------------------------------------------------------------

_TOP_KEYS = {"version", "settings", "theatre", "topics", "entities", "developments"}
_SETTINGS_KEYS = {"saturation", "min_score", "title_boost", "max_repeats", "max_evidence"}
_THEATRE_KEYS = {"name", "window", "article", "strong", "weak", "foreign"}
_ARTICLE_KEYS = {"min_strong", "min_strong_with_weak", "min_weak", "title_weight", "foreign_ratio"}
_TOPIC_KEYS = {"id", "name", "description", "anchor", "relevance", "terms", "translations", "min_score", "weight"}
_TERM_KEYS = {"term", "weight", "exact_case"}
_PERSON_KEYS = {"id", "name", "role", "aliases", "side", "stands_for"}
_ORG_KEYS = {"id", "name", "kind", "role", "aliases", "side", "stands_for"}
_PLACE_KEYS = {"id", "name", "kind", "lat", "lon", "aliases", "side", "stands_for"}


class _Checker:
    """Small helpers that raise ConfigError naming file, entry and field."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, entry: str | None, field_name: str | None, message: str) -> ConfigError:
        return ConfigError(self.path, entry, field_name, message)

    def mapping(self, value: Any, entry: str | None, field_name: str | None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(entry, field_name, f"expected a mapping, got {type(value).__name__}")
        return value

    def keys(self, value: dict, allowed: set[str], entry: str | None, required: Iterable[str] = (),
             prefix: str = "") -> None:
        for key in value:
            if key not in allowed:
                raise self.fail(entry, f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value or value[key] is None:
                raise self.fail(entry, f"{prefix}{key}", "missing required field")

    def string(self, value: Any, entry: str | None, field_name: str, allow_empty: bool = False) -> str:
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise self.fail(entry, field_name, f"expected a non-empty string, got {shown(value)}")
        return value

    def number(self, value: Any, entry: str | None, field_name: str, lo: float | None = None,
               hi: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(entry, field_name, f"expected a number, got {shown(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(entry, field_name, f"{value} is out of range [{lo}, {hi}]")
        return float(value)

    def integer(self, value: Any, entry: str | None, field_name: str, lo: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise self.fail(entry, field_name, f"expected an integer >= {lo}, got {shown(value)}")
        return value

    def boolean(self, value: Any, entry: str | None, field_name: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(entry, field_name, f"expected true or false, got {shown(value)}")
        return value

    def choice(self, value: Any, choices: tuple[str, ...], entry: str | None, field_name: str) -> str:
        if value not in choices:
            raise self.fail(entry, field_name, f"expected one of {', '.join(choices)}, got {shown(value)}")
        return value

    def ident(self, value: Any, entry: str | None, field_name: str = "id") -> str:
        text = self.string(value, entry, field_name)
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in text) or not text[0].isalnum():
            raise self.fail(entry, field_name, f"ids are ascii letters, digits, '-' and '_': {shown(text)}")
        return text

    def term(self, value: Any, entry: str | None, field_name: str) -> Term:
        weight, exact = 1.0, False
        if isinstance(value, dict):
            self.keys(value, _TERM_KEYS, entry, required=("term",), prefix=f"{field_name}.")
            text = self.string(value["term"], entry, f"{field_name}.term")
            if "weight" in value:
                weight = self.number(value["weight"], entry, f"{field_name}.weight", 0.01, 10)
            if "exact_case" in value:
                exact = self.boolean(value["exact_case"], entry, f"{field_name}.exact_case")
        elif isinstance(value, str):
            text = value
        else:
            raise self.fail(entry, field_name, f"expected a term string or {{term: ...}}, got {shown(value)}")
        prefix = text.rstrip().endswith("*")
        body = text.rstrip()[:-1] if prefix else text
        folded = fold_term(body)
        if not folded or not any(c.isalnum() for c in folded):
            raise self.fail(entry, field_name, f"term {shown(text)} has no letters")
        if "*" in body:
            raise self.fail(entry, field_name, f"'*' is allowed only at the end of a term: {shown(text)}")
        if exact and prefix:
            raise self.fail(entry, field_name, "a term cannot be both exact_case and a prefix ('*')")
        return Term(text=body.strip(), folded=folded, weight=weight, exact_case=exact, prefix=prefix)

    def term_list(self, value: Any, entry: str | None, field_name: str, allow_empty: bool = False) -> list[Term]:
        if not isinstance(value, list) or (not value and not allow_empty):
            raise self.fail(entry, field_name, "expected a non-empty list of terms")
        return [self.term(v, entry, f"{field_name}[{i}]") for i, v in enumerate(value)]


def load_taxonomy(data: Any, path: str) -> Taxonomy:
    """Validate parsed topics.yaml and build the matcher; ConfigError names file, entry and field."""
    ck = _Checker(path)
    data = ck.mapping(data, None, None)
    ck.keys(data, _TOP_KEYS, None, required=("theatre", "topics"))
    if "version" in data and data["version"] != 1:
        raise ck.fail(None, "version", f"unsupported version {shown(data['version'])} (expected 1)")

    settings = Settings()
    if data.get("settings") is not None:
        raw = ck.mapping(data["settings"], "settings", None)
        ck.keys(raw, _SETTINGS_KEYS, "settings")
        for key in ("saturation", "title_boost"):
            if key in raw:
                setattr(settings, key, ck.number(raw[key], "settings", key, 0.01, 100))
        if "min_score" in raw:
            settings.min_score = ck.number(raw["min_score"], "settings", "min_score", 0, 1)
        for key in ("max_repeats", "max_evidence"):
            if key in raw:
                setattr(settings, key, ck.integer(raw[key], "settings", key, lo=1))

    theatre = _load_theatre(ck, data["theatre"])

    raw_topics = data["topics"]
    if not isinstance(raw_topics, list) or not raw_topics:
        raise ck.fail(None, "topics", "expected a non-empty list of topics")
    topics: list[Topic] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_topics):
        label = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"topics[{i}]"
        topic = _load_topic(ck, raw, label)
        if topic.id in seen:
            raise ck.fail(topic.id, "id", "duplicate topic id")
        seen.add(topic.id)
        topics.append(topic)

    people: list[Entity] = []
    organisations: list[Entity] = []
    places: list[Place] = []
    if data.get("entities") is not None:
        people, organisations, places = _load_entities(ck, data["entities"])

    named = [dev_mod.Named(e.id, e.side, e.stands_for, e.kind, isinstance(e, Place),
                           tuple(t.folded for t in e.terms if not t.exact_case))
             for e in [*people, *organisations, *places]]
    rules = dev_mod.compile_developments(data.get("developments"), path, [t.id for t in topics], named)
    taxonomy = Taxonomy(path, settings, theatre, topics, people, organisations, places, rules)
    taxonomy.automaton = _build_automaton(taxonomy)
    taxonomy.topic_anchor = [t.anchor for t in topics]
    return taxonomy


def load_taxonomy_file(path: str) -> Taxonomy:
    """Read and validate a topics.yaml file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = parse_yaml(fh)
    except OSError as err:
        raise ConfigError(path, None, None, f"cannot read: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(path, None, None, f"invalid YAML{where}: {getattr(err, 'problem', err)}") from err
    return load_taxonomy(data, path)


def _load_theatre(ck: _Checker, raw: Any) -> Theatre:
    raw = ck.mapping(raw, "theatre", None)
    ck.keys(raw, _THEATRE_KEYS, "theatre", required=("name", "strong", "weak"))
    theatre = Theatre(
        name=ck.string(raw["name"], "theatre", "name"),
        window=ck.integer(raw.get("window", 1), "theatre", "window"),
        strong=ck.term_list(raw["strong"], "theatre", "strong"),
        weak=ck.term_list(raw["weak"], "theatre", "weak"),
        foreign=ck.term_list(raw.get("foreign") or [], "theatre", "foreign", allow_empty=True),
    )
    if raw.get("article") is not None:
        art = ck.mapping(raw["article"], "theatre", "article")
        ck.keys(art, _ARTICLE_KEYS, "theatre", prefix="article.")
        for key in ("min_strong", "min_strong_with_weak", "min_weak", "title_weight"):
            if key in art:
                setattr(theatre, key, ck.integer(art[key], "theatre", f"article.{key}", lo=1))
        if "foreign_ratio" in art:
            theatre.foreign_ratio = ck.number(art["foreign_ratio"], "theatre", "article.foreign_ratio", 0, 100)
    return theatre


def _load_topic(ck: _Checker, raw: Any, label: str) -> Topic:
    raw = ck.mapping(raw, label, None)
    ck.keys(raw, _TOPIC_KEYS, label, required=("id", "name", "description", "terms"))
    topic_id = ck.ident(raw["id"], label)
    translations: dict[str, list[Term]] = {}
    if raw.get("translations") is not None:
        tr = ck.mapping(raw["translations"], topic_id, "translations")
        for lang, terms in tr.items():
            if lang not in LANGUAGES:
                raise ck.fail(topic_id, f"translations.{lang}", f"unknown language (allowed: {', '.join(LANGUAGES)})")
            translations[lang] = ck.term_list(terms, topic_id, f"translations.{lang}")
    min_score = None
    if raw.get("min_score") is not None:
        min_score = ck.number(raw["min_score"], topic_id, "min_score", 0, 1)
    return Topic(
        id=topic_id,
        name=ck.string(raw["name"], topic_id, "name"),
        description=ck.string(raw["description"], topic_id, "description"),
        anchor=ck.choice(raw.get("anchor", "near"), ANCHORS, topic_id, "anchor"),
        relevance=ck.choice(raw.get("relevance", "primary"), RELEVANCE, topic_id, "relevance"),
        terms=ck.term_list(raw["terms"], topic_id, "terms"),
        translations=translations,
        min_score=min_score,
        weight=ck.number(raw.get("weight", 1.0), topic_id, "weight", 0.01, 10),
    )


def _load_entities(ck: _Checker, raw: Any) -> tuple[list[Entity], list[Entity], list[Place]]:
    raw = ck.mapping(raw, "entities", None)
    ck.keys(raw, {"people", "organisations", "places"}, "entities")
    ids: set[str] = set()

    def items(key: str) -> list[tuple[str, dict]]:
        value = raw.get(key) or []
        if not isinstance(value, list):
            raise ck.fail("entities", key, "expected a list")
        out = []
        for i, item in enumerate(value):
            label = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else f"{key}[{i}]"
            item = ck.mapping(item, label, None)
            out.append((label, item))
        return out

    def names(label: str, item: dict) -> list[Term]:
        terms = [ck.term(item["name"], label, "name")]
        if item.get("aliases") is not None:
            terms += ck.term_list(item["aliases"], label, "aliases")
        return terms

    def claim(label: str, item: dict, section: str) -> str:
        entity_id = ck.ident(item["id"], label)
        if entity_id in ids:
            raise ck.fail(entity_id, "id", f"duplicate entity id (in {section})")
        ids.add(entity_id)
        return entity_id

    def side_of(eid: str, item: dict) -> tuple[str | None, str | None]:
        side = item.get("side")
        if side is not None:
            ck.choice(side, SIDES, eid, "side")
        stands_for = item.get("stands_for")
        if stands_for is not None:
            ck.ident(stands_for, eid, "stands_for")
            if side is None:
                raise ck.fail(eid, "stands_for", "needs a side (who it stands for is a party)")
        return side, stands_for

    people, orgs, places = [], [], []
    for label, item in items("people"):
        ck.keys(item, _PERSON_KEYS, label, required=("id", "name"))
        eid = claim(label, item, "people")
        people.append(Entity(eid, ck.string(item["name"], eid, "name"), "person", "person", names(eid, item),
                             ck.string(item.get("role", ""), eid, "role", allow_empty=True), *side_of(eid, item)))
    for label, item in items("organisations"):
        ck.keys(item, _ORG_KEYS, label, required=("id", "name", "kind"))
        eid = claim(label, item, "organisations")
        orgs.append(Entity(eid, ck.string(item["name"], eid, "name"), ck.ident(item["kind"], eid, "kind"),
                           "organisation", names(eid, item),
                           ck.string(item.get("role", ""), eid, "role", allow_empty=True), *side_of(eid, item)))
    for label, item in items("places"):
        ck.keys(item, _PLACE_KEYS, label, required=("id", "name", "lat", "lon"))
        pid = claim(label, item, "places")
        places.append(Place(pid, ck.string(item["name"], pid, "name"),
                            ck.ident(item.get("kind", "place"), pid, "kind"),
                            ck.number(item["lat"], pid, "lat", -90, 90), ck.number(item["lon"], pid, "lon", -180, 180),
                            names(pid, item), *side_of(pid, item)))
    for entry in [*people, *orgs, *places]:
        if entry.stands_for is not None and entry.stands_for not in ids:
            raise ck.fail(entry.id, "stands_for", f"unknown entity or place id {shown(entry.stands_for)}")
    return people, orgs, places


# --- automaton -----------------------------------------------------------------------------------

# A payload is (group, index in its bucket, kind, ref, weight, folded_term); mentions of one group
# (one topic, one entity, one place, or all theatre anchors) are resolved longest-first together.
TOPIC, ANCHOR, ENTITY, PLACE = 0, 1, 2, 3
_STRONG, _WEAK, _FOREIGN = 0, 1, 2
TITLE, TEXT = 0, 1  # field codes: the title sorts before the text


def _build_automaton(tx: Taxonomy) -> Automaton:
    """One automaton over every folded term; each key's value says how to check its mentions.

    Value: (single, plain, located, named): payloads of theatre anchors and topics (they need the
    sentence they are in), then of entities and places (only their first mention counts).  `plain`
    keys (no exact-case or prefix term) hold bare payloads, so the scan's common path only checks
    word boundaries; the others hold (payload, exact_text_or_None, prefix), in configured order.
    `single` is the payload of a plain key with one located payload and no other: the commonest.
    """
    table: dict[str, dict[tuple, tuple]] = {}

    def add(term: Term, kind: int, ref: int) -> None:
        entry = (kind, ref, term.weight, term.text if term.exact_case else None, term.prefix)
        bucket = table.setdefault(term.folded, {})
        key = (kind, ref, entry[3], term.prefix)
        old = bucket.get(key)
        if old is None or old[2] < term.weight:  # duplicate spellings after folding: keep the heavier
            bucket[key] = entry

    for idx, topic in enumerate(tx.topics):
        for term in topic.all_terms():
            add(term, TOPIC, idx)
    for which, terms in ((_STRONG, tx.theatre.strong), (_WEAK, tx.theatre.weak), (_FOREIGN, tx.theatre.foreign)):
        for term in terms:
            add(term, ANCHOR, which)
    for idx, ent in enumerate(tx.people + tx.organisations):
        for term in ent.terms:
            add(term, ENTITY, idx)
    for idx, place in enumerate(tx.places):
        for term in place.terms:
            add(term, PLACE, idx)

    values = []
    for folded_term, bucket in table.items():
        checked: tuple[list, list] = ([], [])  # theatre anchors and topics / entities and places
        for idx, (kind, ref, weight, exact, prefix) in enumerate(bucket.values()):
            group = -1 if kind == ANCHOR else kind * 100_000 + ref
            checked[kind >= ENTITY].append(((group, idx, kind, ref, weight, folded_term), exact, prefix))
        plain = all(exact is None and not prefix for part in checked for _payload, exact, prefix in part)
        if plain:
            checked = tuple([p for p, _exact, _prefix in part] for part in checked)
        single = checked[0][0] if plain and len(checked[0]) == 1 and not checked[1] else None
        values.append((single, plain, tuple(checked[0]), tuple(checked[1])))
    return Automaton(list(table), values)


_SURROGATES = re.compile("[\ud800-\udfff]")


class Automaton:
    """Every folded term in one compiled Aho-Corasick automaton, and per term how to check its mentions.

    ahocorasick_rs walks the text in compiled code and hands back all matches, overlapping ones
    included, as one list: in about half the time pyahocorasick's iterator took over the bench articles.
    """

    __slots__ = ("keys", "values", "_automaton")

    def __init__(self, keys: list[str], values: list[tuple]):
        self.keys = keys
        self.values = values  # per key: (single, plain, located payloads, named payloads)
        self._automaton = ahocorasick_rs.AhoCorasick(keys, matchkind=ahocorasick_rs.MatchKind.Standard,
                                                     implementation=ahocorasick_rs.Implementation.DFA)

    def matches(self, text: str) -> list[tuple[int, int, int]]:
        """(key index, start, end) of every occurrence, by end offset (the longer first at one end)."""
        try:
            return self._automaton.find_matches_as_indexes(text, overlapping=True)
        except UnicodeEncodeError:  # a lone surrogate: one code point for one keeps the offsets
            return self._automaton.find_matches_as_indexes(_SURROGATES.sub("\ufffd", text), overlapping=True)

    def __len__(self) -> int:
        return len(self.keys)

    def __reduce__(self) -> tuple:  # the compiled automaton does not pickle; it is rebuilt
        return Automaton, (self.keys, self.values)


# --- per-article analysis ------------------------------------------------------------------------


@dataclass(slots=True)
class Mention:
    """One resolved mention, for inspection (the hot path keeps plain tuples)."""

    kind: int
    ref: Any
    weight: float
    field: str  # title | text
    fstart: int  # folded offsets
    fend: int
    key: str  # the folded term that matched


@dataclass
class Analysis:
    """What one scan of an article found; shared by the tagger and development detection."""

    title: str
    text: str
    ftitle: Folded
    ftext: Folded
    scans: tuple[list, list]  # _scan of the title and of the text
    firsts: tuple[dict[int, tuple], dict[int, tuple]]  # entity / place -> its first mention (see _scan)
    sentences: list[tuple[int, int]]
    strong: dict[int, int]  # unit -> count
    weak: dict[int, int]
    foreign: dict[int, int]
    article_anchored: bool
    strongly_anchored: bool  # anchored and with enough strong (Afghan-side / border) mentions
    theatre_named: bool  # any strong or weak theatre term at all ("loose" topics)
    foreign_total: int
    window: int
    unit_topics: dict[int, set[int]]  # title (-1) and lead sentence -> indices of the topics it mentions
    # topic index -> its mentions in reading order: (field code, fstart, fend, weight, key, unit)
    topic_mentions: dict[int, list[tuple[int, int, int, float, str, int]]]
    entity_order: list[int]  # entity / place indices by first mention
    place_order: list[int]

    @property
    def mentions(self) -> list[Mention]:
        """Theatre and topic mentions left once overlaps are resolved, and the first mention of each
        entity and place (for inspection; tagging reads the digests)."""
        resolved = [m for field_code, raw in enumerate(self.scans) for m in _resolve(raw, field_code)]
        resolved += [m for first in self.firsts for m in first.values()]
        return [Mention(p[2], p[3], p[4], "title" if field_code == TITLE else "text", start, stop, p[5])
                for field_code, start, stop, p in resolved]

    def unit_span(self, unit: int) -> tuple[str, int, int]:
        if unit < 0:
            return "title", 0, len(self.title)
        s, e = self.sentences[unit]
        return "text", s, e

    def neighbours(self, unit: int) -> list[int]:
        """Units within the window of `unit`; the title (-1) sits just before the first sentence."""
        pos = unit + 1  # position in the reading order [-1, 0, 1, ...]
        lo, hi = max(0, pos - self.window), min(len(self.sentences) + 1, pos + self.window + 1)
        out = [i - 1 for i in range(lo, hi) if i != pos]
        if unit == -1 and self.window and len(self.sentences) > 1 and 1 not in out:
            out.append(1)  # headlines are written to be read with the first two lead sentences
        return out

    def anchored_unit(self, unit: int) -> bool:
        """Whether a mention in `unit` belongs to the theatre ("near" in topics.yaml)."""
        strong, foreign, weak = self.strong.get(unit, 0), self.foreign.get(unit, 0), self.weak.get(unit, 0)
        if strong:
            return strong >= foreign
        if foreign:
            return False
        if self.strongly_anchored and not self.foreign_total:
            return True  # no other conflict named anywhere: the mention can only be about ours
        near = self.neighbours(unit)
        near_strong = sum(self.strong.get(u, 0) for u in near)
        near_foreign = sum(self.foreign.get(u, 0) for u in near)
        if near_strong and near_strong >= near_foreign:
            return True
        if not weak or near_foreign:
            return False
        # A sentence naming only Pakistan's side ("Pakistan says the talks have collapsed") in an article
        # that names the Afghan side somewhere and no other conflict anywhere is about ours (Pakistan's
        # talks with the IMF or its opposition name no Afghan side at all).
        return self.strongly_anchored or (not self.foreign_total and any(self.strong.values()))


def _scan(folded: Folded, automaton: Automaton, field_code: int,
          firsts: tuple[dict[int, tuple], dict[int, tuple]]) -> list[tuple[int, int, tuple]]:
    """Whole-word mentions of theatre anchors and topics as (fstart, -fend, payload), in the order the
    automaton meets them (by end).

    Only the first mention of an entity or place counts, so those go straight into `firsts` (entities,
    places): ref -> (field code, fstart, fend, payload) of its leftmost mention, refs in the order the
    scan first met them.
    """
    text = folded.text
    n = len(text)
    located: list[tuple[int, int, tuple]] = []
    values = automaton.values
    for key, start, stop in automaton.matches(text):
        if start:
            before = text[start - 1]
            # CJK ideographs and kana are written without spaces: each one ends a word.
            if before != " " and (before.isalnum() or before == "_") and not "\u2e80" <= before <= "\u9fff":
                continue
        single, plain, located_payloads, named_payloads = values[key]
        if stop < n:
            after = text[stop]
            right_ok = after == " " or not (after.isalnum() or after == "_") or "\u2e80" <= after <= "\u9fff"
        else:
            right_ok = True
        if single is not None:
            if right_ok:
                located.append((start, -stop, single))
            continue
        if plain:
            if not right_ok:
                continue
        else:  # exact-case or prefix terms: the payloads whose own conditions hold
            located_payloads = _holding(folded, start, stop, right_ok, located_payloads)
            named_payloads = _holding(folded, start, stop, right_ok, named_payloads)
        for payload in located_payloads:
            located.append((start, -stop, payload))
        for payload in named_payloads:
            first = firsts[payload[2] == PLACE]
            old = first.get(payload[3])
            if old is None or (old[0] == field_code and start < old[1]):
                first[payload[3]] = (field_code, start, stop, payload)
    return located


def _holding(folded: Folded, start: int, stop: int, right_ok: bool, checked: tuple) -> list[tuple]:
    """Payloads of (payload, exact, prefix) whose term holds at folded[start:stop]: a word ends there
    unless it is a prefix term, and the original text has the exact case where the term asks for it."""
    kept = []
    for payload, exact, prefix in checked:
        if not right_ok and not prefix:
            continue
        if exact is not None:
            ostart, oend = (start, stop) if folded.is_identity() else folded.span_to_original(start, stop)
            if folded.original[ostart:oend] != exact:
                continue
        kept.append(payload)
    return kept


def _resolve(raw: list[tuple[int, int, tuple]], field_code: int) -> list[tuple[int, int, int, tuple]]:
    """Mentions (field code, fstart, fend, payload) left once overlaps within a group are resolved.

    Leftmost, then longest, wins: sorting by (fstart, -fend) does both; equal spans keep configured
    order.  The result is in reading order.
    """
    kept = []
    group_end: dict[int, int] = {}
    for start, negstop, payload in sorted(raw):
        group = payload[0]
        if start < group_end.get(group, 0):
            continue
        group_end[group] = -negstop
        kept.append((field_code, start, -negstop, payload))
    return kept


def analyse(title: str, text: str, taxonomy: Taxonomy) -> Analysis:
    """Scan title and text once and work out anchoring; the expensive part of tagging."""
    title = title or ""
    text = text or ""
    ftitle, ftext = fold(title), fold(text)
    firsts: tuple[dict[int, tuple], dict[int, tuple]] = ({}, {})  # entities, places
    automaton = taxonomy.automaton
    scans = (_scan(ftitle, automaton, TITLE, firsts), _scan(ftext, automaton, TEXT, firsts))

    th = taxonomy.theatre
    topic_anchor = taxonomy.topic_anchor
    # Overlaps resolve within a group (leftmost, then longest wins: sorting by (fstart, -fend) does
    # both; equal spans keep configured order), as in _resolve; anchors are tallied in the same pass.
    tallies = ([0, 0, 0], [0, 0, 0])  # resolved theatre anchors (strong, weak, foreign): title, text
    text_anchors: list[tuple[int, int]] = []  # (fstart, anchor list) in reading order
    located: list[tuple[int, int, int, tuple]] = []  # topic mentions: (field code, fstart, fend, payload)
    near_mentions = False
    for field_code, raw in enumerate(scans):
        tally = tallies[field_code]
        group_end: dict[int, int] = {}
        for start, negstop, payload in sorted(raw):
            group = payload[0]
            if start < group_end.get(group, 0):
                continue
            group_end[group] = -negstop
            if payload[2] == ANCHOR:
                tally[payload[3]] += 1
                if field_code == TEXT:
                    text_anchors.append((start, payload[3]))
                continue
            located.append((field_code, start, -negstop, payload))
            if not near_mentions and topic_anchor[payload[3]] == "near":
                near_mentions = True
    s, w, f = (float(in_title * th.title_weight + in_text) for in_title, in_text in zip(*tallies, strict=True))
    anchored = (s >= th.min_strong or (s >= th.min_strong_with_weak and w >= 1) or w >= th.min_weak) \
        and (s + w / 2) >= th.foreign_ratio * f
    strongly = anchored and s >= th.min_strong

    # Sentences cost a pass over the text: split all of it only when anchoring needs every sentence,
    # else just the lead that development detection reads.
    if text and near_mentions and anchored and not (strongly and not f):
        sentences = split_sentences(text)
    elif text and anchored:
        sentences = split_sentences(text, limit=taxonomy.developments.lead_sentences + th.window + 2)
    else:
        sentences = []
    if ftext.is_identity():
        starts = [start for start, _ in sentences]
        last_end = sentences[-1][1] if sentences else 0
    else:
        starts = [ftext.to_folded(start) for start, _ in sentences]
        last_end = ftext.to_folded(sentences[-1][1]) if sentences else 0
    beyond = len(sentences)  # the unit of text after the sentences we split (all, or the lead)
    # A text mention's unit is its sentence: the last that starts at or before it (the first one if
    # none does). Mentions come in reading order, so a pointer walks the sentence starts once. The
    # walk is written out in both loops below: as a shared helper it cost 2% of the tagger.
    next_starts = starts[1:] + [last_end + 1]

    strong: dict[int, int] = {}
    weak: dict[int, int] = {}
    foreign: dict[int, int] = {}
    counts = (strong, weak, foreign)
    for which, count in enumerate(counts):
        if tallies[TITLE][which]:
            count[-1] = tallies[TITLE][which]
    if not sentences:
        for which, count in enumerate(counts):
            if tallies[TEXT][which]:
                count[beyond] = tallies[TEXT][which]
    else:
        unit, next_start = 0, next_starts[0]
        for start, which in text_anchors:
            if start >= last_end:
                at = beyond
            else:
                while start >= next_start:
                    unit += 1
                    next_start = next_starts[unit]
                at = unit
            count = counts[which]
            count[at] = count.get(at, 0) + 1

    lead = taxonomy.developments.lead_sentences  # development detection reads no further
    unit_topics: dict[int, set[int]] = {}
    topic_mentions: dict[int, list[tuple[int, int, int, float, str, int]]] = {}
    unit, next_start = 0, next_starts[0]
    for field_code, start, stop, payload in located:
        if field_code == TITLE:
            at = -1
        elif start >= last_end:
            at = beyond
        else:
            while start >= next_start:
                unit += 1
                next_start = next_starts[unit]
            at = unit
        ref = payload[3]
        mentions = topic_mentions.get(ref)
        if mentions is None:
            mentions = topic_mentions[ref] = []
        mentions.append((field_code, start, stop, payload[4], payload[5], at))
        if at < lead:
            topics = unit_topics.get(at)
            if topics is None:
                unit_topics[at] = {ref}
            else:
                topics.add(ref)
    # By first mention; a tie keeps the order the scan met them in (sorted() is stable).
    entity_order = sorted(firsts[0], key=lambda ref: firsts[0][ref][:2])
    place_order = sorted(firsts[1], key=lambda ref: firsts[1][ref][:2])
    return Analysis(title, text, ftitle, ftext, scans, firsts, sentences, strong, weak, foreign, anchored,
                    strongly, bool(s or w), int(f), th.window, unit_topics, topic_mentions, entity_order,
                    place_order)


# --- tagger --------------------------------------------------------------------------------------


class Tagger:
    """Tags articles against one taxonomy; build once, call tag() for every article (thread-safe)."""

    def __init__(self, taxonomy: Taxonomy, model: Any = None):
        self.taxonomy = taxonomy
        self._entities = taxonomy.people + taxonomy.organisations
        # An optional learned reader (pipelines.devmodel.DevModel): asked only when the rules find no
        # development in a relevant article; None costs nothing.
        self.model = model

    def tag(self, title: str, text: str) -> TagResult:
        tx = self.taxonomy
        st = tx.settings
        an = analyse(title, text, tx)

        hits: list[TopicHit] = []
        relevant_topic = False
        near_cache: dict[int, bool] = {}
        max_repeats, title_boost, max_evidence = st.max_repeats, st.title_boost, st.max_evidence
        fields = ((an.title, an.ftitle, an.ftitle.is_identity(), "title"),
                  (an.text, an.ftext, an.ftext.is_identity(), "text"))  # by field code
        for idx in sorted(an.topic_mentions):
            topic = tx.topics[idx]
            ms = an.topic_mentions[idx]  # already in reading order
            if topic.anchor == "article":
                kept = ms if an.article_anchored else []
            elif topic.anchor == "bilateral":
                kept = ms if an.strongly_anchored else []
            elif topic.anchor == "near":
                if not an.article_anchored:
                    kept = []
                elif an.strongly_anchored and not an.foreign_total:
                    kept = ms  # then every unit is anchored (see Analysis.anchored_unit)
                else:
                    kept = []
                    for m in ms:
                        ok = near_cache.get(m[5])
                        if ok is None:
                            ok = near_cache[m[5]] = an.anchored_unit(m[5])
                        if ok:
                            kept.append(m)
            else:
                kept = ms if an.theatre_named else []
            if not kept:
                continue
            repeats: dict[str, int] = {}
            total = 0.0
            for field_code, _start, _stop, weight, key, _unit in kept:
                seen = repeats[key] = repeats.get(key, 0) + 1
                if seen > max_repeats:
                    continue
                total += weight * (title_boost if field_code == TITLE else 1.0)
            score = round(1.0 - math.exp(-total * topic.weight / st.saturation), 3)
            if score < (topic.min_score if topic.min_score is not None else st.min_score):
                continue
            evidence = []
            for field_code, fstart, fend, _weight, _key, _unit in kept[:max_evidence]:
                source, folded, identity, field_name = fields[field_code]
                start, end = (fstart, fend) if identity else folded.span_to_original(fstart, fend)
                evidence.append({"text": source[start:end], "start": start, "end": end, "field": field_name})
            hits.append(TopicHit(id=topic.id, score=score, evidence=evidence))
            if topic.relevance == "primary":
                relevant_topic = True

        hits.sort(key=lambda h: -h.score)
        relevant = an.article_anchored and relevant_topic
        development = dev_mod.detect_development(title, text, tx, analysis=an) if relevant else None
        if development is None and relevant and self.model is not None:
            development = self.model.develop(an, tx)
        entities = [{"id": e.id, "name": e.name, "kind": e.kind}
                    for e in (self._entities[i] for i in an.entity_order)]
        places = [{"id": p.id, "name": p.name, "lat": p.lat, "lon": p.lon}
                  for p in (tx.places[i] for i in an.place_order)]
        # A denied statement is kept (the event layer disputes an event with it) but alerts on nothing.
        worthy = relevant and announced_type(development) is not None
        return TagResult(topics=hits, entities=entities, places=places, development=development,
                         relevant=relevant, alert_worthy=worthy)

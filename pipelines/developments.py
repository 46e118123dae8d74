"""Development detection: which development STATEMENT does the title or lead make, and how?

A statement is who (parties and mediators), what (a development type), how (its mode), where (venue,
places).  It is read sentence by sentence over the title and the lead (desks write news top-down;
analysis that restates old facts lives further down).

What: a sentence qualifies for a type when it is anchored in the theatre, names the type's subject (a
term of one of its `requires` topics) and one of the type's patterns (topics.yaml `developments`)
matches in it.  Patterns are written with verb FAMILIES (`families`): a family lists lemmas and every
inflection of each (extend, extends, extended, extending, extension) is generated at load by the small
suffix rules of `inflect`, so a pattern written once matches every form of its verbs.

How (mode), from the clause around the match (the filters of topics.yaml):
  denied       "Kabul denies talks have collapsed", "rejects reports that ...": the statement IS returned,
               with mode denied, so the event layer can dispute an event; it is no development to alert on;
  alleged      one party accuses the other ("X accused Y of violating the truce", "claimed", "alleged");
  hypothetical a conditional, a fear, a request ("urged a ceasefire"), "could collapse";
  future       a future tense (except for talks-scheduled and future_ok patterns);
  background   a subordinate background clause ("after the talks broke down") or time marker ("last month");
               but a title or first lead sentence whose only statement is subordinate reports it ("Mediators
               scramble after truce falls apart", "Nine killed when shells hit homes near the border");
  question     the sentence is a question;
  asserted     otherwise.
A negation ("is not holding") rejects the match outright.  Verb-final languages deny and negate after the
claim (`denial_late`: "... را رد کرد"; `negation_late`: "... ناکام نہیں ہوئے").  Only asserted, alleged and denied statements
come back; hypothetical, future, background and question ones announce nothing.  A title of a background
genre (the `genre` filter: "Timeline:", "Explainer:", "Why ...") or a question headline ("Will the truce
hold?") makes the whole article a restatement: it announces nothing.

State-dependent statements: `hostilities` (fighting between the two states' forces) and `talks-continue`
are reported as written; pipelines/events.py reads them against the watch's state.  A type with
`sides: both` needs the sentence to name both sides (entities, places or demonyms with a `side`), a border
place (`border_kinds`) or a border word (the `border` filter), and no militant named before the match (unless an
Afghan force is its co-subject: "Afghan Taliban and Khawarij opened fire on Pakistani posts"); or
both states named over the sentence and the next two with no militant among them ("Air strikes hit homes
in Paktika. Kabul blamed Pakistan").

Who and where: entities and places named in the evidence sentence, by their `side` (pakistan, afghanistan,
mediator, militant; "Islamabad"/"Kabul" stand for their governments via `stands_for`), demonyms
(`demonyms`: Pakistani, Afghan, Qatari ...), the venue (`venues`) and the other places.

Which sentence: the title and the lead each give their first statement.  The evidence is the lead
sentence when the lead carries the same statement as the title, or when the lead's first two sentences
carry another one (desks label a report by its lead); it is the title when only the title carries one.  A
first lead line that repeats the headline (pages that print it above the text) is skipped.  Patterns start
at a word start; in Chinese and Japanese, which write no spaces, anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pipelines.config import shown
from pipelines.errors import ConfigError
from pipelines.models import Development
from pipelines.textnorm import fold_pattern, fold_term

if TYPE_CHECKING:
    from pipelines.tag import Analysis, Taxonomy

FILTERS = ("denial", "negation", "hypothetical", "request", "future", "subordinate", "background", "genre",
           "allegation", "border", "additional", "denial_late", "negation_late", "subordinate_late")
SIDES = ("pakistan", "afghanistan", "mediator", "militant")
ANNOUNCING = ("asserted", "alleged", "denied")  # the modes detection returns
# Statements the event layer reads against the watch's state; in the lead they never outweigh an
# explicit statement of the title.
STATE_TYPES = ("hostilities", "talks-continue", "ceasefire-verdict")
_DEV_KEYS = {"lead_sentences", "macros", "families", "filters", "types", "demonyms", "venues", "border_kinds", "when"}
# What `when` may name: a weekday (the latest on or before publication) or a day relative to publication.
WHEN_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today", "yesterday")
_TYPE_KEYS = {"id", "requires", "future_ok", "patterns", "sides", "reread", "reread_only"}
_PATTERN_KEYS = {"re", "negation_ok", "bare_participle", "future_ok"}
# A determiner and up to two modifiers right before a match: "the (temporary) truce agreed ..." is a noun phrase.
_DETERMINER_TAIL = re.compile(r"\b(?:the|this|that|these|those|its|their|a|an)\s+(?:[\w']+\s+){0,2}$")
# A pattern starts a word: no letter or digit before it, except a CJK ideograph or kana (Chinese and
# Japanese write no spaces, so a word there starts after any character).
_WORD_START = "(?<![^\\W\u3040-\u30ff\u3400-\u9fff])"
_MACRO_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_CLAUSE_DELIMS = re.compile(r"[,;:()\"\[\]\u060c\u061b]")  # Latin and Arabic-script commas, semicolons
_RELATIVE = re.compile(r"\b(?:which|that|who|whose|agreed|reached|signed|brokered|announced|declared|mediated|"
                       r"struck|sealed|extended|hosted|held|since|after|following|amid|before|until|despite|as part of)\b")
# "Afghan-based militants", "Afghan nationals": an Afghan word that names no Afghan force.
_AFGHAN_BASED = re.compile(r"\s?(?:based|soil|territory|nationals?|origin|refugees?|sanctuar\w*|hideouts?)\b")
# What joins an Afghan force to the militants that fight beside it: "Afghan Taliban and (the) Khawarij".
_CO_SUBJECT = re.compile(r"(?: (?:taliban|forces|troops|regime|fighters|army|border forces))? (?:and|along with|together with|"
                         r"alongside) (?:the )?")
# The nouns a denial rejects, when they follow the statement ("rejects Kabul's strike claims").
_CLAIM_NOUN = re.compile(r"\b(?:claims?|reports?|allegations?|accusations?|charges?|assertions?|rumou?rs?)\b")
_MAX_SENTENCE = 1000  # characters of a lead "sentence" the patterns look at (runaway text without stops)
_LEAD_OVER_TITLE = 2  # lead sentences whose statement wins over a different one in the title
_CONFIDENCE = {"asserted": 0.9, "alleged": 0.7, "denied": 0.6}
# A headline that states, then asks in a kicker after a colon or bar ("Clashes erupt at the border: what
# set them off?"): the statement before the kicker stands.
_KICKER_QUESTION = re.compile(r"\s*[:|]\s*(?:what|why|how|who|whom|which|where|when|will|would|can|could|is|are|was|"
                              r"were|does|do|did|should|has|have)\b[^:|?\u061f]*[?\u061f][\s\"']*$")


# --- inflection ----------------------------------------------------------------------------------

_VOWELS = "aeiou"


def inflect(lemma: str) -> list[str]:
    """Every form of a (phrasal) verb lemma by suffix rules; the first word inflects ("call off" ->
    calls off, called off, calling off).  Over-generation is harmless (no text says "stoped"); irregular
    forms are listed beside the lemma in topics.yaml ("break|broke|broken")."""
    head, sep, rest = lemma.partition(" ")
    w = head
    forms = {w}
    if w.endswith(("s", "sh", "ch", "x", "z", "o")):
        forms.add(w + "es")
    elif w.endswith("y") and len(w) > 1 and w[-2] not in _VOWELS:
        forms.add(w[:-1] + "ies")
    else:
        forms.add(w + "s")
    if w.endswith("ee"):  # agree -> agreed, agreeing
        forms |= {w + "d", w + "ing"}
    elif w.endswith("e"):
        forms |= {w + "d", w[:-1] + "ing"}
    elif w.endswith("y") and len(w) > 1 and w[-2] not in _VOWELS:
        forms |= {w[:-1] + "ied", w + "ing"}
    else:
        forms |= {w + "ed", w + "ing"}
        if len(w) >= 3 and w[-1] not in _VOWELS + "wxy" and w[-2] in _VOWELS and w[-3] not in _VOWELS:
            forms |= {w + w[-1] + "ed", w + w[-1] + "ing"}  # plan -> planned, begin -> beginning
    if not sep:  # nominalisations of one-word verbs: extension, violation, resumption, revival
        for suffix, noun in (("end", "ension"), ("ate", "ation"), ("ume", "umption"), ("ive", "ival"),
                             ("ect", "ection")):
            if w.endswith(suffix):
                base = w[: -len(suffix)] + noun
                forms |= {base, base + "s"}
    return [f + sep + rest for f in forms]


def _family_forms(spec: str) -> list[str]:
    """"lemma|extra|extra": the lemma's inflections and the extra (irregular) forms as written."""
    lemma, *extra = [part.strip() for part in spec.split("|")]
    return inflect(lemma) + [e for e in extra if e]


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reread:
    """A statement of one type read as another because of what else its sentence or lead says."""

    as_type: str
    scope: str = "sentence"  # "sentence": the statement's sentence; "lead": the title and lead sentences
    when: re.Pattern[str] | None = None  # some sentence in scope matches this
    also: str | None = None  # ... or the lead also states a development of this type
    unless: re.Pattern[str] | None = None  # ... and no sentence in scope matches this


@dataclass
class DevelopmentType:
    id: str
    requires: frozenset[str]
    requires_idx: frozenset[int]  # the same topics as indices into Taxonomy.topics
    future_ok: bool
    regex: re.Pattern[str]  # all patterns as one alternation, each starting a word
    patterns: tuple[re.Pattern[str], ...]  # each on its own: which one matched (see _which)
    negation_ok: tuple[bool, ...]
    bare_participle: tuple[bool, ...]
    pattern_future_ok: tuple[bool, ...] = ()  # per pattern: "the truce will take effect at midnight" is news
    both_sides: bool = False  # `sides: both`: the sentence must name both sides or a border (hostilities)
    rereads: tuple[Reread, ...] = ()  # read as another type instead, on what the sentence or lead also says


@dataclass
class Naming:
    """Who and where a sentence names: one regex over every folded name with a side or a place kind."""

    regex: re.Pattern[str] | None = None
    ids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # folded name -> ids (after stands_for)
    side: dict[str, str] = field(default_factory=dict)  # id -> side
    kind: dict[str, str] = field(default_factory=dict)  # place id -> kind
    place_ids: frozenset[str] = frozenset()
    party_place: frozenset[str] = frozenset()  # places that stand for a party (capitals, countries)


@dataclass
class DevelopmentRules:
    lead_sentences: int = 5
    types: list[DevelopmentType] = field(default_factory=list)
    filters: dict[str, re.Pattern[str]] = field(default_factory=dict)
    # Topic indices a sentence must mention for any type to apply; empty when some type requires none.
    subject_topics: frozenset[int] = frozenset()
    naming: Naming = field(default_factory=Naming)
    venues: frozenset[str] = frozenset()
    border_kinds: frozenset[str] = frozenset()
    when: re.Pattern[str] | None = None  # the day words of `when`, one named group per day


@dataclass(frozen=True)
class Named:
    """One entity or place of the taxonomy as development detection sees it."""

    id: str
    side: str | None
    stands_for: str | None
    kind: str  # person / organisation kind / place kind
    is_place: bool
    terms: tuple[str, ...]  # folded names (exact-case acronyms left out: the sentence is folded)


def compile_developments(raw: Any, path: str, topic_ids: list[str],
                         named: list[Named] | None = None) -> DevelopmentRules:
    """Validate and compile the `developments` section of topics.yaml (topic_ids in taxonomy order;
    `named`: the entities and places, for parties, mediators, venue and places)."""
    if raw is None:
        return DevelopmentRules(types=[])
    if not isinstance(raw, dict):
        raise ConfigError(path, "developments", None, f"expected a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in _DEV_KEYS:
            raise ConfigError(path, "developments", key, f"unknown key (allowed: {', '.join(sorted(_DEV_KEYS))})")
    rules = DevelopmentRules()
    lead = raw.get("lead_sentences", 5)
    if isinstance(lead, bool) or not isinstance(lead, int) or lead < 0:
        raise ConfigError(path, "developments", "lead_sentences", f"expected an integer >= 0, got {shown(lead)}")
    rules.lead_sentences = lead

    macros = _compile_macros(raw.get("macros") or {}, path)
    _compile_families(raw.get("families") or {}, path, macros)

    filters = raw.get("filters") or {}
    if not isinstance(filters, dict):
        raise ConfigError(path, "developments", "filters", "expected a mapping of filter name to regex")
    for name, pattern in filters.items():
        if name not in FILTERS:
            raise ConfigError(path, "developments", f"filters.{name}", f"unknown filter (allowed: {', '.join(FILTERS)})")
        rules.filters[name] = _compile(pattern, path, "developments", f"filters.{name}", macros)

    types = raw.get("types")
    if not isinstance(types, list) or not types:
        raise ConfigError(path, "developments", "types", "expected a non-empty list of development types")
    seen: set[str] = set()
    rereads: list[tuple[DevelopmentType, str]] = []
    for i, item in enumerate(types):
        label = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else f"types[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(path, label, None, "expected a mapping")
        for key in item:
            if key not in _TYPE_KEYS:
                raise ConfigError(path, label, key, f"unknown key (allowed: {', '.join(sorted(_TYPE_KEYS))})")
        reread_only = item.get("reread_only", False)
        if not isinstance(reread_only, bool):
            raise ConfigError(path, label, "reread_only", f"expected true or false, got {shown(reread_only)}")
        for key in ("id",) if reread_only else ("id", "patterns"):
            if item.get(key) is None:
                raise ConfigError(path, label, key, "missing required field")
        type_id = item["id"]
        if not isinstance(type_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", type_id):
            raise ConfigError(path, label, "id", f"expected a lower-case id like talks-opened, got {shown(type_id)}")
        if type_id in seen:
            raise ConfigError(path, type_id, "id", "duplicate development type id")
        seen.add(type_id)
        requires = item.get("requires") or []
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise ConfigError(path, type_id, "requires", "expected a list of topic ids")
        for r in requires:
            if r not in topic_ids:
                raise ConfigError(path, type_id, "requires", f"unknown topic id {shown(r)}")
        future_ok = item.get("future_ok", False)
        if not isinstance(future_ok, bool):
            raise ConfigError(path, type_id, "future_ok", f"expected true or false, got {shown(future_ok)}")
        sides = item.get("sides")
        if sides is not None and sides != "both":
            raise ConfigError(path, type_id, "sides", f"expected 'both', got {shown(sides)}")
        # A statement only a reread gives (`reread_only`: no patterns of its own).
        patterns = (item.get("patterns") or []) if reread_only else item["patterns"]
        if not isinstance(patterns, list) or not (patterns or reread_only) or (reread_only and patterns):
            raise ConfigError(path, type_id, "patterns", "expected a non-empty list of regexes"
                              if not reread_only else "a reread_only type has no patterns")
        parts: list[str] = []
        compiled_patterns: list[re.Pattern[str]] = []
        negation_ok: list[bool] = []
        bare: list[bool] = []
        future: list[bool] = []
        for j, pat in enumerate(patterns):
            where = f"patterns[{j}]"
            flags = {"negation_ok": False, "bare_participle": False, "future_ok": False}
            if isinstance(pat, dict):
                for key in pat:
                    if key not in _PATTERN_KEYS:
                        raise ConfigError(path, type_id, f"{where}.{key}",
                                          f"unknown key (allowed: {', '.join(sorted(_PATTERN_KEYS))})")
                if "re" not in pat:
                    raise ConfigError(path, type_id, f"{where}.re", "missing required field")
                for flag in flags:
                    value = pat.get(flag, False)
                    if not isinstance(value, bool):
                        raise ConfigError(path, type_id, f"{where}.{flag}", f"expected true or false, got {shown(value)}")
                    flags[flag] = value
                pat = pat["re"]
            compiled = _compile(pat, path, type_id, where, macros)
            scope = "(?i:" if compiled.flags & re.IGNORECASE else "(?:"
            parts.append(f"{scope}{compiled.pattern})")
            compiled_patterns.append(compiled)
            negation_ok.append(flags["negation_ok"])
            bare.append(flags["bare_participle"])
            future.append(flags["future_ok"])
        # Every pattern starts a word: one look-behind ahead of the alternation, so mid-word positions
        # fail at once instead of once per pattern.
        # No group marks the patterns apart: a mark ahead of each alternative stops sre from skipping
        # it on its first character, and _which tells them apart after the (rare) match instead.
        regex = re.compile(_WORD_START + "(?:" + "|".join(parts) + ")" if parts else "(?!)")
        requires_idx = frozenset(topic_ids.index(r) for r in requires)
        dtype = DevelopmentType(type_id, frozenset(requires), requires_idx, future_ok, regex,
                                tuple(compiled_patterns), tuple(negation_ok), tuple(bare), tuple(future),
                                both_sides=sides == "both")
        dtype.rereads = _rereads(item.get("reread"), path, type_id, macros)
        rereads.extend((dtype, r) for r in dtype.rereads)
        rules.types.append(dtype)
    for dtype, r in rereads:
        for key, other in (("as", r.as_type), ("also", r.also)):
            if other is not None and other not in seen:
                raise ConfigError(path, dtype.id, f"reread.{key}", f"unknown development type {shown(other)}")
    if all(t.requires_idx for t in rules.types):
        rules.subject_topics = frozenset().union(*(t.requires_idx for t in rules.types))
    rules.naming = _compile_naming(raw.get("demonyms") or {}, named or [], path)
    rules.venues = frozenset(_id_list(raw.get("venues"), "venues", path, rules.naming.place_ids))
    kinds = raw.get("border_kinds") or []
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise ConfigError(path, "developments", "border_kinds", "expected a list of place kinds")
    rules.border_kinds = frozenset(kinds)
    rules.when = _compile_when(raw.get("when"), path)
    return rules


def _id_list(value: Any, key: str, path: str, known: frozenset[str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(path, "developments", key, "expected a list of place ids")
    for v in value:
        if v not in known:
            raise ConfigError(path, "developments", key, f"unknown place id {shown(v)}")
    return value


def _compile_naming(demonyms: Any, named: list[Named], path: str) -> Naming:
    """One regex over the folded names of every entity and place with a side, every place, and the
    demonyms (a demonym list is keyed by an entity/place id, or by a side for words that name a side
    and nobody in particular: "militants")."""
    naming = Naming()
    by_id = {n.id: n for n in named}
    table: dict[str, list[str]] = {}
    for n in named:
        target = n.stands_for or n.id
        if n.side:
            naming.side[n.id] = n.side
        if n.is_place:
            naming.kind[n.id] = n.kind
        if not (n.side or n.is_place):
            continue
        for term in n.terms:
            table.setdefault(term, [])
            if target not in table[term]:
                table[term].append(target)
    for n in named:  # a stands_for target takes the side of what stands for it when it has none
        if n.stands_for and n.side and n.stands_for not in naming.side:
            naming.side[n.stands_for] = n.side
    if not isinstance(demonyms, dict):
        raise ConfigError(path, "developments", "demonyms", "expected a mapping of id or side to a list of terms")
    for key, terms in demonyms.items():
        where = f"demonyms.{key}"
        if key in SIDES:
            target = f"side:{key}"
            naming.side[target] = key
        elif key in by_id:
            target = by_id[key].stands_for or key
            if target not in naming.side:
                raise ConfigError(path, "developments", where, f"{shown(key)} has no side")
        else:
            raise ConfigError(path, "developments", where,
                              f"unknown entity or place id or side {shown(key)} (sides: {', '.join(SIDES)})")
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            raise ConfigError(path, "developments", where, "expected a non-empty list of terms")
        for t in terms:
            folded = fold_term(t)
            table.setdefault(folded, [])
            if target not in table[folded]:
                table[folded].append(target)
    naming.place_ids = frozenset(n.id for n in named if n.is_place)
    naming.party_place = frozenset(n.id for n in named if n.is_place and n.stands_for)
    if table:
        alts = sorted(table, key=len, reverse=True)
        naming.regex = re.compile("(?<!\\w)(?:" + "|".join(re.escape(a).replace(r"\ ", " ?") for a in alts)
                                  + ")(?!\\w)")
        naming.ids = {k: tuple(v) for k, v in table.items()}
        # Spaces may be absent in the text ("pak afghan" folds both ways): index the unspaced key too.
        for k, v in list(naming.ids.items()):
            naming.ids.setdefault(k.replace(" ", ""), v)
    return naming


def _compile_families(raw: Any, path: str, macros: dict[str, str]) -> None:
    """`families`: name -> lemmas; each becomes a macro matching every inflection of every lemma."""
    if not isinstance(raw, dict):
        raise ConfigError(path, "developments", "families", "expected a mapping of family name to lemmas")
    for name, lemmas in raw.items():
        where = f"families.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(path, "developments", where, "family names are letters, digits and '_'")
        if name in macros:
            raise ConfigError(path, "developments", where, "a macro of that name exists already")
        if not isinstance(lemmas, list) or not lemmas or not all(isinstance(v, str) and v.strip() for v in lemmas):
            raise ConfigError(path, "developments", where, "expected a non-empty list of lemmas")
        forms = {fold_term(f) for spec in lemmas for f in _family_forms(spec)}
        alts = sorted(forms, key=len, reverse=True)
        macros[name] = "(?:" + "|".join(re.escape(a).replace(r"\ ", " ") for a in alts) + ")(?!\\w)"


def _compile_macros(raw: Any, path: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError(path, "developments", "macros", "expected a mapping of name to term list or regex")
    macros: dict[str, str] = {}
    for name, value in raw.items():
        where = f"macros.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(path, "developments", where, "macro names are letters, digits and '_'")
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            # Longest first so the alternation prefers "peace talks" over "talks"; spaces may be absent.
            alts = sorted({fold_term(v) for v in value}, key=len, reverse=True)
            macros[name] = "(?:" + "|".join(re.escape(a).replace(r"\ ", " ?") for a in alts) + ")"
        elif isinstance(value, str) and value:
            macros[name] = fold_pattern(value)
        else:
            raise ConfigError(path, "developments", where, "expected a non-empty list of terms or a regex string")
        try:
            re.compile(macros[name])
        except re.error as err:
            raise ConfigError(path, "developments", where, f"bad regex: {err}") from err
        except RecursionError:  # thousands of nested groups overflow sre's parser, as in _compile
            raise ConfigError(path, "developments", where, "bad regex: groups nested too deeply") from None
    return macros


def case_flags(pattern: str) -> re.RegexFlag:
    """IGNORECASE only for a pattern that spells an upper-case letter, or may (\\x41, \\N{...}).

    Patterns run over folded text, which is all lower case, so a lower-case pattern matches the same
    without the flag (textnorm folds the one exception, dotless i, to i) -- and the flag costs: it
    stops the regex engine skipping ahead, which made development detection 40% slower.
    """
    escapes = _ESCAPE.findall(pattern)
    if any(ch in "xuUN0123456789" for ch in escapes):
        return re.IGNORECASE
    bare = _ESCAPE.sub("", pattern)
    return re.IGNORECASE if bare != bare.lower() else re.RegexFlag(0)


_REREAD_KEYS = {"as", "in", "when", "also", "unless"}


def _rereads(raw: Any, path: str, type_id: str, macros: dict[str, str]) -> tuple[Reread, ...]:
    """`reread`: one mapping or a list of them, {as: TYPE, in: sentence|lead, when: REGEX, also: TYPE,
    unless: REGEX}; `when` or `also` is required."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out: list[Reread] = []
    for n, item in enumerate(items):
        where = "reread" if not isinstance(raw, list) else f"reread[{n}]"
        if not isinstance(item, dict) or not isinstance(item.get("as"), str) or not set(item) <= _REREAD_KEYS \
                or not ({"when", "also"} & set(item)):
            raise ConfigError(path, type_id, where,
                              "expected {as: TYPE, when: REGEX and/or also: TYPE, in: sentence|lead, unless: REGEX}")
        scope = item.get("in", "sentence")
        if scope not in ("sentence", "lead"):
            raise ConfigError(path, type_id, f"{where}.in", f"expected sentence or lead, got {str(scope)[:40]!r}")
        also = item.get("also")
        if also is not None and (not isinstance(also, str) or scope != "lead"):
            raise ConfigError(path, type_id, f"{where}.also", "expected a development type, with in: lead")

        when, unless = (None if item.get(key) is None else
                        _compile(item[key], path, type_id, f"{where}.{key}", macros) for key in ("when", "unless"))
        out.append(Reread(item["as"], scope, when, also, unless))
    return tuple(out)


def _compile_when(raw: Any, path: str) -> re.Pattern[str] | None:
    """`when`: {day: [words...]} for the days of WHEN_DAYS, in any language (folded like the text)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(path, "developments", "when", "expected a mapping of day to a list of words")
    groups: list[str] = []
    for day, words in raw.items():
        if day not in WHEN_DAYS:
            raise ConfigError(path, "developments", f"when.{day}", f"unknown day (allowed: {', '.join(WHEN_DAYS)})")
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ConfigError(path, "developments", f"when.{day}", "expected a non-empty list of words")
        terms = sorted({fold_term(w) for w in words}, key=len, reverse=True)
        groups.append(f"(?P<{day}>" + "|".join(re.escape(t) for t in terms) + ")")
    return re.compile(r"(?<!\w)(?:" + "|".join(groups) + r")(?!\w)") if groups else None


def _when(sentence: str, at: int, rules: DevelopmentRules) -> str | None:
    """The day a statement says it happened: the day word nearest its match, in the same sentence."""
    if rules.when is None:
        return None
    best: tuple[int, str] | None = None
    for m in rules.when.finditer(sentence):
        distance = abs(m.start() - at)
        if best is None or distance < best[0]:
            best = (distance, m.lastgroup or "")
    return best[1] if best else None


def _compile(pattern: Any, path: str, entry: str, where: str, macros: dict[str, str]) -> re.Pattern[str]:
    """An operator's regex, macros expanded, compiled; refused when it can backtrack catastrophically
    (pipelines.config.regex_hazard: re cannot be interrupted, so a hang is stopped at validation)."""
    from pipelines.config import regex_hazard, shown

    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(path, entry, where, f"expected a regex string, got {shown(pattern)}")

    def expand(m: re.Match[str]) -> str:
        if m.group(1) not in macros:
            raise ConfigError(path, entry, where, f"unknown macro {{{m.group(1)}}}")
        return macros[m.group(1)]

    expanded = _MACRO_RE.sub(expand, fold_pattern(pattern))
    flags = case_flags(expanded)
    try:
        compiled = re.compile(expanded, flags)
    except re.error as err:
        raise ConfigError(path, entry, where, f"bad regex: {err}") from err
    except RecursionError:
        raise ConfigError(path, entry, where, "bad regex: groups nested too deeply") from None
    if compiled.groupindex:
        raise ConfigError(path, entry, where, "named groups are not allowed (use (?:...))")
    hazard = regex_hazard(expanded, flags)
    if hazard:
        raise ConfigError(path, entry, where, f"refused regex {shown(pattern)}: {hazard}")
    return compiled


# --- detection -----------------------------------------------------------------------------------


@dataclass
class _Statement:
    unit: int
    dtype: DevelopmentType
    type_id: str
    mode: str
    sentence: str  # folded
    match_start: int


def detect_development(title: str, text: str, taxonomy: Taxonomy,
                       analysis: Analysis | None = None) -> Development | None:
    """The development statement the title or lead makes (asserted, alleged or denied), or None.

    Called by the Tagger with its analysis; called alone it tags the article first (a development
    only counts in a relevant article).
    """
    if analysis is None:
        from pipelines.tag import Tagger

        return Tagger(taxonomy).tag(title, text).development
    rules = taxonomy.developments
    if not rules.types:
        return None
    an = analysis
    ftitle = an.ftitle.text
    genre = rules.filters.get("genre")
    if genre is not None and genre.search(ftitle):
        return None  # a timeline, explainer or analysis restates facts; it announces nothing
    if ("?" in ftitle or "\u061f" in ftitle) and _kicker(ftitle) is None:
        return None  # a question headline ("Will the truce hold?") speculates over known facts
    in_title = _statement(an, rules, -1)
    in_lead = None
    headline = ftitle.strip(" .")
    for unit in range(min(rules.lead_sentences, len(an.sentences))):
        if headline and unit == 0 and _unit_text(an, unit).strip(" .") == headline:
            continue  # a page that repeats its headline as the first line: the lead starts after it
        in_lead = _statement(an, rules, unit)
        if in_lead is not None:
            break
    chosen = in_title
    if in_lead is not None and (in_title is None
                                or (in_lead.type_id == in_title.type_id
                                    and (in_title.mode != "denied" or in_lead.mode == "denied"))
                                or (in_lead.unit < _LEAD_OVER_TITLE and in_lead.type_id not in STATE_TYPES
                                    and not _adds_to_title(in_lead, rules))):
        chosen = in_lead
    if chosen is None:
        return None
    chosen = _reread_lead(an, rules, chosen)
    return _development(an, rules, chosen, corroborated=in_title is not None and in_lead is not None
                        and in_title.type_id == in_lead.type_id)


def _reread_lead(an: Analysis, rules: DevelopmentRules, st: _Statement) -> _Statement:
    """The chosen statement read by what the rest of the lead says: a truce kept "and a mechanism set up"
    a sentence later is a settlement; a truce "shattered" over strikes nobody declared an end to is a
    violation."""
    rereads = [r for r in st.dtype.rereads if r.scope == "lead"]
    if not rereads or st.type_id != st.dtype.id:
        return st
    units = [-1, *range(min(rules.lead_sentences, len(an.sentences)))]
    texts = [an.ftitle.text, *(_unit_text(an, u)[:_MAX_SENTENCE] for u in units[1:])]
    # `when` reads the statement's own context: its sentence and the next (a headline's: the first two
    # lead sentences), none of them a recollection ("the joint statement issued in May").
    near = [t for u, t in zip(units, texts, strict=True) if st.unit <= u <= max(st.unit, 0) + 1 and not _recalls(t, rules)]
    by_id = {t.id: t for t in rules.types}
    for reread in rereads:
        if reread.unless is not None and any(reread.unless.search(t) for t in texts):
            continue
        if reread.when is not None and not any(reread.when.search(t) for t in near):
            continue
        if reread.also is not None:
            other = by_id[reread.also]
            found = (_statement(an, rules, u, only=other) for u in units)
            if not any(f is not None and f.mode in ("asserted", "alleged") for f in found):
                continue
        return replace(st, type_id=reread.as_type)
    return st


def _recalls(sentence: str, rules: DevelopmentRules) -> bool:
    background = rules.filters.get("background")
    return bool(background and background.search(sentence))


def _kicker(ftitle: str) -> int | None:
    """Where a question kicker starts in a folded headline that states something before it, or None."""
    m = _KICKER_QUESTION.search(ftitle)
    if m is None or "?" in ftitle[:m.start()] or "\u061f" in ftitle[:m.start()] or not ftitle[:m.start()].strip():
        return None
    return m.start()


def _militant_party(sentence: str, at: int, rules: DevelopmentRules) -> bool:
    """Whether the truce or talks of a sentence are a militant group's: a named group (not a word such as
    "militants") is the first party named, before the match, and no Afghan party is named ("The TTP ended
    its ceasefire with the government")."""
    naming = rules.naming
    if naming.regex is None:
        return False
    first: str | None = None
    for m in naming.regex.finditer(sentence):
        for target in naming.ids.get(m.group(), naming.ids.get(m.group().replace(" ", ""), ())):
            side = naming.side.get(target)
            if side == "afghanistan":
                return False
            if side in ("pakistan", "militant") and first is None:
                first = "militant" if side == "militant" and not target.startswith("side:") and m.start() < at \
                    else "other"
    return first == "militant"


def _unit_text(an: Analysis, unit: int) -> str:
    s, e = an.sentences[unit]
    return an.ftext.text[an.ftext.to_folded(s):an.ftext.to_folded(e)]


def _adds_to_title(st: _Statement, rules: DevelopmentRules) -> bool:
    """Whether a lead statement is written as an addition to the headline's ("also agreed to ...")."""
    additional = rules.filters.get("additional")
    return bool(additional and additional.search(st.sentence, 0, st.match_start))


def _statement(an: Analysis, rules: DevelopmentRules, unit: int,
               only: DevelopmentType | None = None) -> _Statement | None:
    """The first announcing statement of one unit (the title is -1), or None; of one type with `only`."""
    mentioned = an.unit_topics.get(unit)
    subjects = rules.subject_topics
    if subjects and not (mentioned and subjects & mentioned):
        return None  # names no ceasefire, talks... at all
    _field, start, end = an.unit_span(unit)
    if end <= start or not an.anchored_unit(unit):
        return None
    folded = an.ftitle if unit < 0 else an.ftext
    fstart, fend = folded.to_folded(start), folded.to_folded(end)
    sentence = folded.text[fstart:min(fend, fstart + _MAX_SENTENCE)]
    question = sentence.rstrip(" \"'").endswith(("?", "\u061f"))
    if question and unit < 0:
        cut = _kicker(sentence)
        if cut is not None:  # "X happened: what next?" states X
            sentence, question = sentence[:cut], False
    mentioned = mentioned or set()
    filters = rules.filters
    fallback: _Statement | None = None  # a statement made in a subordinate clause (see _mode)
    for dtype in (rules.types if only is None else [only]):
        if dtype.requires_idx and not (dtype.requires_idx & mentioned):
            continue  # the sentence must name its subject (a ceasefire, the talks...)
        for m in dtype.regex.finditer(sentence):
            which = _which(dtype, sentence, m)
            future_ok = dtype.future_ok or (dtype.pattern_future_ok and dtype.pattern_future_ok[which])
            mode = _mode(sentence, m, filters, future_ok, dtype.negation_ok[which])
            if mode is None:
                continue
            if question:
                mode = "question"
            subordinate = mode.startswith("sub-")
            if subordinate:
                if fallback is not None or unit > 0:
                    continue
                mode = mode[4:]
            if mode not in ANNOUNCING:
                continue
            if dtype.bare_participle[which] and _DETERMINER_TAIL.search(sentence, 0, m.start()):
                continue  # "the truce agreed in Doha": a noun phrase, not news
            if dtype.both_sides and not _between_states(sentence, m.start(), rules) \
                    and not _states_nearby(an, rules, unit, sentence):
                continue
            if not dtype.both_sides and _militant_party(sentence, m.start(), rules):
                continue  # a militant group's truce or talks with Islamabad are not the two states'
            type_id = dtype.id
            for reread in dtype.rereads:
                if reread.scope == "sentence" and reread.when is not None and reread.when.search(sentence) \
                        and not (reread.unless is not None and reread.unless.search(sentence)):
                    type_id = reread.as_type
                    break
            found = _Statement(unit, dtype, type_id, mode, sentence, m.start())
            if subordinate:
                fallback = found
                continue
            return found
    # A headline or first lead sentence whose only statement sits in a subordinate clause reports it
    # ("Mediators scramble after truce falls apart", "Nine killed when shells hit homes near the border"):
    # the main clause is the reaction, the subordinate one the news.
    return fallback


def _names(sentence: str, naming: Naming) -> list[str]:
    """Ids named in a folded sentence, in reading order, once each (longest name wins at a place)."""
    if naming.regex is None:
        return []
    out: list[str] = []
    for m in naming.regex.finditer(sentence):
        for target in naming.ids.get(m.group(), naming.ids.get(m.group().replace(" ", ""), ())):
            if target not in out:
                out.append(target)
    return out


def _between_states(sentence: str, at: int, rules: DevelopmentRules) -> bool:
    """Fighting between the two states: both sides named, or a border place or word; a militant named
    before the verb makes it an attack by militants, unless the Afghan side is named before it as a
    co-subject and Pakistan is named too ("Afghan Taliban and Khawarij opened fire on Pakistani posts";
    not "Afghan-based militants ...")."""
    naming = rules.naming
    sides: set[str] = set()
    militant_first = False
    afghan_at: int | None = None
    if naming.regex is not None:
        for m in naming.regex.finditer(sentence):
            for target in naming.ids.get(m.group(), naming.ids.get(m.group().replace(" ", ""), ())):
                side = naming.side.get(target)
                if side:
                    sides.add(side)
                    if side == "militant" and m.start() < at and not militant_first:
                        militant_first = True
                        militant_at = m.start()
                    if side == "afghanistan" and afghan_at is None and not _AFGHAN_BASED.match(sentence, m.end()):
                        afghan_at = m.end()
                if naming.kind.get(target) in rules.border_kinds:
                    sides.add("border")
    both = "pakistan" in sides and "afghanistan" in sides
    if militant_first:
        return both and afghan_at is not None and afghan_at <= militant_at \
            and _CO_SUBJECT.fullmatch(sentence, afghan_at, militant_at) is not None
    if both:
        return True
    border = rules.filters.get("border")
    return "border" in sides or bool(border and border.search(sentence))


def _states_nearby(an: Analysis, rules: DevelopmentRules, unit: int, sentence: str) -> bool:
    """Fighting whose sides the next sentences name ("Air strikes hit homes in Paktika. Officials blamed
    Pakistan"): both states named in the sentence and the next two (the title reads with the first two
    lead sentences), and no militant named in any of them."""
    naming = rules.naming
    if naming.regex is None:
        return False

    def sides_in(text: str) -> set[str]:
        out: set[str] = set()
        for m in naming.regex.finditer(text):
            for target in naming.ids.get(m.group(), naming.ids.get(m.group().replace(" ", ""), ())):
                side = naming.side.get(target)
                if side:
                    out.add(side)
        return out

    named = sides_in(sentence)
    first = 0 if unit < 0 else unit + 1
    for nxt in range(first, min(first + 2, len(an.sentences))):
        s, e = an.sentences[nxt]
        named |= sides_in(an.ftext.text[an.ftext.to_folded(s):an.ftext.to_folded(e)][:_MAX_SENTENCE])
    # Stricter than _between_states: a militant anywhere around makes it an attack by militants.
    return "militant" not in named and {"pakistan", "afghanistan"} <= named


def _development(an: Analysis, rules: DevelopmentRules, st: _Statement, corroborated: bool) -> Development:
    field_name, start, end = an.unit_span(st.unit)
    source = an.title if st.unit < 0 else an.text
    while start < end and source[start].isspace():  # evidence is the stripped sentence
        start += 1
    while end > start and source[end - 1].isspace():
        end -= 1
    naming = rules.naming
    parties: list[str] = []
    mediators: list[str] = []
    places: list[str] = []
    venue = None
    for target in _names(st.sentence, naming):
        side = naming.side.get(target)
        if target in rules.venues:
            venue = venue or target
        elif target in naming.place_ids and target not in naming.party_place and side not in ("mediator",):
            places.append(target)
        if target.startswith("side:"):
            continue
        if side in ("pakistan", "afghanistan") and (target not in naming.place_ids or target in naming.party_place
                                                    or naming.kind.get(target) == "country"):
            parties.append(target)
        elif side == "mediator":
            mediators.append(target)
    # The headline says where: a headline naming one venue settles it ("talks in Istanbul" over a lead
    # that recalls "the Doha understanding").
    headline_venues = {t for t in _names(an.ftitle.text[:_MAX_SENTENCE], naming) if t in rules.venues}
    if len(headline_venues) == 1:
        venue = next(iter(headline_venues))
    confidence = _CONFIDENCE.get(st.mode, 0.5)
    if st.dtype.both_sides or st.type_id != st.dtype.id:
        confidence -= 0.2  # read from the fighting, not from words about the truce
    if corroborated:
        confidence += 0.05
    return Development(type=st.type_id, evidence=source[start:end], start=start, end=end, field=field_name,
                       mode=st.mode, parties=parties, mediators=mediators, venue=venue, places=places,
                       when=_when(st.sentence, st.match_start, rules),
                       confidence=round(max(0.1, min(confidence, 1.0)), 2))


def _which(dtype: DevelopmentType, sentence: str, m: re.Match[str]) -> int:
    """Index of the pattern that made match `m`: an alternation takes the first that matches there."""
    for which, pattern in enumerate(dtype.patterns):
        if pattern.match(sentence, m.start()):
            return which
    return 0


def _mode(sentence: str, m: re.Match[str], filters: dict[str, re.Pattern[str]], future_ok: bool,
          negation_ok: bool) -> str | None:
    """How the clause around the match makes its statement (see the module docstring); None when a
    negation cancels it."""
    before = [d.end() for d in _CLAUSE_DELIMS.finditer(sentence, 0, m.start())]
    clause_start = before[-1] if before else 0
    after = _CLAUSE_DELIMS.search(sentence, m.end())
    clause_end = after.start() if after else len(sentence)
    prefix = sentence[clause_start:m.start()]
    matched = m.group()
    # What follows the match counts only up to a relative clause, participle phrase or subordinate
    # phrase: in "a violation of the ceasefire agreed earlier this month" the date belongs to "agreed",
    # and in "talks began ... since clashes last week" to the clashes, not to the match.
    suffix = sentence[m.end():clause_end]
    cut = _RELATIVE.search(suffix)
    clause = prefix + matched + (suffix[:cut.start()] if cut else suffix)
    tail = prefix[-60:]

    def hit(name: str, text: str) -> bool:
        rx = filters.get(name)
        return bool(rx and rx.search(text))

    # A denial reaches across the clause: "Kabul denied that the talks had collapsed"; a verb-final
    # language denies at the end of the sentence (`denial_late`: "... را رد کرد").
    # ... and around it: "rejects Taliban airstrike claims" (only when a claim-like noun follows).
    after = sentence[m.end():clause_end][:40]
    if hit("denial", sentence[max(0, m.start() - 120):m.start()]) or hit("denial", after) \
            or (_CLAIM_NOUN.search(after) and hit("denial", sentence[max(0, m.start() - 60):m.end() + len(after)])) \
            or hit("denial_late", sentence[m.end():]):
        return "denied"
    if hit("negation", prefix) or (not negation_ok and (hit("negation", matched)
                                                       or hit("negation_late", sentence[m.end():m.end() + 30]))):
        return None
    if hit("hypothetical", clause):
        return "hypothetical"
    if hit("request", tail):
        return "hypothetical"
    if not future_ok and hit("future", prefix):
        return "future"
    if hit("background", clause):
        return "background"
    alleged = hit("allegation", sentence[:m.start()]) or hit("allegation", clause)
    if hit("subordinate", prefix) or hit("subordinate_late", sentence[m.end():m.end() + 30]):
        # "after the talks broke down": background unless nothing else in the sentence is news (_statement)
        return "sub-alleged" if alleged else "sub-asserted"
    return "alleged" if alleged else "asserted"

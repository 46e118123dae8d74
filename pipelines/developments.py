"""Development detection: does this article announce a NEW ceasefire or talks development?

Works sentence by sentence over the title and the lead (desks write news top-down; analysis that
restates old facts lives further down).  A sentence qualifies when it is anchored in the theatre, it
names the subject of a development type (a term of one of the type's `requires` topics), and one of
the type's patterns (topics.yaml `developments`) matches in it and survives the filters:
a denial, a negation, a hypothetical/conditional, a request ("urged a ceasefire"), a future tense
(except for talks-scheduled and patterns marked future_ok), a subordinate background clause ("after
the talks broke down") or a background time marker ("agreed last month") in the same clause rejects
the match.  A title of a background genre (the `genre` filter: "Timeline:", "Explainer:", "Analysis:")
announces nothing at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.errors import ConfigError
from pipelines.models import Development
from pipelines.textnorm import fold_pattern, fold_term

if TYPE_CHECKING:
    from pipelines.tag import Analysis, Taxonomy

FILTERS = ("denial", "negation", "hypothetical", "request", "future", "subordinate", "background", "genre")
_DEV_KEYS = {"lead_sentences", "macros", "filters", "types"}
_TYPE_KEYS = {"id", "requires", "future_ok", "patterns"}
_PATTERN_KEYS = {"re", "negation_ok", "bare_participle", "future_ok"}
# A determiner and up to two modifiers right before a match: "the (temporary) truce agreed ..." is a noun phrase.
_DETERMINER_TAIL = re.compile(r"\b(?:the|this|that|these|those|its|their|a|an)\s+(?:[\w']+\s+){0,2}$")
_MACRO_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_CLAUSE_DELIMS = re.compile(r"[,;:()\"\[\]\u060c\u061b]")  # Latin and Arabic-script commas, semicolons
_RELATIVE = re.compile(r"\b(?:which|that|who|whose|agreed|reached|signed|brokered|announced|declared|mediated|"
                       r"struck|sealed|extended|hosted|held|since|after|following|amid|before|until|despite)\b")
_MAX_SENTENCE = 1000  # characters of a lead "sentence" the patterns look at (runaway text without stops)


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


@dataclass
class DevelopmentRules:
    lead_sentences: int = 5
    types: list[DevelopmentType] = field(default_factory=list)
    filters: dict[str, re.Pattern[str]] = field(default_factory=dict)
    # Topic indices a sentence must mention for any type to apply; empty when some type requires none.
    subject_topics: frozenset[int] = frozenset()


def compile_developments(raw: Any, path: str, topic_ids: list[str]) -> DevelopmentRules:
    """Validate and compile the `developments` section of topics.yaml (topic_ids in taxonomy order)."""
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
        raise ConfigError(path, "developments", "lead_sentences", f"expected an integer >= 0, got {lead!r}")
    rules.lead_sentences = lead

    macros = _compile_macros(raw.get("macros") or {}, path)

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
    for i, item in enumerate(types):
        label = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else f"types[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(path, label, None, "expected a mapping")
        for key in item:
            if key not in _TYPE_KEYS:
                raise ConfigError(path, label, key, f"unknown key (allowed: {', '.join(sorted(_TYPE_KEYS))})")
        for key in ("id", "patterns"):
            if item.get(key) is None:
                raise ConfigError(path, label, key, "missing required field")
        type_id = item["id"]
        if not isinstance(type_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", type_id):
            raise ConfigError(path, label, "id", f"expected a lower-case id like talks-opened, got {type_id!r}")
        if type_id in seen:
            raise ConfigError(path, type_id, "id", "duplicate development type id")
        seen.add(type_id)
        requires = item.get("requires") or []
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise ConfigError(path, type_id, "requires", "expected a list of topic ids")
        for r in requires:
            if r not in topic_ids:
                raise ConfigError(path, type_id, "requires", f"unknown topic id {r!r}")
        future_ok = item.get("future_ok", False)
        if not isinstance(future_ok, bool):
            raise ConfigError(path, type_id, "future_ok", f"expected true or false, got {future_ok!r}")
        patterns = item["patterns"]
        if not isinstance(patterns, list) or not patterns:
            raise ConfigError(path, type_id, "patterns", "expected a non-empty list of regexes")
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
                        raise ConfigError(path, type_id, f"{where}.{flag}", f"expected true or false, got {value!r}")
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
        regex = re.compile("(?<!\\w)(?:" + "|".join(parts) + ")")
        requires_idx = frozenset(topic_ids.index(r) for r in requires)
        rules.types.append(DevelopmentType(type_id, frozenset(requires), requires_idx, future_ok, regex,
                                           tuple(compiled_patterns), tuple(negation_ok), tuple(bare), tuple(future)))
    if all(t.requires_idx for t in rules.types):
        rules.subject_topics = frozenset().union(*(t.requires_idx for t in rules.types))
    return rules


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


def _compile(pattern: Any, path: str, entry: str, where: str, macros: dict[str, str]) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(path, entry, where, f"expected a regex string, got {pattern!r}")

    def expand(m: re.Match[str]) -> str:
        if m.group(1) not in macros:
            raise ConfigError(path, entry, where, f"unknown macro {{{m.group(1)}}}")
        return macros[m.group(1)]

    expanded = _MACRO_RE.sub(expand, fold_pattern(pattern))
    try:
        compiled = re.compile(expanded, case_flags(expanded))
    except re.error as err:
        raise ConfigError(path, entry, where, f"bad regex: {err}") from err
    if compiled.groupindex:
        raise ConfigError(path, entry, where, "named groups are not allowed (use (?:...))")
    return compiled


# --- detection -----------------------------------------------------------------------------------


def detect_development(title: str, text: str, taxonomy: Taxonomy,
                       analysis: Analysis | None = None) -> Development | None:
    """The first new development announced in the title or lead, or None.

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
    genre = rules.filters.get("genre")
    if genre is not None and genre.search(an.ftitle.text):
        return None  # a timeline, explainer or analysis restates facts; it announces nothing
    units = [-1] + list(range(min(rules.lead_sentences, len(an.sentences))))
    subjects = rules.subject_topics
    for unit in units:
        mentioned = an.unit_topics.get(unit)
        if subjects and not (mentioned and subjects & mentioned):
            continue  # names no ceasefire, talks... at all
        field_name, start, end = an.unit_span(unit)
        if end <= start or not an.anchored_unit(unit):
            continue
        folded = an.ftitle if unit < 0 else an.ftext
        fstart, fend = folded.to_folded(start), folded.to_folded(end)
        sentence = folded.text[fstart:min(fend, fstart + _MAX_SENTENCE)]
        if sentence.rstrip(" \"'").endswith("?"):
            continue  # a question announces nothing
        mentioned = mentioned or set()
        for dtype in rules.types:
            if dtype.requires_idx and not (dtype.requires_idx & mentioned):
                continue  # the sentence must name its subject (a ceasefire, the talks...)
            for m in dtype.regex.finditer(sentence):
                which = _which(dtype, sentence, m)
                future_ok = dtype.future_ok or (dtype.pattern_future_ok and dtype.pattern_future_ok[which])
                if _rejected(sentence, m, rules.filters, future_ok, dtype.negation_ok[which]):
                    continue
                if dtype.bare_participle[which] and _DETERMINER_TAIL.search(sentence, 0, m.start()):
                    continue  # "the truce agreed in Doha": a noun phrase, not news
                source = an.title if unit < 0 else an.text
                while start < end and source[start].isspace():  # evidence is the stripped sentence
                    start += 1
                while end > start and source[end - 1].isspace():
                    end -= 1
                return Development(type=dtype.id, evidence=source[start:end], start=start, end=end,
                                   field=field_name)
    return None


def _which(dtype: DevelopmentType, sentence: str, m: re.Match[str]) -> int:
    """Index of the pattern that made match `m`: an alternation takes the first that matches there."""
    for which, pattern in enumerate(dtype.patterns):
        if pattern.match(sentence, m.start()):
            return which
    return 0


def _rejected(sentence: str, m: re.Match[str], filters: dict[str, re.Pattern[str]], future_ok: bool,
              negation_ok: bool) -> bool:
    """Whether the clause around the match makes it a non-event (see the module docstring)."""
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

    if hit("denial", prefix) or hit("denial", sentence[m.end():clause_end][:40]):
        return True
    if hit("negation", prefix) or (not negation_ok and hit("negation", matched)):
        return True
    if hit("hypothetical", clause):
        return True
    if hit("request", tail):
        return True
    if not future_ok and hit("future", prefix):
        return True
    if hit("subordinate", prefix):
        return True
    return hit("background", clause)

"""Load and validate config/ (feeds.yaml, topics.yaml, alerts.yaml, newsmon.yaml).

Every problem becomes a ConfigError naming file, entry and field, so an
editor fixing a typo at 6 a.m. is told exactly where it is.
"""

from __future__ import annotations

import functools
import math
import os
import re
import reprlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from re import _constants as _sre
from re import _parser as _sre_parse
from typing import Any
from urllib.parse import urlsplit

import yaml

from pipelines.errors import ConfigError, UsageError
from pipelines.models import FeedConfig

DEFAULT_CONFIG_DIR = "config"
# \Z, not $: "$" also matches before a final newline, and "dawn\n" is not an id
FEED_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
LANG_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?\Z")
_URL_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
NONE = type(None)

FEED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "url": str, "desk": str, "language": str, "interval": (int, str), "enabled": bool, "name": str,
}
MAX_FEED_NAME = 100  # an outlet's name, shown as articles' source in alerts, digests and the dashboard
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
FETCH_FIELDS: dict[str, type | tuple[type, ...]] = {
    "user_agent": str, "connect_timeout": (int, float), "read_timeout": (int, float),
    "total_timeout": (int, float), "max_bytes": int, "max_redirects": int,
    "per_host_concurrency": int, "per_host_delay": (int, float), "workers": int,
}
SETTINGS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schedule": str, "fetch": (dict, NONE), "extract": (dict, NONE), "batch_size": int, "store": (str, NONE),
    "alerts": (dict, NONE), "developments": (dict, NONE), "health": (dict, NONE), "cycle_budget": (str, int),
}
DEVELOPMENT_FIELDS: dict[str, type | tuple[type, ...]] = {"model": bool, "threshold": (int, float)}
ALERT_SETTINGS_FIELDS: dict[str, type | tuple[type, ...]] = {"max_age": (str, int)}
DEFAULT_MAX_AGE = "48h"
DEFAULT_CYCLE_BUDGET = "4m"  # under the shipped */5 schedule, with time left to deliver alerts
EXTRACT_FIELDS: dict[str, type | tuple[type, ...]] = {"min_chars": int, "precision_pass": bool}
HEALTH_FIELDS: dict[str, type | tuple[type, ...]] = {
    "max_failed_share": (int, float, NONE), "stale_after": (int, float), "channels": (list, NONE),
}


_DURATION = re.compile(r"\s*(\d+)\s*([smhdw]?)\s*\Z")
_DURATION_UNITS = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> timedelta:
    """Every duration field of config/ is read here, written one way: '30s', '5m', '1h', '2d', '1w',
    or a whole number of seconds (300 or '300'). ValueError (the message for a ConfigError) otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a duration like '30s', '5m', '24h', '7d' or seconds, not {type(value).__name__}")
    m = _DURATION.match(str(value))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad duration {shown(value)}: use a positive whole number of seconds or one with "
                         "s, m, h, d or w ('30s', '5m', '24h', '7d', '1w')")
    return timedelta(**{_DURATION_UNITS[m.group(2)]: int(m.group(1))})


@dataclass
class Settings:
    schedule: str = "*/5 * * * *"
    fetch: dict[str, Any] = field(default_factory=dict)
    extract: dict[str, Any] = field(default_factory=lambda: {"min_chars": 250, "precision_pass": False})
    batch_size: int = 25
    store: str | None = None
    # An item published longer than this before it is polled never notifies (stored, tagged, counted).
    max_age: timedelta = timedelta(hours=48)
    # Feeds and pages still unanswered this long after a cycle started are deferred to the next one.
    cycle_budget: timedelta = timedelta(minutes=4)
    # The learned development reader (pipelines/devmodel.py), asked when the rules find nothing; off:
    # it does not beat the rules on unseen text (docs/accuracy.md). None: the model's own threshold.
    model: bool = False
    model_threshold: float | None = None
    # Feed health (pipelines/health.py). max_failed_share: a poll fails when the failed share of the feeds
    # it tried is above it; None: only when every feed failed. stale_after: intervals without new items
    # before a feed raises a health alert to health_channels (alerts.yaml channel ids).
    max_failed_share: float | None = None
    stale_after: float = 12
    health_channels: list[str] = field(default_factory=list)


@dataclass
class AppConfig:
    dir: str
    feeds: list[FeedConfig]
    taxonomy: Any  # pipelines.tag.Taxonomy
    alerts: Any  # pipelines.alerts.AlertConfig
    settings: Settings
    events: Any = None  # pipelines.events.EventRules; None when the dir has no events.yaml

    def feed(self, feed_id: str) -> FeedConfig | None:
        return next((f for f in self.feeds if f.id == feed_id), None)


def config_dir_from(value: str | None = None) -> str:
    """--config, else NEWSMON_CONFIG, else ./config (pipelines.settings, the one resolver)."""
    from pipelines.settings import resolve

    return resolve("config_dir", flag=value, default=DEFAULT_CONFIG_DIR).value


# One loader for every config file. yaml.safe_load builds an aliased value once and shares it, so a
# "billion laughs" of nested aliases loads in a few KB, then costs gigabytes in whatever walks or prints
# it (an error message's repr reached 990 MB); deep nesting overflows the composer's stack.
MAX_YAML_ALIASED = 100_000  # nodes that aliases may repeat, in all, in one file
MAX_YAML_DEPTH = 64  # collections inside collections


class YAMLLimitError(yaml.MarkedYAMLError):
    """A config file over one of ConfigLoader's limits, or holding a value no Python type can take."""


class ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader with limits: aliases repeat at most MAX_YAML_ALIASED nodes in all (counted as
    the file is composed, before anything is built), collections nest at most MAX_YAML_DEPTH deep, an
    alias may not point into its own collection, and a value a constructor cannot take ("2001-13-45",
    a 5,000-digit integer) is a YAMLError at its line, not a ValueError from deep inside PyYAML."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> its size with every alias in it expanded
        self._aliased = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:  # an unknown anchor is PyYAML's own error
                size = self._sizes.get(id(node))
                if size is None:
                    raise YAMLLimitError(None, None, f"alias *{event.anchor} points into its own collection",
                                         event.start_mark)
                self._aliased += size
                if self._aliased > MAX_YAML_ALIASED:
                    raise YAMLLimitError(None, None, f"aliases repeat more than {MAX_YAML_ALIASED:,} values "
                                         "(an alias bomb?)", event.start_mark)
            return super().compose_node(parent, index)
        nests = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        self._depth += nests
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YAMLLimitError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep",
                                     self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= nests
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            kind = str(node.tag).rsplit(":", 1)[-1]
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise YAMLLimitError(None, None, f"cannot read this {kind} value ({reason[:100]})",
                                 node.start_mark) from None


def parse_yaml(stream: Any) -> Any:
    """yaml.safe_load with ConfigLoader's limits: what every loader of a config file calls."""
    loader = ConfigLoader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read one YAML file; syntax errors name the file and line."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_yaml(fh)
    except FileNotFoundError:
        raise ConfigError(path, None, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "refused" if isinstance(exc, YAMLLimitError) else "YAML syntax error"
        raise ConfigError(path, None, None, f"{kind}: {where}{problem}") from None


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 2, 60, 60, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = _SHORT.maxfrozenset = 4


def shown(value: Any, limit: int = 80) -> str:
    """repr() of a config value for an error message, cut short: a message quotes what it names, never
    a whole list, mapping or page of text (an aliased value would be spelled out in full)."""
    if isinstance(value, str):
        text = repr(value[:limit])
    else:
        try:
            text = _SHORT.repr(value)
        except ValueError:  # an int with more digits than int -> str converts
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- operator-written regexes -------------------------------------------------------------------
# Python's re backtracks, and cannot be interrupted: a pattern like (a+)+$ that validates can then
# hang `newsmon tag` on one article. Every operator-written regex (topics.yaml's development patterns,
# filters and rereads, with their macros expanded) is checked here, on the parsed pattern, for the
# shapes that backtrack exponentially or with the text's length to the power of a repeat count
# (docs/decisions.md, "Operator regexes are checked, not timed").

_SINGLE = (_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN)
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)  # a possessive repeat never gives back what it took
_ZERO_WIDTH = (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT, _sre.GROUPREF, _sre.GROUPREF_EXISTS)
_LONG_REPEAT = 16  # rounds: a repeat allowing more can swallow a boundary, or split text 2**n ways
_PROBES = "".join(map(chr, range(128))) + "\u00a0\u00e9\u0131\u00df\u0627\u0661\u06cc\u200c\u4e2d\u2028\u3000"
_CATEGORIES = {name: re.compile(rx) for name, rx in (
    (_sre.CATEGORY_DIGIT, r"\d"), (_sre.CATEGORY_NOT_DIGIT, r"\D"), (_sre.CATEGORY_SPACE, r"\s"),
    (_sre.CATEGORY_NOT_SPACE, r"\S"), (_sre.CATEGORY_WORD, r"\w"), (_sre.CATEGORY_NOT_WORD, r"\W"))}


class _Shapes:
    """Character sets of parsed-regex items over a probe alphabet: ASCII, a few letters, digits and
    spaces of other scripts, and every character the pattern spells."""

    def __init__(self, parsed, flags: int):
        self.fold = bool(flags & re.IGNORECASE)
        self._parsed = parsed
        self._probes: list[str] | None = None  # listed when first needed: most patterns never need them
        self._cache: dict[tuple[Any, int], frozenset[str]] = {}

    @property
    def probes(self) -> list[str]:
        if self._probes is None:
            spelled: set[str] = set()
            self._spelled(self._parsed, spelled)
            self._probes = sorted(set(_PROBES) | spelled)
        return self._probes

    def _spelled(self, seq, out: set[str]) -> None:
        for op, av in seq:
            if op in (_sre.LITERAL, _sre.NOT_LITERAL):
                out.add(chr(av))
            elif op is _sre.IN:
                for iop, iav in av:
                    if iop is _sre.LITERAL:
                        out.add(chr(iav))
                    elif iop is _sre.RANGE:
                        out.update((chr(iav[0]), chr(iav[1])))
            else:
                for sub in _children(op, av):
                    self._spelled(sub, out)

    def chars(self, op, av) -> frozenset[str]:
        """What one single-character item (LITERAL, NOT_LITERAL, ANY, IN) can match."""
        key = (op, av if isinstance(av, int) else id(av))  # an IN's list lives as long as the parse
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = frozenset(c for c in self.probes if self._member(op, av, c))
        return found

    def _member(self, op, av, c: str) -> bool:
        if op is _sre.ANY:
            return c != "\n"
        if op is _sre.IN:
            negate = bool(av) and av[0][0] is _sre.NEGATE
            hit = any(self._in_item(iop, iav, c) for iop, iav in av if iop is not _sre.NEGATE)
            return hit != negate
        same = self._same(c, av)
        return same if op is _sre.LITERAL else not same

    def _same(self, c: str, code: int) -> bool:
        return c == chr(code) or (self.fold and c.lower() == chr(code).lower())

    def _in_item(self, op, av, c: str) -> bool:
        if op is _sre.LITERAL:
            return self._same(c, av)
        if op is _sre.RANGE:
            lo, hi = av
            return lo <= ord(c) <= hi or (self.fold and any(lo <= ord(x) <= hi for x in (c.lower(), c.upper())))
        if op is _sre.CATEGORY:
            rx = _CATEGORIES.get(av)
            return rx is None or bool(rx.fullmatch(c))
        return True  # anything unknown: assume it may match

    def consumed(self, seq) -> frozenset[str]:
        """Every character a match of seq may contain."""
        out: set[str] = set()
        for op, av in seq:
            if op in _SINGLE:
                out |= self.chars(op, av)
            elif op not in (_sre.ASSERT, _sre.ASSERT_NOT):
                for sub in _children(op, av):
                    out |= self.consumed(sub)
        return frozenset(out)

    def absorbs(self, seq, chars: frozenset[str]) -> bool:
        """Whether some match of seq can be made of `chars` only (roughly: every item that must match
        a character can match one of them)."""
        return all(self._absorbs_item(op, av, chars) for op, av in seq)

    def _absorbs_item(self, op, av, chars) -> bool:
        if op in _SINGLE:
            return bool(self.chars(op, av) & chars)
        if op in _ZERO_WIDTH:
            return True
        if op in _REPEATS or op is _sre.POSSESSIVE_REPEAT:
            return av[0] == 0 or self.absorbs(av[2], chars)
        if op is _sre.BRANCH:
            return any(self.absorbs(alt, chars) for alt in av[1])
        return all(self.absorbs(sub, chars) for sub in _children(op, av))


def _children(op, av) -> list:
    """The sub-sequences of one parsed item."""
    if op in _REPEATS or op is _sre.POSSESSIVE_REPEAT:
        return [av[2]]
    if op is _sre.SUBPATTERN:
        return [av[-1]]
    if op is _sre.ATOMIC_GROUP:
        return [av]
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return [av[1]]
    if op is _sre.BRANCH:
        return list(av[1])
    if op is _sre.GROUPREF_EXISTS:
        return [s for s in av[1:] if s is not None]
    return []


@functools.lru_cache(maxsize=1024)  # a config is loaded again on every change (the dashboard, DAG parses)
def regex_hazard(pattern: str, flags: int = 0) -> str | None:
    """Why a pattern can backtrack catastrophically, in words, or None. Refused: a repeat allowing two
    rounds or more that holds a repeat of more than _LONG_REPEAT rounds able to take the boundary
    between them; a repeat of more than _LONG_REPEAT rounds of an alternation whose fixed-length
    branches overlap or tile one another. Possessive repeats and atomic groups never give back."""
    try:
        parsed = _sre_parse.parse(pattern, flags)
    except (re.error, RecursionError):
        return None  # re.compile reports it
    try:
        return _walk(parsed, _Shapes(parsed, flags))
    except RecursionError:
        return "groups nested too deeply to check"


def _walk(seq, shapes: _Shapes) -> str | None:
    for op, av in seq:
        if op in _REPEATS and av[1] >= 2:
            found = _inner(av[2], shapes, [], [])
            if found:
                return found
            if av[1] > _LONG_REPEAT and _ambiguous(av[2], shapes):
                return ("a repeated alternation whose branches can match the same text, like (a|aa)+: a "
                        "failing match tries every way of splitting it; make the branches exclusive")
        for sub in _children(op, av):
            found = _walk(sub, shapes)
            if found:
                return found
    return None


def _inner(seq, shapes: _Shapes, before: list, after: list) -> str | None:
    """An inner repeat, in a repeated body, that can swallow the boundary between two repetitions:
    what comes after it in the body, then what comes before it, can be made of its own characters
    ((a+)+, (\\w+\\s?)+, (.*,)+). `before`/`after`: the body's parts around `seq`."""
    for k, (op, av) in enumerate(seq):
        pre, post = [*before, seq[:k]], [seq[k + 1:], *after]
        if op in _REPEATS and av[1] > _LONG_REPEAT:
            chars = shapes.consumed(av[2])
            if chars and all(shapes.absorbs(s, chars) for s in (*pre, *post)):
                return ("nested repeats, like (a+)+: an inner repeat can also match what separates the outer "
                        "repeat's rounds, so a failing match backtracks without end; make the separator "
                        "something the inner part cannot match, or use an atomic group (?>...)")
        if op is _sre.ATOMIC_GROUP or op in (_sre.ASSERT, _sre.ASSERT_NOT) or op is _sre.POSSESSIVE_REPEAT:
            continue
        for sub in _children(op, av):
            found = _inner(sub, shapes, pre, post)
            if found:
                return found
    return None


_MAX_SHAPES, _MAX_SHAPE_LEN = 64, 32


def _fixed_shapes(seq, shapes: _Shapes) -> list[tuple[frozenset[str], ...]] | None:
    """Every fixed-length shape (a tuple of character sets) seq can match, or None when seq has
    long repeats, look-arounds or too many shapes to list."""
    out: list[tuple[frozenset[str], ...]] = [()]
    for op, av in seq:
        if op in _SINGLE:
            options = [(shapes.chars(op, av),)]
        elif op is _sre.SUBPATTERN:
            options = _fixed_shapes(av[-1], shapes)
        elif op is _sre.BRANCH:
            options = []
            for alt in av[1]:
                alt_shapes = _fixed_shapes(alt, shapes)
                if alt_shapes is None:
                    return None
                options += alt_shapes
        elif op in _REPEATS and av[1] <= 4:
            body = _fixed_shapes(av[2], shapes)
            if body is None:
                return None
            options, run = [], [()]
            for count in range(av[1] + 1):
                if count >= av[0]:
                    options += run
                run = [a + b for a in run for b in body]
                if len(run) > _MAX_SHAPES:
                    return None
        else:
            return None
        if options is None:
            return None
        out = [a + b for a in out for b in options]
        if len(out) > _MAX_SHAPES or any(len(s) > _MAX_SHAPE_LEN for s in out):
            return None
    return out


def _ambiguous(body, shapes: _Shapes) -> bool:
    """Whether a repeat of body can match one text in two ways: two of its shapes overlap at every
    position, or one shape can be cut into several shorter ones ((a|aa)+, (ab|a|b)+)."""
    found = _fixed_shapes(body, shapes)
    if not found:
        return False
    found = [s for s in found if s]

    def fits(shape, at, other) -> bool:
        return at + len(other) <= len(shape) and all(shape[at + i] & c for i, c in enumerate(other))

    for i, a in enumerate(found):
        for b in found[i + 1:]:
            if len(a) == len(b) and fits(a, 0, b):
                return True
    for shape in found:
        reach = {0}
        for at in range(len(shape)):
            if at in reach:
                reach |= {at + len(o) for o in found if len(o) < len(shape) and fits(shape, at, o)}
        if len(shape) in reach:
            return True
    return False


def check_fields(path: str, entry: str | None, data: Any, fields: dict[str, Any],
                 required: tuple[str, ...] = ()) -> None:
    """Reject unknown keys, missing required keys and wrong types, one field at a time.

    A null is only accepted where the field's type allows None: elsewhere it would reach a
    comparison or a str method later and fail without naming the field.
    """
    if not isinstance(data, dict):
        raise ConfigError(path, entry, None, f"expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            raise ConfigError(path, entry, str(key), f"unknown key (allowed: {allowed})")
    for key in required:
        if data.get(key) in (None, ""):
            raise ConfigError(path, entry, key, "missing required field")
    for key, value in data.items():
        expected = fields[key]
        # bool is an int in Python; a 'true' interval is a mistake, not a number
        if isinstance(value, bool) and expected in (int, (int, float)):
            raise ConfigError(path, entry, key, f"expected {_type_name(expected)}, got bool")
        if value is None and not _allows_none(expected):
            raise ConfigError(path, entry, key, f"no value (expected {_type_name(expected)}; "
                                                "remove the key to use the default)")
        if value is not None and not isinstance(value, expected):
            raise ConfigError(path, entry, key, f"expected {_type_name(expected)}, got {type(value).__name__}")


def _allows_none(expected: Any) -> bool:
    return isinstance(expected, tuple) and NONE in expected


def _without_nulls(data: Any) -> Any:
    """A feed entry's (or the defaults') null means "not set": the default applies."""
    return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


def _type_name(expected: Any) -> str:
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected if t is not type(None))
    return expected.__name__


def check_http_url(path: str, entry: str | None, field_name: str, url: str) -> None:
    if _URL_UNSAFE.search(url):
        raise ConfigError(path, entry, field_name, f"URL contains whitespace or control characters: {shown(url, 200)}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in 0-65535
    except ValueError as err:  # "http://[": unbalanced brackets, a bad port...
        raise ConfigError(path, entry, field_name, f"malformed URL {shown(url, 200)} ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, entry, field_name, f"not an http(s) URL: {shown(url, 200)}")


def validate_feeds(data: Any, path: str, desks: set[str] | None = None) -> list[FeedConfig]:
    if not isinstance(data, dict):
        raise ConfigError(path, None, None, "expected a mapping with a 'feeds:' list")
    check_fields(path, None, data, {"feeds": list, "defaults": (dict, NONE)}, required=("feeds",))
    defaults = _without_nulls(data.get("defaults") or {})
    # id, url and name belong to one feed: a default name would call every outlet the same
    check_fields(path, "defaults", defaults, {k: v for k, v in FEED_FIELDS.items() if k not in ("id", "url", "name")})
    if "interval" in defaults:
        try:
            parse_duration(defaults["interval"])
        except ValueError as exc:
            raise ConfigError(path, "defaults", "interval", str(exc)) from None
    feeds: list[FeedConfig] = []
    seen_ids: set[str] = set()
    seen_urls: dict[str, str] = {}
    for index, raw in enumerate(data["feeds"]):
        entry = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{index + 1}"
        merged = {**defaults, **_without_nulls(raw)} if isinstance(raw, dict) else raw
        check_fields(path, entry, merged, FEED_FIELDS, required=("id", "url", "desk"))
        feed_id = merged["id"]
        if not FEED_ID_RE.match(feed_id):
            raise ConfigError(path, entry, "id", "use lower-case letters, digits, '.', '_' or '-' (max 64)")
        if feed_id in seen_ids:
            raise ConfigError(path, entry, "id", "duplicate id")
        seen_ids.add(feed_id)
        check_http_url(path, entry, "url", merged["url"])
        if merged["url"] in seen_urls:
            raise ConfigError(path, entry, "url", f"same URL as feed {shown(seen_urls[merged['url']])}")
        seen_urls[merged["url"]] = feed_id
        if desks is not None and merged["desk"] not in desks:
            raise ConfigError(path, entry, "desk", f"unknown desk {shown(merged['desk'])} (desks in alerts.yaml: "
                                                   f"{', '.join(sorted(desks))})")
        language = merged.get("language", "en")
        if not LANG_RE.match(language):
            raise ConfigError(path, entry, "language", f"not a language code: {shown(language)}")
        try:
            interval = int(parse_duration(merged.get("interval", 300)).total_seconds())
        except ValueError as exc:
            raise ConfigError(path, entry, "interval", str(exc)) from None
        feeds.append(FeedConfig(id=feed_id, url=merged["url"], desk=merged["desk"], language=language,
                                interval=interval, enabled=merged.get("enabled", True),
                                name=_feed_name(path, entry, merged.get("name"))))
    return feeds


def _feed_name(path: str, entry: str, name: str | None) -> str | None:
    """A feed's `name` (the outlet, articles' source): one line of text, trimmed; None when not set."""
    if name is None:
        return None
    if _NAME_UNSAFE.search(name):
        raise ConfigError(path, entry, "name", f"contains a line break or control character: {shown(name)}")
    name = " ".join(name.split())
    if not name:
        raise ConfigError(path, entry, "name", "empty (remove the key to use the feed's own title)")
    if len(name) > MAX_FEED_NAME:
        raise ConfigError(path, entry, "name", f"longer than {MAX_FEED_NAME} characters")
    return name


def validate_settings(data: Any, path: str) -> Settings:
    if data is None:
        return Settings()
    check_fields(path, None, data, SETTINGS_FIELDS)
    fetch = data.get("fetch") or {}
    check_fields(path, "fetch", fetch, FETCH_FIELDS)
    for key, value in fetch.items():
        if key != "user_agent" and not (value > 0 and math.isfinite(value)):  # `not >`: NaN fails too
            raise ConfigError(path, "fetch", key, "must be a positive finite number")
    extract = data.get("extract") or {}
    check_fields(path, "extract", extract, EXTRACT_FIELDS)
    batch_size = data.get("batch_size", 25)
    if batch_size < 1:
        raise ConfigError(path, None, "batch_size", "must be at least 1")
    schedule = data.get("schedule", Settings.schedule)
    if len(schedule.split()) != 5 and not schedule.startswith("@"):
        raise ConfigError(path, None, "schedule", f"not a 5-field cron expression: {shown(schedule)}")
    alert_settings = data.get("alerts") or {}
    check_fields(path, "alerts", alert_settings, ALERT_SETTINGS_FIELDS)
    try:
        max_age = parse_duration(alert_settings.get("max_age", DEFAULT_MAX_AGE))
    except ValueError as exc:
        raise ConfigError(path, "alerts", "max_age", str(exc)) from None
    try:
        cycle_budget = parse_duration(data.get("cycle_budget", DEFAULT_CYCLE_BUDGET))
    except ValueError as exc:
        raise ConfigError(path, None, "cycle_budget", str(exc)) from None
    developments = data.get("developments") or {}
    check_fields(path, "developments", developments, DEVELOPMENT_FIELDS)
    threshold = developments.get("threshold")
    if threshold is not None and not 0 < threshold <= 1:
        raise ConfigError(path, "developments", "threshold", "must be a probability in (0, 1]")
    health = _health_settings(data.get("health") or {}, path)
    return Settings(schedule=schedule, fetch=fetch, extract={"min_chars": 250, "precision_pass": False, **extract},
                    batch_size=batch_size, store=data.get("store"), max_age=max_age, cycle_budget=cycle_budget,
                    model=developments.get("model", False), model_threshold=threshold, **health)


def _health_settings(health: Any, path: str) -> dict[str, Any]:
    """newsmon.yaml's `health:` section as Settings fields (channel ids are checked against alerts.yaml
    by load_config, which has both files)."""
    check_fields(path, "health", health, HEALTH_FIELDS)
    share = health.get("max_failed_share")
    if isinstance(share, bool):
        raise ConfigError(path, "health", "max_failed_share", "expected a number in [0, 1], got bool")
    if share is not None and not 0 <= share <= 1:  # `not <=`: NaN fails too
        raise ConfigError(path, "health", "max_failed_share", "must be a share in [0, 1] (remove the key for "
                                                              "the default: fail only when every feed failed)")
    stale_after = health.get("stale_after", 12)
    if not (stale_after > 0 and math.isfinite(stale_after)):
        raise ConfigError(path, "health", "stale_after", "must be a positive number of feed intervals")
    channels = health.get("channels") or []
    for channel in channels:
        if not isinstance(channel, str) or not channel:
            raise ConfigError(path, "health", "channels", f"expected a list of channel ids, got {shown(channel)}")
    return {"max_failed_share": None if share is None else float(share), "stale_after": stale_after,
            "health_channels": list(dict.fromkeys(channels))}


def load_config(config_dir: str | None = None) -> AppConfig:
    """Load all of config/; raises the first ConfigError found (see validate_config_dir for all)."""
    from pipelines.alerts import load_alert_config
    from pipelines.tag import load_taxonomy

    base = Path(config_dir_from(config_dir))
    if not base.is_dir():
        raise ConfigError(str(base), None, None, "config directory not found")
    topics_path = str(base / "topics.yaml")
    taxonomy = load_taxonomy(_mapping(load_yaml(topics_path), topics_path), topics_path)
    alerts_path = str(base / "alerts.yaml")
    topic_ids = {t.id for t in taxonomy.topics}
    # Development types too: a rule naming "ceasfire-agreed" would load and never fire.
    alerts = load_alert_config(_mapping(load_yaml(alerts_path), alerts_path), alerts_path, topic_ids,
                               taxonomy.development_types())
    desks = set(alerts.desks) or None
    feeds_path = str(base / "feeds.yaml")
    feeds = validate_feeds(load_yaml(feeds_path), feeds_path, desks)
    events = load_events(base, taxonomy.development_types(), topic_ids)
    settings = load_settings(base)
    for channel in settings.health_channels:
        if channel not in alerts.channels:
            raise ConfigError(str(base / "newsmon.yaml"), "health", "channels",
                              f"unknown channel {shown(channel)} (channels in alerts.yaml: "
                              f"{', '.join(sorted(alerts.channels))})")
    return AppConfig(dir=str(base), feeds=feeds, taxonomy=taxonomy, alerts=alerts, settings=settings,
                     events=events)


def load_events(config_dir: str | Path, development_types: list[str] | None = None,
                topic_ids: set[str] | None = None) -> Any:
    """events.yaml of a config dir (pipelines.events.EventRules), or None when the file is absent.

    development_types and topic_ids (from topics.yaml): every event type must be one the tagger can
    report, every family topic one it tags."""
    from pipelines.events import load_event_rules

    events_path = Path(config_dir) / "events.yaml"
    if not events_path.exists():
        return None
    rules = load_event_rules(load_yaml(events_path), str(events_path))
    if development_types is not None:
        known = set(development_types)
        for dev_type in sorted(rules.event_types()):
            if dev_type not in known:
                raise ConfigError(str(events_path), None, "families",
                                  f"development type {shown(dev_type)} is not in topics.yaml's developments")
    for family in rules.families.values():
        for topic in sorted(family.topics - (topic_ids if topic_ids is not None else family.topics)):
            raise ConfigError(str(events_path), f"family {family.id}", "topics",
                              f"unknown topic {shown(topic)} (not in topics.yaml)")
    return rules


def load_settings(config_dir: str | Path) -> Settings:
    """newsmon.yaml of a config dir, validated; the defaults when the file is absent."""
    settings_path = Path(config_dir) / "newsmon.yaml"
    if not settings_path.exists():
        return Settings()
    return validate_settings(load_yaml(settings_path), str(settings_path))


def _mapping(data: Any, path: str) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(path, None, None, f"expected a mapping at top level, got {type(data).__name__}")
    return data


def check_choice(option: str, value: str | None, known: Any, where: str) -> None:
    """UsageError when value (a --topic, a desk filter) is not one of known: a typo must not read as
    "no matches". None passes."""
    if value is None or value in known:
        return
    listed = ", ".join(sorted(known)) or "none"
    raise UsageError(f"unknown {option} {shown(value)} (known in {where}: {listed})")


def check_filters(config: AppConfig, *, topic: str | None = None, desk: str | None = None,
                  extra_desks: Any = ()) -> None:
    """A topic must be one of topics.yaml's, a desk one of alerts.yaml's (or extra_desks)."""
    check_choice("topic", topic, {t.id for t in config.taxonomy.topics}, "topics.yaml")
    check_choice("desk", desk, set(config.alerts.desks) | set(extra_desks), "alerts.yaml")


def config_warnings(config: AppConfig, allow_networks: str | None = None) -> list[str]:
    """What loads but will not work as meant, one line each: a channel no desk or rule sends to, a
    feed on a network the fetcher refuses (loopback, private... without NEWSMON_ALLOW_NETWORKS).
    Only literal IPs and 'localhost' are judged: no DNS lookups."""
    import ipaddress

    from pipelines.errors import FetchError
    from pipelines.netguard import ENV_ALLOW, NetworkPolicy

    warnings: list[str] = []
    alerts = config.alerts
    used = {c for d in alerts.desks.values() for c in d.channels} | {c for r in alerts.rules for c in r.channels}
    for channel in alerts.channels:
        if channel not in used:
            warnings.append(f"{alerts.path}: entry {channel!r}: channel is used by no desk or rule")
    raw = os.environ.get(ENV_ALLOW, "") if allow_networks is None else allow_networks
    policy = NetworkPolicy(raw.split(","))
    feeds_path = os.path.join(config.dir, "feeds.yaml")
    for feed in config.feeds:
        host = (urlsplit(feed.url).hostname or "").rstrip(".").lower()
        try:
            if host == "localhost" or host.endswith(".localhost"):
                policy.check_address("127.0.0.1", url=feed.url)
            else:
                ipaddress.ip_address(host.split("%", 1)[0])  # a name is judged after DNS, when fetched
                policy.check_url(feed.url)
        except ValueError:
            continue
        except FetchError as exc:
            warnings.append(f"{feeds_path}: entry {feed.id!r}: field 'url': {exc.reason}")
    return warnings

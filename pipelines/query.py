"""The desk query language: what desk editors already type into Google Alerts or Kibana.

    ceasefire "peace talks"                 implicit AND between adjacent terms
    TTP OR "Tehrik-i-Taliban"               OR; AND binds tighter than OR (as in Kibana)
    talks -cricket   talks NOT cricket      NOT / leading '-' exclude; '+term' is just a required term
    (border OR crossing) AND Chaman         parentheses group
    title:ceasefire  source:dawn  topic:talks  development:talks-*  place:"North Waziristan"
    title:(truce OR ceasefire)              a field applies to every term of a group
    negotiat*                               trailing '*' matches any word starting with the prefix

Keywords are upper-case only, so a lower-case "or" is an ordinary word. Words and
phrases match title or text on word boundaries, ignoring case and accents
(Türkiye == turkiye); an unquoted hyphenated word is a phrase ("Tehrik-i-Taliban"
== "Tehrik i Taliban"). topic/development/desk/language compare whole values
(case-insensitive, '*' = prefix); source is a substring; entity/place match words
inside any of the names.

Documents are normalised once by `prepare_doc`, so 50 rules over one article cost
50 tree walks over sets and dicts, not 50 regex scans of the text.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import NewsmonError
from pipelines.textnorm import LETTER_FOLDS

FIELDS = ("title", "text", "topic", "development", "desk", "source", "language", "entity", "place")
TEXT_FIELDS = ("title", "text")
EXACT_FIELDS = ("topic", "development", "desk", "language")
NAME_FIELDS = ("entity", "place")

_WORD = re.compile(r"\w+", re.UNICODE)
_QUERY_WORD = re.compile(r"(\w+)(\*?)", re.UNICODE)
_FIELD_PREFIX = re.compile(r"^([A-Za-z_]+):(.*)$", re.DOTALL)
# Letters that carry no combining mark under NFKD but that readers treat as the base letter.
_FOLD_EXTRA = str.maketrans(LETTER_FOLDS)  # the tagger's table, so desk rules and topic terms agree


class QuerySyntaxError(NewsmonError):
    """A query that does not parse; `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int):
        self.message, self.position = message, position
        super().__init__(f"{message} (at position {position})")


def fold(text: str) -> str:
    """Lower-case and strip accents, so spellings that differ only by diacritics compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold().translate(_FOLD_EXTRA)


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


# --------------------------------------------------------------------------- prepared documents


class _FieldIndex:
    """Word positions of one text field, for word, prefix and phrase lookups without rescanning."""

    __slots__ = ("label", "tokens", "positions", "vocabulary")

    def __init__(self, text: str):
        self.label = text
        self.tokens = words(text or "")
        self.positions: dict[str, list[int]] = {}
        for i, tok in enumerate(self.tokens):
            self.positions.setdefault(tok, []).append(i)
        self.vocabulary = sorted(self.positions)

    def words_with_prefix(self, prefix: str) -> list[str]:
        start = bisect_left(self.vocabulary, prefix)
        found = []
        for word in self.vocabulary[start:]:
            if not word.startswith(prefix):
                break
            found.append(word)
        return found

    def contains(self, pattern: tuple[tuple[str, bool], ...]) -> bool:
        """True when the word sequence occurs; each element is (word, is_prefix)."""
        first, first_prefix = pattern[0]
        if first_prefix:
            starts = [p for w in self.words_with_prefix(first) for p in self.positions[w]]
        else:
            starts = self.positions.get(first, [])
        if len(pattern) == 1:
            return bool(starts)
        tokens, n = self.tokens, len(pattern)
        for start in starts:
            if start + n > len(tokens):
                continue
            for offset in range(1, n):
                word, is_prefix = pattern[offset]
                tok = tokens[start + offset]
                if not (tok.startswith(word) if is_prefix else tok == word):
                    break
            else:
                return True
        return False


@dataclass
class PreparedDoc:
    """A document normalised once for matching against many queries."""

    title: _FieldIndex
    text: _FieldIndex
    topics: set[str]
    development: str | None
    desk: str
    source: str
    language: str
    entities: list[_FieldIndex]
    places: list[_FieldIndex]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def prepare_doc(doc: dict[str, Any] | PreparedDoc) -> PreparedDoc:
    """Normalise a doc dict once: {"title","text","topics","development","desk","source",
    "language","entities","places"} (missing keys are empty)."""
    if isinstance(doc, PreparedDoc):
        return doc
    development = doc.get("development")
    return PreparedDoc(
        title=_FieldIndex(doc.get("title") or ""),
        text=_FieldIndex(doc.get("text") or ""),
        topics={str(t).casefold() for t in doc.get("topics") or []},
        development=str(development).casefold() if development else None,
        desk=str(doc.get("desk") or "").casefold(),
        source=fold(str(doc.get("source") or "")),
        language=str(doc.get("language") or "").casefold(),
        entities=[_FieldIndex(str(n)) for n in doc.get("entities") or [] if n],
        places=[_FieldIndex(str(n)) for n in doc.get("places") or [] if n],
        raw=doc,
    )


# --------------------------------------------------------------------------- syntax tree


class Node:
    def eval(self, doc: PreparedDoc, reasons: list[str] | None) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class And(Node):
    children: list[Node]

    def eval(self, doc, reasons):
        return all(child.eval(doc, reasons) for child in self.children)

    def __str__(self):
        return "(" + " AND ".join(map(str, self.children)) + ")"


@dataclass
class Or(Node):
    children: list[Node]

    def eval(self, doc, reasons):
        if reasons is None:
            return any(child.eval(doc, None) for child in self.children)
        # Explaining: evaluate every branch so the reason lists all that matched.
        results = [child.eval(doc, reasons) for child in self.children]
        return any(results)

    def __str__(self):
        return "(" + " OR ".join(map(str, self.children)) + ")"


@dataclass
class Not(Node):
    child: Node

    def eval(self, doc, reasons):
        return not self.child.eval(doc, None)

    def __str__(self):
        return f"NOT {self.child}"


@dataclass
class TextMatch(Node):
    """A word, prefix or phrase looked up in title and/or text."""

    pattern: tuple[tuple[str, bool], ...]
    display: str  # as the desk wrote it
    fields: tuple[str, ...] = TEXT_FIELDS
    phrase: bool = False

    def eval(self, doc, reasons):
        hits = [f for f in self.fields if getattr(doc, f).contains(self.pattern)]
        if hits and reasons is not None:
            kind = "phrase" if self.phrase else "term"
            reasons.append(f'{kind} "{self.display}" in {", ".join(hits)}')
        return bool(hits)

    def __str__(self):
        inner = f'"{self.display}"' if self.phrase else self.display
        return inner if self.fields == TEXT_FIELDS else f"{self.fields[0]}:{inner}"


@dataclass
class ExactMatch(Node):
    """topic / development / desk / language: whole value, case-insensitive, optional prefix."""

    field_name: str
    value: str  # casefolded
    prefix: bool = False

    def eval(self, doc, reasons):
        if self.field_name == "topic":
            values = doc.topics
        else:
            single = getattr(doc, self.field_name)
            values = {single} if single else set()
        if self.prefix:
            hit = next((v for v in sorted(values) if v.startswith(self.value)), None)
        else:
            hit = self.value if self.value in values else None
        if hit is not None and reasons is not None:
            reasons.append(f"{self.field_name}:{hit}")
        return hit is not None

    def __str__(self):
        return f"{self.field_name}:{self.value}{'*' if self.prefix else ''}"


@dataclass
class SourceMatch(Node):
    value: str  # folded

    def eval(self, doc, reasons):
        hit = bool(self.value) and self.value in doc.source
        if hit and reasons is not None:
            reasons.append(f"source:{doc.raw.get('source') or doc.source}")
        return hit

    def __str__(self):
        return f"source:{self.value}"


@dataclass
class NameMatch(Node):
    """entity / place: the words occur inside one of the names."""

    field_name: str  # entity | place
    pattern: tuple[tuple[str, bool], ...]
    display: str

    def eval(self, doc, reasons):
        names = doc.entities if self.field_name == "entity" else doc.places
        for name in names:
            if name.contains(self.pattern):
                if reasons is not None:
                    reasons.append(f"{self.field_name}:{name.label}")
                return True
        return False

    def __str__(self):
        return f'{self.field_name}:"{self.display}"'


@dataclass
class Query:
    """A parsed desk query; cheap to evaluate many times."""

    text: str
    root: Node

    def matches(self, doc: dict[str, Any] | PreparedDoc) -> bool:
        return self.root.eval(prepare_doc(doc), None)

    def explain(self, doc: dict[str, Any] | PreparedDoc) -> str:
        """Why the query matched (positive parts only), '' when it did not."""
        reasons: list[str] = []
        if not self.root.eval(prepare_doc(doc), reasons):
            return ""
        unique = list(dict.fromkeys(reasons))
        return "; ".join(unique) if unique else "no excluded term present"

    def __str__(self) -> str:
        return str(self.root)


# --------------------------------------------------------------------------- tokenizer


@dataclass
class _Tok:
    kind: str  # WORD PHRASE FIELD FIELDGROUP LPAREN RPAREN AND OR NOT MINUS PLUS EOF
    pos: int
    value: str = ""
    field: str | None = None
    phrase: bool = False


_STOP = set(' \t\r\n()"')


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)

    def read_phrase(start: int) -> tuple[str, int]:
        end = text.find('"', start + 1)
        if end < 0:
            raise QuerySyntaxError("unclosed quote", start)
        return text[start + 1:end], end + 1

    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "(":
            toks.append(_Tok("LPAREN", i))
            i += 1
            continue
        if ch == ")":
            toks.append(_Tok("RPAREN", i))
            i += 1
            continue
        if ch == '"':
            value, end = read_phrase(i)
            toks.append(_Tok("PHRASE", i, value, phrase=True))
            i = end
            continue
        if ch in "-+":
            nxt = text[i + 1] if i + 1 < n else ""
            if not nxt or nxt.isspace() or nxt == ")":
                raise QuerySyntaxError(f"'{ch}' must be followed directly by a term", i)
            toks.append(_Tok("MINUS" if ch == "-" else "PLUS", i))
            i += 1
            continue
        start = i
        while i < n and text[i] not in _STOP:
            i += 1
        word = text[start:i]
        if word in ("AND", "OR", "NOT"):
            toks.append(_Tok(word, start))
            continue
        m = _FIELD_PREFIX.match(word)
        if m:
            name, rest = m.group(1).lower(), m.group(2)
            if name not in FIELDS:
                raise QuerySyntaxError(
                    f"unknown field '{m.group(1)}' (fields: {', '.join(FIELDS)}; quote the text to search it)",
                    start)
            if rest:
                toks.append(_Tok("FIELD", start, rest, field=name))
            elif i < n and text[i] == '"':
                value, end = read_phrase(i)
                toks.append(_Tok("FIELD", start, value, field=name, phrase=True))
                i = end
            elif i < n and text[i] == "(":
                toks.append(_Tok("FIELDGROUP", start, field=name))
                toks.append(_Tok("LPAREN", i))
                i += 1
            else:
                raise QuerySyntaxError(f"missing value after '{name}:'", start)
            continue
        toks.append(_Tok("WORD", start, word))
    toks.append(_Tok("EOF", n))
    return toks


# --------------------------------------------------------------------------- parser

_STARTS_OPERAND = {"WORD", "PHRASE", "FIELD", "FIELDGROUP", "LPAREN", "NOT", "MINUS", "PLUS"}
# Parentheses and negations nest at most this deep, in desk queries and searches alike: the parsers
# and every tree walk recurse, and 300 '(' overflowed Python's stack (a traceback, an HTTP 500).
MAX_DEPTH = 32


def check_depth(depth: int, position: int) -> None:
    """QuerySyntaxError at `position` when a group or negation there is nested deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise QuerySyntaxError(f"nested more than {MAX_DEPTH} levels deep (parentheses and NOT/-)", position)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0  # groups and negations open around the current token

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise QuerySyntaxError("empty query", 0)
        node = self.or_expr(None)
        tok = self.peek()
        if tok.kind == "RPAREN":
            raise QuerySyntaxError("unbalanced ')'", tok.pos)
        if tok.kind != "EOF":  # pragma: no cover - or_expr consumes every operand start
            raise QuerySyntaxError(f"unexpected {tok.kind}", tok.pos)
        return node

    def or_expr(self, scope: str | None) -> Node:
        children = [self.and_expr(scope)]
        while self.peek().kind == "OR":
            self.take()
            children.append(self.and_expr(scope))
        return children[0] if len(children) == 1 else Or(children)

    def and_expr(self, scope: str | None) -> Node:
        children = [self.unary(scope)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
                children.append(self.unary(scope))
            elif kind in _STARTS_OPERAND:
                children.append(self.unary(scope))
            else:
                break
        return children[0] if len(children) == 1 else And(children)

    def unary(self, scope: str | None) -> Node:
        tok = self.peek()
        if tok.kind in ("NOT", "MINUS"):
            self.take()
            self.depth += 1
            check_depth(self.depth, tok.pos)
            try:
                return Not(self.unary(scope))
            finally:
                self.depth -= 1
        if tok.kind == "PLUS":
            self.take()
            return self.primary(scope)
        return self.primary(scope)

    def primary(self, scope: str | None) -> Node:
        tok = self.take()
        if tok.kind == "LPAREN":
            return self.group(tok, scope)
        if tok.kind == "FIELDGROUP":
            if scope is not None:
                raise QuerySyntaxError(f"field '{tok.field}:' inside '{scope}:(...)'", tok.pos)
            return self.group(self.take(), tok.field)
        if tok.kind in ("WORD", "PHRASE"):
            return self.leaf(scope, tok.value, tok.phrase, tok.pos)
        if tok.kind == "FIELD":
            if scope is not None:
                raise QuerySyntaxError(f"field '{tok.field}:' inside '{scope}:(...)'", tok.pos)
            return self.leaf(tok.field, tok.value, tok.phrase, tok.pos)
        if tok.kind == "EOF":
            raise QuerySyntaxError("query ends where a term was expected", tok.pos)
        if tok.kind == "RPAREN":
            raise QuerySyntaxError("unexpected ')' where a term was expected", tok.pos)
        raise QuerySyntaxError(f"unexpected {tok.kind} where a term was expected", tok.pos)

    def group(self, lparen: _Tok, scope: str | None) -> Node:
        if self.peek().kind == "RPAREN":
            raise QuerySyntaxError("empty parentheses", lparen.pos)
        self.depth += 1
        check_depth(self.depth, lparen.pos)
        try:
            node = self.or_expr(scope)
        finally:
            self.depth -= 1
        close = self.take()
        if close.kind != "RPAREN":
            raise QuerySyntaxError("unclosed '('", lparen.pos)
        return node

    def leaf(self, scope: str | None, value: str, phrase: bool, pos: int) -> Node:
        field_name = scope
        if field_name in EXACT_FIELDS or field_name == "source":
            raw = value.strip()
            prefix = raw.endswith("*") and not phrase
            if prefix:
                raw = raw[:-1]
            if "*" in raw and not phrase:
                raise QuerySyntaxError("'*' is only allowed at the end of a value", pos)
            if not raw:
                raise QuerySyntaxError(f"empty value for '{field_name}:'", pos)
            if field_name == "source":
                return SourceMatch(fold(raw))
            return ExactMatch(field_name, raw.casefold(), prefix)
        pattern = self.word_pattern(value, phrase, pos)
        if field_name in NAME_FIELDS:
            return NameMatch(field_name, pattern, value)
        fields = (field_name,) if field_name in TEXT_FIELDS else TEXT_FIELDS
        return TextMatch(pattern, value, fields, phrase or len(pattern) > 1)

    @staticmethod
    def word_pattern(value: str, phrase: bool, pos: int) -> tuple[tuple[str, bool], ...]:
        if not phrase:
            stars = [m.start() for m in re.finditer(r"\*", value)]
            if value == "*" or value.startswith("*"):
                raise QuerySyntaxError("a wildcard needs a prefix ('negotiat*')", pos)
            if stars and stars != [len(value) - 1]:
                raise QuerySyntaxError("'*' is only allowed at the end of a term", pos + stars[0])
        folded = fold(value)
        pattern = tuple((m.group(1), bool(m.group(2))) for m in _QUERY_WORD.finditer(folded))
        if not pattern:
            what = "phrase" if phrase else "term"
            raise QuerySyntaxError(f"{what} {value!r} has no letters or digits", pos)
        return pattern


def parse_query(text: str) -> Query:
    """Parse a desk query; QuerySyntaxError(message, position) when it is malformed."""
    if not isinstance(text, str):
        raise QuerySyntaxError(f"query must be text, not {type(text).__name__}", 0)
    return Query(text, _Parser(text).parse())

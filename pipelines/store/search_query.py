"""What a user types in a search box, as an AST both stores render: FTS5 MATCH text for SQLite,
a bool query for Elasticsearch. One grammar, so the same query finds the same articles in both.

The grammar is forgiving: terms, "phrases", a trailing * for a prefix, AND/OR/NOT (upper case),
-word, parentheses, title:/headline:/text:/body: for a column. Stray operators are skipped, open
parentheses closed, other field:value parts (source:, topic: ... the filters' business) dropped,
and a bare negation ("NOT cricket" alone) dropped: FTS5 cannot express it, and both stores
must answer alike.

AST: ("word", value, prefix) | ("and", [nodes], [negated nodes]) | ("or", [nodes]) |
("field", column, node); None when nothing searchable is left.
"""

from __future__ import annotations

import re

_OPERATORS = ("AND", "OR", "NOT")
_COLUMN_ALIASES = {"title": "title", "headline": "title", "text": "text", "body": "text"}
_FIELD_RE = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)


def lex(query: str) -> list[tuple[str, str]]:
    """Split a user query into (kind, value): TERM, PREFIX, PHRASE, FIELD, NEG, AND, OR, NOT, (, )."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append((ch, ch))
            i += 1
            continue
        if ch == '"':
            end = query.find('"', i + 1)
            if end == -1:  # an unclosed quote runs to the end of the query
                end = n
            tokens.append(("PHRASE", query[i + 1:end]))
            i = end + 1
            continue
        j = i
        while j < n and not query[j].isspace() and query[j] not in '()"':
            j += 1
        word = query[i:j]
        i = j
        if word in _OPERATORS:
            tokens.append((word, word))
            continue
        if word.startswith("-") and len(word) > 1:
            tokens.append(("NEG", "-"))
            word = word.lstrip("-")
        field = _FIELD_RE.fullmatch(word)
        if field:
            tokens.append(("FIELD", field.group(1).lower()))
            word = field.group(2)
            if not word:
                continue  # the value follows: a phrase, a parenthesis, or nothing
        if word.endswith("*"):
            tokens.append(("PREFIX", word.rstrip("*")))
        else:
            tokens.append(("TERM", word))
    return tokens


class QueryParser:
    """Recursive descent over lex()'s tokens, emitting the AST of the module docstring."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def parse(self):
        parts = []
        while self.pos < len(self.tokens):
            node = self.parse_or()
            if node:
                parts.append(node)
            if self.peek() in (")", "OR", "AND", "NOT"):
                self.pos += 1
        return self.join_and(parts)

    def parse_or(self):
        alternatives = [self.parse_and()]
        while self.peek() == "OR":
            self.pos += 1
            alternatives.append(self.parse_and())
        alternatives = [a for a in alternatives if a]
        if not alternatives:
            return None
        return alternatives[0] if len(alternatives) == 1 else ("or", alternatives)

    def parse_and(self):
        positive, negative = [], []
        while True:
            kind = self.peek()
            if kind in (None, ")", "OR"):
                break
            if kind == "AND":
                self.pos += 1
                continue
            if kind in ("NOT", "NEG"):
                self.pos += 1
                node = self.parse_unary()
                if node:
                    negative.append(node)
                continue
            node = self.parse_unary()
            if node:
                positive.append(node)
        if not positive:
            return None  # a bare negation is dropped
        if not negative and len(positive) == 1:
            return positive[0]
        return ("and", positive, negative)

    def parse_unary(self):
        kind = self.peek()
        if kind is None or kind in _OPERATORS or kind == ")":
            return None
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if kind == "(":
            inner = self.parse_or()
            if self.peek() == ")":
                self.pos += 1
            return inner
        if kind == "NEG":
            return self.parse_unary()
        if kind == "FIELD":
            inner = self.parse_unary()
            column = _COLUMN_ALIASES.get(value)
            if inner is None or column is None:
                return None
            return ("field", column, inner)
        if not any(ch.isalnum() for ch in value):
            return None
        return ("word", value, kind == "PREFIX")

    @staticmethod
    def join_and(parts: list):
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ("and", parts, [])


def parse_query(user_query: str | None):
    """The AST of what a user typed; None when it has no searchable terms."""
    if not user_query:
        return None
    cleaned = user_query.replace("\x00", " ")
    if not cleaned.strip():
        return None
    return QueryParser(lex(cleaned)).parse()

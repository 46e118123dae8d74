"""What a user types in a search box, as an AST both stores render: FTS5 MATCH text for SQLite,
a bool query for Elasticsearch. One grammar, so the same query finds the same articles in both.

The grammar: terms, "phrases", a trailing * for a prefix, AND/OR/NOT (upper case), -word,
parentheses, title:/headline:/text:/body: for a column. A malformed query is an error, not a
guess: an unclosed '(' or quote, a stray ')', an operator without its term ("ceasefire AND") or a
field without a value raise pipelines.query.QuerySyntaxError naming the 0-based position, so a
typo never reads as "no news". Other field:value parts (source:, topic: ... the filters' business)
are dropped, terms without letters or digits ("–", "*") too, and a bare negation ("NOT cricket"
alone) is dropped: FTS5 cannot express it, and both stores must answer alike.

AST: ("word", value, prefix) | ("and", [nodes], [negated nodes]) | ("or", [nodes]) |
("field", column, node); None when nothing searchable is left.
"""

from __future__ import annotations

import re

from pipelines.query import QuerySyntaxError, check_depth

_OPERATORS = ("AND", "OR", "NOT")
_COLUMN_ALIASES = {"title": "title", "headline": "title", "text": "text", "body": "text"}
_FIELD_RE = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)


Token = tuple[str, str, int]  # (kind, value, 0-based position in the query)

# What may not directly follow an operator or a field: it needs a term of its own.
_NO_OPERAND = (None, ")", "AND", "OR")


def lex(query: str) -> list[Token]:
    """Split a user query into (kind, value, position): TERM, PREFIX, PHRASE, FIELD, NEG, AND, OR, NOT, (, ).

    An unclosed quote is a QuerySyntaxError at the quote."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append((ch, ch, i))
            i += 1
            continue
        if ch == '"':
            end = query.find('"', i + 1)
            if end == -1:
                raise QuerySyntaxError("unclosed quote", i)
            tokens.append(("PHRASE", query[i + 1:end], i))
            i = end + 1
            continue
        j = i
        while j < n and not query[j].isspace() and query[j] not in '()"':
            j += 1
        word, at = query[i:j], i
        i = j
        if word in _OPERATORS:
            tokens.append((word, word, at))
            continue
        if word == "-" and query[i:i + 1] == "(":  # "-(cricket OR hockey)"
            tokens.append(("NEG", "-", at))
            continue
        if word.startswith("-") and len(word) > 1:
            tokens.append(("NEG", "-", at))
            stripped = word.lstrip("-")
            at += len(word) - len(stripped)
            word = stripped
        field = _FIELD_RE.fullmatch(word)
        if field:
            tokens.append(("FIELD", field.group(1).lower(), at))
            at += len(field.group(1)) + 1
            word = field.group(2)
            if not word:
                continue  # the value follows: a phrase or a parenthesis (parse_unary checks)
        if word.endswith("*"):
            tokens.append(("PREFIX", word.rstrip("*"), at))
        else:
            tokens.append(("TERM", word, at))
    return tokens


class QueryParser:
    """Recursive descent over lex()'s tokens, emitting the AST of the module docstring; a malformed
    query raises QuerySyntaxError(message, position)."""

    def __init__(self, tokens: list[Token], length: int = 0):
        self.tokens = tokens
        self.pos = 0
        self.length = length  # where "the end of the query" is, for errors there
        self.depth = 0  # groups, negations and fields open around the current token (query.MAX_DEPTH)

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def where(self) -> int:
        return self.tokens[self.pos][2] if self.pos < len(self.tokens) else self.length

    def need_operand(self, after: Token) -> None:
        """after (an operator or a field) must be followed by a term, phrase or group."""
        kind = self.peek()
        if kind in _NO_OPERAND:
            what = "the query ends" if kind is None else f"{kind!r} follows"
            name = f"'{after[1]}:'" if after[0] == "FIELD" else after[0]
            raise QuerySyntaxError(f"{name} needs a term after it, but {what}", self.where())

    def parse(self):
        node = self.parse_or()
        if self.peek() == ")":
            raise QuerySyntaxError("unbalanced ')'", self.where())
        if self.peek() is not None:  # pragma: no cover - parse_or consumes everything else
            raise QuerySyntaxError(f"unexpected {self.peek()}", self.where())
        return node

    def parse_or(self):
        if self.peek() == "OR":
            raise QuerySyntaxError("OR needs a term before it", self.where())
        alternatives = [self.parse_and()]
        while self.peek() == "OR":
            operator = self.tokens[self.pos]
            self.pos += 1
            self.need_operand(operator)
            alternatives.append(self.parse_and())
        alternatives = [a for a in alternatives if a]
        if not alternatives:
            return None
        return alternatives[0] if len(alternatives) == 1 else ("or", alternatives)

    def parse_and(self):
        positive, negative = [], []
        if self.peek() == "AND":
            raise QuerySyntaxError("AND needs a term before it", self.where())
        while True:
            kind = self.peek()
            if kind in (None, ")", "OR"):
                break
            if kind in ("AND", "NOT", "NEG"):
                operator = self.tokens[self.pos]
                self.pos += 1
                if kind == "AND" and self.peek() == "NOT":
                    operator = self.tokens[self.pos]
                    kind = "NOT"
                    self.pos += 1
                self.need_operand(operator)
                if kind == "AND":
                    continue
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
        kind, value, at = self.tokens[self.pos]
        self.pos += 1
        if kind not in ("(", "NEG", "NOT", "FIELD"):
            return ("word", value, kind == "PREFIX") if any(ch.isalnum() for ch in value) else None
        self.depth += 1
        check_depth(self.depth, at)
        try:
            return self.parse_nested(kind, value, at)
        finally:
            self.depth -= 1

    def parse_nested(self, kind: str, value: str, at: int):
        """A group, a negation or a field: what nests (parse_unary has counted it)."""
        if kind == "(":
            if self.peek() == ")":
                raise QuerySyntaxError("empty parentheses", at)
            inner = self.parse_or()
            if self.peek() != ")":
                raise QuerySyntaxError("unclosed '('", at)
            self.pos += 1
            return inner
        if kind in ("NEG", "NOT"):
            self.need_operand((kind, value, at))
            return self.parse_unary()  # "title:-x", "title:NOT x": the field's own negation is dropped
        if kind == "FIELD":
            self.need_operand((kind, value, at))
            inner = self.parse_unary()
            column = _COLUMN_ALIASES.get(value)
            if inner is None or column is None:
                return None
            return ("field", column, inner)

    @staticmethod
    def join_and(parts: list):
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ("and", parts, [])


def parse_query(user_query: str | None):
    """The AST of what a user typed; None when it has no searchable terms (an empty query, "NOT x",
    "source:dawn"); QuerySyntaxError(message, position) when it is malformed."""
    if not user_query:
        return None
    cleaned = user_query.replace("\x00", " ")
    if not cleaned.strip():
        return None
    return QueryParser(lex(cleaned), len(cleaned)).parse()

"""Text folding and sentence splitting for the tagger.

Terms and articles are compared in a *folded* form: case-folded, accents and
Arabic-script diacritics stripped, Arabic/Persian letter variants unified,
every dash and whitespace run turned into one space.  Matching happens on the
folded string; `Folded` keeps the map back to the original string so evidence
offsets always point into the text the caller gave us.

Speed matters (thousands of articles a second), so the common case is done
with C-level string methods and a single regex pass.  Characters whose fold is
not exactly one character (soft hyphens, tatweel, decomposed accents, ß,
ligatures, an ellipsis...) are expanded one by one: found with str.find in
mostly-ASCII text, by a regex over the whole text otherwise.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Characters that separate words the same way a space does.
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_EXTRA_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
                "\u202f\u205f\u3000\u200c\u200d\u2028\u2029_/"
_DROP = "\u00ad\u0640\u200b\u200e\u200f\u2060\ufeff"  # soft hyphen, tatweel, zero-width, bidi marks
# Arabic-script letters written differently by Arabic, Urdu, Pashto and Dari keyboards.
_LETTER_VARIANTS = {
    "\u064a": "\u06cc",  # Arabic yeh -> Farsi yeh
    "\u0649": "\u06cc",  # alef maksura -> Farsi yeh
    "\u0643": "\u06a9",  # Arabic kaf -> keheh
    "\u06c1": "\u0647",  # Urdu heh goal -> heh
    "\u06d5": "\u0647",  # ae -> heh
    "\u0629": "\u0647",  # teh marbuta -> heh
    "\u06c3": "\u0647",  # teh marbuta goal -> heh
    "\u2019": "'", "\u2018": "'", "\u201b": "'", "\u02bc": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"',
}

# Letters whose mark is part of the letter (NFKD leaves them whole), folded as a reader would: Łódź =
# Lodz, Ørsted = Orsted, Æ = ae; dotless ı is also the one lower-case letter re.IGNORECASE equates with
# another. The one table for topic terms, articles and desk queries (pipelines/query.py).
LETTER_FOLDS = {"\u0131": "i", "\u00f8": "o", "\u0111": "d", "\u0142": "l", "\u0127": "h", "\u0167": "t",
                "\u00e6": "ae", "\u0153": "oe"}


def _fold_char(ch: str) -> str:
    if ch in _DASHES or ch in _EXTRA_SPACES or ch.isspace():
        return " "
    if ch in _DROP:
        return ""
    if "\uac00" <= ch <= "\ud7a3":
        return ch  # a Hangul syllable has no accent to strip; its jamo would only slow Korean text down
    decomposed = unicodedata.normalize("NFKD", ch)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return "".join(LETTER_FOLDS.get(c) or _LETTER_VARIANTS.get(c, c) for c in stripped)


def _build_tables() -> tuple[dict[str, str], str, str]:
    """One-to-one replacements (applied after str.lower) and the set of irregular characters."""
    one_to_one: dict[str, str] = {}
    irregular: list[str] = []
    for cp in range(0x10000):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        folded = _fold_char(ch)
        if len(ch.lower()) != 1 or len(folded) != 1:
            irregular.append(ch)
        elif folded != ch.lower():
            one_to_one[ch.lower()] = folded
    # Anything outside the BMP (emoji, rare scripts) is left as is: it never occurs in our terms.
    def char_class(chars: list[str]) -> str:
        return "".join(re.escape(c) for c in chars)

    return one_to_one, char_class(sorted(one_to_one)), char_class(irregular), {c: _fold_char(c) for c in irregular}


_ONE_TO_ONE, _ONE_CLASS, _IRREGULAR_CLASS, _IRREGULAR_FOLDS = _build_tables()
_ONE_RE = re.compile(f"[{_ONE_CLASS}]")
_IRREGULAR_RE = re.compile(f"[{_IRREGULAR_CLASS}]")
_IRREGULAR_RUN_RE = re.compile(f"[{_IRREGULAR_CLASS}]+")
# The commonest special characters, replaced by C-speed str.replace before the regex pass.
_COMMON = (("\n", " "), ("\u2019", "'"), ("\u201c", '"'), ("\u201d", '"'), ("\u2014", " "), ("\u2013", " "))


def _regular_fold(ch: str) -> str:
    return _ONE_TO_ONE.get(ch.lower(), ch.lower())


# The fast path folds the ASCII bytes of the UTF-8 text with one bytes.translate (other bytes stay).
_ASCII_FOLD = bytes(ord(_regular_fold(chr(c))) for c in range(128)) + bytes(range(128, 256))
_ASCII_BYTES = bytes(range(128))
# One-to-one characters whose replacement is itself replaced: str.replace one after the other would
# chain them, so text holding one takes the regex path, which replaces in one pass.
_CHAINED = frozenset(k for k, v in _ONE_TO_ONE.items() if v in _ONE_TO_ONE)


@dataclass(frozen=True)
class Folded:
    """A folded string plus the piecewise-linear map between folded and original offsets.

    `breaks` holds (folded_pos, original_pos) pairs where the offset shift changes; between two
    breaks the shift is constant.  Both directions are a bisect away.
    """

    text: str
    original: str
    _fold_pos: tuple[int, ...]
    _orig_pos: tuple[int, ...]

    def is_identity(self) -> bool:
        """True when folding kept every offset (no collapsed spaces, no expansions)."""
        return len(self._fold_pos) == 1 and len(self.text) == len(self.original)

    def to_original(self, pos: int) -> int:
        """Original offset of the folded character at `pos` (or of the end, for pos == len)."""
        if pos >= len(self.text):
            return len(self.original)
        i = bisect.bisect_right(self._fold_pos, pos) - 1
        return self._orig_pos[i] + (pos - self._fold_pos[i])

    def span_to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) covering the folded [start, end) (end exclusive, end > start)."""
        return self.to_original(start), self.to_original(end - 1) + 1

    def to_folded(self, pos: int) -> int:
        """Folded offset of the first folded character at or after original offset `pos`."""
        if pos >= len(self.original):
            return len(self.text)
        i = bisect.bisect_right(self._orig_pos, pos) - 1
        if i < 0:
            return self._fold_pos[0]  # dropped characters at the very start
        candidate = self._fold_pos[i] + (pos - self._orig_pos[i])
        next_fold = self._fold_pos[i + 1] if i + 1 < len(self._fold_pos) else len(self.text)
        return min(candidate, next_fold)


def fold(text: str) -> Folded:
    """Fold `text` for matching; see the module docstring for what equals what."""
    if text.isascii():  # every step keeps the length, as below
        one = text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
        fold_pos, orig_pos = [0], [0]
    elif (mostly := _fold_mostly_ascii(text)) is not None:
        one, fold_pos, orig_pos = mostly
    elif not _IRREGULAR_RE.search(text):
        # Every step keeps the length, so offsets hold until spaces are collapsed below.
        one = text.lower()
        for old, new in _COMMON:
            if old in one:
                one = one.replace(old, new)
        one = _ONE_RE.sub(_one_to_one, one)
        fold_pos, orig_pos = [0], [0]
    else:
        one, fold_pos, orig_pos = _fold_irregular(text)
    if "  " not in one:
        return Folded(one, text, tuple(fold_pos), tuple(orig_pos))
    return _collapse_spaces(one, text, fold_pos, orig_pos)


def _fold_mostly_ascii(text: str) -> tuple[str, list[int], list[int]] | None:
    """Fold text whose non-ASCII characters are unchanged by lower(); else None.

    News text is mostly ASCII: the regexes then run over the few other characters only, and the
    rest is one translate of the UTF-8 bytes plus one str.replace per distinct one-to-one character.
    Irregular characters (an ellipsis, a diacritic to drop) are found with str.find.
    """
    data = text.encode("utf-8", "surrogatepass")
    others = data.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")
    if others.lower() != others:
        return None
    replaced = set(_ONE_RE.findall(others))  # the regex skips the other characters at C speed
    if replaced & _CHAINED:
        return None
    one = data.translate(_ASCII_FOLD).decode("utf-8", "surrogatepass")
    for ch in replaced:
        one = one.replace(ch, _ONE_TO_ONE[ch])
    irregular = set(_IRREGULAR_RE.findall(others))
    if not irregular:
        return one, [0], [0]
    positions = []
    for ch in irregular:
        i = text.find(ch)
        while i >= 0:
            positions.append(i)
            i = text.find(ch, i + 1)
    positions.sort()
    return _expand_irregular(text, lambda a, b: one[a:b], [(i, i + 1) for i in positions])


def _one_to_one(m: re.Match[str]) -> str:
    return _ONE_TO_ONE[m.group()]


def _fold_irregular(text: str) -> tuple[str, list[int], list[int]]:
    """Fold text holding characters whose fold is not one character; regular runs stay fast."""
    return _expand_irregular(text, lambda a, b: _ONE_RE.sub(_one_to_one, text[a:b].lower()),
                             [m.span() for m in _IRREGULAR_RUN_RE.finditer(text)])


def _expand_irregular(text: str, regular: Callable[[int, int], str],
                      spans: list[tuple[int, int]]) -> tuple[str, list[int], list[int]]:
    """Fold `text`, given the fold of its regular characters text[a:b] (`regular(a, b)`) and the
    spans of its irregular ones, in order; returns the folded text and its breakpoints."""
    pieces: list[str] = []
    fold_pos, orig_pos = [0], [0]
    flen = 0
    last = 0
    for start, end in spans:
        chunk = regular(last, start)
        pieces.append(chunk)
        flen += len(chunk)
        for opos in range(start, end):
            replacement = _IRREGULAR_FOLDS[text[opos]]
            for k in range(1, len(replacement)):  # every char of an expansion maps back to the one original char
                fold_pos.append(flen + k)
                orig_pos.append(opos)
            pieces.append(replacement)
            flen += len(replacement)
            if fold_pos[-1] == flen:  # a dropped character: the break after the previous one moves on
                orig_pos[-1] = opos + 1
            else:
                fold_pos.append(flen)
                orig_pos.append(opos + 1)
        last = end
    pieces.append(regular(last, len(text)))
    return "".join(pieces), fold_pos, orig_pos


def _collapse_spaces(one: str, text: str, fold_pos: list[int], orig_pos: list[int]) -> Folded:
    """Turn each run of spaces into one, carrying the offset map along."""
    if len(fold_pos) == 1 and orig_pos[0] == 0 and len(one) == len(text):
        return _collapse_identity(one, text)

    def orig_of(p: int) -> int:
        i = bisect.bisect_right(fold_pos, p) - 1
        return orig_pos[i] + (p - fold_pos[i])

    runs: list[tuple[int, int]] = []  # dropped [s, e): all but the first space of each run
    n = len(one)
    i = one.find("  ")
    while i >= 0:
        j = i + 2
        while j < n and one[j] == " ":
            j += 1
        runs.append((i + 1, j))
        i = one.find("  ", j)
    # Old breakpoints and one new breakpoint after each dropped run, in folded order.
    points = sorted(set(fold_pos) | {e for _, e in runs if e < len(one)})
    new_fold: list[int] = []
    new_orig: list[int] = []
    pieces: list[str] = []
    removed = 0
    ri = 0
    last = 0
    for s, e in runs:
        pieces.append(one[last:s])
        last = e
    pieces.append(one[last:])
    for p in points:
        while ri < len(runs) and runs[ri][1] <= p:
            removed += runs[ri][1] - runs[ri][0]
            ri += 1
        if ri < len(runs) and runs[ri][0] <= p < runs[ri][1]:
            continue  # inside a dropped run
        new_fold.append(p - removed)
        new_orig.append(orig_of(p))
    return Folded("".join(pieces), text, tuple(new_fold), tuple(new_orig))


def _collapse_identity(one: str, text: str) -> Folded:
    """_collapse_spaces for the common case where `one` is offset-for-offset the original."""
    pieces: list[str] = []
    fold_pos, orig_pos = [0], [0]
    n = len(one)
    removed = 0
    last = 0
    i = one.find("  ")
    while i >= 0:
        j = i + 2
        while j < n and one[j] == " ":
            j += 1
        pieces.append(one[last:i + 1])
        removed += j - i - 1
        fold_pos.append(j - removed)
        orig_pos.append(j)
        last = j
        i = one.find("  ", j)
    pieces.append(one[last:])
    return Folded("".join(pieces), text, tuple(fold_pos), tuple(orig_pos))


def fold_term(term: str) -> str:
    """Folded form of a configured term (stripped, single spaces)."""
    return fold(term).text.strip()


def fold_pattern(pattern: str) -> str:
    """Fold only the non-ASCII letters of a regex, so escapes such as \\S or \\B keep their meaning."""
    return "".join(ch if ch.isascii() else _fold_char(ch) for ch in pattern)


# --- sentences -----------------------------------------------------------------------------------

_PUNCT = ".!?\u06d4\u061f"
_CLOSERS = "\"'\u201d\u2019)]"
# Chinese and Japanese full stops end a sentence with no space after them; their closing quotes follow.
_CJK_PUNCT = "\u3002\uff01\uff1f"
_CJK_CLOSERS = "\u300d\u300f\u201d\u2019\uff09"
# A newline; a CJK full stop and the closers after it; or a run of end punctuation and closing
# quotes/brackets followed by whitespace or the end; then the whitespace after it (group 1).  _END_RE
# is that definition (the tests hold the search to it).
_END_TAIL = (f"(?:(?<=\\n)|(?<=[{_CJK_PUNCT}])[{_CJK_PUNCT}{_CJK_CLOSERS}]*"
             f"|[{re.escape(_PUNCT)}]*[{re.escape(_CLOSERS)}]*(?=\\s|\\Z))(\\s*)")
_END_RE = re.compile(f"[\\n{re.escape(_PUNCT)}{_CJK_PUNCT}]{_END_TAIL}")
# What the search uses: the same pattern once per end character. A pattern that starts with one literal
# character is searched for at C speed; one that starts with a character class, like _END_RE, is tried
# character by character.
_END_BY_CHAR = {ch: re.compile(re.escape(ch) + _END_TAIL) for ch in "\n" + _PUNCT + _CJK_PUNCT}
_SPACES_RE = re.compile(r"\s*")
_TITLES = frozenset("mr mrs ms dr gen lt col maj capt sgt st prof gov sen rep brig no nos vs mt ft".split())
_MONTHS = frozenset("jan feb mar apr jun jul aug sep sept oct nov dec".split())
_LONGEST_ABBREVIATION = max(len(word) for word in _TITLES | _MONTHS)


def split_sentences(text: str, limit: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans [start, end) of `text`, whitespace trimmed; newlines always end a sentence.

    A sentence ends at . ! ? (Latin or Arabic script) followed by whitespace, quotes and brackets
    included, or at a Chinese or Japanese full stop (no space follows those); abbreviations, initials and a lower-case continuation do not end one.  With `limit`,
    stop after that many sentences (the lead is all development detection needs).
    """
    spans: list[tuple[int, int]] = []
    start = _SPACES_RE.match(text).end()
    for m in _sentence_ends(text, start):
        i = m.start()
        if text[i] == "." and "\n" not in m.group(1) and not _ends_sentence(text, i, m.end()):
            continue
        e = m.start(1)
        while e > start and text[e - 1].isspace():
            e -= 1
        if e > start:
            spans.append((start, e))
            if limit is not None and len(spans) >= limit:
                return spans
        start = m.end()
    e = len(text)
    while e > start and text[e - 1].isspace():
        e -= 1
    if e > start:
        spans.append((start, e))
    return spans


def _sentence_ends(text: str, pos: int) -> Iterable[re.Match[str]]:
    """What _END_RE.finditer(text, pos) finds, searched for one end character at a time.

    A match of one character's pattern that starts inside another's match ends where that one ends
    (the rest of both is the same run of end punctuation, closers and spaces), so dropping such
    matches leaves exactly the matches of the one pattern.
    """
    patterns = [rx for ch, rx in _END_BY_CHAR.items() if ch in text]
    if len(patterns) == 1:
        return patterns[0].finditer(text, pos)
    found = [m for rx in patterns for m in rx.finditer(text, pos)]
    found.sort(key=re.Match.start)
    ends = []
    last = pos
    for m in found:
        if m.start() >= last:
            ends.append(m)
            last = m.end()
    return ends


def _ends_sentence(text: str, dot: int, after: int) -> bool:
    """Whether the dot at `dot` ends a sentence: abbreviations, initials and lower-case follow-ons do not."""
    following = text[after:after + 1]
    if not following or following.islower():
        return not following
    longer = dot - _LONGEST_ABBREVIATION - 1
    if longer >= 0 and text[longer:dot].replace(".", "a").isalpha():
        return True  # the word before the dot is longer than any abbreviation
    space = text.rfind(" ", max(0, dot - 7), dot)
    if space >= 0 and dot - space > 6 and "." not in text[space:dot]:
        return True  # a long plain word before the dot: no abbreviation or initial
    j = dot
    while j > 0 and (text[j - 1].isalpha() or text[j - 1] == "."):
        j -= 1
    word = text[j:dot].lower()
    if word in _TITLES:
        return False
    if word in _MONTHS and following.isdigit():
        return False
    if len(word) == 1 and word.isalpha() and following.isupper():
        return False  # an initial: "J. Smith"
    return True


# --- control characters ----------------------------------------------------------------------------
# Feed and page text is printed to terminals (console channel, newsmon search/alerts/extract): an
# escape sequence in a title could retitle the window (OSC 0), clear the screen (CSI 2J), plant a
# hyperlink or write to the clipboard (OSC 52). Whole ESC/CSI/OSC sequences are dropped, then any
# control character left. Each pattern starts on a control character its body cannot contain, so
# matching stays linear however many unterminated sequences a text holds.
_ESCAPE_SEQUENCES = re.compile(
    "(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase
    "|(?:\x1b[\\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x90\x98\x9b-\x9f]{0,4096}(?:\x07|\x1b\\\\|\x9c)"  # OSC/DCS/PM/APC
    "|\x1b[ -/]{0,4}[0-~]"  # other ESC sequences (charset switches, RIS full reset)
)
_CONTROL_CHARS = "".join(map(chr, [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]))
_HAS_CONTROL = re.compile(f"[{re.escape(_CONTROL_CHARS)}]")
_ONE_LINE_TABLE = str.maketrans({c: (" " if c in "\t\n\v\f\r" else None) for c in _CONTROL_CHARS})
_MULTILINE_TABLE = str.maketrans({c: ("\n" if c in "\v\f\r" else None) for c in _CONTROL_CHARS
                                  if c not in "\t\n"})


def strip_controls(text: str | None, *, multiline: bool = False) -> str:
    """Third-party text without C0/C1 control characters (and without the escape sequences they start).

    One-line fields (titles, names, URLs): tab, CR, LF, VT and FF become a space. multiline (article
    bodies): tab and LF stay, CR LF and a lone CR become LF, VT and FF too. Text without controls
    is returned as is (the common case costs one regex search)."""
    if not text:
        return ""
    if _HAS_CONTROL.search(text) is None:
        return text
    if "\x1b" in text or any(c in text for c in "\x90\x98\x9b\x9d\x9e\x9f"):
        text = _ESCAPE_SEQUENCES.sub("", text)
    if multiline:
        return text.replace("\r\n", "\n").translate(_MULTILINE_TABLE)
    return text.translate(_ONE_LINE_TABLE)

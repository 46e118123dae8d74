"""Who is who among documents: canonical URLs and ids, exact-text hashes, near-duplicate story keys.

- canonical_url/doc_id: the same page reached through a tracking link, another
  parameter order or a fragment gets the same id, so re-polling is harmless.
- content_hash: the same text under two URLs (syndication, http/https) is caught exactly.
- story_keys: MinHash (one-permutation hashing) + LSH band keys; copies and light rewrites of one wire story
  share a key, different stories on the same subject almost never do.
"""

from __future__ import annotations

import functools
import hashlib
import re
import struct
import unicodedata
from urllib.parse import urlsplit, urlunsplit

# --- canonical URLs -------------------------------------------------------------------------

# Query parameters that only say how a reader arrived (campaign, click and share trackers).
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
    "li_fat_id", "igshid", "igsh", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok",
    "ref", "ref_src", "ref_url", "referrer", "cmpid", "cmp", "ocid", "spm", "share", "ito", "smid",
    "smtyp", "sr_share", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3",
    "at_custom4", "at_ptr_name", "at_link_id", "at_link_origin", "at_link_type", "at_bbc_team",
    "at_format", "at_link", "guccounter", "guce_referrer", "guce_referrer_sig", "__twitter_impression",
    "s_cid", "wt.mc_id", "oly_enc_id", "oly_anon_id", "vero_id", "rb_clickid", "soc_src", "soc_trk",
})
TRACKING_PREFIXES = ("utm_", "ns_", "pk_", "hsa_", "itm_")

_DEFAULT_PORTS = {"http": "80", "https": "443", "ftp": "21", "ws": "80", "wss": "443"}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = "!$&'()*+,;="
_PATH_SAFE = _UNRESERVED | frozenset(_SUB_DELIMS + ":@/")
# inside a query component "&" and "=" are structure, so they stay encoded when they were
_QUERY_PART_SAFE = _UNRESERVED | frozenset("!$'()*+,;:@/?")
_HEX = frozenset("0123456789abcdefABCDEF")


def canonical_url(url: str) -> str:
    """One spelling per page: lower-case scheme/host, no default port, fragment or tracking params.

    Sorted query, normalised percent-encoding, "/" for an empty path, punycode hosts.
    "www." is kept: www.example.com and example.com are different hosts that can serve
    different things (and some sites' bare domain redirects elsewhere); duplicates across
    them are still caught by content_hash and story_keys. The scheme is kept for the same
    reason. Idempotent: canonical_url(canonical_url(u)) == canonical_url(u).
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced "[" or "]" in the host: encode them, then it parses
        return canonical_url(url.replace("[", "%5B").replace("]", "%5D"))
    scheme = parts.scheme.lower()
    if not parts.netloc:
        # not a URL with a host (relative, mailto:, junk): nothing safe to normalise, keep as given
        return url
    netloc = _canonical_netloc(parts.netloc, scheme)
    if not netloc or netloc.startswith((":", "@")) or "@:" in netloc or netloc.endswith("@"):
        return url  # no host left ("http://../x"): junk, kept as given
    path = _remove_dot_segments(_encode(parts.path, _PATH_SAFE)) or "/"
    return urlunsplit((scheme, netloc, path, _canonical_query(parts.query), ""))


def _canonical_netloc(netloc: str, scheme: str) -> str:
    userinfo, _, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal
        host, _, rest = hostport.partition("]")
        host, port = host + "]", rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    host = host.lower().rstrip(".")
    if not host.startswith("["):
        host = _encode(_idna(host), _UNRESERVED | frozenset(_SUB_DELIMS))
        # decoding "%41" gives "A": lower-case again, outside the escapes
        host = re.sub(r"%[0-9A-F]{2}|[^%]+", lambda m: m.group(0) if m.group(0)[0] == "%" else m.group(0).lower(), host)
    if port.isascii() and port.isdigit():  # "²".isdigit() is True, int("²") raises
        port = str(int(port))
        if _DEFAULT_PORTS.get(scheme) == port:
            port = ""
    else:
        port = _encode(port, _UNRESERVED)  # not a port at all; kept, but safely spelled
    result = host + (f":{port}" if port else "")
    return f"{_encode(userinfo, _UNRESERVED | frozenset(_SUB_DELIMS + ':'))}@{result}" if userinfo else result


def _idna(host: str) -> str:
    """Non-ASCII labels to punycode ("xn--"), label by label so one bad label spoils nothing."""
    if host.isascii():
        return host
    labels = []
    for label in host.split("."):
        if label.isascii():
            labels.append(label)
            continue
        try:
            labels.append(label.encode("idna").decode("ascii"))
        except UnicodeError:
            labels.append(_encode(label, _UNRESERVED))
    return ".".join(labels)


def _canonical_query(query: str) -> str:
    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        key, has_value, value = piece.partition("=")
        key = _encode(key, _QUERY_PART_SAFE)
        if _is_tracking(key):
            continue
        pairs.append(f"{key}={_encode(value, _QUERY_PART_SAFE)}" if has_value else key)
    return "&".join(sorted(pairs))


def _is_tracking(encoded_key: str) -> bool:
    name = _decode_unreserved(encoded_key).lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _decode_unreserved(text: str) -> str:
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def _encode(text: str, safe: frozenset[str]) -> str:
    """Percent-encoding normalised: escapes of unreserved chars decoded, other escapes upper-case,
    unsafe characters (spaces, non-ASCII as UTF-8) encoded, a stray "%" encoded as %25."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            decoded = chr(int(text[i + 1:i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + text[i + 1:i + 3].upper())
            i += 3
            continue
        if ch in safe and ch != "%":
            out.append(ch)
        else:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8", errors="surrogatepass"))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: "/a/./b/../c" -> "/a/c"."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result


def doc_id(canonical: str) -> str:
    """Document id: the first 32 hex chars of sha256 of the canonical URL (canonicalised again, harmlessly)."""
    return hashlib.sha256(canonical_url(canonical).encode("utf-8")).hexdigest()[:32]


# --- exact text identity --------------------------------------------------------------------

_APOSTROPHES = re.compile(r"(?<=\w)['\u2019\u02bc](?=\w)")


class _CharFold(dict):
    """str.translate table filled as characters are met: combining marks (Mn) dropped; punctuation,
    symbols, separators and control characters (P, S, Z, C) as a space; anything else kept. One C-level
    translate instead of a Python loop per character."""

    def __missing__(self, code: int) -> str:
        category = unicodedata.category(chr(code))
        folded = "" if category == "Mn" else " " if category[0] in "PSZC" else chr(code)
        if len(self) < 65_536:  # a page listing every code point can't grow the table without bound
            self[code] = folded
        return folded


_CHAR_FOLD = _CharFold()


@functools.lru_cache(maxsize=4)
def normalise_text(text: str) -> str:
    """Casefolded, accents folded (NFKD minus combining marks), punctuation and symbols as spaces,
    whitespace collapsed. In-word apostrophes vanish ("don't" -> "dont") so curly and straight
    quotes agree. Cached for the last few texts: content_hash and story_keys normalise the same
    article text one after the other."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    decomposed = _APOSTROPHES.sub("", decomposed)
    return " ".join(decomposed.translate(_CHAR_FOLD).casefold().split())


def content_hash(text: str) -> str:
    """sha256 (32 hex) of the normalised text: the same article re-served with other markup or quotes."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()[:32]


# --- near-duplicate stories (MinHash + LSH) -------------------------------------------------

SHINGLE_WORDS = 4
BANDS = 85
ROWS = 3  # a band of 3 values: P(shared key) ~ 0.90 at Jaccard 0.3, ~ 0.04 at 0.08, ~ 0.01 at 0.05
NUM_BINS = BANDS * ROWS  # values in a signature
MIN_WORDS = 12  # fewer words than this (a bare headline) gets no keys: too little to tell stories apart
_PERSON = b"newsmon-story"  # blake2b personalisation: fixed, so hashes agree across processes and releases


def _grams(title: str, text: str) -> tuple[int, set[bytes]]:
    """(word count, distinct word SHINGLE_WORDS-grams) of the normalised title + text."""
    # normalising title and text apart gives the words of normalising "title\ntext" (nothing in
    # normalise_text reaches across a line break) and shares the text's with content_hash
    # (normalised text is words joined by single spaces, so its UTF-8 splits into the words' UTF-8)
    words = normalise_text(title or "").encode("utf-8").split() + normalise_text(text or "").encode("utf-8").split()
    if len(words) < SHINGLE_WORDS:
        return len(words), ({b" ".join(words)} if words else set())
    shifted = (words[i:] for i in range(SHINGLE_WORDS))  # zip stops at the shortest: the last whole gram
    return len(words), set(map(b" ".join, zip(*shifted, strict=False)))


def shingles(title: str, text: str) -> set[bytes]:
    """The distinct word shingles MinHash works on (for measuring true Jaccard similarity)."""
    return _grams(title, text)[1]


def minhash(title: str, text: str) -> list[int]:
    """NUM_BINS MinHash values by one-permutation hashing; empty when there is nothing to hash."""
    return _signature(_grams(title, text)[1])


def _signature(grams: set[bytes]) -> list[int]:
    """One-permutation hashing (Li, Owen & Zhang 2012) with optimal densification (Shrivastava 2017).

    Each shingle is hashed once (64-bit blake2b); the hash picks its bin (hash % NUM_BINS) and the
    smallest hash in a bin is that bin's value. Classic MinHash hashed every shingle NUM_BINS times,
    which in pure Python cost ~30 ms an article; this is O(shingles + bins). An empty bin copies the
    value of the first non-empty bin along its own fixed probe order, so two documents agree on a
    bin with about their Jaccard similarity as probability, as with classic MinHash. Short texts
    (under ~100 words) leave most bins empty, and their estimates are coarser than classic MinHash.
    """
    if not grams:
        return []
    hasher = hashlib.blake2b(digest_size=8, person=_PERSON)  # copying a keyed state beats building one
    digests = []
    for gram in grams:
        one = hasher.copy()
        one.update(gram)
        digests.append(one.digest())
    hashes = sorted(struct.unpack(f"<{len(digests)}Q", b"".join(digests)), reverse=True)
    lowest = {h % NUM_BINS: h for h in hashes}  # descending, so the last (kept) write per bin is its minimum
    if len(lowest) == NUM_BINS:
        return [lowest[b] for b in range(NUM_BINS)]
    return [lowest[b] if b in lowest else lowest[next(p for p in _probe_order(b) if p in lowest)]
            for b in range(NUM_BINS)]


@functools.cache
def _probe_order(bin_index: int) -> tuple[int, ...]:
    """A fixed pseudo-random order of all bins, where empty bin `bin_index` looks for a value to copy."""
    def rank(other: int) -> bytes:
        return hashlib.blake2b(f"{bin_index}:{other}".encode(), digest_size=8, person=_PERSON).digest()
    return tuple(sorted(range(NUM_BINS), key=rank))


def warm_caches() -> None:
    """Compute every bin's probe order now: ~65,000 hashes, 0.05-0.15 s once a process, otherwise
    paid along the first short texts (benchmarks call this in their warm-up)."""
    for bin_index in range(NUM_BINS):
        _probe_order(bin_index)


def story_keys(title: str, text: str) -> list[str]:
    """LSH band keys "b{band}:{hex}"; two documents sharing any key belong to one story."""
    word_count, grams = _grams(title, text)
    if word_count < MIN_WORDS:
        return []
    signature = _signature(grams)
    keys = []
    for band in range(BANDS):
        chunk = signature[band * ROWS:(band + 1) * ROWS]
        digest = hashlib.blake2b(struct.pack(f"<{ROWS}Q", *chunk), digest_size=8).hexdigest()
        keys.append(f"b{band}:{digest}")
    return keys


def similarity(a: list[int] | list[str], b: list[int] | list[str]) -> float:
    """Estimated Jaccard similarity from two MinHash signatures, or the share of equal band keys."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def new_story_id(article_id: str) -> str:
    """A story id for an article that starts a story: "s" + 16 hex chars."""
    return "s" + hashlib.sha256(f"story:{article_id}".encode()).hexdigest()[:16]

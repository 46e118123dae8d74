"""Canonical URLs, ids, text hashes and near-duplicate story keys, on our own invented stories."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import identity
from pipelines.identity import (
    BANDS,
    NUM_BINS,
    canonical_url,
    content_hash,
    doc_id,
    minhash,
    new_story_id,
    normalise_text,
    shingles,
    similarity,
    story_keys,
)

REPO = Path(__file__).resolve().parents[1]
STORIES = Path(__file__).parent / "fixtures" / "pages" / "stories"


def story(name: str) -> tuple[str, str]:
    headline, body = (STORIES / f"{name}.txt").read_text(encoding="utf-8").split("\n", 1)
    return headline, body


def share_a_key(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return bool(set(story_keys(*a)) & set(story_keys(*b)))


# --- canonical_url -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("HTTP://News.Example.COM/World/Story", "http://news.example.com/World/Story"),
    ("https://news.example.com:443/a", "https://news.example.com/a"),
    ("http://news.example.com:80/a", "http://news.example.com/a"),
    ("https://news.example.com:8443/a", "https://news.example.com:8443/a"),
    ("https://news.example.com", "https://news.example.com/"),
    ("https://news.example.com/a?", "https://news.example.com/a"),
    ("https://news.example.com/a#comments", "https://news.example.com/a"),
    ("https://news.example.com/a?#", "https://news.example.com/a"),
    ("https://news.example.com/a?z=1&b=2&a=3", "https://news.example.com/a?a=3&b=2&z=1"),
    ("https://news.example.com/a?utm_source=tw&utm_medium=social&id=7&fbclid=XYZ", "https://news.example.com/a?id=7"),
    ("https://news.example.com/a?gclid=1&dclid=2&mc_cid=3&mc_eid=4&igshid=5&ref=6&ref_src=7&cmpid=8",
     "https://news.example.com/a"),
    ("https://news.example.com/a?ocid=1&_ga=2&yclid=3&msclkid=4&spm=5&share=6&at_medium=7&at_campaign=8",
     "https://news.example.com/a"),
    ("https://news.example.com/a?CMP=share_btn&ito=9&ns_source=a&ns_mchannel=b&ns_campaign=c&UTM_Term=x&p=2",
     "https://news.example.com/a?p=2"),
    ("https://news.example.com/%7Edesk/caf%c3%a9", "https://news.example.com/~desk/caf%C3%A9"),
    ("https://news.example.com/news/café ceasefire", "https://news.example.com/news/caf%C3%A9%20ceasefire"),
    ("https://news.example.com/a%2Fb", "https://news.example.com/a%2Fb"),  # an encoded slash stays encoded
    ("https://news.example.com/a/./b/../c", "https://news.example.com/a/c"),
    ("https://news.example.com/Story/", "https://news.example.com/Story/"),  # trailing slash kept
    ("https://bücher.example/nachrichten", "https://xn--bcher-kva.example/nachrichten"),
    ("https://NEWS.example.com./a", "https://news.example.com/a"),
    ("  https://news.example.com/a  ", "https://news.example.com/a"),
    ("https://news.example.com/search?q=kabul%20talks&page=2", "https://news.example.com/search?page=2&q=kabul%20talks"),
    ("https://news.example.com/a?x=1&&y=2", "https://news.example.com/a?x=1&y=2"),
    ("https://[2001:DB8::1]:443/a", "https://[2001:db8::1]/a"),
])
def test_canonical_url(raw, expected):
    assert canonical_url(raw) == expected


def test_www_is_kept_because_it_is_another_host():
    assert canonical_url("https://www.example.com/a") != canonical_url("https://example.com/a")


def test_tracking_param_names_inside_values_are_kept():
    assert canonical_url("https://e.example/a?topic=utm_source") == "https://e.example/a?topic=utm_source"


def test_encoded_query_separators_stay_encoded():
    # "a%26b" is one value containing "&"; decoding it would invent a parameter
    assert canonical_url("https://e.example/s?q=a%26b%3Dc") == "https://e.example/s?q=a%26b%3Dc"


def test_not_absolute_urls_are_kept_as_given():
    assert canonical_url("/relative/path?b=1&a=2") == "/relative/path?b=1&a=2"
    assert canonical_url("") == ""
    assert canonical_url("http://[broken") == canonical_url(canonical_url("http://[broken"))


_URL_PIECES = st.sampled_from(list("abcXYZ09-._~:/?#[]@!$&'()*+,;=% é中\t") + [
    "%2F", "%41", "%zz", "%e9", "utm_source=x", "www.", "http://", "https://", ":80", ":443", "xn--", "..", "./",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_URL_PIECES, max_size=25).map("".join), st.text(max_size=20))
def test_canonical_url_is_idempotent(pieces, text):
    for url in (pieces, "http://" + pieces, "https://Ex.example/" + pieces, "https://e.example/?" + text, text):
        once = canonical_url(url)
        assert canonical_url(once) == once


# --- doc_id ----------------------------------------------------------------------------------

def test_doc_id_is_32_hex_and_equal_for_spellings_of_one_page():
    a = doc_id(canonical_url("https://news.example.com/a?utm_source=x#top"))
    b = doc_id(canonical_url("HTTPS://NEWS.example.com:443/a"))
    assert re.fullmatch(r"[0-9a-f]{32}", a)
    assert a == b
    assert a != doc_id(canonical_url("https://news.example.com/b"))


def test_doc_id_is_sha256_of_the_canonical_url():
    import hashlib

    canonical = "https://news.example.com/a"
    assert doc_id(canonical) == hashlib.sha256(canonical.encode()).hexdigest()[:32]


# --- normalise_text / content_hash --------------------------------------------------------------

def test_normalise_text_folds_case_accents_punctuation_and_space():
    assert normalise_text("  Türkiye’s   MEDIATORS —\tmet in Doha!\n") == "turkiyes mediators met in doha"
    assert normalise_text("Café, crème; déjà-vu.") == "cafe creme deja vu"
    assert normalise_text("") == ""


def _normalise_char_by_char(text: str) -> str:
    """The rule normalise_text implements with a cached str.translate table, one character at a time."""
    decomposed = re.sub(r"(?<=\w)['\u2019\u02bc](?=\w)", "", unicodedata.normalize("NFKD", text))
    kept = []
    for ch in decomposed:
        category = unicodedata.category(ch)
        if category != "Mn":
            kept.append(" " if category[0] in "PSZC" else ch)
    return " ".join("".join(kept).casefold().split())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=60)
       | st.text(alphabet=st.sampled_from("aZé’'-  \t\u0301\u00a0\u2028ﬁ½①Ⅻ—“”中ß"), max_size=40))
def test_normalise_text_equals_the_character_rule(text):
    assert normalise_text(text) == _normalise_char_by_char(text)


def test_content_hash_ignores_markup_level_differences():
    _, body = story("talks_wire")
    restyled = body.replace("'", "\u2019").replace("\n\n", "\n").upper()
    assert content_hash(body) == content_hash(restyled)
    assert re.fullmatch(r"[0-9a-f]{32}", content_hash(body))


def test_content_hash_differs_for_a_changed_word():
    _, body = story("talks_wire")
    assert content_hash(body) != content_hash(body.replace("seven hours", "eight hours"))


# --- story keys ----------------------------------------------------------------------------------

NEAR_DUPLICATES = [
    ("talks_wire", "talks_syndicated"),  # other headline, agency tagline added
    ("talks_wire", "talks_new_intro"),  # new intro sentence and headline, last paragraph trimmed
    ("talks_wire", "talks_rewrite"),  # words swapped throughout, a sentence dropped, new headline
    ("talks_syndicated", "talks_new_intro"),
    ("talks_syndicated", "talks_rewrite"),
]
SAME_TOPIC_OTHER_STORIES = ["talks_wire", "briefing_stalled", "crossing_reopens", "refugees_return", "cricket_final"]


@pytest.mark.parametrize("a, b", NEAR_DUPLICATES)
def test_near_duplicates_share_a_story_key(a, b):
    assert share_a_key(story(a), story(b))


@pytest.mark.parametrize("a, b", list(itertools.combinations(SAME_TOPIC_OTHER_STORIES, 2)))
def test_different_stories_share_no_key(a, b):
    assert not share_a_key(story(a), story(b))


def test_programmatic_edits_of_one_story_mostly_keep_a_key():
    """Cut the story at different points and swap intro sentences: 20 variants of our wire story."""
    headline, body = story("talks_wire")
    sentences = re.split(r"(?<=[.!?])\s+", body)
    variants = []
    for cut in range(1, 11):
        trimmed = " ".join(sentences[: len(sentences) - cut % 4 - 1])
        variants.append((f"Variant headline {cut}", f"An opening line written for variant number {cut}. {trimmed}"))
        swapped = sentences[:]
        swapped[cut % len(swapped)] = f"A replacement sentence number {cut} about something else entirely."
        variants.append((headline, " ".join(swapped[1:])))
    kept = sum(share_a_key((headline, body), v) for v in variants)
    assert kept >= 18


def test_story_keys_format_and_determinism():
    keys = story_keys(*story("crossing_reopens"))
    assert len(keys) == BANDS
    assert all(re.fullmatch(r"b\d{1,2}:[0-9a-f]{16}", key) for key in keys)
    assert keys == story_keys(*story("crossing_reopens"))
    assert len({key.split(":")[0] for key in keys}) == BANDS


def test_story_keys_agree_across_processes():
    """Keys are stored and matched later by other workers: nothing may depend on Python's per-process
    hash() seed (set iteration order included)."""
    texts = [story(name) for name in ("talks_wire", "cricket_final")]
    script = ("import json, sys; from pipelines.identity import story_keys, minhash; "
              "texts = json.load(sys.stdin); "
              "print(json.dumps([[story_keys(*t), minhash(*t)] for t in texts]))")
    for seed in ("1", "2"):
        result = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True,
                                text=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert json.loads(result.stdout) == [[story_keys(*t), minhash(*t)] for t in texts]


def _shingle_hash(gram: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(gram, digest_size=8, person=identity._PERSON).digest(), "little")


@pytest.mark.parametrize("name", ["talks_wire", "cricket_final"])
def test_minhash_is_one_permutation_hashing_with_densification(name):
    """Each bin holds the smallest hash that falls in it; an empty bin copies the first filled bin on its
    probe order (a full-length text and its first 15 words, which leave most bins empty)."""
    headline, body = story(name)
    for text in (body, " ".join(body.split()[:15])):
        grams = shingles(headline, text)
        by_bin: dict[int, list[int]] = {}
        for gram in grams:
            by_bin.setdefault(_shingle_hash(gram) % NUM_BINS, []).append(_shingle_hash(gram))
        signature = minhash(headline, text)
        assert len(signature) == NUM_BINS
        for bin_index, value in enumerate(signature):
            source = bin_index if bin_index in by_bin else next(b for b in identity._probe_order(bin_index)
                                                                 if b in by_bin)
            assert value == min(by_bin[source])
        assert len(by_bin) < NUM_BINS  # the densification path ran


def test_a_short_brief_and_its_credited_copy_share_a_key_unlike_another_brief():
    brief = ("Pakistan and Afghanistan reopened the Torkham crossing on Monday after a six-day closure, "
             "border officials said, and hundreds of trucks carrying fruit and cement began to move again.")
    copy = "Torkham reopens. " + brief + " Reporting by our correspondent in Peshawar."
    other = ("Afghan refugees returning from Pakistan crowded the Torkham crossing on Monday, aid workers said, "
             "as the deadline for undocumented migrants to leave drew near.")
    assert share_a_key(("", brief), ("", copy))
    assert not share_a_key(("", brief), ("", other))


def test_too_short_text_gets_no_keys():
    assert story_keys("Live updates", "") == []
    assert story_keys("", "Talks resume in Istanbul today.") == []


def test_similarity_estimates_jaccard():
    wire, rewrite = story("talks_wire"), story("talks_rewrite")
    a, b = shingles(*wire), shingles(*rewrite)
    true_jaccard = len(a & b) / len(a | b)
    estimate = similarity(minhash(*wire), minhash(*rewrite))
    assert abs(estimate - true_jaccard) < 0.12
    assert similarity(minhash(*wire), minhash(*story("cricket_final"))) < 0.05
    assert similarity([], []) == 0.0


def test_new_story_id():
    sid = new_story_id("0123456789abcdef0123456789abcdef")
    assert re.fullmatch(r"s[0-9a-f]{16}", sid)
    assert sid == new_story_id("0123456789abcdef0123456789abcdef")
    assert sid != new_story_id("fedcba9876543210fedcba9876543210")

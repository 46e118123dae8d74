"""Tagger: matching (variants, accents, boundaries, scripts), offsets, entities, places, relevance."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.tag import Tagger, analyse, load_taxonomy, load_taxonomy_file
from pipelines.textnorm import fold, fold_pattern, fold_term, split_sentences

CONFIG = Path(__file__).resolve().parent.parent / "config" / "topics.yaml"


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy_file(str(CONFIG))


@pytest.fixture(scope="module")
def tagger(taxonomy):
    return Tagger(taxonomy)


def _check_offsets(result, title: str, text: str) -> None:
    """Every evidence span must slice exactly its text out of the original field."""
    for hit in result.topics:
        for ev in hit.evidence:
            source = title if ev["field"] == "title" else text
            assert source[ev["start"]:ev["end"]] == ev["text"], ev
            assert ev["text"].strip() == ev["text"] and ev["text"]


def _topic(result, topic_id):
    return next((t for t in result.topics if t.id == topic_id), None)


# --- spelling variants ---------------------------------------------------------------------------

TTP_VARIANTS = [
    "Tehreek-e-Taliban Pakistan",
    "Tehrik-e-Taliban Pakistan",
    "Tehrik-i-Taliban Pakistan",
    "Tehreek-i-Taliban Pakistan",
    "Tehrik e Taliban Pakistan",
    "TEHRIK\u2013I\u2013TALIBAN PAKISTAN",  # en dashes, upper case
    "Tehrik-i-\nTaliban Pakistan",  # broken across a line
    "TTP",
    "Fitna al-Khawarij",
    "Fitna-al-Khawarij",
    "FaK",
]


@pytest.mark.parametrize("variant", TTP_VARIANTS)
def test_ttp_spellings_all_tag_the_group(tagger, variant):
    text = (f"Pakistan accused Kabul of sheltering fighters of the {variant} along the Afghan border. "
            "Officials said the group had carried out attacks in Khyber Pakhtunkhwa.")
    result = tagger.tag("Border security", text)
    hit = _topic(result, "cross-border-militancy")
    assert hit is not None, result.topic_ids()
    assert hit.evidence[0]["text"] == variant
    assert "ttp" in [e["id"] for e in result.entities]
    _check_offsets(result, "Border security", text)


@pytest.mark.parametrize("variant", ["BLA", "Balochistan Liberation Army", "Fitna al Hindustan", "FaH"])
def test_bla_spellings(tagger, variant):
    text = f"Security forces in Balochistan killed four members of the {variant} near Quetta, Pakistan said."
    result = tagger.tag("", text)
    assert "bla" in [e["id"] for e in result.entities]
    assert _topic(result, "cross-border-militancy") is not None


def test_gul_bahadur_group(tagger):
    result = tagger.tag("", "Afghan officials said a Gul Bahadur group hideout in Khost had been bombed.")
    assert "gul-bahadur-group" in [e["id"] for e in result.entities]


@pytest.mark.parametrize("spelling", ["Türkiye", "Turkiye", "Turkey", "TÜRKİYE", "Tu\u0308rkiye"])
def test_turkiye_spellings_and_accents(tagger, spelling):
    text = f"Delegations from Pakistan and Afghanistan met in Istanbul under mediation by {spelling} and Qatar."
    result = tagger.tag("", text)
    assert "turkiye" in [p["id"] for p in result.places], spelling
    _check_offsets(result, "", text)


@pytest.mark.parametrize("spelling", ["Khawaja Asif", "Khwaja Asif", "Khawaja Muhammad Asif", "KHAWAJA ASIF"])
def test_khawaja_asif_spellings(tagger, spelling):
    result = tagger.tag("", f"Defence Minister {spelling} said talks with the Afghan Taliban were over.")
    assert [e for e in result.entities if e["id"] == "khawaja-asif"] == [
        {"id": "khawaja-asif", "name": "Khawaja Asif", "kind": "person"}]


@pytest.mark.parametrize("spelling", ["Pakhtun", "Pashtun", "Pashtoon", "Pukhtun"])
def test_pashtun_spellings_anchor_the_theatre(taxonomy, spelling):
    an = analyse("", f"The statement warned against stoking {spelling} nationalism.", taxonomy)
    assert sum(an.strong.values()) == 1


def test_chaman_spin_boldak_with_en_dash(tagger):
    text = "A porter was wounded when troops traded fire at the Chaman\u2013Spin Boldak crossing on Friday."
    result = tagger.tag("Pakistan-Afghanistan border", text)
    assert {"chaman", "spin-boldak"} <= {p["id"] for p in result.places}
    border = _topic(result, "border-clashes")
    assert border is not None
    assert "Chaman\u2013Spin Boldak" in [e["text"] for e in border.evidence]
    _check_offsets(result, "Pakistan-Afghanistan border", text)


def test_places_carry_coordinates(tagger):
    result = tagger.tag("", "Militants attacked posts in Kurram and North Waziristan, near the Torkham road.")
    places = {p["id"]: p for p in result.places}
    assert {"kurram", "north-waziristan", "torkham"} <= set(places)
    for p in places.values():
        assert isinstance(p["lat"], float) and isinstance(p["lon"], float) and p["name"]


# --- word boundaries and case --------------------------------------------------------------------


def test_ttp_not_inside_http(taxonomy, tagger):
    text = "Servers answering HTTP and HTTPS requests in Islamabad and Kabul were patched; see httpbin."
    an = analyse("", text, taxonomy)
    assert "ttp" not in {an.ftext.text[m.fstart:m.fend] for m in an.mentions}
    assert {"kabul", "islamabad"} <= {an.ftext.text[m.fstart:m.fend] for m in an.mentions}
    result = tagger.tag("", text)
    assert "ttp" not in [e["id"] for e in result.entities]
    assert _topic(result, "cross-border-militancy") is None


def test_exact_case_acronyms(tagger):
    plain = tagger.tag("", "Officials in Kabul and Kandahar went on and on, bla bla, about the border.")
    assert "bla" not in [e["id"] for e in plain.entities]
    loud = tagger.tag("", "Officials in Kabul and Kandahar blamed the BLA for the attack on the border.")
    assert "bla" in [e["id"] for e in loud.entities]


def test_prefix_terms_match_inflections_but_not_inside_words(taxonomy):
    an = analyse("", "Afghan refugees faced deportations; the Afghan unrefugeed claim failed.", taxonomy)
    texts = {an.ftext.text[m.fstart:m.fend] for m in an.mentions}
    assert "refugee" in texts and "deport" in texts
    assert len([m for m in an.mentions if an.ftext.text[m.fstart:m.fend] == "refugee"]) == 1


def test_word_boundaries_for_country_names(taxonomy):
    an = analyse("", "Indiana and Indianapolis are not India.", taxonomy)
    found = [an.ftext.text[m.fstart:m.fend] for m in an.mentions]
    assert found.count("india") == 2  # one theatre-foreign term + one india-angle term, same span
    assert {an.ftext.to_original(m.fstart) for m in an.mentions} == {len("Indiana and Indianapolis are not ")}


def test_hyphen_space_and_dash_are_equivalent(taxonomy):
    for text in ("Chaman-Spin Boldak", "Chaman Spin Boldak", "Chaman \u2014 Spin Boldak", "Chaman\u00a0-\u00a0Spin Boldak"):
        an = analyse("", f"Firing at {text} crossing.", taxonomy)
        assert "chaman spin boldak" in {an.ftext.text[m.fstart:m.fend] for m in an.mentions}, text


# --- Urdu, Pashto, Dari --------------------------------------------------------------------------


@pytest.mark.parametrize("title,text,topic", [
    ("پاکستان اور افغانستان میں جنگ بندی", "کابل اور اسلام آباد نے سرحد پر فائر بندی کا اعلان کیا۔", "ceasefire"),
    ("د افغانستان او پاکستان ترمنځ اوربند", "د کابل او اسلام آباد ترمنځ اوربند اعلان شو.", "ceasefire"),
    ("آتش‌بس میان افغانستان و پاکستان", "کابل و اسلام آباد آتش‌بس را اعلام کردند.", "ceasefire"),
    ("استنبول مذاکرات", "پاکستان اور افغان طالبان کے درمیان بات چیت جاری ہے۔", "peace-talks"),
    ("د استانبول خبرې اترې", "د پاکستان او افغانستان ترمنځ خبرې اترې روانې دي.", "peace-talks"),
])
def test_arabic_script_forms(tagger, title, text, topic):
    result = tagger.tag(title, text)
    assert topic in result.topic_ids(), result.topic_ids()
    assert result.relevant
    _check_offsets(result, title, text)


def test_arabic_letter_variants_and_zwnj(tagger):
    # Arabic kaf/yeh instead of Persian ones, and no ZWNJ in آتش بس.
    result = tagger.tag("", "كابل و اسلام آباد آتش بس را اعلام کردند. جنگ بندي در افغانستان.")
    assert "kabul" in [p["id"] for p in result.places]
    hit = _topic(result, "ceasefire")
    assert hit is not None and {"آتش بس", "جنگ بندي"} <= {e["text"] for e in hit.evidence}


def test_arabic_script_word_boundary(taxonomy):
    an = analyse("", "افغانستانیوں کا مسئلہ", taxonomy)  # a longer word that starts with افغانستان
    assert not [m for m in an.mentions if an.ftext.text[m.fstart:m.fend] == "افغانستان"]


# --- offsets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Pakistan  and  Afghanistan\n\n  agreed a cease\u2011fire\u2026 T\u00fcrkiye mediated.",
    "Pak\u00ad\u00adistan and Afgha\u200bnistan agreed a truce; Tu\u0308rkiye mediated in Istanbul.",
    "STRA\u00dfE  \ufb01ne Kabul and Islamabad agreed a ceasefire. \u0130stanbul talks followed.",
    "\u200b\u200bجنگ\u0640\u0640 بندی  پاکستان اور افغانستان کے درمیان",
])
def test_offsets_point_at_the_original_text(tagger, text):
    title = "Ceasefire \u2014 Kabul, Islamabad"
    result = tagger.tag(title, text)
    assert result.topics
    _check_offsets(result, title, text)
    for hit in result.topics:
        for ev in hit.evidence:
            assert fold_term(ev["text"])  # the slice is real text, not padding


SEPARATORS = st.sampled_from([" ", "-", "\u2013", "\u2014", " - ", "\n", "  ", "\u00a0", "_"])
FILLER = st.text(alphabet="abc xyz.,;!?\n", max_size=40)


@settings(max_examples=150, deadline=None)
@given(before=FILLER, after=FILLER, sep1=SEPARATORS, sep2=SEPARATORS, upper=st.booleans())
def test_offsets_property(tagger, before, after, sep1, sep2, upper):
    variant = f"Tehrik{sep1}i{sep2}Taliban Pakistan"
    if upper:
        variant = variant.upper()
    text = f"{before} Kabul {variant} {after}"
    result = tagger.tag("", text)
    _check_offsets(result, "", text)
    hit = _topic(result, "cross-border-militancy")
    assert hit is not None
    assert hit.evidence[0]["text"] == variant


# --- relevance and result shape ------------------------------------------------------------------


def test_result_shape_and_scores(tagger):
    title = "Pakistan, Afghanistan agree ceasefire in Doha talks mediated by Qatar and Türkiye"
    text = ("Pakistan and the Afghan Taliban agreed to a ceasefire in Doha on Sunday after talks mediated by "
            "Qatar and Türkiye. Defence Minister Khawaja Asif said the TTP must be reined in.")
    result = tagger.tag(title, text)
    assert result.relevant and result.alert_worthy
    scores = [t.score for t in result.topics]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert {"ceasefire", "peace-talks", "mediation"} <= set(result.topic_ids())
    ceasefire = _topic(result, "ceasefire")
    assert ceasefire.evidence[0]["field"] == "title"
    assert ceasefire.evidence[0]["text"] == "ceasefire"
    _check_offsets(result, title, text)
    assert {"afghan-taliban", "khawaja-asif", "ttp"} <= {e["id"] for e in result.entities}
    assert {"doha", "qatar", "turkiye"} <= {p["id"] for p in result.places}
    json.dumps(result.to_dict())  # storable as is


def test_more_mentions_score_higher(tagger):
    base = "Kabul and Islamabad discussed the truce."
    one = _topic(tagger.tag("", base), "ceasefire").score
    three = _topic(tagger.tag("", base + " The truce held. Afghan officials praised the ceasefire."), "ceasefire")
    assert three.score > one


def test_gaza_ceasefire_mentioning_pakistan_is_not_relevant(tagger):
    result = tagger.tag("Pakistan welcomes Gaza ceasefire",
                        "Pakistan welcomed the ceasefire between Israel and Hamas. The truce in Gaza took effect "
                        "on Friday. Islamabad offered aid.")
    assert not result.relevant and not result.alert_worthy
    assert "ceasefire" not in result.topic_ids()


def test_loc_ceasefire_is_india_angle_not_ceasefire(tagger):
    result = tagger.tag("India and Pakistan agree ceasefire on the Line of Control",
                        "India and Pakistan agreed to stop firing along the LoC in Kashmir on Saturday. Indian and "
                        "Pakistani military officials spoke by hotline.")
    assert "india-angle" in result.topic_ids()
    assert "ceasefire" not in result.topic_ids()
    assert not result.relevant and result.development is None


def test_pakistan_domestic_talks_are_not_ours(tagger):
    result = tagger.tag("Government and opposition talks collapse in Islamabad",
                        "Talks between the Pakistani government and the opposition collapsed on Monday in "
                        "Islamabad. Pakistan's ruling coalition blamed the opposition for the deadlock in Lahore.")
    assert not result.relevant and result.development is None


def test_pakistan_only_militant_attack_is_relevant(tagger):
    result = tagger.tag("Suicide bomber kills five in Pakistan",
                        "A suicide bomber killed five people at a market in Pakistan's Punjab province, police "
                        "said. Pakistani officials blamed militants. Islamabad ordered an inquiry.")
    assert result.relevant and "militant-attacks" in result.topic_ids()


def test_empty_input(tagger):
    result = tagger.tag("", "")
    assert result.topics == [] and not result.relevant and result.development is None
    assert tagger.tag(None, None).topics == []  # type: ignore[arg-type]


def test_same_tagger_is_reusable_and_deterministic(tagger):
    title, text = "Talks collapse", "Talks between Pakistan and Afghanistan collapsed in Istanbul on Friday."
    first = tagger.tag(title, text).to_dict()
    tagger.tag("other", "Kabul and Islamabad traded accusations.")
    assert tagger.tag(title, text).to_dict() == first


def test_tiny_custom_taxonomy():
    tx = load_taxonomy({
        "theatre": {"name": "x", "strong": ["Kabul"], "weak": ["Islamabad"], "foreign": ["Gaza"]},
        "topics": [{"id": "ceasefire", "name": "c", "description": "d", "terms": ["truce", "cease*"]}],
    }, "mini.yaml")
    result = Tagger(tx).tag("", "Kabul and Islamabad: the truce is holding, ceasefires elsewhere too.")
    assert result.relevant and [e["text"] for e in result.topics[0].evidence] == ["truce", "cease"]


# --- text normalisation helpers ------------------------------------------------------------------


def test_fold_equivalences():
    assert fold("Türkiye").text == fold("TURKIYE").text == fold("Tu\u0308rkiye").text == "turkiye"
    assert fold("Tehrik-e-Taliban").text == fold("Tehrik e  Taliban").text == "tehrik e taliban"
    assert fold("آتش‌بس").text == fold("آتش بس").text
    assert fold("كابل").text == fold("کابل").text  # Arabic vs Persian kaf


def test_fold_maps_back_both_ways():
    text = "A\u00ad  B\u2014\u2014C\n\nD\u0301E"
    folded = fold(text)
    assert folded.text == "a b c de"
    for k, ch in enumerate(folded.text):
        original = text[folded.to_original(k)]
        assert unicodedata.normalize("NFKD", original.lower())[:1] in (ch, "\u00ad") or ch == " "
    assert folded.to_folded(text.index("C")) == folded.text.index("c")


TRICKY_CHARS = st.sampled_from(["a", "B", "\u00fc", "u\u0308", "\n", " ", "-", "\u2013", "\u2014", "\u00ad", "\u200b",
                                "\u00df", "\u0130", "\u0643", "\u0622", "\u200c", "\u2019", "\u201c", "\u00a0",
                                "\u0640", ".", "\ufb01"])


@settings(max_examples=300, deadline=None)
@given(st.lists(TRICKY_CHARS, max_size=30).map("".join))
@example("\u00ad\u00a0\u2014")  # a dropped character first, then a collapsed run
@example("\u200b\u200bTTP  \u2014 x")
def test_fold_offsets_property(text):
    from pipelines.textnorm import _fold_char

    folded = fold(text)
    assert "  " not in folded.text
    for k, ch in enumerate(folded.text):
        source = text[folded.to_original(k)]
        assert ch in _fold_char(source), (text, k)
    for pos in range(len(text) + 1):
        assert 0 <= folded.to_folded(pos) <= len(folded.text)


def _fold_by_character(text: str) -> str:
    """The definition the fast fold paths must meet: each character on its own, then one space per run."""
    from pipelines.textnorm import _IRREGULAR_FOLDS, _ONE_TO_ONE

    folded = "".join(_IRREGULAR_FOLDS[ch] if ch in _IRREGULAR_FOLDS else _ONE_TO_ONE.get(ch.lower(), ch.lower())
                     for ch in text)
    return re.sub("  +", " ", folded)


# Mostly ASCII with a few others: lower-case and upper-case accents, Arabic-script variants, quotes,
# a dash whose fold is itself folded ("\ufe58" -> em dash), an irregular one, a surrogate, an emoji.
MOSTLY_ASCII = st.sampled_from(list("aZ -_/.\n\t") + ["Word", "  ", "\u00e9", "\u00c9", "\u064a", "\u06cc",
                                                        "\u2019", "\u201d", "\ufe58", "\u2014", "\u2026",
                                                        "\ud800", "\U0001f600", "\u00a0"])


@settings(max_examples=300, deadline=None)
@given(st.lists(MOSTLY_ASCII, max_size=30).map("".join))
@example("Ceasefire\u2019s \u201cend\u201d \u2014 \u064a\u00e9")
@example("\ufe58 \u2014\ufe58")  # replaced one after the other, the first would become a space
def test_fold_fast_paths_match_the_per_character_definition(text):
    assert fold(text).text == _fold_by_character(text)


def test_fold_pattern_keeps_regex_escapes():
    assert fold_pattern(r"\S+ ك \B") == r"\S+ ک \B"


def test_split_sentences():
    text = ("ISLAMABAD: Talks began on Oct. 25 in Istanbul. Mr. Asif said the U.S. was not involved. "
            "Growth was 3.5 percent.\n\nNew paragraph here. J. Smith agreed. \u201cTalks are over.\u201d Done")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == [
        "ISLAMABAD: Talks began on Oct. 25 in Istanbul.",
        "Mr. Asif said the U.S. was not involved.",
        "Growth was 3.5 percent.",
        "New paragraph here.",
        "J. Smith agreed.",
        "\u201cTalks are over.\u201d",
        "Done",
    ]
    assert split_sentences(text, limit=2) == split_sentences(text)[:2]
    assert split_sentences("جنگ بندی ہو گئی۔ مذاکرات جاری ہیں۔") == [(0, 16), (17, 34)]


def test_lone_surrogate_and_astral_characters_keep_offsets(tagger):
    """The compiled automaton reads UTF-8; a lone surrogate must neither crash it nor shift offsets."""
    title = "Kabul \U0001f600 truce holds"
    text = "\ud800 Pakistan and Afghanistan agreed a ceasefire in Doha \U0001f600 after talks in Kabul."
    result = tagger.tag(title, text)
    assert result.relevant and result.topics
    _check_offsets(result, title, text)

    def spans(r):
        return ([(h.id, h.score, [(e["start"], e["end"]) for e in h.evidence]) for h in r.topics],
                (r.development.type, r.development.start, r.development.end))

    assert spans(result) == spans(tagger.tag(title, text.replace("\ud800", "x")))


def test_tagger_pickles(tagger):
    """Worker processes get taxonomies by pickling; the compiled automaton is rebuilt, not copied."""
    import pickle

    title, text = "Talks collapse", "Talks between Pakistan and Afghanistan collapsed in Istanbul on Friday."
    copy = pickle.loads(pickle.dumps(tagger))
    assert len(copy.taxonomy.automaton) == len(tagger.taxonomy.automaton) > 100
    assert copy.tag(title, text).to_dict() == tagger.tag(title, text).to_dict()


def test_hangul_syllables_fold_to_themselves():
    """Korean pages took the per-character path (NFKD splits a syllable into jamo); a syllable has no accent."""
    from pipelines.textnorm import _IRREGULAR_FOLDS

    assert fold("서울 Kabul").text == "서울 kabul" and "서" not in _IRREGULAR_FOLDS


SENTENCE_CHARS = st.sampled_from(list("aB .!?\n\t\"')]") + ["\u201d", "\u2019", "\u06d4", "\u061f", "Mr.", "U.S.", " x"])


@settings(max_examples=400, deadline=None)
@given(st.lists(SENTENCE_CHARS, max_size=40).map("".join), st.integers(0, 3))
@example("Done?! \u201cYes.\u201d\n\nNext", 0)
@example("a.\n? b", 0)
def test_sentence_ends_searched_per_character_match_the_one_pattern(text, pos):
    from pipelines.textnorm import _END_RE, _sentence_ends

    expected = [(m.start(), m.end(), m.start(1)) for m in _END_RE.finditer(text, pos)]
    assert [(m.start(), m.end(), m.start(1)) for m in _sentence_ends(text, pos)] == expected

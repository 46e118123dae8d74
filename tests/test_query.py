"""The desk query language: parsing, precedence, fields, wildcards, accents, errors."""

from __future__ import annotations

import json
import os

import pytest

from pipelines.errors import NewsmonError
from pipelines.query import QuerySyntaxError, fold, parse_query, prepare_doc, words

# Texts written for these tests (not taken from the seeds).
DOC = {
    "title": "Envoys gather in Istanbul as peace talks resume",
    "text": ("Officials from Islamabad and Kabul met in Türkiye on Thursday. Mediators said the "
             "Tehrik-i-Taliban Pakistan question and infiltration along the border dominated the agenda. "
             "Negotiations continue tomorrow."),
    "topics": ["peace-talks", "Mediation"],
    "development": "talks-resumed",
    "desk": "Diplomacy",
    "source": "Dawn.com",
    "language": "en",
    "entities": ["TTP", "Tehrik-i-Taliban Pakistan"],
    "places": ["North Waziristan", "Istanbul"],
}

OTHER = {
    "title": "Cricket board announces winter tour",
    "text": "The squad travels to Lahore for three matches; the border of the ground was repainted.",
    "topics": [],
    "development": None,
    "desk": "regional",
    "source": "example-sports.net",
    "language": "en",
    "entities": [],
    "places": ["Lahore"],
}


def m(query: str, doc=DOC) -> bool:
    return parse_query(query).matches(doc)


@pytest.mark.parametrize("query,expected", [
    ("istanbul", True),
    ("ISTANBUL talks", True),            # implicit AND, case-insensitive
    ("istanbul cricket", False),
    ("istanbul AND cricket", False),
    ("istanbul OR cricket", True),
    ("cricket OR lahore", False),
    ("talk", False),                      # word boundary: 'talk' is not 'talks'
    ("talk*", True),                      # prefix wildcard
    ("negotiat*", True),
    ("xyzzy*", False),
])
def test_terms_and_boolean(query, expected):
    assert m(query) is expected


def test_and_binds_tighter_than_or():
    # OTHER has 'cricket', no 'istanbul', no 'squadron': the two readings disagree.
    assert m("cricket OR istanbul squadron", OTHER) is True    # cricket OR (istanbul AND squadron)
    assert m("(cricket OR istanbul) squadron", OTHER) is False
    assert m("istanbul squadron OR cricket", OTHER) is True
    assert str(parse_query("a OR b c")) == "(a OR (b AND c))"
    assert str(parse_query("a b OR c AND d")) == "((a AND b) OR (c AND d))"


def test_not_and_minus_and_plus():
    assert m("talks NOT cricket") is True
    assert m("talks -cricket") is True
    assert m("talks -istanbul") is False
    assert m("NOT istanbul") is False
    assert m("NOT cricket", OTHER) is False
    assert m("-(cricket OR squad) lahore", OTHER) is False
    assert m("-(cricket OR squad) istanbul") is True
    assert m("+istanbul +talks") is True
    assert m("+istanbul +cricket") is False
    # NOT binds to the next operand only
    assert str(parse_query("NOT a b")) == "(NOT a AND b)"


def test_lowercase_keywords_are_words():
    # 'or' lower-case is an ordinary term that must be present
    assert m("istanbul or cricket") is False
    assert m("Kabul and Islamabad") is True  # 'and' occurs in the text


def test_phrases_and_hyphenated_words():
    assert m('"peace talks"') is True
    assert m('"talks peace"') is False
    assert m('"peace talks resume"') is True
    assert m('"peace resume"') is False           # not adjacent
    assert m('"Tehrik-i-Taliban"') is True
    assert m("Tehrik-i-Taliban") is True           # unquoted hyphenated word is a phrase
    assert m('"Tehrik i Taliban Pakistan"') is True
    assert m('"Tehreek-e-Taliban"') is False
    assert m('"peace talk*"') is True             # wildcard on a phrase word


def test_accents_and_case_fold():
    assert m("Turkiye") is True
    assert m("TÜRKIYE") is True
    assert m("türkiye", {"title": "Turkiye hosts", "text": ""}) is True
    assert fold("Khwāja Āṣif") == "khwaja asif"
    assert m("istanbul", {"title": "İstanbul görüşmeleri", "text": ""}) is True


def test_fields():
    assert m("title:istanbul") is True
    assert m("title:islamabad") is False            # only in the text
    assert m("text:islamabad") is True
    assert m('title:"peace talks"') is True
    assert m("title:(cricket OR envoys)") is True
    assert m("title:(cricket OR islamabad)") is False
    assert m("topic:peace-talks") is True
    assert m("topic:mediation") is True             # case-insensitive whole value
    assert m("topic:peace") is False                # not a substring
    assert m("topic:peace*") is True
    assert m("development:talks-resumed") is True
    assert m("development:talks-*") is True
    assert m("development:ceasefire-*") is False
    assert m("development:talks-*", OTHER) is False  # no development at all
    assert m("desk:diplomacy") is True
    assert m("desk:security") is False
    assert m("source:dawn") is True                 # substring
    assert m("source:DAWN.COM") is True
    assert m("source:guardian") is False
    assert m("language:EN") is True
    assert m("language:ur") is False
    assert m("entity:ttp") is True
    assert m('entity:"Tehrik-i-Taliban"') is True   # words inside a name
    assert m("entity:bla") is False
    assert m("place:waziristan") is True
    assert m('place:"South Waziristan"') is False
    assert m("TITLE:istanbul") is True              # field names are case-insensitive


def test_explain_names_what_matched():
    q = parse_query('"peace talks" AND topic:peace-talks AND (cricket OR border) -cricket')
    why = q.explain(DOC)
    assert 'phrase "peace talks" in title' in why
    assert "topic:peace-talks" in why
    assert 'term "border" in text' in why
    assert "cricket" not in why
    assert q.explain(OTHER) == ""
    both = parse_query("talks").explain({"title": "talks", "text": "more talks"})
    assert both == 'term "talks" in title, text'
    assert parse_query("place:waziristan").explain(DOC) == "place:North Waziristan"


def test_prepared_doc_reused_across_queries():
    prepared = prepare_doc(DOC)
    assert prepare_doc(prepared) is prepared
    queries = [parse_query(q) for q in ("istanbul", "cricket", '"peace talks"', "border -cricket")]
    assert [q.matches(prepared) for q in queries] == [q.matches(DOC) for q in queries] == [True, False, True, True]


@pytest.mark.parametrize("query,position,fragment", [
    ("", 0, "empty query"),
    ("   ", 0, "empty query"),
    ("talks AND", 9, "term was expected"),
    ("OR talks", 0, "unexpected OR"),
    ("talks OR OR border", 9, "unexpected OR"),
    ("(talks OR border", 0, "unclosed '('"),
    ("talks)", 5, "unbalanced ')'"),
    ("()", 0, "empty parentheses"),
    ('talks "peace', 6, "unclosed quote"),
    ("talks - border", 6, "'-' must be followed"),
    ("tpoic:ceasefire", 0, "unknown field 'tpoic'"),
    ("title:", 0, "missing value"),
    ("*", 0, "wildcard needs a prefix"),
    ("ne*go", 2, "only allowed at the end"),
    ("talks NOT", 9, "term was expected"),
    ("title:(desk:x)", 7, "inside 'title:(...)'"),
    ('"..."', 0, "no letters or digits"),
])
def test_syntax_errors_carry_position(query, position, fragment):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    err = info.value
    assert isinstance(err, NewsmonError)
    assert err.position == position
    assert fragment in err.message
    assert str(err).endswith(f"(at position {position})")
    assert "\n" not in str(err)


def test_non_latin_scripts_match():
    doc = {"title": "پاکستان اور افغانستان کے درمیان مذاکرات", "text": ""}
    assert m("مذاکرات", doc) is True
    assert m('"اور افغانستان"', doc) is True
    assert m("استنبول", doc) is False


DATA = "/work/shared/data/articles"


@pytest.mark.skipif(not os.path.isdir(DATA), reason=f"{DATA} not present (real article texts)")
def test_real_articles_on_topic_query_separates_sets():
    """On real texts, a desk query naming the TTP by its spellings finds on-topic texts, no off-topic ones."""
    q = parse_query('(TTP OR "Pakistani Taliban" OR "Tehrik-e-Taliban" OR "Tehrik-i-Taliban") AND border')

    def hits(name: str) -> int:
        with open(os.path.join(DATA, name), encoding="utf-8") as fh:
            recs = [json.loads(line) for line in fh if line.strip()]
        return sum(q.matches({"title": r.get("title") or "", "text": r.get("text") or ""}) for r in recs)

    assert hits("on_topic.jsonl") >= 1
    assert hits("off_topic.jsonl") == 0


@pytest.mark.parametrize("parse", ["desk", "search"])
def test_nesting_is_bounded_at_max_depth_in_both_grammars(parse):
    """MAX_DEPTH groups parse; one more is a QuerySyntaxError at the '(' that goes too deep."""
    from pipelines.query import MAX_DEPTH
    from pipelines.store.search_query import parse_query as parse_search

    parser = parse_query if parse == "desk" else parse_search
    assert parser("(" * MAX_DEPTH + "talks" + ")" * MAX_DEPTH) is not None
    with pytest.raises(QuerySyntaxError) as info:
        parser("(" * (MAX_DEPTH + 1) + "talks" + ")" * (MAX_DEPTH + 1))
    assert info.value.position == MAX_DEPTH and "nested" in info.value.message


@pytest.mark.parametrize("word", ["Łódź", "Ørsted", "Æther", "Œuvre", "Đakovo", "Ħamrun", "ıstanbul", "İstanbul",
                                  "Türkiye", "Straße"])
def test_desk_queries_and_topic_terms_fold_letters_alike(word):
    """One fold table: a desk rule `Lodz` and a topic term `Lodz` both match "Łódź"."""
    from pipelines.textnorm import fold as tagger_fold

    assert words(word) == tagger_fold(word).text.split()
    assert words(word)[0].isascii()

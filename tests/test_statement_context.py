"""A statement read by its context: what the rest of the lead says (lead rereads) and the day it names
(`when`). Texts written for these tests, in wording unlike the chronologies'."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from pipelines.errors import ConfigError
from pipelines.events import EventBook, WatchState, interpret
from pipelines.models import Development, happened_on
from pipelines.store.sqlite import SQLiteStore
from pipelines.tag import Tagger, load_taxonomy, load_taxonomy_file
from tests.test_events import report, rules, stored

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "topics.yaml"


@pytest.fixture(scope="module")
def tagger():
    return Tagger(load_taxonomy_file(str(CONFIG)))


def dev(tagger, title: str, text: str) -> Development | None:
    return tagger.tag(title, text).development


# --------------------------------------------------------------------------- collapse or violation

@pytest.mark.parametrize("title,text", [
    ("Frontier truce unravelling as mortar rounds kill six in Kurram",
     "Mortar shells fired from Afghan positions killed six villagers in Kurram on Sunday night, Pakistani "
     "officials said. The bombardment came two days after both governments renewed their truce."),
    ("Pakistan-Afghanistan ceasefire shattered: drone strikes hit Khost homes",
     "Pakistani drones struck three houses in Khost before dawn, Afghan officials said, killing at least "
     "four people. Islamabad has not commented."),
])
def test_an_outlets_verdict_over_fresh_fighting_is_read_by_the_state(tagger, title, text):
    found = dev(tagger, title, text)
    assert found is not None and found.type == "ceasefire-verdict"
    event_rules = rules()
    in_force = WatchState.initial(event_rules)
    in_force.apply(event_rules, "ceasefire-extended", "2025-10-17T08:00:00Z", "e1")
    assert interpret(found, in_force, event_rules).type == "ceasefire-violated"  # no side ended it
    assert interpret(found, WatchState.initial(event_rules), event_rules).type == "ceasefire-collapsed"


@pytest.mark.parametrize("title,text", [
    ("Ceasefire collapses after two nights of shelling along the Kurram frontier",
     "Pakistan's defence minister announced on Tuesday that the truce with Kabul was over, after shelling "
     "killed nine soldiers at border posts in Kurram."),
    ("Pakistan-Afghanistan truce falls apart, mediators scramble",
     "Qatari and Turkish envoys were calling both capitals on Monday after the ceasefire between the "
     "neighbours fell apart, diplomats said."),
])
def test_a_declared_end_or_a_collapse_without_fighting_stays_a_collapse(tagger, title, text):
    found = dev(tagger, title, text)
    assert found is not None and found.type == "ceasefire-collapsed"


# --------------------------------------------------------------------------- extension or settlement

def test_a_truce_kept_in_a_joint_statement_a_sentence_later_is_a_settlement(tagger):
    found = dev(tagger, "Kabul and Islamabad agree to keep their truce going",
                "Afghanistan and Pakistan agreed on Friday to extend the ceasefire between them. "
                "The commitment was set out in a joint communique read by the Qatari host at the close of talks.")
    assert found is not None and found.type == "agreement-reached"


def test_a_joint_statement_recalled_from_before_leaves_an_extension(tagger):
    found = dev(tagger, "Kabul and Islamabad agree to keep their truce going",
                "Afghanistan and Pakistan agreed on Friday to extend the ceasefire between them. "
                "A joint communique issued last month had promised a verification team.")
    assert found is not None and found.type == "ceasefire-extended"


# --------------------------------------------------------------------------- the day a statement names

@pytest.mark.parametrize("title,text,when", [
    ("Pakistan and Afghanistan agree on a ceasefire",
     "Negotiators for Pakistan and Afghanistan agreed on Wednesday to a ceasefire in Doha, mediators said.",
     "wednesday"),
    ("پاکستان اور افغانستان جنگ بندی پر متفق",
     "پاکستان اور افغانستان نے منگل کو دوحہ میں جنگ بندی پر اتفاق کیا۔", "tuesday"),
    ("Pakistan and Afghanistan agree on a ceasefire",
     "Pakistan and Afghanistan agreed to a ceasefire in Doha, mediators said.", None),
])
def test_the_day_a_statement_says_it_happened(tagger, title, text, when):
    found = dev(tagger, title, text)
    assert found is not None and found.type == "ceasefire-agreed" and found.when == when


@pytest.mark.parametrize("when,published,expected", [
    ("thursday", datetime(2025, 10, 31, 8, tzinfo=UTC), date(2025, 10, 30)),   # a Friday: the day before
    ("friday", datetime(2025, 10, 31, 8, tzinfo=UTC), date(2025, 10, 31)),     # the same day
    ("saturday", datetime(2025, 10, 31, 8, tzinfo=UTC), date(2025, 10, 25)),   # never in the future
    ("yesterday", datetime(2025, 11, 1, 1, tzinfo=UTC), date(2025, 10, 31)),
    ("today", datetime(2025, 11, 1, 1, tzinfo=UTC), date(2025, 11, 1)),
    (None, datetime(2025, 11, 1, 1, tzinfo=UTC), None),
])
def test_happened_on_reads_the_day_against_publication(when, published, expected):
    assert happened_on(Development("ceasefire-agreed", "x", when=when), published) == expected


def test_one_sided_accounts_of_a_bilateral_development_are_one_event(tmp_path):
    store = SQLiteStore(tmp_path / "events.db")
    try:
        book = EventBook(rules(), store)
        at = datetime(2025, 10, 22, 9, tzinfo=UTC)
        first = book.attach(stored(store, report("talks-scheduled", "Wire A", at, parties=["pakistan-government"])))
        other_side = book.attach(stored(store, report("talks-scheduled", "Daily B", at + timedelta(hours=2),
                                                      parties=["afghan-taliban"])))
        assert other_side.event.id == first.event.id and not other_side.opened
    finally:
        store.close()


def test_a_late_report_of_the_same_day_joins_the_event_it_names(tmp_path):
    store = SQLiteStore(tmp_path / "events.db")
    try:
        book = EventBook(rules(), store)
        monday = datetime(2025, 10, 13, 10, tzinfo=UTC)  # a Monday
        first = book.attach(stored(store, report("ceasefire-agreed", "Wire A", monday)))
        late = report("ceasefire-agreed", "Weekly B", monday + timedelta(days=4, hours=2))  # past the 72h window
        late.development.when = "monday"
        joined = book.attach(stored(store, late))
        assert joined.event.id == first.event.id and not joined.opened
        assert store.get_event(first.event.id).reports[-1].happened == "2025-10-13"
        undated = report("ceasefire-agreed", "Weekly C", monday + timedelta(days=4, hours=3))
        assert book.attach(stored(store, undated)).opened  # without the day it names, a new event
    finally:
        store.close()


# --------------------------------------------------------------------------- config

def _raw() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def _type(raw: dict, type_id: str) -> dict:
    return next(t for t in raw["developments"]["types"] if t["id"] == type_id)


@pytest.mark.parametrize("reread,field_name", [
    ({"in": "paragraph", "when": "x", "as": "ceasefire-violated"}, "reread[0].in"),
    ({"in": "lead", "also": "no-such-type", "as": "ceasefire-violated"}, "reread.also"),
    ({"also": "hostilities", "as": "ceasefire-violated"}, "reread[0].also"),
    ({"in": "lead", "as": "ceasefire-violated"}, "reread[0]"),
    ({"in": "lead", "when": "x", "as": "no-such-type"}, "reread.as"),
])
def test_bad_reread_names_the_file_type_and_field(reread, field_name):
    raw = copy.deepcopy(_raw())
    _type(raw, "ceasefire-collapsed")["reread"] = [reread]
    with pytest.raises(ConfigError) as err:
        load_taxonomy(raw, "topics.yaml")
    message = str(err.value)
    assert "topics.yaml" in message and "ceasefire-collapsed" in message and field_name in message


@pytest.mark.parametrize("when", [{"someday": ["someday"]}, {"monday": []}, ["monday"]])
def test_bad_when_names_the_field(when):
    raw = copy.deepcopy(_raw())
    raw["developments"]["when"] = when
    with pytest.raises(ConfigError) as err:
        load_taxonomy(raw, "topics.yaml")
    assert "topics.yaml" in str(err.value) and "when" in str(err.value)


# --------------------------------------------------------------------------- ends named as nouns, and time clauses

@pytest.mark.parametrize("title,text", [
    ("Kabul pronounces truce with Islamabad 'dead'",
     "The Taliban government in Kabul pronounced the truce with Islamabad 'dead' on Monday night, its "
     "spokesman said in a recorded message."),
    ("Border quiet ends as Pakistan confirms termination of the ceasefire",
     "Pakistan's interior ministry confirmed on Tuesday the termination of the ceasefire with Afghanistan, "
     "citing repeated attacks on its posts."),
    ("Afghan-Pakistan truce comes to an abrupt end",
     "The truce between Afghanistan and Pakistan came to an abrupt end on Sunday, officials on both sides said."),
])
def test_an_end_named_as_a_noun_or_in_quotes_is_a_collapse(tagger, title, text):
    found = dev(tagger, title, text)
    assert found is not None and found.type == "ceasefire-collapsed"


@pytest.mark.parametrize("title,text,expected", [
    ("اتفاق جديد في الرياض",
     "بعد أيام من انهيار الهدنة الأولى، اتفقت باكستان وحكومة طالبان في الرياض على وقف لإطلاق النار يبدأ الليلة.",
     "ceasefire-agreed"),
    ("ریاض میں پاک افغان مذاکرات",
     "جنگ بندی کے خاتمے کے بعد پاکستان اور افغانستان کے وفود کے درمیان ریاض میں مذاکرات شروع ہو گئے۔",
     "talks-opened"),
])
def test_an_end_in_a_time_clause_is_background(tagger, title, text, expected):
    found = dev(tagger, title, text)
    assert found is not None and found.type == expected


def test_agreeing_the_truce_will_hold_is_an_extension(tagger):
    found = dev(tagger, "Islamabad and Kabul agree the truce will hold beyond Friday",
                "Pakistan and Afghanistan agreed on Thursday that the ceasefire between them would continue "
                "past Friday's deadline, a Qatari official said.")
    assert found is not None and found.type == "ceasefire-extended"


def test_a_joint_communique_issued_is_a_settlement(tagger):
    found = dev(tagger, "Verification body to be formed under Riyadh text",
                "A joint communique was issued in Riyadh on Saturday after talks between Pakistan and "
                "Afghanistan, committing both to a verification body for the ceasefire.")
    assert found is not None and found.type == "agreement-reached"


def test_reread_only_type_with_patterns_names_the_field():
    raw = copy.deepcopy(_raw())
    _type(raw, "ceasefire-verdict")["patterns"] = ["truce"]
    with pytest.raises(ConfigError) as err:
        load_taxonomy(raw, "topics.yaml")
    assert "ceasefire-verdict" in str(err.value) and "patterns" in str(err.value)


def test_reading_otherwise_must_be_a_type_of_its_family(tmp_path):
    from pipelines.events import load_event_rules

    raw = yaml.safe_load((ROOT / "config" / "events.yaml").read_text(encoding="utf-8"))
    next(r for r in raw["readings"] if r["statement"] == "ceasefire-verdict")["otherwise"] = "talks-opened"
    with pytest.raises(ConfigError) as err:
        load_event_rules(raw, "events.yaml")
    assert "events.yaml" in str(err.value) and "otherwise" in str(err.value)


def test_arabic_names_with_a_proclitic_anchor_the_theatre(tagger):
    # و ("and") attaches to the next word: وأفغانستان is Afghanistan.
    result = tagger.tag("اتفاق جديد في الرياض", "اتفقت باكستان وأفغانستان في الرياض على وقف لإطلاق النار.")
    assert result.relevant and result.development is not None
    assert result.development.type == "ceasefire-agreed"
    assert set(result.development.parties) == {"pakistan-government", "afghan-taliban"}

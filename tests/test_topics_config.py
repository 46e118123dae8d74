"""The shipped taxonomy (config/topics.yaml) and the loader's validation errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipelines.errors import ConfigError
from pipelines.tag import load_taxonomy, load_taxonomy_file
from pipelines.textnorm import fold_term

CONFIG = Path(__file__).resolve().parent.parent / "config" / "topics.yaml"

REQUIRED_TOPICS = {
    "ceasefire", "peace-talks", "mediation", "cross-border-militancy", "border-clashes", "infiltration",
    "diplomatic-statement", "india-angle", "refugees-humanitarian", "trade-connectivity",
}
REQUIRED_DEVELOPMENTS = {
    "ceasefire-agreed", "ceasefire-extended", "ceasefire-violated", "ceasefire-collapsed", "talks-scheduled",
    "talks-opened", "talks-stalled", "talks-broke-down", "talks-resumed", "agreement-reached",
}
REQUIRED_PLACES = {
    "islamabad", "kabul", "kandahar", "doha", "istanbul", "chaman", "spin-boldak", "torkham", "kurram",
    "north-waziristan", "khyber-pakhtunkhwa", "balochistan", "leepa-valley",
}


@pytest.fixture(scope="module")
def raw() -> dict:
    with open(CONFIG, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy_file(str(CONFIG))


def test_shipped_taxonomy_has_the_desk_topics(taxonomy):
    ids = {t.id for t in taxonomy.topics}
    assert REQUIRED_TOPICS <= ids
    for topic in taxonomy.topics:
        assert topic.name and topic.description and topic.terms


def test_core_topics_have_urdu_pashto_and_dari_forms(taxonomy):
    for topic_id in ("ceasefire", "peace-talks", "mediation"):
        topic = taxonomy.topic(topic_id)
        assert {"urdu", "pashto", "dari"} <= set(topic.translations), topic_id
        for lang, terms in topic.translations.items():
            assert terms, (topic_id, lang)
            if lang not in ("urdu", "pashto", "dari"):
                continue  # Chinese and Turkish forms (relevance only) are checked in test_developments
            # Arabic-script forms, not transliterations.
            assert all(any("\u0600" <= c <= "\u06ff" for c in t.text) for t in terms), (topic_id, lang)


def test_ceasefire_names_its_common_forms(taxonomy):
    folded = {t.folded for t in taxonomy.topic("ceasefire").all_terms()}
    assert {fold_term(t) for t in ("ceasefire", "truce", "جنگ بندی", "فائر بندی", "اوربند", "آتش‌بس")} <= folded
    assert "اتش بس" in folded  # Dari آتش‌بس folds madda and ZWNJ away


def test_places_have_coordinates_inside_the_region(taxonomy):
    places = {p.id: p for p in taxonomy.places}
    assert REQUIRED_PLACES <= set(places)
    for place_id in REQUIRED_PLACES - {"doha", "istanbul"}:
        p = places[place_id]
        assert 24 <= p.lat <= 37 and 60 <= p.lon <= 76, place_id  # Pakistan / Afghanistan box
    assert abs(places["doha"].lat - 25.29) < 0.2 and abs(places["istanbul"].lon - 28.98) < 0.2


def test_entities_have_kinds_and_spelling_variants(taxonomy):
    orgs = {o.id: o for o in taxonomy.organisations}
    assert orgs["ttp"].kind == "militant-group" and orgs["bla"].kind == "militant-group"
    people = {p.id: p for p in taxonomy.people}
    assert {"khawaja asif", "khwaja asif"} <= {t.folded for t in people["khawaja-asif"].terms}


def test_every_development_type_is_configured(taxonomy):
    assert REQUIRED_DEVELOPMENTS <= {t.id for t in taxonomy.developments.types}


def test_theatre_lists_are_populated(taxonomy):
    strong = {t.folded for t in taxonomy.theatre.strong}
    assert {"afghanistan", "kabul", "ttp", "durand line", "taliban"} <= strong
    assert {"pakistan", "islamabad"} <= {t.folded for t in taxonomy.theatre.weak}
    assert {"gaza", "ukraine", "syria", "line of control"} <= {t.folded for t in taxonomy.theatre.foreign}


# --- validation errors ---------------------------------------------------------------------------


def _error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_taxonomy(data, "topics.yaml")
    err = info.value
    assert str(err).startswith("topics.yaml")
    assert "\n" not in str(err)
    return err


def test_unknown_key_in_topic_names_entry_and_field(raw):
    data = copy.deepcopy(raw)
    data["topics"][0]["colour"] = "red"
    err = _error(data)
    assert (err.entry, err.field) == ("ceasefire", "colour")
    assert "unknown key" in str(err)


def test_wrong_type_for_weight(raw):
    data = copy.deepcopy(raw)
    data["topics"][1]["terms"][0] = {"term": "talks", "weight": "heavy"}
    err = _error(data)
    assert (err.entry, err.field) == ("peace-talks", "terms[0].weight")


def test_terms_must_be_a_list(raw):
    data = copy.deepcopy(raw)
    data["topics"][2]["terms"] = "mediation"
    err = _error(data)
    assert (err.entry, err.field) == ("mediation", "terms")


def test_duplicate_topic_id(raw):
    data = copy.deepcopy(raw)
    data["topics"].append(copy.deepcopy(data["topics"][0]))
    err = _error(data)
    assert err.entry == "ceasefire" and err.field == "id" and "duplicate" in err.message


def test_duplicate_entity_id_across_sections(raw):
    data = copy.deepcopy(raw)
    data["entities"]["places"].append({"id": "ttp", "name": "Somewhere", "lat": 1, "lon": 2})
    err = _error(data)
    assert err.entry == "ttp" and "duplicate" in err.message


def test_missing_required_field(raw):
    data = copy.deepcopy(raw)
    del data["topics"][3]["description"]
    err = _error(data)
    assert (err.entry, err.field) == ("cross-border-militancy", "description")
    assert "missing" in err.message


def test_place_without_coordinates(raw):
    data = copy.deepcopy(raw)
    place = next(p for p in data["entities"]["places"] if p["id"] == "kabul")
    del place["lat"]
    err = _error(data)
    assert (err.entry, err.field) == ("kabul", "lat")


def test_latitude_out_of_range(raw):
    data = copy.deepcopy(raw)
    place = next(p for p in data["entities"]["places"] if p["id"] == "torkham")
    place["lat"] = 134.1
    err = _error(data)
    assert (err.entry, err.field) == ("torkham", "lat")


def test_bad_anchor_value(raw):
    data = copy.deepcopy(raw)
    data["topics"][0]["anchor"] = "everywhere"
    err = _error(data)
    assert (err.entry, err.field) == ("ceasefire", "anchor")


def test_unknown_translation_language(raw):
    data = copy.deepcopy(raw)
    data["topics"][0]["translations"]["klingon"] = ["qagh"]
    err = _error(data)
    assert (err.entry, err.field) == ("ceasefire", "translations.klingon")


def test_star_only_at_the_end_of_a_term(raw):
    data = copy.deepcopy(raw)
    data["topics"][0]["terms"].append("cease*fire")
    err = _error(data)
    assert err.entry == "ceasefire" and err.field.startswith("terms[")


def test_bad_development_regex(raw):
    data = copy.deepcopy(raw)
    types = data["developments"]["types"]
    idx = next(i for i, t in enumerate(types) if t["id"] == "talks-stalled")
    types[idx]["patterns"].append("(?:unclosed")
    err = _error(data)
    assert err.entry == "talks-stalled"
    assert err.field == f"patterns[{len(types[idx]['patterns']) - 1}]"
    assert "bad regex" in err.message


def test_pattern_flag_must_be_boolean(raw):
    data = copy.deepcopy(raw)
    data["developments"]["types"][0]["patterns"] = [{"re": "{cf} collapsed", "negation_ok": "yes"}]
    err = _error(data)
    assert err.field == "patterns[0].negation_ok"
    data["developments"]["types"][0]["patterns"] = [{"re": "{cf} collapsed", "colour": True}]
    err = _error(data)
    assert err.field == "patterns[0].colour"


def test_unknown_macro_in_pattern(raw):
    data = copy.deepcopy(raw)
    data["developments"]["types"][0]["patterns"] = ["{nosuchmacro} collapsed"]
    err = _error(data)
    assert err.entry == data["developments"]["types"][0]["id"]
    assert "unknown macro" in err.message


def test_development_requires_unknown_topic(raw):
    data = copy.deepcopy(raw)
    data["developments"]["types"][0]["requires"] = ["weather"]
    err = _error(data)
    assert err.field == "requires" and "weather" in err.message


def test_duplicate_development_type(raw):
    data = copy.deepcopy(raw)
    data["developments"]["types"].append(copy.deepcopy(data["developments"]["types"][0]))
    err = _error(data)
    assert err.field == "id" and "duplicate" in err.message


def test_bad_filter_regex_and_unknown_filter(raw):
    data = copy.deepcopy(raw)
    data["developments"]["filters"]["denial"] = "[unclosed"
    err = _error(data)
    assert (err.entry, err.field) == ("developments", "filters.denial")
    data = copy.deepcopy(raw)
    data["developments"]["filters"]["sarcasm"] = "lol"
    err = _error(data)
    assert (err.entry, err.field) == ("developments", "filters.sarcasm")


def test_unknown_top_level_key(raw):
    data = copy.deepcopy(raw)
    data["feeds"] = []
    err = _error(data)
    assert err.entry is None and err.field == "feeds"


def test_not_a_mapping():
    err = _error(["topics"])  # type: ignore[arg-type]
    assert "expected a mapping" in err.message


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "topics.yaml"
    bad.write_text("topics: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_taxonomy_file(str(bad))
    assert str(info.value).startswith(str(bad)) and "invalid YAML" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_taxonomy_file(str(tmp_path / "missing.yaml"))
    assert "cannot read" in str(info.value)


def test_minimal_taxonomy_loads_without_entities_or_developments():
    tx = load_taxonomy({
        "theatre": {"name": "t", "strong": ["Kabul"], "weak": ["Pakistan"]},
        "topics": [{"id": "ceasefire", "name": "c", "description": "d", "terms": ["truce"]}],
    }, "mini.yaml")
    assert [t.id for t in tx.topics] == ["ceasefire"] and tx.developments.types == []


# --- sides of entities and places (development statements) -----------------------------------------


def _entity(raw: dict, section: str, entity_id: str) -> dict:
    return next(item for item in raw["entities"][section] if item["id"] == entity_id)


def test_shipped_sides_and_capitals(taxonomy):
    people = {e.id: e for e in taxonomy.people + taxonomy.organisations}
    places = {p.id: p for p in taxonomy.places}
    assert people["khawaja-asif"].side == "pakistan" and people["amir-khan-muttaqi"].side == "afghanistan"
    assert people["ttp"].side == "militant" and people["hakan-fidan"].side == "mediator"
    assert places["islamabad"].stands_for == "pakistan-government"
    assert places["kabul"].stands_for == "afghan-taliban"
    assert places["qatar"].side == "mediator" and places["torkham"].kind == "crossing"


def test_unknown_side_names_entry_and_field(raw):
    bad = copy.deepcopy(raw)
    _entity(bad, "people", "ishaq-dar")["side"] = "neutral"
    with pytest.raises(ConfigError) as err:
        load_taxonomy(bad, "topics.yaml")
    message = str(err.value)
    assert "topics.yaml" in message and "ishaq-dar" in message and "side" in message and "mediator" in message


def test_stands_for_must_name_a_known_id(raw):
    bad = copy.deepcopy(raw)
    _entity(bad, "places", "kabul")["stands_for"] = "kabul-municipality"
    with pytest.raises(ConfigError, match=r"topics.yaml.*kabul.*stands_for.*kabul-municipality"):
        load_taxonomy(bad, "topics.yaml")


def test_stands_for_needs_a_side(raw):
    bad = copy.deepcopy(raw)
    place = _entity(bad, "places", "rawalpindi")
    place.pop("side", None)
    place["stands_for"] = "pakistan-army"
    with pytest.raises(ConfigError, match=r"rawalpindi.*stands_for.*needs a side"):
        load_taxonomy(bad, "topics.yaml")


def test_demonyms_and_families_are_validated(raw):
    bad = copy.deepcopy(raw)
    bad["developments"]["demonyms"]["nowhere-land"] = ["Nowherian"]
    with pytest.raises(ConfigError, match=r"developments.*demonyms.nowhere-land"):
        load_taxonomy(bad, "topics.yaml")
    bad = copy.deepcopy(raw)
    bad["developments"]["families"]["extend"] = []
    with pytest.raises(ConfigError, match=r"developments.*families.extend.*lemmas"):
        load_taxonomy(bad, "topics.yaml")
    bad = copy.deepcopy(raw)
    bad["developments"]["types"][0]["sides"] = "one"
    with pytest.raises(ConfigError, match=r"ceasefire-collapsed.*sides"):
        load_taxonomy(bad, "topics.yaml")


def test_state_dependent_statement_types_are_configured(taxonomy):
    assert {"hostilities", "talks-continue"} <= set(taxonomy.development_types())

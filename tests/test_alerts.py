"""Alert rules: config validation, matching, and firing once per (rule, story, development type)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from pipelines.alerts import (
    AlertEngine,
    alert_id,
    load_alert_config,
    load_alert_config_file,
    rule_matches,
)
from pipelines.config import parse_duration
from pipelines.errors import ConfigError
from pipelines.models import Alert, Article, Development, TopicHit

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures", "alerts")
SHIPPED = os.path.join(ROOT, "config", "alerts.yaml")
T0 = datetime(2025, 10, 19, 8, 0, tzinfo=UTC)


class FakeStore:
    """In-memory stand-in for the alert/outbox part of the Store protocol. Written while
    pipelines/store/sqlite.py was in progress; the firing tests now run against both this
    and the real SQLiteStore (the `store` fixture), and the crash-repair test needs to delete
    an outbox row, which only the fake allows."""

    url = "memory://"

    def __init__(self):
        self.alerts: dict[str, Alert] = {}
        self.outbox: dict[tuple[str, str], dict] = {}

    def record_alert(self, alert: Alert) -> bool:
        if alert.id in self.alerts:
            self.alerts[alert.id].copies += 1
            return False
        self.alerts[alert.id] = copy.deepcopy(alert)
        return True

    def get_alert(self, alert_id: str) -> Alert | None:
        found = self.alerts.get(alert_id)
        return copy.deepcopy(found) if found else None

    def list_alerts(self, since: str | None = None, limit: int = 100) -> list[Alert]:
        return [copy.deepcopy(a) for a in self.alerts.values()][:limit]

    def enqueue_delivery(self, alert_id: str, channel: str) -> None:
        self.outbox.setdefault((alert_id, channel), {"delivered": False, "attempts": 0, "error": None})

    def pending_deliveries(self, limit: int = 100) -> list[tuple[str, str, int]]:
        rows = [(a, c, r["attempts"]) for (a, c), r in self.outbox.items() if not r["delivered"]]
        return rows[:limit]

    def mark_delivered(self, alert_id: str, channel: str) -> None:
        self.outbox[(alert_id, channel)]["delivered"] = True

    def mark_delivery_failed(self, alert_id: str, channel: str, error: str) -> None:
        row = self.outbox[(alert_id, channel)]
        row["attempts"] += 1
        row["error"] = error

    def close(self) -> None:
        pass


@pytest.fixture(params=["fake", "sqlite"])
def store(request, tmp_path):
    if request.param == "fake":
        st = FakeStore()
    else:
        from pipelines.store.sqlite import SQLiteStore

        st = SQLiteStore(str(tmp_path / "store.db"))
    yield st
    st.close()


def load_articles() -> dict[str, Article]:
    with open(os.path.join(FIXTURES, "articles.json"), encoding="utf-8") as fh:
        return {a["id"][-1]: Article.from_dict(a) for a in json.load(fh)}


ARTICLES = load_articles()


def base_config() -> dict:
    return {
        "channels": [
            {"id": "console", "type": "console"},
            {"id": "jsonl", "type": "jsonl", "path": "var/alerts.jsonl"},
            {"id": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook", "enabled": False},
        ],
        "desks": [
            {"id": "security", "channels": ["console", "jsonl", "hook"]},
            {"id": "diplomacy", "channels": ["jsonl"]},
        ],
        "rules": [
            {"id": "ceasefire", "desk": "security",
             "developments": ["ceasefire-agreed", "ceasefire-violated", "ceasefire-collapsed"]},
            {"id": "ttp-border", "desk": "security",
             "query": '(TTP OR "Tehreek-e-Taliban" OR "Tehrik-i-Taliban") AND (border OR infiltrat*)',
             "window": "7d"},
            {"id": "talks", "desk": "diplomacy", "developments": ["talks-*"], "channels": ["jsonl"]},
        ],
    }


def engine(data: dict | None = None) -> AlertEngine:
    return AlertEngine(load_alert_config(data or base_config(), "alerts.yaml"))


# --------------------------------------------------------------------------- shipped config


def test_shipped_config_loads_with_the_three_desks():
    cfg = load_alert_config_file(SHIPPED)
    assert set(cfg.desks) == {"security", "diplomacy", "regional"}
    types = {c.type for c in cfg.channels.values()}
    assert types == {"console", "jsonl", "webhook", "email"}
    enabled = {c.id for c in cfg.channels.values() if c.enabled}
    assert enabled == {"console", "jsonl"}
    hook = next(c for c in cfg.channels.values() if c.type == "webhook")
    assert hook.url is None and hook.url_env and hook.secret_env
    mail = next(c for c in cfg.channels.values() if c.type == "email")
    assert mail.password_env and mail.smtp_host_env and mail.starttls
    assert cfg.channels["jsonl"].path == "var/alerts.jsonl"


def test_shipped_rules_fire_on_fixture_articles():
    cfg = load_alert_config_file(SHIPPED)
    by_id = {r.id: r for r in cfg.rules}
    assert rule_matches(by_id["ceasefire-developments"], ARTICLES["1"])
    assert rule_matches(by_id["ceasefire-developments"], ARTICLES["4"]) is None
    why = rule_matches(by_id["ttp-border-infiltration"], ARTICLES["4"])
    assert why and "Tehreek-e-Taliban" in why and "border" in why
    talks = copy.deepcopy(ARTICLES["1"])
    talks.development = Development("talks-opened", "x")
    assert rule_matches(by_id["talks-developments"], talks) == "development talks-opened"
    assert rule_matches(by_id["ceasefire-developments"], talks) is None


# --------------------------------------------------------------------------- matching


def test_rule_matches_conditions_and_explanation():
    cfg = load_alert_config(base_config(), "alerts.yaml")
    ceasefire, ttp, talks = cfg.rules
    assert rule_matches(ceasefire, ARTICLES["1"]) == "development ceasefire-agreed"
    assert rule_matches(ceasefire, ARTICLES["4"]) is None           # no development
    assert rule_matches(talks, ARTICLES["1"]) is None
    why = rule_matches(ttp, ARTICLES["4"])
    assert why == 'phrase "Tehreek-e-Taliban" in text; term "border" in text; term "infiltrat*" in title'
    # Article 5 says "TTP" and "border" but is outside the theatre: relevant_only (default) drops it.
    assert rule_matches(ttp, ARTICLES["5"]) is None
    data = base_config()
    data["rules"][1]["relevant_only"] = False
    ttp_all = load_alert_config(data, "alerts.yaml").rules[1]
    assert rule_matches(ttp_all, ARTICLES["5"]) is not None


def test_all_given_conditions_must_hold_and_min_score():
    data = base_config()
    data["rules"] = [{"id": "strict", "desk": "security", "topics": ["ceasefire", "talks"],
                      "developments": ["ceasefire-*"], "query": "truce", "min_score": 0.9}]
    rule = load_alert_config(data, "alerts.yaml").rules[0]
    why = rule_matches(rule, ARTICLES["1"])  # ceasefire 0.91, dev ceasefire-agreed, 'truce' in title
    assert why == 'development ceasefire-agreed; topic ceasefire; score 0.91 >= 0.9; term "truce" in title, text'
    assert rule_matches(rule, ARTICLES["2"]) is None   # ceasefire score 0.88 < 0.9
    no_topic = copy.deepcopy(ARTICLES["1"])
    no_topic.topics = [TopicHit("border-clashes", 0.99)]
    assert rule_matches(rule, no_topic) is None        # topics: none of the rule's
    no_word = copy.deepcopy(ARTICLES["1"])
    no_word.title, no_word.text = "Guns fall silent", "Both sides stopped firing."
    assert rule_matches(rule, no_word) is None         # query fails


# --------------------------------------------------------------------------- firing


def test_fires_once_per_desk_story_and_development_type(store):
    eng = engine()
    fired = eng.evaluate(ARTICLES["1"], store, now=T0)
    assert [a.rule_id for a in fired] == ["ceasefire"]
    alert = fired[0]
    expected_id = hashlib.sha256(b"desk:security|story-truce|ceasefire-agreed").hexdigest()[:32]
    assert alert.id == expected_id == alert_id("desk:security", "story-truce", "ceasefire-agreed")
    assert alert.rules == ["ceasefire"] and alert.kind == "story"
    assert (alert.desk, alert.article_id, alert.story_id, alert.development) == (
        "security", ARTICLES["1"].id, "story-truce", "ceasefire-agreed")
    assert alert.topics == ["ceasefire", "border-clashes"]
    assert alert.matched == "ceasefire: development ceasefire-agreed"
    assert alert.created == "2025-10-19T08:00:00Z"
    # The disabled webhook is not queued; the desk's enabled channels are.
    assert alert.channels == ["console", "jsonl"]
    assert sorted(store.pending_deliveries()) == [(alert.id, "console", 0), (alert.id, "jsonl", 0)]
    assert store.get_alert(alert.id).matched == alert.matched

    # A syndicated copy of the same story, same development: no new alert, copies counted.
    assert eng.evaluate(ARTICLES["2"], store, now=T0 + timedelta(hours=1)) == []
    assert store.get_alert(alert.id).copies == 2
    assert len(store.pending_deliveries()) == 2

    # Re-processing the very same article (a crashed cycle repeating) fires nothing either.
    assert eng.evaluate(ARTICLES["1"], store, now=T0 + timedelta(hours=2)) == []
    assert [a.id for a in store.list_alerts()] == [alert.id]


def test_new_development_type_in_same_story_fires(store):
    eng = engine()
    first = eng.evaluate(ARTICLES["1"], store, now=T0)
    second = eng.evaluate(ARTICLES["3"], store, now=T0 + timedelta(hours=3))  # ceasefire-violated
    assert [a.development for a in first] == ["ceasefire-agreed"]
    assert [a.development for a in second] == ["ceasefire-violated"]
    assert first[0].story_id == second[0].story_id
    assert first[0].id != second[0].id
    assert sorted(a.id for a in store.list_alerts()) == sorted([first[0].id, second[0].id])


def test_window_throttles_then_allows_a_new_firing(store):
    eng = engine()  # ceasefire rule: default 24h window
    first = eng.evaluate(ARTICLES["1"], store, now=T0)[0]
    assert eng.evaluate(ARTICLES["2"], store, now=T0 + timedelta(hours=23, minutes=59)) == []
    later = eng.evaluate(ARTICLES["2"], store, now=T0 + timedelta(hours=24, minutes=1))
    assert len(later) == 1
    assert later[0].id == alert_id("desk:security", "story-truce", "ceasefire-agreed", 1) != first.id
    assert later[0].article_id == ARTICLES["2"].id
    # ...and the new firing throttles in turn, measured from its own time.
    assert eng.evaluate(ARTICLES["1"], store, now=T0 + timedelta(hours=30)) == []
    third = eng.evaluate(ARTICLES["1"], store, now=T0 + timedelta(hours=48, minutes=2))
    assert [a.id for a in third] == [alert_id("desk:security", "story-truce", "ceasefire-agreed", 2)]
    queued = {(a, c) for a, c, _ in store.pending_deliveries()}
    assert {(first.id, "jsonl"), (later[0].id, "jsonl"), (third[0].id, "jsonl")} <= queued
    assert len(queued) == 6


def test_rule_window_is_per_rule(store):
    eng = engine()  # ttp-border: 7d window
    assert len(eng.evaluate(ARTICLES["4"], store, now=T0)) == 1
    assert eng.evaluate(ARTICLES["4"], store, now=T0 + timedelta(days=6)) == []
    assert len(eng.evaluate(ARTICLES["4"], store, now=T0 + timedelta(days=7, seconds=1))) == 1


def test_keyword_rule_keys_on_development_type_too(store):
    eng = engine()
    assert len(eng.evaluate(ARTICLES["4"], store, now=T0)) == 1
    moved = copy.deepcopy(ARTICLES["4"])
    moved.id = "a10000000000000000000000000000ff"
    moved.development = Development("ceasefire-violated", "x")
    fired = eng.evaluate(moved, store, now=T0 + timedelta(hours=1))
    # Both rules are the security desk's: one notification that lists them both.
    assert [sorted(a.rules) for a in fired] == [["ceasefire", "ttp-border"]]
    assert {a.development for a in fired} == {"ceasefire-violated"}


def test_two_workers_on_one_store_fire_once(store):
    first = engine().evaluate(ARTICLES["1"], store, now=T0)
    second = engine().evaluate(ARTICLES["1"], store, now=T0)
    assert len(first) == 1 and second == []


def test_copy_within_window_does_not_requeue_a_delivered_alert(store):
    eng = engine()
    alert = eng.evaluate(ARTICLES["1"], store, now=T0)[0]
    store.mark_delivered(alert.id, "console")
    store.mark_delivered(alert.id, "jsonl")
    assert eng.evaluate(ARTICLES["2"], store, now=T0 + timedelta(minutes=5)) == []
    assert store.pending_deliveries() == []


def test_requeue_repairs_a_lost_outbox_row():
    eng, store = engine(), FakeStore()
    alert = eng.evaluate(ARTICLES["1"], store, now=T0)[0]
    store.mark_delivered(alert.id, "console")
    del store.outbox[(alert.id, "jsonl")]  # as if the process died between recording and queuing
    assert eng.evaluate(ARTICLES["2"], store, now=T0 + timedelta(minutes=5)) == []
    assert store.pending_deliveries() == [(alert.id, "jsonl", 0)]


def test_disabled_rule_never_fires(store):
    data = base_config()
    data["rules"][0]["enabled"] = False
    assert engine(data).evaluate(ARTICLES["1"], store, now=T0) == []
    assert store.list_alerts() == []


# --------------------------------------------------------------------------- validation


def mutate(fn):
    data = base_config()
    fn(data)
    return data


BAD = [
    ("top-level key", lambda d: d.update(rulez=[]), None, "rulez", "unknown top-level key"),
    ("channel unknown key", lambda d: d["channels"][1].update(file="x"), "channel jsonl", "file", "unknown key"),
    ("channel bad type", lambda d: d["channels"][0].update(type="pager"), "channel console", "type", "pager"),
    ("channel duplicate", lambda d: d["channels"].append({"id": "jsonl", "type": "console"}),
     "channel jsonl", "id", "duplicate"),
    ("channel bad id", lambda d: d["channels"][0].update(id="Con sole"), "channel #1", "id", "not a valid id"),
    ("jsonl no path", lambda d: d["channels"][1].pop("path"), "channel jsonl", "path", "required"),
    ("webhook bad url", lambda d: d["channels"][2].update(url="ftp://x/hook"), "channel hook", "url", "bad URL"),
    ("webhook no host", lambda d: d["channels"][2].update(url="http:///hook"), "channel hook", "url", "bad URL"),
    ("webhook bad port", lambda d: d["channels"][2].update(url="http://h:99999/"), "channel hook", "url",
     "bad URL"),
    ("webhook url and env", lambda d: d["channels"][2].update(url_env="HOOK"), "channel hook", "url",
     "exactly one"),
    ("webhook bad format", lambda d: d["channels"][2].update(format="teams"), "channel hook", "format", "teams"),
    ("webhook secret inline", lambda d: d["channels"][2].update(secret_env="s3cr3t value!"), "channel hook",
     "secret_env", "environment variable name"),
    ("webhook headers type", lambda d: d["channels"][2].update(headers=["a"]), "channel hook", "headers",
     "mapping"),
    ("webhook timeout type", lambda d: d["channels"][2].update(timeout="10s"), "channel hook", "timeout",
     "number"),
    ("enabled not bool", lambda d: d["channels"][0].update(enabled="yes"), "channel console", "enabled",
     "true or false"),
    ("email no to", lambda d: d["channels"].append({"id": "mail", "type": "email", "from": "a@b.org",
                                                    "smtp_host": "localhost"}), "channel mail", "to", "required"),
    ("email bad to", lambda d: d["channels"].append({"id": "mail", "type": "email", "to": ["desk"],
                                                     "from": "a@b.org", "smtp_host": "h"}),
     "channel mail", "to", "not an email address"),
    ("email password inline", lambda d: d["channels"].append({
        "id": "mail", "type": "email", "to": ["d@b.org"], "from": "a@b.org", "smtp_host": "h",
        "password": "hunter2"}), "channel mail", "password", "unknown key"),
    ("email port bool", lambda d: d["channels"].append({
        "id": "mail", "type": "email", "to": ["d@b.org"], "from": "a@b.org", "smtp_host": "h",
        "smtp_port": True}), "channel mail", "smtp_port", "boolean"),
    ("desk unknown channel", lambda d: d["desks"][0]["channels"].append("pager"), "desk security", "channels",
     "unknown channel 'pager'"),
    ("rule unknown key", lambda d: d["rules"][0].update(topic=["x"]), "rule ceasefire", "topic", "unknown key"),
    ("rule duplicate", lambda d: d["rules"].append({"id": "talks", "desk": "diplomacy", "query": "x"}),
     "rule talks", "id", "duplicate"),
    ("rule no id", lambda d: d["rules"][0].pop("id"), "rule #1", "id", "required"),
    ("rule not mapping", lambda d: d["rules"].append("talks"), "rule #4", None, "mapping"),
    ("rule unknown desk", lambda d: d["rules"][0].update(desk="sports"), "rule ceasefire", "desk",
     "unknown desk"),
    ("rule no desk", lambda d: d["rules"][0].pop("desk"), "rule ceasefire", "desk", "required"),
    ("rule bad query", lambda d: d["rules"][1].update(query="(TTP OR border"), "rule ttp-border", "query",
     "unclosed '(' (at position 0)"),
    ("rule query type", lambda d: d["rules"][1].update(query=["TTP"]), "rule ttp-border", "query", "text"),
    ("rule unknown channel", lambda d: d["rules"][2].update(channels=["sms"]), "rule talks", "channels",
     "unknown channel 'sms'"),
    ("rule bad window", lambda d: d["rules"][0].update(window="1 fortnight"), "rule ceasefire", "window",
     "bad duration"),
    ("rule zero window", lambda d: d["rules"][0].update(window="0h"), "rule ceasefire", "window", "bad duration"),
    ("rule window fraction", lambda d: d["rules"][0].update(window=1.5), "rule ceasefire", "window", "not float"),
    ("rule no condition", lambda d: d["rules"][0].pop("developments"), "rule ceasefire", None,
     "at least one condition"),
    ("rule bad development", lambda d: d["rules"][0].update(developments=["Ceasefire Agreed"]),
     "rule ceasefire", "developments", "not a development type"),
    ("rule topics not list", lambda d: d["rules"][0].update(topics="ceasefire"), "rule ceasefire", "topics",
     "a list"),
    ("rule min_score negative", lambda d: d["rules"][0].update(min_score=-1), "rule ceasefire", "min_score",
     "negative"),
    ("rule relevant_only type", lambda d: d["rules"][0].update(relevant_only="no"), "rule ceasefire",
     "relevant_only", "true or false"),
    ("rule without channels", lambda d: (d["desks"].append({"id": "quiet"}),
                                         d["rules"].append({"id": "q", "desk": "quiet", "query": "x"})),
     "rule q", "channels", "no channels"),
    ("channels not list", lambda d: d.update(channels={"id": "x"}), "channels", None, "must be a list"),
]


@pytest.mark.parametrize("label,change,entry,field,fragment", BAD, ids=[b[0] for b in BAD])
def test_config_errors_name_file_entry_and_field(label, change, entry, field, fragment):
    with pytest.raises(ConfigError) as info:
        load_alert_config(mutate(change), "config/alerts.yaml")
    err = info.value
    assert (err.file, err.entry, err.field) == ("config/alerts.yaml", entry, field), str(err)
    assert fragment in err.message, str(err)
    assert str(err).startswith("config/alerts.yaml")
    assert "\n" not in str(err)


def test_unknown_topic_and_development_checked_against_taxonomy():
    data = base_config()
    data["rules"][0]["topics"] = ["ceasefire", "ceasfire"]
    with pytest.raises(ConfigError) as info:
        load_alert_config(data, "alerts.yaml", topic_ids={"ceasefire", "talks"})
    assert (info.value.entry, info.value.field) == ("rule ceasefire", "topics")
    assert "'ceasfire'" in info.value.message
    # Without a taxonomy the same data loads.
    assert load_alert_config(data, "alerts.yaml").rules[0].topics == ("ceasefire", "ceasfire")
    data = base_config()
    with pytest.raises(ConfigError) as info:
        load_alert_config(data, "alerts.yaml", development_types={"ceasefire-agreed", "ceasefire-violated"})
    assert (info.value.field, "ceasefire-collapsed" in info.value.message) == ("developments", True)
    data["rules"][0]["developments"] = ["ceasefire-agreed"]
    cfg = load_alert_config(data, "alerts.yaml", development_types={"ceasefire-agreed", "talks-opened"})
    assert cfg.rules[2].developments == ("talks-*",)


def test_rule_channels_default_to_desk_channels():
    cfg = load_alert_config(base_config(), "alerts.yaml")
    assert cfg.rules[0].channels == ("console", "jsonl", "hook")
    assert cfg.rules[2].channels == ("jsonl",)
    assert cfg.desk_channels("security") == ["console", "jsonl"]  # hook is disabled


def test_windows():
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("30s") == parse_duration(30) == parse_duration("30") == timedelta(seconds=30)
    for bad in ("", "h", "-1h", "1.5h", "3y", 0, "0m", True, 1.5, None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_rule_window_accepts_every_duration_form():
    for window, expected in (("90s", timedelta(seconds=90)), (3600, timedelta(hours=1)), ("2d", timedelta(days=2))):
        data = base_config()
        data["rules"][0]["window"] = window
        assert load_alert_config(data, "alerts.yaml").rules[0].window == expected


def test_config_file_errors(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_alert_config_file(str(missing))
    assert info.value.file == str(missing) and "cannot read" in info.value.message

    broken = tmp_path / "alerts.yaml"
    broken.write_text("rules:\n  - id: x\n    query: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_alert_config_file(str(broken))
    assert "invalid YAML at line" in info.value.message and "\n" not in str(info.value)

    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_alert_config_file(str(listy))

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base_config()), encoding="utf-8")
    assert [r.id for r in load_alert_config_file(str(good)).rules] == ["ceasefire", "ttp-border", "talks"]

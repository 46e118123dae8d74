"""Development events and the watch's state (pipelines/events.py), and alerts per event (pipelines/alerts.py).

Runs on a real SQLite store; the texts are ours. Detection is not under test here: articles carry the
development statement the tagger would have produced.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from pipelines.alerts import AlertEngine, event_alert_id, load_alert_config, log_entry
from pipelines.config import load_events, load_yaml
from pipelines.errors import ConfigError
from pipelines.events import EventBook, WatchState, interpret, load_event_rules, state_from_events
from pipelines.models import Article, Development, TopicHit, iso
from pipelines.notify import Notifier
from pipelines.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[1]
EVENTS_YAML = REPO / "config" / "events.yaml"
T0 = datetime(2025, 10, 15, 9, 0, tzinfo=UTC)


def rules():
    return load_event_rules(load_yaml(EVENTS_YAML), str(EVENTS_YAML))


def raw_rules() -> dict:
    return yaml.safe_load(EVENTS_YAML.read_text(encoding="utf-8"))


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "events.db")
    yield s
    s.close()


_SEQ = iter(range(1, 10_000))


def report(dev_type: str | None, outlet: str, at: datetime, *, mode: str = "asserted", venue: str | None = None,
           places: list[str] | None = None, parties: list[str] | None = None, story: str | None = None,
           seen: datetime | None = None, title: str = "", topics: list[str] | None = None) -> Article:
    n = next(_SEQ)
    aid = f"{n:032x}"
    dev = None
    if dev_type:
        dev = Development(dev_type, f"{outlet} wrote that the development happened ({n}).", mode=mode,
                          venue=venue, places=list(places or []), parties=list(parties or []))
    return Article(id=aid, url=f"https://{outlet.lower().replace(' ', '-')}.example/{n}", original_url="",
                   feed_id="f", desk="security", source=outlet, title=title or f"Report {n} from {outlet}",
                   text="text", content_hash=f"h{n}", story_id=story or f"story-{n}", language="en",
                   published=iso(at), fetched=iso(seen or at + timedelta(minutes=20)) or "",
                   topics=[TopicHit(t, 0.9) for t in (topics or ["ceasefire"])], development=dev, relevant=True)


def stored(store, article: Article) -> Article:
    store.upsert_article(article)
    return article


# --------------------------------------------------------------------------- config


def test_shipped_events_config_loads_and_matches_topics():
    r = load_events(REPO / "config", None)
    assert r.watch == "pak-afg"
    assert r.family_of("talks-stalled") == "talks" and r.family_of("ceasefire-violated") == "ceasefire"
    assert r.readings["hostilities"].becomes == "ceasefire-violated"


@pytest.mark.parametrize("mutate, entry, field_name", [
    (lambda d: d.update(colour="blue"), None, "colour"),
    (lambda d: d["families"]["talks"]["types"].update({"talks-opened": "chatting"}), "family talks", "types"),
    (lambda d: d["matching"][0].update(types=["ceasefire-wobbled"]), "matching #1", "types"),
    (lambda d: d["matching"][0].update(window="soon"), "matching #1", "window"),
    (lambda d: d["readings"][0].update(becomes="talks-opened"), "readings #1", "becomes"),
    (lambda d: d["status"].update(corroborated_at=0), "status", "corroborated_at"),
])
def test_bad_events_config_names_file_entry_and_field(mutate, entry, field_name):
    data = raw_rules()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        load_event_rules(data, "events.yaml")
    assert err.value.file == "events.yaml"
    assert (err.value.entry, err.value.field) == (entry, field_name)


def test_event_type_unknown_to_topics_is_a_config_error(tmp_path):
    (tmp_path / "events.yaml").write_text(EVENTS_YAML.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError, match="not in topics.yaml"):
        load_events(tmp_path, ["ceasefire-agreed"])


# --------------------------------------------------------------------------- reading by the state


def test_fighting_is_a_violation_only_while_a_truce_is_in_force():
    r = rules()
    fighting = Development("hostilities", "Artillery fire hit border posts overnight.")
    state = WatchState.initial(r)
    assert interpret(fighting, state, r) is None  # no truce: clashes, not a development of the watch
    state.apply(r, "ceasefire-agreed", "2025-10-15T09:00:00Z")
    read = interpret(fighting, state, r)
    assert read is not None and read.type == "ceasefire-violated" and read.evidence == fighting.evidence
    state.apply(r, "ceasefire-collapsed", "2025-10-20T09:00:00Z")
    assert interpret(fighting, state, r) is None  # the truce is over: fighting violates nothing


def test_talks_continuing_after_a_stall_is_a_resumption():
    r = rules()
    going_on = Development("talks-continue", "Negotiators kept talking into the night.")
    state = WatchState.initial(r)
    state.apply(r, "talks-opened", "2025-10-25T09:00:00Z")
    assert interpret(going_on, state, r) is None  # talks in session carry on: nothing new
    state.apply(r, "talks-stalled", "2025-10-27T09:00:00Z")
    assert interpret(going_on, state, r).type == "talks-resumed"


@pytest.mark.parametrize("mode", ["hypothetical", "future", "question", "background"])
def test_statements_that_announce_nothing_are_not_developments(mode):
    r = rules()
    assert interpret(Development("ceasefire-collapsed", "x", mode=mode), WatchState.initial(r), r) is None


def test_denials_and_allegations_pass_through_for_the_events():
    r = rules()
    for mode in ("denied", "alleged"):
        dev = interpret(Development("talks-broke-down", "x", mode=mode), WatchState.initial(r), r)
        assert dev is not None and dev.mode == mode


# --------------------------------------------------------------------------- attaching


def test_many_outlets_one_development_is_one_event(store):
    book = EventBook(rules(), store)
    outlets = ["Wire A", "Daily B", "Radio C", "Wire A"]  # the same outlet twice counts once
    results = [book.attach(stored(store, report("ceasefire-agreed", o, T0 + timedelta(hours=i * 3))))
               for i, o in enumerate(outlets)]
    assert [a.opened for a in results] == [True, False, False, False]
    event = store.get_event(results[0].event.id)
    assert len(event.reports) == 4 and event.outlets == ["Wire A", "Daily B", "Radio C"]
    assert event.status == "corroborated" and event.first_report.outlet == "Wire A"
    assert event.state_before == "none" and event.state_after == "in-force"
    assert store.count_events() == 1
    assert store.get_article(results[1].event.reports[1].article_id).event_id == event.id


def test_attaching_the_same_report_twice_changes_nothing(store):
    book = EventBook(rules(), store)
    article = stored(store, report("ceasefire-agreed", "Wire A", T0))
    first = book.attach(article)
    again = EventBook(rules(), store).attach(copy.deepcopy(article))  # a repeated cycle, fresh process
    assert again.event.id == first.event.id and not again.added and not again.opened
    assert len(store.get_event(first.event.id).reports) == 1


@pytest.mark.parametrize("second, same", [
    (dict(dev_type="talks-opened", at=T0 + timedelta(hours=5), venue="istanbul"), True),  # scheduled -> opened
    (dict(dev_type="talks-opened", at=T0 + timedelta(hours=5), venue="riyadh"), False),  # another venue
    (dict(dev_type="talks-scheduled", at=T0 + timedelta(days=5), venue="istanbul"), False),  # outside the window
    (dict(dev_type="talks-broke-down", at=T0 + timedelta(hours=5), venue="istanbul"), False),  # a transition
    (dict(dev_type="talks-scheduled", at=T0 + timedelta(hours=5), venue=None), True),  # venue unknown: compatible
])
def test_compatible_type_window_and_venue(store, second, same):
    book = EventBook(rules(), store)
    first = book.attach(stored(store, report("talks-scheduled", "Wire A", T0, venue="istanbul")))
    other = book.attach(stored(store, report(second["dev_type"], "Daily B", second["at"], venue=second["venue"])))
    assert (other.event.id == first.event.id) is same
    assert other.opened is not same


def test_violations_a_wave_in_one_day_an_exchange_at_one_place_over_days(store):
    book = EventBook(rules(), store)
    book.attach(stored(store, report("ceasefire-agreed", "Wire A", T0)))
    at = T0 + timedelta(days=2)

    def violation(outlet, when, places):
        return book.attach(stored(store, report("ceasefire-violated", outlet, when, places=places))).event.id

    chaman = violation("Wire A", at, ["chaman"])
    assert violation("Daily B", at + timedelta(hours=1), ["chaman", "spin-boldak"]) == chaman
    # Fighting spreading along the border the same day is one wave.
    assert violation("Radio C", at + timedelta(hours=6), ["kurram"]) == chaman
    # Chaman reported again each day stays one exchange...
    assert violation("Daily B", at + timedelta(days=1, hours=12), ["chaman"]) == chaman
    assert violation("Wire A", at + timedelta(days=3), ["spin-boldak"]) == chaman
    # ...but fighting the next days at a place the event never named is another violation.
    assert violation("Radio C", at + timedelta(days=3, hours=2), ["khost"]) != chaman
    assert store.count_events() == 3


def test_bad_since_in_matching_names_the_field():
    data = raw_rules()
    data["matching"][0]["since"] = "whenever"
    with pytest.raises(ConfigError) as err:
        load_event_rules(data, "events.yaml")
    assert (err.value.entry, err.value.field) == ("matching #1", "since")


def test_parties_must_agree_where_both_name_them(store):
    book = EventBook(rules(), store)
    first = book.attach(stored(store, report("ceasefire-agreed", "Wire A", T0, parties=["pakistan", "afghanistan"])))
    same = book.attach(stored(store, report("ceasefire-agreed", "Daily B", T0, parties=["pakistan"])))
    other = book.attach(stored(store, report("ceasefire-agreed", "Radio C", T0, parties=["thailand"])))
    assert same.event.id == first.event.id != other.event.id


def test_denial_disputes_the_event_it_denies(store):
    book = EventBook(rules(), store)
    claim = book.attach(stored(store, report("talks-broke-down", "Wire A", T0, topics=["peace-talks"])))
    denial = book.attach(stored(store, report("talks-broke-down", "Kabul Radio", T0 + timedelta(hours=2),
                                              mode="denied", topics=["peace-talks"])))
    assert denial.event.id == claim.event.id and not denial.opened
    event = store.get_event(claim.event.id)
    assert event.status == "disputed" and event.outlets == ["Wire A"]  # a denial is not corroboration


def test_a_denial_of_nothing_opens_nothing(store):
    book = EventBook(rules(), store)
    assert book.attach(stored(store, report("talks-broke-down", "Kabul Radio", T0, mode="denied"))) is None
    assert store.count_events() == 0


def test_an_accusation_is_a_violation_alleged(store):
    book = EventBook(rules(), store)
    book.attach(stored(store, report("ceasefire-agreed", "Wire A", T0)))
    alleged = book.attach(stored(store, report("ceasefire-violated", "Daily B", T0 + timedelta(days=1),
                                               mode="alleged")))
    assert alleged.opened and alleged.event.status == "disputed"


def test_a_transition_supersedes_the_event_that_set_the_state(store):
    book = EventBook(rules(), store)
    opened = book.attach(stored(store, report("talks-opened", "Wire A", T0)))
    stalled = book.attach(stored(store, report("talks-stalled", "Wire A", T0 + timedelta(days=2))))
    assert stalled.opened and stalled.event.state_before == "in-session" and stalled.event.state_after == "stalled"
    old = store.get_event(opened.event.id)
    assert old.status == "superseded" and old.superseded_by == stalled.event.id


def test_state_rebuilt_from_the_store_is_the_same(store, tmp_path):
    book = EventBook(rules(), store)
    for dev_type, days in [("ceasefire-agreed", 0), ("talks-scheduled", 1), ("ceasefire-extended", 2),
                           ("talks-opened", 3), ("talks-stalled", 5)]:
        book.attach(stored(store, report(dev_type, "Wire A", T0 + timedelta(days=days))))
    live = book.state().to_dict()
    assert live["ceasefire"]["state"] == "extended" and live["talks"]["state"] == "stalled"
    reopened = SQLiteStore(store.path)
    try:
        rebuilt = state_from_events(rules(), reopened.list_events(watch="pak-afg")).to_dict()
    finally:
        reopened.close()
    assert rebuilt == live
    # And as of a time in the middle: what the state was then.
    assert book.state(iso(T0 + timedelta(days=1, hours=1))).get("ceasefire") == "in-force"


# --------------------------------------------------------------------------- alerts per event

ALERTS = {
    "channels": [{"id": "jsonl", "type": "jsonl", "path": "alerts.jsonl"}],
    "desks": [{"id": "security", "channels": ["jsonl"], "timezone": "Asia/Karachi"},
              {"id": "diplomacy", "channels": ["jsonl"]}],
    "rules": [
        {"id": "ceasefire-dev", "desk": "security", "developments": ["ceasefire-*"],
         "escalate": {"corroborated": 3, "disputed": True}},
        {"id": "truce-words", "desk": "security", "query": "truce OR ceasefire"},
        {"id": "talks-dev", "desk": "diplomacy", "developments": ["talks-*", "agreement-reached"]},
    ],
}


def engine(max_age: timedelta | None = timedelta(hours=48)) -> AlertEngine:
    return AlertEngine(load_alert_config(copy.deepcopy(ALERTS), "alerts.yaml"), max_age=max_age)


def run(store, book, eng, article, now=None):
    stored(store, article)
    attachment = book.attach(article)
    return eng.evaluate(article, store, now or datetime.fromisoformat(article.fetched.replace("Z", "+00:00")),
                        attachment)


def test_one_notification_per_event_and_desk_however_many_reports(store):
    book, eng = EventBook(rules(), store), engine()
    first = run(store, book, eng, report("ceasefire-agreed", "Wire A", T0, title="Truce agreed at the border"))
    assert len(first) == 1
    alert = first[0]
    assert alert.kind == "event" and alert.desk == "security" and alert.development == "ceasefire-agreed"
    # The keyword rule of the same desk is folded into the event's one alert.
    assert alert.rules == ["ceasefire-dev", "truce-words"]
    assert alert.id == event_alert_id("security", alert.event_id)
    for i, outlet in enumerate(["Daily B", "Wire A", "Radio C"], 1):
        assert run(store, book, eng, report("ceasefire-agreed", outlet, T0 + timedelta(hours=i),
                                            title="Ceasefire holds")) == [] or outlet == "Radio C"
    sent = store.list_alerts()
    # Reports 2-4 updated the alert; the third outlet was the escalation the rule asked for.
    assert [a.kind for a in sent] == ["escalation", "event"]
    assert sent[0].escalation == "corroborated:3"
    assert store.get_alert(alert.id).copies == 4


def test_a_transition_is_a_new_event_and_alerts_again(store):
    book, eng = EventBook(rules(), store), engine()
    opened = run(store, book, eng, report("talks-opened", "Wire A", T0, topics=["peace-talks"]))
    stalled = run(store, book, eng, report("talks-stalled", "Daily B", T0 + timedelta(days=2),
                                           topics=["peace-talks"]))
    broke = run(store, book, eng, report("talks-broke-down", "Radio C", T0 + timedelta(days=3),
                                         topics=["peace-talks"]))
    assert [(a.desk, a.development) for a in opened + stalled + broke] == [
        ("diplomacy", "talks-opened"), ("diplomacy", "talks-stalled"), ("diplomacy", "talks-broke-down")]
    assert (broke[0].state_before, broke[0].state_after) == ("stalled", "broken-down")


def test_denial_escalates_only_when_asked(store):
    book, eng = EventBook(rules(), store), engine()
    run(store, book, eng, report("ceasefire-agreed", "Wire A", T0))
    denial = report("ceasefire-agreed", "Kabul Radio", T0 + timedelta(hours=1), mode="denied")
    fired = run(store, book, eng, denial)
    assert [(a.kind, a.escalation, a.desk) for a in fired] == [("escalation", "disputed", "security")]
    # A second denial is not a second escalation.
    assert run(store, book, eng, report("ceasefire-agreed", "Kabul TV", T0 + timedelta(hours=2), mode="denied")) == []


def test_backlog_never_notifies_but_builds_the_event_and_state(store):
    book, eng = EventBook(rules(), store), engine()
    old = report("ceasefire-agreed", "Wire A", T0, seen=T0 + timedelta(days=30))  # a new feed's backlog
    assert run(store, book, eng, old) == []
    assert store.count_events() == 1 and book.state().get("ceasefire") == "in-force"
    assert store.get_article(old.id).event_id is not None and store.list_alerts() == []
    # Undated: first seen counts, so it is fresh.
    undated = report("talks-opened", "Daily B", T0 + timedelta(days=30), topics=["peace-talks"])
    undated.published = None
    assert len(run(store, book, eng, undated)) == 1
    # A fresh report of an old event notifies nobody who already had it, and nobody is told of the backlog.
    assert run(store, book, eng, report("ceasefire-agreed", "Radio C", T0 + timedelta(hours=5),
                                        seen=T0 + timedelta(days=30))) == []


def test_no_event_config_keeps_story_alerts_per_desk(store):
    eng = engine()
    a = report("ceasefire-agreed", "Wire A", T0, story="s1", title="Truce agreed")
    b = report("ceasefire-agreed", "Daily B", T0 + timedelta(hours=1), story="s1", title="Truce agreed")
    assert [x.rules for x in eng.evaluate(stored(store, a), store, T0)] == [["ceasefire-dev", "truce-words"]]
    assert eng.evaluate(stored(store, b), store, T0 + timedelta(hours=1)) == []  # same story, same desk


def test_payload_and_log_carry_the_event_in_the_desks_time_zone(store, tmp_path):
    book, eng = EventBook(rules(), store), engine()
    [alert] = run(store, book, eng, report("ceasefire-agreed", "Wire A", T0))
    run(store, book, eng, report("ceasefire-agreed", "Daily B", T0 + timedelta(hours=1)))
    config = load_alert_config(copy.deepcopy(ALERTS), "alerts.yaml")
    entry = log_entry(store.get_alert(alert.id), store.get_event(alert.event_id), config)
    assert entry["event"]["outlet_count"] == 2 and entry["event"]["first_report"]["outlet"] == "Wire A"
    assert entry["published_local"] == "2025-10-15 14:00 PKT"  # 09:00 UTC in Karachi
    assert entry["first_seen_local"] == "2025-10-15 14:20 PKT"
    assert [r["outlet"] for r in entry["reports"]] == ["Wire A", "Daily B"]
    notifier = Notifier(config, base_dir=str(tmp_path))
    assert notifier.deliver_pending(store)[0] == 1
    line = json.loads((tmp_path / "alerts.jsonl").read_text(encoding="utf-8"))
    assert line["event"]["state_after"] == "in-force" and line["event"]["outlets"] == ["Wire A", "Daily B"]
    assert line["evidence"].startswith("Wire A wrote")
    assert line["confidence"] == 0.75 and line["event"]["confidence"] > 0.8  # at sending: two outlets now


# --------------------------------------------------------------------------- background to an event

RELATED_ALERTS = copy.deepcopy(ALERTS)
RELATED_ALERTS["rules"].append({"id": "talks-words", "desk": "diplomacy", "query": "talks OR negotiators"})


def background(outlet: str, at: datetime, *, places: list[str] | None = None) -> Article:
    article = report(None, outlet, at, topics=["peace-talks"], title="What the negotiators want from the talks")
    article.places = [{"id": p, "name": p.title()} for p in places or []]
    return article


def evaluate_background(store, book, eng, article):
    stored(store, article)
    attachment = book.attach(article) or book.relate(article)
    return attachment, eng.evaluate(article, store, datetime.fromisoformat(article.fetched.replace("Z", "+00:00")),
                                    attachment)


def test_background_folds_into_the_desks_event_alert(store):
    book = EventBook(rules(), store)
    eng = AlertEngine(load_alert_config(copy.deepcopy(RELATED_ALERTS), "alerts.yaml"), max_age=timedelta(hours=48))
    [opened] = run(store, book, eng, report("talks-opened", "Wire A", T0, venue="istanbul", topics=["peace-talks"],
                                            title="Talks open"))
    assert opened.rules == ["talks-dev", "talks-words"]
    attachment, fired = evaluate_background(store, book, eng, background("Daily B", T0 + timedelta(hours=20),
                                                                         places=["istanbul"]))
    assert attachment.related and attachment.event.id == opened.event_id and fired == []
    event = store.get_event(opened.event_id)
    assert [r.mode for r in event.reports] == ["asserted", "background"]
    assert event.outlets == ["Wire A"] and event.status == "reported"  # background is no corroboration
    assert store.get_alert(opened.id).copies == 2
    assert store.get_article(attachment.event.reports[1].article_id).event_id == opened.event_id


@pytest.mark.parametrize("late, places", [
    (timedelta(days=4), ["istanbul"]),  # the event went quiet long ago
    (timedelta(hours=20), ["riyadh", "doha"]),  # about another round (riyadh is another event's venue)
])
def test_background_elsewhere_or_later_pages_as_a_story(store, late, places):
    book = EventBook(rules(), store)
    eng = AlertEngine(load_alert_config(copy.deepcopy(RELATED_ALERTS), "alerts.yaml"), max_age=timedelta(hours=48))
    run(store, book, eng, report("talks-scheduled", "Wire A", T0 - timedelta(days=30), venue="riyadh",
                                 topics=["peace-talks"]))
    run(store, book, eng, report("talks-opened", "Wire A", T0, venue="istanbul", topics=["peace-talks"]))
    attachment, fired = evaluate_background(store, book, eng, background("Daily B", T0 + late, places=places))
    assert attachment is None
    assert [(a.kind, a.rules) for a in fired] == [("story", ["talks-words"])]


def test_background_for_a_desk_without_the_event_alert_is_a_story_alert(store):
    book = EventBook(rules(), store)
    eng = AlertEngine(load_alert_config(copy.deepcopy(RELATED_ALERTS), "alerts.yaml"), max_age=timedelta(hours=48))
    run(store, book, eng, report("ceasefire-agreed", "Wire A", T0, title="Guns fall silent"))  # security only
    article = background("Daily B", T0 + timedelta(hours=3))
    article.topics.append(TopicHit("ceasefire", 0.8))
    attachment, fired = evaluate_background(store, book, eng, article)
    assert attachment.related
    assert [(a.desk, a.kind) for a in fired] == [("diplomacy", "story")]


def test_family_topic_unknown_to_topics_is_a_config_error(tmp_path):
    (tmp_path / "events.yaml").write_text(EVENTS_YAML.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown topic 'peace-talks'") as err:
        load_events(tmp_path, None, {"ceasefire", "mediation"})
    assert (err.value.entry, err.value.field) == ("family talks", "topics")


def test_a_desk_first_reached_by_a_later_report_gets_that_reports_type(store):
    book, eng = EventBook(rules(), store), engine()
    [security] = run(store, book, eng, report("ceasefire-extended", "Wire A", T0, topics=["ceasefire"]))
    later = report("talks-resumed", "Daily B", T0 + timedelta(hours=6), topics=["peace-talks"])
    [diplomacy] = run(store, book, eng, later)
    assert diplomacy.event_id == security.event_id  # one outcome, told two ways
    assert (security.desk, security.development) == ("security", "ceasefire-extended")
    assert (diplomacy.desk, diplomacy.development) == ("diplomacy", "talks-resumed")


def test_weaker_words_after_the_stronger_development_are_the_same_event(store):
    book = EventBook(rules(), store)
    broke = book.attach(stored(store, report("talks-broke-down", "Wire A", T0)))
    later = book.attach(stored(store, report("talks-stalled", "Daily B", T0 + timedelta(hours=20))))
    assert later.event.id == broke.event.id and not later.opened
    # The other way round is a transition: stalled, then broke down, two events.
    stalled = book.attach(stored(store, report("talks-stalled", "Wire A", T0 + timedelta(days=10))))
    broke2 = book.attach(stored(store, report("talks-broke-down", "Daily B", T0 + timedelta(days=10, hours=5))))
    assert stalled.opened and broke2.opened and broke2.event.state_before == "stalled"


def test_windows_take_every_duration_form():
    data = load_yaml(EVENTS_YAML)
    data["matching"][0]["window"] = 3600
    data["related"] = {"window": "90m"}
    rules = load_event_rules(data, "events.yaml")
    assert rules.groups[0].window == timedelta(hours=1)
    assert rules.related_window == timedelta(minutes=90)
    data["matching"][0]["window"] = "3 days"
    with pytest.raises(ConfigError) as info:
        load_event_rules(data, "events.yaml")
    assert (info.value.entry, info.value.field) == ("matching #1", "window")


def test_a_repeated_evaluation_requeues_an_event_alert_lost_in_a_crash(store):
    """A crash between recording an event alert and queuing its deliveries: the rerun (the report is
    already in the event) must queue them, without counting the report twice."""
    book, eng = EventBook(rules(), store), engine()
    article = report("ceasefire-agreed", "Wire A", T0)
    [alert] = run(store, book, eng, article)
    with store._write("test: lose the outbox rows") as conn:
        conn.execute("DELETE FROM deliveries")
    assert store.pending_deliveries() == []
    assert run(store, EventBook(rules(), store), eng, copy.deepcopy(article)) == []
    assert store.pending_deliveries() == [(alert.id, "jsonl", 0)]
    assert store.get_alert(alert.id).copies == 1

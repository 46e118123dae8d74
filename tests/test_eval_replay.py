"""`newsmon eval replay`: the metric functions on hand-built cases and alerts, and one real replay of
our own tiny chronology (tests/fixtures/replay/mini.jsonl, invented reports) end to end."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipelines import eval_replay as er
from pipelines.errors import NewsmonError
from pipelines.models import Alert, Article, Development, DevelopmentEvent, EventReport

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "replay" / "mini.jsonl"


def case(cid: str, event: str | None, dev: str | None, published: str = "2026-03-02", *, relevant: bool = True,
         outlet: str = "Outlet A") -> er.ReplayCase:
    return er.ReplayCase(cid, outlet, er.parse_published(published), f"title {cid}", "text", relevant, dev, event)


def alert(aid: str, article: str, dev: str | None, *, desk: str = "security", kind: str = "event",
          created: str = "2026-03-02T23:00:00Z", event_id: str | None = None) -> Alert:
    return Alert(id=aid, rule_id="r", desk=desk, article_id=article, story_id="s", title="t", url="u", source="x",
                 development=dev, topics=[], matched="", created=created, kind=kind, event_id=event_id)


def scoring(cases, alerts, events=(), stored=None, backlog=()) -> er.Scoring:
    return er.Scoring(list(cases), list(alerts), list(events), {c.id: c.id for c in cases}, dict(stored or {}),
                      set(backlog))


CASES = [
    case("a1", "E1", "ceasefire-agreed"),
    case("a2", "E1", "ceasefire-extended", "2026-03-02T20:00:00Z", outlet="Outlet B"),  # neighbouring label
    case("b1", "E2", "talks-scheduled", "2026-03-04"),
    case("b2", "E2", None, "2026-03-05"),  # a report of E2 with no new development
    case("c1", "E3", "talks-broke-down", "2026-03-06"),
    case("n1", None, None, "2026-03-03", relevant=False),  # hard negative
    case("z1", "E0", "ceasefire-agreed", "2026-01-01"),  # backlog-only event
    case("e9", "E9", None, "2026-03-07"),  # an event without a development label: not gold
]


# --------------------------------------------------------------------------- loading


def write(tmp_path: Path, rows: list[dict | str]) -> str:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


GOOD = {"id": "x1", "outlet": "Out", "published": "2026-03-02", "title": "T", "text": "body", "relevant": True,
        "development": "ceasefire-agreed", "event": "E1"}


def test_load_cases_reads_dates_and_undated(tmp_path):
    rows = [GOOD, GOOD | {"id": "x2", "published": "2026-03-02T10:15:00+02:00", "language": "UR"},
            GOOD | {"id": "x3", "published": None, "development": None, "event": None}]
    cases = er.load_cases([write(tmp_path, rows)], ["ceasefire-agreed"])
    assert [c.published for c in cases] == [datetime(2026, 3, 2, 8, tzinfo=UTC),
                                            datetime(2026, 3, 2, 8, 15, tzinfo=UTC), None]
    assert cases[1].language == "ur"


@pytest.mark.parametrize(("change", "field"), [
    ({"published": "2 March"}, "published"),
    ({"relevant": "yes"}, "relevant"),
    ({"development": "made-up"}, "development"),
    ({"relevant": False}, "development"),
    ({"event": 7}, "event"),
    ({"outlet": ""}, "outlet"),
    ({"text": None}, "text"),
])
def test_a_bad_line_names_file_line_and_field(tmp_path, change, field):
    path = write(tmp_path, [GOOD | {"id": "ok"}, GOOD | change])
    with pytest.raises(NewsmonError) as err:
        er.load_cases([path], ["ceasefire-agreed"])
    message = str(err.value)
    assert message.startswith(f"{path}: line 2: field '{field}'")
    assert "\n" not in message


def test_a_missing_key_and_a_duplicate_id_are_errors(tmp_path):
    without = {k: v for k, v in GOOD.items() if k != "event"}
    with pytest.raises(NewsmonError, match="line 1: field 'event'"):
        er.load_cases([write(tmp_path, [without])])
    with pytest.raises(NewsmonError, match="line 2: field 'id': duplicate"):
        er.load_cases([write(tmp_path, [GOOD, GOOD])])
    with pytest.raises(NewsmonError, match="line 1: not JSON"):
        er.load_cases([write(tmp_path, ["{nope"])])


def test_outlet_feed_ids_are_slugs_without_clashes():
    cases = [case("1", None, None, outlet="Hürriyet Daily News"), case("2", None, None, outlet="Hurriyet daily news!"),
             case("3", None, None, outlet="Geo News (Reuters)")]
    assert er.outlet_feeds(cases) == {"Hürriyet Daily News": "hurriyet-daily-news",
                                      "Hurriyet daily news!": "hurriyet-daily-news-2",
                                      "Geo News (Reuters)": "geo-news-reuters"}


# --------------------------------------------------------------------------- metrics


def test_recall_counts_raising_reports_and_system_events():
    event = DevelopmentEvent(id="sys-b", watch="w", family="talks", type="talks-scheduled", opened="", updated="",
                             reports=[EventReport("b1", "u", "o", "", "", None, "", "talks-scheduled"),
                                      EventReport("c1", "u", "o", "", "", None, "", "talks-scheduled")])
    alerts = [alert("x1", "a2", "ceasefire-agreed", created="2026-03-03T23:00:00Z"),
              alert("x2", "a1", "ceasefire-agreed", created="2026-03-02T23:00:00Z"),
              alert("x3", "b1", "talks-scheduled", desk="diplomacy", event_id="sys-b",
                    created="2026-03-04T23:00:00Z")]
    result = er.event_recall(scoring(CASES, alerts, [event], backlog={"z1"}))
    assert result["gold_events"] == 3  # E1, E2, E3; not the backlog-only E0 nor label-less E9
    assert result["recalled"] == 3  # E3 through the system event that holds c1
    assert result["recall"] == 1.0
    assert result["first_alert"]["E1"]["alert"] == "x2"  # the earliest notification
    assert result["hours_to_alert"]["per_event"] == {"E1": 15.0, "E2": 15.0, "E3": -33.0}
    assert result["hours_to_alert"]["median"] == 15.0


def test_recall_misses_and_story_alerts_without_development():
    alerts = [alert("s1", "b2", None, kind="story", desk="diplomacy")]
    result = er.event_recall(scoring(CASES, alerts, backlog={"z1"}))
    assert result["recalled"] == 1 and result["development_recalled"] == 0
    assert [m["event"] for m in result["missed"]] == ["E1", "E3"]
    assert result["recall"] == pytest.approx(1 / 3)


def test_type_precision_accepts_neighbouring_labels_and_rejects_the_rest():
    alerts = [
        alert("ok1", "a1", "ceasefire-extended"),  # E1's other outlet said extended: accepted
        alert("ok2", "b2", "talks-scheduled", kind="escalation"),  # b2 is null but its event has the label
        alert("bad1", "n1", "ceasefire-agreed"),  # the hard negative
        alert("bad2", "c1", "talks-resumed"),  # not a label of E3
        alert("bad3", "e9", "ceasefire-violated", kind="story"),  # an event with no development label
        alert("skip", "n1", None, kind="story"),  # no development: not judged
        alert("bad4", "unknown-article", "talks-opened"),
    ]
    result = er.type_precision(scoring(CASES, alerts))
    assert (result["notifications"], result["correct"], result["false_development_alerts"]) == (6, 2, 4)
    assert result["precision"] == pytest.approx(2 / 6)
    why = {w["alert"]: w["why"] for w in result["wrong"]}
    assert why == {"bad1": "irrelevant report", "bad2": "type not among the event's labels",
                   "bad3": "type not among the event's labels", "bad4": "report not in the cases"}
    assert next(w for w in result["wrong"] if w["alert"] == "bad2")["gold"] == ["talks-broke-down"]


def test_notification_load_per_event_desk_and_per_desk_day():
    alerts = [alert("1", "a1", "ceasefire-agreed"), alert("2", "a2", "ceasefire-agreed", kind="escalation"),
              alert("3", "a1", "ceasefire-agreed", desk="diplomacy"),
              alert("4", "b1", "talks-scheduled", desk="diplomacy", created="2026-03-04T23:00:00Z"),
              alert("5", "n1", None, kind="story", desk="diplomacy", created="2026-03-04T23:00:00Z")]
    load = er.notification_load(scoring(CASES, alerts))
    ped = load["per_event_desk"]
    assert (ped["pairs"], ped["mean"], ped["max"]) == (3, 4 / 3, 2)  # (E1,security) 2, (E1,diplomacy), (E2,dipl.)
    assert [(r["event"], r["desk"], r["notifications"]) for r in ped["repeated"]] == [("E1", "security", 2)]
    pdd = load["per_desk_day"]
    assert (pdd["pairs"], pdd["mean"], pdd["max"]) == (3, 5 / 3, 2)
    assert pdd["per_desk"] == {"diplomacy": 3, "security": 2}


def test_backlog_notifications_and_article_development():
    alerts = [alert("1", "z1", "ceasefire-agreed"), alert("2", "a1", "ceasefire-agreed")]
    s = scoring(CASES, alerts, backlog={"z1"}, stored={
        "a1": _article("a1", "ceasefire-agreed"), "a2": _article("a2", "ceasefire-agreed"),  # a2 wrong
        "b1": _article("b1", "talks-scheduled"), "n1": _article("n1", "ceasefire-agreed"),  # false development
        "b2": _article("b2", None)})
    backlog = er.backlog_notifications(s)
    assert backlog["notifications"] == 1 and backlog["alerts"][0]["case"] == "z1"
    art = er.article_development(s)
    assert (art["cases"], art["correct"], art["accuracy"]) == (3, 2, 2 / 3)
    assert art["false_development"] == {"cases": 2, "false": 1, "rate": 0.5}
    assert art["by_language"] == {"?": {"correct": 2, "cases": 3, "accuracy": 2 / 3}}  # the cases name none


def test_article_development_by_language():
    from dataclasses import replace

    cases = [replace(c, language=lang) for c, lang in zip(CASES[:3], ("ur", "ps", "ur"), strict=True)]
    s = scoring(cases, [], stored={"a1": _article("a1", "ceasefire-agreed"), "a2": _article("a2", None),
                                   "b1": _article("b1", "talks-scheduled")})
    assert er.article_development(s)["by_language"] == {
        "ps": {"correct": 0, "cases": 1, "accuracy": 0.0}, "ur": {"correct": 2, "cases": 2, "accuracy": 1.0}}


def test_targets_are_marked_and_unmeasured_ones_are_no_miss():
    result = er.compute_metrics(scoring(CASES, [alert("1", "z1", "ceasefire-agreed")], backlog={"z1"}))
    marks = {row["target"]: row["met"] for row in result["targets"]}
    # the backlog report's type is right for its event: precision judges types, the backlog figure the rest
    assert marks == {"event_recall": False, "type_precision": True, "notifications_per_event_desk": True,
                     "backlog_notifications": False, "article_development_accuracy": None}
    misses = er.target_misses(result)
    assert misses == ["event recall 0.000 (target >= 0.95)", "backlog notifications 1 (target <= 0)"]
    assert "MISSED" in er.replay_text(result | {"run": _run_stub()}, show_errors=True)


def _article(cid: str, dev: str | None) -> Article:
    return Article(id=cid, url=cid, original_url=cid, feed_id="f", desk="security", source="s", title="t", text="x",
                   content_hash="h", story_id="s", development=Development(type=dev, evidence="") if dev else None)


def _run_stub() -> dict:
    return {"cases": 1, "replayed": 1, "undated": 0, "outlets": 1, "stored": 0, "not_stored": [], "cycles": 1,
            "first_cycle": "2026-03-02", "last_cycle": "2026-03-02", "max_age_hours": 48.0, "backlog": ["z1"],
            "alerts": 1, "alert_kinds": {"event": 1}, "system_events": 0, "cycle_errors": []}


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def mini_result():
    return er.evaluate_replay([str(MINI)], start=date(2026, 3, 2), config=str(REPO / "config"))


def test_mini_replay_runs_one_cycle_per_day_and_keeps_the_backlog_silent(mini_result):
    run = mini_result["run"]
    assert (run["cases"], run["undated"], run["replayed"], run["outlets"]) == (13, 1, 12, 4)
    assert (run["cycles"], run["first_cycle"], run["last_cycle"]) == (9, "2026-03-02", "2026-03-10")
    assert run["backlog"] == ["mini-00-backlog"] and run["max_age_hours"] == 48.0
    assert run["stored"] == 12 and run["not_stored"] == []
    assert mini_result["backlog"]["notifications"] == 0
    assert mini_result["event_recall"]["gold_events"] == 3  # M1-M3; M0 is backlog only


def test_mini_replay_metrics_agree_with_the_store(mini_result):
    """Whatever detection does, the figures are the functions' over what the store holds."""
    rec, prec = mini_result["event_recall"], mini_result["type_precision"]
    assert rec["recalled"] + len(rec["missed"]) == rec["gold_events"]
    assert prec["correct"] + prec["false_development_alerts"] == prec["notifications"]
    assert prec["notifications"] <= mini_result["run"]["alerts"]
    for entry in rec["first_alert"].values():
        assert entry["created"].endswith("T23:00:00Z")  # the replay clock, not the wall clock
    assert set(rec["hours_to_alert"]["per_event"]) == set(rec["first_alert"])
    art = mini_result["article_development"]
    assert art["cases"] == 10 and art["false_development"]["cases"] == 2
    assert {row["target"] for row in mini_result["targets"]} == set(er.TARGETS)


def test_mini_replay_without_start_has_no_backlog_and_the_cli_prints_targets(capsys):
    from pipelines.cli import main

    code = main(["--config", str(REPO / "config"), "eval", "replay", str(MINI), "--errors"])
    out = capsys.readouterr().out
    assert "event recall" in out and "targets:" in out and "errors:" in out
    assert code in (0, 1)
    assert "backlog 0 " in out  # the old report is just the first day's news now
    code = main(["--config", str(REPO / "config"), "eval", "replay", str(MINI), "--start", "2026-03-02", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["run"]["cycles"] == 9
    assert code == (1 if er.target_misses(data) else 0)

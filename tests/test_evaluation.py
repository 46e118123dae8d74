"""Evaluation: the tagging and story metrics on hand-checked inputs, the `newsmon eval` commands as
subprocesses, and floors on our labelled sets and the shared articles so a regression fails CI."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import evaluation as ev
from pipelines.alerts import load_alert_config
from pipelines.errors import NewsmonError
from pipelines.models import Development, TagResult, TopicHit
from pipelines.tag import Tagger, load_taxonomy_file

REPO = Path(__file__).resolve().parents[1]
TAGGING = REPO / "tests" / "fixtures" / "tagging"
STORIES = REPO / "tests" / "fixtures" / "stories"
SHARED = REPO.parent / "shared" / "data"
ARTICLES = SHARED / "articles"
OWN_SETS = ("cases", "holdout", "blind", "blind2")


def newsmon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "NEWSMON_CONFIG": str(REPO / "config")}, timeout=timeout)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy_file(str(REPO / "config" / "topics.yaml"))


@pytest.fixture(scope="module")
def tagger(taxonomy):
    return Tagger(taxonomy)


@pytest.fixture(scope="module")
def rules(taxonomy):
    return ev.load_alert_rules(str(REPO / "config"), taxonomy.topic_ids(), taxonomy.development_types())


# --- metric arithmetic on hand-checked inputs ------------------------------------------------------


def test_prf_counts():
    row = ev.prf(3, 1, 2)
    assert row["precision"] == pytest.approx(0.75)
    assert row["recall"] == pytest.approx(0.6)
    assert row["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert ev.prf(0, 0, 0)["precision"] is None and ev.prf(0, 0, 0)["f1"] is None
    assert ev.prf(0, 2, 3)["f1"] == 0.0
    assert ev.prf(0, 0, 1) == {"tp": 0, "fp": 0, "fn": 1, "precision": None, "recall": 0.0, "f1": 0.0}


class CannedTagger:
    """Returns a prepared TagResult per title: the metric is what is under test here, not the tagger."""

    def __init__(self, results: dict[str, TagResult]):
        self.results = results

    def tag(self, title: str, text: str) -> TagResult:
        return self.results[title]


def canned(relevant: bool, dev: str | None, topics: list[str]) -> TagResult:
    development = Development(type=dev, evidence="x") if dev else None
    return TagResult(topics=[TopicHit(id=t, score=0.9) for t in topics], development=development,
                     relevant=relevant, alert_worthy=relevant and development is not None)


def case(case_id: str, relevant: bool, dev: str | None, topics: list[str]) -> ev.LabelledCase:
    return ev.LabelledCase(case_id, case_id, "some text", relevant, dev, True, topics, "test")


def test_tagging_metrics_by_hand():
    cases = [
        case("A", True, "talks-opened", ["peace-talks"]),        # all right
        case("B", True, "talks-stalled", ["peace-talks"]),       # wrong type, same rule family
        case("C", False, None, []),                              # tagged relevant with a development
        case("D", True, None, ["ceasefire"]),                    # missed as irrelevant
        case("E", True, "ceasefire-agreed", ["ceasefire"]),      # development missed
    ]
    tagger = CannedTagger({
        "A": canned(True, "talks-opened", ["peace-talks", "mediation"]),
        "B": canned(True, "talks-broke-down", ["peace-talks"]),
        "C": canned(True, "talks-opened", ["peace-talks"]),
        "D": canned(False, None, []),
        "E": canned(True, None, ["ceasefire"]),
    })
    config = load_alert_config({
        "channels": [{"id": "console", "type": "console"}],
        "desks": [{"id": "desk", "channels": ["console"]}],
        "rules": [{"id": "talks", "desk": "desk", "developments": ["talks-*"]},
                  {"id": "truce", "desk": "desk", "developments": ["ceasefire-agreed"]}],
    }, "test-alerts.yaml")
    result = ev.evaluate_tagging(cases, tagger, config.rules)

    rel = result["relevance"]
    assert (rel["tp"], rel["fp"], rel["fn"], rel["tn"]) == (3, 1, 1, 0)
    assert rel["precision"] == rel["recall"] == rel["f1"] == pytest.approx(0.75)
    assert result["development"]["cases"] == 3 and result["development"]["correct"] == 1
    assert result["development"]["accuracy"] == pytest.approx(1 / 3)
    assert result["false_development"] == {"cases": 2, "false": 1, "rate": 0.5}
    # Fired: A/talks (right), B/talks (wrong type), C/talks (irrelevant). Expected: A, B (talks), E (truce).
    alerts = result["alerts"]
    assert (alerts["predicted"], alerts["correct"], alerts["expected"]) == (3, 1, 3)
    assert alerts["precision"] == pytest.approx(1 / 3) and alerts["recall"] == pytest.approx(1 / 3)
    assert result["alert_worthy"] == {"predicted": 3, "correct": 1, "precision": pytest.approx(1 / 3)}
    topics = result["topics"]
    assert (topics["peace-talks"]["tp"], topics["peace-talks"]["fp"], topics["peace-talks"]["fn"]) == (2, 1, 0)  # A, B; C
    assert (topics["mediation"]["tp"], topics["mediation"]["fp"]) == (0, 1)
    assert (topics["ceasefire"]["tp"], topics["ceasefire"]["fn"]) == (1, 1)
    kinds = sorted((e["id"], e["kind"]) for e in result["errors"])
    assert ("B", "false-alert") in kinds and ("C", "false-relevant") in kinds and ("E", "missed-alert") in kinds
    assert ev.tagging_target_misses(result) == [
        "relevance F1 0.750 < 0.95", "development accuracy 0.333 < 0.9", "alert precision 0.333 < 0.95"]


def test_shared_topic_scope_records(tmp_path, taxonomy):
    path = write_jsonl(tmp_path / "scoped.jsonl", [
        {"title": "On", "text": "t", "topic_scope": "pak_afg_security_background"},
        {"title": "Off", "text": "t", "topic_scope": "hard_negative_other_ceasefire"},
        {"title": "Off too", "text": "t", "topic_scope": "off_topic_world"},
    ])
    cases = ev.load_labelled([str(path)], taxonomy.topic_ids(), taxonomy.development_types())
    assert [(c.id, c.relevant, c.development_known, c.topics) for c in cases] == [
        ("scoped.jsonl:1", True, False, None), ("scoped.jsonl:2", False, False, None),
        ("scoped.jsonl:3", False, False, None)]
    # Unknown developments are neither right nor wrong: only relevance is judged.
    result = ev.evaluate_tagging(cases, CannedTagger({
        "On": canned(True, "talks-opened", ["peace-talks"]), "Off": canned(False, None, []),
        "Off too": canned(False, None, [])}))
    assert result["development"]["cases"] == 0 and result["false_development"]["cases"] == 0
    assert result["alert_worthy"]["correct"] == 1 and result["relevance"]["f1"] == 1.0
    assert result["alerts"] is None and result["topic_cases"] == 0


@pytest.mark.parametrize("row, message", [
    ({"id": "x", "title": "t", "text": "t", "relevant": "yes"}, "line 1: field 'relevant'"),
    ({"id": "x", "title": "t", "text": "t", "relevant": True, "development": "talks-finished"},
     "unknown development type 'talks-finished'"),
    ({"id": "x", "title": "t", "text": "t", "relevant": True, "topics": ["cease-fire"]}, "unknown topic id 'cease-fire'"),
    ({"id": "x", "title": "t", "text": "t", "relevant": False, "development": "talks-opened"},
     "not relevant cannot have a development"),
    ({"id": "x", "title": "t", "text": 5, "relevant": True}, "field 'text'"),
    ({"id": "x", "title": "t", "text": "t"}, "no 'relevant'"),
])
def test_bad_labels_name_file_line_and_field(tmp_path, taxonomy, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(NewsmonError, match=message) as err:
        ev.load_labelled([str(path)], taxonomy.topic_ids(), taxonomy.development_types())
    assert str(path) in str(err.value)


def test_story_pairs_by_hand():
    wire = " ".join(f"Paragraph {i} of the wire story about the talks in Istanbul and the border at Torkham."
                    for i in range(12))
    other = " ".join(f"Line {i}: the cricket board named a new squad for the tour of England this summer."
                     for i in range(12))
    docs = [ev.StoryDoc("a", "wire", "Talks open", wire, "original"),
            ev.StoryDoc("a2", "wire", "Istanbul talks get under way", wire, "copy"),
            ev.StoryDoc("b", "cricket", "Squad named", other, "original")]
    result = ev.evaluate_stories(docs)
    assert (result["duplicate_pairs"], result["duplicate_shared"]) == (1, 1)
    assert (result["unrelated_pairs"], result["unrelated_shared"]) == (2, 0)
    assert result["duplicate_by_kind"] == {"copy+original": {"pairs": 1, "shared": 1, "rate": 1.0}}
    assert ev.story_target_misses(result) == []
    # A headline alone is too short for a story key: the pair counts as missed, not as shared.
    short = ev.evaluate_stories([ev.StoryDoc("x", "s", "Talks open", ""), ev.StoryDoc("y", "s", "Talks open", "")])
    assert short["duplicate_shared"] == 0 and short["missed_pairs"][0]["jaccard"] == 1.0
    assert ev.story_target_misses(short) == ["near-duplicate pairs sharing a story 0.000 < 0.9"]


def test_synthetic_copy_is_a_trimmed_reheadlined_wire_copy():
    text = "First sentence of the wire. " + " ".join(f"Word{i}" for i in range(100)) + "."
    copy = ev.synthetic_copy(ev.StoryDoc("r", "own:r", "Title", text))
    assert copy.id == "r#copy" and copy.story == "own:r" and copy.title == "Latest: Title"
    assert "First sentence" not in copy.text and "Word0 " in copy.text
    assert "Word74" in copy.text and "Word75" not in copy.text  # 75 of 101 body words kept
    assert ev.synthetic_copy(ev.StoryDoc("r", "own:r", "Title", text)) == copy  # deterministic


def test_story_docs_need_text_and_unique_ids(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "a", "story": "x", "title": "t", "text": "body"},
                                              {"id": "a", "story": "x", "title": "t", "text": "body"}])
    with pytest.raises(NewsmonError, match="line 2: field 'id'"):
        ev.load_story_docs([str(path)])
    with pytest.raises(NewsmonError, match="no such file"):
        ev.load_story_docs([str(tmp_path / "absent.jsonl")])


# --- the eval commands as a user runs them -------------------------------------------------------


def _article_html(title: str, paragraphs: list[str], published: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<html><head><title>{title}</title><meta property='article:published_time' content='{published}'>"
            f"</head><body><nav><a href='/'>Home</a> <a href='/world'>World</a></nav><article><h1>{title}</h1>"
            f"{body}</article><footer>Copyright Example News. All rights reserved.</footer></body></html>"
            ).encode()


PARAGRAPHS = [
    "Traders at the Torkham crossing said on Tuesday that lorries loaded with fruit had waited for nine days "
    "before customs officers cleared the first of them, a delay that cost some families a season's income.",
    "Drivers slept in their cabs along the highway, buying bread and tea from boys who walked up and down "
    "the queue, and several said they had thrown away loads of tomatoes that had rotted in the heat.",
    "Officials on both sides blamed paperwork and new scanning rules, and promised that a second lane would "
    "open before the end of the month to clear the backlog of vehicles.",
]


def test_eval_extraction_command_on_a_small_wcxb_layout(tmp_path):
    bench = tmp_path / "mini"
    (bench / "html").mkdir(parents=True)
    (bench / "ground-truth").mkdir()
    for page_id, date in (("p1", "2025-11-04"), ("p2", "2025-11-05")):
        (bench / "html" / f"{page_id}.html.gz").write_bytes(
            gzip.compress(_article_html("Torkham queue", PARAGRAPHS, f"{date}T08:00:00Z")))
        (bench / "ground-truth" / f"{page_id}.json").write_text(json.dumps(
            {"url": f"https://news.example/{page_id}",
             "ground_truth": {"main_content": "\n\n".join(PARAGRAPHS), "publish_date": date}}), encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    result = newsmon("eval", "extraction", str(bench), "--predictions", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["pages"] == 2 and data["f1"] > 0.9 and data["date_accuracy"] == 1.0 and data["pages_per_s"] > 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["p1", "p2"] and "Torkham" in rows[0]["text"]
    text = newsmon("eval", "extraction", str(bench))
    assert text.returncode == 0 and text.stdout.startswith("mini: 2 pages") and "date accuracy 1.000" in text.stdout


def test_eval_extraction_command_rejects_a_non_benchmark(tmp_path):
    result = newsmon("eval", "extraction", str(tmp_path))
    assert result.returncode == 1
    assert "not an extraction benchmark" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_eval_tagging_command_json_and_text(tmp_path):
    result = newsmon("eval", "tagging", str(TAGGING / "holdout.jsonl"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cases"] == 24
    assert set(data) >= {"relevance", "development", "false_development", "alerts", "alert_worthy", "topics"}
    assert set(data["relevance"]) >= {"precision", "recall", "f1", "tp", "fp", "fn", "tn"}
    assert data["alerts"]["rules"] and 0 <= data["alerts"]["precision"] <= 1
    assert "peace-talks" in data["topics"] and set(data["topics"]["peace-talks"]) >= {"precision", "recall", "f1"}
    text = newsmon("eval", "tagging", str(TAGGING / "holdout.jsonl"), "--errors")
    assert text.returncode == 0 and "relevance" in text.stdout and "peace-talks" in text.stdout
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "text": "t"}])
    failed = newsmon("eval", "tagging", str(bad))
    assert failed.returncode == 1 and "line 1" in failed.stderr and "'relevant'" in failed.stderr


def test_eval_stories_command(tmp_path):
    result = newsmon("eval", "stories", str(STORIES), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["duplicate_pairs"] >= 20 and data["unrelated_pairs"] > 100
    assert set(data["duplicate_by_kind"]) >= {"copy+original", "original+rewrite"}
    plain = write_jsonl(tmp_path / "plain.jsonl", [
        {"title": f"Story {i}", "text": " ".join(f"{w}{i}" for w in "alpha beta gamma delta epsilon zeta".split()) * 4}
        for i in range(3)])
    synthetic = json.loads(newsmon("eval", "stories", str(plain), "--synthetic-copies", "--json").stdout)
    assert synthetic["documents"] == 6 and synthetic["duplicate_pairs"] == 3 and synthetic["unrelated_pairs"] == 12


def test_eval_all_exit_code_follows_the_targets(tmp_path):
    fixtures = tmp_path / "fixtures"
    (fixtures / "tagging").mkdir(parents=True)
    good = [json.loads(line) for line in (TAGGING / "holdout.jsonl").read_text(encoding="utf-8").splitlines()]
    write_jsonl(fixtures / "tagging" / "cases.jsonl", good)
    args = ("eval", "all", "--no-extraction", "--data", str(tmp_path / "no-data"), "--fixtures", str(fixtures))
    passed = newsmon(*args, "--json")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    report = json.loads(passed.stdout)
    assert report["misses"] == [] and "cases" in report["tagging"]
    assert any("shared-articles" in line for line in report["skipped"])
    # A set whose labels the tagger cannot meet: a Gaza truce labelled as ours.
    wrong = dict(good[-10], id="wrong", relevant=True, development=None, topics=[])
    assert good[-10]["relevant"] is False
    write_jsonl(fixtures / "tagging" / "holdout.jsonl", [wrong])
    failed = newsmon(*args)
    assert failed.returncode == 1
    assert "TARGETS MISSED" in failed.stdout and "tagging holdout: relevance F1" in failed.stdout


# --- floors: the targets on our own sets and the shared articles ---------------------------


@pytest.fixture(scope="module")
def own_results(tagger, taxonomy, rules):
    out = {}
    for name in OWN_SETS:
        cases = ev.load_labelled([str(TAGGING / f"{name}.jsonl")], taxonomy.topic_ids(), taxonomy.development_types())
        out[name] = ev.evaluate_tagging(cases, tagger, rules)
    return out


def test_own_sets_cover_every_development_type_and_hard_negatives(taxonomy):
    cases = ev.load_labelled([str(TAGGING)], taxonomy.topic_ids(), taxonomy.development_types())
    assert len(cases) >= 60
    from pipelines.developments import STATE_TYPES

    # Labels are developments as stored: the state-dependent statements never label a case.
    counts = {t: sum(c.development == t for c in cases) for t in taxonomy.development_types() if t not in STATE_TYPES}
    assert min(counts.values()) >= 3, counts
    assert sum(not c.relevant for c in cases) >= 20
    blind = ev.load_labelled([str(TAGGING / "blind.jsonl")], taxonomy.topic_ids(), taxonomy.development_types())
    assert len(blind) >= 40 and all(sum(c.development == t for c in blind) >= 3 for t in counts)


@pytest.mark.parametrize("name", OWN_SETS)
def test_tagging_targets_on_own_sets(own_results, name):
    result = own_results[name]
    assert result["relevance"]["f1"] >= ev.TARGETS["relevance_f1"]
    assert result["development"]["accuracy"] >= ev.TARGETS["development_accuracy"]
    assert result["alerts"]["precision"] >= ev.TARGETS["alert_precision"]
    assert ev.tagging_target_misses(result) == []


def test_story_keys_on_own_wires_unrelated_and_copies():
    result = ev.evaluate_stories(ev.load_story_docs([str(STORIES)]))
    assert result["duplicate_pairs"] >= 20
    assert result["unrelated_share_rate"] < ev.TARGETS["unrelated_share_rate"]
    assert result["duplicate_by_kind"]["copy+original"]["rate"] >= ev.TARGETS["duplicate_share_rate"]


def test_story_keys_meet_the_near_duplicate_target_on_own_wires():
    """Outlet rewrites keep only ~0.3-0.4 Jaccard with the wire: the banding must still join them."""
    result = ev.evaluate_stories(ev.load_story_docs([str(STORIES)]))
    assert result["duplicate_share_rate"] >= ev.TARGETS["duplicate_share_rate"]
    rewrites = [v for kind, v in result["duplicate_by_kind"].items() if "rewrite" in kind]
    assert len(rewrites) == 2 and all(v["rate"] >= ev.TARGETS["duplicate_share_rate"] for v in rewrites)


def test_story_keys_keep_labelled_cases_apart():
    docs = ev.load_story_docs([str(TAGGING)])
    result = ev.evaluate_stories(docs)
    assert result["unrelated_pairs"] > 10_000
    assert result["unrelated_share_rate"] < ev.TARGETS["unrelated_share_rate"]


@pytest.fixture(scope="module")
def shared_articles():
    if not ARTICLES.is_dir():
        pytest.skip(f"shared articles {ARTICLES} are absent")
    return str(ARTICLES)


def test_tagging_targets_on_shared_articles(shared_articles, tagger, taxonomy, rules):
    cases = ev.load_labelled([shared_articles], taxonomy.topic_ids(), taxonomy.development_types())
    assert len(cases) >= 20 and any(c.relevant for c in cases) and any(not c.relevant for c in cases)
    result = ev.evaluate_tagging(cases, tagger, rules)
    assert result["relevance"]["f1"] >= ev.TARGETS["relevance_f1"]
    assert result["alerts"]["precision"] is None or result["alerts"]["precision"] >= ev.TARGETS["alert_precision"]


def test_story_targets_on_shared_articles(shared_articles):
    result = ev.evaluate_stories(ev.load_story_docs([shared_articles], synthetic_copies=True))
    assert result["unrelated_pairs"] >= 300
    assert result["duplicate_share_rate"] >= ev.TARGETS["duplicate_share_rate"]
    assert result["unrelated_share_rate"] < ev.TARGETS["unrelated_share_rate"]


def test_eval_extraction_on_a_slice_of_each_shared_set(tmp_path):
    for name in ("scrapinghub", "wcxb"):
        folder = SHARED / "extraction" / name
        if not folder.is_dir():
            pytest.skip(f"shared benchmark {folder} is absent")
        result = newsmon("eval", "extraction", str(folder), "--limit", "3", "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["pages"] == 3 and data["f1"] > 0.8


# --- developments as stored: the watch's state, published order, modes ------------------------------


def test_tagging_reads_statements_through_the_state_in_published_order(tmp_path, tagger):
    strike = ("Pakistani air strikes hit two villages in Khost overnight, killing seven people, Afghan officials "
              "said. Kabul and Islamabad traded accusations.")
    rows = [  # written out of order: the evaluation sorts dated cases by published
        {"id": "strike-after-truce", "published": "2031-03-04", "title": "Villages hit in Khost", "text": strike,
         "relevant": True, "development": "ceasefire-violated"},
        {"id": "truce", "published": "2031-03-02", "title": "Pakistan and Afghanistan agree ceasefire in Doha",
         "text": "Pakistan and the Afghan Taliban agreed to a ceasefire in Doha on Sunday, Qatar said.",
         "relevant": True, "development": "ceasefire-agreed"},
        {"id": "strike-undated", "title": "Villages hit in Khost", "text": strike, "relevant": True,
         "development": None},
        {"id": "denial", "published": "2031-03-05", "title": "Border report",
         "text": "Islamabad denied reports that its troops had violated the ceasefire with Kabul near Torkham.",
         "relevant": True, "development": None},
    ]
    path = write_jsonl(tmp_path / "dated.jsonl", rows)
    tx = tagger.taxonomy
    cases = ev.load_labelled([str(path)], tx.topic_ids(), tx.development_types())
    assert [c.published for c in cases] == ["2031-03-04", "2031-03-02", None, "2031-03-05"]
    result = ev.evaluate_tagging(cases, tagger)
    assert result["development"]["correct"] == 2 and result["development"]["accuracy"] == 1.0
    assert result["false_development"] == {"cases": 2, "false": 0, "rate": 0.0}
    # Read as tagged (no state), the strike is a bare "hostilities" statement: not what the desk stores.
    plain = ev.evaluate_tagging(cases, tagger, event_rules=None)
    assert plain["development"]["correct"] == 1
    stored = ev.stored_results(cases, tagger)
    assert stored[1].development.type == "ceasefire-agreed" and stored[1].alert_worthy
    assert stored[3].development is None and not stored[3].alert_worthy  # a denial counts as none

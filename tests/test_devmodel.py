"""The learned development reader (pipelines/devmodel.py): reproducible build, predictions, the tagger hook."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipelines import devmodel
from pipelines.devmodel import NONE, DevModel, load_default_model
from pipelines.tag import Tagger, load_taxonomy_file

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> DevModel:
    loaded = load_default_model()
    assert loaded is not None, "pipelines/data/devmodel.json is missing: run make model"
    return loaded


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy_file(str(REPO / "config" / "topics.yaml"))


def test_committed_model_is_what_make_model_builds():
    built = devmodel.build().to_json()
    committed = devmodel.DEFAULT_PATH.read_text(encoding="utf-8")
    assert built == committed, "the committed model is stale: run make model"
    assert len(committed.encode()) < 750_000  # grows with our labelled sets (five chronologies: 0.54 MB)


def test_training_reads_only_our_own_labelled_files():
    rels = [p.resolve().relative_to(REPO).as_posix() for p in devmodel.training_paths()]
    assert rels, "no training files found"
    for rel in rels:
        assert rel.startswith(("tests/fixtures/tagging/", "tests/fixtures/chronologies/")), rel
        assert "holdout-chronologies" not in rel and "shared" not in rel
    # No path to the unseen evaluation data anywhere in the trainer's code.
    tree = ast.parse(Path(devmodel.__file__).read_text(encoding="utf-8"))
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    strings = [n.value for n in ast.walk(tree)
               if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]
    assert not any("../shared" in s or "coverage2025" in s for s in strings)


def test_training_refuses_a_held_out_path(tmp_path, monkeypatch):
    sealed = tmp_path / "tests" / "fixtures" / "holdout-chronologies"
    sealed.mkdir(parents=True)
    (sealed / "x.jsonl").write_text("", encoding="utf-8")
    assert devmodel.training_paths(tmp_path) == []  # the globs never reach it
    monkeypatch.setattr(devmodel, "TRAINING_GLOBS", ("tests/fixtures/holdout-chronologies/*.jsonl",))
    with pytest.raises(ValueError, match="refusing"):
        devmodel.training_paths(tmp_path)


def test_training_is_deterministic():
    examples = [("Pakistan and Afghanistan agree to a ceasefire", "ceasefire-agreed"),
                ("Talks between Islamabad and Kabul collapse", "talks-broke-down"),
                ("Traders wait at the crossing", NONE)]
    assert devmodel.train(examples, epochs=3).to_json() == devmodel.train(examples, epochs=3).to_json()


def test_examples_label_the_sentence_carrying_the_development():
    records = [devmodel.Record("a", "a", "f", "Truce agreed", "Fighting ended. Trade resumed.", True,
                               "ceasefire-agreed", "Fighting ended."),
               devmodel.Record("b", "b", "f", "Market news", "Prices rose. Shops closed.", False, None, None)]
    examples = devmodel.examples_of(records, titles=False)
    assert ("Fighting ended.", "ceasefire-agreed") in examples
    assert ("Truce agreed", "ceasefire-agreed") not in examples
    assert {s for s, label in examples if label == NONE} == {"Market news", "Prices rose.", "Shops closed."}
    assert ("Truce agreed", "ceasefire-agreed") in devmodel.examples_of(records, titles=True)


def test_features_fold_case_accents_and_script():
    assert devmodel.features("CEASEFIRE Agreed") == devmodel.features("ceasefire agreed")
    assert devmodel.features("Türkiye hosts talks") == devmodel.features("Turkiye hosts talks")
    urdu = devmodel.feature_names("پاکستان اور افغانستان میں جنگ بندی")
    assert any(name.startswith("c:") for name in urdu)  # character n-grams of Arabic-script words
    assert "cue:question" in devmodel.feature_names("Will the truce hold?")


@pytest.mark.parametrize(("sentence", "label"), [
    ("Islamabad and Kabul agree to extend ceasefire", "ceasefire-extended"),
    ("Pakistan and Afghan Taliban delegations opened talks in Istanbul on Saturday", "talks-opened"),
    ("Pakistan accuses Afghan Taliban of violating ceasefire", "ceasefire-violated"),
    ("Turkey to host Pakistan-Afghanistan talks next week", "talks-scheduled"),
])
def test_predicts_sentences_written_for_this_test(model, sentence, label):
    got, prob = model.predict(sentence)
    assert got == label, (got, prob)
    assert 0.0 < prob <= 1.0


@pytest.mark.parametrize("sentence", [
    "Cricket board names new captain for the home series",
    "The price of wheat flour rose again in Peshawar markets this week",
])
def test_predicts_none_for_unrelated_sentences(model, sentence):
    label, prob = model.predict(sentence)
    assert label == NONE, (label, prob)


def test_probabilities_sum_to_one(model):
    probs = model.probabilities("Ceasefire holds on the border")
    assert len(probs) == len(model.labels) == len(devmodel.LABELS)
    assert abs(sum(probs) - 1.0) < 1e-9


def test_threshold_override(model):
    assert DevModel.load(devmodel.DEFAULT_PATH, threshold=0.3).threshold == 0.3
    assert model.threshold == devmodel.CV_THRESHOLD


class _Always:
    """A stand-in model that reads every sentence as a ceasefire extension."""

    threshold = 0.5

    def __init__(self, prob: float):
        self.prob = prob
        self.calls = 0

    def predict(self, sentence: str) -> tuple[str, float]:
        self.calls += 1
        return "ceasefire-extended", self.prob

    best_unit = DevModel.best_unit
    develop = DevModel.develop


RELEVANT_NO_DEV = ("Pakistani and Afghan officials meet traders at Torkham crossing",
                   "Pakistani and Afghan Taliban officials met traders at the Torkham crossing on Monday to discuss "
                   "the ceasefire and the border, officials in Islamabad and Kabul said. Trucks waited on both sides.")


def test_hook_adds_a_development_only_where_the_rules_found_none(taxonomy):
    plain = Tagger(taxonomy).tag(*RELEVANT_NO_DEV)
    assert plain.relevant and plain.development is None
    stub = _Always(0.9)
    result = Tagger(taxonomy, model=stub).tag(*RELEVANT_NO_DEV)
    assert result.development is not None
    assert result.development.type == "ceasefire-extended"
    assert result.development.mode == "asserted" and result.development.confidence == 0.9
    title, text = RELEVANT_NO_DEV
    ev = result.development
    assert ev.evidence == (title if ev.field == "title" else text)[ev.start:ev.end]
    assert result.alert_worthy


def test_hook_respects_the_threshold(taxonomy):
    assert Tagger(taxonomy, model=_Always(0.4)).tag(*RELEVANT_NO_DEV).development is None


def test_hook_is_not_asked_when_rules_found_one_or_the_article_is_irrelevant(taxonomy):
    stub = _Always(0.99)
    tagger = Tagger(taxonomy, model=stub)
    ruled = tagger.tag("Pakistan and Afghan Taliban agree immediate ceasefire after border fighting",
                       "Pakistan and Afghanistan's Taliban government agreed to an immediate ceasefire on Sunday "
                       "after talks hosted by Qatar, ending a week of fighting along the frontier.")
    assert ruled.development is not None and ruled.development.type == "ceasefire-agreed"
    off = tagger.tag("Cricket board names new captain", "The board named a new captain on Monday.")
    assert not off.relevant and off.development is None
    assert stub.calls == 0


def test_hook_leaves_question_headlines_alone(taxonomy):
    title = "Will the Pakistan-Afghanistan ceasefire hold at Torkham?"
    assert Tagger(taxonomy, model=_Always(0.99)).tag(title, RELEVANT_NO_DEV[1]).development is None


def test_real_model_in_the_tagger(taxonomy, model):
    tagger = Tagger(taxonomy, model=model)
    result = tagger.tag(*RELEVANT_NO_DEV)
    assert result.relevant
    if result.development is not None:
        assert result.development.confidence >= model.threshold


def test_newsmon_yaml_turns_the_model_on(tmp_path):
    """Off by default; `developments: {model: true}` gives the cycle's tagger the committed model."""
    import shutil

    from pipelines.config import validate_settings
    from pipelines.cycle import open_context
    from pipelines.errors import ConfigError

    repo = Path(__file__).resolve().parents[1]
    config = tmp_path / "config"
    shutil.copytree(repo / "config", config)
    ctx = open_context(str(config), f"sqlite:///{tmp_path / 'off.db'}")
    try:
        assert ctx.tagger.model is None
    finally:
        ctx.close()
    (config / "newsmon.yaml").write_text("developments:\n  model: true\n  threshold: 0.9\n", encoding="utf-8")
    ctx = open_context(str(config), f"sqlite:///{tmp_path / 'on.db'}")
    try:
        assert ctx.tagger.model is not None and ctx.tagger.model.threshold == 0.9
    finally:
        ctx.close()
    with pytest.raises(ConfigError) as err:
        validate_settings({"developments": {"threshold": 7}}, "newsmon.yaml")
    assert (err.value.entry, err.value.field) == ("developments", "threshold")

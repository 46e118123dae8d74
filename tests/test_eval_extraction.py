"""The extraction metric on small strings, and evaluate_extraction on a slice of each shared benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.errors import NewsmonError
from pipelines.evaluation import evaluate_extraction, shingle_f1, tokens

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "extraction"


def test_tokens_are_lowercase_word_runs():
    assert tokens("The U.S.-Afghan talks, in Doha; 2025!") == ["the", "u", "s", "afghan", "talks", "in", "doha", "2025"]
    assert tokens("Türkiye’s ÉLAN") == ["türkiye", "s", "élan"]


def test_identical_texts_score_one():
    text = "Delegations met in Istanbul on Thursday for a third round of talks."
    assert shingle_f1(text, text) == (1.0, 1.0, 1.0)


def test_case_and_punctuation_do_not_matter():
    assert shingle_f1("Delegations met, in ISTANBUL; on Thursday.", "delegations met in istanbul on thursday") == (1.0, 1.0, 1.0)


def test_extra_boilerplate_costs_precision_only():
    truth = "one two three four five six seven eight"  # 5 shingles
    pred = truth + " nine ten"  # 7 shingles, the 5 true ones among them
    precision, recall, f1 = shingle_f1(pred, truth)
    assert precision == pytest.approx(5 / 7)
    assert recall == 1.0
    assert f1 == pytest.approx(2 * (5 / 7) / (5 / 7 + 1))


def test_missing_text_costs_recall_only():
    truth = "one two three four five six seven eight"
    precision, recall, _ = shingle_f1("one two three four five", truth)  # 2 of 5 shingles
    assert precision == 1.0
    assert recall == pytest.approx(2 / 5)


def test_repeated_block_counts_twice():
    truth = "alpha beta gamma delta epsilon"
    precision, recall, _ = shingle_f1(truth + " " + truth, truth)
    assert recall == 1.0
    assert precision == pytest.approx(2 / 7)


def test_texts_shorter_than_a_shingle():
    assert shingle_f1("Kabul talks", "kabul talks") == (1.0, 1.0, 1.0)
    assert shingle_f1("Kabul", "Doha") == (0.0, 0.0, 0.0)


def test_empty_sides():
    assert shingle_f1("", "") == (1.0, 1.0, 1.0)
    assert shingle_f1("some text here now", "") == (0.0, 0.0, 0.0)
    assert shingle_f1("", "some text here now") == (0.0, 0.0, 0.0)


def test_unknown_folder_layout_is_a_clear_error(tmp_path):
    with pytest.raises(NewsmonError, match="not an extraction benchmark"):
        evaluate_extraction(str(tmp_path))


@pytest.mark.parametrize("name, expects_dates", [("scrapinghub", False), ("wcxb", True)])
def test_evaluate_on_first_pages_of_shared_benchmark(name, expects_dates, tmp_path):
    folder = SHARED / name
    if not folder.is_dir():
        pytest.skip(f"shared benchmark {folder} is absent")
    out = tmp_path / "predictions.jsonl"
    result = evaluate_extraction(str(folder), str(out), limit=10)
    assert result["pages"] == 10
    assert result["f1"] > 0.85
    assert 0 < result["precision"] <= 1 and 0 < result["recall"] <= 1
    assert result["pages_per_s"] > 0
    if expects_dates:
        assert result["date_accuracy"] is not None and result["date_accuracy"] > 0.5
    else:
        assert result["date_accuracy"] is None
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 10
    assert len({row["id"] for row in rows}) == 10
    assert sum(len(row["text"]) > 200 for row in rows) >= 9

"""Issue 14's targets, held in CI: coverage2025 (real, skipped when ../shared is absent) and our three
chronologies replayed day by day through real cycles. These are training sets (studied and tuned on),
so a failure here is a regression, not a measure of unseen wording (docs/accuracy.md has those)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines import eval_replay as er

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEWSMON_SHARED_DATA", REPO.parent / "shared" / "data"))
CHRONOLOGIES = sorted((REPO / "tests" / "fixtures" / "chronologies").glob("*.jsonl"))


def _targets(path: Path) -> dict[str, bool | None]:
    result = er.evaluate_replay([str(path)])
    return {row["target"]: row["met"] for row in result["targets"]}


def test_coverage2025_meets_every_target():
    path = SHARED / "coverage2025" / "articles.jsonl"
    if not path.is_file():
        pytest.skip(f"coverage2025 not found at {path}")
    assert _targets(path) == dict.fromkeys(er.TARGETS, True)


@pytest.mark.parametrize("path", CHRONOLOGIES, ids=[p.stem for p in CHRONOLOGIES])
def test_chronologies_meet_the_alert_targets(path):
    # Article-level accuracy is the target on coverage2025 only; here it is an aim.
    met = _targets(path)
    met.pop("article_development_accuracy")
    assert met == {name: True for name in er.TARGETS if name != "article_development_accuracy"}


def test_there_are_at_least_three_chronologies():
    assert len(CHRONOLOGIES) >= 3

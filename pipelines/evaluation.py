"""Offline quality measures for the pipeline's stages, run against labelled data by path.

Extraction: F1 over word 4-gram shingles between extracted and ground-truth text,
averaged per page, on the two layouts of ../shared/data/extraction. The metric
reproduces the published reference figures for trafilatura 2.3.1 defaults
(scrapinghub 0.953, wcxb 0.925), so our numbers are comparable with them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import time
from collections import Counter
from typing import Any

from pipelines.errors import NewsmonError

_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased runs of Unicode word characters (letters, digits, underscore).

    Punctuation and whitespace only separate tokens, so "U.S." is ["u", "s"] and
    "don't" is ["don", "t"] on both sides alike; no stemming, no accent folding.
    """
    return _WORD.findall(text.lower())


def _shingles(words: list[str], n: int) -> Counter[tuple[str, ...]]:
    """Multiset of word n-grams; a text shorter than n words is one shingle of all its words."""
    if not words:
        return Counter()
    if len(words) < n:
        return Counter([tuple(words)])
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def shingle_f1(pred: str, truth: str, n: int = 4) -> tuple[float, float, float]:
    """(precision, recall, f1) of pred against truth over n-token shingles, counted with multiplicity.

    A repeated paragraph counts as often as it occurs, so extracting a block twice
    costs precision. Both empty is a perfect (1, 1, 1); one side empty is (0, 0, 0).
    """
    predicted, expected = _shingles(tokens(pred or ""), n), _shingles(tokens(truth or ""), n)
    if not predicted and not expected:
        return 1.0, 1.0, 1.0
    overlap = sum((predicted & expected).values())
    precision = overlap / sum(predicted.values()) if predicted else 0.0
    recall = overlap / sum(expected.values()) if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _load_truth(folder: str) -> list[dict[str, Any]]:
    """[{id, url, text, date}] sorted by id, from either benchmark layout."""
    single = os.path.join(folder, "ground-truth.json")
    per_page = os.path.join(folder, "ground-truth")
    pages: list[dict[str, Any]] = []
    if os.path.isfile(single):  # scrapinghub: {id: {"articleBody", "url"}}
        with open(single, encoding="utf-8") as fh:
            data = json.load(fh)
        for page_id, rec in data.items():
            pages.append({"id": page_id, "url": rec.get("url") or "", "text": rec.get("articleBody") or "",
                          "date": None})
    elif os.path.isdir(per_page):  # wcxb: <id>.json {"url", "ground_truth": {...}}
        for name in os.listdir(per_page):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(per_page, name), encoding="utf-8") as fh:
                rec = json.load(fh)
            truth = rec.get("ground_truth") or {}
            pages.append({"id": name[:-5], "url": rec.get("url") or "", "text": truth.get("main_content") or "",
                          "date": truth.get("publish_date") or None})
    else:
        raise NewsmonError(f"{folder}: no ground-truth.json or ground-truth/ folder: not an extraction benchmark")
    return sorted(pages, key=lambda page: page["id"])


def evaluate_extraction(folder: str, predictions_out: str | None = None, *, limit: int | None = None) -> dict[str, Any]:
    """Run extract_page over a benchmark folder; per-page averages of P/R/F1, date accuracy and speed.

    date_accuracy compares the first 10 characters (the day) on pages whose truth has a date;
    None when none has. pages_per_s counts the CPU time of extraction only (not reading or
    unzipping), so a busy shared machine does not skew it.
    """
    from pipelines.extract import extract_page

    pages = _load_truth(folder)
    if limit is not None:
        pages = pages[:limit]
    scores: list[tuple[float, float, float]] = []
    dated = dates_right = 0
    seconds = 0.0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(predictions_out, "w", encoding="utf-8")) if predictions_out else None
        for page in pages:
            path = os.path.join(folder, "html", f"{page['id']}.html.gz")
            with gzip.open(path, "rb") as fh:
                html = fh.read()
            started = time.process_time()
            extracted = extract_page(html, page["url"])
            seconds += time.process_time() - started
            text = extracted.text if extracted is not None else ""
            scores.append(shingle_f1(text, page["text"]))
            if page["date"]:
                dated += 1
                published = (extracted.published or "") if extracted is not None else ""
                dates_right += published[:10] == page["date"][:10]
            if out is not None:
                out.write(json.dumps({"id": page["id"], "text": text}, ensure_ascii=False) + "\n")
    count = len(scores)

    def mean(i: int) -> float:
        return sum(score[i] for score in scores) / count if count else 0.0

    return {
        "pages": count,
        "precision": mean(0),
        "recall": mean(1),
        "f1": mean(2),
        "date_accuracy": dates_right / dated if dated else None,
        "pages_per_s": count / seconds if seconds else 0.0,
    }

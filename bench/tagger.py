"""Figure 5: Tagger.tag on 800-word articles, one core (one thread, CPU time).

Two kinds of article, tagged alternately: on-topic ones stitched from the project's own
tagging fixtures (tests/fixtures/tagging, dense in theatre anchors, topics, developments: the
expensive path), and general news stitched from the benchmark pages' ground-truth text (few
matches: the common path). Each is cut to exactly 800 words.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import CONFIG_DIR, REPO_ROOT, Page, Row

TARGET_PER_S = 2000.0
WORDS = 800
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "tagging"


def _stitch(texts: list[tuple[str, str]], count: int, words: int = WORDS) -> list[tuple[str, str]]:
    """`count` (title, text) articles of exactly `words` words, each starting at a different source text."""
    articles = []
    for start in range(count):
        title = texts[start % len(texts)][0]
        collected: list[str] = []
        i = start
        while len(collected) < words:
            collected.extend(texts[i % len(texts)][1].split())
            i += 1
        articles.append((title, " ".join(collected[:words])))
    return articles


def on_topic_articles(count: int) -> list[tuple[str, str]]:
    texts = []
    for name in ("cases.jsonl", "holdout.jsonl"):
        path = FIXTURES / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    case = json.loads(line)
                    texts.append((case.get("title") or "", case.get("text") or ""))
    texts = [t for t in texts if t[1].strip()]
    return _stitch(texts, count) if texts else []


def general_articles(pages: list[Page], count: int) -> list[tuple[str, str]]:
    texts = [(p.title, p.truth) for p in pages if p.truth.strip()]
    return _stitch(texts, count) if texts else []


def measure(pages: list[Page], count: int = 300, repeats: int = 15, config_dir: Path | None = None) -> dict[str, Any]:
    """Articles per CPU-second of Tagger.tag: best of `repeats` passes over each set (mixed, on-topic, general).

    A pass takes a tenth of a second or so, and on a shared host the speed of a pure-Python loop
    swings by a quarter from one second to the next: the best of many short passes is the
    estimate least coloured by other tenants.
    """
    from pipelines.config import load_config
    from pipelines.tag import Tagger

    tagger = Tagger(load_config(str(config_dir or CONFIG_DIR)).taxonomy)
    topical = on_topic_articles(count // 2)
    general = general_articles(pages, count - len(topical))
    mixed = [a for pair in zip(topical, general, strict=False) for a in pair]
    mixed += topical[len(general):] + general[len(topical):]
    if not mixed:
        raise ValueError("no articles to tag")
    for title, text in mixed[:5]:  # warm-up
        tagger.tag(title, text)

    sets = {"mixed": mixed, "on_topic": topical, "general": general}
    best = {name: float("inf") for name in sets}
    relevant = {name: 0 for name in sets}
    # The kinds take turns, pass after pass: a slow spell on a shared host hits one pass of each,
    # and the best pass of each kind is kept.
    for _ in range(repeats):
        for name, articles in sets.items():
            if not articles:
                continue
            started = time.process_time()
            relevant[name] = sum(1 for title, text in articles if tagger.tag(title, text).relevant)
            best[name] = min(best[name], time.process_time() - started)

    def rate(name: str) -> float:
        return len(sets[name]) / best[name] if sets[name] and best[name] else float("nan")

    mixed_rate, mixed_relevant = rate("mixed"), relevant["mixed"]
    topical_rate, topical_relevant = rate("on_topic"), relevant["on_topic"]
    general_rate, general_relevant = rate("general"), relevant["general"]
    words = statistics.mean(len(text.split()) for _title, text in mixed)
    return {"articles": len(mixed), "words": words, "per_s": mixed_rate, "relevant": mixed_relevant, "repeats": repeats,
            "on_topic": len(topical), "on_topic_per_s": topical_rate, "on_topic_relevant": topical_relevant,
            "general": len(general), "general_per_s": general_rate, "general_relevant": general_relevant}


def rows(result: dict[str, Any]) -> list[Row]:
    r = result
    return [Row(f"5. Tagger.tag, {r['words']:.0f}-word articles, 1 core", f"{r['per_s']:.0f} articles/s",
                f">= {TARGET_PER_S:.0f}/s", r["per_s"] >= TARGET_PER_S,
                note=(f"{r['articles']} articles ({r['relevant']} relevant); on-topic {r['on_topic_per_s']:.0f}/s, "
                      f"general news {r['general_per_s']:.0f}/s; CPU time, best of {r['repeats']} interleaved passes"))]

"""Offline quality measures for the pipeline's stages, run against labelled data by path.

Extraction: F1 over word 4-gram shingles between extracted and ground-truth text,
averaged per page, on the two layouts of ../shared/data/extraction. The metric
reproduces the published reference figures for trafilatura 2.3.1 defaults
(scrapinghub 0.953, wcxb 0.925), so our numbers are comparable with them.

Tagging: relevance, development type, alert and per-topic figures over labelled JSONL
(our format, or the shared articles' topic_scope labels). Developments are measured as the pipeline
would store them: each tagged statement is read against the watch's state (pipelines/events.py with
the events.yaml beside the taxonomy's topics.yaml) and dated cases move that state in published
order, so "strikes killed ten" after a truce counts as ceasefire-violated and "talks continue" after a
stall as talks-resumed. Undated cases are read against a fresh state and move nothing. A statement
counts only when stored in mode asserted or alleged; a denied one counts as no development. Stories: pairwise story-key
agreement on near-duplicate and unrelated pairs. docs/accuracy.md has the method and figures.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipelines.errors import NewsmonError
from pipelines.models import announced_type

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


def evaluate_extraction(folder: str, predictions_out: str | None = None, *, limit: int | None = None,
                        precision_pass: bool | None = None) -> dict[str, Any]:
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
            extracted = extract_page(html, page["url"], precision_pass=precision_pass)
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


# --- shared helpers -------------------------------------------------------------------------------

# The issue's targets (docs/accuracy.md). Extraction floors are trafilatura 2.3.1's defaults on the
# shared sets: we may not fall below them.
TARGETS: dict[str, float] = {
    "relevance_f1": 0.95,
    "development_accuracy": 0.9,
    "alert_precision": 0.95,
    "duplicate_share_rate": 0.9,  # at least
    "unrelated_share_rate": 0.02,  # strictly below
}
EXTRACTION_FLOORS: dict[str, float] = {"scrapinghub": 0.953, "wcxb": 0.925}


def _ratio(part: int, whole: int) -> float | None:
    """part/whole, or None when nothing was there to count (a rate of nothing is not 0 or 1)."""
    return part / whole if whole else None


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    """Precision, recall and F1 from counts; a figure with an empty denominator is None.

    F1 is 2tp / (2tp + fp + fn): nothing predicted of something to find is 0, not undefined.
    """
    return {"tp": tp, "fp": fp, "fn": fn, "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def jsonl_paths(paths: list[str]) -> list[str]:
    """Files as given; a folder stands for its *.jsonl files (sorted). Missing paths are a clear error."""
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith(".jsonl"))
            if not found:
                raise NewsmonError(f"{path}: no .jsonl files in this folder")
            out.extend(found)
        elif os.path.isfile(path):
            out.append(path)
        else:
            raise NewsmonError(f"{path}: no such file or folder")
    return out


def _read_jsonl(path: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a bad line is a NewsmonError naming file and line."""
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise NewsmonError(f"{path}: line {line_no}: not JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise NewsmonError(f"{path}: line {line_no}: expected a JSON object")
                rows.append((line_no, record))
    except OSError as exc:
        raise NewsmonError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise NewsmonError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return rows


# --- tagging --------------------------------------------------------------------------------------

# ../shared/data/articles labels a record by topic_scope instead of relevant: these prefixes are the
# off-topic scopes (off_topic_world, hard_negative_other_ceasefire, ...); every other scope
# (pak_afg_security_background, exact_event_oct_nov_2025, ...) is on topic.
OFF_TOPIC_SCOPES = ("off_topic", "hard_negative")


@dataclass
class LabelledCase:
    id: str
    title: str
    text: str
    relevant: bool
    development: str | None
    development_known: bool  # False for topic_scope records: they say nothing about developments
    topics: list[str] | None  # None when the record does not label topics
    where: str  # "file: line N", for error lists
    published: str | None = None  # ISO date/time when the record gives one: cases run in this order


def load_labelled(paths: list[str], topic_ids: list[str] | None = None,
                  development_types: list[str] | None = None) -> list[LabelledCase]:
    """Labelled cases from JSONL files (or folders of them), in our format or the shared topic_scope one.

    Ours: {"id","title","text","relevant","development","topics"} (development null = none).
    Shared: {"title","text","topic_scope",...}: relevant from the scope, development unknown, topics
    unlabelled. Labels naming an unknown topic or development type are errors (a typo would skew figures).
    """
    cases: list[LabelledCase] = []
    seen: set[str] = set()
    for path in jsonl_paths(paths):
        name = os.path.basename(path)
        for line_no, rec in _read_jsonl(path):
            where = f"{path}: line {line_no}"

            def bad(field_name: str, message: str, where: str = where) -> NewsmonError:
                return NewsmonError(f"{where}: field '{field_name}': {message}")

            text = rec.get("text")
            if not isinstance(text, str):
                raise bad("text", "missing or not a string")
            title = rec.get("title") or ""
            if not isinstance(title, str):
                raise bad("title", "not a string")
            case_id = rec.get("id") or f"{name}:{line_no}"
            if not isinstance(case_id, str):
                raise bad("id", "not a string")
            if case_id in seen:
                raise bad("id", f"duplicate id {case_id!r}")
            seen.add(case_id)
            if "relevant" in rec:
                relevant = rec["relevant"]
                if not isinstance(relevant, bool):
                    raise bad("relevant", f"expected true or false, got {relevant!r}")
                known = "development" in rec
                development = rec.get("development")
                if development is not None and (not isinstance(development, str) or (
                        development_types is not None and development not in development_types)):
                    raise bad("development", f"unknown development type {development!r}")
                if development is not None and not relevant:
                    raise bad("development", "a case that is not relevant cannot have a development")
                topics = rec.get("topics")
                if topics is not None:
                    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                        raise bad("topics", "expected a list of topic ids")
                    unknown = [t for t in topics if topic_ids is not None and t not in topic_ids]
                    if unknown:
                        raise bad("topics", f"unknown topic id {unknown[0]!r}")
            elif isinstance(rec.get("topic_scope"), str) and rec["topic_scope"]:
                relevant = not rec["topic_scope"].startswith(OFF_TOPIC_SCOPES)
                development, known, topics = None, False, None
            else:
                raise bad("relevant", "no 'relevant' (true/false) or 'topic_scope' label")
            published = rec.get("published")
            if published is not None and not isinstance(published, str):
                raise bad("published", f"expected an ISO date string or null, got {published!r}")
            cases.append(LabelledCase(case_id, title, text, relevant, development, known, topics, where,
                                      published or None))
    return cases


def load_alert_rules(config_dir: str, topic_ids: list[str], development_types: list[str]) -> list[Any]:
    """The enabled rules of config_dir/alerts.yaml (the desks' real rules are what alerts are judged by)."""
    from pipelines.alerts import load_alert_config_file

    config = load_alert_config_file(os.path.join(config_dir, "alerts.yaml"), topic_ids, development_types)
    return [rule for rule in config.rules if rule.enabled]


def _eval_article(case: LabelledCase, result: Any, gold: bool) -> Any:
    """A synthetic Article for rule matching: as tagged, or (gold) with the case's true labels."""
    from pipelines.models import Article, Development, TopicHit

    development = result.development
    topics = result.topics
    relevant = result.relevant
    if gold:
        relevant = case.relevant
        if case.development_known:
            development = Development(type=case.development, evidence="") if case.development else None
        if case.topics is not None:
            topics = [TopicHit(id=t, score=1.0) for t in case.topics]
    return Article(id=case.id, url="", original_url="", feed_id="eval", desk="eval", source="eval",
                   title=case.title, text=case.text, content_hash="", story_id=case.id, topics=topics,
                   entities=result.entities, places=result.places, development=development, relevant=relevant)


def _event_rules(tagger: Any) -> Any:
    """The event rules beside the tagger's topics.yaml (config/events.yaml), or None when absent."""
    path = getattr(getattr(tagger, "taxonomy", None), "path", None)
    if not path:
        return None
    from pipelines.config import load_events

    return load_events(os.path.dirname(os.path.abspath(path)))


def stored_results(cases: list[LabelledCase], tagger: Any, event_rules: Any = None) -> list[Any]:
    """TagResult per case (in the cases' order) with the development as the pipeline would store it.

    Dated cases are tagged in published order (ties keep file order) and each stored development moves
    the watch's state; an undated case is read against a fresh state. Without event rules a statement is
    kept as tagged. The result's development is None unless its stored mode is asserted or alleged.
    """
    from dataclasses import replace

    results: list[Any] = [None] * len(cases)
    order = sorted(range(len(cases)), key=lambda i: (cases[i].published is None, cases[i].published or "", i))
    state = None
    if event_rules is not None:
        from pipelines.events import WatchState, interpret

        state = WatchState.initial(event_rules)
    for i in order:
        case = cases[i]
        result = tagger.tag(case.title, case.text)
        dev = result.development
        if event_rules is not None:
            dated = case.published is not None
            at_state = state if dated else WatchState.initial(event_rules)
            dev = interpret(dev, at_state, event_rules)
            if dated and announced_type(dev):
                state.apply(event_rules, dev.type, case.published)
        if not announced_type(dev):
            dev = None  # a denial disputes an event; it is no development of its own
        results[i] = replace(result, development=dev, alert_worthy=result.relevant and dev is not None)
    return results


def evaluate_tagging(cases: list[LabelledCase], tagger: Any, rules: list[Any] | None = None,
                     event_rules: Any = "auto") -> dict[str, Any]:
    """Relevance, development, alert and per-topic figures of tagger over labelled cases.

    Developments are read as stored (see stored_results; event_rules "auto" loads the events.yaml
    beside the taxonomy, None reads statements as tagged).

    - relevance: P/R/F1 of TagResult.relevant against the label.
    - development accuracy: on cases whose truth has a development, the share tagged with exactly that
      type (none found counts as wrong).
    - false-development rate: on cases whose truth says "no development" (not on unlabelled ones), the
      share tagged with any development.
    - alerts (needs rules): every (case, enabled rule) where pipelines.alerts.rule_matches fires on the
      article as tagged is one predicted alert. It is correct when the same rule also fires on the
      article carrying the true labels (relevance, development type, topics where labelled), and, for a
      rule that fires on developments, the tagged type equals the true type. precision = correct /
      predicted; recall = correct / alerts the true labels would fire. Where the truth has no
      development label (shared articles), the tagged development stands in for it, so only relevance
      is judged.
    - alert_worthy precision: of cases tagged alert_worthy, those truly relevant with the same
      development type (where known).
    - per topic: P/R/F1 of each topic id over the cases that label topics.
    """
    from pipelines.alerts import rule_matches

    tp = fp = fn = tn = 0
    dev_cases = dev_right = nodev_cases = nodev_false = 0
    alerts_predicted = alerts_expected = alerts_correct = 0
    worthy_predicted = worthy_correct = 0
    topic_counts: dict[str, list[int]] = {}
    topic_cases = 0
    errors: list[dict[str, Any]] = []
    confusion: Counter[tuple[str, str]] = Counter()
    if event_rules == "auto":
        event_rules = _event_rules(tagger)
    for case, result in zip(cases, stored_results(cases, tagger, event_rules), strict=True):
        got_dev = result.development.type if result.development else None
        if result.relevant and case.relevant:
            tp += 1
        elif result.relevant:
            fp += 1
            errors.append({"id": case.id, "kind": "false-relevant", "expected": False, "got": True})
        elif case.relevant:
            fn += 1
            errors.append({"id": case.id, "kind": "missed-relevant", "expected": True, "got": False})
        else:
            tn += 1
        if case.development_known:
            if case.development:
                dev_cases += 1
                dev_right += got_dev == case.development
                confusion[(case.development, got_dev or "-")] += 1
            else:
                nodev_cases += 1
                nodev_false += got_dev is not None
            if got_dev != case.development:
                errors.append({"id": case.id, "kind": "development", "expected": case.development, "got": got_dev,
                               "evidence": result.development.evidence if result.development else None})
        if result.alert_worthy:
            worthy_predicted += 1
            worthy_correct += case.relevant and (not case.development_known or got_dev == case.development)
        if rules:
            predicted_article, gold_article = _eval_article(case, result, False), _eval_article(case, result, True)
            true_dev = case.development if case.development_known else got_dev
            for rule in rules:
                fired = rule_matches(rule, predicted_article) is not None
                expected = rule_matches(rule, gold_article) is not None
                alerts_predicted += fired
                alerts_expected += expected
                correct = fired and expected and (not rule.developments or got_dev == true_dev)
                alerts_correct += correct
                if fired and not correct:
                    errors.append({"id": case.id, "kind": "false-alert", "rule": rule.id, "got": got_dev,
                                   "expected": case.development if case.development_known else None})
                elif expected and not correct:
                    errors.append({"id": case.id, "kind": "missed-alert", "rule": rule.id, "got": got_dev,
                                   "expected": case.development if case.development_known else None})
        if case.topics is not None:
            topic_cases += 1
            truth, got = set(case.topics), set(result.topic_ids())
            for topic_id in truth | got:
                counts = topic_counts.setdefault(topic_id, [0, 0, 0])
                counts[0 if topic_id in truth and topic_id in got else 1 if topic_id in got else 2] += 1
    relevance = prf(tp, fp, fn) | {"tn": tn}
    topics = {topic_id: prf(*counts) | {"support": counts[0] + counts[2]}
              for topic_id, counts in sorted(topic_counts.items())}
    micro = prf(*(sum(c[i] for c in topic_counts.values()) for i in range(3)))
    return {
        "cases": len(cases),
        "relevant_cases": sum(case.relevant for case in cases),
        "relevance": relevance,
        "development": {"cases": dev_cases, "correct": dev_right, "accuracy": _ratio(dev_right, dev_cases),
                        "confusion": [{"expected": e, "got": g, "count": n}
                                      for (e, g), n in sorted(confusion.items()) if e != g]},
        "false_development": {"cases": nodev_cases, "false": nodev_false,
                              "rate": _ratio(nodev_false, nodev_cases)},
        "alerts": ({"rules": [rule.id for rule in rules], "predicted": alerts_predicted,
                    "correct": alerts_correct, "expected": alerts_expected,
                    "precision": _ratio(alerts_correct, alerts_predicted),
                    "recall": _ratio(alerts_correct, alerts_expected)} if rules is not None else None),
        "alert_worthy": {"predicted": worthy_predicted, "correct": worthy_correct,
                         "precision": _ratio(worthy_correct, worthy_predicted)},
        "topic_cases": topic_cases,
        "topics": topics,
        "topics_micro": micro,
        "errors": errors,
    }


def tagging_target_misses(result: dict[str, Any]) -> list[str]:
    """The issue's tagging targets this result misses (a figure that could not be measured is no miss)."""
    misses = []
    checks = (("relevance F1", result["relevance"]["f1"], TARGETS["relevance_f1"]),
              ("development accuracy", result["development"]["accuracy"], TARGETS["development_accuracy"]),
              ("alert precision", (result.get("alerts") or {}).get("precision"), TARGETS["alert_precision"]))
    for name, value, floor in checks:
        if value is not None and value < floor:
            misses.append(f"{name} {value:.3f} < {floor}")
    return misses


# --- stories (near-duplicate keys) ----------------------------------------------------------------


@dataclass
class StoryDoc:
    id: str
    story: str  # documents with the same story are near-duplicates; different stories are unrelated
    title: str
    text: str
    kind: str = ""  # original | copy | rewrite | synthetic-copy (informative)


def load_story_docs(paths: list[str], synthetic_copies: bool = False) -> list[StoryDoc]:
    """Documents from JSONL: {"id","story","title","text"[,"kind"]}; a record without "story" is a
    story of its own (the shared articles: all pairs of distinct records are unrelated).

    synthetic_copies adds, for each record without a story label, a mechanical syndicated copy (see
    synthetic_copy), so real texts also give near-duplicate pairs.
    """
    docs: list[StoryDoc] = []
    seen: set[str] = set()
    for path in jsonl_paths(paths):
        name = os.path.basename(path)
        for line_no, rec in _read_jsonl(path):
            where = f"{path}: line {line_no}"
            text, title = rec.get("text"), rec.get("title") or ""
            if not isinstance(text, str) or not isinstance(title, str):
                raise NewsmonError(f"{where}: field 'text': 'title' and 'text' must be strings")
            doc_id = rec.get("id") or f"{name}:{line_no}"
            if not isinstance(doc_id, str) or doc_id in seen:
                raise NewsmonError(f"{where}: field 'id': missing, not a string or duplicate ({doc_id!r})")
            seen.add(doc_id)
            story = rec.get("story")
            if story is not None and (not isinstance(story, str) or not story):
                raise NewsmonError(f"{where}: field 'story': expected a non-empty string")
            # "kind" labels a variant only beside a story label (the shared articles use it for news/analysis).
            kind = str(rec.get("kind") or "") if story is not None else "original"
            doc = StoryDoc(doc_id, story or f"own:{doc_id}", title, text, kind)
            docs.append(doc)
            if synthetic_copies and story is None:
                docs.append(synthetic_copy(doc))
    return docs


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def synthetic_copy(doc: StoryDoc) -> StoryDoc:
    """What a syndicating outlet typically does to wire copy, done mechanically and deterministically:
    its own headline, a dateline and its own first sentence instead of the wire's, the last quarter of
    the words cut, and a credit line added. No paraphrase: rewrites are measured on hand-written fixtures.
    """
    sentences = _SENTENCE_END.split(doc.text.strip())
    body = " ".join(sentences[1:]) if len(sentences) > 1 else doc.text
    words = body.split()
    kept = " ".join(words[: max(1, (len(words) * 3) // 4)])
    text = (f"(Newsmon Wire) - Here is the latest on this story from our partners. {kept}\n\n"
            "Reporting by wire staff; additional reporting by our correspondent. Editing by the desk.")
    return StoryDoc(f"{doc.id}#copy", doc.story, f"Latest: {doc.title}" if doc.title else "Latest", text,
                    "synthetic-copy")


def evaluate_stories(docs: list[StoryDoc]) -> dict[str, Any]:
    """Pairwise: of near-duplicate pairs (same story), the share with a story key in common; of unrelated
    pairs (different stories), the same share. Sharing any LSH key is what puts an article into an
    existing story in the store, so a shared key is a shared story id."""
    from pipelines.identity import shingles, story_keys

    keys = [set(story_keys(doc.title, doc.text)) for doc in docs]
    dup_pairs = dup_shared = other_pairs = other_shared = 0
    misses: list[dict[str, Any]] = []
    merges: list[dict[str, Any]] = []
    by_kind: dict[str, list[int]] = {}  # "copy+original" -> [pairs, shared]
    grams: dict[int, set[bytes]] = {}

    def jaccard(i: int, j: int) -> float:
        for k in (i, j):
            if k not in grams:
                grams[k] = shingles(docs[k].title, docs[k].text)
        union = len(grams[i] | grams[j])
        return len(grams[i] & grams[j]) / union if union else 0.0

    for i in range(len(docs)):
        for j in range(i + 1, len(docs)):
            shared = bool(keys[i] & keys[j])
            if docs[i].story == docs[j].story:
                dup_pairs += 1
                dup_shared += shared
                kind = "+".join(sorted((docs[i].kind or "?", docs[j].kind or "?")))
                counts = by_kind.setdefault(kind, [0, 0])
                counts[0] += 1
                counts[1] += shared
                if not shared:
                    misses.append({"a": docs[i].id, "b": docs[j].id, "jaccard": round(jaccard(i, j), 3)})
            else:
                other_pairs += 1
                other_shared += shared
                if shared:
                    merges.append({"a": docs[i].id, "b": docs[j].id, "jaccard": round(jaccard(i, j), 3)})
    return {
        "documents": len(docs),
        "stories": len({doc.story for doc in docs}),
        "duplicate_pairs": dup_pairs,
        "duplicate_shared": dup_shared,
        "duplicate_share_rate": _ratio(dup_shared, dup_pairs),
        "duplicate_by_kind": {kind: {"pairs": n, "shared": k, "rate": _ratio(k, n)}
                              for kind, (n, k) in sorted(by_kind.items())},
        "unrelated_pairs": other_pairs,
        "unrelated_shared": other_shared,
        "unrelated_share_rate": _ratio(other_shared, other_pairs),
        "missed_pairs": misses,
        "merged_pairs": merges,
    }


def story_target_misses(result: dict[str, Any]) -> list[str]:
    misses = []
    dup, other = result["duplicate_share_rate"], result["unrelated_share_rate"]
    if dup is not None and dup < TARGETS["duplicate_share_rate"]:
        misses.append(f"near-duplicate pairs sharing a story {dup:.3f} < {TARGETS['duplicate_share_rate']}")
    if other is not None and other >= TARGETS["unrelated_share_rate"]:
        misses.append(f"unrelated pairs sharing a story {other:.4f} >= {TARGETS['unrelated_share_rate']}")
    return misses

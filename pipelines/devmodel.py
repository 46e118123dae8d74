"""A small learned reader of development statements: the second opinion when the rules find none.

A multinomial logistic regression over hashed features of ONE sentence (a title or a lead sentence):
folded word unigrams, bigrams and 5-letter stems (pipelines.textnorm.fold, as the tagger folds), character
3-5-grams of Arabic-script words (Urdu, Dari, Pashto) and 1-2-grams of Chinese runs, and a few cue
features (question, negation, future, allegation, denial, background time, a duration).  Labels: the
development types, `hostilities`, `talks-continue` and `none`.  Pure Python, no dependency.

Training data is the project's own labelled sentences and nothing else (TRAINING_GLOBS): the tagging
fixtures (the title of a record labelled with a development; every title and lead sentence of a record
labelled with none) and the invented chronologies (the `reason` sentence of a record with a development;
the title and lead of one without).  The real coverage in ../shared is the unseen evaluation set and the
held-out chronologies are sealed: the trainer refuses any path outside TRAINING_GLOBS.

Training is deterministic (fixed seed, fixed order, features hashed with crc32, weights rounded), so the
same files always give a byte-identical model: `make model` writes pipelines/data/devmodel.json, and
tests/test_devmodel.py checks the committed file is what it builds.  The threshold stored in the file
is chosen by k-fold cross-validation on the training records (`python -m pipelines.devmodel cv`).

Use: Tagger(taxonomy, model=load_default_model()).  The tagger asks the model only for a relevant article
in which the rules found no development; the model then reads the title and the lead sentences the
rules read, and its most probable development above the threshold becomes an asserted Development.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import re
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.models import Development
from pipelines.textnorm import fold, split_sentences

if TYPE_CHECKING:
    from pipelines.tag import Analysis, Taxonomy

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "devmodel.json"
NONE = "none"
LABELS = ("ceasefire-agreed", "ceasefire-extended", "ceasefire-violated", "ceasefire-collapsed",
          "talks-scheduled", "talks-opened", "talks-stalled", "talks-broke-down", "talks-resumed",
          "agreement-reached", "hostilities", "talks-continue", NONE)
# The only files training reads (relative to the repo).  ../shared is the unseen evaluation set and
# tests/fixtures/holdout-chronologies/ a sealed held-out set: never training data.
TRAINING_GLOBS = ("tests/fixtures/tagging/*.jsonl", "tests/fixtures/chronologies/*.jsonl")
LEAD_SENTENCES = 5
TITLES = True  # also the title of a record whose label comes with a `reason` (cross-validation: more recall)  # as developments.lead_sentences in config/topics.yaml

BUCKETS = 1 << 20
SEED = 20251015
EPOCHS = 20
LEARNING_RATE = 5.0
DECAY = 1e-4  # learning rate lr / (1 + decay * step)
L2 = 1e-5  # applied to the weights an example touches (sparse)
PRUNE = 0.3  # weights below this (absolute) are dropped from the file (cross-validation: no loss)
DIGITS = 2  # weights are rounded to this many decimals, so the file is byte-stable
DEFAULT_THRESHOLD = 0.6  # used when a model file gives none; `cv` picks the one written to the file

_WORD_RE = re.compile(r"\w+")
_ARABIC_RE = re.compile("[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_CJK_RUN_RE = re.compile("[\u3400-\u9fff]+")
_CUES = {
    "neg": {"not", "no", "never", "nor", "without", "nt", "yet"},
    "fut": {"will", "would", "could", "may", "might", "expected", "plan", "plans", "planned", "set", "due",
            "next", "upcoming", "tomorrow"},
    "alleg": {"accused", "accuses", "accuse", "alleged", "alleges", "claimed", "claims", "blamed", "blames"},
    "deny": {"denied", "denies", "deny", "rejected", "rejects", "dismissed", "dismisses"},
    "past": {"after", "since", "ago", "last", "earlier", "previous", "before", "when"},
    "if": {"if", "unless", "should", "urged", "urges", "called", "calls", "hope", "hopes", "fear", "fears"},
}
_DURATION_RE = re.compile(r"\d+ ?(?:hour|day|week|month)")


# --- features -------------------------------------------------------------------------------------


def _bucket(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) % BUCKETS


def feature_names(sentence: str) -> list[str]:
    """The features of one sentence, by name, in a fixed order (duplicates removed)."""
    text = fold(sentence).text.strip()
    words = [re.sub(r"\d", "0", w) for w in _WORD_RE.findall(text)]
    out = ["bias"]
    prev = "<s>"
    for w in words:
        out.append("w:" + w)
        out.append("b:" + prev + " " + w)
        if len(w) > 5 and w.isascii():
            out.append("s:" + w[:5])
        if _ARABIC_RE.search(w):
            padded = f" {w} "
            for n in (3, 4, 5):
                out.extend("c:" + padded[i:i + n] for i in range(len(padded) - n + 1))
        prev = w
    if words:
        out.append("b:" + prev + " </s>")
    for run in _CJK_RUN_RE.findall(text):
        out.extend("z:" + ch for ch in run)
        out.extend("z:" + run[i:i + 2] for i in range(len(run) - 1))
    wordset = set(words)
    for name, cue_words in _CUES.items():
        if wordset & cue_words:
            out.append("cue:" + name)
    if text.rstrip(" \"'").endswith(("?", "\u061f")):
        out.append("cue:question")
    if _DURATION_RE.search(text):
        out.append("cue:duration")
    return list(dict.fromkeys(out))


def features(sentence: str) -> list[int]:
    """Hashed feature ids of one sentence (sorted, unique)."""
    return sorted({_bucket(name) for name in feature_names(sentence)})


# --- the model ------------------------------------------------------------------------------------


@dataclass
class DevModel:
    labels: tuple[str, ...]
    bias: list[float]
    weights: dict[int, list[tuple[int, float]]]  # bucket -> (label index, weight), sparse
    threshold: float = DEFAULT_THRESHOLD
    meta: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str] = DEFAULT_PATH, threshold: float | None = None) -> DevModel:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        labels = tuple(data["labels"])
        weights: dict[int, list[tuple[int, float]]] = {}
        for k, per_label in enumerate(data["weights"]):
            for bucket, w in per_label.items():
                weights.setdefault(int(bucket), []).append((k, w))
        chosen = data.get("threshold", DEFAULT_THRESHOLD) if threshold is None else threshold
        return cls(labels, list(data["bias"]), weights, float(chosen), data.get("meta"))

    def to_json(self) -> str:
        per_label: list[dict[str, float]] = [{} for _ in self.labels]
        for bucket in sorted(self.weights):
            for k, w in self.weights[bucket]:
                per_label[k][str(bucket)] = w
        data = {"format": 1, "labels": list(self.labels), "threshold": self.threshold, "bias": self.bias,
                "meta": self.meta or {}, "weights": per_label}
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"

    def probabilities(self, sentence: str) -> list[float]:
        """P(label | sentence) for each of self.labels."""
        scores = list(self.bias)
        feats = features(sentence)
        scale = 1.0 / math.sqrt(len(feats))
        weights = self.weights
        for f in feats:
            row = weights.get(f)
            if row:
                for k, w in row:
                    scores[k] += w * scale
        return _softmax(scores)

    def predict(self, sentence: str) -> tuple[str, float]:
        """The most probable label of one sentence and its probability."""
        probs = self.probabilities(sentence)
        best = max(range(len(probs)), key=probs.__getitem__)
        return self.labels[best], probs[best]

    def best_unit(self, units: Iterable[tuple[int, str]]) -> tuple[int, str, float] | None:
        """(unit, label, probability) of the most probable development (not none) over the units."""
        best = None
        for unit, sentence in units:
            label, prob = self.predict(sentence)
            if label != NONE and (best is None or prob > best[2]):
                best = (unit, label, prob)
        return best

    def develop(self, an: Analysis, taxonomy: Taxonomy) -> Development | None:
        """The tagger's hook: a development read by the model from the title and lead, or None.

        Called only when the rules found none in a relevant article.  Articles the rules deliberately
        read as announcing nothing (a question or background-genre headline) stay without one, and a
        sentence must be anchored in the theatre (a Gaza truce in a sidebar is no development of ours).
        """
        ftitle = an.ftitle.text
        genre = taxonomy.developments.filters.get("genre")
        if (genre is not None and genre.search(ftitle)) or "?" in ftitle or "\u061f" in ftitle:
            return None
        lead = taxonomy.developments.lead_sentences
        units = []
        for unit in range(-1, min(lead, len(an.sentences))):
            field_name, start, end = an.unit_span(unit)
            if end > start and an.anchored_unit(unit):
                units.append((unit, (an.title if unit < 0 else an.text)[start:end]))
        best = self.best_unit(units)
        if best is None or best[2] < self.threshold:
            return None
        unit, label, prob = best
        field_name, start, end = an.unit_span(unit)
        source = an.title if unit < 0 else an.text
        while start < end and source[start].isspace():
            start += 1
        while end > start and source[end - 1].isspace():
            end -= 1
        return Development(type=label, evidence=source[start:end], start=start, end=end, field=field_name,
                           mode="asserted", confidence=round(prob, 2))


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def load_default_model(threshold: float | None = None) -> DevModel | None:
    """The committed model (pipelines/data/devmodel.json), or None when the file is absent."""
    if not DEFAULT_PATH.is_file():
        return None
    return DevModel.load(DEFAULT_PATH, threshold)


# --- training data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One labelled report of the training files."""

    id: str
    group: str  # records of one real-world event share a group (kept in one fold by cross-validation)
    source: str  # file, relative to the repo
    title: str
    text: str
    relevant: bool
    development: str | None
    reason: str | None


def training_paths(repo: Path = REPO) -> list[Path]:
    """The training files: TRAINING_GLOBS under repo, sorted; nothing else is ever read."""
    paths: list[Path] = []
    for pattern in TRAINING_GLOBS:
        paths.extend(Path(p) for p in sorted(glob.glob(str(repo / pattern))))
    for path in paths:
        rel = path.resolve().relative_to(repo.resolve()).as_posix()
        if "holdout-chronologies" in rel or "shared" in rel.split("/"):
            raise ValueError(f"refusing to train on {rel}")
    return paths


def training_records(repo: Path = REPO) -> list[Record]:
    records: list[Record] = []
    for path in training_paths(repo):
        rel = path.resolve().relative_to(repo.resolve()).as_posix()
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = json.loads(line)
                group = rec.get("event") or rec["id"]
                records.append(Record(rec["id"], f"{rel}:{group}", rel, rec.get("title") or "", rec.get("text") or "",
                                      bool(rec.get("relevant")), rec.get("development"), rec.get("reason")))
    return records


def record_units(title: str, text: str, lead: int = LEAD_SENTENCES) -> list[str]:
    """The title and the lead sentences: the units the tagger's rules (and the model) read."""
    units = [title.strip()] if title.strip() else []
    units.extend(text[s:e].strip() for s, e in split_sentences(text, limit=lead))
    return [u for u in units if u]


def examples_of(records: Iterable[Record], titles: bool = TITLES) -> list[tuple[str, str]]:
    """(sentence, label) pairs: a development's sentence (reason, else the title) with its type; every
    unit of a record without one as none.  Exact repeats are dropped (first kept)."""
    out: dict[tuple[str, str], None] = {}
    for rec in records:
        if rec.development:
            sentence = (rec.reason or rec.title).strip()
            if sentence:
                out[(sentence, rec.development)] = None
            if titles and rec.reason and rec.title.strip():
                out[(rec.title.strip(), rec.development)] = None
        else:
            for unit in record_units(rec.title, rec.text):
                out[(unit, NONE)] = None
    return list(out)


# --- training -------------------------------------------------------------------------------------


def train(examples: list[tuple[str, str]], *, seed: int = SEED, epochs: int = EPOCHS,
          learning_rate: float = LEARNING_RATE, l2: float = L2, prune: float = PRUNE,
          threshold: float = DEFAULT_THRESHOLD, meta: dict[str, Any] | None = None) -> DevModel:
    """Multinomial logistic regression by SGD in a fixed order; same examples, same model, bit for bit."""
    labels = LABELS
    index = {label: k for k, label in enumerate(labels)}
    n_labels = len(labels)
    data = [(features(sentence), index[label]) for sentence, label in examples]
    dense: dict[int, list[float]] = {}
    bias = [0.0] * n_labels
    order = list(range(len(data)))
    rng = random.Random(seed)
    step = 0
    for _epoch in range(epochs):
        rng.shuffle(order)
        for i in order:
            feats, y = data[i]
            scale = 1.0 / math.sqrt(len(feats))
            rows = [dense.get(f) for f in feats]
            scores = list(bias)
            for row in rows:
                if row is not None:
                    for k in range(n_labels):
                        scores[k] += row[k] * scale
            grad = _softmax(scores)
            grad[y] -= 1.0
            lr = learning_rate / (1.0 + DECAY * step)
            step += 1
            for f, row in zip(feats, rows, strict=True):
                if row is None:
                    row = dense[f] = [0.0] * n_labels
                for k in range(n_labels):
                    row[k] -= lr * (grad[k] * scale + l2 * row[k])
            for k in range(n_labels):
                bias[k] -= lr * grad[k]
    weights: dict[int, list[tuple[int, float]]] = {}
    for f in sorted(dense):
        kept = [(k, round(w, DIGITS)) for k, w in enumerate(dense[f]) if abs(w) >= prune]
        if kept:
            weights[f] = kept
    return DevModel(labels, [round(b, DIGITS) for b in bias], weights, threshold, meta)


def build(repo: Path = REPO, threshold: float | None = None) -> DevModel:
    """The model `make model` writes: every training record, the cross-validated threshold."""
    records = training_records(repo)
    examples = examples_of(records)
    meta = {"examples": len(examples), "records": len(records), "seed": SEED, "epochs": EPOCHS,
            "sources": [p.resolve().relative_to(repo.resolve()).as_posix() for p in training_paths(repo)]}
    return train(examples, threshold=CV_THRESHOLD if threshold is None else threshold, meta=meta)


# --- cross-validation -----------------------------------------------------------------------------

K_FOLDS = 5
THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.30 .. 0.95
CV_THRESHOLD = 0.95  # chosen by `python -m pipelines.devmodel cv` (copied here so `make model` need not rerun it)


def folds(records: list[Record], k: int = K_FOLDS, seed: int = SEED) -> list[int]:
    """Fold of each record; the records of one event share a fold (its reports are near-duplicates)."""
    groups = sorted({r.group for r in records})
    random.Random(seed).shuffle(groups)
    fold_of = {g: i % k for i, g in enumerate(groups)}
    return [fold_of[r.group] for r in records]


def cross_validate(repo: Path = REPO, k: int = K_FOLDS) -> dict[str, Any]:
    """Out-of-fold figures on the training records, each read by a model that never saw its fold.

    model_alone: per record, the model's best development over its title and lead, at each threshold.
    hook: rules plus model in the real Tagger (developments as stored, by evaluation.stored_results):
    what the model adds where the rules found none, right (the labelled type) or wrong (another type, or
    one where the label says none).  The chosen threshold maximises right - wrong (each addition must be
    more likely right than wrong; ties go to the higher threshold).
    """
    from pipelines import evaluation as ev
    from pipelines.tag import Tagger, load_taxonomy_file

    records = training_records(repo)
    fold_of = folds(records, k)
    models = [train(examples_of(r for r, f in zip(records, fold_of, strict=True) if f != i)) for i in range(k)]
    alone: list[tuple[str | None, str | None, float]] = []  # (truth, predicted, probability) per record
    for rec, f in zip(records, fold_of, strict=True):
        best = models[f].best_unit(enumerate(record_units(rec.title, rec.text)))
        truth = rec.development if rec.relevant else None
        alone.append((truth, best[1], best[2]) if best else (truth, None, 0.0))
    with_dev = sum(truth is not None for truth, _, _ in alone)
    model_alone: dict[str, Any] = {}
    for t in THRESHOLDS:
        said = [(truth, got) for truth, got, p in alone if got is not None and p >= t]
        correct = sum(truth == got for truth, got in said)
        model_alone[f"{t:.2f}"] = {"predicted": len(said), "correct": correct,
                                   "precision": round(correct / len(said), 3) if said else None,
                                   "recall": round(correct / with_dev, 3) if with_dev else None,
                                   "on_none": sum(truth is None for truth, _ in said)}

    taxonomy = load_taxonomy_file(str(repo / "config" / "topics.yaml"))
    fold_by_key = {(r.title, r.text): f for r, f in zip(records, fold_of, strict=True)}

    class _FoldTagger:  # tags each record with the model of its fold
        def __init__(self, threshold: float | None):
            self.taxonomy = taxonomy
            self.plain = Tagger(taxonomy)
            self.by_fold = [Tagger(taxonomy, model=_with_threshold(m, threshold or 1.0)) for m in models]
            self.use_model = threshold is not None

        def tag(self, title: str, text: str) -> Any:
            if not self.use_model:
                return self.plain.tag(title, text)
            return self.by_fold[fold_by_key[(title, text)]].tag(title, text)

    sets: dict[str, list[str]] = {}
    for path in training_paths(repo):
        sets.setdefault(path.parent.name, []).append(str(path))
    cases_by_set = {name: ev.load_labelled(paths, taxonomy.topic_ids(), taxonomy.development_types())
                    for name, paths in sets.items()}
    event_rules = ev._event_rules(Tagger(taxonomy))

    def stored(threshold: float | None) -> dict[str, list[str | None]]:
        out = {}
        for name, cases in cases_by_set.items():
            results = ev.stored_results(cases, _FoldTagger(threshold), event_rules)
            out[name] = [r.development.type if r.development else None for r in results]
        return out

    rules = stored(None)
    hook: dict[str, Any] = {}
    for t in THRESHOLDS:
        both = stored(t)
        row: dict[str, Any] = {"right": 0, "wrong": 0, "lost": 0}
        for name, cases in cases_by_set.items():
            for case, before, after in zip(cases, rules[name], both[name], strict=True):
                if before == after:
                    continue
                if before == case.development:
                    row["lost"] += 1  # a stateful reading downstream changed (should not happen often)
                elif after == case.development:
                    row["right"] += 1
                else:
                    row["wrong"] += 1
        row["net"] = row["right"] - row["wrong"] - row["lost"]
        hook[f"{t:.2f}"] = row
    chosen = max(THRESHOLDS, key=lambda t: (hook[f"{t:.2f}"]["net"], t))
    at = both_at = stored(chosen)
    figures: dict[str, Any] = {}
    for name, cases in cases_by_set.items():
        figures[name] = {label: _counts(cases, got) for label, got in (("rules", rules[name]),
                                                                        ("rules+model", at[name]))}
    del both_at
    return {"k": k, "records": len(records), "examples": len(examples_of(records)), "threshold": chosen,
            "model_alone": model_alone, "hook": hook, "at_threshold": figures}


def _counts(cases: list[Any], got: list[str | None]) -> dict[str, str]:
    with_dev = [(c.development, g) for c, g in zip(cases, got, strict=True) if c.development]
    without = [g for c, g in zip(cases, got, strict=True) if not c.development]
    return {"development": f"{sum(t == g for t, g in with_dev)}/{len(with_dev)}",
            "false_developments": f"{sum(g is not None for g in without)}/{len(without)}"}


def _with_threshold(model: DevModel, threshold: float | None) -> DevModel:
    return DevModel(model.labels, model.bias, model.weights, DEFAULT_THRESHOLD if threshold is None else threshold)


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.devmodel", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train on the repo's labelled sentences and write the model file")
    p.add_argument("--out", default=str(DEFAULT_PATH), help=f"default {DEFAULT_PATH.relative_to(REPO)}")
    p = sub.add_parser("cv", help="k-fold cross-validation on the training records; picks the threshold")
    p.add_argument("-k", type=int, default=K_FOLDS)
    p = sub.add_parser("predict", help="label sentences (one per argument)")
    p.add_argument("sentences", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "train":
        model = build()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(model.to_json())
        entries = sum(len(row) for row in model.weights.values())
        print(f"wrote {args.out}: {model.meta['examples']} sentences from {model.meta['records']} records, "
              f"{entries} weights, threshold {model.threshold}")
    elif args.command == "cv":
        print(json.dumps(cross_validate(k=args.k), indent=1))
    else:
        model = load_default_model()
        if model is None:
            print(f"no model at {DEFAULT_PATH}: run make model", file=sys.stderr)
            return 1
        for sentence in args.sentences:
            label, prob = model.predict(sentence)
            print(f"{label}\t{prob:.3f}\t{sentence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

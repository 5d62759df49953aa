"""Incident-category classifier: held-out macro-F1, accuracy, training time and suggestions per second.

usage: python bench/classifier.py [--train 300] [--heldout 100] [--seconds 3]
Trains on the synthetic corpus in the "train" phrasing (seed 0) and evaluates on a separately seeded
corpus in the "heldout" phrasing (disjoint sentence templates, half of the paraphrases unseen), then
compares, in the same run, with the published figure of Amsterdam Signalen's classifier."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from citybase.ops.catalogue.defaults import CATEGORIES
from citybase.ops.classification.classifier import TextClassifier, evaluate, tokenize
from citybase.ops.classification.corpus import generate_corpus
from citybase.ops.intake.service import AUTO_DISPATCH_CONFIDENCE

SIGNALEN_MACRO_F1 = 0.88  # Amsterdam Signalen's published classifier figure (reference only)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=300, help="training texts per category")
    ap.add_argument("--heldout", type=int, default=100, help="held-out texts per category")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    names = {c.code: c.name for c in CATEGORIES}

    train = generate_corpus(args.train, seed=0, styles="train")
    heldout = generate_corpus(args.heldout, seed=1, styles="heldout")
    tokenize("预热")  # load jieba's dictionary outside the timing (about a second, once per process)
    print(f"corpus: {len(train)} training texts, {len(heldout)} held-out texts, {len(names)} categories, "
          f"{os.cpu_count()} CPUs")

    wall, cpu = time.perf_counter(), time.process_time()
    model = TextClassifier().fit([t for t, _ in train], [c for _, c in train])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    texts, labels = [t for t, _ in heldout], [c for _, c in heldout]
    ev = evaluate(model, texts, labels)

    print(f"training:        {wall:.1f} s wall, {cpu:.1f} s CPU")
    print(f"held-out:        macro-F1 {ev.macro_f1:.3f}, accuracy {ev.accuracy:.3f} (n={ev.n})")
    print(f"reference:       Amsterdam Signalen published macro-F1 {SIGNALEN_MACRO_F1:.2f} "
          f"({ev.macro_f1 - SIGNALEN_MACRO_F1:+.3f}; different city, language and data: a yardstick only)")
    print("weakest:         " + ", ".join(f"{code} {names.get(code, '?')} {f1:.2f}" for code, f1 in ev.worst))

    # How far the confidence can be trusted: accuracy of the top suggestion above confidence thresholds.
    tops = [(model.suggest(t, k=1)[0], label) for t, label in zip(texts, labels, strict=True)]
    mean_conf = sum(s.confidence for s, _ in tops) / len(tops)
    print(f"confidence:      mean top confidence {mean_conf:.2f} (accuracy {ev.accuracy:.2f})")
    for threshold in sorted({0.3, 0.5, 0.7, AUTO_DISPATCH_CONFIDENCE, 0.95}):
        above = [(s, label) for s, label in tops if s.confidence >= threshold]
        if above:
            right = sum(s.code == label for s, label in above) / len(above)
            note = "  (the service's auto-dispatch threshold)" if threshold == AUTO_DISPATCH_CONFIDENCE else ""
            print(f"  top ≥ {threshold:.2f}: {len(above) / len(tops):5.1%} of texts, {right:.1%} right{note}")
    in_top3 = sum(label in {s.code for s in model.suggest(t, k=3)} for t, label in zip(texts, labels, strict=True))
    print(f"top-3 contains the right category: {in_top3 / len(texts):.1%}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.joblib"
        model.save(path)
        start = time.perf_counter()
        loaded = TextClassifier.load(path)
        loaded.suggest(texts[0])
        print(f"model file:      {path.stat().st_size / 1e6:.1f} MB, load + first suggestion "
              f"{time.perf_counter() - start:.2f} s")

    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for text in texts[:1000]:
            loaded.suggest(text)
        n += min(len(texts), 1000)
    rate = n / (time.perf_counter() - start)
    print(f"suggest():       {rate:,.0f} calls/s ({1000 / rate:.2f} ms per call, one thread)")
    start = time.perf_counter()
    loaded.probabilities(texts)
    batch = len(texts) / (time.perf_counter() - start)
    print(f"batch scoring:   {batch:,.0f} texts/s (probabilities() over the held-out corpus)")


if __name__ == "__main__":
    main()

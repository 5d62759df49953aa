"""Training the incident classifier from the city's own labelled history (dispatcher-confirmed
categories, corrections included) plus, while that history is small, a generated corpus."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from citybase.kernel.runtime import invalidate
from citybase.ops.classification.classifier import Evaluation, train_and_evaluate
from citybase.ops.classification.corpus import generate_corpus
from citybase.ops.classification.repository import ClassificationRepository

log = logging.getLogger("citybase.ops.classification")
MODEL_FILE = "classifier.joblib"


@dataclass(frozen=True)
class TrainingReport:
    path: Path
    history: int
    generated: int
    heldout: int
    evaluation: Evaluation


def labelled_history(*, session: Session) -> list[tuple[str, str]]:
    """(text, category) of every report whose category a person confirmed or corrected."""
    return ClassificationRepository(session).labelled_history()


def train_classifier(*, session: Session, data_dir: Path, corpus_per_category: int = 200, seed: int = 0) -> TrainingReport:
    """Train, evaluate on held-out text (20 % of the history plus differently phrased generated text), save,
    and announce it (every process reloads the model once the caller commits). Writes the model file and
    queues the announcement in the session; does not commit."""
    history = labelled_history(session=session)
    rnd = random.Random(seed)
    rnd.shuffle(history)
    cut = int(len(history) * 0.8)
    generated = generate_corpus(corpus_per_category, seed=seed, styles="train") if corpus_per_category else []
    heldout_gen = generate_corpus(max(20, corpus_per_category // 3), seed=seed + 1, styles="heldout") \
        if corpus_per_category else []
    train = history[:cut] + generated
    heldout = history[cut:] + heldout_gen
    if not train or not heldout:
        raise ValueError("nothing to train on: no labelled history and no generated corpus")
    model, evaluation = train_and_evaluate(train, heldout)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / MODEL_FILE
    model.save(path)
    invalidate(session, "ops.classifier")
    return TrainingReport(path, len(history), len(generated), len(heldout), evaluation)


def load_classifier(data_dir: Path) -> Any:
    """The trained classifier saved in ``data_dir``, or None (keyword suggestions then) when there is none
    or it cannot be read (logged: retrain with ``citybase ops train-classifier``)."""
    path = Path(data_dir) / MODEL_FILE
    if not path.exists():
        return None
    from citybase.ops.classification.classifier import TextClassifier

    try:
        return TextClassifier.load(path)
    except (ValueError, OSError) as exc:
        log.warning("classifier at %s not loaded: %s (retrain with `citybase ops train-classifier`)", path, exc)
        return None

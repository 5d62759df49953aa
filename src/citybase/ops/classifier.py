"""Suggest an incident category, with a confidence, from the free Chinese text of a report.

Features: TF-IDF over jieba word uni+bigrams, united with TF-IDF over character 1–3-grams (robust to
typos and homophones and to words jieba splits differently); model: multinomial logistic regression,
whose probabilities are the confidences. The catalogue's category names and keywords are added to
jieba's dictionary so domain words stay whole.

Model files are joblib pickles: load only files you trust (unpickling runs code)."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.pipeline import FeatureUnion, Pipeline

from citybase.ops.catalogue import CATEGORIES

FORMAT = "citybase.ops.classifier"
FORMAT_VERSION = 1

_segmenter = None
_segmenter_lock = threading.Lock()
_DIGITS = re.compile(r"\d+")
_NOT_TEXT = re.compile(r"[^\w]+")


def domain_words() -> list[str]:
    """The catalogue's category names and multi-character keywords, added to jieba's dictionary."""
    words = {c.name for c in CATEGORIES} | {k for c in CATEGORIES for k in c.keywords}
    return sorted(w for w in words if len(w) >= 2)


def _jieba():
    """jieba's tokenizer with the domain words, loaded once on first use (its log silenced)."""
    global _segmenter
    if _segmenter is None:
        with _segmenter_lock:
            if _segmenter is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                seg = jieba.Tokenizer()
                seg.initialize()
                for word in domain_words():
                    seg.add_word(word)
                _segmenter = seg
    return _segmenter


def normalize(text: str) -> str:
    """Full-width to half-width, lower case, digit runs to 0, punctuation and spaces to one space."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _NOT_TEXT.sub(" ", _DIGITS.sub("0", text)).strip()


def tokenize(text: str) -> list[str]:
    """The jieba words of a text (normalised; punctuation and spaces dropped)."""
    return [w for w in _jieba().lcut(normalize(text)) if not w.isspace()]


def _words(text: str) -> list[str]:
    # The word vectorizer's tokenizer: a module function so that a fitted pipeline pickles by reference.
    return tokenize(text)


@dataclass(frozen=True)
class Suggestion:
    code: str
    confidence: float


@dataclass(frozen=True)
class Evaluation:
    macro_f1: float
    accuracy: float
    n: int
    per_category: dict[str, float]
    worst: list[tuple[str, float]]


def _pipeline(c: float = 20.0) -> Pipeline:
    words = TfidfVectorizer(tokenizer=_words, lowercase=False, token_pattern=None, ngram_range=(1, 2),
                            min_df=2, sublinear_tf=True, dtype=np.float32)
    chars = TfidfVectorizer(analyzer="char", preprocessor=normalize, ngram_range=(1, 3), min_df=2,
                            sublinear_tf=True, dtype=np.float32)
    features = FeatureUnion([("words", words), ("chars", chars)])
    return Pipeline([("features", features), ("model", LogisticRegression(C=c, max_iter=300))])


class TextClassifier:
    """Category suggestions for incident texts: TF-IDF (words + characters) and logistic regression."""

    def __init__(self, pipeline: Pipeline | None = None):
        self.pipeline = pipeline if pipeline is not None else _pipeline()

    @property
    def labels(self) -> list[str]:
        """The category codes the model knows, in the order of its probability columns."""
        return [str(c) for c in self.pipeline.classes_]

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TextClassifier:
        """Train on texts and their category codes; returns self."""
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if len(set(labels)) < 2:
            raise ValueError("need texts of at least two categories")
        self.pipeline.fit(list(texts), list(labels))
        return self

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """One row of probabilities per text, columns in the order of `labels`."""
        return self.pipeline.predict_proba(list(texts))

    def suggest(self, text: str, k: int = 3) -> list[Suggestion]:
        """The k most likely categories for a text, most confident first."""
        probs = self.probabilities([text])[0]
        top = np.argsort(-probs, kind="stable")[:max(k, 0)]
        labels = self.pipeline.classes_
        return [Suggestion(str(labels[i]), float(probs[i])) for i in top]

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely category code of each text."""
        return [str(c) for c in self.pipeline.predict(list(texts))]

    def save(self, path: str | Path) -> None:
        """Write the model to a file (joblib, with the format version and the scikit-learn version)."""
        payload = {"format": FORMAT, "version": FORMAT_VERSION, "sklearn": sklearn.__version__,
                   "pipeline": self.pipeline}
        joblib.dump(payload, Path(path), compress=3)

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        """Read a model written by `save`; ValueError if the file is not one or of another format version."""
        try:
            payload = joblib.load(Path(path))
        except FileNotFoundError:
            raise
        except Exception as exc:  # a pickle of anything can fail in any way
            raise ValueError(f"{path} is not a citybase classifier file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a citybase classifier file")
        if payload.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} is a classifier file of format version {payload.get('version')}; this "
                             f"citybase reads version {FORMAT_VERSION}: retrain and save the model again")
        if payload.get("sklearn") != sklearn.__version__:
            warnings.warn(f"{path} was saved with scikit-learn {payload.get('sklearn')}, running "
                          f"{sklearn.__version__}: retrain if its suggestions look wrong", stacklevel=2)
        return cls(payload["pipeline"])


def evaluate(model: TextClassifier, texts: Sequence[str], labels: Sequence[str]) -> Evaluation:
    """Macro-F1, accuracy and per-category F1 of a model on labelled texts, with the 5 weakest categories."""
    predicted = model.predict(texts)
    codes = sorted(set(labels) | set(predicted))
    _, _, f1, _ = precision_recall_fscore_support(labels, predicted, labels=codes, zero_division=0)
    per_category = {code: float(score) for code, score in zip(codes, f1, strict=True)}
    worst = sorted(per_category.items(), key=lambda item: (item[1], item[0]))[:5]
    return Evaluation(macro_f1=float(np.mean(f1)) if len(codes) else 0.0,
                      accuracy=float(accuracy_score(labels, predicted)) if len(labels) else 0.0,
                      n=len(labels), per_category=per_category, worst=worst)


def train_and_evaluate(train_pairs: Sequence[tuple[str, str]],
                       heldout_pairs: Sequence[tuple[str, str]]) -> tuple[TextClassifier, Evaluation]:
    """Fit a classifier on (text, code) pairs and evaluate it on other pairs."""
    texts, labels = zip(*train_pairs, strict=True) if train_pairs else ((), ())
    model = TextClassifier().fit(texts, labels)
    held_texts, held_labels = zip(*heldout_pairs, strict=True) if heldout_pairs else ((), ())
    return model, evaluate(model, held_texts, held_labels)

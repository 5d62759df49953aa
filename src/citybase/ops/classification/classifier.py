"""Suggest an incident category, with a confidence, from the free Chinese text of a report.

Features: TF-IDF over jieba word uni+bigrams (weighted 0.5), united with TF-IDF over character
1–3-grams (robust to typos, homophones and words jieba splits differently); the 35 % of features with
the highest chi² against the category are kept (drops the greetings, moods and addresses that say
nothing about the category, and makes training ~3× faster); model: multinomial logistic regression,
whose probabilities are the confidences. The catalogue's category names and keywords are added to
jieba's dictionary so domain words stay whole.

`TextClassifier.suggest` scores one text without scikit-learn's per-call input checks (same arithmetic
as the pipeline, a test holds them equal), so a suggestion takes well under a millisecond.

Model files are joblib pickles: load only files you trust (unpickling runs code)."""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import SelectPercentile, chi2
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits

from citybase.ops.catalogue.defaults import CATEGORIES

FORMAT = "citybase.ops.classifier"
FORMAT_VERSION = 2  # 2: chi² selection step; tokenizer is `tokenize` (version 1 files: retrain)
WORD_WEIGHT = 0.5
KEEP_PERCENT = 35
C = 20.0

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
    """The jieba words of a text (normalised; punctuation and spaces dropped; no HMM guessing of new words)."""
    return [w for w in _jieba().lcut(normalize(text), HMM=False) if not w.isspace()]


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


def build_pipeline() -> Pipeline:
    """The untrained scikit-learn pipeline: word + character TF-IDF, chi² selection, logistic regression."""
    words = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, 2),
                            min_df=2, sublinear_tf=True, dtype=np.float32)
    chars = TfidfVectorizer(analyzer="char", preprocessor=normalize, ngram_range=(1, 3), min_df=2,
                            sublinear_tf=True, dtype=np.float32)
    features = FeatureUnion([("words", words), ("chars", chars)], transformer_weights={"words": WORD_WEIGHT})
    return Pipeline([
        ("features", features),
        ("select", SelectPercentile(chi2, percentile=KEEP_PERCENT)),
        ("model", LogisticRegression(C=C, max_iter=1000)),
    ])


class _Scorer:
    """The fitted pipeline's arithmetic for one text, without scikit-learn's per-call overhead."""

    def __init__(self, pipeline: Pipeline):
        union: FeatureUnion = pipeline.named_steps["features"]
        kept = pipeline.named_steps["select"].get_support(indices=True)
        model: LogisticRegression = pipeline.named_steps["model"]
        weights = union.transformer_weights or {}
        self.parts = []
        offset = 0
        for name, vectorizer in union.transformer_list:
            width = len(vectorizer.vocabulary_)
            inside = kept[(kept >= offset) & (kept < offset + width)]
            column = np.full(width, -1, dtype=np.int64)  # original column -> column after selection
            column[inside - offset] = np.searchsorted(kept, inside)
            self.parts.append((vectorizer.build_analyzer(), vectorizer.vocabulary_,
                               vectorizer.idf_.astype(np.float64), column, float(weights.get(name, 1.0))))
            offset += width
        self.coef = np.ascontiguousarray(model.coef_.T, dtype=np.float64)  # kept features × classes
        self.intercept = model.intercept_.astype(np.float64)
        self.classes = [str(c) for c in model.classes_]

    def probabilities(self, text: str) -> np.ndarray:
        scores = self.intercept.copy()
        for analyze, vocabulary, idf, column, weight in self.parts:
            counts = Counter(analyze(text))
            cols = np.fromiter((vocabulary.get(term, -1) for term in counts), dtype=np.int64, count=len(counts))
            tf = np.fromiter((1.0 + math.log(n) for n in counts.values()), dtype=np.float64, count=len(counts))
            known = cols >= 0
            cols, values = cols[known], tf[known] * idf[cols[known]]
            norm = math.sqrt(float(values @ values))
            if norm == 0.0:
                continue
            at = column[cols]
            used = at >= 0
            scores += (values[used] * (weight / norm)) @ self.coef[at[used]]
        if len(self.classes) == 2:  # a binary model has one score, for the second class
            scores = np.array([0.0, scores[0]])
        scores -= scores.max()
        np.exp(scores, out=scores)
        return scores / scores.sum()


class TextClassifier:
    """Category suggestions for incident texts: TF-IDF (words + characters) and logistic regression."""

    def __init__(self, pipeline: Pipeline | None = None):
        self.pipeline = pipeline if pipeline is not None else build_pipeline()
        self._scorer: _Scorer | None = None

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
        self._scorer = None
        # One BLAS thread: L-BFGS's small vector operations gain nothing from more, and on a busy machine
        # spinning BLAS threads made training several times slower.
        with threadpool_limits(limits=1, user_api="blas"):
            self.pipeline.fit(list(texts), [str(label) for label in labels])
        return self

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """One row of probabilities per text (batch, through the pipeline), columns in `labels` order."""
        return self.pipeline.predict_proba(list(texts))

    def suggest(self, text: str, k: int = 3) -> list[Suggestion]:
        """The k most likely categories for a text, most confident first."""
        if self._scorer is None:
            self._scorer = _Scorer(self.pipeline)
        probs = self._scorer.probabilities(text)
        top = np.argsort(-probs, kind="stable")[:max(k, 0)]
        return [Suggestion(self._scorer.classes[i], float(probs[i])) for i in top]

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
        except Exception as exc:  # unpickling garbage fails in many ways
            raise ValueError(f"{path} is not a citybase classifier file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a citybase classifier file")
        if payload.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} is a classifier file of format version {payload.get('version')!r}; this "
                             f"citybase reads version {FORMAT_VERSION}: train and save the model again")
        if payload.get("sklearn") != sklearn.__version__:
            warnings.warn(f"{path} was saved with scikit-learn {payload.get('sklearn')}, this is "
                          f"{sklearn.__version__}: retrain if its suggestions look wrong", stacklevel=2)
        return cls(payload["pipeline"])


def evaluate(model: TextClassifier, texts: Sequence[str], labels: Sequence[str]) -> Evaluation:
    """Macro-F1, accuracy and per-category F1 of a model on labelled texts, with the 5 weakest categories."""
    if not texts:
        return Evaluation(macro_f1=0.0, accuracy=0.0, n=0, per_category={}, worst=[])
    truth = [str(label) for label in labels]
    predicted = model.predict(texts)
    codes = sorted(set(truth) | set(predicted))
    _, _, f1, _ = precision_recall_fscore_support(truth, predicted, labels=codes, zero_division=0)
    per_category = {code: float(score) for code, score in zip(codes, f1, strict=True)}
    worst = sorted(per_category.items(), key=lambda item: (item[1], item[0]))[:5]
    return Evaluation(macro_f1=float(np.mean(f1)), accuracy=float(accuracy_score(truth, predicted)),
                      n=len(truth), per_category=per_category, worst=worst)


def train_and_evaluate(train_pairs: Sequence[tuple[str, str]],
                       heldout_pairs: Sequence[tuple[str, str]]) -> tuple[TextClassifier, Evaluation]:
    """Fit a classifier on (text, code) pairs and evaluate it on other (text, code) pairs."""
    model = TextClassifier().fit([t for t, _ in train_pairs], [c for _, c in train_pairs])
    return model, evaluate(model, [t for t, _ in heldout_pairs], [c for _, c in heldout_pairs])


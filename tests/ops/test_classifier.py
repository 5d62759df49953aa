"""The incident-category classifier (jieba + scikit-learn) and its synthetic training corpus."""

from __future__ import annotations

import math

import joblib
import numpy as np
import pytest

from citybase.ops.catalogue.defaults import CATEGORIES
from citybase.ops.classification.classifier import (
    FORMAT,
    FORMAT_VERSION,
    Suggestion,
    TextClassifier,
    evaluate,
    tokenize,
    train_and_evaluate,
)
from citybase.ops.classification.corpus import generate_corpus, paraphrases, templates

CODES = {c.code for c in CATEGORIES}


@pytest.fixture(scope="module")
def trained():
    """A model trained on a modest corpus in the train phrasing, evaluated on held-out phrasing."""
    train = generate_corpus(60, seed=0, styles="train")
    heldout = generate_corpus(15, seed=1, styles="heldout")
    model, evaluation = train_and_evaluate(train, heldout)
    return model, evaluation, heldout


def test_suggestions_are_sorted_by_confidence_within_zero_and_one(trained):
    model, _, heldout = trained
    for text, _ in heldout[:50]:
        s = model.suggest(text, k=5)
        assert len(s) == 5 and all(isinstance(x, Suggestion) for x in s)
        confidences = [x.confidence for x in s]
        assert confidences == sorted(confidences, reverse=True)
        assert 0 < confidences[0] <= 1 and all(0 <= c <= 1 for c in confidences)
        assert len({x.code for x in s}) == 5 and {x.code for x in s} <= set(model.labels)


def test_probabilities_over_all_categories_sum_to_one(trained):
    model, _, heldout = trained
    everything = model.suggest(heldout[0][0], k=len(model.labels))
    assert len(everything) == len(model.labels) == len(CODES)
    assert math.isclose(sum(s.confidence for s in everything), 1.0, abs_tol=1e-6)
    rows = model.probabilities([t for t, _ in heldout[:20]])
    assert np.allclose(rows.sum(axis=1), 1.0)


def test_fast_suggest_gives_the_pipeline_probabilities(trained):
    model, _, heldout = trained
    texts = [t for t, _ in heldout[:100]] + ["", "！！！", "ＫＴＶ半夜１２点还在唱"]
    rows = model.probabilities(texts)
    for text, row in zip(texts, rows, strict=True):
        fast = {s.code: s.confidence for s in model.suggest(text, k=len(model.labels))}
        assert np.allclose([fast[c] for c in model.labels], row, atol=1e-5)


def test_a_two_category_model_suggests_both_with_the_pipeline_probabilities():
    pairs = [(t, c) for t, c in generate_corpus(20, seed=2) if c in ("02001", "04001")]
    model = TextClassifier().fit([t for t, _ in pairs], [c for _, c in pairs])
    s = model.suggest("井盖不见了", k=5)
    assert [x.code for x in s] == ["02001", "04001"]
    assert np.allclose([x.confidence for x in s], model.probabilities(["井盖不见了"])[0], atol=1e-5)


def test_predict_is_the_top_suggestion(trained):
    model, _, heldout = trained
    texts = [t for t, _ in heldout[:30]]
    assert model.predict(texts) == [model.suggest(t, k=1)[0].code for t in texts]


def test_a_model_trained_on_train_phrasing_generalises_to_heldout_phrasing(trained):
    _, ev, heldout = trained
    # 60 texts a category reach ~0.87 here, the bench (300 a category) ~0.88; training is deterministic.
    assert ev.macro_f1 >= 0.80, ev
    assert ev.accuracy >= 0.80
    assert ev.n == len(heldout)
    assert set(ev.per_category) == CODES
    assert len(ev.worst) == 5
    assert [f for _, f in ev.worst] == sorted(f for _, f in ev.worst)
    assert ev.worst[0][1] == min(ev.per_category.values())
    assert math.isclose(ev.macro_f1, sum(ev.per_category.values()) / len(ev.per_category))


@pytest.mark.parametrize(("text", "code"), [
    ("小区门口的井盖不见了，很危险", "02001"),
    ("晚上十二点工地还在打桩吵得睡不着", "04001"),
    ("电梯卡住了，我和孩子被困在里面", "05007"),
    ("楼下饭馆油烟太大，熏得不敢开窗", "07002"),
    ("路口红绿灯坏了不亮", "06001"),
    ("有人推着三轮车在人行道上卖水果", "03001"),
    ("闻到很重的煤气味", "05002"),
    ("楼顶违章搭了一间房", "04006"),
])
def test_obvious_reports_go_to_the_right_category(trained, text, code):
    model, _, _ = trained
    top = model.suggest(text)[0]
    assert top.code == code, model.suggest(text)
    assert top.confidence > 0.5


def test_save_and_load_round_trip_to_identical_suggestions(trained, tmp_path):
    model, _, heldout = trained
    path = tmp_path / "classifier.joblib"
    model.save(path)
    loaded = TextClassifier.load(path)
    assert loaded.labels == model.labels
    for text, _ in heldout[:20]:
        assert loaded.suggest(text, k=3) == model.suggest(text, k=3)


def test_loading_a_file_that_is_not_a_model_of_this_format_raises_value_error(tmp_path):
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"this is not a pickle at all")
    foreign = tmp_path / "foreign.joblib"
    joblib.dump({"something": "else"}, foreign)
    future = tmp_path / "future.joblib"
    joblib.dump({"format": FORMAT, "version": FORMAT_VERSION + 1, "sklearn": "9", "pipeline": None}, future)
    for path in (garbage, foreign):
        with pytest.raises(ValueError, match="not a citybase classifier file"):
            TextClassifier.load(path)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}"):
        TextClassifier.load(future)


def test_fit_refuses_mismatched_or_single_category_training_data():
    with pytest.raises(ValueError):
        TextClassifier().fit(["井盖坏了", "路灯不亮"], ["02001"])
    with pytest.raises(ValueError):
        TextClassifier().fit(["井盖坏了", "井盖没了"], ["02001", "02001"])


def test_corpus_is_deterministic_for_a_seed_and_varies_with_it():
    assert generate_corpus(5, seed=3) == generate_corpus(5, seed=3)
    assert generate_corpus(5, seed=3, styles="heldout") == generate_corpus(5, seed=3, styles="heldout")
    assert generate_corpus(5, seed=3) != generate_corpus(5, seed=4)


def test_corpus_covers_every_category_evenly_with_varied_texts():
    pairs = generate_corpus(30, seed=0)
    counts = {code: 0 for code in CODES}
    for _, code in pairs:
        counts[code] += 1
    assert set(counts.values()) == {30}
    assert len({t for t, _ in pairs}) > 0.95 * len(pairs)


def test_train_and_heldout_use_disjoint_templates_and_no_heldout_text_is_in_train():
    train_t, held_t = set(templates("train")), set(templates("heldout"))
    assert train_t and held_t and not train_t & held_t
    assert 0.25 <= len(held_t) / (len(held_t) + len(train_t)) <= 0.4
    train = generate_corpus(60, seed=0, styles="train")
    heldout = generate_corpus(30, seed=1, styles="heldout")
    assert not {t for t, _ in heldout} & {t for t, _ in train}


def test_heldout_draws_on_paraphrases_the_train_phrasing_never_uses():
    train_text = "\n".join(t for t, _ in generate_corpus(60, seed=0, styles="train"))
    held_text = "\n".join(t for t, _ in generate_corpus(30, seed=1, styles="heldout"))
    unseen = [p for code in sorted(CODES) for p in set(paraphrases(code, "heldout")) - set(paraphrases(code, "train"))]
    assert len(unseen) >= 2 * len(CODES)
    assert not [p for p in unseen if p in train_text]
    assert sum(p in held_text for p in unseen) > 0.5 * len(unseen)


def test_unknown_corpus_style_is_rejected():
    with pytest.raises(ValueError, match="styles"):
        generate_corpus(1, styles="test")


def test_tokenize_keeps_catalogue_keywords_whole():
    assert "电瓶车充电" in tokenize("楼道里有人电瓶车充电，很危险")
    assert "夜间施工" in tokenize("隔壁工地夜间施工吵得很")
    assert "井盖" in tokenize("小区门口的井盖不见了")
    assert "" not in tokenize("喂，你好！！  有人乱停车。") and "，" not in tokenize("喂，你好")


def test_evaluate_of_an_empty_set_is_zero_not_an_error(trained):
    model, _, _ = trained
    ev = evaluate(model, [], [])
    assert (ev.n, ev.macro_f1, ev.worst) == (0, 0.0, [])

"""GLEU against nltk's reference implementation (sentence_gleu per sample, corpus_gleu as the aggregate)."""

from __future__ import annotations

import pytest

from evalkit.metrics import all_metrics, get_metric
from evalkit.metrics.gleu import tokenize
from evalkit.sample import Parsed, Sample

gleu_score = pytest.importorskip("nltk.translate.gleu_score")

PAIRS = [
    ("No acute cardiopulmonary process.", "No acute cardiopulmonary process."),
    ("Small left pleural effusion. Heart size is normal.", "Heart size is normal. There is a small left effusion."),
    ("The lungs are clear.", "Moderate right pleural effusion with adjacent atelectasis."),
    ("Cardiomegaly", "Mild cardiomegaly without edema."),
    ("", "The lungs are clear without focal consolidation."),
    ("the the the the", "The heart is normal in size; the lungs are clear."),
    ("", ""),
    ("A 12 mm nodule in the right mid lung, new since 2150-01-03.", "Right mid lung nodule measuring 12 mm."),
]


def _score(metric, pairs):
    preds = [Parsed(answer=p) for p, _ in pairs]
    samples = [Sample(sample_id=f"s{i}", task="t", image_paths=[], reference_text=r) for i, (_, r) in enumerate(pairs)]
    return metric.score(preds, samples)


@pytest.mark.parametrize("tokenizer", ["words", "whitespace"])
def test_sentence_values_match_nltk(tokenizer: str) -> None:
    metric = get_metric("gleu", tokenizer=tokenizer)
    for (prediction, reference), score in zip(PAIRS, _score(metric, PAIRS), strict=True):
        expected = gleu_score.sentence_gleu([tokenize(reference, tokenizer)], tokenize(prediction, tokenizer))
        assert score.value == pytest.approx(expected, abs=1e-12), (prediction, reference)


@pytest.mark.parametrize("orders", [(1, 4), (1, 2), (2, 3)])
def test_corpus_value_matches_nltk_and_is_not_the_mean(orders: tuple[int, int]) -> None:
    metric = get_metric("gleu", min_len=orders[0], max_len=orders[1])
    scores = _score(metric, PAIRS)
    value = metric.aggregate([s.value for s in scores], [s.stats for s in scores])
    expected = gleu_score.corpus_gleu(
        [[tokenize(r, "words")] for _, r in PAIRS],
        [tokenize(p, "words") for p, _ in PAIRS],
        min_len=orders[0],
        max_len=orders[1],
    )
    assert value == pytest.approx(expected, abs=1e-12)
    mean = sum(s.value for s in scores) / len(scores)
    assert value != pytest.approx(mean)


def test_registered_with_metadata_and_option_errors() -> None:
    cls = all_metrics()["gleu"]
    assert cls.higher_is_better and cls.kind == "report" and cls.corpus
    empty = get_metric("gleu")
    assert empty.aggregate([], []) != empty.aggregate([], [])  # nan when there is nothing to aggregate
    with pytest.raises(ValueError, match="tokenizer"):
        get_metric("gleu", tokenizer="bpe")

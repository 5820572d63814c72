"""Parity of the lexical metrics with their reference implementations on the same inputs."""

import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from rouge_score import rouge_scorer

from evalkit.metrics import get_metric
from evalkit.metrics.lexical import bleu_tokenize
from evalkit.sample import Parsed, Sample

WORDS = "the heart size is normal no pleural effusion or pneumothorax small nodule right upper lobe left".split()


def _pairs(n: int, seed: int):
    rng = random.Random(seed)
    refs = [" ".join(rng.choices(WORDS, k=rng.randint(3, 25))) + "." for _ in range(n)]
    preds = [" ".join(rng.choices(WORDS, k=rng.randint(0, 25))) for _ in range(n)]
    return refs, preds


def _score(name, refs, preds, **options):
    metric = get_metric(name, **options)
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    scores = metric.score([Parsed(answer=p) for p in preds], samples)
    return metric, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rouge_l_matches_rouge_score(seed):
    refs, preds = _pairs(40, seed)
    metric, scores = _score("rouge_l", refs, preds)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = [scorer.score(r, p)["rougeL"].fmeasure for r, p in zip(refs, preds, strict=True)]
    assert [s.value for s in scores] == pytest.approx(expected, abs=1e-12)
    assert metric.aggregate([s.value for s in scores], [s.stats for s in scores]) == pytest.approx(
        sum(expected) / len(expected), abs=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_4_matches_pycocoevalcap(seed):
    refs, preds = _pairs(40, seed)
    metric, scores = _score("bleu_4", refs, preds, tokenization="lower_punct")
    gts = {i: [bleu_tokenize(r)] for i, r in enumerate(refs)}
    res = {i: [bleu_tokenize(p)] for i, p in enumerate(preds)}
    corpus, per_sample = Bleu(4).compute_score(gts, res, verbose=0)
    assert [s.value for s in scores] == pytest.approx(per_sample[3], abs=1e-9)
    assert metric.aggregate([s.value for s in scores], [s.stats for s in scores]) == pytest.approx(corpus[3], abs=1e-9)


def test_bleu_corpus_is_not_the_mean_of_sentences():
    refs, preds = _pairs(30, 5)
    metric, scores = _score("bleu_4", refs, preds)
    values = [s.value for s in scores]
    assert metric.aggregate(values, [s.stats for s in scores]) != pytest.approx(sum(values) / len(values))


def test_bleu_on_a_resample_uses_only_stats():
    refs, preds = _pairs(30, 7)
    metric, scores = _score("bleu_4", refs, preds)
    subset = [0, 0, 3, 5, 5, 5, 9]
    gts = {k: [bleu_tokenize(refs[i])] for k, i in enumerate(subset)}
    res = {k: [bleu_tokenize(preds[i])] for k, i in enumerate(subset)}
    corpus, _ = Bleu(4).compute_score(gts, res, verbose=0)
    value = metric.aggregate([scores[i].value for i in subset], [scores[i].stats for i in subset])
    assert value == pytest.approx(corpus[3], abs=1e-9)


def test_a_score_whose_stats_record_an_error_is_stored_without_a_value():
    """Failures are found among value-less scores only (results.queries.failure_counts): safe_score holds it."""
    from evalkit.metrics.base import Metric, SampleScore, safe_score

    class HalfFailing(Metric):
        name = "half_failing"

        def score(self, predictions, samples):
            return [SampleScore(0.5, {"error": "refused"}), SampleScore(0.25, {"n": 1})]

    (failed, fine) = safe_score(HalfFailing(), [Parsed(answer="a"), Parsed(answer="b")], [None, None])
    assert (failed.value, failed.stats) == (None, {"error": "refused"}) and (fine.value, fine.stats) == (0.25, {"n": 1})

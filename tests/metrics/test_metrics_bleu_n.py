"""BLEU-1..3 (BLEU-4 is in test_metrics_lexical.py): per-sentence and corpus values against pycocoevalcap."""

from __future__ import annotations

import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu

from evalkit.metrics import get_metric
from evalkit.metrics.lexical import bleu_tokenize
from evalkit.sample import Parsed, Sample

WORDS = "the heart size is normal no pleural effusion or pneumothorax small nodule right upper lobe left".split()


def _pairs(n: int, seed: int):
    rng = random.Random(seed)
    refs = [" ".join(rng.choices(WORDS, k=rng.randint(3, 25))) + "." for _ in range(n)]
    preds = [" ".join(rng.choices(WORDS, k=rng.randint(0, 25))) for _ in range(n)]
    return refs, preds


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("tokenization", ["raw", "lower_punct"])
def test_bleu_n_matches_pycocoevalcap(n, seed, tokenization):
    refs, preds = _pairs(40, seed)
    metric = get_metric(f"bleu_{n}", tokenization=tokenization)
    prepare = bleu_tokenize if tokenization == "lower_punct" else (lambda text: text)
    scores = metric.score(
        [Parsed(answer=p) for p in preds], [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    )
    corpus, per_sample = Bleu(4).compute_score(
        {i: [prepare(r)] for i, r in enumerate(refs)},
        {i: [prepare(p)] for i, p in enumerate(preds)},
        verbose=0,
    )
    assert [s.value for s in scores] == pytest.approx(per_sample[n - 1], abs=1e-9)
    assert metric.aggregate([s.value for s in scores], [s.stats for s in scores]) == pytest.approx(
        corpus[n - 1], abs=1e-9
    )

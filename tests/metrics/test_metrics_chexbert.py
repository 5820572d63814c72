"""CheXbert F1: our labeller against f1chexbert 0.0.2 on a tiny random `bert_labeler`, and the F1 arithmetic
against scikit-learn's classification_report on the same label vectors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.clinical import chexbert_files, reference
from sklearn.metrics import classification_report

from evalkit.metrics import get_metric
from evalkit.metrics.chexbert import (
    CONDITIONS,
    FIVE,
    FIVE_INDEX,
    CheXbertLabeler,
    embedding,
    get_labeler,
    rrg_labels,
)
from evalkit.sample import Parsed, Sample

NAMES = {
    "chexbert_micro_f1_14": ("micro", 14),
    "chexbert_macro_f1_14": ("macro", 14),
    "chexbert_micro_f1_5": ("micro", 5),
    "chexbert_macro_f1_5": ("macro", 5),
}


def _options():
    checkpoint, tokenizer = chexbert_files()
    return {"checkpoint": str(checkpoint), "tokenizer": str(tokenizer), "device": "cpu"}


def _samples(refs):
    return [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]


def test_five_labels_are_f1chexberts():
    assert [CONDITIONS[i] for i in FIVE_INDEX] == list(FIVE)


def test_tokenisation_matches_f1chexbert():
    fixture = reference()["chexbert"]
    labeler = get_labeler(*chexbert_files(), "cpu", 8)
    assert [labeler.encode(t) for t in fixture["texts"]] == fixture["token_ids"]
    assert len(labeler.encode("effusion " * 2000)) == 512  # cut to 511 + [SEP], as f1chexbert


@pytest.mark.parametrize("batch_size", [1, 8])
def test_labels_and_embeddings_match_f1chexbert(batch_size):
    fixture = reference()["chexbert"]
    labeler = CheXbertLabeler(*chexbert_files(), device="cpu", batch_size=batch_size)
    out = labeler(fixture["texts"])
    assert [o["classes"] for o in out] == fixture["classes"]
    got = np.stack([embedding(o) for o in out])
    expected = np.array(fixture["embeddings"])
    assert np.abs(got - expected).max() <= float32_tolerance(expected)


# The tiny CheXbert's shape (evalkit.testing.tiny_clinical.write_tiny_chexbert): 2 layers, hidden 64, FFN 128.
LAYERS, LONGEST_REDUCTION, REDUCTIONS_PER_LAYER = 2, 128, 6


def float32_tolerance(expected: np.ndarray) -> float:
    """How far two correct float32 runs of the same model may differ, from the arithmetic.

    The fixture was made on another CPU. A different SIMD width (or batch padding, which changes the GEMM
    shapes) changes the summation order of each float32 reduction of length n, which moves its result by about
    sqrt(n) units of roundoff u = 2**-24 relative (rounding errors of a reordered sum behave like a random walk;
    Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., sec. 4.2). The [CLS] state passes LAYERS
    layers of REDUCTIONS_PER_LAYER chained matmuls (Q/K/V, scores, attention x V, output, FFN up and down; n at
    most LONGEST_REDUCTION), whose independent errors add in quadrature, and LayerNorm keeps every value within
    max|expected|. Hence sqrt(LAYERS * REDUCTIONS_PER_LAYER) * sqrt(n) * u * max|expected| (about 8e-6 here;
    the observed difference between two x86-64 machines was 2.7e-6, i.e. 11 ulp at the largest value).
    """
    u = float(np.finfo(np.float32).eps) / 2
    return float(np.sqrt(LAYERS * REDUCTIONS_PER_LAYER * LONGEST_REDUCTION) * u * np.abs(expected).max())


def test_f1_matches_f1chexbert_on_its_pairs():
    fixture = reference()["chexbert"]
    refs, hyps = fixture["pairs"]["refs"], fixture["pairs"]["hyps"]
    for name, key in (
        ("chexbert_micro_f1_14", "micro_14"),
        ("chexbert_macro_f1_14", "macro_14"),
        ("chexbert_micro_f1_5", "micro_5"),
        ("chexbert_macro_f1_5", "macro_5"),
    ):
        metric = get_metric(name, **_options())
        assert metric.available() is None
        scores = metric.score([Parsed(answer=h) for h in hyps], _samples(refs))
        value = metric.aggregate([s.value for s in scores], [s.stats for s in scores])
        assert value == pytest.approx(fixture["f1"][key], abs=1e-12)


def _random_vectors(seed: int, n: int, p: float):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 14)) < p).astype(int), (rng.random((n, 14)) < p).astype(int)


@pytest.mark.parametrize("seed, p", [(0, 0.3), (1, 0.05), (2, 0.6), (3, 0.0)])
@pytest.mark.parametrize("name", list(NAMES))
def test_f1_matches_sklearn_classification_report(name, seed, p):
    refs, preds = _random_vectors(seed, 40, p)
    average, size = NAMES[name]
    index = list(range(14)) if size == 14 else list(FIVE_INDEX)
    metric = get_metric(name)
    stats = [{"ref": list(r[index]), "pred": list(q[index])} for r, q in zip(refs, preds, strict=True)]
    report = classification_report(refs[:, index], preds[:, index], output_dict=True, zero_division=0)
    assert metric.aggregate([None] * len(stats), stats) == pytest.approx(
        report[f"{average} avg"]["f1-score"], abs=1e-12
    )
    # The vectorised bootstrap path re-aggregates the same numbers from column sums.
    draw = np.random.default_rng(seed).integers(0, len(stats), len(stats))
    sums = metric.sufficient_matrix([None] * len(stats), stats)[draw].sum(axis=0)
    assert metric.from_sums(sums) == pytest.approx(metric.aggregate([None], [stats[i] for i in draw]), abs=1e-12)


def test_rrg_mapping():
    # f1chexbert "rrg": positive (1) and uncertain (3) are present; blank (0) and negative (2) are not.
    assert rrg_labels([0, 1, 2, 3]) == [0, 1, 0, 1]


def test_unavailable_names_the_checkpoint(monkeypatch, tmp_path):
    import evalkit.metrics.chexbert as chexbert

    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(chexbert, "hf_cached_file", lambda *a: None)
    monkeypatch.setattr(chexbert, "user_cache_dir", lambda app: tmp_path / "none")
    reason = get_metric("chexbert_micro_f1_5").available()
    assert "chexbert.pth" in reason and "RRG_scorers" in reason
    _, _tokenizer = chexbert_files()
    reason = get_metric("chexbert_micro_f1_5", checkpoint=str(chexbert_files()[0]), tokenizer="no-such-tok").available()
    assert "tokenizer 'no-such-tok'" in reason


def test_refuses_a_checkpoint_missing_weights(tmp_path):
    import torch

    checkpoint, tokenizer = chexbert_files()
    state = torch.load(checkpoint, weights_only=True)
    del state["model_state_dict"]["module.bert.encoder.layer.0.attention.self.query.weight"]
    broken = tmp_path / "chexbert.pth"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="not a CheXbert checkpoint"):
        CheXbertLabeler(broken, str(tokenizer), device="cpu")

"""Metrics and random boxes shared by the statistics and COCO tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit.metrics.base import Metric, SampleScore

PREVALENCE = np.array([0.3, 0.1, 0.15, 0.25, 0.05, 0.08, 0.12, 0.04, 0.2, 0.03, 0.18, 0.02, 0.06, 0.35])
SENSITIVITY, SPECIFICITY = 0.7, 0.9


class MicroF1(Metric):
    """CheXbert-style micro F1 over labels, aggregated from per-sample (tp, fp, fn) counts."""

    name = "test_micro_f1"
    corpus = True

    def score(self, predictions: Sequence[Any], samples: Sequence[Any]) -> list[SampleScore]:
        raise NotImplementedError

    def aggregate(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> float:
        tp = sum(s["tp"] for s in stats)
        fp = sum(s["fp"] for s in stats)
        fn = sum(s["fn"] for s in stats)
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")

    def sufficient_matrix(self, values, stats) -> np.ndarray:
        return np.array([[s["tp"], s["fp"], s["fn"]] for s in stats], dtype=float).reshape(len(stats), 3)

    def from_sums(self, sums: np.ndarray) -> np.ndarray:
        tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
        with np.errstate(invalid="ignore"):
            return 2 * tp / (2 * tp + fp + fn)


class SlowMicroF1(MicroF1):
    """The same metric without the vectorised path: resampling falls back to `aggregate` per resample."""

    def sufficient_matrix(self, values, stats):
        return None


def _f1_stats(rng: np.random.Generator, n: int) -> list[dict[str, int]]:
    truth = rng.random((n, PREVALENCE.size)) < PREVALENCE
    predicted = np.where(truth, rng.random(truth.shape) < SENSITIVITY, rng.random(truth.shape) > SPECIFICITY)
    tp = (truth & predicted).sum(axis=1)
    fp = (~truth & predicted).sum(axis=1)
    fn = (truth & ~predicted).sum(axis=1)
    return [{"tp": int(a), "fp": int(b), "fn": int(c)} for a, b, c in zip(tp, fp, fn, strict=True)]


def _box(rng: np.random.Generator, grid: int | None) -> list[float]:
    if grid:  # coarse grids make exact ties and IoUs exactly on a threshold
        x = np.sort(rng.choice(grid + 1, 2, replace=False)) / grid
        y = np.sort(rng.choice(grid + 1, 2, replace=False)) / grid
    else:
        x, y = np.sort(rng.random(2)), np.sort(rng.random(2))
    return [float(x[0]), float(y[0]), float(x[1]), float(y[1])]


def _random_case(rng: np.random.Generator, grid: int | None):
    predicted, reference = [], []
    for _ in range(int(rng.integers(1, 10))):
        refs = [_box(rng, grid) for _ in range(int(rng.integers(0, 4)))]
        preds = [_box(rng, grid) for _ in range(int(rng.integers(0, 4)))]
        for ref in refs:  # near-hits, exact copies and duplicates
            if rng.random() < 0.6:
                noisy = np.clip(np.asarray(ref) + (0 if grid else rng.normal(0, 0.04, 4)), 0, 1).tolist()
                if noisy[2] > noisy[0] and noisy[3] > noisy[1]:
                    preds.insert(int(rng.integers(0, len(preds) + 1)), noisy)
        if preds and rng.random() < 0.15:
            preds = preds * 3
        predicted.append(preds)
        reference.append(refs)
    return predicted, reference

"""The phantoms carry real signal at their default size: the baselines order as the literature expects."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from evalkit import evaluate
from evalkit.data.phantom import generate_phantom
from evalkit.data.phantom_report import NORMAL_REPORTS

pytestmark = pytest.mark.slow  # a full-size phantom set (the demo's 450 images) per module


@pytest.fixture(scope="module")
def full_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full")
    generate_phantom(root / "phantom")  # the demo's size: 300 / 50 / 100
    return root


def _metric(root: Path, db: Path, model: str, task: str, metric: str) -> float:
    return evaluate(model, task, db=db, data_root=root)[0].metrics[metric]


def test_mode_of_train_reports_is_the_main_normal_template(full_root):
    records = json.loads((full_root / "phantom" / "phantom.json").read_text())["records"]
    counts = collections.Counter(r["report"] for r in records if r["split"] == "train")
    (mode, n_mode), (_, n_second) = counts.most_common(2)
    assert mode == NORMAL_REPORTS[0][0] and n_mode > n_second


def test_nn_retrieval_beats_normal_template(full_root, tmp_path):
    db = tmp_path / "r.duckdb"
    nn = _metric(full_root, db, "nn-retrieval", "phantom-report", "rouge_l")
    normal = _metric(full_root, db, "normal-template", "phantom-report", "rouge_l")
    assert nn > normal + 0.01, (nn, normal)


@pytest.mark.parametrize(
    "task", ["phantom-abnormality-grounding", "phantom-anatomy-grounding", "phantom-phrase-grounding"]
)
def test_prior_box_beats_whole_image(full_root, tmp_path, task):
    db = tmp_path / "r.duckdb"
    assert _metric(full_root, db, "prior-box", task, "miou") > _metric(full_root, db, "whole-image", task, "miou")

"""RL-health rows read from two runs' stored outputs: answers copying the `prior-box` baseline's boxes, answers
identical to the `normal-template` baseline's report, and whole-image boxes, on a small phantom store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evalkit.cli import app

pytestmark = pytest.mark.slow  # three baselines run and one prediction set is scored on a small grounding task
TASK = "phantom-abnormality-grounding"


@pytest.fixture(scope="module")
def grounding_db(tmp_path_factory, data_root):
    from evalkit import evaluate
    from evalkit.results.health_queries import run_outputs
    from evalkit.results.scores import find_run
    from evalkit.store import Store

    folder = tmp_path_factory.mktemp("health-outputs")
    db = folder / "results.duckdb"
    for model in ("prior-box", "whole-image", "nn-retrieval"):
        evaluate(model, TASK, db=db, data_root=data_root)
    with Store(db, read_only=True) as store:
        prior = run_outputs(store, find_run(store, TASK, "prior-box")["run_id"])
    # A "checkpoint" that learned to answer the data set's prior box, whatever the image.
    copy = folder / "prior-copy.jsonl"
    lines = [
        json.dumps(
            {
                "sample_id": sid,
                "prediction": ", ".join("[" + ", ".join(f"{v:.2f}" for v in box) + "]" for box in o["parsed"]["boxes"]),
            }
        )
        for sid, o in prior.items()
    ]
    copy.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "score",
            "-t",
            TASK,
            "--predictions",
            str(copy),
            "--model-name",
            "prior-copy",
            "--db",
            str(db),
            "--data-root",
            str(data_root),
            "--parent",
            "nn-retrieval",
        ],
    )
    assert result.exit_code == 0, result.output
    return db


def _rows(db, *args):
    result = CliRunner().invoke(app, ["health", "-t", TASK, "--db", str(db), "--json", "--n-boot", "500", *args])
    assert result.exit_code in (0, 1), result.output
    return {r["metric"]: r for r in json.loads(result.output)["rows"]}


def test_prior_like_and_whole_image_boxes_are_flagged_against_a_parent(grounding_db):
    rows = _rows(grounding_db, "-m", "prior-copy")  # parent nn-retrieval from the stored card
    assert rows["prior_box_share"]["value"] == 1.0 and rows["prior_box_share"]["parent_value"] < 0.5
    assert rows["prior_box_share"]["flags"][0].startswith("max_prior_box_increase")
    rows = _rows(grounding_db, "-m", "whole-image", "--parent", "nn-retrieval")
    assert rows["whole_image_box_rate"]["value"] == 1.0
    assert rows["whole_image_box_rate"]["flags"][0].startswith("max_whole_image_increase")
    assert rows["prior_box_share"]["value"] == 0.0  # a whole-image box is not the prior
    # The prior-box baseline itself: no comparison with itself.
    assert "prior_box_share" not in _rows(grounding_db, "-m", "prior-box")

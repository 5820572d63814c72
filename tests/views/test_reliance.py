"""Image-reliance scores (evalkit/views/reliance.py) and `evalkit reliance`: models that look at the image drop when it
is taken away; models that do not, do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evalkit import evaluate
from evalkit.answers import format_boxes
from evalkit.cli import app
from evalkit.data.phantom import generate_phantom
from evalkit.model_adapters.base import GenerationResult, stable_hash
from evalkit.registry import resolve_model, resolve_tasks
from evalkit.resources import bundled
from evalkit.store import Store
from evalkit.transforms.samples import mirror_box
from evalkit.transforms.tasks import derive_task
from evalkit.views.reliance import reliance_rows

IMAGE_FREE = ("normal-template", "prior-box", "whole-image")


def mini_task(tmp_path: Path, base: str, metrics: list[str], name: str) -> Path:
    """A copy of a bundled phantom task with fewer metrics (COCO AP's CIs would cost seconds per run)."""
    data = yaml.safe_load((bundled("tasks") / f"{base}.yaml").read_text())
    data.update(name=name, metrics=metrics, primary_metric=metrics[0], groups=[])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.slow  # five runs and a rerun through the CLI
def test_reliance_command_on_grounding_runs_variants_and_resumes(tmp_path, data_root, db):
    task = mini_task(tmp_path, "phantom-abnormality-grounding", ["miou", "acc50"], "mini-abnormality")
    args = ["reliance", "--task", task, "--model", "nn-retrieval", "--db", db, "--data-root", data_root, "--json"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("{") :])["rows"]
    scores = {(r["transform"], r["score"], r["metric"]): r for r in rows}
    assert {t for t, _, _ in scores} == {"blank", "noise", "shuffle", "hflip"}
    for key in [("shuffle", "shuffle agreement", "soft_f1_iou"), ("hflip", "flip equivariance", "soft_f1_iou")]:
        assert scores[key]["unavailable"] is None and scores[key]["n"] > 0
    assert scores[("blank", "boxes on blank", "box rate")]["value_a"] == 1.0  # it always answers a box
    noise = scores[("noise", "drop", "miou")]
    assert noise["value"] > 0 and noise["ci_excludes_0"] and noise["ci_low"] > 0  # nn-retrieval looks
    with Store(db, read_only=True) as store:
        runs = store.query("SELECT run_id, task, n_samples FROM runs ORDER BY task")
        generations = store.query("SELECT count(*) AS n FROM generations")[0]["n"]
    assert [r["task"] for r in runs] == [
        "mini-abnormality",
        "mini-abnormality@blank",
        "mini-abnormality@hflip",
        "mini-abnormality@noise",
        "mini-abnormality@shuffle",
    ]
    again = invoke(*args)  # everything stored: the same table, no new run or generation
    assert again.exit_code == 0 and json.loads(again.output[again.output.index("{") :])["rows"] == rows
    with Store(db, read_only=True) as store:
        assert store.query("SELECT run_id, task, n_samples FROM runs ORDER BY task") == runs
        assert store.query("SELECT count(*) AS n FROM generations")[0]["n"] == generations


@pytest.mark.slow  # three baselines x four runs
def test_image_free_baselines_drop_nothing(tmp_path, data_root, db):
    path = mini_task(tmp_path, "phantom-abnormality-grounding", ["miou", "acc50"], "mini-abnormality")
    (task,) = resolve_tasks(str(path))
    transforms = ["blank", "shuffle", "hflip"]  # noise answers like blank for a model that reads no pixel
    with Store(db) as store:
        for model in IMAGE_FREE:
            evaluate(model, [task, *(derive_task(task, t) for t in transforms)], db=store, data_root=data_root)
    with Store(db, read_only=True) as store:
        for model in IMAGE_FREE:
            rows = reliance_rows(store, task.name, model, kind="grounding", transforms=transforms, n_boot=500)
            for r in rows:
                if r.score == "drop" and r.transform != "hflip":
                    assert r.value == 0 and r.ci_low <= 0 <= r.ci_high, (model, r)
            flip = next(r for r in rows if r.score == "flip equivariance")
            if model == "whole-image":  # the full image is its own mirror image
                assert flip.value_a == flip.value_b == pytest.approx(1.0, abs=1e-6)
            else:  # boxes stay put on the mirrored image: they match the unmirrored answer, not the mirrored one
                assert flip.value_b == pytest.approx(1.0, abs=1e-6) and flip.value < 0


class Oracle:
    """A perfect looker: answers the reference of the image it is shown (report), or the boxes drawn on it
    (grounding, mirrored on `T@hflip`), found through the stored samples of the untransformed task."""

    def __init__(self, card, by_image):
        self.card, self.by_image = card, by_image
        self.needs_images = True

    def prepare(self, task, train_samples):
        self.task = task

    def fingerprint(self):
        return stable_hash("oracle")

    def generate(self, requests):
        out = []
        for r in requests:
            path = r.sample.image_paths[0].rsplit(":", 1)[-1]  # a transformed image's source file
            original = self.by_image[path]
            if self.task.kind == "report_generation":
                out.append(GenerationResult(text=original.reference_text))
            else:
                boxes = original.reference_boxes
                if self.task.transform is not None and self.task.transform.name == "hflip":
                    boxes = [mirror_box(b) for b in boxes]
                out.append(GenerationResult(text=format_boxes(boxes, "unit01")))
        return out


@pytest.mark.slow  # four runs
def test_shuffle_agreement_and_flip_equivariance_of_a_model_that_looks(tmp_path, data_root, db):
    from evalkit.run.runner import load_samples

    card = resolve_model("whole-image")
    report = resolve_tasks(str(mini_task(tmp_path, "phantom-report", ["rouge_l"], "mini-report")))[0]
    samples = load_samples(report, data_root)
    oracle = Oracle(card, {s.image_paths[0]: s for s in samples})
    evaluate(card, [report, derive_task(report, "shuffle")], db=db, data_root=data_root, adapter=oracle)
    with Store(db, read_only=True) as store:
        rows = reliance_rows(store, report.name, card.name, kind="report_generation", transforms=["shuffle"])
    agreement = next(r for r in rows if r.score == "shuffle agreement")
    assert agreement.value_a == pytest.approx(1.0) and agreement.value_b < 0.9 and agreement.excludes_zero
    drop = next(r for r in rows if r.score == "drop")
    assert drop.value_a == pytest.approx(1.0) and drop.value == pytest.approx(1.0 - agreement.value_b)
    # Grounding: boxes that follow the mirror are fully equivariant.
    grounding = resolve_tasks(str(mini_task(tmp_path, "phantom-anatomy-grounding", ["miou"], "mini-anatomy")))[0]
    gsamples = load_samples(grounding, data_root)
    oracle = Oracle(card, {s.image_paths[0]: s for s in gsamples})  # one region per image
    evaluate(card, [grounding, derive_task(grounding, "hflip")], db=db, data_root=data_root, adapter=oracle)
    with Store(db, read_only=True) as store:
        rows = reliance_rows(store, grounding.name, card.name, kind="grounding", transforms=["hflip"])
    flip = next(r for r in rows if r.score == "flip equivariance")
    assert flip.value_a == pytest.approx(1.0, abs=1e-6) and flip.n == len(gsamples)
    assert next(r for r in rows if r.score == "drop").value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow  # a 120-image phantom set: 40 test reports are what the CI needs
def test_report_reliance_nn_retrieval_vs_normal_template(tmp_path):
    root = tmp_path / "data"
    generate_phantom(root / "phantom", n_train=80, n_validate=2, n_test=40)
    task = mini_task(tmp_path, "phantom-report", ["rouge_l", "bleu_4"], "mini-report")
    db = tmp_path / "r.duckdb"
    out = {}
    for model in ("nn-retrieval", "normal-template"):
        args = ["reliance", "-t", task, "-m", model, "--db", db, "--data-root", root, "--json"]
        args += ["--transform", "blank", "--transform", "noise"]
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        out[model] = {(r["transform"], r["score"], r["metric"]): r for r in json.loads(result.output)["rows"]}
    looks = out["nn-retrieval"][("noise", "drop", "rouge_l")]
    assert looks["value"] > 0.05 and looks["ci_low"] > 0
    for key, r in out["normal-template"].items():
        if key[1] == "drop":
            assert r["value"] == 0 and r["ci_low"] <= 0 <= r["ci_high"]
    # Copy-paste answers are reports of the data set, so the finding rate on a blank image is known.
    findings = out["normal-template"][("blank", "findings on blank", "finding rate (reference lookup)")]
    assert findings["unavailable"] is None and findings["value_a"] == findings["value_b"] == 0.0
    assert out["nn-retrieval"][("blank", "findings on blank", "finding rate (reference lookup)")]["value_b"] > 0


@pytest.mark.slow  # loads torch and the tiny CheXbert
def test_findings_on_blank_read_chexbert_labels_when_scored(tmp_path, data_root, db):
    """With CheXbert scored (tiny random weights here), the finding rate uses its stored predicted labels."""
    from helpers.clinical import chexbert_files

    from evalkit.metrics.chexbert import CONDITIONS, get_labeler, rrg_labels

    checkpoint, tokenizer = chexbert_files()
    data = yaml.safe_load((bundled("tasks") / "phantom-report.yaml").read_text())
    options = {"checkpoint": str(checkpoint), "tokenizer": str(tokenizer), "device": "cpu"}
    data.update(name="chex-report", metrics=[{"name": "chexbert_micro_f1_14", "options": options}], groups=[])
    data["primary_metric"] = "chexbert_micro_f1_14"
    path = tmp_path / "chex-report.yaml"
    path.write_text(yaml.safe_dump(data))
    (task,) = resolve_tasks(str(path))
    (summary, _) = evaluate("normal-template", [task, derive_task(task, "blank")], db=db, data_root=data_root)
    with Store(db, read_only=True) as store:
        rows = reliance_rows(store, task.name, "normal-template", kind="report_generation", transforms=["blank"])
        (answer,) = {r[0] for r in store.con.execute("SELECT text FROM generations").fetchall()}
    findings = next(r for r in rows if r.score == "findings on blank")
    assert findings.metric == "finding rate (chexbert)" and findings.unavailable is None
    labels = rrg_labels(get_labeler(checkpoint, str(tokenizer), "cpu", 8)([answer])[0]["classes"])
    expected = float(any(v for c, v in zip(CONDITIONS, labels, strict=True) if c != "No Finding"))
    assert findings.n == summary.n_samples and findings.value_a == findings.value_b == expected
    assert findings.value == 0.0


# --- the arithmetic, without runs ----------------------------------------------------------------------------------


def _row(per_sample, clustering=None):
    from evalkit.stats import Clustering
    from evalkit.views.reliance import _paired_row

    base = {"task": "t", "model": "m"}
    labels = ("a", "b")
    return _paired_row(base, "blank", "s", "x", labels, per_sample, clustering or Clustering(), 500, 0)


def test_paired_row_is_the_mean_difference_with_a_clustered_ci():
    from evalkit.stats import Clustering

    same = _row({f"s{i}": (i / 10, i / 10) for i in range(10)})
    assert same.value == 0 and same.ci_low == 0 and same.ci_high == 0 and not same.excludes_zero
    shifted = _row({f"s{i}": (i / 10 + 0.5, i / 10) for i in range(10)})
    assert shifted.value == pytest.approx(0.5) and shifted.ci_low == pytest.approx(0.5) and shifted.excludes_zero
    # Pairs of samples from one image move together: resampling images gives a wider interval than samples.
    values = {f"s{i}": (float(i // 2 % 2), 0.0) for i in range(20)}
    iid = _row(values)
    clustered = _row(values, Clustering("image", {f"s{i}": f"image:{i // 2}" for i in range(20)}))
    assert clustered.n_clusters == 10 and clustered.unit == "image"
    assert clustered.ci_high - clustered.ci_low > iid.ci_high - iid.ci_low
    assert _row({}).unavailable == "no sample has both values"


def test_report_labels_from_references():
    from evalkit.sample import Sample
    from evalkit.views.reliance import known_report_labels, positive_findings

    assert positive_findings({"No Finding": 1.0, "Pleural Effusion": 0.0, "Edema": None}) == frozenset()
    assert positive_findings({"Pneumonia": -1.0, "Edema": 1.0}) == {"Pneumonia", "Edema"}
    samples = [
        Sample("a", "t", [], reference_text="Effusion. ", meta={"chexpert": {"Pleural Effusion": 1.0}}),
        Sample("b", "t", [], reference_text="Clear.", meta={"chexpert": {"No Finding": 1.0}}),
        Sample("c", "t", [], reference_text="No labels."),
    ]
    assert known_report_labels(samples) == {"Effusion.": {"Pleural Effusion"}, "Clear.": frozenset()}


def test_reliance_command_bad_input_exits_2_before_any_work(db, data_root):
    base = ["--db", db, "--data-root", data_root]
    result = invoke("reliance", "-t", "phantom-report@blank", "-m", "nn-retrieval", *base)
    assert result.exit_code == 2 and "not a variant" in result.output
    result = invoke("reliance", "-t", "phantom-report", "-m", "nn-retrieval", "--transform", "flip", *base)
    assert result.exit_code == 2 and "unknown image transform 'flip'" in result.output
    result = invoke("reliance", "-t", "phantom-report", "-m", "nn-retrival", *base)
    assert result.exit_code == 2 and "did you mean 'nn-retrieval'" in result.output
    result = invoke("reliance", "-t", "phantom-report", "-m", "nn-retrieval", "--no-run", *base)
    assert result.exit_code == 2 and "no results database here" in result.output
    assert not Path(db).exists()  # nothing was run

"""`evalkit compare --pairs` / `evalkit.compare_systems`: two systems on the same free references."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evalkit
from evalkit.cli import app
from evalkit.config import ModelCard
from evalkit.model_adapters.predictions import PredictionsAdapter
from evalkit.registry import resolve_tasks
from evalkit.results.scores import compare_runs
from evalkit.sample import Sample
from evalkit.store import Store

runner = CliRunner()
REFS = [
    "No acute cardiopulmonary process.",
    "Small left pleural effusion. No pneumothorax.",
    "Heart size is normal. Lungs are clear.",
    "Moderate cardiomegaly with mild pulmonary edema.",
    "Right lower lobe opacity concerning for pneumonia.",
]
# A is closer to every reference than B, by a different margin each time (no ties among swap patterns).
A = [
    "No acute cardiopulmonary process.",
    "Small left pleural effusion.",
    "Heart size is normal. Lungs clear.",
    "Moderate cardiomegaly.",
    "Right lower lobe opacity, possibly pneumonia.",
]
B = ["Normal chest.", "Effusion.", "Heart normal.", "Cardiomegaly and edema seen.", "Opacity."]


def write_pairs(path: Path, refs, preds) -> Path:
    path.write_text(
        "".join(json.dumps({"reference": r, "prediction": p}) + "\n" for r, p in zip(refs, preds, strict=True))
    )
    return path


def test_five_pairs_exact_permutation_p_and_warning(tmp_path):
    (row,) = evalkit.compare_systems(REFS, A, B, ["rouge_l"])
    assert row.delta > 0 and row.exact_permutation and row.n_clusters == 5
    assert row.p_permutation == 0.0625  # 2 of the 32 swap patterns are as extreme as the observed one
    assert row.p_bootstrap < 0.001  # what the bootstrap claims on 5 pairs
    assert row.few_clusters and row.better() is None  # "better" follows the permutation p here
    a, b = write_pairs(tmp_path / "a.jsonl", REFS, A), write_pairs(tmp_path / "b.jsonl", REFS, B)
    result = runner.invoke(app, ["compare", "--pairs", str(a), "--pairs", str(b), "--metric", "rouge_l"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "0.0625 (exact)" in text and "warning: only 5 samples (under 20)" in text and "permutation p" in text
    result = runner.invoke(app, ["compare", "--pairs", str(a), "--pairs", str(b), "--metric", "rouge_l", "--json"])
    (entry,) = json.loads(result.output)["metrics"]
    assert entry["p_permutation"] == 0.0625 and entry["few_clusters"] and entry["better"] is None


def test_mismatched_references_are_refused(tmp_path):
    a = write_pairs(tmp_path / "a.jsonl", REFS, A)
    b = write_pairs(tmp_path / "b.jsonl", [*REFS[:2], "Other.", *REFS[3:]], B)
    result = runner.invoke(app, ["compare", "--pairs", str(a), "--pairs", str(b)])
    assert result.exit_code == 2 and "differ at pair 3" in " ".join(result.output.split())
    result = runner.invoke(app, ["compare", "--pairs", str(a)])
    assert result.exit_code == 2 and "exactly twice" in result.output


def synthetic(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    rng = random.Random(seed)
    words = "no acute effusion pleural left right lung heart normal size clear opacity edema mild small".split()
    refs = [" ".join(rng.choices(words, k=rng.randint(4, 12))) for _ in range(n)]

    def noisy(ref: str, keep: float) -> str:
        return " ".join(w if rng.random() < keep else rng.choice(words) for w in ref.split())

    return refs, [noisy(r, 0.8) for r in refs], [noisy(r, 0.75) for r in refs]


@pytest.mark.slow
def test_three_thousand_pairs_agree_with_compare_on_stored_runs(tmp_path):
    refs, preds_a, preds_b = synthetic(3000, 0)
    metrics = ["bleu_4"]  # corpus-level: the resamples re-aggregate n-gram counts, not means
    free = {r.metric: r for r in evalkit.compare_systems(refs, preds_a, preds_b, metrics, n_boot=500, n_perm=500)}

    text = Path("tasks/phantom-report.yaml").read_text().split("metrics:\n")[0]
    task_yaml = tmp_path / "pairs-task.yaml"
    task_yaml.write_text(
        text.replace("name: phantom-report", "name: pairs-task") + "metrics: [bleu_4]\nprimary_metric: bleu_4\n"
    )
    spec = resolve_tasks(str(task_yaml))[0]
    samples = [Sample(f"{i:05d}", spec.name, [], reference_text=r) for i, r in enumerate(refs)]
    db = tmp_path / "r.duckdb"
    for name, preds in (("A", preds_a), ("B", preds_b)):
        card = ModelCard(name=name, adapter="external", checkpoint="-")
        adapter = PredictionsAdapter(card, {s.sample_id: p for s, p in zip(samples, preds, strict=True)})
        evalkit.evaluate(card, spec, db=db, adapter=adapter, samples=samples, batch_size=3000, progress=False)
    with Store(db, read_only=True) as store:
        _, _, rows = compare_runs(store, spec.name, "A", "B", metrics, n_boot=500, n_perm=500, cluster="none")
    assert rows
    for r in rows:
        f = free[r.metric]
        assert not r.exact_permutation and not r.few_clusters and r.n_clusters == f.n_clusters == 3000
        for key in ("value_a", "value_b", "delta", "ci_low", "ci_high", "p_bootstrap", "p_permutation"):
            assert getattr(f, key) == pytest.approx(getattr(r, key), rel=1e-9, abs=1e-12), key
        assert f.better() == r.better()

"""Paired statistics over stored scores vs re-computing the metric per resample (RadEval's approach).

Two systems on 3,314 samples (the size of the MIMIC-CXR test split), 8 metrics: five per-sample means (ROUGE-L,
BERTScore, RadGraph F1, GREEN, RadCliQ, the last lower-is-better) and three corpus metrics (BLEU-4 from real
n-gram counts of synthetic reports, CheXbert-style micro F1 over 14 and over 5 labels from per-sample counts).

evalkit: 10,000 paired bootstrap resamples plus 10,000 approximate-randomisation permutations, every metric,
re-aggregated from per-sample statistics (`evalkit.stats.compare_paired`), in memory and end to end from a DuckDB
file (load + compare, as `evalkit compare` does).

Reference: RadEval's significance test swaps the two systems' outputs per sample and re-computes the metric on
the whole corpus for every trial. Here that is timed for ROUGE-L alone (rouge-score, stemmer on, the cheapest
metric of the eight) over a few trials and extrapolated to 10,000.

Run: python benchmarks/stats.py [--trials 3] [--json]. Threads are limited to 2 to match the 2-core target.
With `--texts iu-xray` the references are the 3,611 real IU X-ray reports and the two systems their nearest and
second-nearest other reports (benchmarks/iu_xray_text.py): ROUGE-L, BLEU-4 and the RadEval-style timing then run on
real report text; the other six metrics stay synthetic per-sample values.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalkit.metrics import get_metric, register_metric  # noqa: E402
from evalkit.metrics.base import Metric  # noqa: E402
from evalkit.metrics.lexical import bleu_stats  # noqa: E402
from evalkit.stats import MetricScores, compare_paired, pair_scores  # noqa: E402

N_SAMPLES = 3314
N_RESAMPLES = 10_000
TARGET_S = 5.0

SENTENCES = [
    "The lungs are clear without focal consolidation.",
    "No pleural effusion or pneumothorax is seen.",
    "Heart size is normal.",
    "The cardiac silhouette is mildly enlarged.",
    "Mediastinal contours are unremarkable.",
    "There is a small left pleural effusion.",
    "Patchy opacity at the right lung base may reflect atelectasis or pneumonia.",
    "A 1.2 cm nodule projects over the left upper lobe.",
    "Mild pulmonary vascular congestion is present.",
    "An endotracheal tube terminates 4 cm above the carina.",
    "A right internal jugular central venous catheter ends in the mid SVC.",
    "Degenerative changes of the thoracic spine are noted.",
    "No acute osseous abnormality.",
    "Low lung volumes with bibasilar atelectasis.",
    "Interval resolution of the previously seen right effusion.",
    "Moderate cardiomegaly is unchanged.",
    "There is no evidence of pulmonary edema.",
    "Blunting of the right costophrenic angle suggests a trace effusion.",
    "A left-sided pacemaker is in place with leads in expected positions.",
    "Hyperinflated lungs are consistent with emphysema.",
]


class MicroF1(Metric):
    """CheXbert-style micro F1 from per-sample (tp, fp, fn) label counts (vectorised resampling)."""

    name = "bench_micro_f1"
    corpus = True

    def score(self, predictions, samples):
        raise NotImplementedError

    def aggregate(self, values, stats) -> float:
        tp, fp, fn = (sum(s[k] for s in stats) for k in ("tp", "fp", "fn"))
        return 2 * tp / (2 * tp + fp + fn)

    def sufficient_matrix(self, values, stats) -> np.ndarray:
        return np.array([[s["tp"], s["fp"], s["fn"]] for s in stats], dtype=float)

    def from_sums(self, sums: np.ndarray) -> np.ndarray:
        return 2 * sums[..., 0] / (2 * sums[..., 0] + sums[..., 1] + sums[..., 2])


@register_metric
class MicroF1Labels14(MicroF1):
    name = "bench_micro_f1_14"


@register_metric
class MicroF1Labels5(MicroF1):
    name = "bench_micro_f1_5"


class Mean(Metric):
    def __init__(self, name: str, higher_is_better: bool = True) -> None:
        super().__init__()
        self.name, self.higher_is_better = name, higher_is_better  # type: ignore[misc]

    def score(self, predictions, samples):
        raise NotImplementedError


def synthetic_reports(rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """References and two systems' reports: each system keeps some reference sentences and swaps others."""
    references, system_a, system_b = [], [], []
    for _ in range(N_SAMPLES):
        chosen = list(rng.choice(len(SENTENCES), size=int(rng.integers(3, 7)), replace=False))
        references.append(" ".join(SENTENCES[i] for i in chosen))
        for out, keep in ((system_a, 0.7), (system_b, 0.6)):
            sentences = [
                SENTENCES[i] if rng.random() < keep else SENTENCES[rng.integers(len(SENTENCES))] for i in chosen
            ]
            out.append(" ".join(sentences))
    return references, system_a, system_b


def label_counts(rng: np.random.Generator, labels: int, sensitivity: float) -> list[dict[str, int]]:
    prevalence = rng.uniform(0.02, 0.35, labels)
    truth = rng.random((N_SAMPLES, labels)) < prevalence
    predicted = np.where(truth, rng.random(truth.shape) < sensitivity, rng.random(truth.shape) < 0.08)
    return [
        {"tp": int(a), "fp": int(b), "fn": int(c)}
        for a, b, c in zip(
            (truth & predicted).sum(1), (~truth & predicted).sum(1), (truth & ~predicted).sum(1), strict=True
        )
    ]


def build_scores(rng: np.random.Generator, references, system_a, system_b):
    """Per-sample values and statistics of both systems for the 8 metrics, and the metric instances."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    ids = [f"s{i:05d}" for i in range(N_SAMPLES)]
    metrics: dict[str, Metric] = {
        "rouge_l": Mean("rouge_l"),
        "bench_bertscore": Mean("bench_bertscore"),
        "bench_radgraph_f1": Mean("bench_radgraph_f1"),
        "bench_green": Mean("bench_green"),
        "bench_radcliq": Mean("bench_radcliq", higher_is_better=False),
        "bleu_4": get_metric("bleu_4"),
        "bench_micro_f1_14": MicroF1Labels14(),
        "bench_micro_f1_5": MicroF1Labels5(),
    }
    runs: list[dict[str, MetricScores]] = []
    for texts, quality in ((system_a, 0.72), (system_b, 0.68)):
        rouge = [scorer.score(r, t)["rougeL"].fmeasure for r, t in zip(references, texts, strict=True)]
        bleu = [bleu_stats(t, r) for r, t in zip(references, texts, strict=True)]
        run = {
            "rouge_l": MetricScores("rouge_l", ids, rouge, [{}] * N_SAMPLES),
            "bleu_4": MetricScores("bleu_4", ids, [None] * N_SAMPLES, bleu),
            "bench_micro_f1_14": MetricScores(
                "bench_micro_f1_14", ids, [None] * N_SAMPLES, label_counts(rng, 14, quality)
            ),
            "bench_micro_f1_5": MetricScores(
                "bench_micro_f1_5", ids, [None] * N_SAMPLES, label_counts(rng, 5, quality)
            ),
        }
        for name, centre in (
            ("bench_bertscore", 0.4),
            ("bench_radgraph_f1", 0.3),
            ("bench_green", 0.35),
            ("bench_radcliq", 2.0),
        ):
            run[name] = MetricScores(
                name, ids, rng.normal(centre * quality / 0.7, 0.15, N_SAMPLES).tolist(), [{}] * N_SAMPLES
            )
        runs.append(run)
    return metrics, runs


def time_evalkit(metrics, runs) -> dict[str, Any]:
    paired = pair_scores(runs[0], runs[1], metrics, list(metrics))
    start, cpu = time.perf_counter(), time.process_time()
    compare_paired(paired, n_boot=N_RESAMPLES, n_perm=0, seed=0)
    bootstrap_s, bootstrap_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    results = compare_paired(paired, n_boot=N_RESAMPLES, n_perm=N_RESAMPLES, seed=0)
    both_s = time.perf_counter() - start
    return {
        "bootstrap_s": bootstrap_s,
        "bootstrap_cpu_s": bootstrap_cpu_s,
        "bootstrap_and_permutation_s": both_s,
        "metrics": {
            r.metric: {"delta": r.delta, "ci": [r.ci_low, r.ci_high], "p_holm": r.p_bootstrap_holm} for r in results
        },
    }


def time_store_end_to_end(runs) -> float:
    """Write both runs' scores to a DuckDB file, then time what `evalkit compare` does: load, pair, compare."""
    from evalkit.results.scores import compare_runs
    from evalkit.store import Store, dumps

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.duckdb"
        with Store(db) as store:
            for run_id, model, run in (("run-a", "system-a", runs[0]), ("run-b", "system-b", runs[1])):
                store.con.execute(
                    "INSERT INTO runs (run_id, task, task_version, model, status, started_at) "
                    "VALUES (?, 'bench', '1', ?, 'finished', now())",
                    [run_id, model],
                )
                rows = [
                    [run_id, sid, name, "1", value, dumps(stats)]
                    for name, scores in run.items()
                    for sid, value, stats in zip(scores.sample_ids, scores.values, scores.stats, strict=True)
                ]
                store.con.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?)", rows)
        start = time.perf_counter()
        with Store(db, read_only=True) as store:
            compare_runs(store, "bench", "system-a", "system-b", n_boot=N_RESAMPLES, n_perm=N_RESAMPLES)
        return time.perf_counter() - start


def time_radeval_rouge(references, system_a, system_b, trials: int, rng: np.random.Generator) -> dict[str, float]:
    """RadEval-style approximate randomisation: per trial, swap outputs per sample, re-score ROUGE-L on both."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def corpus_rouge(texts: list[str]) -> float:
        return float(np.mean([scorer.score(r, t)["rougeL"].fmeasure for r, t in zip(references, texts, strict=True)]))

    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(trials):
        swap = rng.random(N_SAMPLES) < 0.5
        shuffled_a = [b if s else a for a, b, s in zip(system_a, system_b, swap, strict=True)]
        shuffled_b = [a if s else b for a, b, s in zip(system_a, system_b, swap, strict=True)]
        corpus_rouge(shuffled_a) - corpus_rouge(shuffled_b)
    per_trial = (time.perf_counter() - start) / trials
    per_trial_cpu = (time.process_time() - cpu) / trials
    return {
        "per_trial_s": per_trial,
        "extrapolated_s": per_trial * N_RESAMPLES,
        "per_trial_cpu_s": per_trial_cpu,
        "extrapolated_cpu_s": per_trial_cpu * N_RESAMPLES,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3, help="RadEval-style trials to time (then extrapolated)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--texts", choices=("synthetic", "iu-xray"), default="synthetic", help="report text source")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    if args.texts == "iu-xray":
        from iu_xray_text import iu_report_pairs

        global N_SAMPLES  # the synthetic generators and the timings all size themselves by it
        references, system_a, system_b = iu_report_pairs()
        N_SAMPLES = len(references)
    else:
        references, system_a, system_b = synthetic_reports(rng)
    metrics, runs = build_scores(rng, references, system_a, system_b)
    evalkit_times = time_evalkit(metrics, runs)
    store_s = time_store_end_to_end(runs)
    radeval = time_radeval_rouge(references, system_a, system_b, args.trials, rng)
    result = {
        "texts": args.texts,
        "samples": N_SAMPLES,
        "metrics": len(metrics),
        "resamples": N_RESAMPLES,
        "cpu_threads": os.environ["OMP_NUM_THREADS"],
        "evalkit_paired_bootstrap_s": round(evalkit_times["bootstrap_s"], 3),
        "evalkit_paired_bootstrap_cpu_s": round(evalkit_times["bootstrap_cpu_s"], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "evalkit_bootstrap_plus_permutation_s": round(evalkit_times["bootstrap_and_permutation_s"], 3),
        "evalkit_end_to_end_from_duckdb_s": round(store_s, 3),
        "radeval_style_rouge_l_per_trial_s": round(radeval["per_trial_s"], 3),
        "radeval_style_rouge_l_10000_trials_s": round(radeval["extrapolated_s"], 1),
        "radeval_style_rouge_l_10000_trials_cpu_s": round(radeval["extrapolated_cpu_s"], 1),
        "speedup_vs_rouge_l_only_cpu": round(radeval["extrapolated_cpu_s"] / evalkit_times["bootstrap_cpu_s"]),
        "target_s": TARGET_S,
        "meets_target": evalkit_times["bootstrap_s"] < TARGET_S,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{N_SAMPLES} samples x {len(metrics)} metrics (5 means, BLEU-4, 2 count-based micro F1), "
            f"{N_RESAMPLES} resamples, {result['cpu_threads']} threads"
        )
        print(
            f"  evalkit paired bootstrap               {result['evalkit_paired_bootstrap_s']:8.2f} s"
            f"   (target < {TARGET_S:.0f} s: {'met' if result['meets_target'] else 'MISSED'}; "
            f"CPU time {result['evalkit_paired_bootstrap_cpu_s']:.2f} s, load average {result['load_average_1min']})"
        )
        print(f"  evalkit bootstrap + randomisation test {result['evalkit_bootstrap_plus_permutation_s']:8.2f} s")
        print(
            f"  evalkit end to end from DuckDB         {result['evalkit_end_to_end_from_duckdb_s']:8.2f} s"
            "   (load, pair, bootstrap + randomisation)"
        )
        print(
            f"  RadEval-style ROUGE-L recomputation    {result['radeval_style_rouge_l_10000_trials_s']:8.0f} s"
            f"   ({result['radeval_style_rouge_l_per_trial_s']:.2f} s/trial x {N_RESAMPLES}, ROUGE-L only; "
            f"CPU time {result['radeval_style_rouge_l_10000_trials_cpu_s']:.0f} s)"
        )
        print(
            f"  speed-up (CPU time): about {result['speedup_vs_rouge_l_only_cpu']}x against one metric "
            "(ROUGE-L, the cheapest of the eight)"
        )
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Lexical report metrics (ROUGE-1/2/L, BLEU-1..4, CIDEr-D) on synthetic reports: evalkit vs the libraries' path.

The runner scores a report task metric after metric over the same samples. Called the plain way, the libraries
redo shared work for every sibling: rouge-score tokenises and Porter-stems both texts of every pair once per
ROUGE variant, and pycocoevalcap's `cook_refs`/`cook_test` count the same n-grams once per BLEU-n. evalkit
memoises the tokens (and each token's stem) and one n-gram statistics record per pair. This times `score` of
every lexical metric of the phantom-report task, in the task's order, cold (in-process caches cleared), against
the libraries called per metric as before, checks the values are identical, and prints CPU seconds and the ratio.
Then it times each metric's corpus step (`aggregate` over the scored records, as the runner computes the run's
value): CIDEr-D computes nothing per pair in `score` and all of its work there, so a lexical total without it
leaves out most of CIDEr-D.

Usage:
    python benchmarks/lexical_metrics.py [--samples 3314] [--texts leaderboard|varied] [--resamples 10000] [--json]

It also times a CIDEr-D bootstrap through evalkit.stats: the batch path (evalkit/metrics/cider_resample.py) for
all resamples against the generic path (the scorer on every resample's drawn records) timed on the first few.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from leaderboard_scale import REPORT_TASK, _prediction, _samples

from evalkit.metrics import get_metric, lexical
from evalkit.sample import Parsed, Sample

# The lexical metrics of tasks/phantom-report.yaml, in its order.
METRICS = ("rouge_l", "rouge_1", "rouge_2", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider_d", "response_chars")
ROUGE_TYPES = {"rouge_l": "rougeL", "rouge_1": "rouge1", "rouge_2": "rouge2"}


def workload(n: int, seed: int, texts: str):
    """`leaderboard`: leaderboard_scale.py's phantom-report pairs (7 template sentences, many repeated texts);
    `varied`: report_metrics.py's reports (12 templates with sizes, sides and zones: nearly every text distinct)."""
    if texts == "leaderboard":
        samples = _samples(REPORT_TASK, n, seed)
        rng = np.random.default_rng(seed + 1)
        return [Parsed(answer=_prediction(REPORT_TASK, s, rng, 0.6)) for s in samples], samples
    from report_metrics import perturb, synthetic_report

    rng = random.Random(seed)
    references = [synthetic_report(rng) for _ in range(n)]
    samples = [Sample(f"r{i:05d}", REPORT_TASK, [], reference_text=r) for i, r in enumerate(references)]
    return [Parsed(answer=perturb(r, rng)) for r in references], samples


def _timed(function, *args):
    gc.collect()  # a collection triggered by the previous metric's garbage is not this metric's cost
    start = time.process_time()
    result = function(*args)
    return time.process_time() - start, result


def evalkit_path(predictions, samples) -> tuple[dict[str, float], dict[str, list]]:
    lexical.clear_caches()
    seconds, values = {}, {}
    for name in METRICS:
        seconds[name], scores = _timed(get_metric(name).score, predictions, samples)
        values[name] = [(s.value, s.stats) for s in scores]
    return seconds, values


def corpus_step(values: dict[str, list]) -> dict[str, float]:
    """CPU seconds of each metric's `aggregate` over the scored records, as the runner computes a run's value after
    scoring: the corpus step (CIDEr-D's document frequencies and per-pair vectors over the whole corpus, corpus
    BLEU from summed counts; the mean for the rest). Part of what a user waits for, so part of the total."""
    seconds = {}
    for name in METRICS:
        records = values[name]
        seconds[name], _ = _timed(get_metric(name).aggregate, [v for v, _ in records], [st for _, st in records])
    return seconds


def library_path(predictions, samples) -> tuple[dict[str, float], dict[str, list]]:
    """What each metric cost before the shared work: the libraries called afresh per metric and pair."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test
    from rouge_score import rouge_scorer

    pairs = [(p.answer or "", s.reference_text or "") for p, s in zip(predictions, samples, strict=True)]
    seconds, values = {}, {}

    def rouge(kind: str) -> list:
        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        return [(float(scorer.score(r, p)[kind].fmeasure), {}) for p, r in pairs]

    def bleu(n: int) -> list:
        out = []
        for p, r in pairs:
            c = cook_test(p, cook_refs([r], n=4), eff="closest", n=4)
            stats = {"testlen": c["testlen"], "reflen": c["reflen"], "guess": c["guess"], "correct": c["correct"]}
            out.append((lexical._bleu_from_counts(c["correct"], c["guess"], c["testlen"], c["reflen"], n), stats))
        return out

    def evalkit_own(name: str) -> list:  # CIDEr-D and the answer length share nothing with a sibling
        return [(s.value, s.stats) for s in get_metric(name).score(predictions, samples)]

    for name in METRICS:
        if name in ROUGE_TYPES:
            seconds[name], values[name] = _timed(rouge, ROUGE_TYPES[name])
        elif name.startswith("bleu_"):
            seconds[name], values[name] = _timed(bleu, int(name[-1]))
        else:
            seconds[name], values[name] = _timed(evalkit_own, name)
    return seconds, values


def cider_resampling(predictions, samples, n_boot: int, n_generic: int) -> dict[str, float]:
    """CIDEr-D bootstrap: the batch path for `n_boot` resamples vs the generic path (the scorer on every resample's
    records), timed on its first `n_generic` resamples and scaled, with the largest difference on those."""
    from evalkit.metrics.base import Metric
    from evalkit.stats import Resampler, bootstrap_distribution

    stats = [s.stats for s in get_metric("cider_d").score(predictions, samples)]
    values = [None] * len(stats)
    metric = get_metric("cider_d")
    batch_s, batch = _timed(bootstrap_distribution, [Resampler(metric, values, stats)], n_boot, 0)
    generic_metric = get_metric("cider_d")
    generic_metric.aggregate_resamples = Metric.aggregate_resamples.__get__(generic_metric)  # no batch hook
    generic_s, generic = _timed(bootstrap_distribution, [Resampler(generic_metric, values, stats)], n_generic, 0)
    return {
        "resamples": n_boot,
        "batch_s": batch_s,
        "generic_s_scaled": generic_s * n_boot / n_generic,
        "max_abs_difference": float(np.max(np.abs(batch[0][:n_generic] - generic[0]))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3314)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--texts", choices=("leaderboard", "varied"), default="leaderboard")
    parser.add_argument("--resamples", type=int, default=10_000, help="CIDEr-D bootstrap resamples (0: skip)")
    parser.add_argument("--generic-resamples", type=int, default=10, help="of those, timed on the generic path")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    predictions, samples = workload(args.samples, args.seed, args.texts)
    before, expected = library_path(predictions, samples)
    after, got = evalkit_path(predictions, samples)
    identical = all(got[name] == expected[name] for name in METRICS)
    corpus = corpus_step(got)
    result = {
        "samples": args.samples,
        "texts": args.texts,
        "distinct_texts": len({p.answer for p in predictions} | {s.reference_text for s in samples}),
        "library_cpu_s": before,
        "evalkit_cpu_s": after,
        "corpus_step_cpu_s": corpus,
        "library_total_cpu_s": sum(before.values()),
        "evalkit_total_cpu_s": sum(after.values()),
        "evalkit_with_corpus_step_cpu_s": sum(after.values()) + sum(corpus.values()),
        "identical_values_and_stats": identical,
    }
    result["ratio"] = result["evalkit_total_cpu_s"] / result["library_total_cpu_s"]
    if args.resamples:
        result["cider_d_bootstrap"] = cider_resampling(predictions, samples, args.resamples, args.generic_resamples)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.samples} report pairs ({args.texts}, {result['distinct_texts']} distinct texts), "
            "CPU seconds of score() per metric (library path -> evalkit):"
        )
        for name in METRICS:
            print(f"  {name:15s} {before[name]:8.3f} -> {after[name]:8.3f}   corpus step {corpus[name]:8.3f}")
        print(
            f"  {'all lexical':15s} {result['library_total_cpu_s']:8.3f} -> {result['evalkit_total_cpu_s']:8.3f}"
            f"  (ratio {result['ratio']:.2f}; values and stats identical: {identical})"
        )
        print(
            "  score + corpus step (what a run of these metrics costs): "
            f"{result['evalkit_with_corpus_step_cpu_s']:.3f} CPU s (corpus step {sum(corpus.values()):.3f}, "
            f"of which cider_d {corpus['cider_d']:.3f})"
        )
        if args.resamples:
            boot = result["cider_d_bootstrap"]
            print(
                f"cider_d bootstrap, {boot['resamples']} resamples: generic path {boot['generic_s_scaled']:.1f} s "
                f"(scaled from {args.generic_resamples}) -> batch path {boot['batch_s']:.2f} s "
                f"(ratio {boot['batch_s'] / boot['generic_s_scaled']:.4f}; max |difference| "
                f"{boot['max_abs_difference']:.1e})"
            )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())

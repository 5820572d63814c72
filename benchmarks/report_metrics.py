"""Report-metric cost on 3,000 synthetic report pairs: cold score, warm re-score, second model on same references.

    python benchmarks/report_metrics.py                       # tiny random models of the real architectures
    python benchmarks/report_metrics.py --metric-options weights.yaml --device cuda   # real weights
    python benchmarks/report_metrics.py --texts iu-xray       # real IU X-ray reports (benchmarks/iu_xray_text.py)

Tiny models (built here, see evalkit.testing.tiny_clinical) give meaningless numbers but real code paths and a cost
profile dominated by the same things as the real models' (tokenisation, per-document span work in RadGraph,
DuckDB I/O). Three timings, each after clearing the in-process caches so that only DuckDB remembers:

1. cold: every metric on (references, model A) in a fresh results database;
2. warm: the same pairs again (target: at least 20x faster than cold): no model runs;
3. second model: (references, model B): only model B's texts are annotated, the references come from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalkit.metrics._annotations import clear_memory
from evalkit.run.pairs import DEFAULT_METRICS, score_reports

SIDES = ("left", "right")
ZONES = ("upper", "middle", "lower")
SENTENCES = (
    "There is a {size} cm nodule in the {side} {zone} lobe.",
    "Small {side} pleural effusion.",
    "Moderate {side} pleural effusion with adjacent atelectasis.",
    "Mild cardiomegaly.",
    "The heart size is normal.",
    "No pneumothorax.",
    "{side} {zone} lobe consolidation, concerning for pneumonia.",
    "Endotracheal tube terminates {size} cm above the carina.",
    "Mild pulmonary vascular congestion.",
    "No acute cardiopulmonary process.",
    "Stable {side} basilar opacity, likely atelectasis.",
    "The lungs are clear.",
)


def synthetic_report(rng: random.Random) -> str:
    picks = rng.sample(SENTENCES, rng.randint(2, 6))
    values = {"size": f"{rng.randint(1, 60) / 10:.1f}", "side": rng.choice(SIDES), "zone": rng.choice(ZONES)}
    text = " ".join(s.format(**values) for s in picks)
    return text[0].upper() + text[1:]


def perturb(report: str, rng: random.Random) -> str:
    """A 'model' output: the reference with sentences dropped, sides flipped, sizes changed, one added."""
    sentences = [s for s in report.split(". ") if s]
    if len(sentences) > 1 and rng.random() < 0.5:
        sentences.pop(rng.randrange(len(sentences)))
    out = []
    for sentence in sentences:
        if rng.random() < 0.3:
            sentence = sentence.replace("left", "RIGHT").replace("right", "left").replace("RIGHT", "right")
        if rng.random() < 0.3:
            sentence = sentence.replace(" cm", f".{rng.randint(0, 9)} cm", 1)
        out.append(sentence.rstrip("."))
    if rng.random() < 0.4:
        out.append(rng.choice(SENTENCES).format(size="1.0", side=rng.choice(SIDES), zone=rng.choice(ZONES)).rstrip("."))
    return ". ".join(out) + "."


def annotation_counts(db: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT annotator, count(*) FROM annotation_cache GROUP BY annotator").fetchall()
    return dict(rows)


def timed(label: str, refs, preds, names, options, db) -> tuple[float, dict]:
    clear_memory()
    start = time.perf_counter()
    result = score_reports(refs, preds, names, options=options, db=db)
    seconds = time.perf_counter() - start
    print(f"{label:<14} {seconds:9.2f} s   {len(result.metrics)} metrics, {len(result.unavailable)} unavailable")
    return seconds, result.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, help="report pairs (default: 3000 synthetic, every IU X-ray report)")
    parser.add_argument("--metric-options", type=Path, help="YAML/JSON {metric: options} for real weights")
    parser.add_argument("--metrics", help="comma-separated metrics (default: all report metrics but GREEN)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--texts",
        choices=("synthetic", "iu-xray"),
        default="synthetic",
        help="synthetic templated reports, or real IU X-ray reports paired with their nearest and second-nearest "
        "other report (needs torchxrayvision's data files and scikit-learn; --n caps the count)",
    )
    parser.add_argument("--json-out", type=Path, help="write the timings here as JSON")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a small shared CPU, OpenMP "
        "barriers make tiny matrix products 50x slower with 2 threads than with 1)",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="evalkit-bench-"))
    if args.metric_options:
        from evalkit.config import load_yaml

        options = load_yaml(args.metric_options)
    else:
        from evalkit.testing import tiny_clinical

        start = time.perf_counter()
        options = tiny_clinical.write_all(work / "tiny")
        print(f"built tiny models in {time.perf_counter() - start:.1f} s ({work / 'tiny'})")
    names = args.metrics.split(",") if args.metrics else [m for m in DEFAULT_METRICS if m != "green"]

    if args.texts == "iu-xray":
        from iu_xray_text import iu_report_pairs

        refs, model_a, model_b = iu_report_pairs(args.n)
    else:
        rng = random.Random(args.seed)
        refs = [synthetic_report(rng) for _ in range(args.n or 3000)]
        model_a = [perturb(r, rng) for r in refs]
        model_b = [perturb(r, rng) for r in refs]
    unique = len(set(refs)), len(set(model_a)), len(set(model_b))
    print(f"{len(refs)} pairs ({args.texts}); unique texts: references {unique[0]}, A {unique[1]}, B {unique[2]}")

    db = work / "bench.duckdb"
    cold, metrics_cold = timed("cold", refs, model_a, names, options, db)
    after_a = annotation_counts(db)
    warm, metrics_warm = timed("warm", refs, model_a, names, options, db)
    assert metrics_warm == metrics_cold, "a warm re-score must give the same numbers"
    second, _ = timed("second model", refs, model_b, names, options, db)
    after_b = annotation_counts(db)
    text_annotators = [a for a in after_a if a.startswith(("radgraph:", "chexbert"))]
    new = {a: after_b.get(a, 0) - after_a.get(a, 0) for a in text_annotators}
    print(f"warm speed-up: {cold / warm:.0f}x (target >= 20x)")
    unseen = len(set(model_b) - set(refs) - set(model_a))
    print(f"second model: {second / cold:.0%} of cold; texts newly annotated per annotator: {new}")
    print(f"  model B has {unseen} texts never seen before: every new annotation is one of them, no reference")
    assert all(count <= unseen for count in new.values()), "a reference was annotated twice"
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "texts": args.texts,
                    "n": len(refs),
                    "metrics_cold": metrics_cold,
                    "threads": args.threads,
                    "cold_s": cold,
                    "warm_s": warm,
                    "second_model_s": second,
                    "new_annotations": new,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

"""Grounding metrics on 10,000 samples with several boxes each: evalkit vs calling pycocotools directly.

Checks that evalkit's coco_ap / coco_ap50 (per-sample COCOeval match records, then accumulation) give exactly the
numbers pycocotools' COCOeval gives on the same boxes, and times each step, plus what a bootstrap costs when it
re-aggregates stored statistics instead of re-running COCOeval.

Usage:
    python benchmarks/grounding_metrics.py [--n 10000] [--bootstrap 200] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time

import numpy as np

from evalkit.metrics import get_metric
from evalkit.metrics.grounding import _xywh
from evalkit.sample import Parsed, Sample


def make_samples(n: int, seed: int) -> tuple[list[Parsed], list[Sample]]:
    """n samples, 1-4 reference boxes each; predictions mix noisy hits, duplicates and false positives (1-6)."""
    rng = np.random.default_rng(seed)
    predictions, samples = [], []
    for i in range(n):
        refs = []
        for _ in range(int(rng.integers(1, 5))):
            x, y = rng.uniform(0, 0.7, 2)
            w, h = rng.uniform(0.05, 0.3, 2)
            refs.append([float(x), float(y), float(x + w), float(y + h)])
        preds = []
        for ref in refs:
            if rng.random() < 0.7:
                noisy = np.clip(np.asarray(ref) + rng.normal(0, 0.03, 4), 0, 1)
                if noisy[2] > noisy[0] and noisy[3] > noisy[1]:
                    preds.append(noisy.tolist())
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 0.8, 2)
            preds.append([float(x), float(y), float(x + 0.15), float(y + 0.15)])
        if preds and rng.random() < 0.1:
            preds.append(list(preds[0]))  # a duplicate
        rng.shuffle(preds)
        predictions.append(Parsed(answer="", boxes=[list(map(float, b)) for b in preds]))
        samples.append(Sample(f"bench-{i:06d}", "bench", [], reference_boxes=refs))
    return predictions, samples


def pycocotools_direct(predictions: list[Parsed], samples: list[Sample]) -> tuple[float, float]:
    """The plain pycocotools recipe: one category, score 1.0, images in sample-id order, xywh boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    order = sorted(range(len(samples)), key=lambda i: samples[i].sample_id)
    images, annotations, results = [], [], []
    for image_id, index in enumerate(order, start=1):
        images.append({"id": image_id})
        for box in _xywh(samples[index].reference_boxes).tolist():
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": box,
                 "area": box[2] * box[3], "iscrowd": 0}
            )  # fmt: skip
        for box in _xywh(predictions[index].boxes).tolist():
            results.append({"image_id": image_id, "category_id": 1, "bbox": box, "score": 1.0})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]), float(evaluator.stats[1])


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples for the re-aggregation timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    predictions, samples = make_samples(args.n, args.seed)
    n_pred = sum(len(p.boxes) for p in predictions)
    n_ref = sum(len(s.reference_boxes) for s in samples)
    report: dict[str, object] = {"samples": args.n, "predicted_boxes": n_pred, "reference_boxes": n_ref}
    timings: dict[str, float] = {}

    (direct, timings["pycocotools direct (evaluate+accumulate+summarize)"]) = _timed(
        pycocotools_direct, predictions, samples
    )
    values = {}
    for name, index in (("coco_ap", 0), ("coco_ap50", 1)):
        metric = get_metric(name)
        scores, timings[f"evalkit {name}: score (per-sample records)"] = _timed(metric.score, predictions, samples)
        stats = [s.stats for s in scores]
        values[name], timings[f"evalkit {name}: aggregate"] = _timed(metric.aggregate, [], stats)
        reference = get_metric(name, backend="pycocotools")
        values[f"{name} (backend pycocotools)"], timings[f"evalkit {name}: aggregate, backend pycocotools"] = _timed(
            reference.aggregate, [], stats
        )
        values[f"{name} (pycocotools direct)"] = direct[index]
        if name == "coco_ap":
            rng = np.random.default_rng(args.seed)
            start = time.perf_counter()
            for _ in range(args.bootstrap):
                picks = rng.integers(0, len(stats), len(stats))
                metric.aggregate([], [stats[i] for i in picks])
            timings[f"evalkit coco_ap: {args.bootstrap} bootstrap re-aggregations"] = time.perf_counter() - start
    for name in ("radvlm_map50", "miou", "acc50", "soft_f1_iou"):
        metric = get_metric(name)
        scores, timings[f"evalkit {name}: score"] = _timed(metric.score, predictions, samples)
        values[name] = metric.aggregate([s.value for s in scores], [s.stats for s in scores])

    equal = all(values[f"{m}"] == values[f"{m} (pycocotools direct)"] == values[f"{m} (backend pycocotools)"]
                for m in ("coco_ap", "coco_ap50"))  # fmt: skip
    report.update(values=values, timings_s={k: round(v, 4) for k, v in timings.items()}, coco_equal=equal)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{args.n} samples, {n_pred} predicted boxes, {n_ref} reference boxes")
        for key, value in values.items():
            print(f"  {key:40s} {value!r}")
        print(f"  COCO values identical (evalkit == pycocotools direct == backend pycocotools): {equal}")
        for key, seconds in timings.items():
            print(f"  {key:60s} {seconds:8.3f} s")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())

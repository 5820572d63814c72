"""`evalkit compare` and `evalkit gate` with COCO AP/AP50, as user processes, against one COCOeval (issue 27).

Builds a small store (through `evalkit score`'s path: the predictions adapter and the Runner) with two models on
each phantom grounding task shape at 3,314 samples, clustered by image as the phantom set is:

- anatomy: one reference box per (image, region), about six regions per image;
- abnormality: one to three boxes per (image, finding label), one to three labels per image;
- phrase: one box per finding, one to four findings per image;
- bench: leaderboard_scale.py's shape (1-3 boxes per sample, each its own cluster), its best and worst model.

Model `prior-box` answers one box per sample, the region/label mean; `cand` answers that box shifted by up to
0.04 (the issue's shape). Then runs, interleaved and repeated, as separate processes: `evalkit compare` (10,000
resamples and permutations), `evalkit gate`, one pycocotools COCOeval of the same boxes (start, imports, loading,
evaluate/accumulate/summarize), and, when a side environment holds it, faster-coco-eval. Prints min and median wall
and CPU (user+sys of the child) seconds, and each ratio to COCOeval.

`--one-eval N` also times one evaluation inside a warm process (CPU seconds, min and median of 5) on
grounding_metrics.py's N samples with several boxes each: evalkit's `coco_ap` score plus aggregate (per-sample
records from the boxes, then the corpus value), pycocotools COCOeval and faster-coco-eval (building the COCO objects
from the boxes, evaluate, accumulate, summarize), and checks the three values are equal.

Usage:
    python benchmarks/compare_gate_scale.py [--samples 3314] [--repeats 5] [--work DIR] [--faster-python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {
    "anatomy": "phantom-anatomy-grounding",
    "abnormality": "phantom-abnormality-grounding",
    "phrase": "phantom-phrase-grounding",
    "bench": "phantom-anatomy-grounding",  # stored under its own store; the task only names the metrics
}


def _box(rng: np.random.Generator, centre: np.ndarray, jitter: float) -> list[float]:
    x, y = np.clip(centre[:2] + rng.uniform(-jitter, jitter, 2), 0, 0.7)
    w, h = np.clip(centre[2:] + rng.uniform(-jitter, jitter, 2), 0.05, 0.3)
    return [round(float(v), 4) for v in (x, y, x + w, y + h)]


def make_shape(shape: str, n: int, seed: int = 0):
    """(samples, prior-box answers, cand answers) of one shape: n samples grouped in images as the phantom set is."""
    from evalkit.sample import Sample, cluster_units

    rng = np.random.default_rng(seed)
    keys = [f"k{i}" for i in range(8)]
    prior = {k: np.concatenate([rng.uniform(0.1, 0.6, 2), rng.uniform(0.1, 0.25, 2)]) for k in keys}
    samples, a, b = [], {}, {}
    image = 0
    while len(samples) < n:
        if shape == "anatomy":
            groups = [(k, 1) for k in rng.choice(keys, 6, replace=False)]
        elif shape == "abnormality":
            groups = [(k, int(rng.integers(1, 4))) for k in rng.choice(keys, int(rng.integers(1, 4)), replace=False)]
        elif shape == "phrase":
            groups = [(str(rng.choice(keys)), 1) for _ in range(int(rng.integers(1, 5)))]
        else:
            groups = [(str(rng.choice(keys)), int(rng.integers(1, 4)))]
        for j, (key, count) in enumerate(groups):
            if len(samples) == n:
                break
            refs = [_box(rng, prior[key], 0.03) for _ in range(count)]
            unit = f"img{image:05d}" if shape != "bench" else f"img{image:05d}-{j}"
            sid = f"{unit}/{key}-{j}"
            samples.append(Sample(sid, "x", [], {"region": key, "label": key, "phrase": key}, None, refs, [key] * count,
                                  {"split": "test"}, units=cluster_units(image=unit)))  # fmt: skip
            base = np.asarray(prior[key])
            box_a = [*base[:2], *(base[:2] + base[2:])]
            shift = rng.uniform(-0.04, 0.04, 2)
            box_b = [box_a[0] + shift[0], box_a[1] + shift[1], box_a[2] + shift[0], box_a[3] + shift[1]]
            a[sid] = "[" + ", ".join(f"{v:.3f}" for v in box_a) + "]"
            b[sid] = "[" + ", ".join(f"{v:.3f}" for v in np.clip(box_b, 0, 1)) + "]"
        image += 1
    return samples, a, b


def build_store(db: Path, shape: str, n: int) -> None:
    """Two runs (prior-box, cand) of one shape, through the Runner as `evalkit score` writes them."""
    from dataclasses import replace

    from evalkit.config import ModelCard
    from evalkit.model_adapters.predictions import PredictionsAdapter
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import Runner
    from evalkit.store import Store

    spec = resolve_tasks(SHAPES[shape])[0]
    samples, a, b = make_shape(shape, n)
    samples = [replace(s, task=spec.name) for s in samples]
    with Store(db) as store:
        for name, answers in (("prior-box", a), ("cand", b)):
            card = ModelCard(name=name, adapter="external", checkpoint=f"synthetic-{name}")
            adapter = PredictionsAdapter(card, answers)
            Runner(store, spec, card, adapter, samples=samples, batch_size=512, progress=False).run()
    boxes = {"pred": [], "ref": []}
    for s in sorted(samples, key=lambda s: s.sample_id):
        boxes["pred"].append([json.loads(b[s.sample_id])])
        boxes["ref"].append(s.reference_boxes)
    db.with_suffix(".boxes.json").write_text(json.dumps(boxes))


# One COCOeval of the candidate's boxes as its own process: imports, loading the boxes, evaluate/accumulate/summarize.
# With a second argument: five evaluations in one warm process, CPU seconds of each (the --one-eval timing).
PYCOCOTOOLS = """
import contextlib, io, json, statistics, sys, time
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
def once(boxes):
    images, anns, dets = [], [], []
    for i, (preds, refs) in enumerate(zip(boxes["pred"], boxes["ref"])):
        images.append({"id": i + 1, "width": 1, "height": 1})
        for r in refs:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [r[0], r[1], r[2] - r[0], r[3] - r[1]], "area": (r[2] - r[0]) * (r[3] - r[1])})
        for p in preds:
            dets.append({"image_id": i + 1, "category_id": 1, "score": 1.0,
                         "bbox": [p[0], p[1], p[2] - p[0], p[3] - p[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(); gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}]}; gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        ev = COCOeval(gt, dt, "bbox"); ev.evaluate(); ev.accumulate(); ev.summarize()
    return ev.stats
boxes = json.load(open(sys.argv[1]))
if len(sys.argv) < 3:
    stats = once(boxes)
    print(stats[0], stats[1])
else:
    once(boxes)
    times = []
    for _ in range(5):
        start = time.process_time(); value = once(boxes)[0]; times.append(time.process_time() - start)
    print(json.dumps({"min": min(times), "median": statistics.median(times), "value": repr(float(value))}))
"""
FASTER = PYCOCOTOOLS.replace("from pycocotools.coco import COCO", "from faster_coco_eval import COCO").replace(
    "from pycocotools.cocoeval import COCOeval", "from faster_coco_eval import COCOeval_faster as COCOeval"
)


# One evaluation in a warm process, CPU seconds: evalkit's coco_ap (score + aggregate) on grounding_metrics' samples.
ONE_EVALKIT = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from grounding_metrics import make_samples
import evalkit.metrics.grounding as g
from evalkit.metrics import get_metric
warm_p, warm_s = make_samples(50, 1)
get_metric("coco_ap").score(warm_p, warm_s)
predictions, samples = make_samples(int(sys.argv[2]), 0)
order = sorted(range(len(samples)), key=lambda i: samples[i].sample_id)
json.dump({"pred": [predictions[i].boxes for i in order], "ref": [samples[i].reference_boxes for i in order]},
          open(sys.argv[3], "w"))
times = []
for _ in range(5):
    g._iou_matrix.cache_clear(); g._coco_matches.cache_clear(); g._COCO_VALUES.clear()
    start = time.process_time()
    metric = get_metric("coco_ap")
    scores = metric.score(predictions, samples)
    value = metric.aggregate([s.value for s in scores], [s.stats for s in scores])
    times.append(time.process_time() - start)
print(json.dumps({"min": min(times), "median": statistics.median(times), "value": repr(float(value))}))
"""


def one_evaluation(n: int, work: Path, faster_python: str | None, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """CPU seconds of one evaluation in a warm process: evalkit coco_ap, pycocotools, faster-coco-eval."""
    boxes = work / f"one-eval-{n}.json"
    _, _, out = timed(
        [sys.executable, "-c", ONE_EVALKIT, str(Path(__file__).resolve().parent), str(n), str(boxes)], env
    )
    rows = {"evalkit coco_ap": json.loads(out)}
    _, _, out = timed([sys.executable, "-c", PYCOCOTOOLS, str(boxes), "warm"], env)
    rows["pycocotools"] = json.loads(out)
    if faster_python:
        _, _, out = timed([faster_python, "-c", FASTER, str(boxes), "warm"], env)
        rows["faster-coco-eval"] = json.loads(out)
    return rows


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU (user+sys of the child and its children) seconds of one process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3314)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--work", type=Path, default=None, help="folder for the stores (kept; reused when present)")
    parser.add_argument("--faster-python", default=None, help="a python with faster-coco-eval (a side environment)")
    parser.add_argument("--one-eval", type=int, default=0, help="also time one coco_ap evaluation on N samples")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="evalkit-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    evalkit = [sys.executable, "-m", "evalkit.cli"]
    report: dict[str, dict[str, dict[str, float]]] = {}
    for shape in args.shapes.split(","):
        db = work / f"{shape}-{args.samples}.duckdb"
        if not db.exists():
            build_store(db, shape, args.samples)
        task, boxes = SHAPES[shape], str(db.with_suffix(".boxes.json"))
        commands = {
            "compare": [*evalkit, "compare", "-t", task, "-m", "prior-box", "-m", "cand", "--db", str(db)],
            "gate": [
                *evalkit,
                "gate",
                "-t",
                task,
                "-c",
                "cand",
                "-b",
                "prior-box",
                "--db",
                str(db),
                "--margin",
                "0.01",
            ],
            "pycocotools": [sys.executable, "-c", PYCOCOTOOLS, boxes],
        }
        if args.faster_python:
            commands["faster-coco-eval"] = [args.faster_python, "-c", FASTER, boxes]
        timed(commands["compare"], env)  # a first run outside the timing: numba's on-disk cache, the OS page cache
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved: a busy moment hits every command alike
            for name, command in commands.items():
                wall, cpu, _ = timed(command, env)
                runs[name].append((wall, cpu))
        rows = {}
        for name, pairs in runs.items():
            walls, cpus = [w for w, _ in pairs], [c for _, c in pairs]
            rows[name] = {"wall_min": min(walls), "wall_median": statistics.median(walls),
                          "cpu_min": min(cpus), "cpu_median": statistics.median(cpus)}  # fmt: skip
        report[shape] = rows
        coco = rows["pycocotools"]
        print(f"{shape} ({task} shape, {args.samples} samples, median of {args.repeats}):")
        for name, row in rows.items():
            print(
                f"  {name:18s} wall {row['wall_median']:6.2f} s (min {row['wall_min']:6.2f})  "
                f"cpu {row['cpu_median']:6.2f} s (min {row['cpu_min']:6.2f})  "
                f"/COCOeval wall {row['wall_median'] / coco['wall_median']:5.2f}x  "
                f"cpu {row['cpu_median'] / coco['cpu_median']:5.2f}x",
                flush=True,
            )
    if args.one_eval:
        rows = one_evaluation(args.one_eval, work, args.faster_python, env)
        report["one evaluation"] = rows
        reference = rows.get("faster-coco-eval", rows["pycocotools"])
        print(f"one evaluation, {args.one_eval} samples, warm process, CPU s (min / median of 5):")
        for name, row in rows.items():
            print(
                f"  {name:18s} {row['min']:6.3f} / {row['median']:6.3f}  value {row['value']}  "
                f"/reference median {row['median'] / reference['median']:5.2f}x"
            )
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

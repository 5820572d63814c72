"""Batched generation in the transformers adapter versus a one-by-one loop, on the tiny random Qwen3-VL.

The same phantom requests go through `TransformersAdapter.generate` with batch size 1 (the loop most
evaluation scripts run) and with larger batches (left padding, one `generate` per batch). Greedy decoding, so
every batch size must give the same texts; the script checks that and reports samples/s and tokens/s.
Each configuration is timed `--repeats` times, interleaved, and the best time is kept (shared machines are noisy).

    python benchmarks/transformers_throughput.py                       # CPU, 64 samples, batch 1/4/16/64
    python benchmarks/transformers_throughput.py --device cuda --json results/bench_tf.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def phantom_requests(workdir: Path, n: int, card) -> list:
    from evalkit.data import get_loader
    from evalkit.data.phantom import generate_phantom
    from evalkit.images import load_image
    from evalkit.model_adapters.base import GenerationRequest
    from evalkit.registry import all_tasks
    from evalkit.run.prompts import render_prompt

    root = generate_phantom(workdir / "phantom", n_train=0, n_validate=0, n_test=n, size=256)
    requests = []
    for name in ("phantom-report", "phantom-abnormality-grounding"):
        task = all_tasks()[name]
        for sample in get_loader("phantom")(task.dataset, root, task.name, "test")[: n // 2]:
            system, prompt = render_prompt(task, card, sample)
            requests.append(GenerationRequest(sample, prompt, [load_image(p) for p in sample.image_paths], system))
    return requests[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import torch

    from evalkit.config import ModelCard
    from evalkit.model_adapters.transformers_local import TransformersAdapter
    from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="evalkit-bench-") as tmp:
        workdir = Path(tmp)
        checkpoint = build_tiny_qwen3vl(workdir / "tiny", seed=0)
        card = ModelCard.model_validate(
            {
                "name": "tiny-qwen3vl",
                "adapter": "transformers",
                "checkpoint": str(checkpoint),
                "family": "qwen3-vl",
                "box_format": "qwen1000",
                "decoding": {"temperature": 0, "max_new_tokens": args.max_new_tokens},
            }
        )
        adapter = TransformersAdapter(card, device=args.device, batch_size=1)
        requests = phantom_requests(workdir, args.samples, card)
        adapter.generate(requests[:2])  # warm-up
        best: dict[int, float] = {}
        texts: dict[int, list[str]] = {}
        tokens: dict[int, int] = {}
        for _ in range(args.repeats):
            for batch_size in args.batch_sizes:
                adapter.batch_size = batch_size
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                started = time.perf_counter()
                results = adapter.generate(requests)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - started
                best[batch_size] = min(seconds, best.get(batch_size, float("inf")))
                texts[batch_size] = [r.text for r in results]
                tokens[batch_size] = sum(r.tokens or 0 for r in results)
                assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]

    loop = args.batch_sizes[0]
    rows = []
    for batch_size in args.batch_sizes:
        rows.append(
            {
                "batch_size": batch_size,
                "seconds": round(best[batch_size], 3),
                "samples_per_s": round(args.samples / best[batch_size], 2),
                "tokens_per_s": round(tokens[batch_size] / best[batch_size], 1),
                "speedup_vs_batch_1": round(best[loop] / best[batch_size], 2),
                "same_texts_as_batch_1": texts[batch_size] == texts[loop],
            }
        )
    info = {
        "model": "tiny-qwen3vl (random weights, ~0.3M parameters)",
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "samples": args.samples,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "rows": rows,
    }
    print(f"tiny-qwen3vl on {args.device}, {args.samples} phantom samples, {args.max_new_tokens} new tokens, greedy")
    print(f"{'batch':>5} {'seconds':>8} {'samples/s':>10} {'tokens/s':>9} {'speedup':>8} {'same texts':>11}")
    for row in rows:
        print(
            f"{row['batch_size']:>5} {row['seconds']:>8} {row['samples_per_s']:>10} {row['tokens_per_s']:>9} "
            f"{row['speedup_vs_batch_1']:>7}x {row['same_texts_as_batch_1']!s:>11}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(info, indent=2))
    return 0 if all(row["same_texts_as_batch_1"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

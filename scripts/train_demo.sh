#!/usr/bin/env bash
# The CPU training demo (issue 7): per seed, a small Qwen3-VL-architecture model built locally with random weights
# is trained by SFT on phantom grounding + report data, then by GRPO with evalkit's soft-F1 IoU reward; the
# untrained, SFT and SFT+GRPO models are evaluated by the harness on held-out phantom grounding (soft_f1_iou,
# radvlm_map50). Prints a per-seed table and mean ± sd; writes results/train-demo/report.json.
#
#   scripts/train_demo.sh                      # seeds 0,1,2 (about 8-10 minutes on 2 idle cores)
#   scripts/train_demo.sh --seeds 0 --ship     # one seed, then ship its checkpoints for `evalkit demo`
#
# Any option of `evalkit train demo` is passed through (--seeds, --out, --sft-steps, --grpo-steps, --data-root).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -x .venv/bin/evalkit ]; then EVALKIT=.venv/bin/evalkit; else EVALKIT=evalkit; fi
start=$(date +%s)
"$EVALKIT" train demo --json results/train-demo/report.json "$@"
echo "train_demo.sh: $(( $(date +%s) - start ))s wall"

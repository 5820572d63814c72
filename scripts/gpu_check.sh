#!/usr/bin/env bash
# GPU check of the model adapters: one command, offline, under 8 minutes on one H200.
#
#   bash scripts/gpu_check.sh                  # GPU machine (CUDA torch + transformers; vLLM used if installed)
#   GPU_CHECK_SMALL=1 bash scripts/gpu_check.sh --device cpu    # CPU smoke run of the same code paths
#
# Builds random-weight Qwen3-VL models locally (the tiny one and one of Qwen3-VL-2B's shape), runs the
# transformers adapter (and the vLLM adapter where vLLM is installed) on phantom radiographs, and reports
# throughput and the harness's overhead against a bare generate on the same prompts. Results: JSON in
# ${OUT:-/tmp}/gpu_check.json and a summary on stdout. Extra arguments go to scripts/gpu_check.py.
set -uo pipefail
cd "$(dirname "$0")/.."

# The interpreter that has torch: $PYTHON if set, else the first of python3 / python that imports it.
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch, transformers" >/dev/null 2>&1; then
            PY="$candidate"
            break
        fi
    done
fi
if [ -z "$PY" ]; then
    echo "gpu_check: no python with torch and transformers found (set PYTHON=...)" >&2
    exit 2
fi
OUT_DIR="${OUT:-/tmp}"
mkdir -p "$OUT_DIR"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# evalkit itself, without touching the machine's torch/transformers (and without a network: no build isolation).
if ! "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1; then
    echo "gpu_check: 'pip install -e . --no-deps' failed; using PYTHONPATH instead"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# The harness's light dependencies. Offline machines get them from the wheel folder .whl/ when it was carried.
if ! "$PY" -c "import pydantic, yaml, PIL, numpy" >/dev/null 2>&1; then
    if [ -d .whl ]; then
        echo "gpu_check: installing pydantic/pillow from .whl/ (offline)"
        "$PY" -m pip install --quiet --no-index --find-links .whl pydantic pillow || true
    fi
    if ! "$PY" -c "import pydantic, yaml, PIL, numpy" >/dev/null 2>&1; then
        echo "gpu_check: missing pydantic, pyyaml, pillow or numpy and no way to install them offline" >&2
        exit 2
    fi
fi

exec timeout --signal=INT 470 "$PY" scripts/gpu_check.py --out "$OUT_DIR/gpu_check.json" "$@"

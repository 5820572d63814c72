#!/usr/bin/env bash
# THE GPU check (issue 19), sized for the GPU check machine: bare CUDA image (torch, transformers; no vLLM, no
# pydantic/duckdb/trl/datasets), no network, 64 MiB carried, 15 minutes, at most 8 result files. One script:
# the transformers adapter on a hub-layout Qwen3-VL at radiograph size, an SFT step and GRPO steps with the card's
# pixel budget, the harness, a GPU metric after the generator is freed; vLLM stages where vLLM imports (else
# `skipped` with the reason). Whole run capped at 460 s (the Python side plans for 420 s).
#
#   bash scripts/gpu_wheels.sh                # here, once: .whl/ (about 29 MiB) with what the machine lacks
#   bash scripts/gpu_train_check.sh           # on the GPU machine; $OUT gets gpu_train_check.json + 2 logs
#   bash scripts/gpu_train_check.sh --cpu-smoke   # small, on the CPU: checks the script (under 8 minutes here)
#
# Wheels in .whl/ (or $WHEEL_DIR) for packages this Python lacks are installed first with
# `pip install --no-index --no-deps`. evalkit itself runs from this checkout (PYTHONPATH), not installed.
# Work files go to $GPU_CHECK_WORK (default /tmp/evalkit_gpu_check), never under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && [ "${1:-}" = "--cpu-smoke" ]; then PY=.venv/bin/python; fi
WHEELS=${WHEEL_DIR:-.whl}
# Only packages this Python lacks are installed (WHEELS_FORCE=1: every wheel), one wheel at a time so that a
# wheel for another platform or Python does not stop the others. Never with --cpu-smoke (the development venv).
if [ "${1:-}" != "--cpu-smoke" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  for wheel in "$WHEELS"/*.whl; do
    dist=$(basename "$wheel" | cut -d- -f1)
    if [ "${WHEELS_FORCE:-0}" != "1" ] && "$PY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$dist" 2>/dev/null; then
      continue
    fi
    echo "installing $(basename "$wheel") (no index, no deps)"
    "$PY" -m pip install -q --no-index --no-deps "$wheel" 2>/dev/null || echo "note: $(basename "$wheel") did not install here"
  done
fi
exec timeout --signal=INT 460 "$PY" scripts/gpu_train_check.py "$@"

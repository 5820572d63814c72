#!/usr/bin/env bash
# GPU check of training/ (issue 7): a few GRPO steps of the recipe on CUDA on a locally built Qwen3-VL, with
# vLLM generation (TRL colocate mode) where vLLM is installed. No network needed. Under 8 minutes on one H200.
#
#   scripts/gpu_train_check.sh               # on the GPU machine; results in ${OUT:-/tmp}/gpu_train_check.json
#   scripts/gpu_train_check.sh --cpu-smoke   # tiny, on the CPU: checks the script itself
#
# Packages the machine lacks (e.g. TRL) can come as wheels in .whl/ (or $WHEEL_DIR): they are installed with
# `pip install --no-index --no-deps` first. evalkit itself runs from this checkout (PYTHONPATH), not installed.
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
exec "$PY" scripts/gpu_train_check.py "$@"

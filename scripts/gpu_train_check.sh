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
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  echo "installing wheels from $WHEELS (no index, no deps)"
  "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl || echo "note: some wheels did not install"
fi
exec "$PY" scripts/gpu_train_check.py "$@"

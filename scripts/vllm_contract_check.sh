#!/usr/bin/env bash
# vLLM contract check (issue 19): evalkit's requests through vLLM's own GPU-free code, frozen as fixtures.
#
#   bash scripts/vllm_contract_check.sh      # makes (or reuses) the side environment, regenerates the fixtures
#
# 1. A side environment ($VLLM_SIDE_ENV, default /work/side/vllm) with the vLLM pinned in constraints.txt and its
#    own torch/torchvision (never the project's venv). Made here when missing (several GB, minutes).
# 2. scripts/vllm_contract/emit_requests.py (project venv): the tiny hub-layout Qwen3-VL, evalkit's `vllm serve`
#    flags, engine kwargs and chat-completions bodies (phantom and radiograph-sized images, card pixel budget).
# 3. scripts/vllm_contract/run_vllm.py (side env): EngineArgs.create_model_config() and `vllm launch render`
#    started with evalkit's flags (CPU platform: VLLM_TARGET_DEVICE=cpu); each body rendered to prompt token ids.
# Measured 2026-12-07 with vLLM 0.32.0 (torch 2.13.0, transformers 5.19.0): about 40 s per family (3 render servers)
# plus 15 s for the shapes once the env exists, about 2.5 min in all on 2 shared cores.
# 4. Writes scripts/vllm_contract/fixtures.json; tests/model_adapters/test_vllm_contract.py holds evalkit to it without vLLM.
# 5. Qwen2.5-VL (evalkit/testing/tiny_qwen25vl.py, deepmedix-r1's card) and Gemma3 (tiny_gemma3.py,
#    medgemma-27b-it's card): steps 2-4 again, fixtures-qwen2.5-vl.json and fixtures-gemma3.json; for Gemma3 also
#    medgemma-4b-pt's raw prompt (the offline LLM.generate input) through vLLM's renderer (render_cmpl).
# 6. Every shipped card: emit_shapes.py (project venv) writes each shipped card's requests
#    (offline engine input, sampling and engine kwargs, OpenAI chat body) and check_shapes.py (side env) validates
#    them with vLLM's request models and chat-content parser, writing scripts/vllm_contract/shapes.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT_PY=${PYTHON:-python3}
SIDE=${VLLM_SIDE_ENV:-/work/side/vllm}
VLLM_PIN=$(grep -E '^vllm==' constraints.txt | head -1)
TORCH_PIN=$(grep -E '^torch==' constraints.txt | head -1)
if [ ! -x "$SIDE/bin/python" ] || ! "$SIDE/bin/python" -c "import vllm" >/dev/null 2>&1; then
  echo "vllm_contract_check: making $SIDE with $VLLM_PIN (several GB)"
  python3 -m venv "$SIDE"
  "$SIDE/bin/pip" install -q "$VLLM_PIN"
fi
# A machine whose local wheel folder holds a CPU torch gives vLLM that torch next to the index's CUDA torchvision,
# which fails at import (torchvision::nms): take the index's torch build instead (local wheels and config ignored).
if ! CUDA_VISIBLE_DEVICES= "$SIDE/bin/python" -c "import torchvision" >/dev/null 2>&1; then
  echo "vllm_contract_check: torchvision does not import beside this torch; installing the index's $TORCH_PIN"
  PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= "$SIDE/bin/pip" install -q --no-deps --force-reinstall "$TORCH_PIN"
  PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= "$SIDE/bin/pip" install -q "$TORCH_PIN"
fi
WORK=$(mktemp -d /tmp/vllm_contract.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PROJECT_PY" scripts/vllm_contract/emit_requests.py "$WORK"
env -u PYTHONPATH CUDA_VISIBLE_DEVICES= "$SIDE/bin/python" scripts/vllm_contract/run_vllm.py "$WORK" \
  scripts/vllm_contract/fixtures.json || { tail -40 "$WORK/render.log" 2>/dev/null; exit 1; }
# The other family evalkit builds tiny (Qwen2.5-VL, deepmedix-r1's settings): the same render check.
"$PROJECT_PY" scripts/vllm_contract/emit_requests.py "$WORK/qwen2.5-vl" qwen2.5-vl
env -u PYTHONPATH CUDA_VISIBLE_DEVICES= "$SIDE/bin/python" scripts/vllm_contract/run_vllm.py "$WORK/qwen2.5-vl" \
  scripts/vllm_contract/fixtures-qwen2.5-vl.json || { tail -40 "$WORK/qwen2.5-vl/render.log" 2>/dev/null; exit 1; }
# Gemma3 (evalkit/testing/tiny_gemma3.py, medgemma-27b-it's card): the same render check.
"$PROJECT_PY" scripts/vllm_contract/emit_requests.py "$WORK/gemma3" gemma3
env -u PYTHONPATH CUDA_VISIBLE_DEVICES= "$SIDE/bin/python" scripts/vllm_contract/run_vllm.py "$WORK/gemma3" \
  scripts/vllm_contract/fixtures-gemma3.json || { tail -40 "$WORK/gemma3/render.log" 2>/dev/null; exit 1; }
"$PROJECT_PY" scripts/vllm_contract/emit_shapes.py "$WORK"
env -u PYTHONPATH CUDA_VISIBLE_DEVICES= VLLM_TARGET_DEVICE=cpu "$SIDE/bin/python" scripts/vllm_contract/check_shapes.py \
  "$WORK" scripts/vllm_contract/shapes.json

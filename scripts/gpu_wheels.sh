#!/usr/bin/env bash
# Build .whl/: the wheels the GPU check machine lacks (bare CUDA image: Python 3.12, torch 2.11, transformers,
# accelerate, peft, pandas, pyarrow, scipy, typer, rich, pyyaml; no pydantic, duckdb, trl, datasets; no network).
# Run here (with network), then carry .whl/ (ignored by git) to the machine; scripts/gpu_train_check.sh installs
# what that Python lacks from it, with --no-index --no-deps. The folder must stay under 64 MiB (what may travel).
#
#   bash scripts/gpu_wheels.sh            # -> .whl/, prints its size; exits 1 above the limit
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${WHEEL_DIR:-.whl}
LIMIT_MIB=${WHEEL_LIMIT_MIB:-60}
# Versions from constraints/tested.txt where they are named there (trl, datasets); the rest are what those need
# and the image does not hold. datasets stays on a 4.x that accepts the image's pyarrow.
PACKAGES=(
  "pydantic==2.14.4" "pydantic-core==2.50.5" "annotated-types==0.7.0" "typing-inspection==0.4.4"
  "typing-extensions>=4.16"
  "duckdb==2.0.1"
  "trl==1.16.0" "datasets==4.7.0" "dill==0.4.0" "multiprocess==0.70.18"
  "ensemble-boxes==1.0.9"
)
# Published as source only: built into a wheel here (pure Python).
SOURCE_ONLY=("rouge-score==0.1.2")
mkdir -p "$DEST"
PIP=${PIP:-pip}
command -v "$PIP" >/dev/null 2>&1 || PIP="python3 -m pip"
$PIP download --quiet --dest "$DEST" --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  --platform any "${PACKAGES[@]}"
$PIP wheel --quiet --no-deps --wheel-dir "$DEST" "${SOURCE_ONLY[@]}"
size_mib=$(du -sm "$DEST" | cut -f1)
echo "gpu_wheels: $(ls "$DEST" | wc -l) wheels in $DEST, ${size_mib} MiB (limit ${LIMIT_MIB} MiB)"
ls -1 "$DEST"
if [ "$size_mib" -gt "$LIMIT_MIB" ]; then
  echo "gpu_wheels: $DEST is over ${LIMIT_MIB} MiB: it cannot travel with the working tree" >&2
  exit 1
fi

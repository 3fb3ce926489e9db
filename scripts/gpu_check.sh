#!/usr/bin/env bash
# GPU check (about 3 minutes): short trainings of both models on CUDA in auto, bf16, fp16 (+ grad scaler) and fp32,
# channels-last on and off, images/s, the speed-up over this machine's CPU, and each model evaluated on the CPU. Needs `make venv` (or an installed babyface) first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"

#!/usr/bin/env bash
# GPU check (about 2 minutes): short trainings of both models with bf16 autocast and channels_last on CUDA,
# images/s and the speed-up over this machine's CPU. Needs `make venv` (or an installed babyface) first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"

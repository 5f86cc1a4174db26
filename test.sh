#!/usr/bin/env bash
# Quick start 2/2: run the whole test suite offscreen (sets up .venv on first run). Extra args go to pytest
# (`-n 0` runs it in this one process).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup-venv.sh
export QT_QPA_PLATFORM=offscreen
# One worker per core (at most 4), each test file in one worker so its module fixtures (a trained tiny model, a
# built wheel) are made once. The models are tiny and bound by overhead: a second torch thread per worker only
# contends with the other workers.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile "$@"

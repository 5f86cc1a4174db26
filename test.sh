#!/usr/bin/env bash
# Quick start 2/2: run the whole test suite offscreen (sets up .venv on first run). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup-venv.sh
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest -q "$@"

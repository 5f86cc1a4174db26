#!/usr/bin/env bash
# Quick start 1/2: open Sequence Studio on the bundled models (sets up .venv on first run).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup-venv.sh
exec .venv/bin/studio "$@"

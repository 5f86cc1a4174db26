#!/usr/bin/env bash
# Creates .venv beside the repo and installs the studio into it (editable, with test tools). Re-running is a
# no-op until pyproject.toml or this script changes. torch is pinned to 2.13.0: unpinned, pip resolves a
# multi-GB CUDA build on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml scripts/setup-venv.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setting up .venv (first run: about 2 minutes)" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" -e ".[test]" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  .venv/bin/python -c "import torch, PySide6, safetensors" || { echo "setup failed" >&2; exit 1; }
  # numba compiles the audio engine's generation loop into its on-disk cache now (~15 s), not at the first sample
  .venv/bin/python -c "from engines.audio.fast import warm_up; warm_up()"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

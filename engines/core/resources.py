"""Where the studio's own read-only files are: presets and bundled models."""
from __future__ import annotations

from pathlib import Path

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"

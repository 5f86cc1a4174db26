"""Where the studio's own read-only files are: presets and bundled models."""
from __future__ import annotations

from pathlib import Path

_ENGINES = Path(__file__).resolve().parents[1]


def _data_dir(name: str) -> Path:
    # a wheel carries the folder inside the package (see pyproject.toml); a checkout, editable install
    # included, keeps it at the repository's top level
    packaged = _ENGINES / name
    return packaged if packaged.is_dir() else _ENGINES.parent / name


PRESETS_DIR = _data_dir("presets")
ASSETS_DIR = _data_dir("assets")

"""Where the studio keeps the user's things: the platform's user data folder, never the install."""
from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """SEQUENCE_STUDIO_HOME if set (tests, portable installs), else e.g. ~/.local/share/sequence-studio."""
    override = os.environ.get("SEQUENCE_STUDIO_HOME")
    if override:
        return Path(override)
    import platformdirs
    return Path(platformdirs.user_data_dir("sequence-studio", appauthor=False))


def models_dir() -> Path:
    return data_home() / "models"


def history_dir() -> Path:
    return data_home() / "history"

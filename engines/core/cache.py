"""Where engines keep what is slow to compute and safe to lose, across runs of the studio and the CLI."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path:
    """SEQUENCE_STUDIO_CACHE/name if that is set (tests), else SEQUENCE_STUDIO_HOME/cache/name if that is
    (portable installs: the studio's data folder, see studio/paths.py), else the platform's user cache folder,
    e.g. ~/.cache/sequence-studio/name. Not created here: a cache that cannot be written is skipped."""
    override = os.environ.get("SEQUENCE_STUDIO_CACHE")
    if override:
        return Path(override) / name
    home = os.environ.get("SEQUENCE_STUDIO_HOME")
    if home:
        return Path(home) / "cache" / name
    import platformdirs
    return Path(platformdirs.user_cache_dir("sequence-studio", appauthor=False)) / name

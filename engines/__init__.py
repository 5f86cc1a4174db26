"""Generation engines, found through the `sequence_studio.engines` entry-point group.

A package adds an engine by declaring, in its pyproject.toml:

    [project.entry-points."sequence_studio.engines"]
    myengine = "mypackage.engine:MyEngine"

where MyEngine implements engines.core.interface.Engine. Nothing here imports torch or Qt.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from .core.errors import StudioError
from .core.interface import Engine

ENTRY_POINT_GROUP = "sequence_studio.engines"


def available_engines() -> dict[str, Engine]:
    """Every installed engine by name, instantiated. An engine that fails to load is left out."""
    engines = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            engine = ep.load()()
        except Exception as e:  # a broken third-party engine must not take the studio down
            import warnings
            warnings.warn(f"engine {ep.name!r} ({ep.value}) could not be loaded: {e}")
            continue
        engines[engine.name] = engine
    return dict(sorted(engines.items()))


def get_engine(name: str) -> Engine:
    engines = available_engines()
    if name not in engines:
        raise StudioError(f"no engine called {name!r}; installed: {', '.join(engines) or 'none'}")
    return engines[name]

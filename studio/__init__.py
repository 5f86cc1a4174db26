"""Sequence Studio: the desktop app, its model worker, and the command line."""


def format_seconds(seconds: float) -> str:
    """A duration as m:ss, or h:mm:ss from an hour on."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"

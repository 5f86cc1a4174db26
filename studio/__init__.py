"""Sequence Studio: the desktop app, its model worker, and the command line."""

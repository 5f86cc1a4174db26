"""Errors a person can act on.

Everything the studio shows to a user as "this went wrong" is a StudioError; its message is written for
a person (which file, which byte, what to do), never a traceback. Anything else escaping an engine is a bug.
"""


class StudioError(Exception):
    """A problem with the user's input or files, explained in the message."""


class CorpusError(StudioError):
    """The training data cannot be used (empty, binary, undecodable, missing...)."""


class CheckpointError(StudioError):
    """A checkpoint is missing, corrupt, from another engine, or from an unknown format version."""


class ConfigError(StudioError):
    """A preset or setting is unknown or out of range."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (a full disk, no permission); the one saved before it is intact. Also
    an OSError, because what failed is the operating system's write."""

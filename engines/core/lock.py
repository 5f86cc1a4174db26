"""One training at a time per run folder: a second one (a resume beside a running run, two started
together) is refused with the process that holds it, instead of both overwriting each other's checkpoints.

An advisory lock (flock) on `<run>/.lock`: the operating system releases it when the process ends however it
ends, so a killed run never leaves a stale lock behind.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

try:
    import fcntl
except ImportError:         # Windows: no flock; runs are not locked there
    fcntl = None


@contextmanager
def run_folder_lock(folder: str | Path):
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    handle = locked(folder / ".lock")
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        yield
    finally:
        # a run that ended before its first checkpoint (an error, a stop) leaves nothing behind: no lock, and no
        # folder if it made it. The lock file goes while it is still held, so no other run can be holding it
        try:
            if [p.name for p in folder.iterdir()] == [".lock"]:
                (folder / ".lock").unlink()
                if created:
                    folder.rmdir()
        except OSError:         # the folder gone, or a new run's lock just made in it: leave it be
            pass
        handle.close()


def locked(path: Path):
    """The lock file, opened and locked; ConfigError naming the holder when another process has it."""
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(f"{path.parent} is being trained by {holder}; wait for it to finish or stop it, "
                              f"or train into another folder") from None
        # a run ending just now may have removed the file after we opened it: then lock the one there now
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                return handle
        except FileNotFoundError:
            pass
        handle.close()

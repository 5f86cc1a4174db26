"""The files of a corpus, and its identity: recorded in every checkpoint so a resumed run can tell it is reading
the same data.

Names, sizes and a sha256 of the contents. Above 64 MB only 64 evenly spaced 64 kB blocks of each file are
hashed (plus every size), so a 200 MB corpus is checked in milliseconds; an edit that keeps a file's size
and misses every block goes unnoticed, which is an accepted trade for not re-reading big corpora.
"""
from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

from .errors import CorpusError

FULL_HASH_BYTES = 64 << 20
BLOCKS, BLOCK = 64, 64 << 10


def has_wildcard(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def is_glob(path: str | Path) -> bool:
    """A pattern, not a path: wildcards, and no file or folder of that name ("Holiday [2019]" is a folder)."""
    return has_wildcard(str(path)) and not Path(path).expanduser().exists()


def corpus_files(path: str | Path) -> tuple[Path, list[Path]]:
    """The corpus root and the files a file, folder or glob names; every engine lists its corpus through this.
    The root of a glob is its folders before the first wildcard. Hidden files and folders (.git, .venv) are no
    part of a corpus. CorpusError when the path names nothing."""
    if is_glob(path):
        text = os.path.expanduser(str(path))      # quoted for the shell, so the shell did not expand it
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise CorpusError(f"no files match {text}")
        fixed = []
        for part in Path(text).parts[:-1]:
            if has_wildcard(part):
                break
            fixed.append(part)
        return Path(*fixed) if fixed else Path("."), files
    root = Path(path).expanduser()
    if root.is_file():
        return root.parent, [root]
    if not root.is_dir():
        raise CorpusError(f"{root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise CorpusError(f"{root} contains no files")
    return root, files


def corpus_fingerprint(path: str | Path) -> dict:
    try:
        root, files = corpus_files(path)
    except CorpusError:                  # a built-in data set (video's moving-digits) has no files
        root, files = Path(path), []
    # a glob's files go by the names the glob gives them, as fingerprints have always been recorded: a run
    # resumed on the same glob must find its corpus unchanged
    names_from = Path(".") if is_glob(path) else root
    total = sum(f.stat().st_size for f in files)
    digest = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.relative_to(names_from) if f.is_relative_to(names_from) else f.name}\0{size}\0".encode())
        with open(f, "rb") as handle:
            if total <= FULL_HASH_BYTES:
                digest.update(handle.read())
                continue
            for i in range(BLOCKS):
                handle.seek(i * max(0, size - BLOCK) // max(1, BLOCKS - 1))
                digest.update(handle.read(BLOCK))
    return {"files": len(files), "bytes": total, "sha256": digest.hexdigest()}

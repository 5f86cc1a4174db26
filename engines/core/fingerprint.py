"""A corpus's identity, recorded in every checkpoint so a resumed run can tell it is reading the same data.

Names, sizes and a sha256 of the contents. Above 64 MB only 64 evenly spaced 64 kB blocks of each file are
hashed (plus every size), so a 200 MB corpus is checked in milliseconds; an edit that keeps a file's size
and misses every block goes unnoticed, which is an accepted trade for not re-reading big corpora.
"""
from __future__ import annotations

import glob
import hashlib
from pathlib import Path

FULL_HASH_BYTES = 64 << 20
BLOCKS, BLOCK = 64, 64 << 10


def corpus_files(path: str | Path) -> tuple[Path, list[Path]]:
    text = str(path)
    if any(ch in text for ch in "*?["):
        return Path("."), sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    root = Path(path).expanduser()
    if root.is_file():
        return root.parent, [root]
    if not root.is_dir():
        return root, []
    # hidden files and folders (.git, .venv) are not read by any engine's reader, so they are no part of it
    return root, sorted(p for p in root.rglob("*") if p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(root).parts))


def corpus_fingerprint(path: str | Path) -> dict:
    root, files = corpus_files(path)
    total = sum(f.stat().st_size for f in files)
    digest = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.relative_to(root) if f.is_relative_to(root) else f.name}\0{size}\0".encode())
        with open(f, "rb") as handle:
            if total <= FULL_HASH_BYTES:
                digest.update(handle.read())
                continue
            for i in range(BLOCKS):
                handle.seek(i * max(0, size - BLOCK) // max(1, BLOCKS - 1))
                digest.update(handle.read(BLOCK))
    return {"files": len(files), "bytes": total, "sha256": digest.hexdigest()}

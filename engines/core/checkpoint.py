"""Checkpoints: one .safetensors file each, tensors plus a JSON header, written atomically.

    model.<name>           the model's weights
    optim.<i>.<name>       optimizer state (only in a run's last.safetensors, which resume reads)
    header "studio"        JSON: format + version, engine, model/train config, corpus meta (vocabulary),
                           step, metrics, loss history

safetensors never unpickles, so a checkpoint from anywhere is safe to open; tensors are read onto the CPU and
moved to whatever device is in use, so a checkpoint trained on CUDA opens on a laptop and vice versa.
A file is written to a temporary name in the same folder, fsync'ed and renamed over the old one, so a
crash or kill mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import CheckpointError

FORMAT = "sequence-studio-checkpoint"
FORMAT_VERSION = 1
HEADER_KEY = "studio"


def save_file(tensors, filename, metadata):
    from safetensors.torch import save_file as save_safetensors
    save_safetensors(tensors, filename, metadata=metadata)


def save_checkpoint(path: Path, tensors: dict, meta: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes files private; a checkpoint is an ordinary file
    try:
        save_file(tensors, tmp, metadata={HEADER_KEY: json.dumps(header)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def find_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """A checkpoint file, or a run folder (its best.safetensors, else last.safetensors)."""
    path = Path(path).expanduser()
    if path.is_dir():
        order = [f"{prefer}.safetensors", "last.safetensors", "best.safetensors"]
        for name in order:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path} holds no checkpoint (no best.safetensors or last.safetensors)")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON), checked against the
    file's size so a truncated file is caught here. Reads no tensors and needs no torch (the GUI uses it)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if size < 8 or length > size - 8:
                raise ValueError("header length beyond the end of the file")
            header = json.loads(f.read(length))
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        if max(ends, default=0) > size - 8 - length:
            raise ValueError("tensor data beyond the end of the file")
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {e}") from None
    return header


def read_meta(path: str | Path, engine: str | None = None) -> dict:
    """The checkpoint's JSON header alone (cheap: no tensors are read, torch is not needed)."""
    path = find_checkpoint(path)
    raw = (read_safetensors_header(path).get("__metadata__") or {}).get(HEADER_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a Sequence Studio checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} has a damaged header") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Sequence Studio checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} uses checkpoint format {meta.get('format_version')}; "
                              f"this version of the studio reads format {FORMAT_VERSION}")
    if engine is not None and meta.get("engine") != engine:
        raise CheckpointError(f"{path} is a checkpoint of the {meta.get('engine')!r} engine, not {engine!r}")
    return meta


def load_checkpoint(path: str | Path, engine: str | None = None, prefix: str = "") -> tuple[dict, dict]:
    """(tensors whose names start with prefix, with the prefix removed; meta). Tensors are on the CPU."""
    from safetensors import SafetensorError, safe_open
    path = find_checkpoint(path)
    meta = read_meta(path, engine)
    tensors = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():
                if key.startswith(prefix):
                    tensors[key[len(prefix):]] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is corrupt or truncated: {e}") from None
    return tensors, meta

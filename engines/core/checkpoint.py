"""Checkpoints: one .safetensors file each, tensors plus a JSON header, written atomically.

    model.<name>           the model's weights
    optim.<i>.<name>       optimizer state (only in a run's last.safetensors, which resume reads)
    header "studio"        JSON: format + version, engine, model/train config, corpus meta (vocabulary),
                           step, metrics, loss history
    header "studio.sha256" the SHA-256 of that JSON: a header edited or damaged and still valid JSON is caught
                           when read, not deep in an engine that finds a key missing

safetensors never unpickles, so a checkpoint from anywhere is safe to open; tensors are read onto the CPU and
moved to whatever device is in use, so a checkpoint trained on CUDA opens on a laptop and vice versa.
A file is serialised in memory, written to one temporary file of ours in the same folder (.<name>.<random>.tmp),
fsync'ed and renamed over the old one, so a crash, a kill or a full disk mid-write leaves the previous checkpoint
intact; a kill leaves the temporary, which remove_stale_temporaries deletes when the run next starts.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
from pathlib import Path

from .errors import CheckpointError, CheckpointWriteError

FORMAT = "sequence-studio-checkpoint"
FORMAT_VERSION = 1
HEADER_KEY = "studio"
HEADER_DIGEST_KEY = "studio.sha256"
MAX_HEADER_BYTES = 100_000_000        # as safetensors itself: a larger "header" is junk, not read into memory
# how torch.save's files begin: a zip archive (PyTorch >= 1.6) or a bare pickle, protocol 2 to 5; told apart
# from a safetensors file only when the first 8 bytes are not a plausible header length
TORCH_FILE_STARTS = (b"PK\x03\x04", *(bytes([0x80, protocol]) for protocol in range(2, 6)))


def save_file(tensors, filename, metadata):
    """Write a safetensors file as a new file `filename`. It is serialised in memory and written here because
    safetensors' own save_file writes through a temporary of its own (left behind by a kill) and renames it
    over the target, which makes every checkpoint mode 0600 whatever the umask."""
    from safetensors.torch import save
    data = save(tensors, metadata=metadata)
    with open(filename, "xb") as f:       # a new file: mode 0666 less the umask, like any file the user makes
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path: Path, tensors: dict, meta: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        text = json.dumps(header)
        digest = hashlib.sha256(text.encode()).hexdigest()
        save_file(tensors, tmp, metadata={HEADER_KEY: text, HEADER_DIGEST_KEY: digest})
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            size = sum(t.nbytes for t in tensors.values()) / 1e6
            why = (f"the disk is full (no room for its {size:.1f} MB); free some space there, or use a folder on "
                   f"another disk, and try again: a training run resumes from its last saved checkpoint")
        else:
            why = e.strerror or str(e)
        raise CheckpointWriteError(f"could not save {path}: {why}. The checkpoint saved there before, if any, "
                                   f"is intact") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries that saves killed mid-write left in a run folder, and return them: ours
    (.<name>.<random>.tmp) and those of safetensors' own save_file (.tmpXXXXXX), which earlier versions of the
    studio used. Call it only while holding the folder's run lock (lock.run_folder_lock): then no save can be
    in progress there."""
    folder = Path(folder)
    stale = sorted([*folder.glob(".*.safetensors.*.tmp"), *folder.glob(".tmp??????")])
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def run_model(folder: Path) -> Path:
    """A run folder's model: its best.safetensors, else its last.safetensors (no best file is saved when no
    validation after step 0 beat the untrained model's)."""
    best = folder / "best.safetensors"
    return best if best.is_file() else folder / "last.safetensors"


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's model (its best.safetensors, else last.safetensors)."""
    path = Path(path).expanduser()
    if path.is_dir():
        if run_model(path).is_file():
            return run_model(path)
        other = run_engine(path)
        if other:
            raise CheckpointError(f"{path} holds a run of the {other!r} engine, in stage folders: sample it with "
                                  f"that engine")
        raise CheckpointError(f"{path} holds no checkpoint (no best.safetensors or last.safetensors)")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def run_engine(folder: str | Path) -> str | None:
    """The engine whose training run a folder holds, if any: its last/best checkpoint, or a stage's in the
    stage's own folder (not a folder of other runs, each in a folder of its own)."""
    folder = Path(folder)
    for path in [folder / "last.safetensors", folder / "best.safetensors",
                 *sorted(folder.glob("*/last.safetensors")), *sorted(folder.glob("*/best.safetensors"))]:
        try:
            header = read_meta(path)
        except CheckpointError:
            continue
        if path.parent == folder or (header.get("stage") == path.parent.name and len(header.get("stages", [])) > 1):
            return header.get("engine")
    return None


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON), checked against the
    file's size so a truncated file is caught here. Reads no tensors and needs no torch (the GUI uses it)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            start = f.read(8)
            length = int.from_bytes(start, "little")
            if size < 8 or length > min(size - 8, MAX_HEADER_BYTES):
                if start.startswith(TORCH_FILE_STARTS):
                    raise CheckpointError(f"{path} is a PyTorch file (.pt/.pth, made by torch.save), not a "
                                          f"checkpoint of this studio: only the safetensors checkpoints Sequence "
                                          f"Studio writes are accepted, because opening a PyTorch file unpickles "
                                          f"it, which can run any code hidden in it (this one was not opened)")
                raise ValueError("header length beyond the end of the file (or over 100 MB)")
            header = json.loads(f.read(length))
        if not isinstance(header, dict) or not isinstance(header.get("__metadata__", {}), dict):
            raise ValueError("the header is not a table of tensors")
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        if max(ends, default=0) > size - 8 - length:
            raise ValueError("tensor data beyond the end of the file")
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {e}") from None
    return header


def read_meta(path: str | Path, engine: str | None = None) -> dict:
    """The checkpoint's JSON header alone (cheap: no tensors are read, torch is not needed)."""
    path = find_checkpoint(path)
    metadata = read_safetensors_header(path).get("__metadata__") or {}
    raw, digest = metadata.get(HEADER_KEY), metadata.get(HEADER_DIGEST_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a Sequence Studio checkpoint")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        raise CheckpointError(f"{path} has a damaged header") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has a damaged header")
    # files saved before the digest was recorded have none
    if digest is not None and digest != hashlib.sha256(raw.encode()).hexdigest():
        raise CheckpointError(f"{path} has a damaged header (it was changed after it was saved)")
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
    broken = [name for name, t in tensors.items() if t.is_floating_point() and not t.isfinite().all()]
    if broken:
        raise CheckpointError(f"{path} holds weights that are not numbers (NaN or infinite: {', '.join(broken[:3])}"
                              f"{', ...' if len(broken) > 3 else ''}): a training run that diverged, or a damaged "
                              f"file; use an earlier checkpoint")
    return tensors, meta

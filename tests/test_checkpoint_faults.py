"""Checkpoint files under faults (issue 12, items 7, 13 and 14): a PyTorch pickle offered as a checkpoint,
temporaries left by kills, file permissions, and a full disk (a real one on a 1 MB tmpfs, and a failing write)."""
import errno
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engines.core import checkpoint
from engines.core.checkpoint import load_checkpoint, read_meta, remove_stale_temporaries, save_checkpoint
from engines.core.errors import CheckpointError
from engines.core.trainer import train
from engines.text import TextEngine
from helpers import recipes, tiny_model, tiny_train

from conftest import write_corpus

ROOT = Path(__file__).resolve().parents[1]


class Booby:
    """Unpickling this would create the file named in it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("zipped", [True, False])       # torch.save's format since PyTorch 1.6, and the legacy one
def test_a_pytorch_file_is_named_and_never_opened(tmp_path, zipped):
    marker = tmp_path / "unpickled-code-ran"
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3), "trap": Booby(marker)}, path, _use_new_zipfile_serialization=zipped)
    for read in (read_meta, load_checkpoint):
        with pytest.raises(CheckpointError, match="PyTorch file .* not a checkpoint of this studio") as err:
            read(path)
        assert "only the safetensors checkpoints" in str(err.value) and "run any code" in str(err.value)
        assert "corrupt" not in str(err.value)
    assert not marker.exists()


@pytest.fixture
def restore_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_a_checkpoint_is_written_through_one_temporary_and_follows_the_umask(tmp_path, restore_umask, monkeypatch,
                                                                            mask, mode):
    os.umask(mask)
    created = []
    real_open = open

    def spy(file, mode="r", *args, **kwargs):      # every file opened for writing during the save
        if any(flag in mode for flag in "wxa+"):
            created.append(Path(file).name)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    path = save_checkpoint(tmp_path / "last.safetensors", {"model.w": torch.ones(1000)}, {"engine": "text"})
    monkeypatch.undo()
    assert len(created) == 1 and created[0].startswith(".last.safetensors.") and created[0].endswith(".tmp")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
    assert torch.equal(load_checkpoint(path, prefix="model.")[0]["w"], torch.ones(1000))


def test_a_kill_during_a_save_leaves_one_temporary_which_the_next_start_removes(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "last.safetensors", {"model.w": torch.zeros(4)}, {"engine": "text", "step": 1})
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal, torch
        from engines.core import checkpoint
        def dies_midway(tensors, filename, metadata):
            with open(filename, "xb") as f:
                f.write(b"half a checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.save_file = dies_midway
        checkpoint.save_checkpoint({str(run / 'last.safetensors')!r}, {{"model.w": torch.ones(4)}}, {{"engine": "text"}})
        """)], cwd=ROOT)
    assert killed.returncode == -9
    left = sorted(p.name for p in run.iterdir())
    assert len(left) == 2 and left[0].startswith(".last.safetensors.") and left[0].endswith(".tmp")
    assert read_meta(run / "last.safetensors")["step"] == 1          # the previous checkpoint is intact

    # an older studio's leftovers (safetensors' own temporaries) go too; nothing else is touched
    for name in (".tmpAb12Cd", "notes.tmp", ".tmp", ".lock", "best.safetensors"):
        (run / name).write_bytes(b"x")
    removed = remove_stale_temporaries(run)
    assert sorted(p.name for p in removed) == sorted([left[0], ".tmpAb12Cd"])
    assert sorted(p.name for p in run.iterdir()) == [".lock", ".tmp", "best.safetensors", "last.safetensors", "notes.tmp"]
    assert remove_stale_temporaries(tmp_path / "not-yet-made") == []


# --- a full disk ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MB filesystem (tmpfs), so a write fails with the kernel's own ENOSPC."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command here")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_real_full_disk_gives_a_clear_error_and_keeps_the_checkpoint(tiny_disk):
    path = tiny_disk / "last.safetensors"
    save_checkpoint(path, {"model.w": torch.zeros(100_000)}, {"engine": "text", "step": 7})     # 400 kB
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"could not save .*last.safetensors: the disk is full") as err:
        save_checkpoint(path, {"model.w": torch.ones(200_000)}, {"engine": "text", "step": 8})   # 800 kB
    assert isinstance(err.value, OSError) and "intact" in str(err.value)
    assert path.read_bytes() == before and read_meta(path)["step"] == 7
    assert [p.name for p in tiny_disk.iterdir()] == ["last.safetensors"]      # the partial temporary is gone


def test_a_failing_write_gives_the_same_clear_error(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "best.safetensors", {"model.w": torch.zeros(10)}, {"engine": "text", "step": 3})

    def no_space(fd):       # some filesystems (NFS, ext4 with delayed allocation) only say so at fsync
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "fsync", no_space)
    with pytest.raises(CheckpointError, match="the disk is full .*free some space"):
        save_checkpoint(path, {"model.w": torch.ones(10)}, {"engine": "text", "step": 4})
    monkeypatch.undo()
    assert read_meta(path)["step"] == 3 and [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]

    def forbidden(fd):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(checkpoint.os, "fsync", forbidden)
    with pytest.raises(CheckpointError, match="could not save .*: Permission denied"):
        save_checkpoint(path, {"model.w": torch.ones(10)}, {"engine": "text", "step": 4})


def test_a_training_run_that_fills_the_disk_stops_with_the_message_and_a_loadable_checkpoint(tiny_disk):
    engine = TextEngine()
    corpus = engine.read_corpus(write_corpus(tiny_disk.parent / "corpus.txt"))
    run = tiny_disk / "run"
    events = train(engine, corpus, run, device="cpu", previews=False,
                   recipes=recipes(tiny_model(), tiny_train(60, eval_interval=20)))
    with pytest.raises(CheckpointError, match="the disk is full"):
        for _ in events:
            pass
    saved = read_meta(run / "last.safetensors")           # the last save that fitted, whole and readable
    assert saved["step"] in (0, 20, 40)
    load_checkpoint(run / "last.safetensors")
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]

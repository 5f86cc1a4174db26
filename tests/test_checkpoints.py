"""Checkpoint files: safe to open, refused clearly when wrong, never half-written."""
import json

import pytest
import torch
from safetensors.torch import save_file

from engines.core import checkpoint
from engines.core.checkpoint import load_checkpoint, read_meta, save_checkpoint
from engines.core.errors import CheckpointError
from engines.core.trainer import load_model
from engines.text import TextEngine


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    meta = {"engine": "text", "engine_version": 1, "step": 5}
    save_checkpoint(path, {"model.w": torch.arange(6.0).view(2, 3)}, meta)
    return path


def test_round_trip(saved):
    tensors, meta = load_checkpoint(saved, engine="text", prefix="model.")
    assert torch.equal(tensors["w"], torch.arange(6.0).view(2, 3))
    assert meta["step"] == 5 and meta["format_version"] == checkpoint.FORMAT_VERSION


def test_truncated_checkpoint(saved, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(saved.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_meta(broken)          # caught from the header alone, as the model library does
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_meta(garbage)
    # headers that are JSON but not a table, or a studio header that is not one: refused, not a crash
    for i, header in enumerate([b"[1, 2]", b'{"__metadata__": [1]}', b'{"__metadata__": {"studio": "[3]"}}']):
        odd = tmp_path / f"odd-{i}.safetensors"
        odd.write_bytes(len(header).to_bytes(8, "little") + header)
        with pytest.raises(CheckpointError, match="not a readable checkpoint|damaged header"):
            read_meta(odd)
    huge = tmp_path / "huge.safetensors"           # claims a header of 200 MB, and is that long: not read
    with open(huge, "wb") as f:
        f.write((200_000_000).to_bytes(8, "little"))
        f.truncate(200_000_016)
    with pytest.raises(CheckpointError, match="over 100 MB"):
        read_meta(huge)



def test_a_header_changed_after_saving_is_refused_as_damaged(saved, tmp_path):
    """Still valid JSON, so only the recorded digest tells: without it an engine would meet a missing key."""
    data = saved.read_bytes()
    edited = tmp_path / "edited.safetensors"
    edited.write_bytes(data.replace(b'\\"step\\": 5', b'\\"stop\\": 5'))
    assert edited.read_bytes() != data
    with pytest.raises(CheckpointError, match="damaged header .it was changed after it was saved"):
        read_meta(edited)


def test_weights_that_are_not_numbers_are_refused(tmp_path):
    path = tmp_path / "diverged.safetensors"
    save_checkpoint(path, {"model.w": torch.tensor([1.0, float("nan")]), "model.step": torch.tensor([3])},
                    {"engine": "text", "step": 1})
    with pytest.raises(CheckpointError, match=r"not numbers \(NaN or infinite: w\)"):
        load_checkpoint(path, prefix="model.")


def test_checkpoint_of_another_engine(saved):
    with pytest.raises(CheckpointError, match="checkpoint of the 'text' engine, not 'audio'"):
        read_meta(saved, engine="audio")


def test_other_format_version_and_foreign_safetensors(tmp_path):
    future = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(1)}, str(future), metadata={"studio": json.dumps(
        {"format": checkpoint.FORMAT, "format_version": 99, "engine": "text"})})
    with pytest.raises(CheckpointError, match="format 99"):
        read_meta(future)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a Sequence Studio checkpoint"):
        read_meta(foreign)


def test_newer_engine_version_is_refused(tmp_path):
    path = tmp_path / "v2.safetensors"
    save_checkpoint(path, {"model.w": torch.zeros(1)}, {"engine": "text", "engine_version": 2,
                                                         "model_config": {}, "corpus": {"vocab": "ab"}})
    with pytest.raises(CheckpointError, match="version 2 of the text engine"):
        load_model(TextEngine(), path)


def test_a_header_without_model_settings_is_refused(saved):
    with pytest.raises(CheckpointError, match="header has no model_config or corpus: it was not written by"):
        load_model(TextEngine(), saved)


def test_a_failed_write_leaves_the_old_checkpoint_intact(saved, monkeypatch):
    before = saved.read_bytes()

    def crash(tensors, filename, metadata):
        with open(filename, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError):
        save_checkpoint(saved, {"model.w": torch.ones(3)}, {"engine": "text"})
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]   # no temporary left behind


class Booby:
    """Unpickling this would create the file named in it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled-code-ran"
    path = tmp_path / "pickled.safetensors"
    torch.save({"w": torch.zeros(1), "trap": Booby(marker)}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        read_meta(path)
    assert not marker.exists()

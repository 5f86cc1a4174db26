"""Training under torchrun (DDP over Gloo on the CPU): ranks share the work, rank 0 alone saves and logs."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engines.core.checkpoint import read_meta


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")
def test_two_ranks_train_and_rank_zero_checkpoints(corpus_file, tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "run"
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "studio", "train", "text",
                             "--data", str(corpus_file), "--preset", "tiny", "--out", str(out), "--steps", "30",
                             "--set", "train.eval_interval=15", "--device", "cpu", "--no-preview"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = read_meta(out / "last.safetensors")
    assert meta["step"] == 30 and meta["history"]["val_losses"][-1] < meta["history"]["val_losses"][0]
    assert result.stderr.count("completed at step 30") == 1          # one rank reports
    saved = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))    # .lock: one run at a time
    assert saved == ["best.safetensors", "last.safetensors"]

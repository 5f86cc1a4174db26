"""The video engine through the CLI, as a user runs it: train both stages on the built-in moving digits, sample
a clip primed by a video file past the trained length into an MP4, train one stage at a time.
Each `studio` call is a new process (a few seconds of imports): the calls are kept few."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.video import VideoEngine


MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "mnist_t10k"
needs_mnist = pytest.mark.skipif(not MNIST.exists(), reason=f"moving digits need the MNIST digits in {MNIST} "
                                                            f"(../shared is absent)")
TINY = ["--preset", "tiny", "--device", "cpu", "--set", "train.eval_interval=10"]


def studio(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                            timeout=600, env={"OMP_NUM_THREADS": "1", **os.environ})
    if check and result.returncode != 0:
        raise AssertionError(f"studio {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def square_gif(path: Path, frames: int = 8) -> Path:
    """A white square moving right, 10 fps."""
    from PIL import Image
    images = []
    for i in range(frames):
        picture = np.zeros((32, 32), np.uint8)
        picture[8:20, 2 * i:2 * i + 12] = 255
        images.append(Image.fromarray(picture))
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


@needs_mnist
def test_train_then_sample_a_primed_clip_past_the_trained_length(tmp_path):
    import av
    run = tmp_path / "run"
    trained = studio("train", "video", "--data", "moving-digits", "--out", run, "--steps", 20, *TINY)
    log = trained.stderr
    assert "corpus: moving digits (built in)" in log and "MNIST" in log
    assert "stage 1/2: tokenizer" in log and "stage 2/2: prior" in log and "loss in nats/token" in log
    assert "psnr" in log and " dB" in log and "unused" in log and "bits/token" in log
    assert (run / "prior" / "best.safetensors").exists()
    info = json.loads(studio("info", run).stdout)["stages"]
    assert sorted(info) == ["prior", "tokenizer"] and info["prior"]["file"].endswith("prior/best.safetensors")

    out = tmp_path / "x.mp4"
    primer = square_gif(tmp_path / "primer.gif")
    sampled = studio("sample", "video", "--checkpoint", run, "--frames", 16, "--primer", primer, "--primer-frames", 4,
                     "--seed", 3, "--top-k", 8, "--out", out)
    assert "past the 8 this model was trained on" in sampled.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 10.0 and sum(1 for _ in container.decode(stream)) == 16
    settings = json.loads((tmp_path / "x.mp4.json").read_text())
    assert settings["engine"] == "video" and settings["seed"] == 3 and settings["primer_frames"] == 4

    no_out = studio("sample", "video", "--checkpoint", run, check=False)
    assert no_out.returncode == 2 and "add --out FILE (.mp4 or .gif or .png)" in no_out.stderr


@needs_mnist
def test_one_stage_at_a_time_and_a_fine_tune_of_the_last(tmp_path):
    run = tmp_path / "run"
    first = studio("train", "video", "--data", "moving-digits", "--out", run, "--steps", 10, "--stage", "tokenizer",
                   "--no-preview", *TINY)
    assert "stage 1/2: tokenizer" in first.stderr and "prior" not in first.stderr.split("stage 1/2")[1]
    second = studio("train", "video", "--data", "moving-digits", "--out", run, "--steps", 10, "--stage", "prior",
                    "--no-preview", *TINY)
    assert "stage 2/2: prior" in second.stderr and "completed at step 10" in second.stderr
    tuned = studio("train", "video", "--data", "moving-digits", "--out", tmp_path / "tuned", "--from", run,
                   "--steps", 5, "--no-preview", *TINY)     # fine-tuning: the prior, on the tokenizer it holds
    assert "stage 1/2" not in tuned.stderr and "stage 2/2: prior" in tuned.stderr
    assert (tmp_path / "tuned" / "prior").is_dir() and not (tmp_path / "tuned" / "tokenizer").exists()


def test_the_built_in_data_set_is_discoverable():
    listed = studio("engines").stdout
    assert "--data moving-digits" in listed and "preset digits" in listed


def test_the_bundled_model_samples_without_a_checkpoint(tmp_path):
    import av
    assert VideoEngine().bundled_models(), "the bundled moving-digits model is missing from assets/video/"
    out = tmp_path / "digits.mp4"
    studio("sample", "video", "--frames", 4, "--seed", 1, "--out", out)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4

"""The headless CLI, run as a user runs it: in a subprocess."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engines.text import TextEngine


def studio(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"studio {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def test_train_then_sample_then_eval(corpus_file, tmp_path):
    run = tmp_path / "run"
    trained = studio("train", "text", "--data", corpus_file, "--preset", "tiny", "--out", run, "--steps", 40,
                     "--set", "train.eval_interval=20", "--device", "cpu")
    assert "validation loss" in trained.stderr and (run / "best.safetensors").exists()

    out = tmp_path / "sample.txt"
    sampled = studio("sample", "text", "--checkpoint", run, "--length", 60, "--seed", 5, "--primer", "ROMEO:",
                     "--temperature", 0.7, "--top-k", 10, "--out", out)
    assert sampled.stdout.startswith("ROMEO:") and len(sampled.stdout.rstrip("\n")) >= 60
    assert out.read_text(encoding="utf-8") == sampled.stdout[:-1]
    settings = json.loads((tmp_path / "sample.txt.json").read_text())
    assert settings["seed"] == 5 and settings["top_k"] == 10 and settings["engine"] == "text"

    again = studio("sample", "text", "--checkpoint", run, "--length", 60, "--seed", 5, "--primer", "ROMEO:",
                   "--temperature", 0.7, "--top-k", 10)
    assert again.stdout == sampled.stdout

    evaluated = studio("eval", "text", "--checkpoint", run, "--data", corpus_file, "--split", "validation")
    assert float(evaluated.stdout.split()[0]) < 3.0

    resumed = studio("train", "text", "--data", corpus_file, "--preset", "tiny", "--out", run, "--steps", 60,
                     "--resume", "--no-preview", "--device", "cpu")
    assert "completed at step 60" in resumed.stderr


def test_bundled_model_samples_without_a_checkpoint():
    assert TextEngine().bundled_models(), "the bundled text model is missing from assets/text/"
    result = studio("sample", "text", "--length", 40, "--seed", 1)
    assert len(result.stdout.strip()) > 0


@pytest.mark.parametrize("args, message", [
    (["train", "text", "--data", "/no/such/file.txt", "--out", "{tmp}/r"], "does not exist"),
    (["sample", "text", "--checkpoint", "{tmp}/missing"], "does not exist"),
    (["sample", "text", "--temperature", "9"], "outside"),
    (["sample", "audio", "--seconds", "1"], "add --out FILE (.wav or .flac)"),
    (["sample", "audio", "--label", "11", "--out", "{tmp}/x.wav"], "label '11' is not a label this model knows"),
    (["sample", "audio", "--seconds", "600", "--out", "{tmp}/x.mp3"], "name a .wav or .flac file"),   # at once
    (["sample", "audio", "--seconds", "600", "--out", "{tmp}/no/such/x.wav"], "cannot save to"),     # at once too
    (["train", "text", "--data", "{tmp}", "--out", "{tmp}/r", "--preset", "huge"], "no preset 'huge'"),
    (["train", "text", "--data", "{tmp}", "--out", sys.executable], "is a file: a run's checkpoints go in a folder"),
    (["train", "text", "--data", "{tmp}", "--out", sys.executable + "/run"], "is a file: a run's checkpoints go in"),
])
def test_errors_are_one_readable_line(tmp_path, args, message):
    result = studio(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_the_out_check_opens_nothing(tmp_path):
    """--out is checked before a sample is made, without touching what is there: a link stays a link (its
    target is not made), a named pipe is not opened (that would hang, or hand its reader an empty file)."""
    from engines.core.errors import StudioError
    from studio.cli import can_write
    link = tmp_path / "out.svg"
    link.symlink_to(tmp_path / "target.svg")
    can_write(link)
    assert link.is_symlink() and not (tmp_path / "target.svg").exists()
    os.mkfifo(tmp_path / "pipe.txt")
    can_write(tmp_path / "pipe.txt")
    (tmp_path / "folder.svg").mkdir()
    for path, why in [(tmp_path / "no" / "x.svg", "the folder .* does not exist"),
                      (tmp_path / "folder.svg", "it is a folder")]:
        with pytest.raises(StudioError, match=f"cannot save to .*: {why}"):
            can_write(path)


def test_help_lists_every_sampling_control():
    text = studio("sample", "text", "--help").stdout
    for flag in ("--primer", "--length", "--temperature", "--top-k", "--top-p", "--seed", "--variations",
                 "--stop", "--checkpoint", "--out", "--device"):
        assert flag in text
    assert "--resume" in studio("train", "--help").stdout


def test_ctrl_c_saves_a_resumable_checkpoint(corpus_file, tmp_path):
    import signal
    from engines.core.checkpoint import read_meta
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "studio", "train", "text", "--data", str(corpus_file),
                             "--preset", "tiny", "--out", str(run), "--steps", "100000", "--no-preview",
                             "--device", "cpu", "--set", "train.log_interval=1"],
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("step 5/"):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "--resume" in rest and "Traceback" not in rest
    step = read_meta(run / "last.safetensors")["step"]
    assert step >= 5
    resumed = studio("train", "text", "--data", corpus_file, "--out", run, "--resume", "--steps", step + 10,
                     "--no-preview", "--device", "cpu")
    assert f"completed at step {step + 10}" in resumed.stderr


def test_audio_train_then_sample_a_label_to_wav(audio_corpus, tmp_path):
    import soundfile as sf
    run = tmp_path / "run"
    trained = studio("train", "audio", "--data", audio_corpus, "--preset", "tiny", "--out", run, "--steps", 30,
                     "--set", "train.eval_interval=15", "--device", "cpu")
    assert "kept" in trained.stderr and "validation loss" in trained.stderr
    out = tmp_path / "low.wav"
    sampled = studio("sample", "audio", "--checkpoint", run, "--seconds", 0.5, "--seed", 3, "--label", "low",
                     "--out", out)
    assert "folder=low" in sampled.stderr
    audio, rate = sf.read(out)
    assert rate == 8000 and len(audio) == 4000
    studio("sample", "audio", "--checkpoint", run, "--seconds", 0.5, "--seed", 3, "--label", "low",
           "--out", tmp_path / "again.flac")
    assert np.abs(sf.read(tmp_path / "again.flac")[0] - audio).max() <= 1 / 32768    # same seed, same sound (to 16 bits)
    evaluated = studio("eval", "audio", "--checkpoint", run, "--data", audio_corpus)
    assert "bits/sample" in evaluated.stdout


def test_bundled_audio_model_says_a_digit_without_a_checkpoint(tmp_path):
    import soundfile as sf
    from engines.audio import AudioEngine
    assert AudioEngine().bundled_models(), "the bundled audio model is missing from assets/audio/"
    out = tmp_path / "seven.wav"
    result = studio("sample", "audio", "--seconds", 0.4, "--seed", 1, "--label", "7 jackson", "--out", out)
    assert "digit=7 speaker=jackson" in result.stderr
    assert sf.info(out).duration == pytest.approx(0.4)

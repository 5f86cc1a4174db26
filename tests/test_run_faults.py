"""What a user hits with bad flags, a changed corpus, two runs in one folder, Ctrl-C and pipes (issue 12):
each refused or handled with a clear message, nothing lost."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engines.core.checkpoint import read_meta
from engines.core.lock import run_folder_lock
from engines.core.trainer import lr_at, sampling_checkpoint
from engines.text import TextEngine
from helpers import events_until, studio, tiny_train, train_tiny

from conftest import write_corpus


@pytest.mark.parametrize("flags, message", [
    (["--data", ""], "--data is empty"), (["--data", "  "], "--data is empty"),
    (["--steps", "0"], "--steps must be at least 1"), (["--steps", "-5"], "--steps must be at least 1"),
    (["--set", "train.lr=-1"], "train.lr must be above 0"), (["--set", "model.n_layer=0"], "at least 1"),
    (["--set", "model.dropout=nan"], "not a valid float"), (["--set", "train.batch_size=2.5"], "not a valid int"),
    (["--data", "/nowhere", "--device", "cuda"], "device 'cuda' is not available"),   # before the corpus is read
])
def test_bad_training_flags_are_refused_before_anything_is_written(capsys, corpus_file, tmp_path, flags, message):
    args = ["train", "text", "--data", corpus_file, "--out", tmp_path / "run", *flags]
    if "cuda" in flags:
        pytest.importorskip("torch")
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    code, text = studio(capsys, *args)
    assert code == 2 and message in text and "Traceback" not in text
    assert not (tmp_path / "run").exists()


def test_sampling_errors_name_the_flag(capsys):
    code, text = studio(capsys, "sample", "audio", "--seconds", "nan", "--out", "x.wav")
    assert code == 2 and "--seconds: nan is not a finite number" in text


def test_resume_refuses_a_changed_corpus_unless_told(capsys, tmp_path):
    corpus = write_corpus(tmp_path / "a.txt", seed=1)
    assert train_tiny(capsys, corpus, tmp_path / "run", "--steps", 20)[0] == 0
    write_corpus(corpus, seed=2)                       # same alphabet, different text
    code, text = train_tiny(capsys, corpus, tmp_path / "run", "--resume", "--steps", 40)
    assert code == 2 and "the corpus changed" in text and "--new-data" in text
    assert read_meta(tmp_path / "run" / "last.safetensors")["step"] == 20
    code, text = train_tiny(capsys, corpus, tmp_path / "run", "--resume", "--steps", 40, "--new-data")
    assert code == 0 and read_meta(tmp_path / "run" / "last.safetensors")["step"] == 40


def test_a_run_stopped_before_its_next_validation_samples_its_last_steps(corpus_file, tmp_path):
    from engines.core.trainer import prepare_run, train
    engine = TextEngine()
    corpus, recipes, _ = prepare_run(engine, corpus_file, tmp_path / "run", "tiny")
    events = train(engine, corpus, tmp_path / "run", recipes=recipes, device="cpu", previews=False)
    events_until(events, ("model", 12))
    assert not (tmp_path / "run" / "best.safetensors").exists()      # step 0's random weights are not "best"
    assert sampling_checkpoint(engine, tmp_path / "run").name == "last.safetensors"


def test_a_sample_that_fails_is_said_and_the_training_goes_on(corpus_file, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise KeyError("dots")
    monkeypatch.setattr(TextEngine, "generate", broken)
    code, out = studio(capsys, "train", "text", "--data", corpus_file, "--preset", "tiny", "--steps", 30,
                       "--set", "train.eval_interval=15", "--out", tmp_path / "run")
    assert code == 0, out
    assert "no sample at step 15 (training goes on): KeyError: 'dots'" in out
    assert read_meta(tmp_path / "run" / "last.safetensors")["step"] == 30


def test_info_says_which_file_it_read(capsys, corpus_file, tmp_path):
    train_tiny(capsys, corpus_file, tmp_path / "run", "--steps", 10)
    code, text = studio(capsys, "info", tmp_path / "run")
    assert code == 0 and f'"file": "{tmp_path / "run" / "best.safetensors"}"' in text


def test_short_runs_leave_warm_up_and_extensions_do_not_raise_the_rate():
    cfg = tiny_train(3, warmup_steps=200, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, cfg, 3) == pytest.approx(1.0)                        # no 200-step warm-up in a 3-step run
    finished = lr_at(100, cfg, 100)
    assert all(lr_at(s, cfg, 200, [100, finished]) <= finished + 1e-12 for s in range(100, 200))


def test_resume_refuses_fewer_steps_than_done_and_says_where_it_resumes(capsys, corpus_file, tmp_path):
    train_tiny(capsys, corpus_file, tmp_path / "run", "--steps", 20)
    code, text = train_tiny(capsys, corpus_file, tmp_path / "run", "--resume", "--steps", 10)
    assert code == 2 and "already at step 20" in text
    code, text = train_tiny(capsys, corpus_file, tmp_path / "run", "--resume", "--steps", 30)
    assert code == 0 and "resuming from step 20 of 30" in text


def test_a_second_training_into_a_busy_folder_is_refused(capsys, corpus_file, tmp_path):
    with run_folder_lock(tmp_path / "run"):
        code = subprocess.run([sys.executable, "-m", "studio", "train", "text", "--data", corpus_file, "--out",
                               tmp_path / "run", "--preset", "tiny", "--steps", "5"], capture_output=True, text=True)
        assert (tmp_path / "run" / ".lock").exists()        # the refused run left the lock it did not hold
    assert code.returncode == 2 and f"is being trained by process {os.getpid()}" in code.stderr
    assert not (tmp_path / "run" / "last.safetensors").exists()
    assert train_tiny(capsys, corpus_file, tmp_path / "run", "--steps", 5)[0] == 0   # free again



def test_a_run_that_saved_nothing_leaves_no_folder_of_its_own(tmp_path):
    with pytest.raises(MemoryError):
        with run_folder_lock(tmp_path / "run"):
            raise MemoryError           # e.g. the model did not fit, before its first checkpoint
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()
    with run_folder_lock(tmp_path / "mine"):
        pass
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())    # the user's own folder stays


def start_training(corpus, out):
    process = subprocess.Popen([sys.executable, "-m", "studio", "train", "text", "--data", corpus, "--out", out,
                                "--preset", "tiny", "--steps", "100000", "--no-preview", "--device", "cpu"],
                               stderr=subprocess.PIPE, text=True)
    for line in process.stderr:              # wait until it is training
        if line.startswith("step 3"):
            return process
    raise AssertionError("training did not start")


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_saves_and_exits_without_a_traceback(corpus_file, tmp_path, presses):
    process = start_training(corpus_file, tmp_path / "run")
    for _ in range(presses):
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130 and "Traceback" not in rest
    step = read_meta(tmp_path / "run" / "last.safetensors")["step"]
    assert step >= (3 if presses == 1 else 0)


def test_a_closed_pipe_ends_info_quietly(corpus_file, tmp_path, capsys):
    train_tiny(capsys, corpus_file, tmp_path / "run", "--steps", 5)
    done = subprocess.run(f"{sys.executable} -m studio info {tmp_path / 'run'} | head -c 20", shell=True,
                          capture_output=True, text=True)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_the_corpus_fingerprint_covers_what_the_readers_read_and_not_hidden_folders(tmp_path):
    from engines.core.fingerprint import corpus_fingerprint
    (tmp_path / "poems").mkdir()
    (tmp_path / "poems" / "a.txt").write_text("a rose is a rose\n")
    before = corpus_fingerprint(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_bytes(b"\0" * 4096)      # a repository, a venv: never read as corpus
    assert corpus_fingerprint(tmp_path) == before
    (tmp_path / "poems" / "a.txt").write_text("a rose is a rose is a rose\n")
    assert corpus_fingerprint(tmp_path)["sha256"] != before["sha256"]


def test_a_glob_is_fingerprinted_as_checkpoints_recorded_it_and_a_bracketed_folder_is_a_folder(tmp_path,
                                                                                                 monkeypatch):
    import hashlib
    from engines.core.fingerprint import corpus_files, corpus_fingerprint
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "b.txt").write_text("bee\n")
    # a glob's files by the names the glob gives them (relative to the working folder), as in every checkpoint
    # written so far: a run resumed on the same glob must find the same corpus
    expected = hashlib.sha256(b"data/sub/b.txt\x004\x00bee\n").hexdigest()
    assert corpus_fingerprint("data/**/*.txt") == {"files": 1, "bytes": 4, "sha256": expected}
    assert corpus_files("data/**/*.txt") == (Path("data"), [Path("data/sub/b.txt")])
    (tmp_path / "Holiday [2019]").mkdir()                        # a folder, however much it looks like a pattern
    (tmp_path / "Holiday [2019]" / "a.txt").write_text("sun\n")
    assert corpus_files("Holiday [2019]")[1] == [Path("Holiday [2019]") / "a.txt"]

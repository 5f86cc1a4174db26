"""Staged training through a tiny two-stage engine (tests/two_stage_engine.py): a tokenizer, then a prior
over its frozen codes, each resumed exactly, the later one standing alone."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engines.core.checkpoint import load_checkpoint, read_meta, run_engine
from engines.core.errors import CheckpointError, ConfigError
from engines.core.events import STEPS_FROM_THE_CLOCK, Evaluation, Finished, StageStarted
from engines.core.interface import resolve_settings
from engines.core.trainer import load_model, prepare_run, train
from helpers import events_until
from two_stage_engine import PointsCorpus, TwoStageEngine

ENGINE = TwoStageEngine()


def run(out, stage=None, resume=False, stop=None, seed=0):
    """Train; stop=(stage, step) stops like the Stop button (closes the generator) after that step."""
    events = train(ENGINE, PointsCorpus(), out, recipes=ENGINE.preset("tiny").stages, stage=stage, resume=resume,
                   device="cpu", seed=seed)
    return events_until(events, stop)


def weights(path):
    return load_checkpoint(path, prefix="model.")[0]


def assert_same_weights(a, b):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_stages_train_in_order_and_each_learns(tmp_path):
    events = run(tmp_path / "run")
    assert [(e.stage, e.index, e.count) for e in events if isinstance(e, StageStarted)] == [
        ("tokenizer", 1, 2), ("prior", 2, 2)]
    for stage in ("tokenizer", "prior"):
        vals = [e for e in events if isinstance(e, Evaluation) and e.stage == stage]
        assert vals[-1].val_loss < 0.5 * vals[0].val_loss, stage
    evals = [e for e in events if isinstance(e, Evaluation)]
    assert {e.loss_unit for e in evals} == {"MSE", "nats/code"}
    assert evals[-1].metrics["bits"][1] == "bits/code" and evals[0].metrics["perplexity"][1] == "codes"
    assert all(200 <= e.units < 200 + 8 * 16 for e in evals)          # the validation budget, not the split
    assert isinstance(events[-1], Finished) and events[-1].stage == "prior"
    header = read_meta(tmp_path / "run" / "prior" / "best.safetensors")
    assert header["stage"] == "prior" and header["builds_on"]["stage"] == "tokenizer"
    assert header["metrics"]["loss_unit"] == "nats/code"


def test_the_frozen_stage_does_not_move_while_the_next_trains(tmp_path):
    run(tmp_path / "run")
    tokenizer = weights(tmp_path / "run" / "tokenizer" / "best.safetensors")
    inside = {k.removeprefix("tokenizer.module."): v
              for k, v in weights(tmp_path / "run" / "prior" / "last.safetensors").items() if k.startswith("tokenizer.")}
    assert inside.keys() == tokenizer.keys() and "codebook" in inside   # the EMA codebook stayed put too
    for name in inside:
        assert torch.equal(inside[name], tokenizer[name]), name


@pytest.mark.parametrize("stop", [("tokenizer", 15), ("prior", 25)])
def test_resume_is_exact_in_each_stage(tmp_path, stop):
    run(tmp_path / "straight")
    run(tmp_path / "stopped", stop=stop)
    assert read_meta(tmp_path / "stopped" / stop[0] / "last.safetensors")["step"] == stop[1]
    run(tmp_path / "stopped", resume=True)
    for stage in ("tokenizer", "prior"):
        assert_same_weights(tmp_path / "straight" / stage / "last.safetensors",
                            tmp_path / "stopped" / stage / "last.safetensors")


def test_a_run_stopped_in_its_first_stage_trains_the_next_as_it_planned_it(tmp_path):
    """`studio train --resume` names neither preset nor settings: the stage not started yet is trained with the
    run's own preset, --steps, --set and seed, as a run never stopped trains it, not with the engine's default."""
    data = tmp_path / "data"
    data.mkdir()

    def start(out, stop=None):
        corpus, recipes, name = prepare_run(ENGINE, data, out, preset="wide", max_steps=30,
                                            overrides={"prior": {"train": {"lr": 3e-3}}})
        events_until(train(ENGINE, corpus, out, recipes=recipes, preset=name, device="cpu", seed=7), stop)
    start(tmp_path / "straight")
    start(tmp_path / "stopped", stop=("tokenizer", 10))
    corpus, recipes, name = prepare_run(ENGINE, data, tmp_path / "stopped", resume=True)
    assert name == "wide" and recipes["prior"].model == {"hidden": 48}
    assert (recipes["prior"].train.lr, recipes["prior"].train.max_steps) == (3e-3, 30)
    events_until(train(ENGINE, corpus, tmp_path / "stopped", recipes=recipes, preset=name, resume=True, device="cpu"))
    assert read_meta(tmp_path / "stopped" / "prior" / "last.safetensors")["seed"] == 7
    assert_same_weights(tmp_path / "straight" / "prior" / "last.safetensors",
                        tmp_path / "stopped" / "prior" / "last.safetensors")


def test_a_stage_planned_on_a_time_budget_and_resumed_without_one_takes_its_presets_steps(tmp_path):
    """A run given minutes has no step count for its later stages; resumed without minutes (as Ctrl-C's printed
    command does), the prior trains its preset's steps, not the clock's stand-in of 10**9."""
    data = tmp_path / "data"
    data.mkdir()
    corpus, recipes, name = prepare_run(ENGINE, data, tmp_path / "run", preset="wide", max_steps=STEPS_FROM_THE_CLOCK)
    events_until(train(ENGINE, corpus, tmp_path / "run", recipes=recipes, preset=name, device="cpu", minutes=5),
                 ("tokenizer", 5))
    corpus, recipes, name = prepare_run(ENGINE, data, tmp_path / "run", resume=True)
    assert recipes["prior"].train.max_steps == ENGINE.preset("wide").stages["prior"].train.max_steps
    with pytest.raises(ConfigError, match="started with the preset 'wide'.*leave out the preset 'tiny'"):
        prepare_run(ENGINE, data, tmp_path / "run", preset="tiny", resume=True)


def test_another_engines_run_folder_is_named_as_such(tmp_path):
    from engines.text import TextEngine
    run(tmp_path / "run", stop=("tokenizer", 3))
    with pytest.raises(ConfigError, match="holds a run of the twostage engine: train the text engine into another"):
        prepare_run(TextEngine(), tmp_path / "corpus.txt", tmp_path / "run")
    with pytest.raises(CheckpointError, match="no last.safetensors of the text engine .it holds a twostage run"):
        prepare_run(TextEngine(), tmp_path / "corpus.txt", tmp_path / "run", resume=True)
    with pytest.raises(CheckpointError, match="holds a run of the 'twostage' engine, in stage folders"):
        load_model(TextEngine(), tmp_path / "run")
    (tmp_path / "runs").mkdir()                         # a folder of runs, each in its own folder, is not a run
    shutil.copytree(tmp_path / "run" / "tokenizer", tmp_path / "runs" / "mine")
    assert run_engine(tmp_path / "runs") is None and run_engine(tmp_path / "run") == "twostage"


def test_stages_can_be_trained_one_at_a_time(tmp_path):
    with pytest.raises(ConfigError, match="train that first"):
        run(tmp_path / "run", stage="prior")
    run(tmp_path / "run", stage="tokenizer")
    assert not (tmp_path / "run" / "prior").exists()
    with pytest.raises(CheckpointError, match="the prior stage of .* has not started; start it without --resume"):
        run(tmp_path / "run", stage="prior", resume=True)
    run(tmp_path / "run", stage="prior")
    run(tmp_path / "straight")
    assert_same_weights(tmp_path / "straight" / "prior" / "last.safetensors",
                        tmp_path / "run" / "prior" / "last.safetensors")


def sample(path):
    model, header = load_model(ENGINE, path)
    return [c.points for c in ENGINE.generate(model, header, resolve_settings(ENGINE.controls(), {"seed": 1}))]


def test_only_the_last_stage_samples(tmp_path):
    run(tmp_path / "run", stage="tokenizer")
    with pytest.raises(CheckpointError, match="only its last stage"):
        load_model(ENGINE, tmp_path / "run" / "tokenizer" / "best.safetensors")
    run(tmp_path / "run", stage="prior")
    assert len(sample(tmp_path / "run")) == 8          # a run folder opens its last stage


def test_renaming_or_retraining_the_first_stage_leaves_the_second_working(tmp_path):
    run(tmp_path / "run")
    before = sample(tmp_path / "run")
    shutil.move(tmp_path / "run", tmp_path / "renamed")
    assert sample(tmp_path / "renamed") == before
    shutil.rmtree(tmp_path / "renamed" / "tokenizer")
    run(tmp_path / "renamed", stage="tokenizer", seed=7)      # a different tokenizer now sits beside it
    assert sample(tmp_path / "renamed") == before


def test_a_damaged_copy_of_the_first_stage_is_caught(tmp_path):
    run(tmp_path / "run")
    path = tmp_path / "run" / "prior" / "best.safetensors"
    tensors, header = load_checkpoint(path)
    tensors["model.tokenizer.module.codebook"] += 1.0
    from engines.core.checkpoint import save_checkpoint
    header = {k: v for k, v in header.items() if k not in ("format", "format_version")}
    save_checkpoint(path, tensors, header)
    with pytest.raises(CheckpointError, match="do not match their recorded hash"):
        load_model(ENGINE, path)


def fine_tune(base, out, stop=None, resume=False, stage=None, overrides=None):
    corpus, recipes, _ = prepare_run(ENGINE, "points", out, "tiny", overrides, resume=resume,
                                     start_from=None if resume else base, device="cpu", stage=stage)
    return events_until(train(ENGINE, corpus, out, recipes=recipes, resume=resume, stage=stage, device="cpu"), stop)


def test_a_fine_tuned_run_trains_only_the_last_stage_on_the_earlier_one_it_started_from(tmp_path):
    run(tmp_path / "base")
    events = fine_tune(tmp_path / "base", tmp_path / "tuned")
    assert [(e.stage, e.index, e.count) for e in events if isinstance(e, StageStarted)] == [("prior", 2, 2)]
    assert not (tmp_path / "tuned" / "tokenizer").exists()
    base, tuned = (read_meta(tmp_path / r / "prior" / "best.safetensors") for r in ("base", "tuned"))
    assert tuned["builds_on"] == base["builds_on"] and tuned["started_from"]["step"] == base["step"]
    first = [e.val_loss for e in events if isinstance(e, Evaluation)][0]
    assert first < 0.5 * base["history"]["val_losses"][0]        # it starts where the base model left off
    tokenizer = {k: v for k, v in weights(tmp_path / "base" / "prior" / "best.safetensors").items()
                 if k.startswith("tokenizer.")}
    inside = weights(tmp_path / "tuned" / "prior" / "best.safetensors")
    assert all(torch.equal(inside[k], v) for k, v in tokenizer.items())
    assert len(sample(tmp_path / "tuned")) == 8
    with pytest.raises(ConfigError, match="trains only its 'prior' stage"):
        fine_tune(tmp_path / "base", tmp_path / "other", stage="tokenizer")
    with pytest.raises(ConfigError, match="trains only its 'prior' stage"):      # nor later, in its folder
        run(tmp_path / "tuned", stage="tokenizer")
    with pytest.raises(ConfigError, match="starts from a model that samples"):
        fine_tune(tmp_path / "base" / "tokenizer", tmp_path / "other")
    with pytest.raises(ConfigError, match="keeps the tokenizer .* settings cannot change"):
        fine_tune(tmp_path / "base", tmp_path / "other", overrides={"tokenizer": {"model": {"codes": 16}}})
    with pytest.raises(ConfigError, match="already holds a training run"):
        fine_tune(tmp_path / "base", tmp_path / "base")
    assert not (tmp_path / "other").exists()


def test_a_run_whose_last_stage_is_untrained_or_whose_held_stage_is_unrecorded_is_named_as_such(tmp_path):
    run(tmp_path / "half", stage="tokenizer")
    with pytest.raises(CheckpointError, match="'prior' stage is not trained yet"):
        fine_tune(tmp_path / "half", tmp_path / "other")
    run(tmp_path / "base")
    path = tmp_path / "base" / "prior" / "best.safetensors"
    tensors, header = load_checkpoint(path)
    header = {k: v for k, v in header.items() if k not in ("format", "format_version")}
    from engines.core.checkpoint import save_checkpoint
    save_checkpoint(path, tensors, {**header, "builds_on": None})
    with pytest.raises(CheckpointError, match="does not record the earlier stage it holds"):
        fine_tune(tmp_path / "base", tmp_path / "other")
    with pytest.raises(CheckpointError, match="does not record the earlier stage it holds"):
        load_model(ENGINE, path)


def test_a_fine_tuned_run_resumes_exactly_without_an_earlier_stage_of_its_own(tmp_path):
    run(tmp_path / "base")
    fine_tune(tmp_path / "base", tmp_path / "straight")
    fine_tune(tmp_path / "base", tmp_path / "stopped", stop=("prior", 15))
    fine_tune(tmp_path / "base", tmp_path / "stopped", resume=True)
    assert not (tmp_path / "stopped" / "tokenizer").exists()
    assert_same_weights(tmp_path / "straight" / "prior" / "last.safetensors",
                        tmp_path / "stopped" / "prior" / "last.safetensors")


def test_the_cli_trains_one_stage_at_a_time(tmp_path):
    site = tmp_path / "site"
    dist = site / "two_stage_engine-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: two-stage-engine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sequence_studio.engines]\ntwostage = two_stage_engine:TwoStageEngine\n")
    tests = Path(__file__).resolve().parent
    env = {"PYTHONPATH": f"{site}:{tests}", "PATH": "", "OMP_NUM_THREADS": "1"}   # tiny models: threads only contend

    def studio(*args):
        done = subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                              env=env, cwd=tests.parent, timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    listed = studio("engines").stdout
    assert "stages: tokenizer (tokenizer) -> prior (prior)" in listed
    out = tmp_path / "run"
    first = studio("train", "twostage", "--data", tmp_path, "--out", out, "--stage", "tokenizer", "--device", "cpu")
    assert "stage 1/2: tokenizer" in first.stderr and "MSE" in first.stderr and "perplexity" in first.stderr
    assert not (out / "prior").exists()
    second = studio("train", "twostage", "--data", tmp_path, "--out", out, "--stage", "prior",
                    "--set", "prior.train.max_steps=30", "--device", "cpu")
    assert "stage 2/2: prior, 30 steps" in second.stderr.replace(" (prior)", "")
    assert "bits/code" in second.stderr and "on 256 held-out codes" in second.stderr   # 2 batches of 8 x 16: the budget of 200, rounded up to a batch
    evaluated = studio("eval", "twostage", "--checkpoint", out, "--data", tmp_path)
    assert "nats/code" in evaluated.stdout and "bits/code" in evaluated.stdout

"""The shared training loop, exercised through the text engine: learning, exact resume, checkpoints."""
import hashlib

import pytest
import torch

from engines.core.checkpoint import load_checkpoint, read_meta
from engines.core.errors import CheckpointError, ConfigError
from engines.core.events import STEPS_FROM_THE_CLOCK
from engines.core.trainer import Evaluation, Finished, Progress, StageStarted, Validating, load_model, lr_at, train
from engines.text import TextEngine
from helpers import events_until, recipes, tiny_model, tiny_train

ENGINE = TextEngine()


def run(corpus, out, steps=40, stop_after=None, resume=False, **train_changes):
    """Train; with stop_after, stop like the Stop button does (close the generator) after that step."""
    events = train(ENGINE, corpus, out, recipes=recipes(tiny_model(), tiny_train(steps, **train_changes)),
                   resume=resume, device="cpu", seed=3, previews=False)
    return events_until(events, None if stop_after is None else ("model", stop_after))


def weights(path):
    return load_checkpoint(path, prefix="model.")[0]


def test_training_lowers_validation_loss(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    events = run(corpus, tmp_path / "run", steps=60)
    vals = [e.val_loss for e in events if isinstance(e, Evaluation)]
    assert vals[0] > 3.5                     # untrained: about ln(vocabulary)
    assert vals[-1] < 0.6 * vals[0]          # a few dozen steps learn the words
    assert isinstance(events[-1], Finished) and events[-1].reason == "completed"
    assert any(isinstance(e, Progress) and e.units_per_second > 0 and e.unit == "char" for e in events)
    assert all(e.loss_unit == "nats/char" and e.metrics["bits"][1] == "bits/char" for e in events
               if isinstance(e, Evaluation))


def test_resume_is_exact(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    run(corpus, tmp_path / "straight", steps=30)
    run(corpus, tmp_path / "stopped", steps=30, stop_after=15)
    assert read_meta(tmp_path / "stopped" / "last.safetensors")["step"] == 15
    run(corpus, tmp_path / "stopped", steps=30, resume=True)
    a, b = weights(tmp_path / "straight" / "last.safetensors"), weights(tmp_path / "stopped" / "last.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_checkpoint_loads_on_cpu_and_gives_the_same_outputs(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    run(corpus, tmp_path / "run", steps=20)
    model, meta = load_model(ENGINE, tmp_path / "run", "cpu")
    again, _ = load_model(ENGINE, tmp_path / "run" / "best.safetensors", "cpu")
    x = torch.randint(0, len(meta["corpus"]["vocab"]), (2, 16))
    assert torch.equal(model(x)[0], again(x)[0])
    assert meta["engine"] == "text" and meta["step"] == 20 and meta["metrics"]["best_val_loss"] < 4
    assert not any(k.startswith("optim.") for k in load_checkpoint(tmp_path / "run" / "best.safetensors")[0])


def test_time_budget_fixes_a_step_budget(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    events = train(ENGINE, corpus, tmp_path / "run", recipes=recipes(tiny_model(), tiny_train(STEPS_FROM_THE_CLOCK)),
                   device="cpu", minutes=0.1, previews=False)
    events = list(events)
    assert events[-1].reason in ("completed", "time limit")
    meta = read_meta(tmp_path / "run" / "last.safetensors")
    # fitted after 20 steps; on a machine so busy that time ran out first, the steps it did
    assert meta["max_steps"] < 10**6 and meta["max_steps"] >= meta["step"]
    # the placeholder is never shown: "not known yet" until the fit, the fitted number after it
    progress = [e for e in events if isinstance(e, Progress)]
    assert {e.max_steps for e in progress if e.step < 20} == {0}
    assert {e.max_steps for e in progress if e.step >= 20} <= {meta["max_steps"]}


def test_a_time_budget_spent_before_the_speed_is_known_ends_the_run_where_it_stands(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    events = list(train(ENGINE, corpus, tmp_path / "run",
                        recipes=recipes(tiny_model(), tiny_train(STEPS_FROM_THE_CLOCK)),   # as --minutes sets it
                        device="cpu", minutes=1e-5, previews=False))       # gone during the step-0 validation
    assert events[-1].reason == "time limit"
    meta = read_meta(tmp_path / "run" / "last.safetensors")
    assert meta["max_steps"] == meta["step"] == 0


def test_learning_rate_warms_up_then_decays():
    cfg = tiny_train(100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.safetensors"))}


def test_a_new_run_never_overwrites_an_old_one(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    run(corpus, tmp_path / "run", steps=10)
    before = digest(tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a training run"):
        run(corpus, tmp_path / "run", steps=10)
    assert digest(tmp_path / "run") == before


def test_resume_refuses_another_corpus(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    run(corpus, tmp_path / "run", steps=10, stop_after=5)
    before = digest(tmp_path / "run")
    other = tmp_path / "other.txt"
    other.write_text("completely different characters: 0123456789 ÀÉÎ" * 50, encoding="utf-8")
    with pytest.raises(ConfigError, match="does not match"):
        run(ENGINE.read_corpus(other), tmp_path / "run", steps=10, resume=True)
    assert digest(tmp_path / "run") == before


def test_a_run_stopped_before_a_validation_measures_it_when_resumed(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)

    def start(resume):
        return train(ENGINE, corpus, tmp_path / "run", recipes=recipes(tiny_model(), tiny_train(20, eval_interval=10)),
                     device="cpu", previews=False, resume=resume)

    for event in (events := start(False)):
        if isinstance(event, Validating) and event.step == 10:     # Stop pressed during step 10's validation
            events.close()
    assert read_meta(tmp_path / "run" / "last.safetensors")["history"]["val_steps"] == [0]
    list(start(True))
    assert read_meta(tmp_path / "run" / "last.safetensors")["history"]["val_steps"] == [0, 10, 20]


def test_resume_without_a_run_is_a_clear_error(corpus_file, tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        run(ENGINE.read_corpus(corpus_file), tmp_path / "empty", resume=True)


def test_stopping_during_the_first_validation_still_leaves_a_resumable_run(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)
    events = train(ENGINE, corpus, tmp_path / "run", recipes=recipes(tiny_model(), tiny_train(10)),
                   device="cpu", previews=False)
    assert any(isinstance(e, Validating) for e in events)   # the first validation has begun
    events.close()
    assert read_meta(tmp_path / "run" / "last.safetensors")["step"] == 0
    assert isinstance(run(corpus, tmp_path / "run", steps=10, resume=True)[-1], Finished)


def test_stopping_at_the_first_event_still_leaves_a_resumable_run(corpus_file, tmp_path):
    """The app's Pause pressed right after Start: the run is closed at StageStarted, before any validation."""
    corpus = ENGINE.read_corpus(corpus_file)
    events = train(ENGINE, corpus, tmp_path / "run", recipes=recipes(tiny_model(), tiny_train(10)),
                   device="cpu", previews=False)
    assert isinstance(next(events), StageStarted)
    events.close()
    assert read_meta(tmp_path / "run" / "last.safetensors")["step"] == 0
    assert isinstance(run(corpus, tmp_path / "run", steps=10, resume=True)[-1], Finished)


def test_a_time_budget_not_yet_turned_into_steps_survives_a_resume(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)

    def start(resume):
        return train(ENGINE, corpus, tmp_path / "run", recipes=recipes(tiny_model(), tiny_train(10**9)),
                     device="cpu", minutes=None if resume else 5, previews=False, resume=resume)

    events_until(start(False), ("model", 5))              # before the budget is calibrated
    left = read_meta(tmp_path / "run" / "last.safetensors")["minutes_left"]
    assert 4 < left < 5
    events_until(start(True), ("model", 30))
    meta = read_meta(tmp_path / "run" / "last.safetensors")
    assert meta["max_steps"] < 10**9 and meta["minutes_left"] is None


def test_a_time_budget_on_resuming_a_run_of_set_length_stops_the_clock_and_keeps_its_schedule(corpus_file, tmp_path):
    corpus = ENGINE.read_corpus(corpus_file)

    def start(resume, minutes):
        return train(ENGINE, corpus, tmp_path / "run", recipes=recipes(tiny_model(), tiny_train(40)),
                     device="cpu", minutes=minutes, previews=False, resume=resume)

    events_until(start(False, None), ("model", 5))
    events = list(start(True, 1e-5))                     # out of time at once: stopped, not ended
    meta = read_meta(tmp_path / "run" / "last.safetensors")
    assert events[-1].reason == "time limit" and meta["max_steps"] == 40 and meta["step"] < 40
    assert isinstance(list(start(True, None))[-1], Finished)
    assert read_meta(tmp_path / "run" / "last.safetensors")["step"] == 40


def test_training_needs_a_validation_split(corpus_file, tmp_path):
    with pytest.raises(ConfigError, match="val_fraction"):
        run(ENGINE.read_corpus(corpus_file), tmp_path / "run", val_fraction=0.0)


def test_text_validation_read_in_pieces_measures_what_whole_batches_do(corpus_file, monkeypatch):
    import engines.text as text_engine
    from engines.text.config import TextModelConfig
    engine = TextEngine()
    corpus = engine.read_corpus(corpus_file)
    torch.manual_seed(0)
    model = engine.build_model(engine.stages[0], TextModelConfig(n_layer=2, n_hidden=32), corpus.meta).eval()

    def measured():
        with torch.no_grad():
            parts = list(engine.validate(model, corpus, engine.stages[0], batch_size=8, seq_len=256))
        return sum(float(loss.value) * units for loss, units in parts) / sum(u for _, u in parts), len(parts)

    in_pieces, pieces = measured()                       # 64 characters a piece: Stop is heard between them
    monkeypatch.setattr(text_engine, "VALIDATION_PIECE", 256)
    whole, batches = measured()
    assert pieces > batches and in_pieces == pytest.approx(whole, rel=1e-5)

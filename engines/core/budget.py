"""Fitting a model to a time budget: which preset should give the lowest held-out loss in M minutes *here*.

A preset's curve says what loss it reaches after so many units trained (measured once on the engine's
reference corpus; units trained are the same on any machine). What differs between machines is how many
units a minute buys: a 2x512 LSTM trains 1.6x (AVX-512 BF16) to 4x (AMX) faster in bf16 than it does in
fp32 on AVX2. A timed training step of each preset measures that here, and the choice is the preset whose
curve is lowest at the units its speed affords.

The reference corpus is not the user's: a bigger corpus overfits later and favours bigger models. The
choice is therefore shown with its numbers, as advice as much as a decision.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch

from .device import autocast_dtype, pick_device
from .errors import ConfigError
from .events import STEPS_FROM_THE_CLOCK, PresetChosen
from .interface import Corpus, Engine, Preset, config_from_dict
from .trainer import make_optimizer, prepare_run

# a validation reads val_units held-out units forward only, about a third of the cost of training on them
VALIDATION_COST = 1 / 3


@dataclass
class Candidate:        # a plain dataclass, so the worker can send it to the window
    preset: str
    units_per_second: float     # whole training steps, measured here
    units: float                # trained within the budget at that speed
    expected_loss: float        # read off the preset's curve at `units`


def training_speed(engine: Engine, corpus: Corpus, preset: Preset, device: torch.device, steps: int = 1) -> float:
    """Units per second of whole training steps (forward, backward, optimizer) at the preset's batch and
    precision. A first, untimed step allocates and picks kernels; of several timed steps the best counts, as
    the slower ones measure whatever else the machine was doing."""
    stage = engine.stages[0]
    recipe = preset.stages[stage.name]
    model = engine.build_model(stage, config_from_dict(stage.model_config_class, recipe.model, "model"),
                               corpus.meta).to(device)
    optimizer = make_optimizer(model, recipe.train)
    amp = autocast_dtype(device, recipe.train.precision)
    generator = torch.Generator().manual_seed(0)
    best = math.inf
    for step in range(steps + 1):
        started = time.perf_counter()
        batch = corpus.batch(recipe.train.batch_size, recipe.train.seq_len, generator).to(device)
        with torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext():
            loss = engine.loss(model, batch, stage).value
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()     # waits for a GPU to finish
        if step:
            best = min(best, time.perf_counter() - started)
    return batch.units / best


def expected_loss(curve: list[tuple[float, float]], units: float) -> float:
    """The curve, linear in log(units). Below its first point it goes on at its first slope; past its last
    point it stays level: no promise is made beyond what was measured."""
    xs, ys = [math.log(u) for u, _ in curve], [loss for _, loss in curve]
    x = math.log(max(units, 1.0))
    if x >= xs[-1]:
        return ys[-1]
    i = 1
    while xs[i] < x:
        i += 1
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])


def useful_share(preset: Preset, engine: Engine) -> float:
    """The share of training time left after validations."""
    train = preset.stages[engine.stages[0].name].train
    trained = train.eval_interval * train.batch_size * train.seq_len
    return trained / (trained + VALIDATION_COST * train.val_units)


def candidates(engine: Engine, corpus: Corpus, minutes: float, device: torch.device) -> list[Candidate]:
    """Every preset with a curve, measured here, best expected loss first."""
    found = []
    for preset in engine.presets().values():
        if preset.curve:
            speed = training_speed(engine, corpus, preset, device)
            units = speed * minutes * 60 * useful_share(preset, engine)
            found.append(Candidate(preset.name, speed, units, expected_loss(preset.curve, units)))
    return sorted(found, key=lambda c: c.expected_loss)


def has_curves(engine: Engine) -> bool:
    return any(p.curve for p in engine.presets().values())


def fit_preset(engine: Engine, data, out_dir, corpus: Corpus, minutes: float, device: str = "auto",
               overrides: dict | None = None) -> tuple[PresetChosen, tuple]:
    """A new run with a time budget and no model named (the CLI's --minutes without --preset, the Train page's
    "fit the size to the time"): time every preset with a curve here and get the run of the best one ready.
    (what was measured, prepare_run's (corpus, recipes, preset) for the chosen preset). The timing comes out of
    the budget; a budget it uses up entirely is an error."""
    started = time.time()
    found = candidates(engine, corpus, minutes, pick_device(device))
    prepared = prepare_run(engine, data, out_dir, found[0].preset, overrides, max_steps=STEPS_FROM_THE_CLOCK,
                           device=device, corpus=corpus)
    took = (time.time() - started) / 60
    if took >= minutes:
        raise ConfigError(f"timing the model sizes took the whole budget ({took:.2g} min): give it more minutes, "
                          f"or name a preset")
    stage = engine.stages[0]
    chosen = PresetChosen([asdict(c) for c in found], stage.unit, stage.loss_unit, engine.curve_corpus,
                          minutes - took)
    return chosen, prepared

"""The training loop every engine shares, as a generator of events (engines/core/events.py).

    for event in train(engine, corpus, "runs/x", recipes=...):   # CLI prints them, the worker forwards them
        ...                                                       # stop iterating (or .close()) to cancel

An engine trains its stages in order; each stage is a `Run` (below): a model, its optimizer and where it
stands, made fresh or from the stage's last.safetensors, then stepped, validated and saved. A single-stage
engine keeps its checkpoints in the run folder itself, a multi-stage one in one sub-folder per stage.
Closing the generator saves the current stage's last.safetensors at the step reached, so Stop then Resume
loses nothing.

Resume is exact because nothing random is carried from step to step: the batch and the dropout masks of
step s are drawn from seeds derived from (seed, rank, s). Resuming therefore needs only the weights, the
optimizer state and the step number, which last.safetensors holds; the learning rate is a pure function of
the step. The same derivation gives each DDP rank (torchrun) its own data, and only rank 0 validates,
writes checkpoints and reports.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Iterator

import torch

from .checkpoint import (find_checkpoint, load_checkpoint, read_meta, remove_stale_temporaries, run_engine,
                         run_model, save_checkpoint)
from .device import autocast_dtype, pick_device
from .errors import CheckpointError, ConfigError, StudioError
from .events import (STEPS_FROM_THE_CLOCK, CheckpointSaved, Evaluation, Finished, History, Preview, Progress,
                     StageStarted, Validating, known_steps)
from .fingerprint import corpus_fingerprint
from .frozen import Frozen, frozen_part, weights_digest
from .lock import run_folder_lock
from .interface import Corpus, Engine, Stage, StageRecipe, TrainConfig, config_from_dict


# ----------------------------------------------------------------------------------------------------
# small pure helpers


def lr_at(step: int, cfg: TrainConfig, max_steps: int, extended: list | None = None) -> float:
    """Linear warm-up (at most a tenth of the run, so a short run leaves it), then cosine decay to
    lr * min_lr_ratio at max_steps. A run extended at step s0 where the rate was lr0 (`extended` = [s0, lr0])
    decays on from lr0 instead of jumping back up."""
    floor = cfg.lr * cfg.min_lr_ratio
    if extended:
        start, lr = extended
        if step >= start:
            progress = min(1.0, (step - start) / max(1, max_steps - start))
            return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    warmup = min(cfg.warmup_steps, max_steps // 10)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_seed(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2**63 - 1)


NEW_PART_LR_SCALE = 10.0    # how much faster a part new to a fine-tuned model learns than the weights it joins


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, new_parts: list[str] | None = None) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (a frozen earlier stage is not among them). Matrices and
    conv kernels are decayed; vectors (biases, norm gains) are not. Embedding tables are matrices too and
    are decayed: with the small decay used here that keeps rarely seen rows from drifting. Parameters named in
    `new_parts` (added by a fine-tune's settings, from their initialisation) learn NEW_PART_LR_SCALE times
    faster (their group's lr_scale): at a fine-tuning rate they would take thousands of steps to learn
    anything, beside weights that are already trained."""
    def groups(params: list, lr_scale: float) -> list[dict]:
        return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay, "lr_scale": lr_scale},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr_scale": lr_scale}]

    new = set(new_parts or ())
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    kept = groups([p for name, p in trainable if name not in new], 1.0)
    added = groups([p for name, p in trainable if name in new], NEW_PART_LR_SCALE) if new else []
    return torch.optim.AdamW(kept + added, lr=cfg.lr, betas=(0.9, cfg.beta2))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    state = optimizer.state_dict()
    tensors = {f"optim.{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}
    return tensors, state["param_groups"]


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def stage_folder(engine: Engine, stage: Stage, out_dir: str | Path) -> Path:
    return Path(out_dir) if len(engine.stages) == 1 else Path(out_dir) / stage.name


def latest_stage_header(engine: Engine, out_dir: str | Path) -> dict | None:
    """The header of the last.safetensors of the run's latest started stage; None when no stage has started."""
    for stage in reversed(engine.stages):
        last = stage_folder(engine, stage, out_dir) / "last.safetensors"
        if last.exists():
            return read_meta(last, engine.name)
    return None


class Tally:
    """Unit-weighted means of a loss and its metrics over several batches."""

    def __init__(self):
        self.units, self.loss_sum, self.metric_sums = 0, 0.0, {}

    def add(self, loss, units: int) -> None:
        self.units += units
        self.loss_sum += float(loss.value) * units
        for name, value in loss.metrics.items():
            self.metric_sums[name] = self.metric_sums.get(name, 0.0) + float(value) * units

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.units, 1)

    def metrics(self, stage: Stage) -> dict:
        units = {m.name: m.unit for m in stage.metrics}
        return {name: [total / max(self.units, 1), units.get(name, "")] for name, total in self.metric_sums.items()}


def validation(engine: Engine, model, corpus: Corpus, stage: Stage, batch_size: int, seq_len: int,
               budget: int | None) -> Iterator[Tally]:
    """The running tally after each validation batch, until `budget` units (None: the whole split)."""
    tally = Tally()
    batches = engine.validate(model, corpus, stage, batch_size, seq_len)
    try:
        with torch.no_grad():
            for loss, units in batches:
                tally.add(loss, units)
                yield tally
                if budget and tally.units >= budget:
                    return
    finally:
        batches.close()
    if tally.units == 0:
        raise StudioError("the validation split is empty: there is nothing to measure the model on")


# ----------------------------------------------------------------------------------------------------
# models from checkpoint headers


def build_from_header(engine: Engine, header: dict) -> torch.nn.Module:
    """Rebuild a stage's model from a checkpoint header (config, corpus meta, and the config of the earlier
    stage it holds); weights not loaded."""
    missing = [key for key in ("model_config", "corpus") if not isinstance(header.get(key), dict)]
    if missing:
        raise CheckpointError(f"the checkpoint's header has no {' or '.join(missing)}: it was not written by this "
                              f"studio, or it is damaged")
    if header.get("engine_version") != engine.version:
        raise CheckpointError(f"this checkpoint was made by version {header.get('engine_version')} of the "
                              f"{engine.name} engine; this studio has version {engine.version}")
    stage = engine.stage(header.get("stage", engine.stages[0].name if len(engine.stages) == 1 else None))
    config = config_from_dict(stage.model_config_class, header["model_config"], "checkpoint model_config")
    previous = held_stage(engine, stage, header) if stage.builds_on else None
    return engine.build_model(stage, config, header["corpus"], previous)


def held_stage(engine: Engine, stage: Stage, header: dict) -> Frozen:
    """The earlier stage a later stage's checkpoint holds, built from its header's builds_on (weights not loaded)."""
    earlier = engine.stage(stage.builds_on)
    config = config_from_dict(earlier.model_config_class, held_stage_config(header), "checkpoint builds_on")
    return Frozen(engine.build_model(earlier, config, header["corpus"]))


def held_stage_config(header: dict) -> dict:
    held = header.get("builds_on") or {}
    if "model_config" not in held:
        raise CheckpointError(f"this {header.get('stage')} checkpoint does not record the earlier stage it holds "
                              f"(the file is damaged)")
    return held["model_config"]


def load_weights(model: torch.nn.Module, tensors: dict, header: dict, path, new_parts: bool = False) -> list[str]:
    """Load a checkpoint's weights into a model of its shape. With new_parts, the model may also have parameters
    the file lacks (a fine-tune whose settings add a part, e.g. the ink engine's end flag): they keep their
    initial values, and their names are returned."""
    try:
        loaded = model.load_state_dict(tensors, strict=not new_parts)
        if loaded.unexpected_keys:
            raise RuntimeError(f"unexpected {', '.join(loaded.unexpected_keys)}")
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the model described in its header ({e})") from None
    held = frozen_part(model)
    if held is not None and weights_digest(held.module) != header["builds_on"]["sha256"]:
        raise CheckpointError(f"{path}: the {header['builds_on']['stage']} weights inside it do not match "
                              f"their recorded hash (the file is damaged)")
    return loaded.missing_keys


def fine_tune_source(engine: Engine, start_from) -> tuple[Path, dict]:
    """The checkpoint a fine-tune starts from (a file or run folder: its last stage's) and its header."""
    source = sampling_checkpoint(engine, start_from)
    header = read_meta(source, engine.name)
    final = engine.stages[-1]
    if header.get("stage", final.name) != final.name:
        raise ConfigError(f"{source} is the {header['stage']!r} stage of a {engine.name} run; fine-tuning "
                          f"starts from a model that samples, its last stage ({final.name!r})")
    return source, header


def fine_tune_reading(engine: Engine, start_from) -> tuple[dict, dict]:
    """How a fine-tune of that model reads a corpus: (corpus meta, the first stage's model settings)."""
    _, header = fine_tune_source(engine, start_from)
    first = held_stage_config(header) if engine.stages[-1].builds_on else header["model_config"]
    return header["corpus"], first


def sampling_checkpoint(engine: Engine, path) -> Path:
    """The checkpoint a path names for sampling: a file, or a run folder (its last stage's best, else last)."""
    path = Path(path).expanduser()
    final = engine.stages[-1]
    if path.is_dir() and len(engine.stages) > 1:
        if (path / final.name).is_dir():
            path = path / final.name
        elif any((path / s.name).is_dir() for s in engine.stages):
            raise CheckpointError(f"{path} is a {engine.name} run whose {final.name!r} stage is not trained yet: "
                                  f"only that stage makes samples")
    return find_checkpoint(path)


def load_model(engine: Engine, path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained model of the engine's last stage, ready to sample on `device`, and its checkpoint header."""
    path = sampling_checkpoint(engine, path)
    tensors, header = load_checkpoint(path, engine=engine.name, prefix="model.")
    final = engine.stages[-1]
    if header.get("stage", final.name) != final.name:
        raise CheckpointError(f"{path} is the {header['stage']!r} stage of a {engine.name} run; only its last "
                              f"stage ({final.name!r}) makes samples: train that stage first")
    model = build_from_header(engine, header)
    load_weights(model, tensors, header, path)
    device = pick_device(device) if isinstance(device, str) else device
    return model.to(device).eval(), header


# ----------------------------------------------------------------------------------------------------
# getting a run ready: the CLI and the worker both do this before train()


def prepare_run(engine: Engine, data, out_dir, preset: str | None = None, overrides: dict | None = None,
                resume: bool = False, max_steps: int | None = None, corpus: Corpus | None = None,
                device: str = "auto", start_from=None, stage: str | None = None):
    """(corpus, {stage: StageRecipe}, preset name). `overrides` is {stage: {"model": {...}, "train": {...}}}.
    A resumed run reads its corpus the way it was first read (vocabulary, split, sample rate) and keeps each
    started stage's own settings, whatever the preset says now. A new run may pass the corpus it already read
    as it will train on it (the app reads it to show its summary): with the same preset, or for a fine-tune as
    fine_tune_reading() says. `start_from` (a checkpoint or run folder)
    fine-tunes: the new run starts from its weights, so it keeps its model shape and reads the corpus the
    way it read its own (vocabulary, scale), with this preset's training settings; model settings in
    `overrides` still apply (e.g. the ink engine's synthetic_lines=0), except to an earlier stage that model
    holds. `stage` is the one train() is asked for: checked here, before the corpus is read."""
    if not str(data).strip():
        raise ConfigError("no corpus given: name a corpus file, folder or glob")
    if not str(out_dir).strip():
        raise ConfigError("no run folder given: name the folder the run's checkpoints go to")
    out_path = Path(out_dir).expanduser()
    existing = next(p for p in (out_path, *out_path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{existing} is a file: a run's checkpoints go in a folder; name a new one")
    if start_from is not None and resume:
        raise ConfigError("--from starts a new run from a trained model and --resume continues a run: not both "
                          "(a fine-tuned run continues with --resume alone: it records what it started from)")
    # a resumed run's stages not started yet are trained as the run planned them when it started (its preset,
    # --steps and --set), recorded in every stage's checkpoint; runs saved before plans were recorded: its preset.
    # A stage planned to end with a time budget has no step count of its own: without a new budget it takes
    # its preset's
    run_header = latest_stage_header(engine, out_dir) if resume else None
    plan = (run_header or {}).get("plan") or {}
    recorded_preset = (run_header or {}).get("preset")
    if resume and preset and recorded_preset and preset != recorded_preset:
        raise ConfigError(f"this run was started with the preset {recorded_preset!r}, and resuming continues it "
                          f"with its own settings: leave out the preset {preset!r}")
    chosen = engine.preset(recorded_preset if resume and recorded_preset in engine.presets() else preset)
    overrides = overrides or {}
    unknown = set(overrides) - {s.name for s in engine.stages}
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(sorted(unknown))} for {engine.name}")
    recipes = {}
    for current in engine.stages:
        recipe, extra = chosen.stages[current.name], overrides.get(current.name, {})
        planned = plan.get(current.name) or {"model": recipe.model, "train": dataclasses.asdict(recipe.train)}
        where = f"preset {chosen.name!r}" + (f", stage {current.name}" if len(engine.stages) > 1 else "")
        model = {**planned["model"], **extra.get("model", {})}
        config_from_dict(current.model_config_class, model, where)
        train_values = {**planned["train"], **extra.get("train", {})}
        if train_values["max_steps"] >= STEPS_FROM_THE_CLOCK:
            train_values["max_steps"] = recipe.train.max_steps
        if max_steps:
            train_values["max_steps"] = max_steps
        recipes[current.name] = StageRecipe(model, config_from_dict(TrainConfig, train_values, where))
    for recipe in recipes.values():      # e.g. bf16 asked of a CPU without it: say so before reading anything
        autocast_dtype(pick_device(device), recipe.train.precision)
    corpus_meta, val_fraction, name = None, recipes[engine.stages[0].name].train.val_fraction, chosen.name
    if resume:
        started = [s for s in engine.stages if (stage_folder(engine, s, out_dir) / "last.safetensors").exists()]
        if not started:
            other = run_engine(out_dir)
            raise CheckpointError(f"nothing to resume: {out_dir} holds no last.safetensors"
                                  + (f" of the {engine.name} engine (it holds a {other} run)"
                                     if other and other != engine.name else ""))
        for current in started:
            header = read_meta(stage_folder(engine, current, out_dir) / "last.safetensors", engine.name)
            recipes[current.name] = StageRecipe(header["model_config"], recipes[current.name].train)
            if current.builds_on and engine.stage(current.builds_on) not in started:   # a fine-tune's, held in it
                recipes[current.builds_on] = StageRecipe(held_stage_config(header), recipes[current.builds_on].train)
        corpus_meta, val_fraction = header["corpus"], header["train_config"]["val_fraction"]
        name = header.get("preset") or name
    if start_from is not None:
        source, header = fine_tune_source(engine, start_from)
        final = engine.stages[-1]
        # the model's own settings, and any the user set explicitly (e.g. how the corpus is read; a changed
        # shape is refused when the weights load)
        model = {**header["model_config"], **overrides.get(final.name, {}).get("model", {})}
        config_from_dict(final.model_config_class, model, f"fine-tuning {source.name}")
        recipes[final.name] = StageRecipe(model, recipes[final.name].train, str(source))
        if final.builds_on:         # the earlier stage it holds: it reads the corpus, and it is kept as it is
            if any(overrides.get(final.builds_on, {}).get("model", {})):
                raise ConfigError(f"fine-tuning keeps the {final.builds_on} that {source.name} holds, so its model "
                                  f"settings cannot change; to change them, train every stage anew")
            recipes[final.builds_on] = StageRecipe(held_stage_config(header), recipes[final.builds_on].train)
        if any((stage_folder(engine, s, out_dir) / "last.safetensors").exists() for s in engine.stages):
            raise ConfigError(f"{out_dir} already holds a training run; fine-tune into a new folder")
        corpus_meta = header["corpus"]
    other = run_engine(out_dir)
    if other and other != engine.name:
        raise ConfigError(f"{out_dir} holds a run of the {other} engine: train the {engine.name} engine into "
                          f"another folder")
    stages_to_train(engine, stage, recipes, out_dir, resume)       # a stage a fine-tune cannot train: say so now
    first = engine.stages[0]
    first_config = config_from_dict(first.model_config_class, recipes[first.name].model, "model")
    if corpus is None or resume:
        read = engine.read_corpus_to_fine_tune if start_from is not None else engine.read_corpus
        corpus = read(data, val_fraction, corpus_meta, first_config)
    corpus.fingerprint = corpus_fingerprint(data)
    return corpus, recipes, name


# ----------------------------------------------------------------------------------------------------
# one stage of a run


class Run:
    """One stage being trained in this process: its model (DDP-wrapped as `net` when distributed), optimizer,
    configuration and standing (step, history, best validation loss). Rank 0 alone validates and saves."""

    def __init__(self, engine: Engine, stage: Stage, corpus: Corpus, folder: Path, device: torch.device,
                 model, cfg: TrainConfig, model_config: dict, header: dict):
        self.engine, self.stage, self.corpus, self.folder, self.device = engine, stage, corpus, folder, device
        self.model, self.cfg, self.model_config = model.to(device), cfg, model_config
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.step, self.max_steps, self.seed = header.get("step", 0), header["max_steps"], header["seed"]
        self.extended = header.get("extended")      # [step, lr] where a finished schedule was extended
        self.preset, self.builds_on = header.get("preset"), header.get("builds_on")
        self.started_from = header.get("started_from")    # the weights a fine-tuned run began with
        self.plan = header.get("plan")      # {stage: {"model", "train"}} as the run planned every stage at its start
        self.history = History(**header.get("history", {}))
        self.best_val = header.get("metrics", {}).get("best_val_loss")
        self.val_metrics: dict = {}
        self.elapsed_before = header.get("elapsed_seconds", 0.0)
        self.started = time.time()
        self.optimizer = make_optimizer(self.model, cfg, (self.started_from or {}).get("new_parts"))
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        amp = autocast_dtype(device, cfg.precision)
        self.autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp is not None else nullcontext
        self.data_gen = torch.Generator()

    @classmethod
    def fresh(cls, engine, stage, corpus, folder, device, recipe: StageRecipe, seed: int, preset: str | None,
              plan: dict | None = None) -> "Run":
        cfg = recipe.train
        if not 0 < cfg.val_fraction < 1:
            raise ConfigError("val_fraction must be between 0 and 1: training needs held-out data to validate on")
        previous, builds_on = None, None
        # fine-tuning: the (tensors, header) of the model the run starts from
        start = load_checkpoint(recipe.start_from, engine=engine.name, prefix="model.") if recipe.start_from else None
        if stage.builds_on and start:       # fine-tuning keeps the earlier stage its model holds (loaded below)
            previous, builds_on = held_stage(engine, stage, start[1]), start[1]["builds_on"]
        elif stage.builds_on:
            earlier = engine.stage(stage.builds_on)
            source = run_model(folder.parent / earlier.name)      # what that stage's Finished named
            if not source.exists():
                raise ConfigError(f"the {stage.name} stage builds on the {earlier.name} stage: train that first "
                                  f"({source.parent} holds no checkpoint)")
            tensors, header = load_checkpoint(source, engine=engine.name, prefix="model.")
            if header["corpus"] != corpus.meta:
                raise ConfigError(f"{source} was trained on a corpus read differently from this one")
            trained = build_from_header(engine, header)
            load_weights(trained, tensors, header, source)
            previous = Frozen(trained)
            builds_on = {"stage": earlier.name, "step": header["step"], "model_config": header["model_config"],
                         "sha256": weights_digest(trained)}
        torch.manual_seed(seed)
        config = config_from_dict(stage.model_config_class, recipe.model, f"{stage.name} model")
        model = engine.build_model(stage, config, corpus.meta, previous)
        if previous is not None and frozen_part(model) is not previous:
            raise ConfigError(f"the {engine.name} engine's {stage.name} model must keep the Frozen earlier stage "
                              f"it is given as an attribute")
        started_from = None
        if start:
            tensors, header = start
            changed = {k: v for k, v in recipe.model.items() if header["model_config"].get(k) != v}
            try:
                new_parts = load_weights(model, tensors, header, recipe.start_from, new_parts=bool(changed))
            except CheckpointError:
                if not changed:
                    raise
                raise ConfigError(f"{', '.join(f'model.{k}={v}' for k, v in changed.items())} would change the shape "
                                  f"of the model fine-tuning starts from ({Path(recipe.start_from).name}): it "
                                  f"keeps that model's shape") from None
            started_from = {"file": Path(recipe.start_from).name, "step": header["step"],
                            "sha256": weights_digest(model), "new_parts": new_parts}
        return cls(engine, stage, corpus, folder, device, model, cfg, dataclasses.asdict(config),
                   {"max_steps": cfg.max_steps, "seed": seed, "preset": preset, "builds_on": builds_on,
                    "started_from": started_from, "plan": plan})

    @classmethod
    def resume(cls, engine, stage, corpus, folder, device, extend_to: int | None,
               new_data: bool = False) -> tuple["Run", dict]:
        path = folder / "last.safetensors"
        tensors, header = load_checkpoint(path, engine=engine.name)
        if header["corpus"] != corpus.meta:
            raise ConfigError("this corpus does not match the run being resumed (its vocabulary or format "
                              "differs); resume with the corpus the run was started on")
        recorded = header.get("corpus_fingerprint")
        if recorded and corpus.fingerprint and recorded != corpus.fingerprint and not new_data:
            raise ConfigError("the corpus changed since this run was trained on it (files, sizes or contents "
                              "differ), so its validation split is not the one the run measured; resume with "
                              "the same corpus, or say --new-data to train on the new one (its best model then "
                              "starts again)")
        if new_data:
            header["metrics"] = {**header.get("metrics", {}), "best_val_loss": None}
        if extend_to and extend_to < header["step"]:
            raise ConfigError(f"this run is already at step {header['step']}; --steps must be at least that")
        model = build_from_header(engine, header)
        load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, header, path)
        cfg = config_from_dict(TrainConfig, header["train_config"], "checkpoint train_config")
        if extend_to and extend_to != header["max_steps"]:
            cfg_lr = lr_at(header["step"], cfg, header["max_steps"], header.get("extended"))
            header = {**header, "max_steps": extend_to, "extended": [header["step"], cfg_lr]}
        run = cls(engine, stage, corpus, folder, device, model, cfg, header["model_config"], header)
        restore_optimizer(run.optimizer, {k[6:]: v for k, v in tensors.items() if k.startswith("optim.")},
                          header["optimizer_groups"])
        return run, header

    # --- what a checkpoint records ---
    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def header(self, minutes_left: float | None = None) -> dict:
        return {
            "engine": self.engine.name, "engine_version": self.engine.version,
            "stage": self.stage.name, "stages": [s.name for s in self.engine.stages], "preset": self.preset,
            "model_config": self.model_config, "train_config": dataclasses.asdict(self.cfg),
            "builds_on": self.builds_on, "started_from": self.started_from, "plan": self.plan,
            "corpus": self.corpus.meta,
            "corpus_summary": {k: v for k, v in self.corpus.summary.items() if k != "warnings"},
            "corpus_fingerprint": self.corpus.fingerprint,
            "step": self.step, "max_steps": self.max_steps, "extended": self.extended, "seed": self.seed,
            "metrics": {"val_loss": self.history.val_losses[-1] if self.history.val_losses else None,
                        "best_val_loss": self.best_val, "loss_unit": self.stage.loss_unit,
                        "val_metrics": self.val_metrics},
            "history": dataclasses.asdict(self.history), "elapsed_seconds": self.elapsed,
            "minutes_left": minutes_left, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self, name: str, with_optimizer: bool, minutes_left: float | None = None) -> Path:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        header = self.header(minutes_left)
        if with_optimizer:
            opt_tensors, header["optimizer_groups"] = optimizer_tensors(self.optimizer)
            tensors.update(opt_tensors)
        return save_checkpoint(self.folder / name, tensors, header)

    # --- the three things a run does ---
    def train_step(self) -> tuple[float, int]:
        """One optimizer step on this step's batch: (loss, units in the batch)."""
        self.lr = lr_at(self.step, self.cfg, self.max_steps, self.extended)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * group.get("lr_scale", 1.0)
        self.data_gen.manual_seed(step_seed(self.seed, self.rank, self.step))
        torch.manual_seed(step_seed(self.seed, self.rank, self.step) + 1)   # dropout masks of this step
        batch = self.corpus.batch(self.cfg.batch_size, self.cfg.seq_len, self.data_gen).to(self.device)
        with self.autocast():
            loss = self.engine.loss(self.net, batch, self.stage).value
        value = loss.item()
        if not math.isfinite(value):
            raise StudioError(f"training diverged at step {self.step} (the loss became {value}); the last "
                              f"checkpoint is kept; start again with a lower learning rate (--set train.lr=...)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                           self.cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        return value, batch.units

    def validate(self) -> Iterator[Validating | Evaluation]:
        """Validation on the fixed budget of held-out units, a Validating event after every batch."""
        self.model.eval()
        with self.autocast():
            for tally in validation(self.engine, self.model, self.corpus, self.stage, self.cfg.batch_size,
                                    self.cfg.seq_len, self.cfg.val_units):
                yield Validating(self.stage.name, self.step, tally.units, self.cfg.val_units)
        self.model.train()
        val = tally.loss
        self.val_metrics = tally.metrics(self.stage)
        self.history.val_steps.append(self.step)
        self.history.val_losses.append(val)
        self.history.val_times.append(self.elapsed)
        self.history.val_metrics.append({name: value for name, (value, unit) in self.val_metrics.items()})
        self.improved = self.best_val is None or val < self.best_val
        self.best_val = val if self.improved else self.best_val
        # the untrained model of step 0 is measured, but never saved as "best": a run stopped before its
        # next validation then samples its last checkpoint, not random weights
        self.improved = self.improved and self.step > 0
        yield Evaluation(self.stage.name, self.step, val, self.best_val, self.stage.loss_unit, self.val_metrics,
                         tally.units, self.stage.unit)

    def checkpoint(self, previews: bool, minutes_left: float | None) -> Iterator[object]:
        """Validate, save last (and best when it improved), and show the engine's preview of this stage."""
        yield from self.validate()
        path = self.save("last.safetensors", True, minutes_left)
        if self.improved:
            self.save("best.safetensors", False)
        yield CheckpointSaved(self.stage.name, str(path), self.step, self.improved)
        if previews:
            self.model.eval()
            try:
                chunks, error = self.engine.preview(self.model, self.header(), self.stage, self.corpus), ""
            except Exception as e:      # a sample is not worth the hours of training after it: say why, go on
                chunks, error = [], f"{type(e).__name__}: {e}"
            finally:
                self.model.train()
            if chunks or error:
                yield Preview(self.stage.name, self.step, chunks, error)


# ----------------------------------------------------------------------------------------------------
# the loop


def train(engine: Engine, corpus: Corpus, out_dir: str | Path, *, recipes: dict[str, StageRecipe],
          stage: str | None = None, preset: str | None = None, resume: bool = False, device: str = "auto",
          seed: int = 0, minutes: float | None = None, previews: bool = True,
          extend_to: int | None = None, new_data: bool = False) -> Iterator[object]:
    """Train one stage (`stage`) or all of them in order (a fine-tune: its last), yielding events; see the
    module docstring. A finished stage is skipped on resume. `minutes` is shared out between the stages still to train.
    `extend_to` gives resumed stages a new total number of steps (the learning rate decays on from where it
    was over the added steps); without it a resumed stage ends where it was planned to. `new_data` lets a
    resumed run continue on a corpus that changed since (its best model starts again)."""
    dev = distributed_device(pick_device(device))
    stages = stages_to_train(engine, stage, recipes, out_dir, resume)
    if resume and not any((stage_folder(engine, s, out_dir) / "last.safetensors").exists() for s in stages):
        if latest_stage_header(engine, out_dir) is not None:         # an earlier stage of this run is trained
            raise CheckpointError(f"nothing to resume: the {stages[0].name} stage of {out_dir} has not started; "
                                  f"start it without --resume")
        raise CheckpointError(f"nothing to resume: {out_dir} holds no last.safetensors")
    main_rank = int(os.environ.get("RANK", 0)) == 0
    with run_folder_lock(out_dir) if main_rank else nullcontext():
        if main_rank:   # under the lock no save is in progress: a temporary file here was left by a kill
            for s in stages:
                remove_stale_temporaries(stage_folder(engine, s, out_dir))
        run = yield from train_stages(engine, corpus, out_dir, stages, recipes, preset, resume, dev, seed,
                                      minutes, previews, extend_to, new_data)
    if run.world > 1:   # leave together: a rank exiting while another still saves can abort the group
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if main_rank:
        yield Finished(run.stage.name, run.step, run.reason, str(run_model(run.folder)), run.best_val,
                       run.stage.loss_unit)


def stages_to_train(engine: Engine, stage: str | None, recipes: dict[str, StageRecipe], out_dir,
                    resume: bool) -> list[Stage]:
    """The named stage, else every stage in order; but a fine-tuned run (new, or resumed) trains only the last
    stage, as the earlier ones are those of the model it started from, held inside it."""
    final = engine.stages[-1]
    last = stage_folder(engine, final, out_dir) / "last.safetensors"
    fine_tuning = len(engine.stages) > 1 and (
        recipes[final.name].start_from is not None
        or last.exists() and read_meta(last, engine.name).get("started_from") is not None)
    if fine_tuning and stage not in (None, final.name):
        raise ConfigError(f"a fine-tuned {engine.name} run trains only its {final.name!r} stage: the earlier "
                          f"ones are those of the model it starts from")
    if fine_tuning:
        return [final]
    return [engine.stage(stage)] if stage else list(engine.stages)


def train_stages(engine, corpus, out_dir, stages, recipes, preset, resume, dev, seed, minutes, previews,
                 extend_to, new_data) -> Iterator[object]:
    """Each stage in turn: resumed, skipped when finished, or started fresh. Returns the last stage's Run."""
    deadline = time.time() + minutes * 60 if minutes else None
    plan = {name: {"model": r.model, "train": dataclasses.asdict(r.train)} for name, r in recipes.items()}
    if resume:      # a stage started now takes the run's seed, not this command's
        seed = latest_stage_header(engine, out_dir)["seed"]
    run = None
    for index, current in enumerate(stages):
        folder = stage_folder(engine, current, out_dir)
        last = folder / "last.safetensors"
        budget = None
        if resume and last.exists():
            run, header = Run.resume(engine, current, corpus, folder, dev, extend_to, new_data)
            budget = header.get("minutes_left") if not deadline else None
            if run.step >= run.max_steps:
                run.reason = "completed"
                continue
        elif last.exists():
            raise ConfigError(f"{folder} already holds a training run; resume it, or choose another folder")
        else:
            run = Run.fresh(engine, current, corpus, folder, dev, recipes[current.name], seed, preset, plan)
        if deadline:
            budget = (deadline - time.time()) / 60 / (len(stages) - index)
        started = StageStarted(current.name, current.title, engine.stages.index(current) + 1, len(engine.stages),
                               run.step, known_steps(run.max_steps), current.loss_unit, run.history)
        yield from run_stage(run, previews, budget, started)
    return run


def distributed_device(dev: torch.device) -> torch.device:
    """Under torchrun, join the process group (gloo on CPU, nccl on CUDA) and pick this rank's GPU."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        import torch.distributed as dist
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def run_stage(run: Run, previews: bool, minutes: float | None, started_event: StageStarted) -> Iterator[object]:
    """Steps, validations and checkpoints of one stage until its max_steps or its time budget. A time budget
    becomes a step budget once the speed is known (after 20 steps), so the cosine schedule ends on time and
    the number is saved with the run (resume stays exact). A run whose schedule is already set (resumed with a
    time budget) keeps it: the budget only stops the clock, and the run goes on from there when resumed."""
    main_rank = run.rank == 0
    calibrate_at = run.step + 20 if minutes and run.max_steps >= STEPS_FROM_THE_CLOCK else None
    started = time.time()

    def minutes_left():
        return minutes - (time.time() - started) / 60 if calibrate_at and run.step < calibrate_at else None

    step_time, eval_seconds = None, 0.0   # step_time: exponential average of seconds per step
    run.reason = "completed"
    run.model.train()
    try:
        yield started_event         # a stop this early still leaves a run to resume (saved below)
        # the first validation; or, resumed, the one the run was stopped before (its step is saved unmeasured)
        if main_rank and run.step % run.cfg.eval_interval == 0 and run.history.val_steps[-1:] != [run.step]:
            eval_started = time.time()
            yield from run.checkpoint(previews, minutes_left())
            eval_seconds = time.time() - eval_started
        while run.step < run.max_steps:
            if minutes and time_is_up(run, started, minutes):
                run.reason = "time limit"
                if calibrate_at and run.step < calibrate_at:    # out of time before the speed was known: the
                    run.max_steps = run.step    # run is complete as it stands (a resume has nothing left)
                break
            t0 = time.time()
            loss, units = run.train_step()
            dt = time.time() - t0
            step_time = dt if step_time is None else 0.9 * step_time + 0.1 * dt
            if run.step == calibrate_at:
                left = minutes * 60 - (time.time() - started)
                per_step = step_time + eval_seconds / run.cfg.eval_interval
                run.max_steps = min(run.max_steps, run.step + max(1, int(0.97 * left / per_step)))
                if run.world > 1:
                    budget = torch.tensor([run.max_steps], device=run.device)
                    torch.distributed.broadcast(budget, 0)
                    run.max_steps = int(budget.item())
            if not main_rank:
                continue
            # an event every step, so whoever drives this loop can stop it within one step
            logged = run.step % run.cfg.log_interval == 0 or run.step == run.max_steps
            if logged:
                run.history.steps.append(run.step)
                run.history.losses.append(loss)
            eta = minutes_left() * 60 if minutes_left() is not None else (run.max_steps - run.step) * step_time
            yield Progress(run.stage.name, run.step, known_steps(run.max_steps), loss, run.lr,
                           units * run.world / step_time, run.stage.unit, run.elapsed, eta, logged)
            if run.step % run.cfg.eval_interval == 0 or run.step == run.max_steps:
                yield from run.checkpoint(previews, minutes_left())   # other ranks wait in their next all-reduce
        if main_rank and run.history.val_steps[-1:] != [run.step]:
            yield from run.checkpoint(previews, minutes_left())
        elif main_rank and run.reason == "time limit":     # validated at this step: keep the ended budget
            run.save("last.safetensors", True, minutes_left())
    except GeneratorExit:
        if main_rank:
            run.model.train()     # Stop may land mid-validation; the saved run trains on when resumed
            run.save("last.safetensors", True, minutes_left())
        raise


def time_is_up(run: Run, started: float, minutes: float) -> bool:
    time_up = time.time() - started > minutes * 60
    if run.world > 1:   # every rank must leave the loop at the same step
        flag = torch.tensor([float(time_up)], device=run.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        time_up = bool(flag.item())
    return time_up

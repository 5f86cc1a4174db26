"""The training loop every engine shares, as a generator of progress events.

    for event in train(engine, corpus, "runs/x", ...):   # CLI prints them, the worker forwards them
        ...                                              # stop iterating (or .close()) to cancel

Closing the generator saves last.safetensors at the step reached, so Stop then Resume loses nothing.

Resume is exact because nothing random is carried from step to step: the batch and the dropout masks of
step s are drawn from seeds derived from (seed, rank, s). Resuming therefore needs only the weights, the
optimizer state and the step number, which last.safetensors holds; the learning rate is a pure function
of the step. The same derivation gives each DDP rank (torchrun) its own data, and only rank 0 evaluates,
writes checkpoints and reports.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from .checkpoint import load_checkpoint, read_meta, save_checkpoint
from .device import autocast_dtype, pick_device
from .errors import CheckpointError, ConfigError, StudioError
from .interface import Corpus, Engine, TrainConfig, config_from_dict


# ----------------------------------------------------------------------------------------------------
# events


@dataclass
class Progress:
    step: int
    max_steps: int
    loss: float
    lr: float
    units_per_second: float
    unit: str
    elapsed: float          # seconds of training in this run, resumed runs included
    eta: float              # seconds left at the current speed
    logged: bool            # a point of the run's loss history (every log_interval steps)


@dataclass
class Evaluation:
    step: int
    val_loss: float
    best_val_loss: float


@dataclass
class CheckpointSaved:
    path: str
    step: int
    best: bool


@dataclass
class Preview:
    step: int
    chunks: list


@dataclass
class Finished:
    step: int
    reason: str             # "completed" | "time limit"
    checkpoint: str
    best_val_loss: float | None


@dataclass
class History:
    """What the loss plot needs to redraw a run after a restart; saved in every checkpoint."""
    steps: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    val_steps: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    val_times: list = field(default_factory=list)     # seconds of training when each validation ran


# ----------------------------------------------------------------------------------------------------
# helpers


def lr_at(step: int, cfg: TrainConfig, max_steps: int) -> float:
    """Linear warm-up, then cosine decay to lr * min_lr_ratio at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_seed(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2**63 - 1)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    # decay matrices only: biases, norms and embeddings (a lookup table, not a map) stay undecayed
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))


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


def model_tensors(model: torch.nn.Module) -> dict:
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def build_from_meta(engine: Engine, meta: dict) -> torch.nn.Module:
    """Rebuild an engine's model from a checkpoint header (config + corpus meta); weights not loaded."""
    if meta.get("engine_version") != engine.version:
        raise CheckpointError(f"this checkpoint was made by version {meta.get('engine_version')} of the "
                              f"{engine.name} engine; this studio has version {engine.version}")
    config = config_from_dict(engine.model_config_class, meta["model_config"], "checkpoint model_config")
    return engine.build_model(config, meta["corpus"])


def load_model(engine: Engine, path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained model ready to sample, on `device`, and its checkpoint header."""
    tensors, meta = load_checkpoint(path, engine=engine.name, prefix="model.")
    model = build_from_meta(engine, meta)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the model described in its header ({e})") from None
    device = pick_device(device) if isinstance(device, str) else device
    return model.to(device).eval(), meta


def prepare_run(engine: Engine, data, out_dir, preset: str | None = None, overrides: dict | None = None,
                resume: bool = False, max_steps: int | None = None):
    """What the CLI and the worker both need before train(): (corpus, model config, train config, preset name).
    A resumed run reads its corpus the way it was first read (vocabulary and split), whatever the preset says."""
    chosen = engine.preset(preset)
    overrides = overrides or {}
    model_config = config_from_dict(engine.model_config_class, {**chosen.model, **overrides.get("model", {})}, "model")
    train_values = {**dataclasses.asdict(chosen.train), **overrides.get("train", {})}
    if max_steps:
        train_values["max_steps"] = max_steps
    train_config = config_from_dict(TrainConfig, train_values, "train")
    corpus_meta, val_fraction = None, train_config.val_fraction
    if resume:
        run = read_meta(Path(out_dir) / "last.safetensors", engine.name)
        corpus_meta, val_fraction = run["corpus"], run["train_config"]["val_fraction"]
        model_config = config_from_dict(engine.model_config_class, run["model_config"], "checkpoint model_config")
    corpus = engine.read_corpus(data, val_fraction, corpus_meta, model_config)
    return corpus, model_config, train_config, chosen.name


# ----------------------------------------------------------------------------------------------------
# the loop


def train(engine: Engine, corpus: Corpus, out_dir: str | Path, *, model_config=None,
          train_config: TrainConfig | None = None, preset: str | None = None, resume: bool = False,
          device: str = "auto", seed: int = 0, minutes: float | None = None, previews: bool = True,
          extend_to: int | None = None) -> Iterator[object]:
    """Train, yielding events; see the module docstring. `extend_to` gives a resumed run a new total number
    of steps (the cosine schedule is recomputed for that total, so the learning rate rises again); without it
    a resumed run ends where it was planned to."""
    out_dir = Path(out_dir)
    last_path, best_path = out_dir / "last.safetensors", out_dir / "best.safetensors"
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    main_rank = rank == 0
    dev = pick_device(device)
    if world > 1:
        import torch.distributed as dist
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")

    # --- start fresh or pick up exactly where last.safetensors left off ---
    if resume:
        if not last_path.exists():
            raise CheckpointError(f"nothing to resume: {last_path} does not exist")
        tensors, meta = load_checkpoint(last_path, engine=engine.name)
        if meta["corpus"] != corpus.meta:
            raise ConfigError("this corpus does not match the run being resumed (its vocabulary or format "
                              "differs); resume with the corpus the run was started on")
        cfg = config_from_dict(TrainConfig, meta["train_config"], "checkpoint train_config")
        model = build_from_meta(engine, meta)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        step, max_steps, seed = meta["step"], extend_to or meta["max_steps"], meta["seed"]
        history = History(**meta["history"])
        best_val = meta["metrics"].get("best_val_loss")
        elapsed_before = meta.get("elapsed_seconds", 0.0)
        preset = meta.get("preset")
        # a time budget was turned into max_steps early in the run, unless the run stopped before that
        minutes = meta.get("minutes_left")
    else:
        if last_path.exists():
            raise ConfigError(f"{out_dir} already holds a training run; resume it, or choose another folder")
        cfg = train_config or TrainConfig()
        if not 0 < cfg.val_fraction < 1:
            raise ConfigError("val_fraction must be between 0 and 1: training needs held-out data to validate on")
        if model_config is None:
            raise ConfigError("model_config is required for a new run")
        torch.manual_seed(seed)
        model = engine.build_model(model_config, corpus.meta)
        step, max_steps = 0, cfg.max_steps
        history, best_val, elapsed_before, tensors = History(), None, 0.0, {}

    model.to(dev)
    optimizer = make_optimizer(model, cfg)
    if resume:
        restore_optimizer(optimizer, {k[6:]: v for k, v in tensors.items() if k.startswith("optim.")},
                          meta["optimizer_groups"])
    del tensors
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    amp_dtype = autocast_dtype(dev, cfg.precision)
    model_config_dict = dataclasses.asdict(model_config) if not resume else meta["model_config"]
    data_gen = torch.Generator()

    def evaluate() -> float:
        model.eval()
        with torch.no_grad(), torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            val = engine.evaluate(model, corpus, cfg.batch_size, cfg.seq_len)
        model.train()
        return val

    def save(path: Path, with_trainer: bool) -> None:
        tensors = model_tensors(model)
        meta_out = {
            "engine": engine.name, "engine_version": engine.version, "preset": preset,
            "model_config": model_config_dict, "train_config": dataclasses.asdict(cfg), "corpus": corpus.meta,
            "corpus_summary": {k: v for k, v in corpus.summary.items() if k != "warnings"},
            "step": step, "max_steps": max_steps, "seed": seed,
            "metrics": {"val_loss": history.val_losses[-1] if history.val_losses else None,
                        "best_val_loss": best_val, "loss_unit": f"nats/{corpus.unit[:-1]}"},
            "history": dataclasses.asdict(history), "elapsed_seconds": elapsed_before + (time.time() - t_start),
            "minutes_left": minutes - (time.time() - t_start) / 60 if calibrate_at and step < calibrate_at else None,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if with_trainer:
            opt_tensors, groups = optimizer_tensors(optimizer)
            tensors.update(opt_tensors)
            meta_out["optimizer_groups"] = groups
        save_checkpoint(path, tensors, meta_out)

    def checkpoint_and_report():
        nonlocal best_val
        val = evaluate()
        history.val_steps.append(step)
        history.val_losses.append(val)
        history.val_times.append(elapsed_before + time.time() - t_start)
        improved = best_val is None or val < best_val
        best_val = val if improved else best_val
        yield Evaluation(step, val, best_val)
        save(last_path, with_trainer=True)
        if improved:
            save(best_path, with_trainer=False)
        yield CheckpointSaved(str(last_path), step, improved)
        if previews:
            model.eval()
            chunks = list(engine.generate(model, {"corpus": corpus.meta}, engine.preview_settings()))
            model.train()
            yield Preview(step, chunks)

    t_start = time.time()
    model.train()
    reason = "completed"
    step_time = None   # exponential average of seconds per step
    eval_seconds = 0.0
    calibrate_at = step + 20 if minutes else None
    try:
        if step == 0 and main_rank:
            eval_started = time.time()
            yield from checkpoint_and_report()
            eval_seconds = time.time() - eval_started
        while step < max_steps:
            time_up = bool(minutes) and time.time() - t_start > minutes * 60
            if world > 1 and minutes:   # every rank must leave the loop at the same step
                flag = torch.tensor([float(time_up)], device=dev)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                time_up = bool(flag.item())
            if time_up:
                reason = "time limit"
                break
            lr = lr_at(step, cfg, max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.time()
            data_gen.manual_seed(step_seed(seed, rank, step))
            torch.manual_seed(step_seed(seed, rank, step) + 1)   # dropout masks of this step
            batch = tuple(t.to(dev, non_blocking=True) for t in corpus.batch(cfg.batch_size, cfg.seq_len, data_gen))
            with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = engine.loss(net, batch)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise StudioError(f"training diverged at step {step} (the loss became {loss_value}); the last "
                                  f"checkpoint is kept; start again with a lower learning rate (--set train.lr=...)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            dt = time.time() - t0
            step_time = dt if step_time is None else 0.9 * step_time + 0.1 * dt
            if step == calibrate_at:
                # a time budget becomes a step budget once the speed is known, so the cosine schedule ends
                # on time and the number is saved with the run (resume stays exact)
                left = minutes * 60 - (time.time() - t_start)
                per_step = step_time + eval_seconds / cfg.eval_interval
                max_steps = min(max_steps, step + max(1, int(0.97 * left / per_step)))
                if world > 1:
                    budget = torch.tensor([max_steps], device=dev)
                    torch.distributed.broadcast(budget, 0)
                    max_steps = int(budget.item())
            if not main_rank:
                continue
            # an event every step, so whoever drives this loop can stop it within one step
            logged = step % cfg.log_interval == 0 or step == max_steps
            if logged:
                history.steps.append(step)
                history.losses.append(loss_value)
            eta = (max_steps - step) * step_time
            if calibrate_at and step < calibrate_at:     # the step budget is not known yet; the time budget is
                eta = minutes * 60 - (time.time() - t_start)
            yield Progress(step, max_steps, loss_value, lr, batch[-1].numel() * world / step_time, corpus.unit,
                           elapsed_before + time.time() - t_start, eta, logged)
            if step % cfg.eval_interval == 0 or step == max_steps:
                yield from checkpoint_and_report()   # other ranks wait for this in their next all-reduce
        if main_rank and history.val_steps[-1:] != [step]:
            yield from checkpoint_and_report()
    except GeneratorExit:
        if main_rank:
            save(last_path, with_trainer=True)
        raise
    if world > 1:   # leave together: a rank exiting while another still saves can abort the group
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if main_rank:
        yield Finished(step, reason, str(best_path), best_val)

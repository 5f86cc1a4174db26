"""The one interface between the studio and a generation engine.

An engine is a small object (no torch at import time, so the GUI can read its description instantly)
that knows four things about one kind of sequence:

    describe   name, modality, stages, presets, sampling controls      -> drawn by the GUI and the CLI
    data       read_corpus(path) -> Corpus: training Batches, a validation stream, a summary, meta
    model      build_model(stage, config, meta, previous) -> nn.Module;  loss(model, batch, stage) -> Loss
    sample     generate(model, header, settings) -> stream of chunks;  export / load_sample / as_text

An engine trains in one or more **stages**, in order: most have one ("model"); a video engine trains a
tokenizer, then a prior over its frozen codes. A later stage's model holds the earlier stage's trained model
inside it (wrapped in engines.core.frozen.Frozen), so its checkpoint carries those weights and never refers
to another file. Only the last stage makes samples.

The shared trainer (engines/core/trainer.py) drives `data` and `model`; the worker, CLI and tests drive
`sample`. Chunks are small torch-free dataclasses of plain data (str, numbers, lists, numpy arrays) defined in
each engine's `chunks` module, because they cross a process boundary to reach the GUI. Engines are found
through the `sequence_studio.engines` entry point group (engines/__init__.py), so a separate package can add
one; docs/adding-an-engine.md walks through writing one.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError
from .resources import ASSETS_DIR, PRESETS_DIR


# ----------------------------------------------------------------------------------------------------
# sampling controls: enough for the GUI to draw a widget and the CLI to add a flag, knowing no engine

CONTROL_KINDS = ("float", "int", "seed", "bool", "text", "choice", "media", "strokes")


@dataclass(frozen=True)
class Control:
    name: str                    # settings key and CLI flag (--top-k for "top_k")
    label: str                   # shown next to the widget
    kind: str                    # one of CONTROL_KINDS; the GUI picks a field widget by kind
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    media: tuple[str, ...] = ()  # "media" (a file: primer audio, a video clip): the suffixes it accepts
    lines: int = 1               # "text": rows of the box it is typed in; more than 1 takes several lines
    before: Any = None           # a control added later: what samples recorded without it were made with,
                                 # when that is not its default (replaying one makes the same sample)

    def validate(self, value: Any, called: str | None = None) -> Any:
        """Check a value from a form, a saved setting or a command line against this control, converting
        only what is unambiguous (numbers written as text); anything else is a ConfigError naming the control
        as the user knows it (`called`: its label in the app, its flag on the command line)."""
        called = called or self.label
        if value is None:
            return self.default
        if self.kind in ("float", "int", "seed"):
            value = self._number(value, called)
            if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
                raise ConfigError(f"{called}: {value} is outside {self.minimum:g}..{self.maximum:g}")
        elif self.kind == "bool":
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                value = value.lower() in ("1", "true", "yes", "on")
            if not isinstance(value, bool):
                raise ConfigError(f"{called}: {value!r} is not true or false")
        elif self.kind in ("text", "choice", "media"):
            if not isinstance(value, str):
                raise ConfigError(f"{called}: expected text, got {type(value).__name__}")
            if self.kind == "choice" and self.choices and value not in self.choices:
                raise ConfigError(f"{called}: {value!r} is not one of {', '.join(self.choices)}")
            if self.kind == "media" and value and self.media and Path(value).suffix.lower() not in self.media:
                raise ConfigError(f"{called}: {Path(value).name} is not one of {', '.join(self.media)}")
        elif self.kind == "strokes":
            value = _strokes(value, called)
        else:
            raise ConfigError(f"{called}: unknown control kind {self.kind!r}")
        return value

    def _number(self, value: Any, called: str) -> float | int:
        """A finite float, or for "int" and "seed" a whole number; numbers may arrive as text (a CLI flag)."""
        if isinstance(value, str):
            try:
                value = float(value) if self.kind == "float" else int(value)
            except ValueError:
                raise ConfigError(f"{called}: {value!r} is not a valid {self.kind}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{called}: {value!r} is not a number")
        if not math.isfinite(value):
            raise ConfigError(f"{called}: {value} is not a finite number")
        if self.kind == "float":
            return float(value)
        if value != int(value):
            raise ConfigError(f"{called}: {value} is not a whole number")
        return int(value)


def _strokes(value: Any, label: str) -> list[list[list[float]]]:
    """Pen strokes: a list of strokes, each a list of [x, y] or [x, y, t] points (plain JSON-able lists)."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{label}: expected a list of pen strokes, got {type(value).__name__}")
    strokes = []
    for stroke in value:
        if not isinstance(stroke, (list, tuple)):
            raise ConfigError(f"{label}: each stroke must be a list of points")
        points = []
        for point in stroke:
            if (not isinstance(point, (list, tuple)) or len(point) not in (2, 3)
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in point)):
                raise ConfigError(f"{label}: a point must be [x, y] or [x, y, t] with finite numbers, got {point!r}")
            points.append([float(v) for v in point])
        strokes.append(points)
    return strokes


def recorded_settings(controls: list[Control], recorded: dict[str, Any]) -> dict[str, Any]:
    """The controls' values a recorded sample was made with, for replaying it: a control it does not name was
    added since, and takes the value that made samples then (`before`), else its default."""
    return {c.name: recorded[c.name] if c.name in recorded else c.default if c.before is None else c.before
            for c in controls}


def resolve_settings(controls: list[Control], settings: dict[str, Any], called=None) -> dict[str, Any]:
    """Fill defaults, check types and ranges, and pin the seed so a sample can be reproduced exactly.
    `called(control)` names a control in error messages (default: its label)."""
    known = {c.name: c for c in controls}
    unknown = set(settings) - set(known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    resolved = {c.name: c.validate(settings.get(c.name), called(c) if called else None) for c in controls}
    for c in controls:
        if c.kind == "seed" and resolved[c.name] is None:
            import secrets
            resolved[c.name] = secrets.randbelow(2**31)
    return resolved


# the controls every autoregressive engine offers; engines pick the ones that make sense for them
TEMPERATURE = Control("temperature", "Temperature", "float", 0.8, 0.05, 2.0, 0.05,
                      help="below 1: safer, more repetitive; above 1: wilder")
TOP_K = Control("top_k", "Top-k", "int", 0, 0, 100000, 1, help="keep only the k likeliest choices (0 = off)")
TOP_P = Control("top_p", "Top-p", "float", 1.0, 0.01, 1.0, 0.01,
                help="keep the smallest set of choices whose probability adds up to p (1 = off)")
SEED = Control("seed", "Seed", "seed", None, 0, 2**31 - 1, help="same seed and settings give the same sample")
VARIATIONS = Control("variations", "Variations", "int", 1, 1, 64, 1, help="samples generated side by side")


# ----------------------------------------------------------------------------------------------------
# what flows out of generate(): modality chunks plus this engine-neutral kind


@dataclass
class Notice:
    """Something the user should know about a sample (e.g. primer characters the model never saw)."""
    message: str


# ----------------------------------------------------------------------------------------------------
# stages, and what a stage's loss reports


@dataclass(frozen=True)
class Metric:
    """A number a stage reports beside its loss, e.g. Metric("bits", "bits/char") or Metric("psnr", "dB", True)."""
    name: str
    unit: str
    higher_is_better: bool = False


@dataclass(frozen=True)
class Stage:
    """One model an engine trains. A stage that `builds_on` another is trained after it, on its frozen output."""
    name: str                          # "model" for single-stage engines; folder name of its checkpoints
    title: str                         # for people: "VQ-VAE tokenizer"
    model_config_class: type
    unit: str                          # what the batch counts and the loss averages over: "char", "sample" ...
    metrics: tuple[Metric, ...] = ()
    builds_on: str | None = None
    loss_unit: str = ""                # default "nats/<unit>"; a non-likelihood loss names itself (e.g. "MSE")

    def __post_init__(self):
        if not self.loss_unit:
            object.__setattr__(self, "loss_unit", f"nats/{self.unit}")


@dataclass
class Batch:
    """What Corpus.batch returns and Engine.loss reads. `units` is how many units the loss averages over
    (padding and masked targets are not counted), so throughput and validation averages are exact."""
    tensors: dict[str, Any]
    units: int

    def to(self, device) -> "Batch":
        return Batch({k: v.to(device, non_blocking=True) for k, v in self.tensors.items()}, self.units)


@dataclass
class Loss:
    """Engine.loss's answer: `value`, the scalar tensor to minimise (mean per unit, in the stage's loss_unit),
    and the stage's metrics for this batch (floats or 0-dim tensors), each a mean per unit."""
    value: Any
    metrics: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------
# training configuration shared by every engine (the model part is each stage's own dataclass)


@dataclass
class TrainConfig:
    batch_size: int = 32
    seq_len: int = 128            # length of one training sequence, in the stage's units
    lr: float = 2e-3
    min_lr_ratio: float = 0.1     # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    max_steps: int = 2000
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 200      # steps between validation + checkpoint
    log_interval: int = 10        # steps between progress events
    precision: str = "auto"       # "auto" (bf16 where the hardware does it fast) | "fp32" | "bf16"
    val_fraction: float = 0.1
    val_units: int = 262_144      # a validation reads this many units (at most): its cost does not grow with the corpus


    def check(self) -> None:
        positive = ("batch_size", "seq_len", "max_steps", "eval_interval", "log_interval", "val_units")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, not {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be above 0, not {self.lr}")
        for name, low, high in (("min_lr_ratio", 0, 1), ("beta2", 0, 0.99999), ("val_fraction", 0, 1)):
            if not low <= getattr(self, name) <= high:
                raise ConfigError(f"train.{name} must be between {low} and {high}, not {getattr(self, name)}")
        for name in ("warmup_steps", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} cannot be negative ({getattr(self, name)})")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"train.precision must be auto, fp32 or bf16, not {self.precision!r}")


FIELD_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def config_from_dict(cls, values: dict, where: str):
    """Build a config dataclass, checking every value before anything is read or written: unknown keys,
    values of the wrong type (or not finite) and, through the class's own `check()`, values out of range
    are errors, not silently ignored."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(fields))}")
    for name, value in values.items():
        declared = fields[name].type if isinstance(fields[name].type, str) else fields[name].type.__name__
        expected = FIELD_TYPES.get(declared)
        wrong = expected and (not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)))
        if wrong or (isinstance(value, float) and not math.isfinite(value)):
            raise ConfigError(f"{where}: {name} = {value!r} is not a valid {declared}")
    config = cls(**values)
    if hasattr(config, "check"):
        try:
            config.check()
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    return config


@dataclass
class StageRecipe:
    model: dict                   # the stage's model config, as plain values
    train: TrainConfig
    start_from: str | None = None  # a checkpoint whose weights a new run starts from (fine-tuning)


@dataclass
class Preset:
    name: str
    description: str
    stages: dict[str, StageRecipe]
    # held-out loss against units trained, measured once on the engine's reference corpus (the validations of
    # one run over the preset's max_steps): [(units, loss), ...]. Units are the same on any machine, so a short
    # throughput probe turns a time budget into the preset that should do best in it (engines.core.budget)
    curve: list[tuple[float, float]] = field(default_factory=list)


def read_curve(table: dict, where: str) -> list[tuple[float, float]]:
    if not table:
        return []
    units, losses = table.get("units"), table.get("loss")
    ok = (set(table) == {"units", "loss"} and isinstance(units, list) and isinstance(losses, list)
          and len(units) == len(losses) >= 2 and all(isinstance(v, (int, float)) for v in units + losses)
          and units == sorted(units) and units[0] > 0)
    if not ok:
        raise ConfigError(f"{where}: [curve] needs `units` (increasing, above 0) and `loss`, two lists of "
                          f"numbers of the same length (at least 2)")
    return list(zip(map(float, units), map(float, losses)))


# ----------------------------------------------------------------------------------------------------
# the corpus an engine reads: the trainer only ever calls these


class Corpus:
    meta: dict          # JSON-able facts the model needs forever (e.g. the vocabulary); saved in checkpoints
    summary: dict       # facts about the corpus; "lines" (str) and "warnings" (str) are shown to the user
    fingerprint: dict | None = None   # the files' identity, set by trainer.prepare_run (engines need not)

    def batch(self, batch_size: int, seq_len: int, generator) -> Batch:
        """A random training batch (tensors on CPU) drawn with the given torch.Generator."""
        raise NotImplementedError

    def validation_batches(self, batch_size: int, seq_len: int) -> Iterator[Batch]:
        """Held-out batches in a fixed order that samples the whole split early (the trainer reads only
        TrainConfig.val_units of it, so a prefix must be representative)."""
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------
# the engine


class Engine:
    name: str = ""
    modality: str = ""              # picks the GUI's sample view: "text" | "ink" | "audio" | "video" | yours
    title: str = ""                 # one line for people
    stages: tuple[Stage, ...] = ()  # in training order; the last one samples
    default_preset: str = "small"
    export_formats: tuple[str, ...] = ()   # file suffixes, first is the default
    version: int = 1                # bump when a checkpoint from an older engine can no longer be loaded
    curve_corpus: str = ""          # the reference corpus the presets' [curve] tables were measured on

    # describe ------------------------------------------------------------------------------------
    def controls(self) -> list[Control]:
        raise NotImplementedError

    def stage(self, name: str | None = None) -> Stage:
        """A stage by name; None is the last (sampling) stage."""
        if name is None:
            return self.stages[-1]
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"the {self.name} engine has no stage {name!r}; its stages: "
                          f"{', '.join(s.name for s in self.stages)}")

    def presets(self) -> dict[str, Preset]:
        """Presets from presets/<engine>/*.toml: `description`, then per stage a model table and a train
        table: [model] and [train] for a single-stage engine, [<stage>.model] and [<stage>.train] otherwise.
        A single-stage preset may add a [curve] table: `units` and `loss`, lists of equal length."""
        presets = {}
        for path in sorted((PRESETS_DIR / self.name).glob("*.toml")):
            with open(path, "rb") as f:
                raw = tomllib.load(f)
            where = f"preset {path}"
            single = len(self.stages) == 1
            expected = {"description"} | ({"model", "train", "curve"} if single else {s.name for s in self.stages})
            if set(raw) - expected:
                raise ConfigError(f"{where}: unknown table(s) {', '.join(sorted(set(raw) - expected))}")
            recipes = {}
            for stage in self.stages:
                tables = raw if single else raw.get(stage.name, {})
                config_from_dict(stage.model_config_class, tables.get("model", {}), where)  # fail early on typos
                recipes[stage.name] = StageRecipe(tables.get("model", {}),
                                                  config_from_dict(TrainConfig, tables.get("train", {}), where))
            presets[path.stem] = Preset(path.stem, raw.get("description", ""), recipes,
                                        read_curve(raw.get("curve", {}), where))
        return presets

    def preset(self, name: str | None) -> Preset:
        presets = self.presets()
        name = name or self.default_preset
        if name not in presets:
            raise ConfigError(f"no preset {name!r} for {self.name}; choose from {', '.join(presets)}")
        return presets[name]

    def warm_up(self) -> None:
        """Prepare anything slow to start (e.g. compile kernels), so the first sample starts at once. The
        worker calls it in the background when it starts."""

    def bundled_models(self) -> list[Path]:
        """Pretrained checkpoints shipped in assets/<engine>/, usable from the first launch."""
        return sorted((ASSETS_DIR / self.name).glob("*.safetensors"))

    # data + model (torch lives behind these) -------------------------------------------------------
    def read_corpus(self, path: str | Path, val_fraction: float = 0.1, meta: dict | None = None,
                    model_config=None, skip_unseen: bool = False) -> Corpus:
        """Read and check a corpus. With `meta` (a trained model's corpus meta), encode it the way that
        model expects (e.g. its vocabulary), or raise CorpusError when it cannot be; with `skip_unseen` too
        (`studio eval` on outside data; never a resumed training), leave out what the model cannot read
        and count it in summary["warnings"] instead. `model_config` (the first
        stage's; default: the default preset's) matters to engines whose model decides how data is read (e.g.
        a sample rate)."""
        raise NotImplementedError

    def read_corpus_to_fine_tune(self, path: str | Path, val_fraction: float, meta: dict, model_config) -> Corpus:
        """The corpus a model with this `meta` is fine-tuned on (not a resumed run's, nor an evaluation's). By
        default read_corpus; an engine may let the meta take on what the new data brings without a weight (the
        ink engine: a style for each new writer)."""
        return self.read_corpus(path, val_fraction, meta, model_config)

    def build_model(self, stage: Stage, config, corpus_meta: dict, previous=None):
        """A new model for `stage`. For a stage that builds on another, `previous` is that stage's trained
        model: keep it as a Frozen(previous) attribute, so it is saved with this stage's weights."""
        raise NotImplementedError

    def loss(self, model, batch: Batch, stage: Stage) -> Loss:
        raise NotImplementedError

    def validate(self, model, corpus: Corpus, stage: Stage, batch_size: int, seq_len: int) -> Iterator[tuple[Loss, int]]:
        """(loss, units) of successive validation batches, the model in eval mode under no_grad; the trainer
        stops reading after TrainConfig.val_units. Override to carry state from batch to batch (an RNN)."""
        device = next(model.parameters()).device
        for batch in corpus.validation_batches(batch_size, seq_len):
            yield self.loss(model, batch.to(device), stage), batch.units

    # sample -------------------------------------------------------------------------------------
    def generate(self, model, header: dict, settings: dict) -> Iterator[Any]:
        """Stream the sample as chunks (and Notices). `header` is the checkpoint's (its "corpus" meta, its
        config ...); `settings` were resolved with resolve_settings."""
        raise NotImplementedError

    def suggestions(self, header: dict) -> dict[str, list[str]]:
        """Values the model in `header` knows for its text controls, by control name (the ink engine's writers,
        the audio engine's labels): the app lists them beside the field. From the header alone, without torch.
        By default none."""
        return {}

    def prepare(self, model, header: dict, settings: dict) -> None:
        """Do now what the first output of generate(model, header, settings) would otherwise wait for (the ink
        engine reads the chosen hand's primer line through the model). The app calls it in the worker while
        the user is still choosing settings; it draws nothing. By default there is nothing to do."""

    def preview(self, model, header: dict, stage: Stage, corpus: Corpus) -> list:
        """The chunks the Train page shows in the engine's view after each validation of `stage`. By default a
        short sample once the last stage trains, and nothing before it: an earlier stage cannot sample, but its
        engine may show something else (the video tokenizer shows clips beside their reconstructions)."""
        if stage is not self.stages[-1]:
            return []
        return list(self.generate(model, header, self.preview_settings()))

    def preview_settings(self) -> dict:
        """Settings for the short samples shown while training: the defaults, with a fixed seed."""
        return resolve_settings(self.controls(), {c.name: 0 for c in self.controls() if c.kind == "seed"})

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        """Write chunks (as generate made them, or as load_sample read them) to `path`, whose suffix is one of
        export_formats; the settings go into the file or a .json beside it."""
        raise NotImplementedError

    def load_sample(self, path: Path) -> tuple[list, dict]:
        """(chunks, settings) of a sample this engine exported, so History can show it and convert it."""
        raise NotImplementedError

    def as_text(self, chunks: list, variation: int = 0) -> str | None:
        """The sample as text for a terminal, or None when it is not text (the CLI then needs --out)."""
        return None

"""The one interface between the studio and a generation engine.

An engine is a small object (no torch at import time, so the GUI can read its description instantly)
that knows four things about one kind of sequence:

    describe   name, modality, presets, sampling controls          -> drawn by the GUI and the CLI
    data       read_corpus(path) -> Corpus (train/val batches, summary, metadata kept in the checkpoint)
    model      build_model(config, corpus_meta) -> nn.Module, loss(model, batch) -> scalar tensor
    sample     generate(model, meta, settings) -> stream of chunks;  export(chunks, settings, path)

The shared trainer (engines/core/trainer.py) drives `data` and `model`; the worker, CLI and tests drive
`sample`. Chunks are plain picklable data (str, lists, numpy arrays), never tensors, because they cross
a process boundary to reach the GUI. Engines are found through the `sequence_studio.engines` entry point
group (engines/__init__.py), so a separate package can add one.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError
from .resources import ASSETS_DIR, PRESETS_DIR


# ----------------------------------------------------------------------------------------------------
# sampling controls: enough for the GUI to draw a widget and the CLI to add a flag, knowing no engine


@dataclass(frozen=True)
class Control:
    name: str                    # settings key and CLI flag (--top-k for "top_k")
    label: str                   # shown next to the widget
    kind: str                    # "float" | "int" | "text" | "file" | "choice" | "seed" | "bool"
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def validate(self, value: Any) -> Any:
        """Coerce a value from a form or command line to this control's type, or raise ConfigError."""
        if value is None:
            return None if self.kind in ("seed", "text", "file", "choice") and self.default is None else self.default
        try:
            if self.kind == "float":
                value = float(value)
            elif self.kind in ("int", "seed"):
                value = int(value)
            elif self.kind == "bool":
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.label}: {value!r} is not a valid {self.kind}") from None
        if self.kind == "choice" and self.choices and value not in self.choices:
            raise ConfigError(f"{self.label}: {value!r} is not one of {', '.join(self.choices)}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{self.label}: {value} is outside {self.minimum}..{self.maximum}")
        return value


def resolve_settings(controls: list[Control], settings: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, check types and ranges, and pin the seed so a sample can be reproduced exactly."""
    known = {c.name: c for c in controls}
    unknown = set(settings) - set(known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    resolved = {c.name: c.validate(settings.get(c.name)) for c in controls}
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
# what flows out of generate(): modality chunks plus these two engine-neutral kinds


@dataclass
class Notice:
    """Something the user should know about a sample (e.g. primer characters the model never saw)."""
    message: str


# ----------------------------------------------------------------------------------------------------
# training configuration shared by every engine (the model part is each engine's own dataclass)


@dataclass
class TrainConfig:
    batch_size: int = 32
    seq_len: int = 128            # length of one training sequence, in the engine's units
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


def config_from_dict(cls, values: dict, where: str):
    """Build a config dataclass; unknown keys are an error, not silently ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    return cls(**values)


@dataclass
class Preset:
    name: str
    description: str
    model: dict
    train: TrainConfig


# ----------------------------------------------------------------------------------------------------
# the corpus an engine reads: the trainer only ever calls these


class Corpus:
    meta: dict          # JSON-able facts the model needs forever (e.g. the vocabulary); saved in checkpoints
    summary: dict       # facts about the corpus; "lines" (str) and "warnings" (str) are shown to the user
    unit: str           # what one sequence element is called in throughput: "chars", "samples", ...

    def batch(self, batch_size: int, seq_len: int, generator) -> tuple:
        """A random training batch (tensors on CPU) drawn with the given torch.Generator."""
        raise NotImplementedError

    def validation_batches(self, batch_size: int, seq_len: int) -> Iterator[tuple]:
        """The validation split, in a fixed order."""
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------
# the engine


class Engine:
    name: str = ""
    modality: str = ""              # "text" | "ink" | "audio" | "video": picks the GUI's view
    title: str = ""                 # one line for people
    model_config_class: type = object
    default_preset: str = "small"
    export_formats: tuple[str, ...] = ()   # file suffixes, first is the default
    version: int = 1                # bump when a checkpoint from an older engine can no longer be loaded

    # describe ------------------------------------------------------------------------------------
    def controls(self) -> list[Control]:
        raise NotImplementedError

    def presets(self) -> dict[str, Preset]:
        """Presets from presets/<engine>/*.toml: `description`, a [model] table and a [train] table."""
        presets = {}
        for path in sorted((PRESETS_DIR / self.name).glob("*.toml")):
            with open(path, "rb") as f:
                raw = tomllib.load(f)
            where = f"preset {path}"
            config_from_dict(self.model_config_class, raw.get("model", {}), where)  # fail early on typos
            train = config_from_dict(TrainConfig, raw.get("train", {}), where)
            presets[path.stem] = Preset(path.stem, raw.get("description", ""), raw.get("model", {}), train)
        return presets

    def preset(self, name: str | None) -> Preset:
        presets = self.presets()
        name = name or self.default_preset
        if name not in presets:
            raise ConfigError(f"no preset {name!r} for {self.name}; choose from {', '.join(presets)}")
        return presets[name]

    def bundled_models(self) -> list[Path]:
        """Pretrained checkpoints shipped in assets/<engine>/, usable from the first launch."""
        return sorted((ASSETS_DIR / self.name).glob("*.safetensors"))

    # data + model (torch lives behind these) -------------------------------------------------------
    def read_corpus(self, path: str | Path, val_fraction: float = 0.1, meta: dict | None = None,
                    model_config=None) -> Corpus:
        """Read and check a corpus. With `meta` (a trained model's corpus meta), encode it the way that
        model expects (e.g. its vocabulary), or raise CorpusError when it cannot be. `model_config` (default:
        the default preset's) matters to engines whose model decides how data is read (e.g. a sample rate)."""
        raise NotImplementedError

    def build_model(self, model_config, corpus_meta: dict):
        raise NotImplementedError

    def loss(self, model, batch):
        """Mean loss per sequence element in nats, as a scalar tensor."""
        raise NotImplementedError

    def evaluate(self, model, corpus: Corpus, batch_size: int, seq_len: int) -> float:
        """Mean validation loss (nats per unit) over the whole validation split."""
        total, count = 0.0, 0
        device = next(model.parameters()).device
        for batch in corpus.validation_batches(batch_size, seq_len):
            batch = tuple(t.to(device) for t in batch)
            n = batch[-1].numel()
            total += self.loss(model, batch).item() * n
            count += n
        return total / max(count, 1)

    # sample -------------------------------------------------------------------------------------
    def generate(self, model, meta: dict, settings: dict) -> Iterator[Any]:
        """Stream the sample as chunks (and Notices). `settings` were resolved with resolve_settings."""
        raise NotImplementedError

    def preview_settings(self) -> dict:
        """Settings for the short samples shown while training."""
        return {}

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        raise NotImplementedError

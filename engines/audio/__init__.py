"""The audio engine: a WaveNet over µ-law audio, optionally conditioned on labels, generated with cached
per-layer queues fast enough to play while it is being made.

Importing this module is cheap (no torch, numba or librosa): the GUI reads the engine's description at
start-up; the worker imports the rest when it first needs it.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..core.interface import SEED, TEMPERATURE, VARIATIONS, Control, Engine, Notice, resolve_settings
from .config import AudioModelConfig


class AudioEngine(Engine):
    name = "audio"
    modality = "audio"
    title = "Audio — WaveNet over µ-law samples, with labels (speaker, class)"
    default_preset = "small"
    export_formats = (".wav", ".flac")
    model_config_class = AudioModelConfig

    def controls(self) -> list[Control]:
        return [
            Control("seconds", "Length (s)", "float", 2.0, 0.05, 600.0, 0.5, help="seconds of audio per variation"),
            Control("label", "Label", "text", "", help="e.g. '7 jackson' or 'digit=7'; fields left out are drawn "
                                                        "at random"),
            Control("primer", "Primer audio", "file", "", help="an audio file the model continues"),
            dataclasses.replace(TEMPERATURE, default=1.0),
            SEED, VARIATIONS,
        ]

    def preview_settings(self) -> dict:
        return resolve_settings(self.controls(), {"seconds": 0.5, "seed": 0})

    def read_corpus(self, path, val_fraction: float = 0.1, meta: dict | None = None, model_config=None):
        from .data import read_audio_corpus
        config = model_config or AudioModelConfig(**self.preset(None).model)
        return read_audio_corpus(path, config, val_fraction, meta)

    def build_model(self, model_config, corpus_meta: dict):
        from .model import WaveNet
        return WaveNet(model_config, [len(v) for v in corpus_meta["labels"].values()])

    def loss(self, model, batch):
        codes, labels, positions, targets = batch
        return model(codes, labels, positions, targets)[1]

    def evaluate(self, model, corpus, batch_size: int, seq_len: int) -> float:
        """Mean nats per held-out sample, every sample of every validation recording counted once."""
        import torch
        total, count = 0.0, 0
        device = next(model.parameters()).device
        with torch.no_grad():
            for codes, labels, positions, targets in corpus.validation_batches(batch_size, max(seq_len, 4000)):
                logits, _ = model(codes.to(device), labels.to(device), positions.to(device))
                targets = targets.to(device)
                total += torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum").item()
                count += int((targets >= 0).sum())
        return total / max(count, 1)

    def generate(self, model, meta: dict, settings: dict):
        from .sample import generate
        return generate(model, meta["corpus"], settings)

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        """WAV or FLAC, one channel per variation, the settings in the file's comment tag (and a .json beside
        it, like every export)."""
        import numpy as np
        import soundfile as sf
        path = Path(path)
        audio = [c.audio for c in chunks if not isinstance(c, Notice)]
        rate = next(c.rate for c in chunks if not isinstance(c, Notice)) if audio else 8000
        samples = np.concatenate(audio, axis=1).T if audio else np.zeros((0, settings.get("variations", 1)))
        fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
        if fmt is None:
            from ..core.errors import ConfigError
            raise ConfigError(f"cannot export audio as {path.suffix!r}; choose .wav or .flac")
        with sf.SoundFile(str(path), "w", rate, samples.shape[1], subtype="PCM_16", format=fmt) as f:
            f.comment = json.dumps(settings, separators=(",", ":"))
            f.software = "Sequence Studio"
            f.title = settings.get("label") or "generated audio"
            f.write(samples)
        path.with_name(path.name + ".json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        return path

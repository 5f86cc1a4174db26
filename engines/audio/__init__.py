"""The audio engine: a WaveNet over µ-law audio, optionally conditioned on labels, generated with cached
per-layer queues fast enough to play while it is being made.

Importing this module is cheap (no torch, numba or librosa): the GUI reads the engine's description at
start-up; the worker imports the rest when it first needs it.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from ..core.errors import ConfigError, CorpusError
from ..core.interface import (SEED, TEMPERATURE, VARIATIONS, Control, Engine, Loss, Metric, Stage,
                              resolve_settings)
from .chunks import AudioChunk
from .config import AudioModelConfig

AUDIO_FILES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")


class AudioEngine(Engine):
    name = "audio"
    modality = "audio"
    title = "Audio — WaveNet over µ-law samples, with labels (speaker, class)"
    default_preset = "small"
    export_formats = (".wav", ".flac")
    stages = (Stage("model", "WaveNet", AudioModelConfig, unit="sample", metrics=(Metric("bits", "bits/sample"),)),)

    def controls(self) -> list[Control]:
        return [
            Control("seconds", "Length (s)", "float", 2.0, 0.05, 600.0, 0.5, help="seconds of audio per variation"),
            Control("label", "Label", "text", "", help="e.g. '7 jackson' or 'digit=7'; fields left out are drawn "
                                                        "at random"),
            Control("primer", "Primer audio", "media", "", help="an audio file the model continues", media=AUDIO_FILES),
            Control("keep_primer", "Keep primer", "bool", True,
                    help="begin the output with the primer audio (off: only what the model adds)"),
            Control("word_seconds", "Word length (s)", "float", 0.0, 0.0, 10.0, 0.05,
                    help="for a model told its position in shares of a recording (e.g. the spoken digits): how "
                         "long the word is; 0 draws it from the lengths of the recordings it learnt from"),
            dataclasses.replace(TEMPERATURE, default=1.0),
            SEED, VARIATIONS,
        ]

    def preview_settings(self) -> dict:
        return resolve_settings(self.controls(), {"seconds": 0.5, "seed": 0})

    def warm_up(self) -> None:
        from .fast import warm_up
        warm_up()

    def read_corpus(self, path, val_fraction: float = 0.1, meta: dict | None = None, model_config=None,
                    skip_unseen: bool = False):
        # files the model cannot read (labels it never saw) are always left out with a warning naming them
        from .data import read_audio_corpus
        config = model_config or AudioModelConfig(**self.preset(None).stages["model"].model)
        return read_audio_corpus(path, config, val_fraction, meta)

    def build_model(self, stage, config, corpus_meta: dict, previous=None):
        from .model import WaveNet
        fields = list(corpus_meta["labels"])       # (the corpus has checked that position_per names one)
        return WaveNet(config, [len(v) for v in corpus_meta["labels"].values()],
                       fields.index(config.position_per) if config.position_per else None)

    def loss(self, model, batch, stage):
        t = batch.tensors
        nats = model(t["codes"], t["labels"], t["positions"], t["targets"])[1]
        return Loss(nats, {"bits": nats.detach() / math.log(2)})

    def validate(self, model, corpus, stage, batch_size: int, seq_len: int):
        # long windows: every window re-reads a receptive field of context it does not score
        yield from super().validate(model, corpus, stage, batch_size, max(seq_len, 4000))

    def suggestions(self, header: dict) -> dict[str, list[str]]:
        """Each label value alone (the other fields are drawn at random); as field=value where two fields share it."""
        fields = (header.get("corpus") or {}).get("labels") or {}
        seen = [v for values in fields.values() for v in values]
        return {"label": [v if seen.count(v) == 1 else f"{field}={v}"
                          for field, values in fields.items() for v in values]} if seen else {}

    def generate(self, model, header: dict, settings: dict):
        from .sample import generate
        return generate(model, header["corpus"], settings)

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        """WAV or FLAC, one channel per variation, the settings in the file's comment tag (and a .json beside
        it, like every export)."""
        import numpy as np
        import soundfile as sf
        path = Path(path)
        audio = [c.audio for c in chunks if isinstance(c, AudioChunk)]
        rate = next(c.rate for c in chunks if isinstance(c, AudioChunk)) if audio else 8000
        samples = np.concatenate(audio, axis=1).T if audio else np.zeros((0, settings.get("variations", 1)))
        fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
        if fmt is None:
            raise ConfigError(f"cannot export audio as {path.suffix!r}; choose .wav or .flac")
        if fmt == "FLAC" and samples.shape[1] > 8:         # one channel per variation; FLAC holds at most 8
            raise ConfigError(f"FLAC holds at most 8 channels, one per variation, and this sample has "
                              f"{samples.shape[1]}: export it as .wav")
        try:
            with sf.SoundFile(str(path), "w", rate, samples.shape[1], subtype="PCM_16", format=fmt) as f:
                f.comment = json.dumps(settings, separators=(",", ":"))
                f.software = "Sequence Studio"
                f.title = settings.get("label") or "generated audio"
                f.write(samples)
        except sf.LibsndfileError as e:     # libsndfile says only "System error" for a place that cannot be written
            reason = "its folder does not exist" if not path.parent.is_dir() else f"libsndfile: {e.error_string}"
            raise OSError(f"cannot write {path}: {reason}") from None
        path.with_name(path.name + ".json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        return path

    def load_sample(self, path: Path) -> tuple[list, dict]:
        import soundfile as sf
        path = Path(path)
        try:
            with sf.SoundFile(str(path)) as f:
                samples, rate, comment = f.read(dtype="float32", always_2d=True), f.samplerate, f.comment
        except (RuntimeError, sf.LibsndfileError) as e:
            raise CorpusError(f"cannot read {path} as audio: {e}") from None
        try:        # export wrote the settings into the comment tag
            settings = json.loads(comment) if comment else {}
        except json.JSONDecodeError:
            settings = {}
        return [AudioChunk(samples.T.copy(), rate)], settings

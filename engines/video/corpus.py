"""The video engine's corpora: a folder of the user's clips, or the built-in moving digits.

Both hand the trainer whole clips of the preset's shape, (B, C, T, S, S) floats in [-1, 1]; a batch counts
frames (B * T), the unit both stages report throughput and validation in. The tokenizer reconstructs the
clips; the prior encodes them with its frozen tokenizer and models the codes.

    VideoCorpus          clips read by data.read_clips; every n-th clip is held out
    MovingDigitsCorpus   `--data moving-digits`: fresh clips for every training batch (an endless supply,
                         as Moving MNIST is usually trained) from the first 90% of the MNIST test digits, and a
                         fixed set of held-out clips from the digits the training never sees
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..core.errors import CorpusError
from ..core.interface import Batch, Corpus
from .config import TokenizerConfig
from .data import CANVAS, MNIST_DIR, MOVING_DIGITS_FPS, bouncing_digits, fit_frames, read_clips, read_mnist

MOVING_DIGITS = "moving-digits"         # the --data keyword for the built-in data set
VALIDATION_CLIPS = 256                  # held-out moving-digits clips (a validation reads val_units frames of them)
DIGITS_PER_CLIP = 2


def as_floats(clips: torch.Tensor) -> torch.Tensor:
    """uint8 clips -> floats in [-1, 1], what the tokenizer reads."""
    return clips.float() / 127.5 - 1.0


class VideoCorpus(Corpus):
    """Clips cut from the user's videos and image sequences; every n-th clip held out for validation."""

    def __init__(self, path, config: TokenizerConfig, val_fraction: float, meta: dict | None):
        if meta and meta.get("fps"):    # a trained model's clips run at its own rate: read these at that rate
            config = dataclasses.replace(config, fps=meta["fps"])
        found = read_clips(path, config)
        n = len(found.clips)
        if val_fraction >= 1:
            held = torch.ones(n, dtype=torch.bool)
        else:
            if n < 2:
                raise CorpusError(f"{path}: only {n} clip of {config.clip_frames} frames; training needs at least "
                                  f"two (one to learn from, one to check on): add video or shorten the clips "
                                  f"(tokenizer.clip_frames)")
            # one clip in `every`, and at least one of a few
            every = min(max(2, round(1 / val_fraction)), n) if val_fraction > 0 else n + 1
            held = torch.arange(n) % every == every - 1
        self.train, self.val = found.clips[~held], found.clips[held]
        self.meta = {"source": "folder", "fps": found.fps}
        lines = list(found.lines)
        lines.append(f"all {n} clip(s) held out" if val_fraction >= 1 else
                     f"{len(self.train)} clip(s) to train on, {len(self.val)} held out (one clip in {every})")
        self.summary = {"lines": lines, "warnings": [f"skipped {reason}" for reason in found.skipped],
                        "source": str(path), **found.facts}

    def batch(self, batch_size: int, seq_len: int, generator) -> Batch:
        if not len(self.train):
            raise CorpusError("no clips to train on: every clip is held out")
        return clip_batch(self.train[torch.randint(len(self.train), (batch_size,), generator=generator)])

    def validation_batches(self, batch_size: int, seq_len: int):
        return held_out_batches(self.val, batch_size)


class MovingDigitsCorpus(Corpus):
    """Two MNIST test digits bouncing in 64x64 (Srivastava et al. 2015), fitted to the preset. Training draws
    new clips for every batch from the generator it is given, so resume stays exact; validation is a fixed
    set made with seed 0 from held-out digits."""

    def __init__(self, config: TokenizerConfig, val_fraction: float, folder: Path = MNIST_DIR):
        digits = read_mnist(folder)
        split = 0 if val_fraction >= 1 else int(round(len(digits) * (1 - val_fraction)))
        self.config = config
        self.train_digits, self.val_digits = digits[:split], digits[split:]
        if not len(self.val_digits) or (val_fraction < 1 and not len(self.train_digits)):
            raise CorpusError("moving digits: val_fraction leaves no digits to train or to validate on")
        self.val = self.clips(self.val_digits, VALIDATION_CLIPS, np.random.default_rng(0))
        self.fps = config.fps or MOVING_DIGITS_FPS
        self.meta = {"source": MOVING_DIGITS, "fps": self.fps, "digits_per_clip": DIGITS_PER_CLIP}
        T, S = config.clip_frames, config.frame_size
        train = f"fresh clips for every batch from MNIST test digits 0-{split - 1}" if split else "none"
        self.summary = {
            "lines": [f"moving digits (built in): {DIGITS_PER_CLIP} MNIST digits bouncing in {CANVAS}x{CANVAS}, "
                      f"{T} frames at {self.fps:g} fps" + (f", scaled to {S}x{S}" if S != CANVAS else "")
                      + ("" if config.channels == 1 else ", grey as RGB"),
                      f"training: {train}; validation: {VALIDATION_CLIPS} fixed clips (seed 0) from digits "
                      f"{split}-{len(digits) - 1}, never trained on",
                      "MNIST: LeCun, Cortes and Burges (yann.lecun.com/exdb/mnist)"],
            "warnings": [], "source": MOVING_DIGITS, "clips": VALIDATION_CLIPS, "frames": VALIDATION_CLIPS * T,
            "fps": self.fps, "resolution": [S, S], "sources": 1, "skipped": 0}

    def clips(self, digits: np.ndarray, n: int, rng: np.random.Generator) -> torch.Tensor:
        """n clips (n, C, T, S, S) uint8 of the preset's shape."""
        T, S, C = self.config.clip_frames, self.config.frame_size, self.config.channels
        video = torch.from_numpy(bouncing_digits(digits, n, T, DIGITS_PER_CLIP, rng))      # (n, T, 64, 64)
        frames = fit_frames(video.view(n * T, 1, CANVAS, CANVAS), S).expand(-1, C, -1, -1)
        return frames.reshape(n, T, C, S, S).transpose(1, 2).contiguous()

    def batch(self, batch_size: int, seq_len: int, generator) -> Batch:
        seed = int(torch.randint(2**62, (1,), generator=generator))
        return clip_batch(self.clips(self.train_digits, batch_size, np.random.default_rng(seed)))

    def validation_batches(self, batch_size: int, seq_len: int):
        return held_out_batches(self.val, batch_size)


def clip_batch(clips: torch.Tensor) -> Batch:
    """uint8 clips (B, C, T, S, S) as a training Batch of floats in [-1, 1]; its units are frames."""
    return Batch({"video": as_floats(clips)}, clips.size(0) * clips.size(2))


def held_out_batches(val: torch.Tensor, batch_size: int):
    for i in range(0, len(val), batch_size):
        yield clip_batch(val[i:i + batch_size])


def read_video_corpus(path, config: TokenizerConfig, val_fraction: float, meta: dict | None):
    if str(path).strip() == MOVING_DIGITS and not Path(MOVING_DIGITS).exists():
        return MovingDigitsCorpus(config, val_fraction)
    return VideoCorpus(path, config, val_fraction, meta)

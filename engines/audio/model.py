"""WaveNet (van den Oord et al. 2016): a stack of dilated causal convolutions over 8-bit µ-law audio.

The model reads the µ-law codes of the last `receptive_field` samples and predicts a distribution over the
256 codes of the next one. Convolutions are unpadded ("valid"), so a window of T + receptive_field - 1 codes
gives exactly T predictions, each from its full receptive field: training never sees a made-up context.

Global conditioning (a speaker, a digit, a folder name) is one embedding per label field, summed, and added
to every layer's gate as a bias. Optionally the model also hears where in a recording it is (10 ms steps
since its first sample): a receptive field of ~0.1 s cannot tell the start of "seven" from its end, and this
one cheap input lets a short training run say the sounds of a word in order. Summed with the labels, the
position can only add the same course to every word; with `position_per` one label field (the digit) gets a
course of its own per value, a learnt script of when each word makes which sound. Counted in shares of the
recording's length instead of 10 ms steps (`position_shares`), the script holds for a word said fast or slowly,
and a row for "after the recording" says the word is over; generation then draws each word's length from the
training recordings'. Fast sample-by-sample generation reuses these weights in fast.py.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import AudioModelConfig

MU = 255
SILENCE = 128          # the µ-law code of 0.0


def mu_law_encode(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> uint8 codes; µ-law spends the 256 levels where speech has most detail."""
    audio = np.clip(audio, -1.0, 1.0)
    companded = np.sign(audio) * np.log1p(MU * np.abs(audio)) / np.log1p(MU)
    return np.round((companded + 1) / 2 * MU).astype(np.uint8)


def mu_law_decode(codes: np.ndarray) -> np.ndarray:
    companded = codes.astype(np.float32) / MU * 2 - 1
    return (np.sign(companded) * np.expm1(np.abs(companded) * np.log1p(MU)) / MU).astype(np.float32)


def dilations(config: AudioModelConfig) -> list[int]:
    return [2 ** i for _ in range(config.stacks) for i in range(config.layers_per_stack)]


POSITION_STEP_SECONDS = 0.01


def position_steps(config: AudioModelConfig) -> int:
    """Rows of the position table per course: 0 (positions off); else 'before the recording', then one per 10 ms
    (position_seconds) or one per share of its length and 'after it' (position_shares)."""
    if config.position_shares > 0:
        return config.position_shares + 2
    return 1 + round(config.position_seconds / POSITION_STEP_SECONDS) if config.position_seconds > 0 else 0


def position_ratio(config: AudioModelConfig, lengths):
    """(num, den): sample offset x falls in row x * num // den + 1 (den (B, 1): each recording's length in
    samples, with position_shares)."""
    if config.position_shares > 0:
        return config.position_shares, lengths
    return 1, max(1, round(config.sample_rate * POSITION_STEP_SECONDS))


def position_index(offsets, config: AudioModelConfig, lengths=None):
    """Samples since a recording's first sample (negative before it) -> rows of the position table. `lengths`
    (B, 1) are the recordings' lengths in samples, needed with position_shares."""
    num, den = position_ratio(config, lengths)
    return (offsets * num // den + 1).clip(0, max(position_steps(config) - 1, 0))


def receptive_field(config: AudioModelConfig) -> int:
    """Samples the prediction of the next sample depends on: the previous one plus every layer's reach."""
    return 1 + sum(dilations(config))


class ResidualLayer(nn.Module):
    def __init__(self, config: AudioModelConfig, dilation: int):
        super().__init__()
        c = config
        self.dilation = dilation
        self.dilated = nn.Conv1d(c.residual_channels, 2 * c.gate_channels, kernel_size=2, dilation=dilation)
        self.residual = nn.Conv1d(c.gate_channels, c.residual_channels, 1)
        self.skip = nn.Conv1d(c.gate_channels, c.skip_channels, 1)

    def forward(self, x, gate_bias, keep: int):
        """x: (B, R, T) -> the next layer's input (B, R, T - dilation) and the skip output of the last `keep`
        positions (only those reach the output: the skip path is not computed for the rest). gate_bias is
        None, (B, 2G, 1) or (B, 2G, T - dilation)."""
        h = self.dilated(x)
        if gate_bias is not None:
            h = h + gate_bias
        filt, gate = h.chunk(2, dim=1)
        z = torch.tanh(filt) * torch.sigmoid(gate)
        return x[:, :, self.dilation:] + self.residual(z), self.skip(z[:, :, -keep:])


class WaveNet(nn.Module):
    def __init__(self, config: AudioModelConfig, label_sizes: list[int], position_field: int | None = None):
        """label_sizes: how many values each label field has; position_field: the index of the field whose
        values each get their own course over time (config.position_per), None for one course shared by all."""
        super().__init__()
        c = config
        self.config = config
        self.receptive_field = receptive_field(config)
        self.embed = nn.Embedding(256, c.residual_channels)   # the causal "conv" over the previous sample
        self.labels = nn.ModuleList(nn.Embedding(n, c.label_channels) for n in label_sizes) if label_sizes else None
        self.position_field = position_field
        courses = label_sizes[position_field] if position_field is not None else 1
        self.positions = nn.Embedding(courses * position_steps(c), c.label_channels) if position_steps(c) else None
        if self.positions is not None:     # rows no recording is long enough to train stay neutral, not random
            nn.init.zeros_(self.positions.weight)
        conditioned = self.labels is not None or self.positions is not None
        self.condition_to_gates = nn.ModuleList(nn.Linear(c.label_channels, 2 * c.gate_channels, bias=False)
                                                for _ in dilations(c)) if conditioned else None
        self.layers = nn.ModuleList(ResidualLayer(c, d) for d in dilations(c))
        self.head1 = nn.Conv1d(c.skip_channels, c.skip_channels, 1)
        self.head2 = nn.Conv1d(c.skip_channels, 256, 1)

    def label_vector(self, labels):
        """(B, fields) label indices -> (B, label_channels), or None for an unconditioned model."""
        if self.labels is None:
            return None
        return sum(embedding(labels[:, i]) for i, embedding in enumerate(self.labels))

    def label_gate_biases(self, labels) -> list:
        """Each layer's gate bias from the labels: (B, 2G), or None."""
        vector = self.label_vector(labels)
        if vector is None:
            return [None] * len(self.layers)
        return [project(vector) for project in self.condition_to_gates]

    def position_gate_biases(self) -> list:
        """Each layer's gate bias for every row of the position table: (courses x steps, 2G), or None."""
        if self.positions is None:
            return [None] * len(self.layers)
        return [project(self.positions.weight) for project in self.condition_to_gates]

    def position_course_start(self, labels):
        """(B,) the first row of each variation's course in the position table (0 with one shared course)."""
        if self.position_field is None:
            return torch.zeros(len(labels) if labels is not None else 1, dtype=torch.long)
        return labels[:, self.position_field] * position_steps(self.config)

    def forward(self, codes, labels=None, positions=None, targets=None):
        """codes: (B, T) int64 and positions (B, T) rows of the position table (if the model uses them) ->
        logits (B, 256, T - receptive_field + 1); with targets, also the mean cross-entropy in nats
        (targets of -100 are not counted)."""
        keep = codes.size(1) - self.receptive_field + 1
        if keep < 1:
            raise ValueError(f"need at least {self.receptive_field} samples of context, got {codes.size(1)}")
        x = self.embed(codes).transpose(1, 2)
        where = None
        if self.positions is not None:                                                    # (B, T, C)
            where = self.positions(positions + self.position_course_start(labels).to(positions.device)[:, None])
        skips = 0
        label_biases = self.label_gate_biases(labels)
        for i, layer in enumerate(self.layers):
            bias = None if label_biases[i] is None else label_biases[i][:, :, None]
            if where is not None:   # a layer's output at t belongs to input position t, its later tap
                length = x.size(2) - layer.dilation
                by_position = self.condition_to_gates[i](where[:, -length:]).transpose(1, 2)
                bias = by_position if bias is None else bias + by_position
            x, skip = layer(x, bias, keep)
            skips = skips + skip
        logits = self.head2(F.relu(self.head1(F.relu(skips))))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.float(), targets)

    def flops_per_sample(self) -> int:
        """Multiply-adds x 2 for one generated sample (the cached path: every layer once, the head once)."""
        c = self.config
        per_layer = 2 * c.residual_channels * 2 * c.gate_channels + c.gate_channels * (c.residual_channels + c.skip_channels)
        head = c.skip_channels * c.skip_channels + c.skip_channels * 256
        return 2 * (len(self.layers) * per_layer + head)

"""Fast WaveNet generation (Paine et al. 2016): each layer keeps a queue of its past inputs, so one new sample
costs one pass through the layers (O(layers)), not a forward pass over the whole receptive field.

A sample is a few dozen small matrix-vector products. In PyTorch each would be a separate call costing more
in overhead than in arithmetic, so the whole step - every layer, the output head and the draw - is one loop
compiled by numba, over float32 copies of the model's weights. It runs in the calling thread: one core per
generation, which leaves the others to the GUI and the audio callback.

Compiling the loop takes ~10 s, so numba keeps it on disk (cache=True): in __pycache__ beside this file, or
in the user's cache folder when the install is read-only. warm_up() fills that cache ahead of time.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from .config import AudioModelConfig
from .model import POSITION_STEP_SECONDS, WaveNet


@numba.njit(cache=True, fastmath=True, nogil=True)
def _generate(steps, time, start, position_step, previous, forced, uniforms, inv_temperature, embed, w_dilated,
              gate_bias, position_bias, w_residual, b_residual, w_skip, b_skip, w_head1, b_head1, w_head2, b_head2, dilations, offsets, queues,
              codes_out, probs_out):
    batch, layers = previous.shape[0], dilations.shape[0]
    residual, gates2 = embed.shape[1], w_dilated.shape[1]
    gates, skip_width = gates2 // 2, w_skip.shape[1]
    x = np.empty(residual, np.float32)
    h = np.empty(gates2, np.float32)
    z = np.empty(gates, np.float32)
    skip = np.empty(skip_width, np.float32)
    hidden = np.empty(skip_width, np.float32)
    logits = np.empty(256, np.float64)
    for s in range(steps):
        row = min(max((time + s - start) // position_step + 1, 0), position_bias.shape[0] - 1)
        for b in range(batch):
            x[:] = embed[previous[b]]
            skip[:] = 0.0
            for l in range(layers):
                slot = offsets[l] + (time + s) % dilations[l]
                past = queues[b, slot]
                for o in range(gates2):
                    acc = gate_bias[b, l, o] + position_bias[row, l, o]
                    for i in range(residual):
                        acc += w_dilated[l, o, i] * past[i] + w_dilated[l, o, residual + i] * x[i]
                    h[o] = acc
                queues[b, slot] = x            # this layer's input now is its "past" `dilation` steps from now
                for g in range(gates):
                    z[g] = np.tanh(h[g]) / (1.0 + np.exp(-h[gates + g]))
                for o in range(skip_width):
                    acc = b_skip[l, o]
                    for g in range(gates):
                        acc += w_skip[l, o, g] * z[g]
                    skip[o] += acc
                for o in range(residual):
                    acc = b_residual[l, o]
                    for g in range(gates):
                        acc += w_residual[l, o, g] * z[g]
                    x[o] += acc
            for o in range(skip_width):
                skip[o] = max(skip[o], 0.0)
            for o in range(skip_width):
                acc = b_head1[o]
                for i in range(skip_width):
                    acc += w_head1[o, i] * skip[i]
                hidden[o] = max(acc, 0.0)
            top = -1e30
            for o in range(256):
                acc = b_head2[o]
                for i in range(skip_width):
                    acc += w_head2[o, i] * hidden[i]
                logits[o] = acc * inv_temperature
                top = max(top, logits[o])
            total = 0.0
            for o in range(256):
                logits[o] = np.exp(logits[o] - top)
                total += logits[o]
            if probs_out.shape[1] > 0:
                for o in range(256):
                    probs_out[b, s, o] = logits[o] / total
            code = forced[b, s]
            if code < 0:   # inverse CDF: the same uniform number gives the same code as the reference path
                target, cumulative, code = uniforms[b, s] * total, 0.0, 255
                for o in range(256):
                    cumulative += logits[o]
                    if cumulative > target:
                        code = o
                        break
            codes_out[b, s] = code
            previous[b] = code


class FastGenerator:
    """A model's weights as float32 arrays, plus the queues of one generation of `batch` variations."""

    def __init__(self, model: WaveNet, labels: torch.Tensor | None, batch: int):
        c = model.config
        with torch.no_grad():
            layers = model.layers
            device = model.embed.weight.device      # the biases are computed where the model is, then copied
            label_biases = model.label_gate_biases(labels.to(device) if labels is not None else None)
            per_variation = [layer.dilated.bias[None].expand(batch, -1) + (bias if bias is not None else 0)
                             for layer, bias in zip(layers, label_biases)]
            by_position = [torch.zeros(1, 2 * c.gate_channels, device=device) if bias is None else bias
                           for bias in model.position_gate_biases()]

            def f32(t):
                return np.ascontiguousarray(t.detach().float().cpu().numpy())
            w = [layer.dilated.weight for layer in layers]                  # (2G, R, 2): tap 0 is t - d
            self.weights = (
                f32(model.embed.weight),
                f32(torch.stack([torch.cat([wi[:, :, 0], wi[:, :, 1]], dim=1) for wi in w])),
                f32(torch.stack(per_variation, dim=1)),
                f32(torch.stack(by_position, dim=1)),
                f32(torch.stack([layer.residual.weight[:, :, 0] for layer in layers])),
                f32(torch.stack([layer.residual.bias for layer in layers])),
                f32(torch.stack([layer.skip.weight[:, :, 0] for layer in layers])),
                f32(torch.stack([layer.skip.bias for layer in layers])),
                f32(model.head1.weight[:, :, 0]), f32(model.head1.bias),
                f32(model.head2.weight[:, :, 0]), f32(model.head2.bias),
            )
        self.dilations = np.array([layer.dilation for layer in layers], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.dilations)[:-1]]).astype(np.int64)
        self.queues = np.zeros((batch, int(self.dilations.sum()), model.config.residual_channels), np.float32)
        self.previous = np.zeros(batch, np.int64)
        self.time = 0
        self.batch = batch
        # positions count from the first sample after the warm-up silence (see sample.warm_up_codes)
        self.start = model.receptive_field
        self.position_step = max(1, round(c.sample_rate * POSITION_STEP_SECONDS))

    def run(self, forced: np.ndarray, uniforms: np.ndarray, temperature: float = 1.0,
            want_probs: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Advance every variation by forced.shape[1] samples. forced[b, s] >= 0 feeds that code (a primer);
        -1 draws one with uniforms[b, s]. Returns the codes (B, steps) and, if asked, the probabilities."""
        steps = forced.shape[1]
        codes = np.empty((self.batch, steps), np.int64)
        probs = np.empty((self.batch, steps if want_probs else 0, 256), np.float32)
        # writable C-ordered copies and a Python float, whatever the caller passes (astype turns a broadcast primer
        # Fortran-ordered, a view can be read-only): any other type is another signature of the loop, compiled
        # at the first sample because warm_up() did not compile it
        forced, uniforms = np.array(forced, np.int64, order="C"), np.array(uniforms, np.float64, order="C")
        _generate(steps, self.time, self.start, self.position_step, self.previous, forced, uniforms,
                  1.0 / float(temperature), *self.weights, self.dilations, self.offsets, self.queues, codes, probs)
        self.time += steps
        return codes, probs


def warm_up() -> None:
    """Compile the generation loop, or load it from the cache, by running it once on a tiny model: called at
    setup so that the first real sample does not wait for the compiler. Every model shares the loop's one
    compiled version (same argument types), so any model will do."""
    config = AudioModelConfig(stacks=1, layers_per_stack=1, residual_channels=1, gate_channels=1, skip_channels=1)
    FastGenerator(WaveNet(config, []), None, 1).run(np.full((1, 1), -1), np.zeros((1, 1)))

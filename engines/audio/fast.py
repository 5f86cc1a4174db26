"""Fast WaveNet generation (Paine et al. 2016): each layer keeps a queue of its past inputs, so one new sample
costs one pass through the layers (O(layers)), not a forward pass over the whole receptive field.

A sample is a few dozen small matrix-vector products. In PyTorch each would be a separate call costing more
in overhead than in arithmetic, so the whole step - every layer, the output head and the draw - is one loop
compiled by numba, over copies of the model's weights in int8 (the default; a float32 scale per output) or
float32. It runs in the calling thread: one core per generation, which leaves the others to the GUI and the
audio callback.

Compiling the loop takes ~10 s, so numba keeps it on disk (cache=True): in __pycache__ beside this file, or
in the user's cache folder when the install is read-only. warm_up() fills that cache ahead of time.
"""
from __future__ import annotations

from copy import deepcopy

import numba
import numpy as np
import torch

from .config import AudioModelConfig
from .model import WaveNet, position_ratio, position_steps


@numba.njit(cache=True, fastmath=True, nogil=True, inline="always")
def _tanh(x):
    """tanh to within 3e-7, in arithmetic alone: the minimax rational approximation Eigen uses for float32.
    libm's tanh is a function call per value that no loop can vectorise; this runs 8 or 16 values at a time
    (the gates of a sample were the loop's largest cost)."""
    x = min(max(x, np.float32(-7.9053111)), np.float32(7.9053111))
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@numba.njit(cache=True, fastmath=True, nogil=True, inline="always")
def _matvec(w, scale, v, out, acc):
    """out += (w.T @ v) * scale for w (inputs, outputs) in float32 or int8 (a per-output scale then restores the
    range); acc is scratch space. Looping over inputs outside and outputs inside keeps every multiply-add in
    wide vectors with no horizontal sums, and converts int8 to float32 in registers."""
    acc[:out.shape[0]] = 0.0
    for i in range(w.shape[0]):
        vi = v[i]
        for o in range(w.shape[1]):
            acc[o] += np.float32(w[i, o]) * vi
    for o in range(out.shape[0]):
        out[o] += acc[o] * scale[o]


@numba.njit(cache=True, fastmath=True, nogil=True)
def _generate(steps, time, start, position_num, position_den, course_rows, course_start, previous, forced, uniforms,
              inv_temperature, embed, w_dilated, s_dilated, gate_bias, position_bias, w_residual, s_residual,
              b_residual, w_skip, s_skip, b_skip, w_head1, s_head1, b_head1, w_head2, s_head2, b_head2, dilations,
              offsets, queues, codes_out, probs_out):
    batch, layers = previous.shape[0], dilations.shape[0]
    residual, gates2 = embed.shape[1], w_dilated.shape[2]
    gates, skip_width = gates2 // 2, w_skip.shape[2]
    x = np.empty(residual, np.float32)
    both = np.empty(2 * residual, np.float32)       # the layer's input `dilation` steps ago, then now
    h = np.empty(gates2, np.float32)
    z = np.empty(gates, np.float32)
    skip = np.empty(skip_width, np.float32)
    hidden = np.empty(skip_width, np.float32)
    scores = np.empty(256, np.float32)
    acc = np.empty(max(gates2, skip_width, residual, 256), np.float32)
    logits = np.empty(256, np.float64)              # the draw in double precision, as the reference path's
    for s in range(steps):
        for b in range(batch):
            row = min(max((time + s - start) * position_num // position_den[b] + 1, 0), course_rows - 1)
            x[:] = embed[previous[b]]
            skip[:] = 0.0
            for l in range(layers):
                slot = offsets[l] + (time + s) % dilations[l]
                both[:residual] = queues[b, slot]
                both[residual:] = x
                queues[b, slot] = x            # this layer's input now is its "past" `dilation` steps from now
                for o in range(gates2):
                    h[o] = gate_bias[b, l, o] + position_bias[course_start[b] + row, l, o]
                _matvec(w_dilated[l], s_dilated[l], both, h, acc)
                for g in range(gates):          # tanh(a) * sigmoid(b), with sigmoid(b) = (1 + tanh(b / 2)) / 2
                    z[g] = _tanh(h[g]) * (np.float32(0.5) + np.float32(0.5) * _tanh(np.float32(0.5) * h[gates + g]))
                for o in range(skip_width):
                    skip[o] += b_skip[l, o]
                _matvec(w_skip[l], s_skip[l], z, skip, acc)
                for o in range(residual):
                    x[o] += b_residual[l, o]
                _matvec(w_residual[l], s_residual[l], z, x, acc)
            for o in range(skip_width):
                skip[o] = max(skip[o], np.float32(0.0))
            hidden[:] = b_head1
            _matvec(w_head1, s_head1, skip, hidden, acc)
            for o in range(skip_width):
                hidden[o] = max(hidden[o], np.float32(0.0))
            scores[:] = b_head2
            _matvec(w_head2, s_head2, hidden, scores, acc)
            top = -1e30
            for o in range(256):
                logits[o] = scores[o] * inv_temperature
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


WEIGHT_TYPES = ("int8", "fp32")


def int8_weights(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution's weight (outputs, inputs, taps) as int8 codes of the same shape and a float32 scale per
    output (symmetric: each output's largest weight maps to 127), as phone vocoders store theirs."""
    scale = weight.detach().float().flatten(1).abs().amax(1).clamp_min(1e-12) / 127
    codes = torch.round(weight.detach().float() / scale[:, None, None]).clamp_(-127, 127).to(torch.int8)
    return codes, scale


def with_generation_weights(model: WaveNet, weights: str) -> WaveNet:
    """A copy of the model whose matrices hold exactly the numbers generation with `weights` multiplies by, so
    that its held-out NLL is the NLL of what that generation draws from."""
    copy = deepcopy(model)
    if weights == "int8":
        with torch.no_grad():
            for conv in _quantised_convs(copy):
                codes, scale = int8_weights(conv.weight)
                conv.weight.copy_(codes.float() * scale[:, None, None])
    return copy


def _quantised_convs(model: WaveNet) -> list[torch.nn.Conv1d]:
    return [conv for layer in model.layers for conv in (layer.dilated, layer.skip, layer.residual)] + [
        model.head1, model.head2]


class FastGenerator:
    """A model's weights as arrays for the loop, plus the queues of one generation of `batch` variations.

    weights="int8" (the default) stores every matrix in int8 with a float32 scale per output and accumulates in
    float32: 4x fewer bytes to read per sample, which is what bounds this loop once the fp32 weights (1.3 MB for
    the default model) outgrow a core's L2 cache. bench/audio.py measures the held-out NLL of both (the int8
    model's stays within 0.01 bits of fp32); "fp32" is the exact path the equality test holds to."""

    def __init__(self, model: WaveNet, labels: torch.Tensor | None, batch: int, weights: str = "int8",
                 lengths: np.ndarray | None = None):
        """lengths: (batch,) each variation's word length in samples, for a model told its position in shares of
        the recording's length (see sample.draw_word_lengths)."""
        if weights not in WEIGHT_TYPES:
            raise ValueError(f"weights must be one of {WEIGHT_TYPES}, not {weights!r}")
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

            def matrix(conv):
                """(inputs, outputs) weights and (outputs,) scales; the dilated conv's two taps (t - d, t) are
                inputs one after the other."""
                w, scale = int8_weights(conv.weight) if weights == "int8" else (conv.weight.detach().float(), None)
                w = torch.cat(w.unbind(2), dim=1).T.cpu().numpy()
                scale = np.ones(w.shape[1], np.float32) if scale is None else scale.cpu().numpy()
                return np.ascontiguousarray(w), scale

            def stacked(convs):
                w, scale = zip(*map(matrix, convs))
                return np.stack(w), np.stack(scale)
            self.weights = (
                f32(model.embed.weight),
                *stacked([layer.dilated for layer in layers]),
                f32(torch.stack(per_variation, dim=1)),
                f32(torch.stack(by_position, dim=1)),
                *stacked([layer.residual for layer in layers]),
                f32(torch.stack([layer.residual.bias for layer in layers])),
                *stacked([layer.skip for layer in layers]),
                f32(torch.stack([layer.skip.bias for layer in layers])),
                *matrix(model.head1), f32(model.head1.bias),
                *matrix(model.head2), f32(model.head2.bias),
            )
        self.dilations = np.array([layer.dilation for layer in layers], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.dilations)[:-1]]).astype(np.int64)
        self.queues = np.zeros((batch, int(self.dilations.sum()), model.config.residual_channels), np.float32)
        self.previous = np.zeros(batch, np.int64)
        self.time = 0
        self.batch = batch
        # positions count from the first sample after the warm-up silence (see sample.warm_up_codes)
        self.start = model.receptive_field
        if c.position_shares and lengths is None:
            raise ValueError("a model told its position in shares of a recording's length needs word lengths")
        self.position_num, den = position_ratio(c, None if lengths is None else np.asarray(lengths, np.int64))
        self.position_den = np.ascontiguousarray(np.broadcast_to(np.maximum(den, 1), (batch,)), np.int64)
        self.course_rows = max(position_steps(c), 1)
        start = model.position_course_start(labels.cpu() if labels is not None else None)
        self.course_start = np.ascontiguousarray(np.broadcast_to(start.numpy().astype(np.int64), (batch,)))

    def bytes_per_sample(self) -> int:
        """What one sample of one variation reads: every matrix and scale, the biases, one row of the embedding
        and of the position table, and one queue entry per layer."""
        embed, position = self.weights[0], self.weights[4]
        whole = sum(a.nbytes for a in self.weights) - embed.nbytes - position.nbytes
        return whole + embed[0].nbytes + position[0].nbytes + self.queues[0, 0].nbytes * len(self.dilations)

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
        _generate(steps, self.time, self.start, self.position_num, self.position_den, self.course_rows,
                  self.course_start, self.previous, forced, uniforms, 1.0 / float(temperature), *self.weights,
                  self.dilations, self.offsets, self.queues, codes, probs)
        self.time += steps
        return codes, probs


def warm_up() -> None:
    """Compile the generation loop, or load it from the cache, by running it once on a tiny model: called at
    setup so that the first real sample does not wait for the compiler. Every model shares the loop's one
    compiled version per weight type (same argument types), so any model will do."""
    config = AudioModelConfig(stacks=1, layers_per_stack=1, residual_channels=1, gate_channels=1, skip_channels=1)
    for weights in WEIGHT_TYPES:
        FastGenerator(WaveNet(config, []), None, 1, weights).run(np.full((1, 1), -1), np.zeros((1, 1)))

"""Handwriting synthesis: Graves (2013), "Generating Sequences With Recurrent Neural Networks", section 5.

A line of handwriting is a sequence of pen points x_t = (dx, dy, pen_up): the offset from the previous point
(in units of the corpus' offset std, y pointing down) and whether the pen lifts after this point. The model
predicts each point from the ones before it:

    layer 1     h1_t = LSTM(x_t, w_{t-1}, h1_{t-1})
    window      (alpha, beta, step) = exp(W h1_t);  kappa_t = kappa_{t-1} + step                 (K Gaussians)
                phi(t, u) = sum_k alpha_k exp(-beta_k (kappa_k - u)^2);  w_t = sum_u phi(t, u) c_u
    layer n>1   hn_t = LSTM(x_t, h(n-1)_t, w_t, hn_{t-1})
    output      y_t = W [h1_t, ..., hN_t]  ->  M bivariate Gaussians over (dx, dy) + a Bernoulli pen-up
                (+ with end_flag, a Bernoulli "the line ended with x_t", as sketch-rnn's end of drawing)

c_u is the one-hot u-th character of the text; kappa only grows, so the window slides along the text as the
pen writes. Without text (conditional=False) there is no window and the model scribbles in its corpus' style.

Only layer 1 and the window have to run point by point (the window at t needs h1_t, which needs w_{t-1});
once the whole window sequence is known, layers 2..N run as fused nn.LSTM calls over the sequence.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import InkModelConfig

# tanh saturates to exactly 1 in float32, and 1 - rho^2 divides the density: keep |rho| a hair below 1
RHO_MAX = 1 - 1e-3
# p(the line ended) above which a step says so. Measured on the bundled model, whose head was added by a short
# fine-tune and gives only ~0.6 at a true end: at 0.3, 6 of 76 bench lines were written on past their final
# period against 14 at 0.5, and CER fell slightly in all four cells (tuned on other held-out texts first). Not
# measured: a head trained from the first step, and unconditional drawings (scribble() ends each at the flag).
END_THRESHOLD = 0.3
END_LOGIT = math.log(END_THRESHOLD / (1 - END_THRESHOLD))


class InkState(NamedTuple):
    """Everything carried from one point to the next (one entry per layer in h and c, each (B, H))."""
    h: list[torch.Tensor]
    c: list[torch.Tensor]
    kappa: torch.Tensor | None      # (B, K) window positions, in characters
    window: torch.Tensor | None     # (B, V) w_{t-1}, the window's last read of the text

    def detach(self) -> InkState:
        """For chunked training of long lines: keep the values, cut the graph at the chunk boundary."""
        keep = lambda t: None if t is None else t.detach()
        return InkState([h.detach() for h in self.h], [c.detach() for c in self.c], keep(self.kappa), keep(self.window))


class Forward(NamedTuple):
    nll: torch.Tensor               # (B, T-1) nats of each predicted point, 0 where the target is padding
    state: InkState                 # after reading points[:, :-1]; pass it on with the next chunk's points
    phi: torch.Tensor | None        # (B, T-1, U+1) attention per character (+ one past the end), if asked for


class Text(NamedTuple):
    """A batch of texts as the window reads them (made once per text, not once per point)."""
    chars: torch.Tensor             # (B, U, V) one-hot characters, all-zero rows for padding
    u: torch.Tensor                 # (U + 1,) positions 0..U of the characters, U being one past the end


class Step(NamedTuple):
    point: torch.Tensor             # (B, 3) sampled (dx, dy, pen_up)
    state: InkState
    # (B, U+1) attention after this step: see past_end(). A stalled pen shows in state.kappa (B, K), the
    # window's position in characters, no longer moving
    phi: torch.Tensor | None
    # (B,) bool: the model holds it likely (p > END_THRESHOLD) that the line ended with x, the point this step
    # read (then the point it drew is not part of the line); None without end_flag
    ends: torch.Tensor | None


# ----------------------------------------------------------------------------------------------------
# helpers

def lstm_step(lstm: nn.LSTM, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of a one-layer nn.LSTM, through the fused cell (an nn.LSTM call on a length-1 sequence
    costs several times more). The same weights then serve whole-sequence training and point-by-point steps."""
    return torch.lstm_cell(x, (h, c), lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)


def split_mixture(y: torch.Tensor, mixtures: int):
    """y (..., 1 + 6M) -> pen logit (...), pi logits, mu_x, mu_y, log sigma_x, log sigma_y, rho (each (..., M))."""
    pen, rest = y[..., 0], y[..., 1:]
    logit_pi, mu_x, mu_y, log_sx, log_sy, rho = rest.split(mixtures, dim=-1)
    return pen, logit_pi, mu_x, mu_y, log_sx, log_sy, torch.tanh(rho) * RHO_MAX


def mixture_nll(y: torch.Tensor, target: torch.Tensor, mixtures: int) -> torch.Tensor:
    """-log p(target) under the output distribution, in nats; y (..., 1 + 6M), target (..., 3) -> (...)."""
    pen, logit_pi, mu_x, mu_y, log_sx, log_sy, rho = split_mixture(y, mixtures)
    zx = (target[..., :1] - mu_x) / log_sx.exp()
    zy = (target[..., 1:2] - mu_y) / log_sy.exp()
    one_minus = 1 - rho ** 2
    log_gauss = (-math.log(2 * math.pi) - log_sx - log_sy - 0.5 * one_minus.log()
                 - (zx ** 2 + zy ** 2 - 2 * rho * zx * zy) / (2 * one_minus))
    log_xy = torch.logsumexp(F.log_softmax(logit_pi, dim=-1) + log_gauss, dim=-1)
    log_pen = -F.binary_cross_entropy_with_logits(pen, target[..., 2], reduction="none")
    return -(log_xy + log_pen)


def sample_mixture(y: torch.Tensor, mixtures: int, bias: float, temperature: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Draw one point per row of y (B, 1 + 6M) -> (B, 3). Graves' bias b sharpens the choice of component
    (pi ~ softmax((1 + b) logits)) and narrows each one (sigma * exp(-b)): b = 0 is the model's own spread,
    larger b is neater and more uniform. Temperature then widens (> 1) or narrows (< 1) everything.
    Written in few, batched ops: at batch 1 each op's overhead costs more than its arithmetic."""
    B, M = y.shape[0], mixtures
    pen, logit_pi, params = y[:, 0], y[:, 1:1 + M], y[:, 1 + M:].view(B, 5, M)
    uniform = torch.rand(2, B, 1, generator=generator, dtype=y.dtype, device=y.device)
    z = torch.randn(B, 2, generator=generator, dtype=y.dtype, device=y.device)
    cdf = F.softmax(logit_pi * ((1 + bias) / temperature), dim=-1).cumsum(-1)
    j = torch.searchsorted(cdf, uniform[0]).clamp_(max=M - 1)                     # (B, 1) chosen component
    mu_x, mu_y, log_sx, log_sy, rho = params.gather(2, j[:, None].expand(B, 5, 1)).squeeze(2).unbind(1)
    r = torch.tanh(rho) * RHO_MAX
    spread = math.exp(-bias) * math.sqrt(temperature)
    dx = mu_x + (log_sx.exp() * spread) * z[:, 0]
    dy = mu_y + (log_sy.exp() * spread) * (r * z[:, 0] + torch.sqrt(1 - r ** 2) * z[:, 1])
    up = (uniform[1, :, 0] < torch.sigmoid(pen / temperature)).to(y.dtype)
    return torch.stack([dx, dy, up], dim=-1)


def past_end(phi: torch.Tensor, text_len: torch.Tensor) -> torch.Tensor:
    """Graves' stopping rule: the window has finished the text once the attention one past its last character
    is larger than on any character. phi (B, U+1), text_len (B,) -> (B,) bool."""
    u = torch.arange(phi.shape[1], device=phi.device)
    on_text = phi.masked_fill(u >= text_len[:, None], -1.0).amax(dim=1)
    return phi.gather(1, text_len[:, None]).squeeze(1) > on_text


# ----------------------------------------------------------------------------------------------------
# the model

class InkModel(nn.Module):
    def __init__(self, config: InkModelConfig):
        super().__init__()
        config.check()
        if config.conditional and config.alphabet_size < 1:
            raise ValueError("a conditional InkModel needs the alphabet_size of its corpus")
        self.config = config
        H, V, K = config.n_hidden, config.alphabet_size if config.conditional else 0, config.window_gaussians
        self.V = V
        # every layer sees the pen input (and the window); every layer above the first sees the one below
        self.layers = nn.ModuleList(nn.LSTM(3 + V + (H if n else 0), H, batch_first=True)
                                    for n in range(config.n_layer))
        if config.conditional:
            self.window = nn.Linear(H, 3 * K)
            with torch.no_grad():      # start the window moving at about the corpus' characters per point
                self.window.bias[2 * K:] = math.log(config.window_speed)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.n_layer * H, 1 + 6 * config.mixtures)   # all layers skip to the output
        self.end = nn.Linear(config.n_layer * H, 1) if config.end_flag else None
        if self.end is not None:
            with torch.no_grad():      # few points end a line: start near never, not at even odds
                self.end.bias.fill_(-4.0)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> InkState:
        zeros = lambda *shape: torch.zeros(*shape, device=device)
        H, L = self.config.n_hidden, self.config.n_layer
        if not self.config.conditional:
            return InkState([zeros(batch, H) for _ in range(L)], [zeros(batch, H) for _ in range(L)], None, None)
        return InkState([zeros(batch, H) for _ in range(L)], [zeros(batch, H) for _ in range(L)],
                        zeros(batch, self.config.window_gaussians), zeros(batch, self.V))

    def encode_text(self, text: torch.Tensor, text_mask: torch.Tensor) -> Text:
        """Character ids (B, U) and their mask (True on real characters) -> what the window reads."""
        chars = F.one_hot(text, self.V).float() * text_mask[..., None]
        return Text(chars, torch.arange(text.shape[1] + 1, device=text.device, dtype=chars.dtype))

    def attend(self, h1: torch.Tensor, kappa: torch.Tensor, text: Text):
        """The soft window: h1 (B, H), kappa (B, K) -> w (B, V), kappa, phi (B, U+1)."""
        alpha, beta, step = self.window(h1).exp().chunk(3, dim=-1)                      # (B, K) each
        kappa = kappa + step                                                            # only ever forward
        closeness = torch.exp(-beta[..., None] * (kappa[..., None] - text.u) ** 2)      # (B, K, U+1)
        phi = torch.bmm(alpha[:, None], closeness)                                      # (B, 1, U+1), sum over k
        w = torch.bmm(phi[..., :-1], text.chars).squeeze(1)                             # (B, V)
        return w, kappa, phi.squeeze(1)

    def forward(self, points: torch.Tensor, point_mask: torch.Tensor, text: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, ends: torch.Tensor | None = None,
                state: InkState | None = None, want_phi: bool = False) -> Forward:
        """Score points[:, 1:] given points[:, :-1] (B, T, 3) and the text (B, U) ids, masks True where real.
        With `ends` (B, T), True on each line's last point, the end flag is scored too: at every point, and once
        more after the last (so a batch needs a padding point after its longest line, as Batcher gives it).
        For a line longer than memory allows, call on overlapping chunks points[:, s : s + L + 1] for s = 0, L,
        2L, ..., passing each call the previous one's state (detached) and the whole text each time."""
        x, target = points[:, :-1], points[:, 1:]
        B, T, _ = x.shape
        state = state if state is not None else self.initial_state(B, points.device)
        h_out, c_out, phis = [], [], []
        if self.config.conditional:
            # layer 1 and the window, point by point
            reading = self.encode_text(text, text_mask)
            h, c, kappa, w = state.h[0], state.c[0], state.kappa, state.window
            hs, ws = [], []
            for t in range(T):
                h, c = lstm_step(self.layers[0], torch.cat([x[:, t], w], dim=-1), h, c)
                w, kappa, phi = self.attend(h, kappa, reading)
                hs.append(h)
                ws.append(w)
                if want_phi:
                    phis.append(phi)
            out, ws = torch.stack(hs, dim=1), torch.stack(ws, dim=1)                    # (B, T, H), (B, T, V)
            h_out.append(h)
            c_out.append(c)
        else:
            kappa = w = None
            ws = x[..., :0]                                                             # (B, T, 0): no window
            out, (h, c) = self.layers[0](x, (state.h[0][None], state.c[0][None]))
            h_out.append(h[0])
            c_out.append(c[0])
        outs = [out]
        for n, layer in enumerate(self.layers[1:], start=1):
            out, (h, c) = layer(torch.cat([x, self.drop(out), ws], dim=-1), (state.h[n][None], state.c[n][None]))
            outs.append(out)
            h_out.append(h[0])
            c_out.append(c[0])
        hidden = self.drop(torch.cat(outs, dim=-1))
        nll = mixture_nll(self.head(hidden), target, self.config.mixtures).masked_fill(~point_mask[:, 1:], 0.0)
        if self.end is not None and ends is not None:
            ended = ends[:, :-1]                          # the point read was the line's last
            end_nll = F.binary_cross_entropy_with_logits(self.end(hidden).squeeze(-1), ended.to(nll.dtype),
                                                         reduction="none")
            nll = nll + end_nll.masked_fill(~(point_mask[:, 1:] | ended), 0.0)
        return Forward(nll, InkState(h_out, c_out, kappa, w), torch.stack(phis, dim=1) if want_phi else None)

    @torch.inference_mode()
    def step(self, x: torch.Tensor, state: InkState, text: Text | None = None, bias: float = 0.0,
             temperature: float = 1.0, generator: torch.Generator | None = None) -> Step:
        """Draw the point after x (B, 3); text from self.encode_text(). Start from x = zeros (every line of the
        corpus starts with a (0, 0, 0) point) and self.initial_state(B), or to write in a given hand, from the
        state forward() leaves after a primer line, with text = the primer's text + the new text."""
        h_out, c_out = [], []
        if self.config.conditional:
            h, c = lstm_step(self.layers[0], torch.cat([x, state.window], dim=-1), state.h[0], state.c[0])
            w, kappa, phi = self.attend(h, state.kappa, text)
        else:
            h, c = lstm_step(self.layers[0], x, state.h[0], state.c[0])
            w = kappa = phi = None
        h_out.append(h)
        c_out.append(c)
        for n, layer in enumerate(self.layers[1:], start=1):
            inp = torch.cat([x, h, w], dim=-1) if w is not None else torch.cat([x, h], dim=-1)
            h, c = lstm_step(layer, inp, state.h[n], state.c[n])
            h_out.append(h)
            c_out.append(c)
        hidden = torch.cat(h_out, dim=-1)
        point = sample_mixture(self.head(hidden), self.config.mixtures, bias, temperature, generator)
        ends = self.end(hidden).squeeze(-1) > END_LOGIT if self.end is not None else None
        return Step(point, InkState(h_out, c_out, kappa, w), phi, ends)

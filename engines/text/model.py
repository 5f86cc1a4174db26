"""Character-level RNN language model (Karpathy's char-rnn), and a fast one-character-at-a-time stepper.

Training runs whole sequences through nn.LSTM / nn.GRU (oneDNN's fused kernels). Sampling feeds one
character at a time, where calling nn.LSTM per character spends most of its time in framework overhead;
the Stepper instead keeps the same weights pre-arranged so that one character costs one matrix-vector
product per layer plus a handful of element-wise ops. It computes exactly the network below.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TextModelConfig


class CharRNN(nn.Module):
    def __init__(self, config: TextModelConfig, vocab_size: int):
        super().__init__()
        if config.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', not {config.cell!r}")
        self.config = config
        rnn_class = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.emb = nn.Embedding(vocab_size, config.n_hidden)
        self.rnn = rnn_class(config.n_hidden, config.n_hidden, config.n_layer, batch_first=True,
                             dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.n_hidden, vocab_size)

    def forward(self, idx, targets=None, state=None):
        x = self.drop(self.emb(idx))                    # (B, T, H)
        x, state = self.rnn(x, state)                   # (B, T, H); state (L, B, H) or a pair of them
        logits = self.head(self.drop(x))                # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss, state


class Stepper:
    """Feeds a batch of sequences one character at a time through a trained CharRNN (in eval mode).

    Two rearrangements make a step cheap, neither changing the result:
    - the first layer's input is a one-hot character, so embedding @ W_ih (+ both biases) is a (V, gates)
      table and that layer's input product becomes a row lookup;
    - in deeper LSTM layers [W_ih | W_hh] is one matrix applied to [x | h], and the gates are reordered
      (i, f, o, g) so one sigmoid covers three of them.
    """

    def __init__(self, model: CharRNN, batch_size: int):
        c = model.config
        H, L = c.n_hidden, c.n_layer
        self.lstm, self.H, self.L = c.cell == "lstm", H, L
        p = {k: v.detach() for k, v in model.rnn.named_parameters()}
        emb = model.emb.weight.detach()
        device = emb.device
        if self.lstm:
            order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]).to(device)
            self.table = (emb @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"])[:, order].contiguous()
            self.w_hh0 = p["weight_hh_l0"][order].T.contiguous()                                    # (H, 4H)
            self.w = [torch.cat([p[f"weight_ih_l{l}"], p[f"weight_hh_l{l}"]], 1)[order].T.contiguous()
                      for l in range(1, L)]                                                         # (2H, 4H)
            self.b = [(p[f"bias_ih_l{l}"] + p[f"bias_hh_l{l}"])[order] for l in range(1, L)]
        else:
            self.table = (emb @ p["weight_ih_l0"].T + p["bias_ih_l0"]).contiguous()                  # (V, 3H)
            self.w_ih = [None] + [p[f"weight_ih_l{l}"].T.contiguous() for l in range(1, L)]
            self.b_ih = [None] + [p[f"bias_ih_l{l}"] for l in range(1, L)]
            self.w_hh = [p[f"weight_hh_l{l}"].T.contiguous() for l in range(L)]
            self.b_hh = [p[f"bias_hh_l{l}"] for l in range(L)]
        self.head_w = model.head.weight.detach().T.contiguous()                                     # (H, V)
        self.head_b = model.head.bias.detach()
        self.h = [torch.zeros(batch_size, H, device=device) for _ in range(L)]
        self.c = [torch.zeros(batch_size, H, device=device) for _ in range(L)] if self.lstm else None

    def set_state(self, state) -> None:
        """Take over the state nn.LSTM / nn.GRU returned after reading a primer."""
        h = state[0] if self.lstm else state
        self.h = [h[l].contiguous() for l in range(self.L)]
        if self.lstm:
            self.c = [state[1][l].contiguous() for l in range(self.L)]

    def weight_bytes(self) -> int:
        """Bytes of weights read per step (the first layer's input product is a table lookup)."""
        mats = [self.w_hh0, *self.w] if self.lstm else [*self.w_ih[1:], *self.w_hh]
        return sum(m.numel() * m.element_size() for m in mats + [self.head_w])

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Advance every sequence by one character; returns next-character logits (B, V)."""
        H = self.H
        x = None
        for l in range(self.L):
            if self.lstm:
                if l == 0:
                    gates = torch.addmm(self.table[tokens], self.h[0], self.w_hh0)
                else:
                    gates = torch.addmm(self.b[l - 1], torch.cat([x, self.h[l]], 1), self.w[l - 1])
                ifo = torch.sigmoid(gates[:, :3 * H])
                g = torch.tanh(gates[:, 3 * H:])
                self.c[l] = ifo[:, H:2 * H] * self.c[l] + ifo[:, :H] * g
                self.h[l] = ifo[:, 2 * H:] * torch.tanh(self.c[l])
            else:
                gi = self.table[tokens] if l == 0 else torch.addmm(self.b_ih[l], x, self.w_ih[l])
                gh = torch.addmm(self.b_hh[l], self.h[l], self.w_hh[l])
                rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
                n = torch.tanh(gi[:, 2 * H:] + rz[:, :H] * gh[:, 2 * H:])
                self.h[l] = n + rz[:, H:] * (self.h[l] - n)          # (1 - z) * n + z * h
            x = self.h[l]
        return torch.addmm(self.head_b, x, self.head_w)

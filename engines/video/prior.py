"""The second stage of VideoGPT: a GPT (nanoGPT-shaped) over the frozen tokenizer's codes, and sampling with
a KV cache.

A clip's codes (t, h, w) are read in raster order, frame by frame, as one sequence of N = t*h*w tokens. The
model reads a start token and then the codes, and predicts each code from everything before it:

    reads     [start] c0  c1  ...  c(N-2)
    predicts   c0     c1  c2  ...  c(N-1)

The start token is the clip's label when the prior is class-conditioned (one token per class), else a single
learned token. Positions are factorised: the embedding of position p is time[t] + row[h] + column[w] of the
code predicted there, so the model knows which frame and where in it each prediction lands.

Codes come in whole code frames (time_downsample video frames each), so priming with the first k code frames
of any clip is a token prefix, and generating past the trained length is a sliding window: once the window
holds N codes it moves on by one code frame and the frames it keeps are read again as a primer, so every new
frame costs the same.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.sampling import draw, filtered_probs
from .config import PriorConfig


class KVCache:
    """Keys and values of every layer for the tokens read so far, preallocated for a whole window. It is
    filled by one prompt while empty, then one token at a time."""

    def __init__(self, config: PriorConfig, batch: int, device=None, dtype=None):
        shape = (config.n_layer, batch, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0                                 # tokens stored (GPT.forward advances it)

    def append(self, layer: int, k, v):
        """Store this layer's (B, nh, n, hs) keys and values of the n new tokens; all of them so far."""
        end = self.length + k.size(2)
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)     # q, k, v of all heads in one product
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.dropout = config.n_head, config.dropout

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.append(layer, k, v)                               # (B, nh, past + T, hs)
        # several tokens at once only ever start from an empty cache, where causal masking is exactly
        # is_causal; one new token may attend to everything before it
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=T > 1)
        y = y.transpose(1, 2).contiguous().view(B, T, C)                   # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        c = config
        # token ids: codes 0..V-1, then the start tokens (one per class, or a single one)
        self.wte = nn.Embedding(c.vocab_size + max(1, c.n_classes), c.n_embd)
        self.wpe_t = nn.Embedding(c.code_frames, c.n_embd)
        self.wpe_h = nn.Embedding(c.code_height, c.n_embd)
        self.wpe_w = nn.Embedding(c.code_width, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.h = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections into the residual stream, so its variance does not grow
        # with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / (2 * c.n_layer) ** 0.5)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def start_tokens(self, labels, batch: int):
        """(B, 1) start tokens: the label's token when the prior is conditioned (labels (B,) long)."""
        if (labels is None) != (self.config.n_classes == 0):
            raise ValueError(f"this prior has {self.config.n_classes} classes; "
                             f"{'pass' if labels is None else 'do not pass'} labels")
        first = torch.full((batch, 1), self.config.vocab_size, dtype=torch.long, device=self.wte.weight.device)
        return first if labels is None else first + labels.view(batch, 1)

    def tokens(self, codes, labels=None):
        """What the model reads to predict the codes (B, t, h, w) of whole clips: (B, N) token ids."""
        flat = codes.flatten(1)                                                       # (B, N)
        return torch.cat([self.start_tokens(labels, flat.size(0)), flat[:, :-1]], 1)  # (B, N)

    def positions(self, start: int, n: int):
        """(n, C) embeddings of positions start..start+n-1, factorised into frame, row and column."""
        c = self.config
        p = torch.arange(start, start + n, device=self.wte.weight.device)
        return (self.wpe_t(p // (c.code_height * c.code_width)) + self.wpe_h(p // c.code_width % c.code_height)
                + self.wpe_w(p % c.code_width))

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """idx (B, T) token ids at positions cache.length.. (0.. without a cache) -> (logits, loss).
        With targets (B, T): logits at every position and the loss in nats per token; without, logits of the
        last position only (B, 1, V), all that sampling needs."""
        B, T = idx.size()
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"{start + T} tokens do not fit the block size {self.config.block_size}")
        x = self.drop(self.wte(idx) + self.positions(start, T))          # (B, T, C)
        for layer, block in enumerate(self.h):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += T
        x = self.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1]]), None                        # (B, 1, V)
        logits = self.lm_head(x)                                          # (B, T, V)
        return logits, F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


@torch.no_grad()
def sample(model: GPT, primer, code_frames: int, labels=None, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, generator: torch.Generator | None = None,
           use_cache: bool = True) -> Iterator[torch.Tensor]:
    """Continue the codes `primer` (B, k, h, w) (k >= 0 whole code frames) up to `code_frames` code frames (each
    time_downsample video frames), yielding each new code frame (B, h, w) as soon as its last code is drawn.
    `code_frames` may exceed the trained config.code_frames: the window then slides a code frame at a time (see
    the module docstring). use_cache=False recomputes the whole window for every token: the reference the cache
    must equal, and a speed baseline.
    Put the model in eval mode first, or dropout samples too."""
    c = model.config
    frame_tokens, window_tokens = c.code_height * c.code_width, c.block_size
    B = primer.size(0)
    done = primer[0].numel()                                             # codes so far, the primer's included
    codes = primer.flatten(1)[:, max(0, done - (window_tokens - frame_tokens)):]   # (B, n): the codes in view
    start = model.start_tokens(labels, B)
    cache = None
    while done < code_frames * frame_tokens:
        if codes.size(1) == window_tokens:        # the window is full: slide it on a code frame (and forget
            codes, cache = codes[:, frame_tokens:], None      # the oldest, so a long clip costs no more a frame)
        if cache is not None:
            logits, _ = model(codes[:, -1:], cache=cache)
        else:
            context = torch.cat([start, codes], 1)
            if use_cache:
                cache = KVCache(c, B, device=context.device, dtype=model.wte.weight.dtype)
            logits, _ = model(context, cache=cache)
        probs = filtered_probs(logits[:, -1], temperature, top_k, top_p)
        codes = torch.cat([codes, draw(probs, generator)[:, None]], 1)
        done += 1
        if done % frame_tokens == 0:
            yield codes[:, -frame_tokens:].view(B, c.code_height, c.code_width)


class VideoPrior(nn.Module):
    """The prior stage as the trainer sees it: the frozen tokenizer (engines.core.frozen.Frozen, saved inside
    this stage's checkpoint) and a GPT sized to its code grid and codebook."""

    def __init__(self, config: PriorConfig, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.gpt = GPT(config.for_tokenizer(tokenizer.module.config))

    def forward(self, video):
        """video (B, C, T, H, W) in [-1, 1] -> the mean nats per code of its codes."""
        with torch.autocast(video.device.type, enabled=False):       # the codes generation will see: fp32
            codes = self.tokenizer.module.encode(video)                # (B, t, h, w), no gradients
        return self.gpt(self.gpt.tokens(codes), codes.flatten(1))[1]

"""Turning a model's logits into a choice: temperature, top-k, top-p (nucleus), seeded draws."""
from __future__ import annotations

import torch


def filtered_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Probabilities (..., V) after temperature scaling and top-k / top-p truncation."""
    logits = logits.float() / max(temperature, 1e-6)
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        # drop a choice when the ones likelier than it already reach top_p (the first one always stays)
        drop_sorted = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of a (B, V) probability matrix."""
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

"""An earlier stage inside a later one (a VQ-VAE inside the prior trained over its codes).

Its weights are saved with the later stage's checkpoint, so that checkpoint stands alone: renaming the run
folder or retraining the earlier stage cannot break it. No optimizer sees them (requires_grad is off), and
the module stays in eval mode whatever .train() is called on its parent, so nothing in it moves while the
later stage trains: dropout is off and batch statistics or an EMA codebook stay as they were.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn


class Frozen(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "Frozen":
        return self

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's weights and buffers, by name: the identity of a trained stage."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def frozen_part(model: nn.Module) -> Frozen | None:
    """The earlier stage a model holds, if any."""
    return next((m for m in model.modules() if isinstance(m, Frozen)), None)

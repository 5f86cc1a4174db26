"""Streaming text generation: one TextChunk per character step, for every variation at once."""
from __future__ import annotations

from typing import Iterator

import torch

from ..core.interface import Notice
from ..core.sampling import draw, filtered_probs
from .chunks import TextChunk
from .model import CharRNN, Stepper


def generate(model: CharRNN, vocab: str, settings: dict) -> Iterator[TextChunk | Notice]:
    stoi = {ch: i for i, ch in enumerate(vocab)}
    primer = settings.get("primer") or ""
    unknown = sorted({ch for ch in primer if ch not in stoi})
    if unknown:
        yield Notice(f"the model never saw {', '.join(map(repr, unknown))}: left out of the primer")
        primer = "".join(ch for ch in primer if ch in stoi)
    if primer:
        yield TextChunk([primer] * settings["variations"], [1.0] * settings["variations"])
    else:
        # with nothing to continue, begin as if a new paragraph started
        primer = "\n" if "\n" in stoi else vocab[0]

    batch = settings["variations"]
    device = next(model.parameters()).device
    stepper = Stepper(model, batch)
    with torch.no_grad():
        ids = torch.tensor([[stoi[ch] for ch in primer]] * batch, device=device)
        logits, _, state = model(ids)
    stepper.set_state(state)
    logits = logits[:, -1]
    generator = torch.Generator(device=device).manual_seed(settings["seed"])
    stop = settings.get("stop") or ""
    tails = [""] * batch
    running = [True] * batch          # plain lists: this loop runs thousands of times a second
    for _ in range(settings["length"]):
        probs = filtered_probs(logits, settings["temperature"], settings["top_k"], settings["top_p"])
        tokens = draw(probs, generator)
        model_prob = torch.softmax(logits, -1).gather(1, tokens[:, None]).squeeze(1)
        chars = [vocab[t] if run else "" for t, run in zip(tokens.tolist(), running)]
        yield TextChunk(chars, model_prob.tolist())
        if stop:
            for b, ch in enumerate(chars):
                tails[b] = (tails[b] + ch)[-len(stop):]
                running[b] = running[b] and tails[b] != stop
            if not any(running):
                return
        logits = stepper.step(tokens)

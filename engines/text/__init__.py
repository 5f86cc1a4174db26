"""The text engine: a character-level LSTM/GRU trained on any UTF-8 text, streaming characters.

Importing this module is cheap (no torch): the GUI reads the engine's description at start-up; the
model, data and sampling modules are imported when the worker first needs them.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..core.interface import (SEED, TEMPERATURE, TOP_K, TOP_P, VARIATIONS, Control, Engine, Notice,
                              resolve_settings)
from .config import TextModelConfig


class TextEngine(Engine):
    name = "text"
    modality = "text"
    title = "Text — character-level LSTM/GRU (char-rnn)"
    default_preset = "small"
    export_formats = (".txt",)
    model_config_class = TextModelConfig

    def controls(self) -> list[Control]:
        return [
            Control("primer", "Primer", "text", "", help="text the model continues"),
            Control("length", "Length", "int", 500, 1, 1_000_000, 50, help="characters to generate"),
            TEMPERATURE, TOP_K, TOP_P, SEED, VARIATIONS,
            Control("stop", "Stop at", "text", "", help="a variation ends when it writes this text"),
        ]

    def preview_settings(self) -> dict:
        return resolve_settings(self.controls(), {"length": 200, "seed": 0})

    def read_corpus(self, path, val_fraction: float = 0.1, meta: dict | None = None, model_config=None):
        from .data import read_text_corpus
        return read_text_corpus(path, val_fraction, vocab=meta["vocab"] if meta else None)

    def build_model(self, model_config, corpus_meta: dict):
        from .model import CharRNN
        return CharRNN(model_config, len(corpus_meta["vocab"]))

    def loss(self, model, batch):
        x, y = batch
        return model(x, y)[1]

    def evaluate(self, model, corpus, batch_size: int, seq_len: int) -> float:
        # carry the RNN state along each validation stream: the loss of reading the held-out text in order
        total, count, state = 0.0, 0, None
        device = next(model.parameters()).device
        for x, y in corpus.validation_batches(batch_size, seq_len):
            _, loss, state = model(x.to(device), y.to(device), state)
            total += loss.item() * y.numel()
            count += y.numel()
        return total / max(count, 1)

    def generate(self, model, meta: dict, settings: dict):
        from .sample import generate
        return generate(model, meta["corpus"]["vocab"], settings)

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        """The text of each variation (a rule between them), and settings in a .json beside the file."""
        pieces: list[list[str]] = [[] for _ in range(settings.get("variations", 1))]
        for chunk in chunks:
            if not isinstance(chunk, Notice):
                for variation, piece in zip(pieces, chunk.text):
                    variation.append(piece)
        path = Path(path)
        rule = "\n\n" + "-" * 40 + "\n\n"
        path.write_text(rule.join("".join(p) for p in pieces), encoding="utf-8")
        path.with_name(path.name + ".json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        return path

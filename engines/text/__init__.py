"""The text engine: a character-level LSTM/GRU trained on any UTF-8 text, streaming characters.

Importing this module is cheap (no torch): the GUI reads the engine's description at start-up; the
model, data and sampling modules are imported when the worker first needs them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..core.errors import CorpusError
from ..core.interface import (SEED, TEMPERATURE, TOP_K, TOP_P, VARIATIONS, Control, Engine, Loss, Metric, Stage,
                              resolve_settings)
from .chunks import TextChunk
from .config import TextModelConfig

RULE = "\n\n" + "-" * 40 + "\n\n"      # between variations in an exported .txt
VALIDATION_PIECE = 64                   # characters per stream read between two looks for Stop


class TextEngine(Engine):
    name = "text"
    modality = "text"
    title = "Text — character-level LSTM/GRU (char-rnn)"
    default_preset = "small"
    export_formats = (".txt",)
    curve_corpus = "Tiny Shakespeare, last 10% held out"
    stages = (Stage("model", "character model", TextModelConfig, unit="char",
                    metrics=(Metric("bits", "bits/char"),)),)

    def controls(self) -> list[Control]:
        return [
            Control("primer", "Primer", "text", "", help="text the model continues"),
            Control("length", "Length", "int", 500, 1, 1_000_000, 50, help="characters to generate"),
            TEMPERATURE, TOP_K, TOP_P, SEED, VARIATIONS,
            Control("stop", "Stop at", "text", "", help="a variation ends when it writes this text"),
        ]

    def preview_settings(self) -> dict:
        return resolve_settings(self.controls(), {"length": 200, "seed": 0})

    def read_corpus(self, path, val_fraction: float = 0.1, meta: dict | None = None, model_config=None,
                    skip_unseen: bool = False):
        from .data import read_text_corpus
        return read_text_corpus(path, val_fraction, vocab=meta["vocab"] if meta else None, skip_unseen=skip_unseen)

    def build_model(self, stage, config, corpus_meta: dict, previous=None):
        from .model import CharRNN
        return CharRNN(config, len(corpus_meta["vocab"]))

    def loss(self, model, batch, stage):
        nats = model(batch.tensors["x"], batch.tensors["y"])[1]
        return Loss(nats, {"bits": nats.detach() / math.log(2)})

    def validate(self, model, corpus, stage, batch_size: int, seq_len: int):
        # carry the RNN state along each validation stream: the loss of reading the held-out text in order.
        # Each batch is read VALIDATION_PIECE characters at a time (the same sums, as the state carries over):
        # Stop is heard between pieces, which keeps it under a second even where a whole batch of `small`
        # takes 3 s (fp32 on a CPU without bf16)
        device, state = next(model.parameters()).device, None
        for batch in corpus.validation_batches(batch_size, seq_len):
            x, y = batch.tensors["x"].to(device), batch.tensors["y"].to(device)
            for start in range(0, y.size(1), VALIDATION_PIECE):
                piece = y[:, start:start + VALIDATION_PIECE]
                _, nats, state = model(x[:, start:start + VALIDATION_PIECE], piece, state)
                yield Loss(nats, {"bits": nats / math.log(2)}), piece.numel()

    def generate(self, model, header: dict, settings: dict):
        from .sample import generate
        return generate(model, header["corpus"]["vocab"], settings)

    def as_text(self, chunks: list, variation: int = 0) -> str:
        return "".join(c.text[variation] for c in chunks if isinstance(c, TextChunk))

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        """The text of each variation (a rule between them), and settings in a .json beside the file."""
        path = Path(path)
        text = RULE.join(self.as_text(chunks, v) for v in range(settings.get("variations", 1)))
        path.write_text(text, encoding="utf-8")
        path.with_name(path.name + ".json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        return path

    def load_sample(self, path: Path) -> tuple[list, dict]:
        path = Path(path)
        try:
            variations = path.read_text(encoding="utf-8").split(RULE)
        except (OSError, UnicodeDecodeError) as e:
            raise CorpusError(f"cannot read {path} as a text sample: {e}") from None
        settings_file = path.with_name(path.name + ".json")
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.exists() else {}
        return [TextChunk(variations, [1.0] * len(variations))], settings

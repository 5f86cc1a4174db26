"""The counter engine: a bigram model that learns to count 0..9 from a file of numbers. Like every engine,
importing it is cheap (torch is imported by the methods the worker calls)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engines.core.interface import (SEED, Batch, Control, Corpus, Engine, Loss, Preset, Stage, StageRecipe,
                                    TrainConfig)

SYMBOLS = 10


@dataclass
class BigramConfig:
    symbols: int = SYMBOLS


@dataclass
class Count:
    """What generation streams: one number."""
    value: int


class Counts(Corpus):
    def __init__(self, values: list[int]):
        import torch
        numbers = torch.tensor(values)
        split = int(len(numbers) * 0.8)
        self.train, self.val = numbers[:split], numbers[split:]
        self.meta = {}
        self.summary = {"lines": [f"{len(values):,} counts"], "warnings": []}

    def batch(self, batch_size, seq_len, generator):
        import torch
        starts = torch.randint(0, len(self.train) - seq_len - 1, (batch_size, 1), generator=generator)
        rows = self.train[starts + torch.arange(seq_len + 1)]
        return Batch({"x": rows[:, :-1], "y": rows[:, 1:]}, batch_size * seq_len)

    def validation_batches(self, batch_size, seq_len):
        yield Batch({"x": self.val[None, :-1], "y": self.val[None, 1:]}, len(self.val) - 1)


class CounterEngine(Engine):
    name = "counter"
    modality = "counts"
    title = "Counter — a bigram model that learns to count (a plug-in)"
    default_preset = "tiny"
    export_formats = (".counts",)
    stages = (Stage("model", "bigram", BigramConfig, unit="count"),)

    def presets(self):
        train = TrainConfig(batch_size=8, seq_len=16, lr=0.3, warmup_steps=2, max_steps=60, eval_interval=30,
                            log_interval=5, val_units=200, precision="fp32")
        return {"tiny": Preset("tiny", "learns in a second", {"model": StageRecipe({"symbols": SYMBOLS}, train)})}

    def controls(self):
        return [Control("length", "Length", "int", 12, 1, 1000, help="numbers to count"), SEED]

    def read_corpus(self, path, val_fraction=0.1, meta=None, model_config=None, skip_unseen=False):
        return Counts([int(v) % SYMBOLS for v in Path(path).read_text().split()])

    def build_model(self, stage, config, corpus_meta, previous=None):
        import torch
        return torch.nn.Embedding(config.symbols, config.symbols)     # row v: the logits of what follows v

    def loss(self, model, batch, stage):
        import torch.nn.functional as F
        logits = model(batch.tensors["x"])
        return Loss(F.cross_entropy(logits.flatten(0, 1), batch.tensors["y"].flatten()))

    def generate(self, model, header, settings):
        import torch
        generator = torch.Generator().manual_seed(settings["seed"])
        value = 0
        with torch.no_grad():
            for _ in range(settings["length"]):
                probs = model(torch.tensor([value], device=model.weight.device)).softmax(-1).cpu()
                value = int(torch.multinomial(probs, 1, generator=generator))
                yield Count(value)

    def export(self, chunks, settings, path):
        path = Path(path)
        path.write_text(" ".join(str(c.value) for c in chunks if isinstance(c, Count)))
        path.with_name(path.name + ".json").write_text(json.dumps(settings))
        return path

    def load_sample(self, path):
        path = Path(path)
        settings = json.loads(path.with_name(path.name + ".json").read_text())
        return [Count(int(v)) for v in path.read_text().split()], settings

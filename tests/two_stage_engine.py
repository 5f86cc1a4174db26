"""A tiny two-stage engine for the tests, shaped like the video engine: a vector-quantising tokenizer with an
EMA codebook (stage 1), then a GRU prior over its frozen codes (stage 2). It trains in seconds on points
that hop around a few cluster centres in a fixed cycle."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.core.interface import Batch, Corpus, Engine, Loss, Metric, Preset, Stage, StageRecipe, TrainConfig

CENTRES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


@dataclass
class TokenizerConfig:
    codes: int = 8
    width: int = 16
    ema: float = 0.9


@dataclass
class PriorConfig:
    hidden: int = 32


@dataclass
class PointsChunk:
    points: list          # one [x, y] per variation


class PointsCorpus(Corpus):
    def __init__(self, length: int = 4000, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        cycle = torch.arange(length) % len(CENTRES)
        points = CENTRES[cycle] + 0.05 * torch.randn(length, 2, generator=gen)
        split = int(length * 0.9)
        self.train, self.val = points[:split], points[split:]
        self.meta = {"dims": 2}
        self.summary = {"lines": [f"{length} points"], "warnings": []}

    def batch(self, batch_size, seq_len, generator):
        starts = torch.randint(0, len(self.train) - seq_len, (batch_size, 1), generator=generator)
        points = self.train[starts + torch.arange(seq_len)]
        return Batch({"points": points}, batch_size * seq_len)

    def validation_batches(self, batch_size, seq_len):
        seq_len = min(seq_len, len(self.val))
        rows = len(self.val) // seq_len
        points = self.val[: rows * seq_len].view(rows, seq_len, 2)
        for i in range(0, rows, batch_size):
            yield Batch({"points": points[i:i + batch_size]}, points[i:i + batch_size].shape[:2].numel())


class Tokenizer(nn.Module):
    def __init__(self, c: TokenizerConfig):
        super().__init__()
        self.ema = c.ema
        self.encoder = nn.Sequential(nn.Linear(2, c.width), nn.Tanh(), nn.Linear(c.width, 4))
        self.decoder = nn.Sequential(nn.Linear(4, c.width), nn.Tanh(), nn.Linear(c.width, 2))
        self.register_buffer("codebook", torch.randn(c.codes, 4))

    def encode(self, points):
        z = self.encoder(points)
        return torch.cdist(z, self.codebook.expand(z.size(0), -1, -1)).argmin(-1), z

    def forward(self, points):
        codes, z = self.encode(points)
        if self.training:     # EMA codebook: moves only in training mode
            with torch.no_grad():
                z = z.float()
                onehot = F.one_hot(codes, len(self.codebook)).float().flatten(0, 1)
                sums = onehot.T @ z.flatten(0, 1)
                counts = onehot.sum(0)[:, None]
                used = counts[:, 0] > 0
                self.codebook[used] = self.ema * self.codebook[used] + (1 - self.ema) * sums[used] / counts[used]
                flat = z.flatten(0, 1)   # unused codes restart at encodings of this batch
                self.codebook[~used] = flat[torch.randint(0, len(flat), (int((~used).sum()),))]
        quantized = z + (self.codebook[codes] - z).detach()        # straight through
        recon = self.decoder(quantized)
        usage = F.one_hot(codes, len(self.codebook)).float().flatten(0, 1).mean(0)
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        return recon, F.mse_loss(z, self.codebook[codes].detach()), perplexity


class Prior(nn.Module):
    def __init__(self, c: PriorConfig, tokenizer, codes: int):
        super().__init__()
        self.tokenizer = tokenizer                      # Frozen(Tokenizer): saved with this stage
        self.embed = nn.Embedding(codes + 1, c.hidden)   # the extra id starts a sequence
        self.rnn = nn.GRU(c.hidden, c.hidden, batch_first=True)
        self.head = nn.Linear(c.hidden, codes)

    def forward(self, codes, state=None):
        x, state = self.rnn(self.embed(codes), state)
        return self.head(x), state


class TwoStageEngine(Engine):
    name = "twostage"
    modality = "points"
    title = "Two-stage test engine"
    default_preset = "tiny"
    stages = (Stage("tokenizer", "tokenizer", TokenizerConfig, unit="point", loss_unit="MSE",
                    metrics=(Metric("perplexity", "codes", True),)),
              Stage("prior", "prior", PriorConfig, unit="code", metrics=(Metric("bits", "bits/code"),),
                    builds_on="tokenizer"))

    def presets(self):
        """Presets may come from the engine's own package rather than presets/<engine>/*.toml."""
        train = TrainConfig(batch_size=8, seq_len=16, lr=1e-2, warmup_steps=5, max_steps=40, eval_interval=20,
                            log_interval=1, val_units=200, precision="fp32")
        return {"tiny": Preset("tiny", "trains in seconds", {
            "tokenizer": StageRecipe(dataclasses.asdict(TokenizerConfig()), train),
            "prior": StageRecipe(dataclasses.asdict(PriorConfig()), train)}),
            "wide": Preset("wide", "a wider prior", {
                "tokenizer": StageRecipe(dataclasses.asdict(TokenizerConfig()), train),
                "prior": StageRecipe(dataclasses.asdict(PriorConfig(hidden=48)), train)})}

    def controls(self):
        from engines.core.interface import SEED, Control
        return [Control("length", "Length", "int", 8, 1, 1000), SEED]

    def read_corpus(self, path, val_fraction=0.1, meta=None, model_config=None, skip_unseen=False):
        return PointsCorpus()

    def build_model(self, stage, config, corpus_meta, previous=None):
        if stage.name == "tokenizer":
            return Tokenizer(config)
        return Prior(config, previous, len(previous.module.codebook))

    def loss(self, model, batch, stage):
        points = batch.tensors["points"]
        if stage.name == "tokenizer":
            recon, commit, perplexity = model(points)
            return Loss(F.mse_loss(recon, points) + 0.25 * commit, {"perplexity": perplexity})
        codes, _ = model.tokenizer.module.encode(points)
        start = torch.full_like(codes[:, :1], model.head.out_features)
        logits, _ = model(torch.cat([start, codes[:, :-1]], 1))
        nats = F.cross_entropy(logits.flatten(0, 1), codes.flatten())
        return Loss(nats, {"bits": nats.detach() / math.log(2)})

    def generate(self, model, header, settings):
        gen = torch.Generator().manual_seed(settings["seed"])
        token, state = torch.tensor([[model.head.out_features]]), None
        with torch.no_grad():
            for _ in range(settings["length"]):
                logits, state = model(token, state)
                token = torch.multinomial(logits[:, -1].softmax(-1), 1, generator=gen)
                point = model.tokenizer.module.decoder(model.tokenizer.module.codebook[token[0]])
                yield PointsChunk([point[0].tolist()])

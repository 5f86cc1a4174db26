"""The video engine: VideoGPT (Yan et al. 2021) in two stages, a VQ-VAE tokenizer with 3D convolutions and an
EMA codebook, then a GPT prior over its frozen codes; primed by the first frames of any clip, generated past
its trained length, and decoded frame by frame while the codes stream in.

Corpus: a file, folder or glob of videos (anything PyAV decodes) or image sequences, or `moving-digits`, the built-in
Moving MNIST-style set (two MNIST test digits bouncing in 64x64).

Importing this module is cheap (no torch): the GUI reads the engine's description at start-up.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ..core.errors import ConfigError
from ..core.interface import SEED, TEMPERATURE, TOP_K, TOP_P, VARIATIONS, Control, Engine, Loss, Metric, Stage
from .config import PriorConfig, TokenizerConfig

VIDEO_FILES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".gif", ".m4v", ".mpg", ".mpeg")
PREVIEW_CLIPS = 4               # held-out clips shown beside their reconstructions while the tokenizer trains
VALIDATION_CLIPS_PER_BATCH = 16  # a cap on clips per validation batch: 3D activations are large


class VideoEngine(Engine):
    name = "video"
    modality = "video"
    title = "Video — VQ-VAE tokenizer + GPT prior (VideoGPT); --data moving-digits for the built-in set"
    default_preset = "small"
    export_formats = (".mp4", ".gif", ".png")
    stages = (
        Stage("tokenizer", "VQ-VAE tokenizer", TokenizerConfig, unit="frame", loss_unit="MSE",
              metrics=(Metric("mse", "MSE"), Metric("psnr", "dB", True), Metric("ssim", "", True),
                       Metric("perplexity", "codes", True), Metric("unused", "codes"), Metric("restarts", "codes"))),
        Stage("prior", "GPT prior over the codes", PriorConfig, unit="frame", loss_unit="nats/token",
              metrics=(Metric("bits", "bits/token"), Metric("bits_per_pixel", "bits/pixel")),
              builds_on="tokenizer"),
    )

    def controls(self) -> list[Control]:
        return [
            Control("frames", "Frames", "int", 0, 0, 10_000, 1,
                    help="frames in the clip, the primer's included (0: the length the model was trained on); "
                         "past that length the model slides its window along"),
            Control("primer", "Primer clip", "media", "", media=VIDEO_FILES,
                    help="a video the model continues (resized, cropped and resampled as in training)"),
            Control("primer_frames", "Primer frames", "int", 4, 1, 10_000, 1,
                    help="how many of the primer's first frames to keep and continue from (whole codes: "
                         "2 frames each in the shipped presets, so an odd number is rounded down, and 1 up to 2)"),
            dataclasses.replace(TEMPERATURE, default=1.0), TOP_K, TOP_P, SEED,
            dataclasses.replace(VARIATIONS, maximum=16),
            Control("fps", "Frames per second", "float", 0.0, 0.0, 120.0, 1.0,
                    help="playback and export rate (0: the rate the model was trained at)"),
        ]

    def read_corpus(self, path, val_fraction: float = 0.1, meta: dict | None = None, model_config=None,
                    skip_unseen: bool = False):
        """A file, folder or glob of videos / image sequences, or `moving-digits`: the built-in data set."""
        from .corpus import read_video_corpus
        config = model_config or TokenizerConfig(**self.preset(None).stages["tokenizer"].model)
        return read_video_corpus(path, config, val_fraction, meta)

    def build_model(self, stage, config, corpus_meta: dict, previous=None):
        if stage.name == "tokenizer":
            from .vqvae import VQVAE
            return VQVAE(config)
        from .prior import VideoPrior
        if config.n_classes:
            raise ConfigError("prior.model.n_classes: a class-conditioned prior needs a label for every clip, and "
                              "the video corpora carry none yet; leave it at 0")
        return VideoPrior(config, previous)

    def loss(self, model, batch, stage):
        video = batch.tensors["video"]
        if stage.name == "tokenizer":
            _, m = model(video)
            codebook = getattr(model, "module", model).codebook      # DDP wraps the model
            return Loss(m["loss"], {"mse": m["mse"], "psnr": m["psnr"], "ssim": m["ssim"], "perplexity": m["perplexity"],
                                    "unused": m["unused"], "restarts": codebook.restarts})
        nats = model(video)
        prior = getattr(model, "module", model)
        bits = nats.detach() / math.log(2)
        pixels_per_token = video[0].numel() / video.size(1) / prior.gpt.config.block_size     # C*T*H*W / C / N
        return Loss(nats, {"bits": bits, "bits_per_pixel": bits / pixels_per_token})

    def validate(self, model, corpus, stage, batch_size: int, seq_len: int):
        yield from super().validate(model, corpus, stage, min(batch_size, VALIDATION_CLIPS_PER_BATCH), seq_len)

    def preview(self, model, header: dict, stage, corpus) -> list:
        """What the Train page shows after a validation: held-out clips beside their reconstructions while
        the tokenizer trains (one variation each), sampled clips once the prior does."""
        if stage.name == "prior":
            return super().preview(model, header, stage, corpus)
        from .sample import reconstructions
        video = next(corpus.validation_batches(PREVIEW_CLIPS, 0)).tensors["video"]
        return [reconstructions(model, video.to(next(model.parameters()).device), corpus.meta["fps"])]

    def generate(self, model, header: dict, settings: dict):
        from .sample import generate
        return generate(model, header["corpus"], settings)

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        """MP4 (H.264), animated GIF, or PNG (animated, plus every frame in a folder beside it); variations side
        by side; the settings in the file's comment and in a .json beside it."""
        from .export import write
        return write(chunks, settings, path)

    def load_sample(self, path: Path) -> tuple[list, dict]:
        from .export import read
        return read(path)

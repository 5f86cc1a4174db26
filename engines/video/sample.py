"""Streaming video generation: an optional primer clip encoded to a token prefix, then code frames drawn by
the prior and each decoded as soon as its last code is drawn.

The tokenizer is causal in time (vqvae.py), so a frame decoded from the codes drawn so far is final: later
codes cannot change it, and each frame is shown the moment it exists. Decoding only the last `reach` code
frames gives exactly those newest frames, so each frame costs the same however long the clip grows.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.interface import Notice
from .chunks import VideoChunk
from .config import TokenizerConfig
from .corpus import as_floats
from .data import nearest_frames, read_video
from .prior import VideoPrior, sample
from .vqvae import VQVAE

GAP = 2     # pixels between the original and its reconstruction in a tokenizer preview


def as_frames(video: torch.Tensor) -> np.ndarray:
    """(B, C, T, H, W) floats in [-1, 1] -> (B, T, H, W, C) uint8, what a VideoChunk holds."""
    return ((video + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()


def read_primer(path: str, config: TokenizerConfig, fps: float, frames: int) -> torch.Tensor:
    """The primer clip's first `frames` frames (T, C, S, S) uint8 (fewer if it is shorter, a few more at most),
    fitted to the model's frame size and resampled to its rate. Only those are decoded: a primer can be a film."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"the primer {path} does not exist")
    source = read_video(path, config, seconds=frames / fps)
    return source.frames[torch.from_numpy(nearest_frames(source.times, source.fps, fps))]


def primer_codes(tokenizer: VQVAE, settings: dict, fps: float) -> tuple[torch.Tensor | None, list[str]]:
    """The codes (1, k, h, w) of the primer's first frames (whole code frames), and notes about what was kept."""
    if not settings.get("primer"):
        return None, []
    c = tokenizer.config
    asked, notes = settings["primer_frames"], []
    clip = read_primer(settings["primer"], c, fps, max(asked, c.time_downsample))
    keep = min(asked, len(clip))
    if keep < asked:
        notes.append(f"the primer has {len(clip)} frames at {fps:g} fps; all of them are kept")
    whole = keep // c.time_downsample * c.time_downsample             # whole code frames
    if whole == 0 and len(clip) >= c.time_downsample:                 # one code frame rather than none
        whole = c.time_downsample
    if whole != keep:
        notes.append(f"kept {whole} primer frames, not {keep}: this model's codes cover {c.time_downsample} "
                     f"frames each")
    if whole == 0:
        notes.append("no primer frames kept: generating from scratch")
        return None, notes
    # the prior sees its window less one code frame of the past: earlier frames could not change what it draws,
    # and encoding a long primer whole would take memory in proportion to its length
    view = c.clip_frames - c.time_downsample
    if whole > view:
        notes.append(f"the model sees the last {view} of the {whole} primer frames kept: the clip starts there")
    video = as_floats(clip[max(0, whole - view):whole]).transpose(0, 1)[None]  # (1, C, T, S, S)
    device = next(tokenizer.parameters()).device
    return tokenizer.encode(video.to(device)), notes


def generate(model: VideoPrior, meta: dict, settings: dict) -> Iterator[VideoChunk | Notice]:
    tokenizer, gpt = model.tokenizer.module, model.gpt
    c = tokenizer.config
    fps = settings.get("fps") or meta["fps"]
    total = settings.get("frames") or c.clip_frames
    variations = settings.get("variations", 1)
    device = next(gpt.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings["seed"])

    primer, notes = primer_codes(tokenizer, settings, meta["fps"])
    for note in notes:
        yield Notice(note)
    codes = [] if primer is None else list(primer.expand(variations, -1, -1, -1).unbind(1))  # code frames
    if len(codes) * c.time_downsample >= total:
        raise ConfigError(f"frames ({total}) must be more than the primer frames kept "
                          f"({len(codes) * c.time_downsample})")
    if total > c.clip_frames:
        yield Notice(f"{total} frames is past the {c.clip_frames} this model was trained on: it keeps the last "
                     f"{c.clip_frames - c.time_downsample} frames in view as it goes")
    if codes:      # the primer as the tokenizer sees it: what the model continues from
        yield VideoChunk(as_frames(tokenizer.decode(torch.stack(codes, 1))), fps, primer=True)

    reach, shown = tokenizer.decoder.reach(), len(codes) * c.time_downsample
    start = torch.stack(codes, 1) if codes else torch.zeros(variations, 0, *c.code_shape[1:], dtype=torch.long,
                                                            device=device)
    for frame_codes in sample(gpt, start, math.ceil(total / c.time_downsample), temperature=settings["temperature"],
                              top_k=settings["top_k"], top_p=settings["top_p"], generator=generator):
        codes.append(frame_codes)
        newest = tokenizer.decode(torch.stack(codes[-reach:], 1))[:, :, -c.time_downsample:]
        newest = newest[:, :, :total - shown]                    # the last code frame may run past the end
        shown += newest.size(2)
        yield VideoChunk(as_frames(newest), fps)


def reconstructions(tokenizer: VQVAE, video: torch.Tensor, fps: float) -> VideoChunk:
    """Each clip (B, C, T, H, W) beside its reconstruction, as one VideoChunk of B variations."""
    decoded = tokenizer.decode(tokenizer.encode(video))
    gap = torch.zeros(*video.shape[:4], GAP, device=video.device)
    return VideoChunk(as_frames(torch.cat([video, gap, decoded], -1)), fps)

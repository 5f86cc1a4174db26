"""Clips for the video engine: from a folder of the user's videos and image sequences, or the built-in moving
digits (Moving MNIST-style, made from the MNIST test digits).

Every source is made to fit the preset: each frame scaled so its shorter side is frame_size and centre-cropped
square, in grey or RGB; the frames resampled to the preset's fps (the frame nearest each tick: dropped to
lower a rate, repeated to raise it); then cut into non-overlapping clips of clip_frames, the remainder dropped.

Videos are decoded by PyAV (`pip install av`: mp4, mkv, webm, avi, mov, gif, anything FFmpeg reads); image
files (png, jpg, ...) in one folder are one image sequence, in natural name order, read by Pillow
(`pip install Pillow`). A file that cannot be used is named with the reason and skipped; only when nothing
usable is left is the folder refused.
"""
from __future__ import annotations

import gzip
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import CorpusError
from ..core.fingerprint import corpus_files
from .config import TokenizerConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
IMAGE_SEQUENCE_FPS = 10.0       # an image sequence has no rate of its own: it plays at the preset's, or this
MOVING_DIGITS_FPS = 10.0
# where the MNIST test digits sit in a development checkout (../shared beside the repository)
MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "video" / "mnist_t10k"
CANVAS = 64                     # Moving MNIST's frame size: 28x28 digits bounce inside it


@dataclass
class Source:
    """One video or image sequence, decoded and fitted to the preset's frame size (not yet resampled)."""
    name: str
    width: int                  # its own size
    height: int
    fps: float                  # its own rate
    times: np.ndarray           # (T,) seconds at which each frame is shown
    frames: torch.Tensor        # (T, C, S, S) uint8


@dataclass
class VideoClips:
    clips: torch.Tensor         # (N, C, T, S, S) uint8
    fps: float
    lines: list[str]            # what was found and what was done to it, for a person
    skipped: list[str]          # "name: why", one per source not used
    facts: dict                 # clips, frames, fps, resolution, sources, skipped


# ----------------------------------------------------------------------------------------------------------
# fitting frames to the preset

def scaled_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) of a height x width picture scaled so its shorter side is `size`."""
    scale = size / min(height, width)
    return max(size, round(height * scale)), max(size, round(width * scale))


def fit_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, size, size) uint8: scaled (antialiased bilinear) so the shorter side is
    `size`, then the centre cropped square."""
    H, W = frames.shape[2:]
    h, w = scaled_size(H, W, size)
    if (h, w) != (H, W):
        frames = F.interpolate(frames.float(), size=(h, w), mode="bilinear", antialias=True,
                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
    top, left = (h - size) // 2, (w - size) // 2
    return frames[:, :, top:top + size, left:left + size]


def nearest_frames(times: np.ndarray, source_fps: float, fps: float) -> np.ndarray:
    """Index of the frame nearest each tick of an `fps` clock over the source's duration (its last frame
    shows for one source frame period), so 30 frames at 30 fps become 10 at 10 fps and 60 at 60."""
    duration = times[-1] - times[0] + 1 / source_fps
    ticks = times[0] + np.arange(max(1, round(duration * fps))) / fps
    return np.searchsorted((times[1:] + times[:-1]) / 2, ticks)     # midpoints passed = nearest frame


def as_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) uint8 -> (1, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(image)).view(1, *image.shape[:2], -1).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------------------------
# reading videos and image sequences

def read_video(path: Path, config: TokenizerConfig, seconds: float | None = None) -> Source:
    """Decode one file with PyAV (only its first `seconds`, if given); CorpusError naming it when it cannot be
    used."""
    try:
        import av
    except ImportError:
        raise CorpusError(f"{path.name}: reading videos needs PyAV (pip install av)") from None
    if path.stat().st_size == 0:
        raise CorpusError(f"{path.name}: the file is empty")
    pixel_format = "gray" if config.channels == 1 else "rgb24"
    try:
        with av.open(str(path)) as container:
            if container.format.name == "tty":      # FFmpeg renders a text file as a video of its characters
                raise CorpusError(f"{path.name}: a text file, not a video")
            if not container.streams.video:
                what = "audio only" if container.streams.audio else "no video stream"
                raise CorpusError(f"{path.name}: {what}")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            times, frames = [], []
            for i, frame in enumerate(container.decode(stream)):
                times.append(frame.time if frame.time is not None else i / fps)
                # FFmpeg scales while converting the pixel format, three times faster than converting at
                # full size and scaling afterwards; fit_frames then only crops
                h, w = scaled_size(frame.height, frame.width, config.frame_size)
                pixels = frame.to_ndarray(width=w, height=h, format=pixel_format, interpolation="AREA")
                frames.append(fit_frames(as_tensor(pixels), config.frame_size))
                if seconds is not None and times[-1] - times[0] >= seconds:
                    break
            width, height = stream.codec_context.width, stream.codec_context.height
    except CorpusError:
        raise
    except Exception as e:  # noqa: BLE001 - FFmpeg reports broken files with many exception types
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise CorpusError(f"{path.name}: not a video PyAV can decode ({reason})") from None
    if not frames:
        raise CorpusError(f"{path.name}: holds no frames")
    return Source(path.name, width, height, fps, np.array(times, dtype=np.float64), torch.cat(frames))


def natural_key(path: Path):
    """frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def eight_bit(image):
    """A Pillow image with 8 bits a channel: 16-bit greyscale (PNG, TIFF; modes I;16, and I as some Pillow
    versions open them) scaled down, not clipped at 255, which would turn nearly every pixel white."""
    if image.mode.startswith("I;16") or image.mode == "I":
        from PIL import Image
        return Image.fromarray((np.array(image).astype(np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    return image


def read_image_sequence(folder: Path, files: list[Path], config: TokenizerConfig, root: Path) -> Source:
    """The images of one folder, in natural name order, as one video."""
    name = f"{folder.relative_to(root).as_posix() if folder != root else folder.resolve().name}/ ({len(files)} images)"
    try:
        from PIL import Image
    except ImportError:
        raise CorpusError(f"{name}: reading image sequences needs Pillow (pip install Pillow)") from None
    frames, sizes = [], {}
    for path in sorted(files, key=natural_key):
        try:
            with Image.open(path) as image:
                pixels = np.array(eight_bit(image).convert("L" if config.channels == 1 else "RGB"))
        except Image.DecompressionBombError:
            raise CorpusError(f"{name}: {path.name} is too many pixels to read as a frame (Pillow's limit is "
                              f"{2 * Image.MAX_IMAGE_PIXELS:,})") from None
        except Exception:  # noqa: BLE001 - Pillow reports broken files with many exception types
            raise CorpusError(f"{name}: {path.name} is not an image Pillow can read") from None
        frames.append(fit_frames(as_tensor(pixels), config.frame_size))
        sizes.setdefault(pixels.shape[1::-1], path.name)
    if len(sizes) > 1:      # frames of several clips in one folder, most likely: each would be cropped its own way
        found = ", ".join(f"{w}x{h} ({first})" for (w, h), first in list(sizes.items())[:4])
        raise CorpusError(f"{name}: its images differ in size ({found}{', ...' if len(sizes) > 4 else ''}): the "
                          f"frames of a sequence must match; put each clip's frames in a folder of its own")
    width, height = next(iter(sizes))
    fps = config.fps or IMAGE_SEQUENCE_FPS
    return Source(name, width, height, fps, np.arange(len(frames)) / fps, torch.cat(frames))


def list_sources(files: list[Path]) -> tuple[list[Path], dict[Path, list[Path]]]:
    """The video files, and the image files grouped by folder."""
    videos, images = [], {}
    for p in files:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            images.setdefault(p.parent, []).append(p)
        else:
            videos.append(p)
    return videos, images


def cut(frames: torch.Tensor, length: int) -> torch.Tensor:
    """(T, C, S, S) -> (T // length, C, length, S, S): non-overlapping clips, the remainder dropped."""
    n = frames.size(0) // length
    return frames[:n * length].view(n, length, *frames.shape[1:]).transpose(1, 2)


def read_clips(path, config: TokenizerConfig) -> VideoClips:
    """Every usable video and image sequence a folder, file or glob names, fitted and cut into clips."""
    root, files = corpus_files(path)
    videos, images = list_sources(files)
    sources, skipped = [], []
    for video in videos:
        try:
            sources.append(read_video(video, config))
        except CorpusError as e:
            skipped.append(str(e))
    for folder, files in images.items():
        try:
            sources.append(read_image_sequence(folder, files, config, root))
        except CorpusError as e:
            skipped.append(str(e))
    # 0 fps keeps the videos' own rate: the most common one (of a tie, the higher), other rates are resampled to it
    rates = Counter(round(s.fps, 3) for s in sources)
    fps = config.fps or (float(max(rates, key=lambda r: (rates[r], r))) if rates else 0.0)
    clips, lines = [], []
    for s in sources:
        resampled = s.frames[torch.from_numpy(nearest_frames(s.times, s.fps, fps))]
        if len(resampled) < config.clip_frames:
            skipped.append(f"{s.name}: too short ({len(resampled)} frames at {fps:g} fps; a clip is "
                           f"{config.clip_frames})")
            continue
        clips.append(cut(resampled, config.clip_frames))
        h, w = scaled_size(s.height, s.width, config.frame_size)
        scaled = "" if (w, h) == (s.width, s.height) else f"scaled to {w}x{h}, "
        cropped = "" if w == h else f"cropped to {config.frame_size}x{config.frame_size}, "
        lines.append(f"{s.name}: {s.width}x{s.height}, {len(s.frames)} frames at {s.fps:g} fps -> {scaled}{cropped}"
                     f"{len(resampled)} frames at {fps:g} fps -> {len(clips[-1])} clip(s)")
    if not clips:
        reasons = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise CorpusError(f"{path} holds no usable video ({reasons or 'no files'})")
    clips = torch.cat(clips)
    S = config.frame_size
    lines.insert(0, f"{len(clips)} clip(s) of {config.clip_frames} frames, {S}x{S} "
                    f"{'grey' if config.channels == 1 else 'RGB'} at {fps:g} fps, from {len(lines)} of "
                    f"{len(lines) + len(skipped)} source(s); every frame scaled so its shorter side is {S} and "
                    f"centre-cropped, every source resampled to {fps:g} fps")
    facts = {"clips": len(clips), "frames": len(clips) * config.clip_frames, "fps": fps, "resolution": [S, S],
             "sources": len(lines) - 1, "skipped": len(skipped)}
    return VideoClips(clips, fps, lines, skipped, facts)


# ----------------------------------------------------------------------------------------------------------
# moving digits

def read_mnist(folder: Path = MNIST_DIR) -> np.ndarray:
    """The MNIST test digits (N, 28, 28) uint8 from its IDX file (gzip)."""
    path = Path(folder) / "t10k-images-idx3-ubyte.gz"
    try:
        with gzip.open(path) as f:
            data = f.read()
    except OSError as e:
        raise CorpusError(f"cannot read the MNIST digits at {path} ({e.strerror or e})") from None
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051 or len(data) != 16 + n * rows * cols:
        raise CorpusError(f"{path} is not an MNIST image file (IDX, magic 2051)")
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)


def bouncing_digits(digits: np.ndarray, clips: int, frames: int, per_clip: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(clips, frames, 64, 64) uint8: per_clip digits each moving in a straight line at 2-5 pixels per frame
    and bouncing off the edges, overlaps the brighter of the two (Srivastava et al. 2015)."""
    size = digits.shape[1]
    room = CANVAS - size                                   # a digit's top-left corner stays within [0, room]
    out = np.zeros((clips, frames, CANVAS, CANVAS), np.uint8)
    for clip in range(clips):
        for _ in range(per_clip):
            digit = digits[rng.integers(len(digits))]
            position = rng.uniform(0, room, 2)
            angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(2, 5)
            velocity = speed * np.array([np.sin(angle), np.cos(angle)])
            for f in range(frames):
                y, x = np.round(position).astype(int)
                np.maximum(out[clip, f, y:y + size, x:x + size], digit, out=out[clip, f, y:y + size, x:x + size])
                position += velocity
                for axis in range(2):                      # reflect off the edge it crossed
                    if not 0 <= position[axis] <= room:
                        position[axis] = -position[axis] if position[axis] < 0 else 2 * room - position[axis]
                        velocity[axis] = -velocity[axis]
    return out

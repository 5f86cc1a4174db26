"""Files a user keeps: MP4 (H.264 through PyAV), animated GIF and PNG (Pillow), and reading them back.

Variations are placed side by side in one picture; the settings (with the number of variations) go into the
file's comment and into a .json beside it, so a saved sample can be split into its variations again.
Pillow writes a run of identical frames once with their durations added up; reading a GIF or PNG back
repeats such a frame for as many ticks as it lasts, so the frame count and rate come back as generated.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, CorpusError
from .chunks import VideoChunk

FORMATS = (".mp4", ".gif", ".png")


def clip_of(chunks: list) -> tuple[np.ndarray, float]:
    """All VideoChunks joined: (variations, T, H, W, C) uint8, and the frame rate."""
    parts = [c for c in chunks if isinstance(c, VideoChunk)]
    if not parts:
        raise ConfigError("nothing to export: the sample holds no frames")
    return np.concatenate([c.frames for c in parts], axis=1), float(parts[0].fps)


def side_by_side(frames: np.ndarray) -> np.ndarray:
    """(V, T, H, W, C) -> (T, H, V*W, 3): the variations next to each other, grey made RGB."""
    V, T, H, W, C = frames.shape
    tiled = frames.transpose(1, 2, 0, 3, 4).reshape(T, H, V * W, C)
    return np.repeat(tiled, 3, axis=-1) if C == 1 else tiled


def apart(frames: np.ndarray, variations: int) -> np.ndarray:
    """(T, H, V*W, C) -> (V, T, H, W, C)."""
    T, H, width, C = frames.shape
    if variations < 1 or width % variations:
        variations = 1
    return frames.reshape(T, H, variations, width // variations, C).transpose(2, 0, 1, 3, 4).copy()


def write(chunks: list, settings: dict, path: Path) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"cannot export video as {path.suffix!r}; choose {', '.join(FORMATS)}")
    frames, fps = clip_of(chunks)
    primer = sum(c.frames.shape[1] for c in chunks if isinstance(c, VideoChunk) and c.primer)
    # settings["fps"] may be 0 (the model's own rate); the primer frames kept, for History to mark them again
    record = {**settings, "frame_rate": fps, "primer_frames_kept": primer}
    comment = json.dumps(record, separators=(",", ":"))
    {".mp4": write_mp4, ".gif": write_gif, ".png": write_png}[suffix](path, side_by_side(frames), fps, comment)
    path.with_name(path.name + ".json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path


def write_mp4(path: Path, frames: np.ndarray, fps: float, comment: str) -> None:
    """H.264 in yuv420p (what every player plays), nearly lossless (crf 12); width and height padded to even."""
    import av
    T, H, W, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "12"}
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = i
            picture.time_base = 1 / rate
            container.mux(stream.encode(picture))
        container.mux(stream.encode())


def pillow_frames(frames: np.ndarray):
    from PIL import Image
    return [Image.fromarray(frame) for frame in frames]


GIF_SHORTEST_MS = 20      # viewers show a GIF frame shorter than 2/100 s for 1/10 s: faster clips play at 50 fps


def frame_ms(fps: float) -> int:
    return max(1, round(1000 / fps))


def write_gif(path: Path, frames: np.ndarray, fps: float, comment: str) -> None:
    """An endlessly looping GIF; GIF counts time in hundredths of a second, so rates round to that, and play
    at most at 50 fps (GIF_SHORTEST_MS)."""
    as_grey = grey(frames)                   # grey frames keep all 256 levels; colour ones get a palette
    images = [image.convert("L") if as_grey else image.quantize(256, dither=0) for image in pillow_frames(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(GIF_SHORTEST_MS, frame_ms(fps)),
                   loop=0, comment=comment.encode())


def grey(frames: np.ndarray) -> bool:
    return bool((frames[..., :1] == frames).all())


def write_png(path: Path, frames: np.ndarray, fps: float, comment: str) -> None:
    """An animated PNG of every frame, lossless (viewers without APNG show the first), and every frame as its
    own PNG in a folder beside it (name-frames/0001.png ...)."""
    from PIL import PngImagePlugin
    images = pillow_frames(frames)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", comment)
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms(fps), loop=0, pnginfo=info)
    folder = path.with_name(path.stem + "-frames")
    folder.mkdir(exist_ok=True)
    for i, image in enumerate(images):
        image.save(folder / f"{i + 1:04d}.png")


def read(path: Path) -> tuple[list, dict]:
    """(chunks, settings) of a sample exported by `write`."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path} does not exist")
    beside = path.with_name(path.name + ".json")
    settings = settings_from(beside.read_text(encoding="utf-8") if beside.exists() else "")
    try:
        if path.suffix.lower() == ".mp4":
            frames, fps, comment = read_with_pyav(path)
        else:
            frames, fps, comment = read_with_pillow(path, settings.get("frame_rate"))
    except CorpusError:
        raise
    except Exception as e:  # noqa: BLE001 - both libraries report broken files with many exception types
        raise CorpusError(f"cannot read {path.name} as a video: {e}") from None
    settings = settings or settings_from(comment)
    fps = float(settings.get("frame_rate") or fps)
    frames = apart(frames, settings.get("variations", 1))
    primer = min(int(settings.get("primer_frames_kept") or 0), frames.shape[1])
    chunks = [VideoChunk(frames[:, :primer], fps, primer=True)] if primer else []
    return chunks + [VideoChunk(frames[:, primer:], fps)], settings


def settings_from(text: str) -> dict:
    try:
        settings = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return settings if isinstance(settings, dict) else {}


def read_with_pyav(path: Path) -> tuple[np.ndarray, float, str]:
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        fps, comment = float(stream.average_rate or 25), container.metadata.get("comment", "")
    if not frames:
        raise CorpusError(f"{path.name} holds no frames")
    return np.stack(frames), fps, comment


def read_with_pillow(path: Path, fps: float | None) -> tuple[np.ndarray, float, str]:
    """Every frame of a GIF or (A)PNG, each repeated for as many frame periods as it lasts (the period of
    `fps` when known, else the shortest frame's; a GIF's, GIF_SHORTEST_MS at least)."""
    from PIL import Image, ImageSequence
    with Image.open(path) as image:
        comment = image.info.get("comment", image.info.get("Comment", b""))
        pictures, durations = [], []
        for frame in ImageSequence.Iterator(image):
            pictures.append(np.array(frame.convert("RGB")))
            durations.append(frame.info.get("duration") or 100)
        gif = image.format == "GIF"
    tick = frame_ms(fps) if fps else min(durations)
    if gif:
        tick = max(tick, GIF_SHORTEST_MS)
    repeats = [max(1, round(d / tick)) for d in durations]
    frames = np.stack([p for p, n in zip(pictures, repeats) for _ in range(n)])
    comment = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else comment
    return frames, 1000 / tick, comment

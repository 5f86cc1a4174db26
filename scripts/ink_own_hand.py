"""The docs' "write in your own hand" demonstration, end to end: a recording, the bundled model primed with it,
and the bundled model fine-tuned on it for a few minutes, drawn one above the other.

No person can sit at this machine's pen pad, so the recording is a stand-in saved the way the pad saves one
(studio.app.pen_recorder.write_inkml: InkML with a time channel) for the pad's own 8 prompted sentences, in a
hand unlike any in the training data: upright print letters (the Hershey "futural" outlines, not the cursive
the model knows) leaning left, with a slow wobble in the pen's path and in each line's baseline.

    .venv/bin/python scripts/ink_own_hand.py [--model assets/ink/unipen-cursive.safetensors] [--steps 30] [--lr 1e-4]

writes docs/samples/ink/own-hand.png (and the three pieces beside it); the recordings and the fine-tuned run go
to a temporary folder unless --work is given.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.app.pen_recorder import NO_PRESSURE, SENTENCES, write_inkml  # noqa: E402  (no QApplication needed)

STUDIO = str(Path(sys.executable).with_name("studio"))
TEXT = "Every hand is its own.\nThis was never written by me."
LEAN_DEGREES = -12          # leans left: the training writers all lean right or stand upright
POINTS_PER_SECOND = 120     # a mouse or tablet reports about this often


def recorded_line(text: str, rng: np.random.Generator) -> list[list[list[float]]]:
    """`text` in the stand-in hand: strokes of [x, y, t] in pad pixels (y down), t in seconds."""
    from HersheyFonts import HersheyFonts
    font = HersheyFonts()
    font.load_default_font("futural")
    font.normalize_rendering(40)                                    # capitals ~40 px tall, as on the pad
    shear = np.tan(np.radians(LEAN_DEGREES))
    strokes, t = [], 0.0
    for stroke in font.strokes_for_text(text):
        xy = np.asarray(stroke, float)
        xy[:, 1] = -xy[:, 1]                                        # the font's y points up, the pad's down
        # points every ~2 px along the stroke, as a pen moving at a steady speed reports them
        steps = np.maximum(np.ceil(np.linalg.norm(np.diff(xy, axis=0), axis=1) / 2).astype(int), 1)
        xy = np.concatenate([np.linspace(a, b, n, endpoint=False) for a, b, n in zip(xy[:-1], xy[1:], steps)]
                            + [xy[-1:]])
        xy[:, 0] -= shear * xy[:, 1]
        wobble = np.cumsum(rng.normal(0, 0.25, xy.shape), axis=0)   # a hand's slow drift, not jitter
        xy += wobble - wobble.mean(axis=0)
        times = t + np.arange(len(xy)) / POINTS_PER_SECOND
        strokes.append(np.column_stack([xy, times]).tolist())
        t = times[-1] + 0.12                                        # the pen lifts and moves on
    baseline = rng.normal(0, 1.5)
    return [[[x, y + baseline, s] for x, y, s in stroke] for stroke in strokes]


def record(folder: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    files = []
    for i, sentence in enumerate(SENTENCES):
        strokes = recorded_line(sentence, rng)
        pressures = [[NO_PRESSURE] * len(s) for s in strokes]
        files.append(write_inkml(folder / f"line-{i + 1:02d}.inkml", strokes, pressures, sentence, "stand-in"))
    return files


def studio(*args: str) -> None:
    subprocess.run([STUDIO, *args], check=True, cwd=ROOT)


def stack(images: list[Path], labels: list[str], out: Path) -> None:
    from PIL import Image, ImageDraw
    pictures = [Image.open(p).convert("RGB") for p in images]
    width = max(p.width for p in pictures) + 20
    height = sum(p.height + 34 for p in pictures) + 10
    sheet = Image.new("RGB", (width, height), "white")
    draw, top = ImageDraw.Draw(sheet), 10
    for picture, label in zip(pictures, labels):
        draw.text((10, top), label, fill=(90, 90, 90))
        sheet.paste(picture, (10, top + 22))
        top += picture.height + 34
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "ink" / "unipen-cursive.safetensors"))
    # 8 lines are one batch: each step is an epoch. 100 steps at 3e-4 on the lines' first 400 points (the defaults
    # before) read a held-out line at 0.75 nats/point; 30 at 1e-4 on whole lines, at 0.14
    parser.add_argument("--steps", type=int, default=30, help="fine-tuning steps (each one a pass over the lines)")
    parser.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate (the preset's is for "
                                                                "training from scratch)")
    parser.add_argument("--work", type=Path, help="keep the recordings and the fine-tuned run here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="own-hand-"))
    docs = ROOT / "docs" / "samples" / "ink"
    docs.mkdir(parents=True, exist_ok=True)
    recordings = work / "recordings" / "stand-in"
    files = record(recordings)
    style = files[0]
    studio("sample", "ink", "--checkpoint", args.model, "--style-file", str(style), "--text", TEXT,
           "--seed", "1", "--bias", "1.5", "--width", "40", "--out", str(docs / "own-hand-primed.png"), "--quiet")
    run = work / "fine-tuned"
    # the recordings alone: the font's lines that taught the bundled model to read would drown 8 lines of a hand
    studio("train", "ink", "--data", str(recordings.parent), "--from", args.model, "--steps", str(args.steps),
           "--set", "model.synthetic_lines=0", "--set", f"train.lr={args.lr}", "--set", "train.batch_size=8",
           "--set", "train.warmup_steps=5", "--set", "train.seq_len=3000", "--out", str(run), "--no-preview")
    studio("sample", "ink", "--checkpoint", str(run), "--style-file", str(style), "--text", TEXT,
           "--seed", "1", "--bias", "1.5", "--width", "40", "--out", str(docs / "own-hand-fine-tuned.png"),
           "--quiet")
    from engines.ink.chunks import InkChunk
    from engines.ink.data import read_inkml
    from engines.ink.export import export
    line = read_inkml(style)[0]               # the recording drawn by the studio's own export
    export([InkChunk([line.points], [0])], {"stroke_width": 2.0}, docs / "own-hand-recording.png")
    stack([docs / "own-hand-recording.png", docs / "own-hand-primed.png", docs / "own-hand-fine-tuned.png"],
          [f"the recording (1 of {len(files)} lines): \"{line.text}\"",
           "the bundled model, primed with that line (no training)",
           f"the bundled model fine-tuned on the {len(files)} lines for {args.steps} steps (lr {args.lr:g}), same "
           f"primer"],
          docs / "own-hand.png")
    print(f"wrote {docs / 'own-hand.png'} (work in {work})")


if __name__ == "__main__":
    main()

"""An ink corpus for the trainer: lines read and normalised (data.py), split, measured, and cut into Batches.

Besides the scale, the corpus meta (saved in every checkpoint) keeps what writing needs later: the alphabet,
the shape of the writing (characters per point, x-height, how far apart points are, where a line's first
point sits above its baseline) and one primer line per writer, the built-in styles.
"""
from __future__ import annotations

import base64
import math
from collections import Counter

import numpy as np
import torch

from ..core.errors import CorpusError
from ..core.interface import Batch, Corpus
from .chunks import strokes_of
from .config import InkModelConfig
from .data import Alphabet, Batcher, InkLine, build_alphabet, normalise, pen_rate, read_corpus, stroke_heights
from .hershey import glyph_source, synthetic_line

RARE = 20                 # characters seen fewer times than this are listed as rare in the summary
STYLE_CHARS = (25, 60)    # a writer's built-in style primer: a training line of about this many characters


SHAPE_DEFAULTS = {"x_height": 1.0, "step": 1.0, "first_above_baseline": 0.0, "lead_in": 0.0, "char_width": 1.0}


def writing_shape(points: list[np.ndarray], texts: list[str]) -> dict:
    """Medians (normalised units, y down) of what laying out a page needs: the x-height (middle 60% of the
    heights of each stroke long enough to be a word or a letter: measured per stroke, because a line's
    baseline drifts), the spacing of pen-down points, how far a line's first point lies above its first
    stroke's baseline and right of the ink's left edge, and how wide a character is. Only what could be
    measured: lines whose strokes are all too short to be a letter (print, at a coarse point spacing) give none
    of it, and the caller keeps its own figures (SHAPE_DEFAULTS, or a model's)."""
    x_heights, steps, drops, leads, widths = [], [], [], [], []
    for p, text in zip(points, texts):
        xy = np.cumsum(p[:, :2], axis=0)
        strokes = [s for s in strokes_of(p) if len(s) >= 8]
        if not strokes:
            continue
        x_heights += stroke_heights(strokes)
        steps.append(np.hypot(*p[1:][p[:-1, 2] < 0.5, :2].T).mean())
        drops.append(np.percentile(strokes[0][:, 1], 80) - xy[0, 1])
        leads.append(xy[0, 0] - xy[:, 0].min())
        if text:
            widths.append((xy[:, 0].max() - xy[:, 0].min()) / len(text))
    measured = {"x_height": x_heights, "step": steps, "first_above_baseline": drops, "lead_in": leads,
                "char_width": widths}
    return {name: float(np.median(values)) for name, values in measured.items() if values}


def pick_styles(lines: list[InkLine], points: list[np.ndarray]) -> dict:
    """One primer per writer: of its lines with about STYLE_CHARS characters (else its five closest to that),
    the one whose length in points per character is the writer's median (a typical line, neither cramped nor
    sprawling)."""
    by_writer: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        if line.text:
            by_writer.setdefault(line.writer, []).append(i)
    styles = {}
    for writer, found in sorted(by_writer.items()):
        fitting = [i for i in found if STYLE_CHARS[0] <= len(lines[i].text) <= STYLE_CHARS[1]]
        middle = sum(STYLE_CHARS) / 2
        fitting = fitting or sorted(found, key=lambda i: abs(len(lines[i].text) - middle))[:5]
        density = [len(points[i]) / len(lines[i].text) for i in fitting]
        i = fitting[int(np.argsort(density)[len(fitting) // 2])]
        styles[writer] = {"text": lines[i].text, "points": pack_points(points[i])}
    return styles


def pack_points(points: np.ndarray) -> str:
    """Stroke-3 rows as compact JSON-able text (float16, base64): a style primer inside the corpus meta, which
    every checkpoint header carries, stays a few kilobytes."""
    return base64.b64encode(points.astype("<f2").tobytes()).decode()


def unpack_points(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f2").reshape(-1, 3).astype(np.float32)


class InkCorpus(Corpus):
    def __init__(self, train: list[np.ndarray], train_texts: list[list[int]] | None, val: list[np.ndarray],
                 val_texts: list[list[int]] | None, meta: dict, summary: dict, augment: float = 0.0):
        self.train, self.train_texts, self.val, self.val_texts = train, train_texts, val, val_texts
        self.meta, self.summary, self.augment = meta, summary, augment
        self.batchers: dict[int, Batcher] = {}

    def batch(self, batch_size: int, seq_len: int, generator) -> Batch:
        """Lines of similar lengths, each cut to its first seq_len + 1 points (seq_len predictions)."""
        if not self.train:
            raise CorpusError("the training split is empty")
        if seq_len not in self.batchers:
            self.batchers[seq_len] = Batcher(self.train, self.train_texts, self.meta["quantum"], seq_len + 1,
                                             self.augment)
        return as_batch(self.batchers[seq_len].sample(batch_size, generator))

    def validation_batches(self, batch_size: int, seq_len: int):
        """Whole held-out lines, in a fixed shuffled order (a prefix then meets every writer)."""
        batcher = Batcher(self.val, self.val_texts, 0.0)
        order = torch.randperm(len(self.val), generator=torch.Generator().manual_seed(0)).tolist()
        for start in range(0, len(order), batch_size):
            yield as_batch(batcher.batch(order[start:start + batch_size]))


def as_batch(ink) -> Batch:
    tensors = {"points": ink.points, "point_mask": ink.point_mask, "ends": ink.ends}
    if ink.text is not None:
        tensors.update(text=ink.text, text_mask=ink.text_mask)
    return Batch(tensors, int(ink.point_mask[:, 1:].sum()))


def read_ink_corpus(path, config: InkModelConfig, val_fraction: float = 0.1, meta: dict | None = None,
                    new_styles: bool = False) -> InkCorpus:
    """Read, split and normalise a corpus. With `meta` (a trained model's), it is read the way that model
    reads: its scale, smoothing, downsampling and alphabet (characters it has no input for read as unknown);
    with `new_styles` too (the model is fine-tuned on it), each writer the meta has no style of gets one."""
    lines, warnings = read_corpus(path)
    for_model = meta is not None
    conditional = (meta["alphabet"] is not None) if meta else config.conditional and any(l.text for l in lines)
    if conditional:
        untranscribed = [l for l in lines if not l.text]
        if untranscribed:
            warnings.append(f"skipped {len(untranscribed)} line(s) without a transcript (e.g. {untranscribed[0].source}): "
                            f"a model that writes text learns from transcribed lines only")
        lines = [l for l in lines if l.text]
        # a transcript longer than its ink has points belongs to other ink (or to none): it would also set the
        # attention window's pace for the whole corpus
        unwritable = [l for l in lines if len(l.text) > len(l.points)]
        warnings += [f"skipped {l.source}: its transcript has {len(l.text):,} characters for {len(l.points):,} pen "
                     f"points, so it cannot be the text of this ink" for l in unwritable]
        if unwritable and len(unwritable) == len(lines):
            raise CorpusError(f"{path}: every transcript is longer than its ink has points (e.g. "
                              f"{unwritable[0].source}); they cannot be the text of this ink")
        lines = [l for l in lines if len(l.text) <= len(l.points)]
        if not lines:
            raise CorpusError(f"{path}: no line has a transcript")
    # the split: the writers named by the config, or every n-th line
    held_out = {w.strip() for w in config.validation_writers.split(",") if w.strip()}
    if val_fraction >= 1:
        is_val = [True] * len(lines)
    elif held_out:
        missing = held_out - {l.writer for l in lines}
        if missing:
            raise CorpusError(f"model.validation_writers names writer(s) not in {path}: {', '.join(sorted(missing))}")
        is_val = [l.writer in held_out for l in lines]
    else:
        # a few recorded lines still hold one out
        every = max(2, min(round(1 / val_fraction), len(lines))) if val_fraction > 0 else len(lines) + 1
        is_val = [i % every == every // 2 for i in range(len(lines))]
    if val_fraction < 1 and (all(is_val) or (val_fraction > 0 and not any(is_val))):
        raise CorpusError(f"{path}: {len(lines)} line(s) cannot be split into training and validation lines")

    points, new_meta = normalise(lines, config.smooth, config.downsample, meta=dict(meta) if meta else None)
    texts = [l.text for l in lines]
    if meta is not None and conditional:
        # pen data in other units than the model's corpus (a tablet's pixels, not UNIPEN's): at the model's size
        factor = size_factor(points, texts, meta)
        if factor is not None:
            for p in points:
                p[:, :2] *= factor
            warnings.append(f"the pen data was {1 / factor:.2g}x the size of the writing this model learnt from: "
                            f"scaled to match")
    meta = new_meta if meta is None else meta
    train_idx = [i for i, v in enumerate(is_val) if not v]
    new = {}
    if "alphabet" not in meta:
        alphabet = build_alphabet([texts[i] for i in train_idx]) if conditional else None
        meta["alphabet"] = alphabet.to_meta() if alphabet else None
        meta.update(SHAPE_DEFAULTS, **writing_shape([points[i] for i in train_idx], [texts[i] for i in train_idx]))
        meta["chars_per_point"] = (sum(len(texts[i]) for i in train_idx) / sum(len(points[i]) for i in train_idx)
                                   if conditional else None)
        meta["styles"] = pick_styles([lines[i] for i in train_idx], [points[i] for i in train_idx]) if conditional else {}
    elif new_styles and conditional and train_idx:
        # fine-tuning on writers the model has no style of (your own hand): their lines become styles too, and a
        # single new writer is the one Style 'default' writes in. Not on resuming (--new-data with a new writer
        # would no longer match the run) nor for an evaluation
        new = {writer: style for writer, style in pick_styles([lines[i] for i in train_idx],
                                                              [points[i] for i in train_idx]).items()
               if writer not in meta.get("styles", {})}
        if new:
            meta = {**meta, "styles": {**meta.get("styles", {}), **new}}
            if len(new) == 1:
                meta["default_style"] = next(iter(new))
    alphabet = Alphabet.from_meta(meta["alphabet"]) if meta["alphabet"] else None
    encode = (lambda idx: [alphabet.encode(texts[i]) for i in idx]) if alphabet else (lambda idx: None)

    train_points = [points[i] for i in train_idx]
    val_idx = [i for i, v in enumerate(is_val) if v]
    train_texts, synthetic = encode(train_idx), 0
    if config.synthetic_lines and alphabet and train_idx:
        extra = synthetic_lines(config.synthetic_lines, [texts[i] for i in train_idx], meta)
        synthetic = len(extra)
        train_points += [p for p, _ in extra]
        train_texts += [alphabet.encode(t) for _, t in extra]

    summary = describe(path, lines, points, is_val, alphabet, meta, synthetic, warnings, for_model)
    if new:
        summary["lines"].append(f"new style(s) for the fine-tuned model: {', '.join(new)}"
                                + (" (Style 'default' writes in it)" if len(new) == 1 else ""))
    return InkCorpus(train_points, train_texts, [points[i] for i in val_idx], encode(val_idx), meta, summary,
                     config.augment)


def size_factor(points: list[np.ndarray], texts: list[str], meta: dict, tolerance: float = 1.25) -> float | None:
    """How much to scale lines (in a model's units) so that their characters are as wide and their letters as
    tall as in the model's own corpus (the geometric mean of the two: print is wider and flatter than cursive),
    or None within `tolerance` (the model's own corpus, read again to resume, is left exactly as it was)."""
    shape = writing_shape(points, texts)
    ratios = [meta[name] / shape[name] for name in ("char_width", "x_height") if name in shape]
    if not ratios:
        return None
    factor = math.exp(np.mean(np.log(ratios)))
    return None if 1 / tolerance <= factor <= tolerance else factor


def synthetic_lines(n: int, texts: list[str], meta: dict) -> list[tuple[np.ndarray, str]]:
    """n lines of 2-6 words of the corpus' own texts written in Hershey's cursive, at about the corpus' size (see
    hershey.SYNTHETIC_FONT_UNITS) and point spacing (the same lines each time: seeded). Only words the font can
    draw whole: a letter it lacks would be in the text but not in the ink, and the window would learn to skip it."""
    rng = np.random.default_rng(0)
    words = [w for t in texts for w in t.split() if all(glyph_source(ch) == ("cursive", ch) for ch in w)]
    if not words:
        return []
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(words, rng.integers(2, 7)))
        out.append((synthetic_line(text, rng, meta["x_height"], meta["step"]).astype(np.float32), text))
    return out


def describe(path, lines, points, is_val, alphabet: Alphabet | None, meta: dict, synthetic: int,
             warnings: list[str], for_model: bool = False) -> dict:
    """What was read. A corpus read with a trained model's meta (fine-tuning) is described by its own characters,
    pen rate and points per character, beside the model's where they differ."""
    writers = sorted({l.writer for l in lines})
    n_val = sum(is_val)
    n_points = sum(len(p) for p in points)
    raw_points = sum(len(l.points) for l in lines)
    chars = sum(len(l.text) for l in lines)
    reading = []
    if meta["smooth"] > 1:
        reading.append(f"smoothed over {meta['smooth']} points")
    if meta["downsample"] > 1:
        reading.append(f"1 point in {meta['downsample']} kept")
    out = [f"{len(lines)} line(s) by {len(writers)} writer(s) ({len(lines) - n_val} for training, {n_val} held out): "
           f"{n_points:,} points ({raw_points:,} read{'; ' + ', '.join(reading) if reading else ''})",
           "writers: " + ", ".join(writers[:12]) + (" …" if len(writers) > 12 else "")]
    rate = pen_rate(lines, meta["downsample"])        # these files' own, not the model's
    out.append(f"pen rate: {rate:.1f} points/s after downsampling" if rate else
               "pen rate: the files do not say how fast they were written (point spacing is used instead)")
    if alphabet:
        # a new model's alphabet is counted on its training lines; a fine-tuning corpus is counted whole
        counts = Counter("".join(l.text for l in lines)) if for_model else alphabet.counts
        reads = "characters" if for_model else "of them (seen twice or more)"
        out.append(f"{chars:,} characters, {len(counts)} distinct; the model reads {len(alphabet.chars)} {reads}")
        letters = [ch for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" if not counts.get(ch)]
        out.append("alphabet coverage: " + ("every letter and digit" if not letters else
                                            f"never seen: {''.join(letters)}"))
        rare = "".join(alphabet.rare(RARE))
        if rare:
            where = " in the model's training" if for_model else ""
            out.append(f"rare (< {RARE} times{where}; drawn from a font when too rare to write): {rare}")
        if chars:
            own = f"about {n_points / chars:.1f} points per character"
            model = 1 / meta["chars_per_point"] if meta.get("chars_per_point") else None
            out.append(own + (f" (the model's writing: {model:.1f})" if for_model and model else ""))
    else:
        out.append("no transcripts: an unconditional model (it scribbles in the corpus' style)")
    if synthetic:
        out.append(f"{synthetic} synthetic lines in Hershey's cursive added to training (exactly aligned text)")
    return {"source": str(path), "lines": [l for l in out if l], "warnings": warnings, "ink_lines": len(lines),
            "writers": len(writers), "points": n_points, "characters": chars}

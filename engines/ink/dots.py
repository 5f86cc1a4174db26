"""Dots over i and j, and crosses on t, that the pen left out.

The writers of the training data dot and cross each word after writing it: the pen lifts, jumps back over the
word, and makes a short stroke. That jump is the least likely move of the mixture, and the bias makes it rarer
still (real lines have 9.6 such strokes; the model at bias 2 writes about one), so an i reads as u or e and a t
as l. The writer watches each word: when the pen has finished one, lifts and heads on without going back, the
letters still missing their mark get it, as pen moves fed through the model like its own (so it goes on from
where they leave the pen, as after a writer's own dots). Where each letter is comes from the attention window:
the points written while the window was on a letter are that letter's.

All positions here are the model's own (before the page's slant), in the units of its points.
"""
from __future__ import annotations

import re

import numpy as np

DOTTED, CROSSED = "ij", "t"
BACK = 0.5          # a stroke that starts this many character widths left of the ink before it was made later
NEAR = 0.9          # a mark within this many character widths of a letter is that letter's


def words(text: str) -> list[tuple[int, int]]:
    """(first, last) index of each word."""
    return [(m.start(), m.end() - 1) for m in re.finditer(r"\S+", text)]


def needing_marks(text: str, first: int, last: int, accented: set[int]) -> list[int]:
    """The letters of the word text[first:last+1] that take a dot or a cross (an accented one has its accent)."""
    return [i for i in range(first, last + 1) if text[i] in DOTTED + CROSSED and i not in accented]


def strokes(pens: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each stroke: a pen-up flag ends one."""
    ends = np.flatnonzero(pens > 0.5)
    starts = np.r_[0, ends + 1]
    stops = np.r_[ends, len(pens) - 1]
    return [(a, b) for a, b in zip(starts, stops) if a <= b]


class Letter:
    """Where the pen drew one letter: its top and the slant of its stem."""

    def __init__(self, xy: np.ndarray):
        self.x = float(xy[:, 0].mean())
        top = int(np.argmin(xy[:, 1]))
        self.top = xy[top]
        # x against height over the letter's points: a forward-leaning hand's stem is further right higher up
        dy = xy[:, 1] - xy[:, 1].mean()
        self.slant = float(np.clip(-(dy * (xy[:, 0] - self.x)).sum() / max((dy * dy).sum(), 1e-9), -0.3, 0.7))

    def x_at(self, y: float) -> float:
        return float(self.top[0] + self.slant * (self.top[1] - y))


def marked(text: str, letters: list[int], xy: np.ndarray, pens: np.ndarray, chars: np.ndarray,
           found: dict[int, Letter], baseline: float, x_height: float, char_width: float) -> set[int]:
    """Which of `letters` already have their dot or cross: a short flat stroke near the letter, begun well left
    of the ink before it (made after the letters it passed) or above the x-height; or, for a t, a level run
    through its own points at the height of a cross."""
    done = set()
    for a, b in strokes(pens):
        s = xy[a:b + 1]
        flat = b - a < 8 and np.ptp(s[:, 1]) < 0.6 * x_height           # a dot or a cross, not a letter
        later = a > 0 and s[0, 0] < xy[:a, 0].max() - BACK * char_width
        if not (flat and (later or s[:, 1].mean() < baseline - x_height)):
            continue
        # a dot is short; a cross is long, and may reach over the letters beside its t
        kind = DOTTED if np.ptp(s[:, 0]) < 0.4 * x_height else CROSSED
        middle = s[:, 0].mean()
        near = [i for i in letters if text[i] in kind and i in found and i not in done
                and abs(found[i].x - middle) < NEAR * char_width + np.ptp(s[:, 0]) / 2]
        if near:
            done.add(min(near, key=lambda i: abs(found[i].x - middle)))
    for i in letters:
        if text[i] in CROSSED and i not in done:
            own = np.flatnonzero(chars == i)
            if len(own) > 2:
                d = np.diff(xy[own], axis=0)
                level = (np.abs(d[:, 0]) > 2 * np.abs(d[:, 1])) & (xy[own][1:, 1] < baseline - 0.75 * x_height)
                level &= pens[own][:-1] < 0.5
                if np.abs(d[level, 0]).sum() >= 0.3 * char_width:
                    done.add(i)
    return done


def mark_moves(kind: str, letter: Letter, baseline: float, x_height: float, char_width: float) -> np.ndarray:
    """The stroke of a dot (kind in DOTTED) or a cross, as absolute (x, y, pen_up) rows."""
    if kind in DOTTED:
        y = min(float(letter.top[1]), baseline - 0.9 * x_height) - 0.55 * x_height
        x = letter.x_at(y)
        return np.array([[x, y, 0.0], [x + 0.08 * x_height, y + 0.04 * x_height, 1.0]])
    y = baseline - 1.1 * x_height
    x = letter.x_at(y)
    xs = np.linspace(x - 0.35 * char_width, x + 0.35 * char_width, 5)
    ys = np.linspace(y + 0.03 * x_height, y - 0.03 * x_height, 5)
    return np.column_stack([xs, ys, [0, 0, 0, 0, 1.0]])


def missing_marks(text: str, spans: list[tuple[int, int]], accented: set[int], xy: np.ndarray, pens: np.ndarray,
                  chars: np.ndarray, x_height: float, char_width: float) -> np.ndarray:
    """The pen moves (dx, dy, pen_up) from the last point that add the dots and crosses the words `spans` lack,
    left to right; none when nothing is missing (or a letter's place cannot be told)."""
    rows = []
    for first, last in spans:
        letters = needing_marks(text, first, last, accented)
        if not letters:
            continue
        word = (chars >= first) & (chars <= last) & (pens < 0.5)
        if word.sum() < 4:
            continue
        baseline = float(np.percentile(xy[word, 1], 80))
        found = {i: Letter(xy[chars == i]) for i in letters if (chars == i).sum() >= 2}
        done = marked(text, letters, xy, pens, chars, found, baseline, x_height, char_width)
        rows += [mark_moves(text[i], found[i], baseline, x_height, char_width)
                 for i in letters if i in found and i not in done]
    if not rows:
        return np.zeros((0, 3))
    path = np.vstack(rows)
    moves = path.copy()
    moves[:, :2] = np.diff(np.vstack([xy[-1], path[:, :2]]), axis=0)
    return moves

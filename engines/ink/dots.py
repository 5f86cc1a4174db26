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
BELOW = ("\u0327", "\u0328")    # cedilla, ogonek: accents under a letter, which keeps its dot or cross
BACK = 0.5          # a stroke that starts this many character widths left of the ink before it was made later
NEAR = 0.9          # a mark within this many character widths of a letter is that letter's
QUOTES = "'\"\u2019"  # drawn above the x-height like a dot: the stroke of i'm is its apostrophe, not a dot


def words(text: str) -> list[tuple[int, int]]:
    """(first, last) index of each word: its letters and digits, so that a word's dots come before the comma or
    period after it (made after it, they were read as the end of the line)."""
    return [(m.start(), m.end() - 1) for m in re.finditer(r"\w+", text)]


def needing_marks(text: str, first: int, last: int, accents: dict[int, str]) -> list[int]:
    """The letters of the word text[first:last+1] that take a dot or a cross: not an i or j written with an
    accent over it (í: the accent is its dot)."""
    return [i for i in range(first, last + 1) if text[i] in CROSSED
            or text[i] in DOTTED and accents.get(i, BELOW[0]) in BELOW]


def strokes(pens: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each stroke: a pen-up flag ends one."""
    ends = np.flatnonzero(pens > 0.5)
    starts = np.r_[0, ends + 1]
    stops = np.r_[ends, len(pens) - 1]
    return [(a, b) for a, b in zip(starts, stops) if a <= b]


class Letter:
    """Where the pen drew one letter (its points up to a little above the x-height: the window's alignment
    smears over the letters beside it, and the l of "li" is not the i's top): its top and the slant of its
    stem."""

    def __init__(self, xy: np.ndarray):
        self.x = float(xy[:, 0].mean())
        self.top = xy[int(np.argmin(xy[:, 1]))]
        # x against height over the letter's points: a forward-leaning hand's stem is further right higher up
        dy = xy[:, 1] - xy[:, 1].mean()
        self.slant = float(np.clip(-(dy * (xy[:, 0] - self.x)).sum() / max((dy * dy).sum(), 1e-9), -0.3, 0.7))

    def x_at(self, y: float) -> float:
        return float(self.top[0] + self.slant * (self.top[1] - y))


def marked(text: str, first: int, letters: list[int], xy: np.ndarray, pens: np.ndarray, chars: np.ndarray,
           found: dict[int, Letter], baseline: float, x_height: float, char_width: float) -> set[int]:
    """Which of `letters` (of the word starting at `first`) already have their dot or cross: a short flat
    stroke near the letter, made while the window was on the word or after it, that began well left of the
    ink before it (made after the letters it passed) or lies above the x-height; or, for a t, a level run of
    its own points at the height of a cross. A dot is short; a cross is long, and one bar may cross several
    t's (little)."""
    done = set()
    for a, b in strokes(pens):
        s, on = xy[a:b + 1], chars[a:b + 1]
        quote = [text[c] in QUOTES for c in on if c < len(text)]
        if on.min() < first or quote and sum(quote) > len(quote) / 2:
            continue                                    # another word's, a dot or cross made for it, a quote
        flat = b - a < 8 and np.ptp(s[:, 1]) < 0.6 * x_height           # a dot or a cross, not a letter
        later = a > 0 and s[0, 0] < xy[:a, 0].max() - BACK * char_width
        if not (flat and (later or s[:, 1].mean() < baseline - x_height)):
            continue
        middle, width = s[:, 0].mean(), np.ptp(s[:, 0])
        near = lambda kind: [i for i in letters if text[i] in kind and i in found and i not in done
                             and abs(found[i].x - middle) < NEAR * char_width + width / 2]
        nearest = lambda letters: [min(letters, key=lambda i: abs(found[i].x - middle))] if letters else []
        if width >= 0.45 * char_width:                  # a cross: every t under it, else the nearest letter
            under = [i for i in near(CROSSED) if s[:, 0].min() - 0.3 * char_width <= found[i].x
                     <= s[:, 0].max() + 0.3 * char_width]
            done.update(under or nearest(near(CROSSED) or near(DOTTED)))
        else:                                           # a dot, or a short cross: the nearest letter of either
            done.update(nearest(near(DOTTED) + near(CROSSED)))
    for i in letters:
        if text[i] in CROSSED and i not in done:
            own = np.flatnonzero(chars == i)
            steps = own[:-1][np.diff(own) == 1]               # pen moves between two of its own points
            d = xy[steps + 1] - xy[steps]
            level = (np.abs(d[:, 0]) > 2 * np.abs(d[:, 1])) & (xy[steps + 1, 1] < baseline - 0.75 * x_height)
            level &= pens[steps] < 0.5
            if np.abs(d[level, 0]).sum() >= 0.3 * char_width:
                done.add(i)
    return done


def mark_moves(kind: str, letter: Letter, baseline: float, x_height: float, char_width: float) -> np.ndarray:
    """The stroke of a dot (kind in DOTTED) or a cross, as absolute (x, y, pen_up) rows."""
    if kind in DOTTED:
        y = float(np.clip(letter.top[1], baseline - 1.2 * x_height, baseline - 0.9 * x_height)) - 0.55 * x_height
        x = letter.x_at(y)
        return np.array([[x, y, 0.0], [x + 0.08 * x_height, y + 0.04 * x_height, 1.0]])
    y = baseline - 1.1 * x_height
    x = letter.x_at(y)
    xs = np.linspace(x - 0.35 * char_width, x + 0.35 * char_width, 5)
    ys = np.linspace(y + 0.03 * x_height, y - 0.03 * x_height, 5)
    return np.column_stack([xs, ys, [0, 0, 0, 0, 1.0]])


def missing_marks(text: str, spans: list[tuple[int, int]], accents: dict[int, str], xy: np.ndarray,
                  pens: np.ndarray, chars: np.ndarray, x_height: float, char_width: float) -> np.ndarray:
    """The pen moves (dx, dy, pen_up) from the last point that add the dots and crosses the words `spans` lack,
    left to right; none when nothing is missing (or a letter's place cannot be told). `chars`: the character
    the window was on at each point, -1 for a dot or cross made earlier for the model."""
    rows = []
    for first, last in spans:
        letters = needing_marks(text, first, last, accents)
        if not letters:
            continue
        word = (chars >= first) & (chars <= last) & (pens < 0.5)
        if word.sum() < 4:
            continue
        baseline = float(np.percentile(xy[word, 1], 80))
        found = {}
        for i in letters:                               # (a letter whose place cannot be told gets no mark)
            own = xy[(chars == i) & (xy[:, 1] >= baseline - 1.3 * x_height)]
            if len(own) >= 2:
                found[i] = Letter(own)
        done = marked(text, first, letters, xy, pens, chars, found, baseline, x_height, char_width)
        rows += [mark_moves(text[i], found[i], baseline, x_height, char_width)
                 for i in letters if i in found and i not in done]
    if not rows:
        return np.zeros((0, 3))
    path = np.vstack(rows)
    moves = path.copy()
    moves[:, :2] = np.diff(np.vstack([xy[-1], path[:, :2]]), axis=0)
    return moves

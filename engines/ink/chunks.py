"""What ink generation streams to the window (torch-free: the GUI imports it)."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np

INK_COLOUR = "#1b2a49"    # the pen's colour unless the settings name another: a dark blue-black, as ink dries


@dataclass
class InkChunk:
    # per variation, the new pen points since the last chunk: (n, 3) float32 rows of (dx, dy, pen_up) in the
    # corpus' raw units (y pointing down), pen_up = 1 on a stroke's last point; n may be 0 once it has stopped
    points: list[np.ndarray]
    line: list[int] = field(default_factory=list)     # per variation, which line of the text it is writing
    # optional, per variation: the attention over the characters of the piece of the line being written (the
    # whole line, unless it was cut into pieces), at the last point, for a live alignment view
    attention: list[np.ndarray] | None = None
    done: list[bool] | None = None                    # per variation: finished (past the end of its text)
    # optional, per variation: how many of the points sent before this chunk to take back before adding these
    # (a stalled piece of a line being written again); 0 or None: none
    retract: list[int] | None = None
    rate: float | None = None                         # points per second the pen wrote at (replay speed)
    x_height: float | None = None                     # the hand's x-height in the points' units (drawing size)


def visible_text(text: str) -> str:
    """The text without control and format characters (a pasted escape code, a zero-width joiner): nothing to
    draw, and not allowed in an SVG's XML. Newlines stay."""
    return "".join(ch for ch in text if ch == "\n" or (unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
                                                      and ch not in "\ufffe\uffff"))


def variation_points(chunks: list, variation: int = 0) -> np.ndarray:
    """All the (dx, dy, pen_up) rows of one variation, retractions applied: what is on the page at the end."""
    rows: list[np.ndarray] = []
    for c in chunks:
        if not isinstance(c, InkChunk) or variation >= len(c.points):
            continue
        back = c.retract[variation] if c.retract else 0
        while back > 0 and rows:                       # drop whole blocks, then the tail of one
            if len(rows[-1]) <= back:
                back -= len(rows.pop())
            else:
                rows[-1], back = rows[-1][:len(rows[-1]) - back], 0
        if len(c.points[variation]):
            rows.append(np.asarray(c.points[variation], dtype=np.float32).reshape(-1, 3))
    return np.concatenate(rows) if rows else np.zeros((0, 3), np.float32)


def strokes_of(points: np.ndarray) -> list[np.ndarray]:
    """(dx, dy, pen_up) rows -> absolute strokes [(n_i, 2)], the page starting at (0, 0)."""
    xy = np.cumsum(points[:, :2].astype(np.float64), axis=0)
    ends = np.flatnonzero(points[:, 2] > 0.5) + 1
    return [s for s in np.split(xy, ends) if len(s)]


def smooth_stroke(xy: np.ndarray, per_span: int = 4) -> np.ndarray:
    """A stroke (n, 2) drawn as a pen would, not as a polyline: quadratic curves through the midpoints of its
    spans, each point a curve's control (the points are 30 ms apart, so corners between them are artefacts of
    the sampling). Returns the curve as points, per_span per span; the ink view draws the same curves with
    QPainterPath.quadTo as points arrive."""
    if len(xy) < 3:
        return xy
    mids = (xy[:-1] + xy[1:]) / 2                                       # (n - 1, 2)
    t = (np.arange(1, per_span + 1) / per_span)[:, None, None]          # (per, 1, 1)
    a, control, b = mids[:-1], xy[1:-1], mids[1:]                       # curve i: mids[i] -> mids[i + 1]
    curves = (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t ** 2 * b  # (per, n - 2, 2)
    return np.vstack([xy[:1], mids[:1], curves.transpose(1, 0, 2).reshape(-1, 2), xy[-1:]])


"""Writing a text as a page of handwriting, streamed as InkChunks while the pen moves.

    text -> paragraphs -> lines wrapped to `width` characters -> pieces -> pen points

A line is a row of pieces: runs of characters the model writes, and characters it cannot (never seen, or
too rare to write well), which are drawn from the Hershey fonts at the style's x-height; an accented letter is
written as its base letter by the model with the accent drawn on top (NFD). Every piece the model writes
starts from the same primed state (the style's primer line read through the model, Graves' section 5.5), so
the whole page keeps one hand while no line depends on how the previous one went.

The window over the text is watched point by point. A piece is finished where the model's end flag says
the line ends (once the window is on its last character), or else once the window has passed its last
character (Graves' rule, `past_end`), at the pen's next lift or a character's worth of points later (the
window of a trained model does not stay past the end: its lagging Gaussians take over again, and a pen left
to go on writes gibberish after the text); it has stalled when the window stops moving for
several characters' worth of points, runs out of its point budget, or jumps to the end without writing. A
stalled piece is taken back (InkChunk.retract) and written again with new draws; one that keeps stalling is
split at a space and written in halves, and a single word that still fails is drawn from the font, so a line
always ends complete, without scribbles after it.

Each word's dots and crosses the pen left out are added once it is written (dots.py). All variations are
written side by side as one batch; each keeps its own page.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import textwrap
import time
import unicodedata
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, Iterator, NamedTuple

import numpy as np
import torch

from ..core.cache import cache_dir
from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.errors import CheckpointError, CheckpointWriteError, ConfigError, CorpusError
from ..core.interface import Notice
from ..core.resources import ASSETS_DIR
from . import dots
from .chunks import InkChunk, strokes_of, visible_text
from .corpus import unpack_points, writing_shape
from .data import Alphabet, read_corpus, stroke_heights, strokes_to_points, usable_coordinates
from .hershey import MARKS, fallback, mark_strokes, resample
from .model import InkModel, InkState, past_end

WRITE_MIN_COUNT = 5       # a character seen fewer times in training is drawn from the font instead
ATTEMPTS = 3              # draws of a piece before it is split or drawn from the font
PIECE_CHARS = 40          # longest text written in one go from the primed state (see short_pieces)
CHUNK_POINTS = 8          # model steps per streamed chunk (~30 chunks a second at the speed of a core)
MAX_PRIMER_POINTS = 2500
# model -> {primer: (state, last point)}: reading a primer costs a pass over its points, once per model and style
PRIMED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
PRIMED_KEEP = 32          # primed states kept per model: its built-in styles and the user's recent samples
# and on disk, so that a new process (the CLI's first line) need not read its style again: ~7 KB each, the
# least recently used dropped
PRIMED_ON_DISK = 256
PRIMED_VERSION = 1        # a new version when what read_primer_points computes changes: older files are not read
# the bundled models' built-in styles, read once when a model is bundled (scripts/ship_ink_styles.py): a machine's
# first line in one of them then starts as fast as its second
SHIPPED_PRIMED = ASSETS_DIR / "ink" / "primed"
WEIGHTS_DIGEST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # model -> (weights_stamp, digest)
READ_AHEAD_STYLES = 8     # built-in styles prepare reads besides the chosen one (IAM-OnDB has ~200 writers)


class Attempt(NamedTuple):
    """How one row's attempt at a piece went."""
    ok: bool                     # finished: the model ended the line, or the window passed its end and the pen lifted
    xy: np.ndarray               # (n, 2) the points it drew, on the page
    char_of_point: np.ndarray    # (n,) the piece's character the window was on at each point; -1: a dot or cross
                                 # added for the model (dots.py)


@dataclass
class Piece:
    start: int                   # index of its first character in the line
    text: str = ""               # characters the model writes
    glyph: str = ""              # or one character drawn from the font
    marks: list[tuple[int, str]] = field(default_factory=list)   # (index in text, combining accent)
    gap: bool = False            # a space before it

    def split(self, words: int) -> tuple[Piece, Piece]:
        """The piece cut at a space: its first `words` words, and the rest (with a gap before it)."""
        left = " ".join(self.text.split(" ")[:words])
        cut = len(left) + 1
        return (Piece(self.start, left, marks=[m for m in self.marks if m[0] < len(left)], gap=self.gap),
                Piece(self.start + cut, self.text[cut:], marks=[(i - cut, a) for i, a in self.marks if i >= cut],
                      gap=True))


def wrap(text: str, width: int) -> list[str]:
    """Paragraphs (blank lines kept as empty lines) wrapped to `width` characters; long words are broken."""
    text = visible_text(text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    text = unicodedata.normalize("NFC", text)
    lines = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, width, break_on_hyphens=False) or [""]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def plan_line(line: str, writable: set[str]) -> tuple[list[Piece], set[str]]:
    """The line's pieces, and the characters the font draws (all of them, or their accents)."""
    pieces, substituted = [], set()
    current, gap = None, False
    for i, ch in enumerate(line):
        if ch.isspace():
            if current is not None and current.text:
                current.text += " "
            else:
                gap = True
            continue
        base, *accents = unicodedata.normalize("NFD", ch)
        if ch in writable or (base in writable and accents and all(a in MARKS for a in accents)):
            if ch not in writable:
                substituted.add(ch)
            if current is None:
                current = Piece(i, gap=gap)
                gap = False
            current.marks += [(len(current.text), a) for a in accents if ch not in writable]
            current.text += ch if ch in writable else base
            continue
        substituted.add(ch)
        if current is not None:
            pieces.append(current)
            gap = current.text.endswith(" ")
            current = None
        pieces.append(Piece(i, glyph=ch, gap=gap))
        gap = False
    if current is not None:
        pieces.append(current)
    for p in pieces:               # a space at a piece's end becomes the gap before the next one
        if p.text.endswith(" "):
            p.text = p.text.rstrip(" ")
    for after in pieces[1:]:
        after.gap = after.gap or line[after.start - 1:after.start].isspace()
    return short_pieces([p for p in pieces if p.text or p.glyph]), substituted


def short_pieces(pieces: list[Piece]) -> list[Piece]:
    """Runs of text cut at spaces into pieces of at most PIECE_CHARS characters (a longer word stays whole). A
    shorter piece is less to take back when the pen stalls; a model trained only on the starts of lines also lost
    its place late in a long one (docs/ink.md measures both lengths). Every piece starts from the same primed
    state, so the hand is the same."""
    out = []
    for p in pieces:
        while len(p.text) > PIECE_CHARS and " " in p.text:
            lengths = np.cumsum([len(w) + 1 for w in p.text.split(" ")]) - 1
            first, p = p.split(max(1, int(np.searchsorted(lengths, PIECE_CHARS, side="right"))))
            out.append(first)
        out.append(p)
    return out


# ----------------------------------------------------------------------------------------------------
# the style: a primer line read through the model


@dataclass
class Primer:
    text: str
    points: np.ndarray            # (n, 3) normalised stroke-3 rows, pen lifted after the last one
    name: str


def primer_from_raw(points: np.ndarray, text: str, meta: dict, name: str) -> Primer:
    """A user's sample (any units, any pen rate) in the model's units: scaled so that its characters are as
    wide and its letters as tall (by the corpus' yardstick) as the corpus' (the geometric mean of the two:
    print is wider and flatter than cursive), and redrawn with the corpus' point spacing. `text` is what it
    says, never empty: each caller asks for it where its user gives it."""
    called = "the pen sample" if name == "pen sample" else f"the style sample {name}"
    if not usable_coordinates(points):
        raise ConfigError(f"{called} has coordinates that are not numbers (NaN or infinite) or too large")
    strokes = strokes_of(points)
    xy = np.concatenate(strokes)
    width = xy[:, 0].max() - xy[:, 0].min()
    if width <= 0:
        raise ConfigError(f"{called} has no width to measure its size by")
    scale = meta["char_width"] * len(text) / width
    heights = stroke_heights([s * scale for s in strokes])
    if heights and np.median(heights) > 0:
        scale *= math.sqrt(meta["x_height"] / float(np.median(heights)))
    strokes = [resample(s * scale, meta["step"]) for s in strokes]
    out = strokes_to_points(strokes)
    if len(out) > MAX_PRIMER_POINTS:
        raise ConfigError(f"{called} is too long ({len(out)} points; at most {MAX_PRIMER_POINTS}): "
                          f"record a line or two")
    return Primer(text, out, name)


def choose_primer(meta: dict, settings: dict, rng: np.random.Generator) -> tuple[Primer | None, str]:
    """The style asked for, and how to describe it: a recorded file, the pen pad, a writer, or none."""
    styles = meta.get("styles") or {}
    if settings.get("style_file"):
        path = Path(settings["style_file"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"the style sample {path} does not exist")
        try:
            lines, _ = read_corpus(path)
        except CorpusError as e:
            raise ConfigError(f"the style sample {path.name} cannot be read: {e}") from None
        line = next((l for l in lines if l.text), lines[0])
        if not line.text.strip():
            raise ConfigError(f"the style sample {path.name} has no text: the model needs to know what it says "
                              f"(InkML: an annotation of type 'truth'; the pen pad: the style text)")
        return primer_from_raw(line.points, line.text, meta, path.name), f"in the hand of {path.name}"
    if settings.get("pen_sample"):
        strokes = [np.array([p[:2] for p in s], dtype=np.float64) for s in settings["pen_sample"] if len(s)]
        if not strokes or sum(map(len, strokes)) < 2:
            raise ConfigError("the pen sample has no strokes")
        if not settings.get("pen_text", "").strip():
            raise ConfigError("the pen sample has no text: say what it reads in Pen text, so that the model can "
                              "follow the hand letter by letter")
        return (primer_from_raw(strokes_to_points(strokes), settings.get("pen_text", ""), meta, "pen sample"),
                "in the hand of the pen sample")
    style = settings.get("style", "").strip()
    if style.lower() == "none" or not styles:
        return None, "in the model's own hands (no style primer)"
    if style.lower() == "default":      # the writer the meta names (the bundled model's: read best), if any
        style = meta.get("default_style") if meta.get("default_style") in styles else ""
    if not style:
        style = sorted(styles)[rng.integers(len(styles))]
    if style not in styles:
        raise ConfigError(f"no style {style!r}; this model's styles: {', '.join(sorted(styles))}, or none")
    return Primer(styles[style]["text"], unpack_points(styles[style]["points"]), style), \
        f"in the hand of writer {style}"


# ----------------------------------------------------------------------------------------------------
# one variation's page: where the pen is and what it has drawn on the current line


class Page:
    def __init__(self, meta: dict, line_height: float, slant: float):
        self.meta, self.line_height, self.shear = meta, line_height, math.tan(math.radians(slant))
        self.pen = np.zeros(2)            # absolute position of the last point sent
        self.sent = 0                     # rows sent so far
        self.line = -1
        self.ink: list[np.ndarray] = []   # (x, y, pen_up) rows the model wrote on this line (not the font's glyphs)
        self.out: list[np.ndarray] = []   # rows waiting to be sent
        self.down = False                 # the last point sent leaves the pen on the paper
        self.right = None                 # right edge of the line's ink (None: nothing yet)
        self.saved: dict = {}             # what save() kept, for retract()

    def new_line(self, index: int) -> None:
        self.line, self.ink, self.right = index, [], None

    def save(self) -> None:
        self.saved = {"pen": self.pen.copy(), "ink": list(self.ink), "right": self.right, "down": self.down,
                      "sent": self.sent}

    def retract(self) -> int:
        """Back to the state save() kept, dropping what was drawn since; how many points already sent the view
        must take back (the rows not yet sent are simply dropped)."""
        taken = self.sent - self.saved["sent"]
        self.out = []
        self.pen, self.ink, self.right, self.down, self.sent = (self.saved[k] for k in
                                                                ("pen", "ink", "right", "down", "sent"))
        return taken

    def lift(self) -> None:
        """End the stroke the pen is in (a point where it is, pen up), before it moves to a new place."""
        if self.down:
            self.draw(self.pen[None], np.ones(1))

    def recent(self) -> np.ndarray:
        """The line's last 120 (x, y, pen_up) rows (a line's baseline drifts: measure it where the pen is)."""
        return np.concatenate(self.ink)[-120:] if self.ink else np.zeros((0, 3))

    @property
    def baseline(self) -> float:
        if sum(map(len, self.ink)) >= 20:
            return float(np.percentile(self.recent()[:, 1], 80))
        return self.line * self.line_height

    @property
    def x_height(self) -> float:
        rows = self.recent()
        heights = stroke_heights(np.split(rows[:, :2], np.flatnonzero(rows[:, 2] > 0.5) + 1))
        if len(heights) >= 2:
            return float(np.clip(np.median(heights), 0.5 * self.meta["x_height"], 2 * self.meta["x_height"]))
        return self.meta["x_height"]

    def origin(self, gap: bool) -> np.ndarray:
        """Where a model piece's first point goes."""
        if self.right is None:
            x = self.meta["lead_in"]
        else:
            x = self.right + self.meta["char_width"] * (1.0 if gap else 0.25) + self.meta["lead_in"]
        return np.array([x, self.baseline - self.meta["first_above_baseline"]])

    def draw(self, xy: np.ndarray, pen_up: np.ndarray, by_model: bool = True) -> None:
        """Absolute points (n, 2) and their pen-up flags onto the page. Only the model's points measure the
        hand's baseline and x-height: glyphs measured too would make each following glyph larger."""
        if not len(xy):
            return
        rows = np.zeros((len(xy), 3), np.float32)
        rows[:, :2] = np.diff(np.vstack([self.pen, xy]), axis=0)
        rows[:, 2] = pen_up
        self.out.append(rows)
        self.pen, self.down = xy[-1].copy(), bool(pen_up[-1] < 0.5)
        down = xy[pen_up < 0.5] if (pen_up < 0.5).any() else xy
        if by_model:
            self.ink.append(np.column_stack([xy, pen_up]))
        self.right = max(self.right if self.right is not None else -np.inf, float(down[:, 0].max()))

    def draw_strokes(self, strokes: list[np.ndarray]) -> None:
        self.lift()
        for s in strokes:
            up = np.zeros(len(s))
            up[-1] = 1
            self.draw(s, up, by_model=False)

    def take(self) -> np.ndarray:
        rows = np.concatenate(self.out) if self.out else np.zeros((0, 3), np.float32)
        self.out = []
        self.sent += len(rows)
        return rows


# ----------------------------------------------------------------------------------------------------
# the writer


class Writer:
    def __init__(self, model: InkModel, meta: dict, settings: dict):
        self.model, self.meta, self.settings, self.scale = model, meta, settings, meta["scale"]
        self.device = next(model.parameters()).device
        self.alphabet = Alphabet.from_meta(meta["alphabet"])
        self.writable = {ch for ch in self.alphabet.chars if self.alphabet.counts.get(ch, 0) >= WRITE_MIN_COUNT}
        self.rows = settings["variations"]
        self.generator = torch.Generator(self.device).manual_seed(settings["seed"])
        line_height = settings["line_spacing"] * meta["x_height"]
        self.pages = [Page(meta, line_height, settings["slant"]) for _ in range(self.rows)]
        self.points_per_char = 1 / meta["chars_per_point"]
        self.fell_back: set[str] = set()      # pieces the pen could not write, drawn from the font
        self.budget = 0                        # model steps left for the whole text

    # --- the primed state every piece starts from
    def prime(self, primer: Primer | None) -> None:
        self.prefix = primer.text + " " if primer else ""
        if primer is None:
            self.state0 = self.model.initial_state(1, self.device)
            self.x0 = torch.zeros(1, 3, device=self.device)
            self.lift_height = None
            return
        # where the primer's pen left the paper, above (-) or below its baseline (measured as the page measures
        # a line's): every piece goes on from there, so its first move lands at the height the model meant
        xy = np.cumsum(primer.points[:, :2], axis=0)
        self.lift_height = float(xy[-1, 1] - np.percentile(xy[-120:, 1], 80))
        self.state0, self.x0 = read_primer(self.model, self.alphabet, primer)

    def start_state(self, n: int) -> tuple[torch.Tensor, InkState]:
        s = self.state0
        grow = lambda t: t.expand(n, *t.shape[1:]).clone()
        return grow(self.x0), InkState([grow(h) for h in s.h], [grow(c) for c in s.c], grow(s.kappa), grow(s.window))

    def chunk(self, retract: dict[int, int] | None = None, attention: dict | None = None,
              done: bool = False) -> InkChunk:
        points = [p.take() for p in self.pages]
        for p in points:
            p[:, :2] *= self.scale                     # into the corpus' raw units
        att = [attention.get(i) for i in range(self.rows)] if attention else None
        return InkChunk(points, [p.line for p in self.pages], att if att and all(a is not None for a in att) else None,
                        [done] * self.rows if done else None,
                        retract=[(retract or {}).get(i, 0) for i in range(self.rows)] if retract else None,
                        rate=self.meta.get("points_per_second"), x_height=self.meta["x_height"] * self.scale)

    # --- one attempt at a model piece for some rows
    def attempt(self, rows: list[int], piece: Piece) -> Generator[InkChunk, None, dict[int, Attempt]]:
        """Write piece.text on `rows`, streaming; returns how it went on each row.
        Per point only the model runs; the pages get the new points once per chunk."""
        model, n, length = self.model, len(rows), len(piece.text)
        text = self.prefix + piece.text
        ids = torch.tensor([self.alphabet.encode(text)] * n, device=self.device)
        reading = model.encode_text(ids, torch.ones_like(ids, dtype=torch.bool))
        offset, total = len(self.prefix), torch.full((n,), len(text), device=self.device)
        x, state = self.start_state(n)
        limit = int((length + 2) * self.points_per_char * 3) + 20
        patience = int(4 * self.points_per_char) + 10
        least = 0.25 * self.points_per_char * length          # fewer points than this: the window jumped
        for r in rows:
            self.pages[r].lift()
        moves = {r: [] for r in rows}                         # (dx, dy) sheared, the first one replaced below
        raw = {r: [] for r in rows}                           # the same before the slant: the model's own
        pens = {r: [] for r in rows}
        chars = {r: [] for r in rows}                         # -1 for a dot or cross made for the model
        queued: dict[int, list] = {r: [] for r in rows}       # dots and crosses still to make, fed to the model
        looked = {r: set() for r in rows}                     # words whose dots and crosses were seen to
        spans = dots.words(piece.text) if self.settings["dots"] else []
        accents = dict(piece.marks)
        char_width = self.meta["char_width"]
        drawn = {r: 0 for r in rows}
        best = {r: -1.0 for r in rows}                        # furthest the window has been, in characters
        last_move = {r: 0 for r in rows}
        passed: dict[int, int] = {}                           # when the window first passed the piece's end
        finished: dict[int, bool] = {}
        bias, temperature = self.settings["bias"], self.settings["temperature"]
        u = reading.u - offset                                 # positions of the piece's characters (+ past end)
        shear = self.pages[rows[0]].shear

        def record(r, dx, dy, pen_up, char):
            moves[r].append((dx - shear * dy, dy))
            raw[r].append((dx, dy))
            pens[r].append(pen_up)
            chars[r].append(char)

        def dots_and_crosses(r, done):
            """The moves that add the dots and crosses missing from the words `done` says the window passed."""
            todo = [w for w in spans if done(w) and w not in looked[r]]
            looked[r].update(todo)
            if not todo or not pens[r]:
                return []
            return dots.missing_marks(piece.text, todo, accents, np.cumsum(raw[r], axis=0), np.array(pens[r]),
                                      np.array(chars[r]), self.meta["x_height"], char_width).tolist()

        def model_points(r):
            return sum(c >= 0 for c in chars[r])

        def end(r, sent_down=False):
            """The piece ends on row r: the pen lifts, then the last words' dots and crosses are drawn (the model
            is not needed after them). `sent_down`: its last point already went out with the pen down."""
            pens[r][-1] = 1.0
            finished[r] = model_points(r) >= least
            marks = dots_and_crosses(r, lambda w: True)
            if marks and sent_down:
                record(r, 0.0, 0.0, 1.0, -1)
            for move in marks:
                record(r, *move, -1)

        def forced_move(k, r, x):
            """The next move of a dot or cross, drawn and fed to the model in place of the point it drew."""
            dx, dy, pen_up = queued[r].pop(0)
            record(r, dx, dy, pen_up, -1)
            last_move[r] += 1           # the window waits while the mark is made: that is not a stall
            x = x.clone()
            x[k] = torch.tensor([dx, dy, pen_up], dtype=x.dtype, device=x.device)
            return x

        def flush():
            for r in rows:
                if len(pens[r]) > drawn[r]:
                    page = self.pages[r]
                    d = np.array(moves[r][drawn[r]:])
                    start = page.origin(piece.gap) if drawn[r] == 0 else page.pen
                    if drawn[r] == 0:
                        if self.lift_height is not None:        # the first move's height, from the primer's end
                            start[1] = page.baseline + self.lift_height + d[0, 1]
                        d[0] = 0.0
                    page.draw(start + np.cumsum(d, axis=0), np.array(pens[r][drawn[r]:]))
                    drawn[r] = len(pens[r])

        t = 0
        while len(finished) < n and t < limit and self.budget > 0:
            step = model.step(x, state, reading, bias, temperature, self.generator)
            x, state, t = step.point, step.state, t + 1
            self.budget -= 1
            phi = step.phi
            ended = past_end(phi, total).tolist()
            flagged = step.ends.tolist() if step.ends is not None else [False] * n
            at = phi[:, offset:-1].argmax(-1).tolist()
            where = ((phi * u).sum(-1) / phi.sum(-1).clamp_min(1e-9)).tolist()
            point = x.tolist()
            for k, r in enumerate(rows):
                if r in finished:
                    continue
                if queued[r]:               # a dot or cross being made: the model's own draw is set aside
                    x = forced_move(k, r, x)
                    continue
                # the model ended the line with the point before, the window on the last character or past it
                # (its mean, in the piece's positions: still on the primer's text, it is below 0)
                if flagged[k] and pens[r] and (where[k] >= length - 1.5 or ended[k]):
                    end(r, sent_down=drawn[r] == len(pens[r]) and pens[r][-1] < 0.5)
                    continue
                dx, dy, pen_up = point[k]
                # the pen lifted after a word and heads on, not back or straight up to dot and cross it itself:
                # the dots and crosses it left out
                if (spans and pens[r] and pens[r][-1] > 0.5 and dx > -dots.BACK * char_width
                        and (dy > -0.5 * self.meta["x_height"] or dx > 0.6 * char_width)):
                    queued[r] = dots_and_crosses(r, lambda w: w[1] + 0.75 <= where[k] and at[k] > w[1])
                    if queued[r]:
                        x = forced_move(k, r, x)
                        continue
                record(r, dx, dy, pen_up, at[k])
                if where[k] > best[r] + 0.5:
                    best[r], last_move[r] = where[k], t
                if ended[k] and r not in passed:
                    passed[r] = t
                if r in passed:
                    if pen_up > 0.5 or t - passed[r] >= self.points_per_char:
                        end(r)          # the pen lifts here, whatever it drew (this point is not sent yet)
                elif t - last_move[r] > patience:
                    finished[r] = False                     # stalled
            if t % CHUNK_POINTS == 1:          # a piece's first point at once: the pen starts when asked
                flush()
                yield self.chunk(attention={r: phi[k, offset:-1].cpu().numpy().copy() for k, r in enumerate(rows)})
        flush()
        results = {}
        for r in rows:
            # past the end but the budget ran out before the pen lifted: finished all the same
            ok = finished.get(r, best[r] >= length - 0.5 and model_points(r) >= least)
            added = self.pages[r].ink[len(self.pages[r].saved["ink"]):]
            xy = np.concatenate(added)[-len(pens[r]):, :2] if pens[r] else np.zeros((0, 2))
            results[r] = Attempt(ok, xy, np.array(chars[r]))
            self.pages[r].lift()          # a point the end flag made the last was maybe sent with the pen down
        return results

    def write_piece(self, rows: list[int], piece: Piece) -> Iterator[InkChunk]:
        if piece.glyph:
            for r in rows:
                self.glyph(r, piece.glyph, piece.gap)
            return
        pending = list(rows)
        for _ in range(ATTEMPTS):
            if any(page.out for page in self.pages):
                yield self.chunk()           # an attempt starts with nothing unsent: a retraction is exact
            for r in pending:
                self.pages[r].save()
            results = yield from self.attempt(pending, piece)
            failed = [r for r in pending if not results[r].ok]
            for r in pending:
                if results[r].ok:
                    self.accents(r, piece, results[r])
            if failed:
                yield self.chunk(retract={r: self.pages[r].retract() for r in failed})
            pending = failed
            if not pending or self.budget <= 0:
                break
        if not pending:
            return
        words = piece.text.count(" ") + 1
        if words > 1 and self.budget > 0:             # shorter texts are easier to follow: halves
            first, second = piece.split(words // 2)
            yield from self.write_piece(pending, first)
            yield from self.write_piece(pending, second)
            return
        self.font_piece(pending, piece)     # one word the pen cannot follow

    def font_piece(self, rows: list[int], piece: Piece) -> None:
        """A piece the model did not write, drawn from the font letter by letter."""
        self.fell_back.add(piece.text)
        for r in rows:
            for i, ch in enumerate(piece.text):
                self.glyph(r, ch, piece.gap and i == 0)

    def glyph(self, r: int, ch: str, gap: bool) -> None:
        page = self.pages[r]
        h = page.x_height
        strokes, advance, _ = fallback(ch, h)
        left = (page.right if page.right is not None else 0.0) + (self.meta["char_width"] if gap else 0.1 * h)
        base = page.baseline
        placed = [np.column_stack([s[:, 0] - page.shear * s[:, 1] + left, s[:, 1] + base]) for s in strokes]
        if placed:
            page.draw_strokes(placed)
        page.right = left + advance

    def accents(self, r: int, piece: Piece, result: Attempt) -> None:
        """Accents over (or under) the letters the model wrote as their base letter, placed by the attention:
        the points written while the window was on a letter are that letter's."""
        xy, chars = result.xy, result.char_of_point
        page = self.pages[r]
        right = page.right
        for i, mark in piece.marks:
            own = xy[chars >= 0]                         # not the dots and crosses added for the model
            mine = xy[chars == i] if (chars == i).any() else own[-max(1, len(own) // len(piece.text)):]
            x_top = page.baseline - page.x_height
            top = x_top if mark in dots.BELOW else min(x_top, float(mine[:, 1].min()))
            page.draw_strokes(mark_strokes(mark, float(mine[:, 0].mean()), top, page.x_height))
        page.right = right

    # --- the page
    def write(self, lines: list[list[Piece]], characters: int) -> Iterator[InkChunk]:
        """The page: each line's pieces (plan_line), `characters` in all."""
        self.budget = int(6 * characters * self.points_per_char) + 200
        all_rows = list(range(self.rows))
        for index, pieces in enumerate(lines):
            for page in self.pages:
                page.new_line(index)
            for piece in pieces:
                if not piece.glyph and self.budget <= 0:     # out of time: the rest from the font
                    self.font_piece(all_rows, piece)
                else:
                    yield from self.write_piece(all_rows, piece)
                yield self.chunk()                           # each line's points go out tagged with its index
        yield self.chunk(done=True)


def substitution_notice(substituted: set[str], alphabet: Alphabet) -> str:
    accented = sorted(ch for ch in substituted if len(unicodedata.normalize("NFD", ch)) > 1
                      and unicodedata.normalize("NFD", ch)[0] in alphabet.chars)
    drawn = sorted(substituted - set(accented))
    parts = []
    if drawn:
        parts.append(f"drawn from the Hershey font (the model never learnt them): {' '.join(drawn)}")
    if accented:
        parts.append(f"written as the base letter with the accent drawn on: {' '.join(accented)}")
    return "; ".join(parts)


def read_primer(model: InkModel, alphabet: Alphabet, primer: Primer) -> tuple[InkState, torch.Tensor]:
    """The state the primer line (with its text and a space) leaves the model in, and its last point: read
    through the model once per model and primer, then kept in PRIMED and in the cache folder."""
    device = next(model.parameters()).device
    # the stamp changes with every training step: a model being trained (its previews) is never served a state
    # primed by older weights
    key = (primer.text, primer.points.tobytes(), str(device), weights_stamp(model))
    cache = PRIMED.setdefault(model, {})
    if key not in cache:
        if len(cache) >= PRIMED_KEEP:
            cache.clear()
        primed = load_primed(shipped_file(model, primer), model, device)
        if primed is None:
            on_disk = primed_file(model, primer, device)
            primed = load_primed(on_disk, model, device)
            if primed is None:
                primed = save_primed(on_disk, *read_primer_points(model, alphabet, primer))
            else:
                with contextlib.suppress(OSError):       # recently used: kept when the folder is trimmed
                    os.utime(on_disk)
        cache[key] = primed
    return cache[key]


def read_primer_points(model: InkModel, alphabet: Alphabet, primer: Primer) -> tuple[InkState, torch.Tensor]:
    device = next(model.parameters()).device
    points = torch.from_numpy(primer.points).to(device)[None].clone()
    points[0, -1, 2] = 1
    ids = torch.tensor([alphabet.encode(primer.text + " ")], device=device)
    with torch.inference_mode():
        out = model(points, torch.ones(points.shape[:2], dtype=torch.bool, device=device), ids,
                    torch.ones_like(ids, dtype=torch.bool), want_phi=True)
    state = out.state
    # a hand unlike the training data's can leave the window short of the primer's end, and the pen would
    # then first have to write the rest of the primer's text: move the window on to the primer's last
    # character (kappa counts characters), keeping the hand the state holds. Not further: a window already
    # on the new text's first character takes it as written and the pen skips it
    phi = out.phi[0, -1]
    centre = float((phi * torch.arange(len(phi), device=device)).sum() / phi.sum().clamp_min(1e-9))
    last = len(primer.text) - 1
    if centre < last - 0.5:
        state = state._replace(kappa=state.kappa + (last - centre))
    return state, points[:, -1]


# --- primed states on disk, named by the weights and the primer: the bundled model's longest built-in primer
# takes ~120 ms to read (~170 ms in a new process), its state ~1 ms to load

def weights_stamp(model: InkModel) -> tuple[int, float]:
    """Changes whenever the weights do: every in-place change (an optimizer step, a load) bumps a tensor's
    version; the head's sum covers a tensor swapped for another."""
    return sum(t._version for t in model.state_dict().values()), float(model.head.weight.detach().sum())


def weights_digest(model: InkModel) -> str:
    """Names the weights exactly (~5 ms for the bundled model's 6.7 MB, then remembered while they stay)."""
    stamp = weights_stamp(model)
    known = WEIGHTS_DIGEST.get(model)
    if known is None or known[0] != stamp:
        digest = hashlib.blake2b(digest_size=12)
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
        WEIGHTS_DIGEST[model] = known = (stamp, digest.hexdigest())
    return known[1]


def primer_digest(primer: Primer) -> str:
    return hashlib.blake2b(primer.text.encode() + primer.points.tobytes(), digest_size=12).hexdigest()


def primed_file(model: InkModel, primer: Primer, device: torch.device) -> Path:
    # computed on a GPU, a state differs from the CPU's in its last bits: each device type keeps its own
    return cache_dir("ink-primed") / \
        f"v{PRIMED_VERSION}-{weights_digest(model)}-{primer_digest(primer)}-{device.type}.safetensors"


def shipped_file(model: InkModel, primer: Primer) -> Path:
    """Where a bundled model's built-in style's state is shipped (read on the CPU; used on any device, so that a
    seed writes the same page whether or not the style was read on this machine before)."""
    return SHIPPED_PRIMED / f"v{PRIMED_VERSION}-{weights_digest(model)}-{primer_digest(primer)}.safetensors"


def load_primed(path: Path, model: InkModel, device: torch.device) -> tuple[InkState, torch.Tensor] | None:
    try:
        tensors, _ = load_checkpoint(path, engine="ink")
    except CheckpointError:                              # not there yet, or damaged: the primer is read again
        return None
    t = {name: tensor.to(device) for name, tensor in tensors.items()}
    layers = range(model.config.n_layer)
    if {*t} != {"kappa", "window", "last_point", *(f"h{n}" for n in layers), *(f"c{n}" for n in layers)}:
        return None
    return InkState([t[f"h{n}"] for n in layers], [t[f"c{n}"] for n in layers], t["kappa"], t["window"]), \
        t["last_point"]


def primed_tensors(state: InkState, last_point: torch.Tensor) -> dict[str, torch.Tensor]:
    """A primed state as the file load_primed reads."""
    return {"kappa": state.kappa, "window": state.window, "last_point": last_point,
            **{f"h{n}": h for n, h in enumerate(state.h)}, **{f"c{n}": c for n, c in enumerate(state.c)}}


def save_primed(path: Path, state: InkState, last_point: torch.Tensor) -> tuple[InkState, torch.Tensor]:
    """Keep a primed state on disk (when the cache folder can be written) and give it back."""
    try:
        save_checkpoint(path, primed_tensors(state, last_point), {"engine": "ink", "kind": "primed state"})
        kept = sorted(path.parent.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
        # and what a process killed mid-save left (a save in progress elsewhere takes milliseconds, not an hour)
        left = [p for p in path.parent.glob(".*.tmp") if time.time() - p.stat().st_mtime > 3600]
        for old in kept[:-PRIMED_ON_DISK] + left:
            old.unlink(missing_ok=True)
    except (CheckpointWriteError, OSError):             # a read-only or full disk: the state is still used now
        pass
    return state, last_point


def primed_writer(model: InkModel, meta: dict, settings: dict) -> tuple[Writer, str]:
    """A Writer in the style the settings choose, primed (from PRIMED when that style was read before), and how
    the style is described."""
    primer, described = choose_primer(meta, settings, np.random.default_rng(settings["seed"]))
    if primer is not None:      # lay the page out, and size the font, by the chosen hand itself
        meta = {**meta, **writing_shape([primer.points], [primer.text])}
    writer = Writer(model, meta, settings)
    writer.prime(primer)
    return writer, described


def prepare(model: InkModel, meta: dict, settings: dict) -> None:
    """Read style primers through the model now, while the user is still typing: the chosen style's first, then
    the other built-in styles' (~50-90 ms each, up to READ_AHEAD_STYLES). The first point after Generate then
    comes from a state in PRIMED whichever of them, or seed choosing one, the user settles on, instead of after
    ~500 points are read."""
    if meta.get("alphabet") is None:
        return
    alphabet = Alphabet.from_meta(meta["alphabet"])
    others = [{**settings, "style": style, "style_file": "", "pen_sample": []}
              for style in sorted(meta.get("styles") or {})[:READ_AHEAD_STYLES]]
    for chosen in [settings, *others]:      # the style a seed picks is the one generate will pick
        primer, _ = choose_primer(meta, chosen, np.random.default_rng(settings["seed"]))
        if primer is not None:
            read_primer(model, alphabet, primer)


def generate(model: InkModel, meta: dict, settings: dict) -> Iterator[InkChunk | Notice]:
    from .export import colour
    colour(settings)                      # a bad colour is an error before any ink flows, not at export
    if meta.get("alphabet") is None:
        yield Notice("this model draws freely (it learnt from pen data without transcripts): text and style do "
                     "not apply to it")
        yield from scribble(model, meta, settings)
        return
    lines = wrap(settings["text"], settings["width"])
    if not any(lines):
        raise ConfigError("Text: nothing to write; type what the pen should write")
    writer, described = primed_writer(model, meta, settings)
    plans = [plan_line(line, writer.writable) for line in lines]
    substituted = set().union(*(drawn for _, drawn in plans))
    yield Notice(f"writing {len(lines)} line(s) {described}")
    if substituted:
        yield Notice(substitution_notice(substituted, writer.alphabet))
    yield from writer.write([pieces for pieces, _ in plans], sum(map(len, lines)))
    if writer.fell_back:
        yield Notice(f"the pen could not follow {', '.join(repr(t) for t in sorted(writer.fell_back))}: "
                     f"drawn from the Hershey font instead")


def scribble(model: InkModel, meta: dict, settings: dict) -> Iterator[InkChunk]:
    """An unconditional model: `length` points per variation, or fewer where a model with the end flag holds the
    drawing finished (a sketch of a cat ends when the cat is drawn)."""
    n, scale = settings["variations"], meta["scale"]
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(settings["seed"])
    x, state = torch.zeros(n, 3, device=device), model.initial_state(n, device)
    ended = torch.zeros(n, dtype=torch.bool, device=device)
    shear = math.tan(math.radians(settings["slant"]))
    rows, drawing = [], []
    for t in range(settings["length"]):
        step = model.step(x, state, None, settings["bias"], settings["temperature"], generator)
        if step.ends is not None:
            ended |= step.ends                                      # it ended with the point before
        x, state = step.point, step.state
        rows.append(x.cpu().numpy().copy())
        drawing.append((~ended).cpu().numpy())
        last = t == settings["length"] - 1 or bool(ended.all())
        if len(rows) == CHUNK_POINTS or t == 0 or last:          # the first point at once, as in write
            block, keep = np.stack(rows, axis=1), np.stack(drawing, axis=1)     # (n, k, 3), (n, k)
            block[..., 0] -= shear * block[..., 1]
            block[..., :2] *= scale
            rows, drawing = [], []
            yield InkChunk([b[k].astype(np.float32) for b, k in zip(block, keep)], [0] * n,
                           rate=meta.get("points_per_second"), x_height=meta["x_height"] * scale,
                           done=[True] * n if last else None)
            if last:
                return

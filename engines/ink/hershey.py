"""The Hershey single-stroke fonts (PyPI Hershey-Fonts, MIT): characters a model cannot write, and exactly
aligned synthetic handwriting to learn reading from.

Coordinates are the fonts' own (y pointing down, baseline at y = 9, a lower-case x 9 units tall), turned into
a style's units by `fallback` (characters drawn on a page) and `synthetic_line` (training lines).
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np

FONT_BASELINE = 9.0
# a synthetic line's size: font units per x-height of the corpus. 9 draws the cursive font's letters at ~0.68x the
# corpus' x-height (by font_band's yardstick) and its characters ~1.15x as wide (the font is wide for its height):
# between the two, as a sample of a hand is scaled (write.primer_from_raw). The bundled model was trained so
SYNTHETIC_FONT_UNITS = 9.0

# Hershey's Greek and Cyrillic fonts put their letters on ASCII codes; these are the codes (read off the
# rendered glyphs) of the letters they have
GREEK = dict(zip("ΑΒΧΔΕΦΓΗΙΚΛΜΝΟΠΘΡΣΤΥΩΞΨΖαβχδεφγηικλμνοπθρσςτυωξψζ",
                 "ABCDEFGHIKLMNOPQRSTUWXYZabcdefghiklmnopqrsstuwxyz"))
CYRILLIC = dict(zip("АБЭДЙФГЖИЧКЛМНОПШРСТЮВЩХУЗЕЪЯЬЦЫабэдйфгжичклмнопшрстювщхузеъяьцы",
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`$abcdefghijklmnopqrstuvwxyz{|}~%&"))

# combining accents, drawn above (or below) a letter: polylines in x-heights, x centred on the letter,
# y = 0 the top of its x-height and growing downwards
MARKS = {
    "\u0300": [[(-0.15, -0.45), (0.1, -0.2)]],                                    # grave
    "\u0301": [[(0.15, -0.45), (-0.1, -0.2)]],                                    # acute
    "\u0302": [[(-0.2, -0.2), (0.0, -0.45), (0.2, -0.2)]],                        # circumflex
    "\u0303": [[(-0.25, -0.25), (-0.1, -0.38), (0.1, -0.25), (0.25, -0.38)]],     # tilde
    "\u0304": [[(-0.22, -0.3), (0.22, -0.3)]],                                    # macron
    "\u0306": [[(-0.2, -0.42), (-0.1, -0.26), (0.1, -0.26), (0.2, -0.42)]],       # breve
    "\u0307": [[(0.0, -0.32), (0.02, -0.3)]],                                     # dot above
    "\u0308": [[(-0.15, -0.32), (-0.13, -0.3)], [(0.15, -0.32), (0.17, -0.3)]],   # diaeresis
    "\u030a": [[(0.0, -0.5), (0.1, -0.42), (0.0, -0.32), (-0.1, -0.42), (0.0, -0.5)]],  # ring
    "\u030b": [[(0.0, -0.45), (-0.12, -0.2)], [(0.22, -0.45), (0.1, -0.2)]],      # double acute
    "\u030c": [[(-0.2, -0.45), (0.0, -0.2), (0.2, -0.45)]],                       # caron
    "\u0327": [[(0.0, 1.0), (0.1, 1.2), (-0.1, 1.35)]],                           # cedilla (below the baseline)
    "\u0328": [[(0.1, 1.0), (-0.05, 1.2), (0.12, 1.35)]],                         # ogonek
}


@lru_cache(maxsize=None)
def _font(name: str):
    from HersheyFonts import HersheyFonts
    font = HersheyFonts()
    font.load_default_font(name)
    return font


def _glyph(font: str, code: str) -> tuple[list[np.ndarray], float]:
    """A glyph's strokes, shifted to start at x = 0, and its advance width, in font units."""
    glyph = _font(font).all_glyphs[code]
    strokes = [np.array(s, dtype=np.float64) - (glyph.left_offset, 0) for s in glyph.strokes if len(s)]
    return strokes, float(glyph.char_width)


def glyph_source(ch: str) -> tuple[str, str] | None:
    """(font, ASCII code) of a character the fonts draw as it is, or None."""
    if " " <= ch <= "~":
        return "cursive", ch
    if ch in GREEK:
        return "greek", GREEK[ch]
    if ch in CYRILLIC:
        return "cyrillic", CYRILLIC[ch]
    return None


@lru_cache(maxsize=None)
def font_band() -> float:
    """The font's "x-height" measured as a hand's is (data.stroke_heights, points evenly spaced), so the font
    is scaled to a hand by the same yardstick."""
    from .data import stroke_heights
    strokes = _font("cursive").strokes_for_text("the quick brown fox jumps over the lazy dog")
    return float(np.median(stroke_heights([resample(np.array(s, dtype=np.float64), 1.0) for s in strokes])))


def fallback(ch: str, x_height: float) -> tuple[list[np.ndarray], float, bool]:
    """Strokes (absolute (n, 2), baseline at y = 0, starting at x = 0, in units where the hand measures
    `x_height` by corpus.writing_shape's yardstick), the advance width, and whether the fonts know the
    character. Tried in turn: the character itself, its base letter with the accents drawn on it (NFD), and
    an empty box."""
    scale = x_height / font_band()
    source = glyph_source(ch)
    marks: list[str] = []
    if source is None:
        base, *rest = unicodedata.normalize("NFD", ch) or "?"
        source, marks = glyph_source(base), [m for m in rest if m in MARKS]
    if source is None:                                  # a box a letter wide, as fonts show a missing glyph
        box = np.array([(0, 0), (0.7, 0), (0.7, -1.4), (0, -1.4), (0, 0)]) * x_height
        return [box + (0.15 * x_height, 0)], 1.0 * x_height, False
    strokes, advance = _glyph(*source)
    strokes = [(s - (0, FONT_BASELINE)) * scale for s in strokes]
    for mark in marks:
        strokes += mark_strokes(mark, advance * scale / 2, -x_height, x_height)
    return strokes, advance * scale, True


def mark_strokes(mark: str, x: float, top: float, x_height: float) -> list[np.ndarray]:
    """An accent's strokes over a letter whose middle is at x and whose x-height begins at y = top."""
    return [np.array(line) * x_height + (x, top) for line in MARKS.get(mark, [])]


def resample(stroke: np.ndarray, step: float) -> np.ndarray:
    """A polyline redrawn with points about `step` apart along it, its ends kept."""
    if len(stroke) < 2:
        return stroke
    length = np.r_[0, np.cumsum(np.hypot(*np.diff(stroke, axis=0).T))]
    n = max(2, int(round(length[-1] / step)) + 1)
    at = np.linspace(0, length[-1], n)
    return np.stack([np.interp(at, length, stroke[:, 0]), np.interp(at, length, stroke[:, 1])], axis=1)


def synthetic_line(text: str, rng: np.random.Generator, x_height: float, step: float) -> np.ndarray:
    """`text` written in a Hershey font as stroke-3 rows (row 0 = (0, 0, 0)): points `step` apart, a little
    random slant, size and spacing, so that the line looks like a pen's, with the text exactly aligned."""
    from .data import strokes_to_points
    scale = x_height / SYNTHETIC_FONT_UNITS * rng.uniform(0.85, 1.15)
    shear = rng.uniform(-0.1, 0.35)                     # most hands lean a little to the right
    strokes, x = [], 0.0
    # the cursive font joins a word's letters into few strokes when it is written in one call
    for word in text.split(" "):
        for s in _font("cursive").strokes_for_text(word) if word else []:
            s = np.array(s, dtype=np.float64) * scale
            s[:, 0] += x - shear * s[:, 1]
            strokes.append(resample(s, step * rng.uniform(0.8, 1.2)))
        glyphs = [_font("cursive").all_glyphs.get(ch) for ch in word]
        x += (sum(g.char_width for g in glyphs if g) + _font("cursive").all_glyphs[" "].char_width
              * rng.uniform(0.7, 1.3)) * scale
    return strokes_to_points([s for s in strokes if len(s)])

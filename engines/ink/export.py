"""Files a user keeps: SVG (filled outlines, plus single-line paths for pen plotters), PNG, and an animated GIF
replaying the pen at its own speed. Each carries the sample itself (the pen points) and its settings, so
History can open it again (load_sample) and convert it to another format.

Variations are written one under the other, scaled so that the hand's x-height (InkChunk.x_height, else
estimated from the strokes) is X_HEIGHT_PX pixels; `stroke_width` is in those pixels.
"""
from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ..core.errors import ConfigError, CorpusError
from .chunks import INK_COLOUR, InkChunk, smooth_stroke, strokes_of, variation_points, visible_text

X_HEIGHT_PX = 16.0
MARGIN_PX = 24.0
GIF_FRAME_MS = 40
GIF_MAX_FRAMES = 400         # a longer replay is sped up to fit (a page would otherwise be minutes of frames)
KEY = "sequence-studio-ink"  # the PNG text chunk / SVG metadata element holding the sample


def colour(settings: dict) -> tuple[int, int, int]:
    from PIL import ImageColor
    value = settings.get("colour") or INK_COLOUR
    try:
        return ImageColor.getrgb(value)[:3]
    except ValueError:
        raise ConfigError(f"Colour: {value!r} is not a colour (a name such as navy, or #rrggbb)") from None


def pages(chunks: list, settings: dict) -> tuple[list[np.ndarray], dict]:
    """Each variation's final rows, and what drawing them needs (pen rate, x-height)."""
    ink = [c for c in chunks if isinstance(c, InkChunk)]
    n = max((len(c.points) for c in ink), default=0) or settings.get("variations", 1)
    facts = {"rate": next((c.rate for c in ink if c.rate), None),
             "x_height": next((c.x_height for c in ink if c.x_height), None)}
    return [variation_points(chunks, v) for v in range(n)], facts


def pixel_scale(rows: list[np.ndarray], x_height: float | None) -> float:
    """Pixels per ink unit. Without a known x-height: a word's stroke is about 2.5 x-heights tall."""
    if not x_height:
        heights = [np.ptp(s[:, 1]) for p in rows for s in strokes_of(p) if len(s) > 2]
        x_height = float(np.median(heights)) / 2.5 if heights else 0.0
    return X_HEIGHT_PX / x_height if x_height and x_height > 0 else 1.0


def layout(rows: list[np.ndarray], facts: dict) -> tuple[list[list[np.ndarray]], float, float]:
    """Strokes per variation in pixels, placed one variation under the other; width and height in pixels."""
    scale = pixel_scale(rows, facts.get("x_height"))
    placed, top = [], MARGIN_PX
    width = 2 * MARGIN_PX
    for p in rows:
        strokes = [s * scale for s in strokes_of(p)]
        if strokes:
            xy = np.concatenate(strokes)
            shift = np.array([MARGIN_PX - xy[:, 0].min(), top - xy[:, 1].min()])
            strokes = [s + shift for s in strokes]
            width = max(width, xy[:, 0].max() - xy[:, 0].min() + 2 * MARGIN_PX)
            top += xy[:, 1].max() - xy[:, 1].min() + MARGIN_PX
        placed.append(strokes)
    return placed, float(np.ceil(width)), float(np.ceil(max(top, 2 * MARGIN_PX)))


def payload(rows: list[np.ndarray], facts: dict, settings: dict) -> str:
    """The sample as one JSON text: settings, drawing facts, and each variation's rows (compressed, base64)."""
    packed = [base64.b64encode(zlib.compress(np.ascontiguousarray(p, np.float32).tobytes())).decode() for p in rows]
    return json.dumps({"settings": settings, **facts, "points": packed}, separators=(",", ":"))


def unpack(text: str) -> tuple[list, dict]:
    data = json.loads(text)
    points = [np.frombuffer(zlib.decompress(base64.b64decode(p)), np.float32).reshape(-1, 3).copy()
              for p in data["points"]]
    return [InkChunk(points, [0] * len(points), done=[True] * len(points), rate=data.get("rate"),
                     x_height=data.get("x_height"))], data["settings"]


# ----------------------------------------------------------------------------------------------------
# SVG

def outline(stroke: np.ndarray, width: float) -> np.ndarray:
    """A stroke's filled outline: the polyline offset by half the width on each side, with round ends."""
    half = width / 2
    angles = np.linspace(0, np.pi, 7)
    if len(stroke) == 1 or np.allclose(stroke, stroke[0]):
        circle = np.linspace(0, 2 * np.pi, 13)
        return stroke[0] + half * np.stack([np.cos(circle), np.sin(circle)], axis=1)
    keep = np.r_[True, np.hypot(*np.diff(stroke, axis=0).T) > 1e-6]
    s = stroke[keep]
    d = np.gradient(s, axis=0)
    d /= np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) * half

    def cap(at, direction):     # half a circle around `at`, from the left side to the right side
        a0 = np.arctan2(direction[1], direction[0]) + np.pi / 2
        return at + half * np.stack([np.cos(a0 - angles), np.sin(a0 - angles)], axis=1)

    return np.vstack([s + normal, cap(s[-1], d[-1]), (s - normal)[::-1], cap(s[0], -d[0])])


def svg_path(points: np.ndarray, closed: bool) -> str:
    head, *rest = points
    return f"M{head[0]:.1f},{head[1]:.1f}" + "".join(f"L{x:.1f},{y:.1f}" for x, y in rest) + ("Z" if closed else "")


def write_svg(path: Path, rows, facts, settings) -> None:
    placed, width, height = layout(rows, facts)
    r, g, b = colour(settings)
    ink = f"#{r:02x}{g:02x}{b:02x}"
    pen = float(settings.get("stroke_width", 2.0))
    svg = ElementTree.Element("svg", xmlns="http://www.w3.org/2000/svg", width=f"{width:g}", height=f"{height:g}",
                              viewBox=f"0 0 {width:g} {height:g}")
    ElementTree.SubElement(svg, "title").text = visible_text(settings.get("text", ""))[:200] or "handwriting"
    ElementTree.SubElement(svg, "metadata", id=KEY).text = payload(rows, facts, settings)
    filled = ElementTree.SubElement(svg, "g", id="ink", fill=ink, stroke="none")
    lines = ElementTree.SubElement(svg, "g", id="plotter-lines", fill="none", stroke=ink,
                                   **{"stroke-width": f"{pen:g}", "stroke-linecap": "round",
                                      "stroke-linejoin": "round", "display": "none"})
    for strokes in placed:
        if strokes:
            curves = [smooth_stroke(s) for s in strokes]
            ElementTree.SubElement(filled, "path", d=" ".join(svg_path(outline(c, pen), True) for c in curves))
            ElementTree.SubElement(lines, "path", d=" ".join(svg_path(c, False) for c in curves))
    ElementTree.ElementTree(svg).write(path, encoding="utf-8", xml_declaration=True)


# ----------------------------------------------------------------------------------------------------
# PNG and GIF (Pillow), drawn at twice the size and reduced, for smooth edges

def canvas(width: float, height: float):
    from PIL import Image
    return Image.new("RGB", (int(width) * 2, int(height) * 2), "white")


def draw_strokes(image, strokes: list[np.ndarray], settings: dict) -> None:
    from PIL import ImageDraw
    draw = ImageDraw.Draw(image)
    fill, pen = colour(settings), max(1.0, 2 * float(settings.get("stroke_width", 2.0)))
    for s in strokes:
        xy = [tuple(p) for p in (smooth_stroke(s) * 2).tolist()]
        if len(xy) > 1:
            draw.line(xy, fill=fill, width=int(round(pen)), joint="curve")
        for x, y in (xy[0], xy[-1]):
            draw.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=fill)


def reduced(image):
    from PIL import Image
    return image.resize((image.width // 2, image.height // 2), Image.LANCZOS)


def write_png(path: Path, rows, facts, settings) -> None:
    from PIL.PngImagePlugin import PngInfo
    placed, width, height = layout(rows, facts)
    image = canvas(width, height)
    for strokes in placed:
        draw_strokes(image, strokes, settings)
    info = PngInfo()
    info.add_text(KEY, payload(rows, facts, settings), zip=True)
    reduced(image).save(path, pnginfo=info)


def write_gif(path: Path, rows, facts, settings) -> None:
    """Frames every GIF_FRAME_MS of pen time (all variations at once); a long page is sped up to
    GIF_MAX_FRAMES frames. Moves through the air take their time too, as the pen's did."""
    placed, width, height = layout(rows, facts)
    # the pen's points in order, per variation: which stroke and how far along it
    longest = max((sum(len(s) for s in strokes) for strokes in placed), default=0)
    per_frame = (facts["rate"] or 25.0) * GIF_FRAME_MS / 1000
    per_frame = max(per_frame, longest / GIF_MAX_FRAMES, 1e-9)
    frames, done = [], 0.0
    while True:
        done = min(done + per_frame, longest)
        upto = int(np.ceil(done))
        frame = canvas(width, height)
        for strokes in placed:
            left, partial = upto, []
            for s in strokes:
                if left <= 0:
                    break
                partial.append(s[:left])
                left -= len(s)
            draw_strokes(frame, partial, settings)
        frames.append(reduced(frame).convert("P", palette=1, colors=32))
        if upto >= longest:
            break
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [2000]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   comment=payload(rows, facts, settings).encode())


WRITERS = {".svg": write_svg, ".png": write_png, ".gif": write_gif}


def export(chunks: list, settings: dict, path: Path) -> Path:
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise ConfigError(f"cannot export handwriting as {path.suffix!r}; choose {', '.join(WRITERS)}")
    colour(settings)                       # a bad colour is an error before anything is written
    rows, facts = pages(chunks, settings)
    writer(path, rows, facts, settings)
    path.with_name(path.name + ".json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return path


def load_sample(path: Path) -> tuple[list, dict]:
    """The chunks and settings a file exported above carries."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".svg":
            root = ElementTree.parse(path).getroot()
            element = next((e for e in root.iter() if e.get("id") == KEY), None)
            text = element.text if element is not None else None
        else:
            from PIL import Image
            with Image.open(path) as image:
                text = image.info.get(KEY) or image.info.get("comment")
                text = text.decode() if isinstance(text, bytes) else text
        if not text:
            raise CorpusError(f"{path.name} holds no handwriting from this studio (no {KEY} data in it)")
        return unpack(text)
    except (OSError, ElementTree.ParseError, ValueError, KeyError, zlib.error) as e:
        raise CorpusError(f"cannot read {path} as handwriting exported by the studio: {e}") from None

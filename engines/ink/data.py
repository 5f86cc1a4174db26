"""Reading pen data into lines of (dx, dy, pen_up) points, normalising them, and batching them.

Every reader gives InkLines in one convention, the stroke-3 format of UNIPEN's conversion and sketch-rnn:
row i is the offset of point i from point i-1 in the file's own units (y pointing down, as on a screen or a
tablet), row 0 is (0, 0, 0), and pen_up = 1 on the last point of each stroke (the next row is then the move
through the air to the next stroke). Formats:

    folder with strokes.npz + texts.jsonl   this corpus format (the shared UNIPEN set): points (N, 3), offsets
    *.xml                                   IAM-OnDB style whiteboard XML (StrokeSet / Stroke / Point x y time)
    *.inkml                                 W3C InkML traces, with a "truth" annotation as the text
    *.ndjson                                Quick, Draw! drawings (no text: for the unconditional model)
    *.npz (other than strokes.npz)          sketch-rnn stroke-3 or stroke-5 sketches (no text)

A file that cannot be read is named in the warnings and skipped; only a corpus with no usable line at all
is a CorpusError.
"""
from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple
from xml.etree import ElementTree

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import CorpusError
from ..core.fingerprint import corpus_files

PEN_SUFFIXES = (".xml", ".inkml", ".ndjson", ".npz")
UNIPEN_RATE = 100.0          # points per second of the shared UNIPEN set (its README: tablet at 100 samples/s)
MAX_MOVE = 1e6              # raw units: larger pen moves are damage (see usable_coordinates)


@dataclass
class InkLine:
    points: np.ndarray       # (N, 3) float32 stroke-3 rows, raw units
    text: str                # "" when the corpus has no transcript
    writer: str
    source: str              # file (and sample) it came from, for messages
    rate: float | None = None    # points per second when the file says


# ----------------------------------------------------------------------------------------------------
# strokes <-> stroke-3

def strokes_to_points(strokes: list[np.ndarray]) -> np.ndarray:
    """Absolute strokes [(n_i, 2) x, y] -> (N, 3) stroke-3 rows, row 0 = (0, 0, 0)."""
    xy = np.concatenate(strokes).astype(np.float64)
    points = np.zeros((len(xy), 3), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):      # huge coordinates become inf: the reader names them
        points[1:, :2] = np.diff(xy, axis=0)
    points[np.cumsum([len(s) for s in strokes]) - 1, 2] = 1
    return points


def stroke_heights(strokes: list[np.ndarray]) -> list[float]:
    """The middle 60% of the heights of each stroke long enough to be a letter or a word (8 points), not a
    dot: the one yardstick a hand's and a font's size are measured by. Per stroke, because a line's baseline
    drifts."""
    return [float(np.subtract(*np.percentile(s[:, 1], [80, 20]))) for s in strokes if len(s) >= 8]


def _stroke_bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute positions (N, 2) from (0, 0), and for each point the first and last index of its stroke."""
    xy = np.cumsum(points[:, :2].astype(np.float64), axis=0)
    ends = np.flatnonzero(points[:-1, 2] > 0.5) + 1                  # a stroke starts after each pen-up
    stroke = np.zeros(len(points), np.int64)
    stroke[ends] = 1
    stroke = np.cumsum(stroke)
    bounds = np.r_[0, ends, len(points)]
    return xy, bounds[stroke], bounds[stroke + 1] - 1


def _from_positions(xy: np.ndarray, pen_up: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Absolute positions and pen-up flags -> stroke-3 rows, keeping the old line's first row."""
    points = np.zeros((len(xy), 3), np.float32)
    points[0, :2] = old[0, :2]
    points[1:, :2] = np.diff(xy, axis=0)
    points[:, 2] = pen_up
    return points


def smooth(points: np.ndarray, width: int) -> np.ndarray:
    """Moving average of each stroke's positions over `width` points (the window stays inside the stroke,
    repeating its end points): takes the tablet's quantisation staircase out of slow strokes."""
    if width <= 1:
        return points
    xy, first, last = _stroke_bounds(points)
    window = np.arange(width) - width // 2
    neighbours = np.clip(np.arange(len(points))[:, None] + window, first[:, None], last[:, None])   # (N, width)
    return _from_positions(xy[neighbours].mean(axis=1), points[:, 2], points)


def downsample(points: np.ndarray, factor: int) -> np.ndarray:
    """Keep every factor-th point of each stroke, and always its last one, so strokes keep their ends."""
    if factor <= 1:
        return points
    xy, first, last = _stroke_bounds(points)
    index = np.arange(len(points))
    keep = ((index - first) % factor == 0) | (index == last)
    return _from_positions(xy[keep], points[keep, 2], points)


# ----------------------------------------------------------------------------------------------------
# readers

def read_stroke_npz(folder: Path) -> tuple[list[InkLine], list[str]]:
    """strokes.npz (points (N, 3): dx, dy, pen_up after the point; offsets (L + 1,)) + texts.jsonl (one
    {"index", "writer", "text"} per line). A "-" transcript marks a sample without text and is skipped."""
    try:
        with np.load(folder / "strokes.npz") as z:
            points, offsets = z["points"], z["offsets"]
    except (OSError, KeyError, ValueError) as e:
        raise CorpusError(f"{folder / 'strokes.npz'} cannot be read as stroke data ({e})") from e
    whole = offsets.dtype.kind in "iu" and offsets.ndim == 1
    offsets = offsets.astype(np.int64) if whole else offsets        # unsigned differences would wrap around
    if points.ndim != 2 or points.shape[1] != 3 or points.dtype.kind not in "iuf" or not whole \
            or len(offsets) < 2 or np.any(np.diff(offsets) < 0) or offsets[0] < 0 or offsets[-1] > len(points):
        raise CorpusError(f"{folder / 'strokes.npz'}: expected numbers as points (N, 3) and increasing whole-number "
                          f"offsets within them, got points {points.shape} {points.dtype}, offsets {offsets.shape} "
                          f"{offsets.dtype}")
    lines, warnings, no_text = [], [], []
    # a row may say its rate ("rate": points per second); the shared UNIPEN set's README says 100 for all
    default_rate = UNIPEN_RATE if "unipen" in folder.name.lower() else None
    texts = folder / "texts.jsonl"
    seen = set()
    for n, row in enumerate(texts.read_text(encoding="utf-8-sig").splitlines()):
        try:
            meta = json.loads(row)
            i, text, writer = int(meta["index"]), meta["text"], str(meta.get("writer", folder.name))
            if not isinstance(text, str):
                raise TypeError("the text is not a string")
        except (ValueError, KeyError, TypeError):
            warnings.append(f"skipped {texts} line {n + 1}: not a JSON object with an index and a text")
            continue
        source = f"{folder.name} sample {i}" + (f" ({meta['source_file']})" if "source_file" in meta else "")
        rate = meta.get("rate")
        if rate is not None and not (type(rate) in (int, float) and 0 < rate < 100_000):
            warnings.append(f"{source}: its rate {rate!r} is not a number of points per second; not used")
            rate = None
        if i in seen:
            warnings.append(f"skipped {texts} line {n + 1}: sample {i} was already read")
        elif not 0 <= i < len(offsets) - 1:
            warnings.append(f"skipped {source}: index out of range of {len(offsets) - 1} samples")
        elif text == "-":
            no_text.append(i)
        elif offsets[i + 1] - offsets[i] < 2:
            warnings.append(f"skipped {source}: fewer than 2 points")
        else:
            p = points[offsets[i]:offsets[i + 1]].astype(np.float32)
            lines.append(InkLine(p, text, writer, source, rate or default_rate))
        seen.add(i)
    if no_text:
        warnings.append(f"skipped {len(no_text)} samples of {folder.name} transcribed only as '-' (no text): "
                        f"{', '.join(map(str, no_text[:20]))}")
    return lines, warnings


def read_iam_xml(path: Path) -> list[InkLine]:
    """One IAM-OnDB style line: <StrokeSet><Stroke><Point x= y= time=/>. The text comes from a <TextLine
    text=...> in the file, a .txt of the same name beside it, or IAM-OnDB's ascii/ tree (CSR section)."""
    root = _parse_xml(path)
    strokes, times = [], []
    for stroke in root.iter("Stroke"):
        pts = [(_number(p, "x"), _number(p, "y"), _number(p, "time", "nan")) for p in stroke.iter("Point")]
        if pts:
            strokes.append(np.array(pts)[:, :2])
            times.append(np.array(pts)[:, 2])
    if not strokes or sum(map(len, strokes)) < 2:
        raise CorpusError("no <Stroke> with <Point x= y=> elements")
    text_lines = [t.get("text") for t in root.iter("TextLine") if t.get("text") is not None]
    text = text_lines[0] if len(text_lines) == 1 else _iam_text(path)
    form = next(root.iter("Form"), None)
    writer = form.get("writerID") if form is not None and form.get("writerID") else path.parent.name
    # the sensor's rate: points over the time the pen was down
    duration = sum(t[-1] - t[0] for t in times if len(t) > 1)
    rate = sum(len(t) - 1 for t in times) / duration if duration > 0 else None
    return [InkLine(strokes_to_points(strokes), text, writer, str(path), rate)]


def _number(element, name: str, default: str | None = None) -> float:
    value = element.get(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CorpusError(f"a <{element.tag}> whose {name} is {value!r}, not a number") from None


def _iam_text(path: Path) -> str:
    """The transcript of an IAM-OnDB line file a01-000u-01.xml: a01-000u-01.txt beside it, else line 1 of
    the CSR section of ascii/a01/a01-000/a01-000u.txt in the tree that holds lineStrokes/a01/a01-000/."""
    beside = path.with_suffix(".txt")
    if beside.is_file():
        try:
            return beside.read_text(encoding="utf-8-sig").strip()
        except UnicodeDecodeError as e:
            raise CorpusError(f"its transcript {beside.name} is not UTF-8 text (byte {e.start:,})") from None
    form, _, number = path.stem.rpartition("-")
    parts = path.parts
    if "lineStrokes" in parts and number.isdigit():
        k = len(parts) - 1 - parts[::-1].index("lineStrokes")
        ascii_file = Path(*parts[:k], "ascii", *parts[k + 1:-1], form + ".txt")
        if ascii_file.is_file():
            csr = ascii_file.read_text(encoding="utf-8", errors="replace").split("CSR:", 1)[-1]
            rows = [r.strip() for r in csr.splitlines() if r.strip()]
            if int(number) <= len(rows):
                return rows[int(number) - 1]
    return ""


INKML_TEXT = {"truth", "transcription", "text"}
INKML_WRITER = {"writer", "writerid", "writer_id", "author"}
_INKML_VALUE = re.compile(r"""([!'"]?)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[TF?*])""")


def read_inkml(path: Path) -> list[InkLine]:
    """W3C InkML: a document with a "truth" annotation is one line of all its traces; otherwise each
    traceGroup with its own truth annotation is a line; otherwise the whole document is one line without
    text. Traces may use InkML's difference encodings (' and ")."""
    root = _parse_xml(path)
    annotation = lambda el, kinds: next((a.text.strip() for a in el.findall("{*}annotation")
                                         if (a.get("type") or "").lower() in kinds and (a.text or "").strip()), None)
    all_traces = root.findall(".//{*}trace")
    writer = annotation(root, INKML_WRITER) or path.parent.name
    if annotation(root, INKML_TEXT) is not None:
        groups = [(annotation(root, INKML_TEXT), all_traces)]
    else:
        by_id = {t.get("{http://www.w3.org/XML/1998/namespace}id") or t.get("id"): t for t in all_traces}
        groups = [(annotation(g, INKML_TEXT), _group_traces(g, by_id)) for g in root.findall(".//{*}traceGroup")
                  if annotation(g, INKML_TEXT) is not None] or [("", all_traces)]
    lines = []
    for k, (text, elements) in enumerate(groups):
        strokes = [s for s in (_trace_xy(t.text or "") for t in elements) if len(s)]
        if strokes and sum(map(len, strokes)) >= 2:
            lines.append(InkLine(strokes_to_points(strokes), text, writer, f"{path} group {k}" if k else str(path),
                                 _inkml_rate(root, elements)))
    if not lines:
        raise CorpusError("no <trace> with at least 2 points")
    return lines


def _inkml_rate(root, traces) -> float | None:
    """Points per second over the time the pen was down, from a T channel in seconds or milliseconds (the pen
    pad writes seconds); None when there is no T channel or its values are difference-encoded."""
    channels = [c for c in root.findall(".//{*}traceFormat/{*}channel")]
    names = [(c.get("name") or "").upper() for c in channels]
    if "T" not in names:
        return None
    column, units = names.index("T"), (channels[names.index("T")].get("units") or "s").lower()
    moves, seconds = 0, 0.0
    for trace in traces:
        rows = [r.split() for r in (trace.text or "").split(",") if r.strip()]
        if len(rows) < 2 or any(len(r) <= column for r in rows):
            continue
        try:
            first, last = float(rows[0][column]), float(rows[-1][column])
        except ValueError:                              # ' or " prefixes: differences, not times
            return None
        moves, seconds = moves + len(rows) - 1, seconds + (last - first) / (1000.0 if units == "ms" else 1.0)
    return moves / seconds if seconds > 0 else None


def _group_traces(group, traces: dict) -> list:
    """A traceGroup's traces, direct or through <traceView traceDataRef="#id"> (as CROHME files do)."""
    found = list(group.findall(".//{*}trace"))
    for view in group.findall(".//{*}traceView"):
        ref = (view.get("traceDataRef") or "").lstrip("#")
        if ref in traces:
            found.append(traces[ref])
    return found


def _trace_xy(text: str) -> np.ndarray:
    """An InkML trace's text -> (n, 2) x, y (the first two channels). Each channel keeps its own encoding
    until a prefix changes it: ! explicit, ' first difference, " second difference."""
    xy, mode, last, delta = [], ["!", "!"], [0.0, 0.0], [0.0, 0.0]
    for item in text.split(","):
        values = _INKML_VALUE.findall(item)
        if not values and not item.strip():
            continue
        if len(values) < 2:
            raise CorpusError(f"trace point {item.strip()[:40]!r} does not begin with two numbers, x and y")
        point = []
        for ch, (prefix, value) in enumerate(values[:2]):
            if value in "TF?*":
                raise CorpusError(f"trace value {value!r} where x or y should be a number")
            mode[ch] = prefix or mode[ch]
            v = float(value)
            if mode[ch] == "'":
                delta[ch] = v
                v = last[ch] + v
            elif mode[ch] == '"':
                delta[ch] += v
                v = last[ch] + delta[ch]
            else:
                delta[ch] = v - last[ch]
            last[ch] = v
            point.append(v)
        xy.append(point)
    return np.array(xy).reshape(-1, 2)


def read_quickdraw(path: Path) -> tuple[list[InkLine], list[str]]:
    """Quick, Draw! .ndjson: one {"drawing": [[xs], [ys](, [ts])] per stroke} per row; no text."""
    lines, warnings = [], []
    for n, row in enumerate(path.read_text(encoding="utf-8-sig").splitlines()):
        if not row.strip():
            continue
        try:
            d = json.loads(row)
            strokes = [np.array(s[:2], dtype=np.float64).T for s in d["drawing"]]
            if any(s.ndim != 2 or s.shape[1] != 2 for s in strokes):
                raise TypeError
        except json.JSONDecodeError as e:
            warnings.append(f"skipped {path} row {n + 1}: not JSON ({e.msg})")
            continue
        except (ValueError, KeyError, TypeError, IndexError):
            warnings.append(f'skipped {path} row {n + 1}: not a drawing ({{"drawing": [[[x, ...], [y, ...]], ...]}}, '
                            f'a list of x and y of the same length per stroke)')
            continue
        if sum(map(len, strokes)) < 2:
            warnings.append(f"skipped {path} row {n + 1}: fewer than 2 points")
            continue
        lines.append(InkLine(strokes_to_points(strokes), "", str(d.get("countrycode", path.stem)), f"{path} row {n + 1}"))
    return lines, warnings


# numpy pickles an object array (sketch-rnn's list of sketches of different lengths) with these alone; a
# file asking for anything else is refused instead of run
_NUMPY_PICKLE = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
                 ("numpy", "ndarray"), ("numpy", "dtype")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _NUMPY_PICKLE:
            raise CorpusError(f"it asks to run {module}.{name}, which is not part of a numpy array")
        return super().find_class(module, name)


def _npz_arrays(path: Path) -> dict[str, object]:
    """The arrays of an .npz, object arrays included, without trusting its pickles (np.load(allow_pickle=True)
    would run any code a file asks for)."""
    from numpy.lib import format as npy
    arrays = {}
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not name.endswith(".npy"):
                    continue
                f = io.BytesIO(z.read(name))
                version = npy.read_magic(f)
                shape, fortran, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(f)
                if dtype.hasobject:
                    array = _ArraysOnly(f).load()
                else:
                    array = np.frombuffer(f.read(), dtype=dtype, count=int(np.prod(shape)))
                    array = array.reshape(shape, order="F" if fortran else "C")
                arrays[name[:-4]] = array
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise CorpusError(f"not a readable .npz ({e})") from e
    return arrays


def _sketch_points(sketch) -> np.ndarray:
    """One sketch-rnn sketch -> stroke-3 rows with row 0 = (0, 0, 0). stroke-3 is (dx, dy, pen lifted after
    this point); stroke-5 is (dx, dy, pen down, pen up, end of sketch), cut at its end."""
    s = np.asarray(sketch, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] not in (3, 5):
        raise CorpusError(f"a sketch of shape {s.shape}: expected (n, 3) stroke-3 or (n, 5) stroke-5 rows")
    if s.shape[1] == 5:
        ends = np.flatnonzero(s[:, 4] > 0.5)
        s = np.column_stack([s[:ends[0] if len(ends) else len(s), :2], s[:ends[0] if len(ends) else len(s), 3]])
    points = np.zeros((len(s) + 1, 3), np.float32)
    points[1:] = s
    points[-1, 2] = 1                     # the last stroke ends with the sketch
    return points


def read_sketch_npz(path: Path) -> tuple[list[InkLine], list[str]]:
    """sketch-rnn's .npz: arrays (its "train", "valid", "test") of sketches, each stroke-3 or stroke-5; an
    array may also be one sketch (n, 3|5) or a padded block (N, n, 3|5). No text: for the unconditional model."""
    lines, warnings = [], []
    arrays = _npz_arrays(path)
    if {"points", "offsets"} <= set(arrays):
        raise CorpusError("this is the studio's own strokes.npz format: it needs its texts.jsonl beside it")
    for key, array in arrays.items():
        array = np.asarray(array) if not isinstance(array, np.ndarray) else array
        sketches = [array] if array.dtype != object and array.ndim == 2 else list(array)
        for n, sketch in enumerate(sketches):
            source = f"{path} {key}[{n}]"
            try:
                points = _sketch_points(sketch)
            except (CorpusError, ValueError, TypeError) as e:
                warnings.append(f"skipped {source}: {e}")
                continue
            if len(points) < 3:
                warnings.append(f"skipped {source}: fewer than 2 points")
                continue
            lines.append(InkLine(points, "", path.stem, source))
    if not lines:
        raise CorpusError("no sketch of (n, 3) stroke-3 or (n, 5) stroke-5 rows in it"
                          + (f" ({warnings[0]})" if warnings else ""))
    return lines, warnings


def _parse_xml(path: Path):
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        raise CorpusError(f"not well-formed XML ({e})") from e


def usable_coordinates(points: np.ndarray) -> bool:
    """Finite pen moves no longer than MAX_MOVE (a tablet's whole width is a few 10,000 units): a line with
    larger ones is damaged, and its squares would overflow the scale's float32 statistics."""
    return bool(np.isfinite(points).all() and np.abs(points[:, :2]).max(initial=0) <= MAX_MOVE)


def read_corpus(path: str | Path) -> tuple[list[InkLine], list[str]]:
    """Every line of pen data a folder, file or glob names, and a warning per file or sample passed over."""
    _, named = corpus_files(path)
    # a strokes.npz beside its texts.jsonl is one data set (the layout of the shared UNIPEN set); other files are
    # read one by one: a file named on its own whatever its suffix (a wrong one is named in a warning), those a
    # folder or glob names only with a pen data suffix (a README beside them is no pen data)
    one_file = Path(path).expanduser().is_file()
    folders = sorted({p.parent for p in named if p.name in ("strokes.npz", "texts.jsonl")
                      and (p.parent / "strokes.npz").is_file() and (p.parent / "texts.jsonl").is_file()})
    files = [p for p in named if not (p.parent in folders and p.name in ("strokes.npz", "texts.jsonl"))
             and (one_file or p.suffix.lower() in PEN_SUFFIXES)]
    lines, warnings = [], []
    for folder in folders:
        try:
            found, skipped = read_stroke_npz(folder)
            lines += found
            warnings += skipped
        except (CorpusError, OSError, ValueError) as e:
            warnings.append(f"skipped {folder}: {e}")
    for f in files:
        try:
            if f.suffix.lower() == ".ndjson":
                found, skipped = read_quickdraw(f)
                warnings += skipped
            elif f.suffix.lower() == ".npz":
                found, skipped = read_sketch_npz(f)
                warnings += skipped
            elif f.suffix.lower() == ".inkml":
                found = read_inkml(f)
            elif f.suffix.lower() == ".xml":
                found = read_iam_xml(f)
            else:
                raise CorpusError(f"not a pen data format this engine reads ({', '.join(PEN_SUFFIXES)})")
            lines += found
        except (CorpusError, OSError, ValueError, TypeError) as e:     # a malformed file, whatever the fault
            warnings.append(f"skipped {f}: {e}")
    broken = [l for l in lines if not usable_coordinates(l.points)]
    warnings += [f"skipped {l.source}: it has coordinates that are not numbers (NaN or infinite) or too large"
                 for l in broken]
    lines = [l for l in lines if usable_coordinates(l.points)]
    if not lines:
        detail = f" ({'; '.join(warnings[:3])})" if warnings else ""
        raise CorpusError(f"{path} holds no pen data this engine can read "
                          f"(strokes.npz + texts.jsonl, .xml, .inkml, .ndjson or sketch-rnn .npz){detail}")
    return lines, warnings


# ----------------------------------------------------------------------------------------------------
# normalising

def normalise(lines: list[InkLine], smooth_width: int = 1, downsample_factor: int = 1, clip: float = 100.0,
            meta: dict | None = None) -> tuple[list[np.ndarray], dict]:
    """Smooth, downsample and scale every line -> float32 (N, 3) arrays, and the JSON-able meta that repeats
    it on new data (pass meta back in: a fine-tuning corpus must use the model's scale).

    The scale is one std for both axes (so letters keep their shape) of the pen-down moves only: the rarer,
    much longer moves through the air would otherwise set it. Moves beyond `clip` of those units (a stray
    point across the tablet) are clipped. `quantum` is the size of one raw unit after scaling when the raw
    coordinates are integers: the batcher spreads each offset over it, so that the mixture cannot win
    unbounded likelihood by shrinking a Gaussian onto the exact grid values (e.g. the many (0, 0) moves)."""
    if meta is None:
        meta = {"smooth": smooth_width, "downsample": downsample_factor, "clip": clip}
    out = [downsample(smooth(l.points, meta["smooth"]), meta["downsample"]).astype(np.float32) for l in lines]
    if "scale" not in meta:
        down = np.concatenate([p[1:][p[:-1, 2] < 0.5, :2] for p in out]).ravel()
        integral = all(np.array_equal(l.points, np.round(l.points)) for l in lines)
        meta["scale"] = float(down.std()) if down.size and down.std() > 0 else 1.0
        meta["quantum"] = 1.0 / meta["scale"] / meta["smooth"] if integral else 0.0
        meta["points_per_second"] = pen_rate(lines, meta["downsample"])
    for p in out:
        p[:, :2] = np.clip(p[:, :2] / meta["scale"], -meta["clip"], meta["clip"])
    return out, meta


def pen_rate(lines: list[InkLine], downsample: int) -> float | None:
    """Points per second after downsampling (the median over the lines whose files say), else None."""
    rates = [l.rate for l in lines if l.rate]
    return float(np.median(rates)) / downsample if rates else None


# ----------------------------------------------------------------------------------------------------
# alphabet

@dataclass
class Alphabet:
    """Characters the model has an input for: id i + 1 is chars[i]; id 0 stands for any other character
    (one seen fewer than min_count times in training, or never)."""
    chars: str
    counts: dict[str, int]          # every character of the corpus, kept or not

    def encode(self, text: str) -> list[int]:
        index = {ch: i + 1 for i, ch in enumerate(self.chars)}
        return [index.get(ch, 0) for ch in text]

    def unknown(self, text: str) -> list[str]:
        """Characters of text the model has no input of their own for, in order of first appearance."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.chars))

    def rare(self, below: int = 20) -> list[str]:
        """Characters seen fewer than `below` times: the model is unlikely to write them well."""
        return sorted((ch for ch, n in self.counts.items() if n < below), key=lambda ch: (self.counts[ch], ch))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def to_meta(self) -> dict:
        return {"chars": self.chars, "counts": self.counts}

    @classmethod
    def from_meta(cls, meta: dict) -> Alphabet:
        return cls(meta["chars"], dict(meta["counts"]))


def build_alphabet(texts: list[str], min_count: int = 2) -> Alphabet:
    """The characters seen at least min_count times, most frequent first."""
    counts = Counter("".join(texts))
    return Alphabet("".join(ch for ch, n in counts.most_common() if n >= min_count), dict(counts))


# ----------------------------------------------------------------------------------------------------
# batching

class InkBatch(NamedTuple):
    points: torch.Tensor            # (B, T, 3) float32, zeros after a line ends
    point_mask: torch.Tensor        # (B, T) bool, True on real points
    text: torch.Tensor | None       # (B, U) long character ids (None for an unconditional corpus)
    text_mask: torch.Tensor | None  # (B, U) bool, True on real characters
    ends: torch.Tensor              # (B, T) bool, True on a line's last point (none on a line cut short)


class Batcher:
    """Random batches of whole lines (or their first max_points points: p(start of a line | its text) is as
    good a training target as the whole line). Lines in a batch have similar lengths, so little is padding."""

    def __init__(self, points: list[np.ndarray], texts: list[list[int]] | None = None, quantum: float = 0.0,
                 max_points: int | None = None, augment: float = 0.0):
        self.points = [torch.from_numpy(p[:max_points]) for p in points]
        self.whole = [max_points is None or len(p) <= max_points for p in points]
        self.texts = [torch.tensor(t, dtype=torch.long) for t in texts] if texts is not None else None
        self.quantum, self.augment = quantum, augment
        self.by_length = torch.tensor([len(p) for p in self.points]).argsort()

    def sample(self, batch_size: int, generator: torch.Generator) -> InkBatch:
        start = torch.randint(max(1, len(self.points) - batch_size + 1), (1,), generator=generator).item()
        return self.batch(self.by_length[start:start + batch_size].tolist(), generator)

    def batch(self, indices: list[int], generator: torch.Generator | None = None) -> InkBatch:
        lines = [self.points[i] for i in indices]
        # one padding point after the longest line too: the step that reads a line's last point says it ended
        points = F.pad(torch.nn.utils.rnn.pad_sequence(lines, batch_first=True), (0, 0, 0, 1))
        lengths = torch.tensor([len(p) for p in lines])
        point_mask = torch.arange(points.shape[1]) < lengths[:, None]
        whole = torch.tensor([self.whole[i] for i in indices])
        ends = (torch.arange(points.shape[1]) == lengths[:, None] - 1) & whole[:, None]
        if self.quantum and generator is not None:       # dequantise: spread each offset over its grid cell
            noise = (torch.rand(points.shape[:2] + (2,), generator=generator) - 0.5) * self.quantum
            points[..., :2] += noise * point_mask[..., None]
        if self.augment and generator is not None:       # each line slanted and stretched (moves are linear in them)
            shear, log_sx, log_sy = ((torch.rand(3, len(lines), generator=generator) * 2 - 1) * self.augment)
            dx, dy = points[..., 0], points[..., 1]
            points[..., 0] = (dx - shear[:, None] * dy) * log_sx.exp()[:, None]
            points[..., 1] = dy * log_sy.exp()[:, None]
        if self.texts is None:
            return InkBatch(points, point_mask, None, None, ends)
        texts = [self.texts[i] for i in indices]
        text = torch.nn.utils.rnn.pad_sequence(texts, batch_first=True)
        text_mask = torch.arange(text.shape[1]) < torch.tensor([len(t) for t in texts])[:, None]
        return InkBatch(points, point_mask, text, text_mask, ends)


def time_chunks(batch: InkBatch, length: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(points, point_mask, ends) slices of `length` predicted points each, overlapping by one point (each
    chunk's first point is the input that predicts its second): feed them in order, carrying the model's state."""
    T = batch.points.shape[1]
    for s in range(0, T - 1, length):
        cut = slice(s, s + length + 1)
        yield batch.points[:, cut], batch.point_mask[:, cut], batch.ends[:, cut]

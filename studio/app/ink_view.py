"""The ink view: handwriting drawn as the pen writes it, line under line, scaled to the view's width.

Chunks arrive as {"type": "InkChunk", "points": [per variation (n, 3) rows of dx, dy, pen_up], "line": [per
variation, the line of text being written], "attention": [per variation, the window over the
characters of the piece of the line being written (the whole line unless the engine cut it) at the chunk's
last point] or None, "retract": [per variation, points sent before to take back]
or None, "x_height": the writing's x-height in its units (optional: measured when absent), ...}
(engines/ink/chunks.py). Offsets are in the corpus' raw units with y pointing down and run on
from line to line: the engine lays out the page (line spacing, slant, wrapping), the view draws it as it is,
scaled to the view's width, scrolling when the page is taller than the view.

Every stroke is a subpath of its line's QPainterPath, extended as points arrive; a take-back redraws only
the line it touches. The canvas repaints at most REPAINTS_PER_SECOND times a second however fast chunks
come, and lines already written are drawn from a cached picture, so a long text costs little more per frame
than its last line.

In the "preview" role (the Train page after each validation), a heat-map under the writing shows where the
attention window was on the text at each point: a diagonal from top left to bottom right is a model that
reads the text in order.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

REPAINTS_PER_SECOND = 30
MARGIN = 16                   # pixels around the page
PAGE_X_HEIGHTS = 30.0         # while the pen writes, a page narrower than this many x-heights (about 25 letters)
                              # is drawn as if it were that wide, so the first letters are not blown up
HEAT = [QColor.fromRgbF(1 - 0.9 * a, 1 - 0.75 * a, 1 - 0.45 * a).rgb()      # the attention map: white to blue
        for a in np.linspace(0, 1, 256)]
DEFAULT_WIDTH = 2.0           # pixels of pen at an x-height of WIDTH_AT_X_HEIGHT pixels: it grows with the writing
WIDTH_AT_X_HEIGHT = 16.0      # (the ink engine's "stroke_width" control, which its exports use too)
PEN_MARK = QColor("#d8573b")  # where the pen is while it writes: filled when down, a ring when lifted


class DrawnLine:
    """What one variation wrote of one line of the text: its strokes as one QPainterPath, in page units."""

    def __init__(self, x: float, y: float, lifted: bool):
        self.start = (x, y, lifted)   # the pen before the line's first point
        self.rows: list[np.ndarray] = []
        # one per point: the window over the characters the pen was writing (None where the engine said none)
        self.attention: list[np.ndarray | None] = []
        self.restart()

    def restart(self) -> None:
        self.path = QPainterPath()
        self.x, self.y, self.lifted = self.start
        self.stroke_points = 0
        self.points = 0
        self.bounds: QRectF | None = None
        self.measured = (0.0, -1)     # the x-height, and the number of points it was measured on

    def add(self, rows: np.ndarray, attention=None) -> None:
        self.rows.append(rows)
        self.attention += [None if attention is None else np.asarray(attention, np.float32).ravel()] * len(rows)
        self.draw(rows)

    def draw(self, rows: np.ndarray) -> None:
        """Each stroke as curves through the midpoints of its spans (engines.ink.chunks.smooth_stroke draws the
        same for the exports), extended point by point."""
        xy = np.cumsum(rows[:, :2], axis=0, dtype=np.float64) + (self.x, self.y)
        path = self.path
        for (x, y), up in zip(xy.tolist(), (rows[:, 2] > 0.5).tolist()):
            if self.lifted:
                path.moveTo(x, y)
                self.stroke_points = 0
            elif self.stroke_points == 1:
                path.lineTo((self.x + x) / 2, (self.y + y) / 2)
            else:
                path.quadTo(self.x, self.y, (self.x + x) / 2, (self.y + y) / 2)
            self.stroke_points += 1
            if up:                                   # the stroke ends on its last point (a dot: a short line)
                path.lineTo(x + 1e-3 if self.stroke_points == 1 else x, y)
            self.lifted, self.x, self.y = up, x, y
        box = QRectF(QPointF(*xy.min(axis=0)), QPointF(*xy.max(axis=0)))
        self.bounds = box if self.bounds is None else self.bounds.united(box)
        self.points += len(rows)

    def alignment(self) -> list[np.ndarray]:
        """The attention of the last run of points that read one piece of text (rows of one length): an
        engine may write a line in pieces, each with its own window."""
        rows = [a for a in self.attention if a is not None]
        run = []
        for a in reversed(rows):
            if run and len(a) != len(run[0]):
                break
            run.append(a)
        return run[::-1]

    def x_height(self) -> float | None:
        """The height of small letters, roughly: the spread of the middle 60% of the line's points (the engine
        measures each long stroke; a chunk's x_height, when sent, is used instead)."""
        if self.points < 40:
            return None
        if self.measured[1] != self.points:
            y = np.cumsum(np.concatenate(self.rows)[:, 1], dtype=np.float64) + self.start[1]
            low, high = np.percentile(y, [20, 80])
            self.measured = (float(high - low), self.points)
        return self.measured[0]

    def take_back(self, count: int) -> int:
        """Forget the last `count` points (or all there are); how many were taken. The path is drawn again."""
        rows = np.concatenate(self.rows) if self.rows else np.zeros((0, 3), np.float32)
        taken = min(count, len(rows))
        self.rows = [rows[:len(rows) - taken]] if taken < len(rows) else []
        self.attention = self.attention[:max(len(self.attention) - taken, 0)]
        self.restart()
        if self.rows:
            self.draw(self.rows[0])
        return taken


class InkPage:
    """The lines one variation has written. Offsets run on from line to line: the engine lays out the page
    (line spacing, slant, where each line starts), the view draws it as it is."""

    def __init__(self):
        self.lines: dict[int, DrawnLine] = {}
        self.current = -1
        self.done = False
        self.stated_x_height: float | None = None     # as the engine says it (InkChunk.x_height), if it does

    def add(self, line: int, rows: np.ndarray, attention=None) -> None:
        if line not in self.lines:
            before = self.lines.get(self.current)
            self.lines[line] = DrawnLine(*(before.x, before.y, before.lifted) if before else (0.0, 0.0, True))
            self.current = max(self.current, line)
        if len(rows):
            self.lines[line].add(rows, attention)

    def take_back(self, count: int) -> None:
        """Points sent before, written again (a stalled piece of a line): the newest `count` go."""
        for number in sorted(self.lines, reverse=True):
            if count <= 0:
                break
            count -= self.lines[number].take_back(count)

    @property
    def points(self) -> int:
        return sum(line.points for line in self.lines.values())

    def x_height(self) -> float:
        """The writing's x-height: as the engine states it, else measured on the lines."""
        if self.stated_x_height:
            return self.stated_x_height
        heights = [h for h in (line.x_height() for line in self.lines.values()) if h]
        if heights:
            return float(np.median(heights))
        boxes = [line.bounds.height() for line in self.lines.values() if line.bounds is not None]
        return max(boxes) / 3 if boxes else 1.0

    def bounds(self) -> QRectF:
        boxes = [line.bounds for line in self.lines.values() if line.bounds is not None]
        rect = QRectF()
        for box in boxes:
            rect = rect.united(box) if not rect.isNull() else box
        return rect


class InkCanvas(QWidget):
    """Paints the shown variation's page, fitted to the width of the scroll area it sits in."""

    def __init__(self, view: InkView):
        super().__init__(objectName="ink_canvas")
        self.view = view
        self.setAttribute(Qt.WA_OpaquePaintEvent, True)
        self.cache: QPixmap | None = None
        self.cache_key = None

    def geometry_of(self, page: InkPage) -> tuple[QRectF, float]:
        """The rectangle the ink covers, and the scale from its units to pixels: the page's width fills the
        view's, unless that makes one line taller than the view."""
        content = page.bounds()
        if content.isNull():
            return content, 1.0
        # the scroll bar's width is always set aside: were it not, showing it would shrink the page, which
        # could hide it again, and so on
        scroll = self.view.scroll
        available_width = scroll.width() - scroll.verticalScrollBar().sizeHint().width() - 2 * MARGIN
        tallest = max(line.bounds.height() for line in page.lines.values() if line.bounds is not None)
        width = max(content.width(), PAGE_X_HEIGHTS * page.x_height() if self.view.generating else 0, 1e-6)
        scale = min(available_width / width, (scroll.height() - 2 * MARGIN) / max(tallest, 1e-6))
        return content, max(scale, 1e-6)

    def to_pixels(self, point: QPointF) -> QPointF:
        content, scale = self.geometry_of(self.view.page)
        return QPointF(MARGIN + (point.x() - content.left()) * scale, MARGIN + (point.y() - content.top()) * scale)

    def fit(self) -> None:
        """Grow to the page's height (the scroll area scrolls), and follow the pen while it writes."""
        content, scale = self.geometry_of(self.view.page)
        self.setMinimumHeight(min(int(content.height() * scale) + 2 * MARGIN, 1_000_000) if not content.isNull()
                              else 0)
        pen = self.pen_position()
        if pen is not None and self.view.generating:
            self.view.scroll.ensureVisible(int(pen.x()), int(pen.y()), MARGIN, 4 * MARGIN)

    def pen_position(self) -> QPointF | None:
        page = self.view.page
        line = page.lines.get(page.current)
        return self.to_pixels(QPointF(line.x, line.y)) if line is not None and line.points else None

    def line_rects(self) -> dict[int, QRectF]:
        """Where each line's ink is drawn, in the canvas' pixels."""
        return {n: QRectF(self.to_pixels(line.bounds.topLeft()), self.to_pixels(line.bounds.bottomRight()))
                for n, line in self.view.page.lines.items() if line.bounds is not None}

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.white)
        page = self.view.page
        content, scale = self.geometry_of(page)
        if content.isNull():
            return
        ink = self.ink_pen(page, scale)
        written = [n for n in page.lines if n < page.current]
        key = (self.size().toTuple(), content.topLeft().toTuple(), scale, round(ink.widthF(), 1),
               self.view.variation, tuple((n, page.lines[n].points) for n in written))
        if key != self.cache_key:          # lines already written: drawn once per scale, then blitted
            self.cache = QPixmap(self.size())
            self.cache.fill(Qt.white)
            cache_painter = QPainter(self.cache)
            self.draw_lines(cache_painter, [page.lines[n] for n in written], ink, content, scale)
            cache_painter.end()
            self.cache_key = key
        painter.drawPixmap(0, 0, self.cache)
        self.draw_lines(painter, [line for n, line in page.lines.items() if n >= page.current], ink, content, scale)
        pen = self.pen_position()
        if pen is not None and self.view.generating:
            painter.setPen(QPen(PEN_MARK, 2))
            painter.setBrush(Qt.NoBrush if page.lines[page.current].lifted else PEN_MARK)
            painter.drawEllipse(pen, 4.5, 4.5)

    def ink_pen(self, page: InkPage, scale: float) -> QPen:
        """The view's colour, as wide as the stroke width says at the writing's x-height on screen."""
        width = self.view.stroke_width * page.x_height() * scale / WIDTH_AT_X_HEIGHT
        pen = QPen(self.view.ink, min(max(width, 0.6), 40.0), Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
        pen.setCosmetic(True)          # in pixels, not scaled again by the painter's transform
        return pen

    @staticmethod
    def draw_lines(painter: QPainter, lines: list[DrawnLine], pen: QPen, content: QRectF, scale: float) -> None:
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(Qt.NoBrush)
        painter.translate(MARGIN - content.left() * scale, MARGIN - content.top() * scale)
        painter.scale(scale, scale)
        for line in lines:
            painter.drawPath(line.path)
        painter.resetTransform()


class AttentionMap(QWidget):
    """Characters (down) against pen points (across): where the attention window was at each point."""

    def __init__(self):
        super().__init__(objectName="attention_map")
        self.setFixedHeight(110)
        self.image: QImage | None = None
        self.text = ""
        self.setToolTip("Where the model read the text at each pen point: a diagonal from top left to bottom "
                        "right reads it in order")

    def set_attention(self, rows: list[np.ndarray], text: str = "") -> None:
        if not rows or not len(rows[0]):
            self.image = None
        else:
            matrix = np.stack(rows).T                      # (characters, points)
            peak = matrix.max()
            levels = np.ascontiguousarray(np.clip(255 * matrix / peak, 0, 255) if peak > 0 else 0 * matrix,
                                          np.uint8)
            self.image = QImage(levels.data, levels.shape[1], levels.shape[0], levels.shape[1],
                                QImage.Format_Indexed8).copy()       # a copy: the QImage owns its pixels
            self.image.setColorTable(HEAT)
        self.text = text if self.image is not None and len(text) == self.image.height() else ""
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.white)
        if self.image is None:
            return
        label_width = 14 if self.text else 0
        target = QRectF(MARGIN + label_width, 4, self.width() - 2 * MARGIN - label_width, self.height() - 22)
        painter.drawImage(target, self.image)
        painter.setPen(QColor("#666"))
        painter.drawRect(target)
        painter.drawText(QRectF(target.left(), target.bottom() + 2, target.width(), 16), Qt.AlignCenter,
                         f"attention: characters ↓ × points → ({self.image.width()} points)")
        rows = len(self.text)
        if rows and target.height() / rows >= 7:          # label the characters when they fit
            font = painter.font()
            font.setPixelSize(int(min(11, target.height() / rows)))
            painter.setFont(font)
            for i, ch in enumerate(self.text):
                cell = QRectF(MARGIN, target.top() + i * target.height() / rows, label_width, target.height() / rows)
                painter.drawText(cell, Qt.AlignCenter, ch)


class InkView(QWidget):
    def __init__(self, role: str = "create", parent=None):
        super().__init__(parent)
        self.role = role
        self.variation_box = QComboBox(objectName="ink_variation")
        self.status = QLabel(objectName="ink_status")
        self.canvas = InkCanvas(self)
        self.scroll = QScrollArea(widgetResizable=True, frameShape=QScrollArea.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.canvas)
        self.attention_map = AttentionMap()
        self.attention_map.hide()
        bar = QHBoxLayout()
        bar.addWidget(self.variation_box)
        bar.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.attention_map)
        layout.addLayout(bar)

        self.repaint_timer = QTimer(self, singleShot=True, interval=1000 // REPAINTS_PER_SECOND)
        self.repaint_timer.timeout.connect(self.redraw)
        self.variation_box.currentIndexChanged.connect(self.redraw)
        self.begin({"variations": 1})
        self.generating = False

    # --- the sample as it streams in ---
    def begin(self, settings: dict) -> None:
        self.settings = settings
        variations = max(1, int(settings.get("variations") or 1))
        self.pages = [InkPage() for _ in range(variations)]
        self.ink = colour_of(settings.get("colour"))
        self.stroke_width = number_of(settings.get("stroke_width"), DEFAULT_WIDTH, 0.1, 40)
        self.canvas.cache_key = None
        self.generating = True
        self.variation_box.blockSignals(True)
        self.variation_box.clear()
        self.variation_box.addItems([f"Variation {i + 1}" for i in range(variations)])
        self.variation_box.blockSignals(False)
        self.variation_box.setVisible(variations > 1)
        self.attention_map.set_attention([])
        self.attention_map.hide()
        self.redraw()

    def add(self, items: list[dict]) -> None:
        chunks = [item for item in items if item.get("type") == "InkChunk"]
        for chunk in chunks:
            lines, attention, done, retract = (
                per_variation(chunk.get(key), len(self.pages), default)
                for key, default in (("line", 0), ("attention", None), ("done", False), ("retract", 0)))
            stated = chunk.get("x_height")
            for v, rows in enumerate(chunk["points"][:len(self.pages)]):
                if retract[v]:
                    self.pages[v].take_back(int(retract[v]))
                self.pages[v].add(int(lines[v]), np.asarray(rows, np.float32).reshape(-1, 3), attention[v])
                self.pages[v].done |= bool(done[v])
                if isinstance(stated, (int, float)) and 0 < stated < float("inf"):
                    self.pages[v].stated_x_height = float(stated)
        if chunks and not self.repaint_timer.isActive():
            self.repaint_timer.start()

    def end(self) -> None:
        self.generating = False
        self.repaint_timer.stop()
        self.redraw()

    # --- what is shown ---
    @property
    def variation(self) -> int:
        return min(max(self.variation_box.currentIndex(), 0), len(self.pages) - 1)

    @property
    def page(self) -> InkPage:
        return self.pages[self.variation]

    def redraw(self) -> None:
        page = self.page
        if self.role == "preview":       # first, as showing the map leaves the page less room
            rows = next((rows for n in sorted(page.lines, reverse=True) if (rows := page.lines[n].alignment())), [])
            self.attention_map.set_attention(rows, str(self.settings.get("text") or ""))
            self.attention_map.setVisible(bool(rows))
        self.canvas.fit()
        self.canvas.update()
        lines, points = len(page.lines), page.points
        state = "writing…" if self.generating and not page.done else "done"
        self.status.setText(f"{lines} line{'s' * (lines != 1)} · {points:,} points · {state}" if points else "")

    def line_rects(self) -> dict[int, QRectF]:
        """Where each line of the shown variation is drawn, in the canvas' pixels (for tests and tools)."""
        return self.canvas.line_rects()


def per_variation(values, variations: int, default) -> list:
    """A chunk's optional per-variation field, one value per variation whatever it holds."""
    values = list(values) if values is not None else []
    return values[:variations] + [default] * (variations - len(values))


def colour_of(value) -> QColor:
    """The settings' ink colour; one that is not a colour (mid-typing) draws black until it is."""
    colour = QColor(value) if isinstance(value, str) else QColor()
    return colour if colour.isValid() else QColor(Qt.GlobalColor.black)


def number_of(value, default: float, low: float, high: float) -> float:
    try:
        return min(max(float(value), low), high)
    except (TypeError, ValueError):
        return default

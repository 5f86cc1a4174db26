"""Record your own hand: a pen pad (mouse, tablet or touch) and a dialog that prompts sentences covering the
alphabet and saves each as a W3C InkML file, a corpus any engine that reads InkML trains on.

Files are `sentence-NN.inkml` in one folder per writer (by default <user data>/recordings/<name>/), each one
line of handwriting: one <trace> per stroke in the channels X Y T F (pad pixels with y downward, seconds
since the sentence's first point, pen pressure 0..1), the sentence as annotation type="truth" and the
writer's name as annotation type="writer" (what engines/ink/data.py read_inkml reads). Opening the dialog on
a folder that already holds some sentences goes on from the first one missing.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from xml.etree import ElementTree

from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (QDialog, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from studio.paths import data_home

# Short enough to write on one line; together every letter in both cases, every digit and the punctuation
# people type (a model can only learn characters it has seen written).
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs!",
    "Sphinx of black quartz, judge my vow?",
    "THE FIVE BOXING WIZARDS JUMP QUICKLY.",
    "Call 0123 456 789 at 10:45; ask for Jo & Max.",
    "Is it 50% off (or $29.99)? Mail me@home.org",
    "\"Yes,\" she said - 'it's 3/4 + 1/8 = 7/8.'",
    "My PIN: #6 * 3 = 18, [not] {that} one_ ~^ <|>",
)

INKML_NS = "http://www.w3.org/2003/InkML"
CHANNELS = (("X", "px"), ("Y", "px"), ("T", "s"), ("F", ""))
# a mouse has no pressure sensor: its points get the middle of the range, which is also what Qt reports for
# a tablet pen without one
NO_PRESSURE = 0.5


def recordings_dir() -> Path:
    return data_home() / "recordings"


def folder_name(writer: str) -> str:
    """A writer's name as a folder name that is safe on every OS ("Ada L." -> "Ada-L")."""
    return re.sub(r"[^\w.-]+", "-", writer.strip(), flags=re.UNICODE).strip("-.") or "me"


def home_relative(path: Path) -> str:
    """~/... for a path in the user's home, as people read it."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------------------
# InkML files (no Qt)

def write_inkml(path: Path, strokes: list, pressures: list, text: str, writer: str) -> Path:
    """One line of handwriting as InkML: strokes of [x, y, t] points, pressures alike (one per point)."""
    ink = ElementTree.Element("ink", xmlns=INKML_NS)
    ElementTree.SubElement(ink, "annotation", type="truth").text = text
    ElementTree.SubElement(ink, "annotation", type="writer").text = writer
    context = ElementTree.SubElement(ElementTree.SubElement(ink, "definitions"), "context",
                                     {"xml:id": "pad"})
    trace_format = ElementTree.SubElement(context, "traceFormat")
    for name, units in CHANNELS:
        channel = ElementTree.SubElement(trace_format, "channel", name=name, type="decimal")
        if units:
            channel.set("units", units)
    for stroke, pressure in zip(strokes, pressures):
        trace = ElementTree.SubElement(ink, "trace", contextRef="#pad")
        trace.text = ", ".join(f"{x:.2f} {y:.2f} {t:.3f} {f:.3f}" for (x, y, t), f in zip(stroke, pressure))
    ElementTree.indent(ink)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")      # a crash mid-write leaves the old file whole
    ElementTree.ElementTree(ink).write(partial, encoding="utf-8", xml_declaration=True)
    partial.replace(path)
    return path


def read_recording(path: Path) -> tuple[list, list]:
    """(strokes, pressures) of a file write_inkml wrote, to show it again for redoing."""
    strokes, pressures = [], []
    for trace in ElementTree.parse(path).getroot().iter(f"{{{INKML_NS}}}trace"):
        rows = [[float(v) for v in point.split()] for point in (trace.text or "").split(",") if point.strip()]
        strokes.append([row[:3] for row in rows])
        pressures.append([row[3] if len(row) > 3 else NO_PRESSURE for row in rows])
    return strokes, pressures


# ----------------------------------------------------------------------------------------------------
# the pad

class PenPad(QWidget):
    """Draw with the mouse, a pen or a finger. Strokes are lists of [x, y, t]: x and y in the pad's pixels
    (y downward), t in seconds since the first point drawn; `pressures` holds each point's pen pressure (0..1)
    and `devices` the kinds of pointer used ("tablet", "touch", "mouse").

    Times are taken when each event arrives: tablet and touch timestamps start from different clocks on
    different platforms (and synthesised events carry none), while events arrive within a few milliseconds
    of the pen moving."""

    changed = Signal()

    def __init__(self, parent=None, guide: bool = False):
        super().__init__(parent, objectName="pen_pad")
        self.guide = guide              # draw a baseline to write on
        self.setMinimumSize(240, 100)
        self.setCursor(Qt.CrossCursor)
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.setAttribute(Qt.WA_AcceptTouchEvents, True)
        self.setStyleSheet("#pen_pad { background: white; border: 1px solid #bbb; }")
        self.strokes: list[list[list[float]]] = []
        self.pressures: list[list[float]] = []
        self.devices: set[str] = set()
        self.began_at: float | None = None
        self.drawing = False            # a stroke is under way (pen, finger or button down)

    def clear(self) -> None:
        self.set_strokes([])

    def set_strokes(self, strokes: list, pressures: list | None = None) -> None:
        self.strokes = [[list(point) for point in stroke] for stroke in strokes]
        self.pressures = pressures or [[NO_PRESSURE] * len(stroke) for stroke in strokes]
        self.devices, self.began_at, self.drawing = set(), None, False
        self.update()
        self.changed.emit()

    @property
    def point_count(self) -> int:
        return sum(map(len, self.strokes))

    # --- recording ---
    def point(self, position: QPointF) -> list[float]:
        now = time.monotonic()
        if self.began_at is None:       # go on from the time of the strokes already there
            last = [p[2] for s in self.strokes for p in s if len(p) == 3]
            self.began_at = now - (max(last) if last else 0.0)
        return [position.x(), position.y(), round(now - self.began_at, 3)]

    def pen_down(self, position: QPointF, pressure: float, device: str) -> None:
        self.strokes.append([self.point(position)])
        self.pressures.append([pressure])
        self.devices.add(device)
        self.drawing = True
        self.update()

    def pen_moved(self, position: QPointF, pressure: float) -> None:
        """The next point of the stroke (a release where the last move was adds nothing)."""
        if self.drawing and self.strokes and self.strokes[-1][-1][:2] != [position.x(), position.y()]:
            self.strokes[-1].append(self.point(position))
            self.pressures[-1].append(pressure)
            self.update()

    def pen_up(self) -> None:
        if self.drawing:
            self.drawing = False
            self.changed.emit()

    def tabletEvent(self, event) -> None:
        """A pen on a tablet (or a pen screen): accepted, so Qt makes no mouse event of it."""
        kind = event.type()
        if kind == QEvent.TabletPress:
            self.pen_down(event.position(), event.pressure(), "tablet")
        elif kind == QEvent.TabletMove:
            self.pen_moved(event.position(), event.pressure())
        elif kind == QEvent.TabletRelease:
            self.pen_moved(event.position(), event.pressure())
            self.pen_up()
        event.accept()

    def event(self, event) -> bool:
        """A finger: the first touch point draws (a palm or second finger does not)."""
        kind = event.type()
        if kind in (QEvent.TouchBegin, QEvent.TouchUpdate, QEvent.TouchEnd, QEvent.TouchCancel):
            points = event.points()
            if points:
                first = points[0]
                if kind == QEvent.TouchBegin:
                    self.pen_down(first.position(), first.pressure(), "touch")
                elif kind != QEvent.TouchCancel:
                    self.pen_moved(first.position(), first.pressure())
            if kind in (QEvent.TouchEnd, QEvent.TouchCancel):
                self.pen_up()
            event.accept()
            return True
        return super().event(event)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.LeftButton:
            self.pen_down(event.position(), NO_PRESSURE, "mouse")

    def mouseMoveEvent(self, event) -> None:
        if event.buttons() & Qt.LeftButton:
            self.pen_moved(event.position(), NO_PRESSURE)

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.LeftButton:
            self.pen_up()

    # --- drawing ---
    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        if self.guide:       # a baseline two thirds down, and a faint x-height line above it
            baseline = self.height() * 0.66
            painter.setPen(QPen(QColor("#9ab8e0"), 1))
            painter.drawLine(QPointF(12, baseline), QPointF(self.width() - 12, baseline))
            painter.setPen(QPen(QColor("#dde8f5"), 1, Qt.DashLine))
            painter.drawLine(QPointF(12, baseline - self.height() * 0.2),
                             QPointF(self.width() - 12, baseline - self.height() * 0.2))
        pen = QPen(Qt.black, 2, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
        for stroke, pressures in zip(self.strokes, self.pressures):
            if len(set(pressures)) <= 1:          # a mouse (or a pen held evenly): one width
                pen.setWidthF(ink_width(pressures[0] if pressures else NO_PRESSURE))
                painter.setPen(pen)
                line = QPolygonF([QPointF(p[0], p[1]) for p in stroke])
                if len(stroke) == 1:
                    painter.drawPoint(line[0])
                else:
                    painter.drawPolyline(line)
                continue
            for a, b, pressure in zip(stroke, stroke[1:], pressures[1:]):     # wider where pressed harder
                pen.setWidthF(ink_width(pressure))
                painter.setPen(pen)
                painter.drawLine(QPointF(a[0], a[1]), QPointF(b[0], b[1]))


def ink_width(pressure: float) -> float:
    """Pixels of ink for a pen pressure: 2 at the middle of the range, as the mouse draws."""
    return 0.8 + 2.4 * pressure


# ----------------------------------------------------------------------------------------------------
# the dialog

class PenRecorder(QDialog):
    """Prompts each sentence in turn; the user writes it, then saves it (Next), redoes it (Clear) or goes
    Back to one already written. `recorded(folder)` is emitted on Done when the folder holds any sentence."""

    recorded = Signal(str)

    def __init__(self, parent=None, sentences: tuple[str, ...] = SENTENCES, folder: Path | None = None):
        super().__init__(parent, objectName="pen_recorder")
        self.setWindowTitle("Record your own hand")
        self.sentences = sentences
        self.chosen_folder = folder        # None: the folder follows the writer's name
        self.index = 0

        self.name_edit = QLineEdit(objectName="writer_name", placeholderText="your name (saved with each line)")
        self.folder_label = QLabel(objectName="recording_folder", wordWrap=True)
        self.folder_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.folder_button = QPushButton("Folder…")
        self.counter = QLabel(objectName="sentence_counter")
        self.progress = QProgressBar(objectName="recording_progress", maximum=len(sentences), textVisible=False)
        self.prompt = QLabel(objectName="sentence_prompt", wordWrap=True)
        font = QFont(self.prompt.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        self.prompt.setFont(font)
        self.pad = PenPad(guide=True)
        self.pad.setMinimumSize(760, 220)
        self.status = QLabel(objectName="recording_status", wordWrap=True)
        self.clear_button = QPushButton("Clear", objectName="clear_sentence")
        self.back_button = QPushButton("◀ Back", objectName="previous_sentence")
        self.next_button = QPushButton("Save and next ▶", objectName="next_sentence", default=True)
        self.done_button = QPushButton("Done", objectName="finish_recording")

        top = QHBoxLayout()
        top.addWidget(QLabel("Writer"))
        top.addWidget(self.name_edit, 1)
        top.addWidget(self.folder_button)
        where = QHBoxLayout()
        where.addWidget(self.counter)
        where.addWidget(self.progress, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        for b in (self.clear_button, self.back_button, self.next_button, self.done_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.folder_label)
        layout.addLayout(where)
        layout.addWidget(QLabel("Write this line on the pad, as you normally write (mouse, pen or finger):"))
        layout.addWidget(self.prompt)
        layout.addWidget(self.pad, 1)
        layout.addLayout(buttons)

        self.name_edit.textChanged.connect(self.folder_changed)
        self.folder_button.clicked.connect(self.choose_folder)
        self.clear_button.clicked.connect(self.pad.clear)
        self.back_button.clicked.connect(self.back)
        self.next_button.clicked.connect(self.save_and_next)
        self.done_button.clicked.connect(self.finish)
        self.pad.changed.connect(self.refresh)
        self.folder_changed()

    # --- where ---
    @property
    def writer(self) -> str:
        return self.name_edit.text().strip()

    @property
    def folder(self) -> Path | None:
        if self.chosen_folder is not None:
            return self.chosen_folder
        return recordings_dir() / folder_name(self.writer) if self.writer else None

    def file(self, index: int) -> Path | None:
        return self.folder / f"sentence-{index + 1:02d}.inkml" if self.folder else None

    def saved(self) -> list[int]:
        return [i for i in range(len(self.sentences)) if self.file(i) and self.file(i).exists()]

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for your recordings", str(self.folder or
                                                                                          recordings_dir()))
        if folder:
            self.chosen_folder = Path(folder)
            self.folder_changed()

    def folder_changed(self) -> None:
        """A folder that holds sentences already: go on from the first one missing (unless the pad holds a
        line not saved yet, which is kept)."""
        if self.pad.strokes:
            self.refresh()
            return
        missing = [i for i in range(len(self.sentences)) if i not in self.saved()]
        self.show_sentence(missing[0] if missing else len(self.sentences) - 1)

    # --- going through the sentences ---
    def show_sentence(self, index: int) -> None:
        """Show sentence `index`, with its strokes if it was saved before (to redo or keep)."""
        self.index = index
        path = self.file(index)
        if path and path.exists():
            try:
                self.pad.set_strokes(*read_recording(path))
            except (ElementTree.ParseError, ValueError, OSError):
                self.pad.clear()           # a damaged file: written again when this sentence is saved
        else:
            self.pad.clear()
        self.prompt.setText(self.sentences[index])
        self.refresh()

    def refresh(self) -> None:
        saved = self.saved()
        self.counter.setText(f"Sentence {self.index + 1} of {len(self.sentences)}")
        self.progress.setValue(len(saved))
        self.folder_label.setText(f"Saved in {home_relative(self.folder)}" if self.folder else
                                  "Type your name: your recordings are kept in a folder of that name.")
        has_ink = bool(self.pad.strokes)
        self.next_button.setEnabled(has_ink and bool(self.folder))
        self.next_button.setText("Save ✓" if self.index == len(self.sentences) - 1 else "Save and next ▶")
        self.back_button.setEnabled(self.index > 0)
        self.clear_button.setEnabled(has_ink)
        self.done_button.setEnabled(bool(saved) or (has_ink and bool(self.folder)))
        devices = ", ".join(sorted(self.pad.devices)) or "—"
        self.status.setText(f"{len(saved)} of {len(self.sentences)} saved · this line: {len(self.pad.strokes)} "
                            f"strokes, {self.pad.point_count} points · pen: {devices}")

    def save(self) -> Path | None:
        if not (self.pad.strokes and self.folder):
            return None
        if not self.writer:      # a folder chosen by hand: its name stands for the writer
            self.name_edit.setText(self.folder.name)
        # one writer, one folder from the first line saved on
        self.chosen_folder = self.folder
        self.name_edit.setEnabled(False)
        self.folder_button.setEnabled(False)
        return write_inkml(self.file(self.index), self.pad.strokes, self.pad.pressures, self.sentences[self.index],
                           self.writer)

    def save_and_next(self) -> None:
        self.save()
        self.show_sentence(min(self.index + 1, len(self.sentences) - 1))

    def back(self) -> None:
        if self.index > 0:
            self.show_sentence(self.index - 1)

    def finish(self) -> None:
        """Save the line on the pad, and hand the folder on as a corpus."""
        self.save()
        if self.saved():
            self.recorded.emit(str(self.folder))
        self.accept()

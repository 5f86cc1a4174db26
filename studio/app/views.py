"""Sample views: the widgets that show a sample as it streams in, one per modality, found like engines.

The view protocol
-----------------
A view is a QWidget class, made as `ViewClass(role, parent=None)`, with three methods:

    begin(settings: dict)     a new sample starts; `settings` are the resolved settings it is made with
                              (e.g. "variations"), or those recorded with a saved sample
    add(items: list[dict])    the next batch of items (about 30 batches a second while generating): plain
                              dicts with a "type" key, as the engine's chunk dataclasses were named
                              ({"type": "TextChunk", "text": [...], "prob": [...]}); numpy arrays stay arrays.
                              Ignore types you do not know (e.g. "Notice", which the page shows)
    end()                     the sample is complete, stopped or failed: nothing more is added

and the attribute `role`, one of ROLES, saying where it is shown:

    "create"     the Create page: a sample being generated (an audio view plays it as it arrives)
    "preview"    a short sample: on the Train page after each validation, in the Library of a chosen model;
                 never played by itself
    "history"    the History page: a saved sample, loaded from its file

A view never talks to the worker and never imports torch. The pages feed it: a generation, a loaded sample (the
worker's `load` job reads it with the engine's own `load_sample` and streams it exactly like a generation) and
a training preview all arrive through begin / add / end (`show_job` wires a job to a view). Exporting a sample
to another format is the worker's `convert` job, with the engine's own `export`: a view has no part in it.

Registering a view
------------------
Views are registered by modality (Engine.modality). Text and audio are built in; a package adds or replaces
one by declaring, in its pyproject.toml,

    [project.entry-points."sequence_studio.views"]
    points = "mypackage.view:PointsView"

An engine whose modality has no view gets UnsupportedView, which counts the chunks: generating and
exporting still work.
"""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QCheckBox, QFileDialog, QLabel, QPlainTextEdit, QTabWidget, QVBoxLayout, QWidget

from .audio_view import AudioView

ENTRY_POINT_GROUP = "sequence_studio.views"
ROLES = ("create", "preview", "history")
CONFIDENCE_LEVELS = 8


def confidence_formats() -> list[QTextCharFormat]:
    """Unlikely characters glow red, likely ones stay plain. A few shared formats, not one per character, so
    neighbouring characters of one level merge into one text fragment."""
    formats = []
    for level in range(CONFIDENCE_LEVELS):
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(230, 60, 40, int(150 * (1 - level / (CONFIDENCE_LEVELS - 1)))))
        formats.append(fmt)
    return formats


class TextView(QWidget):
    def __init__(self, role: str = "create", parent=None):
        super().__init__(parent)
        self.role = role
        self.tabs = QTabWidget()
        self.colour = QCheckBox("Colour by the model's confidence")
        self.colour.setChecked(True)
        self.colour.setVisible(role != "history")      # a saved sample keeps no probabilities: nothing to colour
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.colour)
        self.editors: list[QPlainTextEdit] = []
        self.formats, self.plain = confidence_formats(), QTextCharFormat()
        self.begin({"variations": 1})

    def begin(self, settings: dict) -> None:
        self.tabs.clear()
        self.editors = []
        for i in range(settings.get("variations") or 1):
            editor = QPlainTextEdit(readOnly=True)
            editor.setObjectName(f"text_output_{i}")
            editor.setFont(QFont("monospace"))
            self.editors.append(editor)
            self.tabs.addTab(editor, f"Variation {i + 1}")
        self.tabs.tabBar().setVisible(len(self.editors) > 1)

    def add(self, items: list[dict]) -> None:
        """Append a batch of chunks: one edit block per batch, so the text is laid out once per batch."""
        chunks = [item for item in items if item.get("type") == "TextChunk"]
        if not chunks:
            return
        coloured = self.colour.isChecked()
        for index, editor in enumerate(self.editors):
            cursor = editor.textCursor()
            cursor.movePosition(QTextCursor.End)
            cursor.beginEditBlock()
            for chunk in chunks:
                piece = chunk["text"][index]
                if not piece:
                    continue
                if coloured and len(piece) == 1:
                    level = min(CONFIDENCE_LEVELS - 1, int(chunk["prob"][index] * CONFIDENCE_LEVELS))
                    cursor.insertText(piece, self.formats[level])
                else:
                    cursor.insertText(piece, self.plain)
            cursor.endEditBlock()
            editor.setTextCursor(cursor)

    def end(self) -> None:
        pass

    def texts(self) -> list[str]:
        return [e.toPlainText() for e in self.editors]


class UnsupportedView(QLabel):
    """For an engine whose modality no installed view shows; generating and exporting still work."""

    def __init__(self, role: str = "create", parent=None):
        super().__init__("No view for this engine's samples is installed; export them to a file.", parent)
        self.role = role
        self.setAlignment(Qt.AlignCenter)
        self.count = 0

    def begin(self, settings: dict) -> None:
        self.count = 0

    def add(self, items: list[dict]) -> None:
        self.count += len(items)
        self.setText(f"{self.count} chunks; no view for them is installed: export them to a file to see them.")

    def end(self) -> None:
        pass


BUILT_IN_VIEWS = {"text": TextView, "audio": AudioView}


def available_views() -> dict[str, type]:
    """View classes by modality: the built-in ones, then those of installed packages (which may replace them).
    A view that fails to load is left out, with a warning, as a broken engine is."""
    views = dict(BUILT_IN_VIEWS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            views[ep.name] = ep.load()
        except Exception as e:  # a broken third-party view must not take the studio down
            warnings.warn(f"view {ep.name!r} ({ep.value}) could not be loaded: {e}")
    return views


def make_view(views: dict[str, type], modality: str, role: str) -> QWidget:
    return views.get(modality, UnsupportedView)(role)


def show_job(job, view) -> None:
    """Stream a generate or load job into a view: the job's first item (its settings) begins the sample, the
    rest are added as they arrive, and the job's end, however it ends, ends it."""
    def add(items: list) -> None:
        if items and items[0].get("type") == "Settings":
            view.begin(items[0]["settings"])
            items = items[1:]
        if items:
            view.add(items)
    job.yielded.connect(add)
    job.finished.connect(lambda _: view.end())
    job.errored.connect(lambda _: view.end())


# saved samples: read and written by their engine in the worker, never by a view

def load_sample(worker, engine: str, path, view):
    """Show a saved sample: the worker's `load` job streams it into the view as a generation would."""
    job = worker.submit("load", engine=engine, path=str(path))
    show_job(job, view)
    return job


def export_target(parent, engine, name: str):
    """Ask where to export a sample, offering the engine's formats; a name typed without one gets the first."""
    suffixes = " ".join(f"*{s}" for s in engine.export_formats)
    target, _ = QFileDialog.getSaveFileName(parent, "Export sample", str(Path.home() / name),
                                            f"{engine.title} ({suffixes})")
    if not target:
        return None
    target = Path(target)
    return target if target.suffix else target.with_suffix(engine.export_formats[0])


def export_sample(worker, engine: str, source, target, message):
    """Write a saved sample as `target` with the engine's own export (the worker's `convert` job); `message`
    (a page's signal) says where it went, or why it could not."""
    job = worker.submit("convert", engine=engine, source=str(source), target=str(target))
    job.finished.connect(lambda result: message.emit("info", f"Saved {result['saved']} (settings in "
                                                             f"{result['saved']}.json)"))
    job.errored.connect(lambda error: message.emit("error", error["message"]))
    return job

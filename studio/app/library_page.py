"""Library (models, bundled and trained) and History (every generated sample, shown in its engine's view,
replayable, exportable)."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QInputDialog, QLabel, QListWidget, QListWidgetItem,
                               QMessageBox, QPlainTextEdit, QPushButton, QSplitter, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from engines.core.errors import StudioError

from .views import export_sample, export_target, load_sample, make_view, show_job


def stages_text(entry) -> str:
    """The stages of a run, e.g. "tokenizer 40/40 · prior 12/40"; "" for an engine that trains in one."""
    if not entry.stages:
        return ""
    return " · ".join(f"{s.name} {s.steps:,}/{f'{s.max_steps:,}' if s.max_steps else '?'}" for s in entry.stages)


class EngineViews(QStackedWidget):
    """One sample view per engine, in one role, the shown one switched by engine."""

    def __init__(self, engines: dict, views: dict, role: str, parent=None):
        super().__init__(parent)
        self.by_engine = {name: make_view(views, engine.modality, role) for name, engine in engines.items()}
        for view in self.by_engine.values():
            self.addWidget(view)

    def show_engine(self, name: str):
        view = self.by_engine[name]
        self.setCurrentWidget(view)
        return view


class LibraryPage(QWidget):
    open_model = Signal(object, str)             # checkpoint, engine
    resume_model = Signal(object, str, str)      # run dir, corpus, engine
    models_changed = Signal()                    # renamed or deleted here: other pages' lists are stale
    message = Signal(str, str)
    COLUMNS = ("Name", "Engine", "Corpus", "Steps", "Stages", "Validation loss", "Saved")

    def __init__(self, library, engines: dict, views: dict, worker, in_use=lambda run_dir: False, parent=None):
        super().__init__(parent)
        self.library, self.engines, self.worker = library, engines, worker
        self.in_use = in_use          # is this run folder being trained into right now?
        self.preview_job = None
        self.table = QTableWidget(0, len(self.COLUMNS), objectName="library_table")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QHBoxLayout()
        self.actions = {}
        for label, slot in (("Open", self.open), ("Preview", self.preview), ("Resume training", self.resume),
                            ("Rename…", self.rename), ("Delete…", self.delete),
                            ("Reveal in file manager", self.reveal)):
            button = QPushButton(label)
            button.clicked.connect(slot)
            buttons.addWidget(button)
            self.actions[label] = button
        # a short sample of the chosen model, made on request with the engine's preview settings
        self.previews = EngineViews(engines, views, "preview")
        self.no_preview = QLabel("Choose a model and press Preview for a short sample of what it makes.",
                                 objectName="library_no_preview", alignment=Qt.AlignCenter)
        self.previews.addWidget(self.no_preview)
        self.previews.setCurrentWidget(self.no_preview)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.previews)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        self.table.itemSelectionChanged.connect(self.selection_changed)
        self.table.doubleClicked.connect(self.open)
        self.refresh()

    def refresh(self, entries: list | None = None) -> None:
        self.entries = self.library.entries() if entries is None else entries
        self.table.setRowCount(len(self.entries))
        for row, e in enumerate(self.entries):
            loss = "unreadable" if e.problem else e.loss_text
            values = (e.name, e.engine, Path(e.corpus).name if e.corpus else "", f"{e.steps:,}", stages_text(e),
                      loss, e.saved_at[:16].replace("T", " "))
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(e.problem or str(e.checkpoint))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.selection_changed()

    def selected(self):
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def samples(self, e) -> bool:
        """Whether a model can make samples here: readable, its engine installed, its last stage trained."""
        return e is not None and not e.problem and e.ready and e.engine in self.engines

    def selection_changed(self) -> None:
        e = self.selected()
        self.actions["Open"].setEnabled(self.samples(e))
        self.actions["Preview"].setEnabled(self.samples(e) and self.preview_job is None)
        self.actions["Resume training"].setEnabled(e is not None and e.resumable)
        for label in ("Rename…", "Delete…"):
            self.actions[label].setEnabled(e is not None and not e.bundled and not self.in_use(e.run_dir))
        self.actions["Reveal in file manager"].setEnabled(e is not None)

    def open(self) -> None:
        if self.samples(e := self.selected()):
            self.open_model.emit(e.checkpoint, e.engine)

    def preview(self) -> None:
        e = self.selected()
        if not self.samples(e) or self.preview_job is not None:
            return
        engine = self.engines[e.engine]
        if self.worker.busy:
            self.message.emit("info", "The preview waits for the model worker, which is busy (pause training to "
                                      "preview now).")
        self.preview_job = self.worker.submit("generate", engine=engine.name, checkpoint=str(e.checkpoint),
                                              settings=engine.preview_settings())
        show_job(self.preview_job, self.previews.show_engine(engine.name))
        self.preview_job.finished.connect(self.preview_ended)
        self.preview_job.errored.connect(lambda error: self.message.emit("error", error["message"]))
        self.preview_job.errored.connect(self.preview_ended)
        self.selection_changed()

    def preview_ended(self, _result: dict) -> None:
        self.preview_job = None
        self.selection_changed()

    def resume(self) -> None:
        if (e := self.selected()) and e.resumable:
            self.resume_model.emit(e.run_dir, e.corpus, e.engine)

    def rename(self, _=None, new_name: str | None = None) -> None:
        e = self.selected()
        if e is None or self.in_use(e.run_dir):
            return
        if new_name is None:
            new_name, ok = QInputDialog.getText(self, "Rename model", "New name", text=e.name)
            if not ok:
                return
        try:
            self.library.rename(e, new_name)
        except (StudioError, OSError) as err:
            self.message.emit("error", str(err))
        self.models_changed.emit()

    def delete(self, _=None, confirmed: bool = False) -> None:
        e = self.selected()
        if e is None or self.in_use(e.run_dir):
            return
        if not confirmed and QMessageBox.question(self, "Delete model", f"Delete {e.name} and its checkpoints?") \
                != QMessageBox.Yes:
            return
        try:
            self.library.delete(e)
        except (StudioError, OSError) as err:
            self.message.emit("error", str(err))
        self.models_changed.emit()

    def reveal(self) -> None:
        if e := self.selected():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(e.run_dir or e.checkpoint.parent)))


class HistoryPage(QWidget):
    """Every saved sample, newest first. The chosen one is loaded (by the worker, with its engine's
    load_sample) into that engine's view when the page is shown."""
    replay = Signal(dict)
    message = Signal(str, str)

    def __init__(self, history, engines: dict, views: dict, worker, parent=None):
        super().__init__(parent)
        self.history, self.engines, self.worker = history, engines, worker
        self.load_job = None
        self.shown_path: Path | None = None     # the sample in the view (or on its way)
        self.list = QListWidget(objectName="history_list")
        self.views = EngineViews(engines, views, "history")
        self.missing = QLabel(objectName="history_missing", wordWrap=True, alignment=Qt.AlignCenter)
        self.views.addWidget(self.missing)
        self.detail = QPlainTextEdit(readOnly=True, objectName="history_detail")
        self.detail.setMaximumHeight(160)
        self.replay_button = QPushButton("Replay", objectName="history_replay")
        self.export_button = QPushButton("Export…", objectName="history_export")
        buttons = QHBoxLayout()
        buttons.addWidget(self.replay_button)
        buttons.addWidget(self.export_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.views, 1)
        right_layout.addWidget(self.detail)
        right_layout.addLayout(buttons)
        splitter = QSplitter()
        splitter.addWidget(self.list)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        QVBoxLayout(self).addWidget(splitter)
        self.list.currentRowChanged.connect(self.show_record)
        self.replay_button.clicked.connect(lambda: self.current() and self.replay.emit(self.current().settings))
        self.export_button.clicked.connect(self.export)
        self.refresh()

    def refresh(self) -> None:
        self.records = self.history.records()
        self.list.clear()
        for record in self.records:
            self.list.addItem(QListWidgetItem(record.title))
        self.list.setCurrentRow(0 if self.records else -1)

    def current(self):
        row = self.list.currentRow()
        return self.records[row] if 0 <= row < len(self.records) else None

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.show_record()

    def show_record(self, _row: int = -1) -> None:
        """Show the chosen sample, loading it only while the page is visible (a generation refreshes the list
        on every page, and the worker has better things to do than load a sample nobody looks at)."""
        record = self.current()
        self.detail.setPlainText("" if record is None else "settings:\n" + json.dumps(record.settings, indent=2))
        engine = self.engines.get(record.settings.get("engine")) if record else None
        self.replay_button.setEnabled(engine is not None)
        self.export_button.setEnabled(engine is not None)
        if record is None or not self.isVisible() or record.path == self.shown_path:
            return
        self.shown_path = record.path
        if self.load_job is not None:
            self.load_job.cancel()
        if engine is None:
            self.missing.setText(f"{record.path.name} was made by the {record.settings.get('engine', '?')} engine, "
                                 "which is not installed.")
            self.views.setCurrentWidget(self.missing)
            return
        self.load_job = load_sample(self.worker, engine.name, record.path, self.views.show_engine(engine.name))
        self.load_job.errored.connect(lambda error: self.message.emit("error", error["message"]))

    def export(self) -> None:
        record = self.current()
        engine = self.engines.get(record.settings.get("engine")) if record else None
        if engine is None:
            return
        target = export_target(self, engine, record.path.name)
        if target:
            self.export_to(record, target)

    def export_to(self, record, target: Path):
        """A sample written as `target` by its engine, in the worker; returns the Job."""
        return export_sample(self.worker, record.settings["engine"], record.path, target, self.message)

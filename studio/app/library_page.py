"""Library (models, bundled and trained) and History (every generated sample, replayable)."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QInputDialog, QListWidget,
                               QListWidgetItem, QMessageBox, QPlainTextEdit, QPushButton, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from engines.core.errors import StudioError


class LibraryPage(QWidget):
    open_model = Signal(object, str)             # checkpoint, engine
    resume_model = Signal(object, str, str)      # run dir, corpus, engine
    message = Signal(str, str)
    COLUMNS = ("Name", "Engine", "Corpus", "Steps", "Validation loss", "Saved")

    def __init__(self, library, in_use=lambda run_dir: False, parent=None):
        super().__init__(parent)
        self.library = library
        self.in_use = in_use          # is this run folder being trained into right now?
        self.table = QTableWidget(0, len(self.COLUMNS), objectName="library_table")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QHBoxLayout()
        self.actions = {}
        for label, slot in (("Open", self.open), ("Resume training", self.resume), ("Rename…", self.rename),
                            ("Delete…", self.delete), ("Reveal in file manager", self.reveal)):
            button = QPushButton(label)
            button.clicked.connect(slot)
            buttons.addWidget(button)
            self.actions[label] = button
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self.table.itemSelectionChanged.connect(self.selection_changed)
        self.table.doubleClicked.connect(self.open)
        self.refresh()

    def refresh(self, entries: list | None = None) -> None:
        self.entries = self.library.entries() if entries is None else entries
        self.table.setRowCount(len(self.entries))
        for row, e in enumerate(self.entries):
            loss = f"{e.val_loss:.4f}" if e.val_loss is not None else ("unreadable" if e.problem else "")
            values = (e.name, e.engine, Path(e.corpus).name if e.corpus else "", f"{e.steps:,}", loss,
                      e.saved_at[:16].replace("T", " "))
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

    def selection_changed(self) -> None:
        e = self.selected()
        self.actions["Open"].setEnabled(e is not None and not e.problem)
        self.actions["Resume training"].setEnabled(e is not None and e.resumable)
        for label in ("Rename…", "Delete…"):
            self.actions[label].setEnabled(e is not None and not e.bundled and not self.in_use(e.run_dir))
        self.actions["Reveal in file manager"].setEnabled(e is not None)

    def open(self) -> None:
        if (e := self.selected()) and not e.problem:
            self.open_model.emit(e.checkpoint, e.engine)

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
        self.refresh()

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
        self.refresh()

    def reveal(self) -> None:
        if e := self.selected():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(e.run_dir or e.checkpoint.parent)))


class HistoryPage(QWidget):
    replay = Signal(dict)
    message = Signal(str, str)

    def __init__(self, history, parent=None):
        super().__init__(parent)
        self.history = history
        self.list = QListWidget(objectName="history_list")
        self.detail = QPlainTextEdit(readOnly=True, objectName="history_detail")
        self.replay_button = QPushButton("Replay", objectName="history_replay")
        self.export_button = QPushButton("Export…", objectName="history_export")
        buttons = QHBoxLayout()
        buttons.addWidget(self.replay_button)
        buttons.addWidget(self.export_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
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

    def show_record(self, _row: int) -> None:
        record = self.current()
        if record is None:
            self.detail.clear()
            return
        text = ""
        if record.path.suffix == ".txt":
            with open(record.path, encoding="utf-8", errors="replace") as f:
                text = f.read(20_000) + "\n\n"
        self.detail.setPlainText(text + "settings:\n" + json.dumps(record.settings, indent=2))

    def export(self) -> None:
        record = self.current()
        if record is None:
            return
        target, _ = QFileDialog.getSaveFileName(self, "Export sample", str(Path.home() / record.path.name))
        if target:
            path = self.history.export(record, Path(target))
            self.message.emit("info", f"Saved {path}")

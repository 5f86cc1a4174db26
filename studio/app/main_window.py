"""The main window: Create, Train, Library and History pages around one model worker."""
from __future__ import annotations

import json

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QPushButton, QTabWidget, QVBoxLayout, QWidget

from studio.library import ModelLibrary, SampleHistory
from studio.paths import data_home

from .create_page import CreatePage
from .library_page import HistoryPage, LibraryPage
from .train_page import TrainPage
from .views import available_views
from .worker_client import WorkerClient

STYLES = {"error": "background:#fde2e1;color:#7a1d14;", "info": "background:#e4effd;color:#123a6b;"}


class MessageBar(QWidget):
    """One line above the pages for errors and notes: readable text, never a traceback, never modal."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel(objectName="message_text", wordWrap=True)
        self.level = ""
        close = QPushButton("✕", flat=True, maximumWidth=28)
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.label, 1)
        row.addWidget(close)
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        self.level = level
        self.label.setText(text)
        self.setStyleSheet(STYLES.get(level, ""))
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, engines: dict, views: dict | None = None, worker: WorkerClient | None = None):
        super().__init__()
        self.setWindowTitle("Sequence Studio")
        self.engines = engines
        self.views = available_views() if views is None else views
        self.worker = worker or WorkerClient(self)
        self.library = ModelLibrary(engines)
        self.history = SampleHistory()
        self.messages = MessageBar()
        self.create_page = CreatePage(engines, self.views, self.library, self.history, self.worker)
        self.train_page = TrainPage(engines, self.views, self.library, self.worker)
        self.library_page = LibraryPage(self.library, engines, self.views, self.worker,
                                        in_use=lambda run_dir: self.train_page.job is not None
                                        and run_dir == self.train_page.run_dir)
        self.history_page = HistoryPage(self.history, engines, self.views, self.worker)
        self.tabs = QTabWidget(objectName="pages")
        for page, title in ((self.create_page, "Create"), (self.train_page, "Train"),
                            (self.library_page, "Library"), (self.history_page, "History")):
            self.tabs.addTab(page, title)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.messages)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.worker_status = QLabel("model worker: starting…", objectName="worker_status")
        self.statusBar().addPermanentWidget(self.worker_status)

        for page in (self.create_page, self.train_page, self.library_page, self.history_page):
            page.message.connect(self.messages.show_message)
        self.worker.ready.connect(lambda info: self.worker_status.setText(
            f"model worker ready · devices: {', '.join(info['devices'])}"))
        self.worker.crashed.connect(lambda text: self.messages.show_message("error", text))
        self.worker.crashed.connect(lambda _: self.worker_status.setText("model worker: restarting…"))
        self.train_page.model_saved.connect(self.models_changed)
        self.create_page.sample_saved.connect(self.history_page.refresh)
        self.library_page.open_model.connect(self.open_model)
        self.library_page.resume_model.connect(self.resume_model)
        self.library_page.models_changed.connect(self.models_changed)
        self.history_page.replay.connect(self.replay)

        self.settings = QSettings(str(data_home() / "settings.ini"), QSettings.IniFormat)
        self.resize(1200, 760)
        if geometry := self.settings.value("window/geometry"):
            self.restoreGeometry(geometry)
        self.tabs.setCurrentIndex(int(self.settings.value("window/page", 0)))
        for engine in engines.values():
            self.create_page.remember(engine.name, self.saved_controls(engine))
        if self.settings.value("window/engine") in engines:
            self.create_page.engine_box.select(self.settings.value("window/engine"))

    def saved_controls(self, engine) -> dict:
        """An engine's control values from the last session, stored as JSON. One that is not JSON (or was
        written by an older version) is left out and its field shows the default; one its control rejects
        shows the default too (ControlsForm.set_values)."""
        values = {}
        for control in engine.controls():
            key = f"controls/{engine.name}/{control.name}"
            if self.settings.contains(key):
                try:
                    values[control.name] = json.loads(self.settings.value(key))
                except (TypeError, json.JSONDecodeError):
                    continue
        return values

    def models_changed(self) -> None:
        entries = self.library.entries()     # one scan of the headers for both pages
        self.library_page.refresh(entries)
        self.create_page.refresh_models(entries=entries)

    def open_model(self, checkpoint, engine: str) -> None:
        self.create_page.select_model(checkpoint, engine)
        self.tabs.setCurrentWidget(self.create_page)

    def resume_model(self, run_dir, corpus: str, engine: str) -> None:
        self.train_page.resume_run(run_dir, corpus, engine)     # first: showing the page may ask for a summary
        self.tabs.setCurrentWidget(self.train_page)

    def replay(self, settings: dict) -> None:
        self.tabs.setCurrentWidget(self.create_page)
        self.create_page.replay(settings)

    def closeEvent(self, event) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/page", self.tabs.currentIndex())
        self.settings.setValue("window/engine", self.create_page.engine.name)
        for engine, values in self.create_page.all_values().items():
            for name, value in values.items():
                self.settings.setValue(f"controls/{engine}/{name}", json.dumps(value))
        self.settings.sync()
        self.worker.shutdown()
        super().closeEvent(event)

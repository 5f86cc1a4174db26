"""Create: pick an engine and a model, set the controls, Generate, watch it stream, Stop, Export.

While the user chooses, the page asks the worker to `prepare` the model and settings shown (load the model; the
ink engine reads its hands' primers), so that Generate starts at once."""
from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSplitter, QStackedWidget,
                               QVBoxLayout, QWidget)

from engines.core.interface import recorded_settings

from .controls import ControlsForm, EngineBox
from .views import export_sample, export_target, make_view, show_job

PREPARE_AFTER_MS = 400      # a pause in the user's edits this long, and the worker prepares what they show


class CreatePage(QWidget):
    message = Signal(str, str)          # level ("info" | "error"), text
    sample_saved = Signal()

    def __init__(self, engines: dict, views: dict, library, history, worker, parent=None):
        super().__init__(parent)
        self.engines, self.library, self.history, self.worker = engines, library, history, worker
        self.job = None                         # the generation's Job while it runs
        self.sample_path: Path | None = None    # the last sample, as saved in History
        self.sample_engine = None               # ... and the engine that made it

        self.engine_box = EngineBox(engines, "create_engine")
        self.model_box = QComboBox(objectName="create_model")
        # each listed model's checkpoint (as a str: findData matches a Path item only by identity) -> its meta,
        # as the library read it
        self.headers: dict[str, dict] = {}
        self.controls = ControlsForm()
        self.generate_button = QPushButton("Generate", objectName="generate")
        self.stop_button = QPushButton("Stop", objectName="stop_generation", enabled=False)
        self.export_button = QPushButton("Export…", objectName="export_sample", enabled=False)
        self.status = QLabel(objectName="create_status", wordWrap=True)
        self.notices = QLabel(objectName="create_notices", wordWrap=True)   # what the engine said of the sample
        self.views = QStackedWidget()
        self.view_by_engine = {name: make_view(views, engine.modality, "create") for name, engine in engines.items()}
        for view in self.view_by_engine.values():
            self.views.addWidget(view)
        self.remembered: dict[str, dict] = {}
        self.shown_engine: str | None = None
        self.preparing = None                   # the prepare Job while it runs
        self.prepared: tuple | None = None      # what the worker last prepared: (engine, checkpoint, settings)
        self.prepare_timer = QTimer(self, singleShot=True, interval=PREPARE_AFTER_MS)
        self.prepare_timer.timeout.connect(self.prepare)

        side = QWidget()
        form = QFormLayout(side)
        form.addRow("Engine", self.engine_box)
        form.addRow("Model", self.model_box)
        form.addRow(self.controls)
        buttons = QHBoxLayout()
        for b in (self.generate_button, self.stop_button, self.export_button):
            buttons.addWidget(b)
        form.addRow(buttons)
        form.addRow(self.status)
        form.addRow(self.notices)
        self.splitter = QSplitter()
        self.splitter.addWidget(side)
        self.splitter.addWidget(self.views)
        self.splitter.setStretchFactor(1, 1)
        QVBoxLayout(self).addWidget(self.splitter)

        self.engine_box.currentIndexChanged.connect(self.engine_changed)
        self.generate_button.clicked.connect(lambda: self.generate())
        self.stop_button.clicked.connect(self.stop)
        self.export_button.clicked.connect(self.export)
        # (start() without arguments: currentIndexChanged's index would be taken for the timer's interval)
        self.controls.changed.connect(lambda: self.prepare_timer.start())
        self.model_box.currentIndexChanged.connect(self.model_changed)
        self.engine_changed()

    # --- state ---
    @property
    def engine(self):
        return self.engine_box.engine

    @property
    def view(self):
        return self.view_by_engine[self.engine.name]

    def engine_changed(self) -> None:
        if self.shown_engine:      # each engine keeps its own settings while you switch between them
            self.remembered[self.shown_engine] = self.controls.values()
        self.controls.set_controls(self.engine.controls())
        self.controls.set_values({k: v for k, v in self.remembered.get(self.engine.name, {}).items() if k != "seed"})
        self.shown_engine = self.engine.name
        self.views.setCurrentWidget(self.view)
        self.refresh_models()
        self.export_button.setEnabled(self.can_export())

    def can_export(self) -> bool:
        """A finished sample of the engine shown (Export writes the last sample in its engine's formats)."""
        return (self.job is None and self.sample_engine is self.engine and self.sample_path is not None
                and self.sample_path.exists())

    def remember(self, engine: str, values: dict) -> None:
        """Settings for an engine's controls (e.g. from the last session), used when it is shown."""
        self.remembered[engine] = values
        if engine == self.engine.name:
            self.controls.set_values({k: v for k, v in values.items() if k != "seed"})

    def all_values(self) -> dict[str, dict]:
        return {**self.remembered, self.engine.name: self.controls.values()}

    def refresh_models(self, select: Path | None = None, entries: list | None = None) -> None:
        """The engine's models that make samples: not unreadable ones, nor runs whose last stage is untrained."""
        current = select or self.model_box.currentData()
        self.headers = {}
        self.model_box.clear()
        for entry in self.library.entries() if entries is None else entries:
            if entry.engine == self.engine.name and entry.ready and not entry.problem:
                self.headers[str(entry.checkpoint)] = entry.header
                self.model_box.addItem(entry.name, str(entry.checkpoint))
        index = self.model_box.findData(str(current)) if current else -1
        self.model_box.setCurrentIndex(max(index, 0))

    def model_changed(self) -> None:
        """List the values the model knows (its writers, its labels) beside the fields that take them, and have
        the worker load it."""
        self.controls.set_suggestions(self.engine.suggestions(self.headers.get(self.model_box.currentData(), {})))
        self.prepare_timer.start()

    def select_model(self, checkpoint: Path, engine: str) -> None:
        self.engine_box.select(engine)
        self.refresh_models(select=checkpoint)

    # --- actions ---
    def prepare(self) -> None:
        """Let the worker load the model shown and get ready for the settings shown, unless it is busy (a
        generation or a training run) or has already done so; called after a pause in the user's edits."""
        checkpoint = self.model_box.currentData()
        if checkpoint is None or self.job is not None or self.preparing is not None or self.worker.busy:
            return
        shown = self.showing()
        if shown == self.prepared:
            return
        self.prepared = shown
        self.preparing = self.worker.submit("prepare", engine=self.engine.name, checkpoint=checkpoint,
                                            settings=self.controls.values())
        # a failure is left for Generate to report; edits made meanwhile are prepared next
        self.preparing.finished.connect(self.prepare_ended)
        self.preparing.errored.connect(self.prepare_ended)

    def showing(self) -> tuple:
        """The engine, model and settings shown, as prepare records them."""
        return (self.engine.name, self.model_box.currentData(),
                json.dumps(self.controls.values(), sort_keys=True))

    def prepare_ended(self, _result: dict) -> None:
        self.preparing = None
        self.prepare_timer.start()

    def generate(self, settings: dict | None = None) -> None:
        checkpoint = self.model_box.currentData()
        if checkpoint is None:
            self.message.emit("error", f"No {self.engine.name} model yet: train one on the Train page.")
            return
        settings = settings or self.controls.values()
        self.sample_path = self.history.new_path(self.engine.name, self.engine.export_formats[0])
        self.sample_engine = self.engine
        self.job = self.worker.submit("generate", engine=self.engine.name, checkpoint=checkpoint,
                                      settings=settings, save_to=str(self.sample_path))
        show_job(self.job, self.view)
        self.job.started.connect(lambda _: self.status.setText("generating…"))
        self.job.yielded.connect(self.on_items)
        self.job.finished.connect(self.on_finished)
        self.job.errored.connect(self.on_errored)
        self.started_at = time.time()
        self.generate_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.export_button.setEnabled(False)
        self.notices.clear()
        busy = self.worker.busy and not (self.preparing is not None and self.preparing.running)
        self.status.setText("waiting: the worker is busy (pause training to generate now)" if busy
                            else "starting…")

    def replay(self, settings: dict) -> None:
        """Generate again exactly as recorded (same model, same settings, same seed)."""
        if self.job is not None:
            self.message.emit("error", "a sample is being made: stop it first, then replay")
            return
        self.select_model(Path(settings["checkpoint"]), settings["engine"])
        if self.model_box.currentData() != str(Path(settings["checkpoint"])):
            self.message.emit("error", f"cannot replay: the model {settings['checkpoint']} is no longer in the "
                                       "library (renamed or deleted)")
            return
        values = recorded_settings(self.engine.controls(), settings)
        self.controls.set_values(values)
        self.generate(values)

    def stop(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def export(self) -> None:
        target = export_target(self, self.sample_engine, self.sample_path.name)
        if target:
            self.export_to(target)

    def export_to(self, target: Path):
        """The last sample written as `target` by its engine, in the worker; returns the Job."""
        return export_sample(self.worker, self.sample_engine.name, self.sample_path, target, self.message)

    # --- the generation's events ---
    def on_items(self, items: list) -> None:
        for item in items:
            if item["type"] == "Settings" and self.sample_engine is self.engine:    # not another engine's field
                self.controls.set_values({"seed": item["settings"].get("seed")})
            elif item["type"] == "Notice":
                self.notices.setText("\n".join(filter(None, [self.notices.text(), item["message"]])))

    def on_finished(self, result: dict) -> None:
        self.job = None
        took = time.time() - self.started_at
        seed = result["settings"].get("seed")          # none when stopped before it started
        self.status.setText(f"{'stopped' if result.get('cancelled') else 'done'} in {took:.1f} s"
                            + (f" (seed {seed})" if seed is not None else ""))
        self.generate_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.export_button.setEnabled(self.can_export())
        self.sample_saved.emit()

    def on_errored(self, error: dict) -> None:
        self.job = None
        self.status.setText("failed")
        self.message.emit("error", error["message"])
        self.generate_button.setEnabled(True)
        self.stop_button.setEnabled(False)

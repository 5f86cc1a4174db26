"""Train: choose a corpus (dialogs or drag-and-drop), read its summary, pick a preset and device, then
Start / Pause / Resume / Stop with a live loss plot per stage, progress, and short samples as the model improves.

The form's state (engine, preset, corpus, summary, whether Start is allowed) lives in a Qt-free TrainForm
(train_form.py); this page draws it and forwards what the user does to it.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from studio import format_seconds

from .controls import EngineBox
from .pen_recorder import PenRecorder
from .train_form import TrainForm, reads_pen_strokes
from .views import make_view


class TrainPage(QWidget):
    message = Signal(str, str)
    model_saved = Signal()

    def __init__(self, engines: dict, views: dict, library, worker, parent=None):
        super().__init__(parent)
        self.engines, self.library, self.worker = engines, library, worker
        self.form = TrainForm(engines, self.read_summary)
        self.job = None                 # the training run's Job while it runs
        self.run_dir: Path | None = None
        self.run_engine_and_corpus: tuple[str, str] | None = None   # what the run in run_dir trains on
        self.auto_name = ""             # the name the page gave the run from its corpus (the user may type another)
        self.paused = False
        self.train_points: tuple[list, list] = ([], [])
        self.val_points: tuple[list, list] = ([], [])
        self.setAcceptDrops(True)

        self.engine_box = EngineBox(engines, "train_engine")
        self.corpus_edit = QLineEdit(objectName="corpus_path", placeholderText="a file or folder of your material — or drop it here")
        self.file_button = QPushButton("File…")
        self.folder_button = QPushButton("Folder…")
        self.record_button = QPushButton("Record your own hand…", objectName="record_hand")
        self.record_button.setToolTip("write a few sentences with a mouse, pen or finger: they become a corpus")
        self.recorder = None            # the pen recorder dialog while it is open
        self.summary = QLabel(objectName="corpus_summary", wordWrap=True)
        self.preset_box = QComboBox(objectName="preset")
        self.preset_note = QLabel(wordWrap=True)
        self.base_box = QComboBox(objectName="start_from")
        self.base_box.setToolTip("fine-tune: begin from a trained model of this engine (it keeps that model's size "
                                 "and alphabet, and learns your corpus in far fewer steps) instead of a new one")
        self.minutes_box = QDoubleSpinBox(objectName="train_minutes", decimals=1, maximum=100_000, singleStep=5,
                                          suffix=" min", specialValueText="the preset's steps")
        self.minutes_box.setToolTip("a time budget: the learning rate's schedule is fitted to it, so the run ends "
                                    "on time with its best model (0: train the preset's number of steps)")
        self.fit_box = QCheckBox("fit the model size to that time on this machine", objectName="fit_size")
        self.fit_box.setToolTip("time a training step of each model size here first (10-20 s), and train the one "
                                "that should reach the lowest loss in the time")
        self.fit_note = QLabel(objectName="fit_note", wordWrap=True, visible=False)   # what the timing chose
        self.device_box = QComboBox(objectName="device")
        self.device_box.addItem("auto")
        self.name_edit = QLineEdit(objectName="run_name", placeholderText="name of the new model")
        self.start_button = QPushButton("Start", objectName="start_training", enabled=False)
        self.pause_button = QPushButton("Pause", objectName="pause_training", enabled=False)
        self.resume_button = QPushButton("Resume", objectName="resume_training", enabled=False)
        self.stop_button = QPushButton("Stop", objectName="stop_training", enabled=False)
        self.stage_label = QLabel(objectName="train_stage")
        self.progress = QProgressBar(objectName="train_progress")
        self.progress_label = QLabel(objectName="train_status")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "step")
        self.plot.addLegend()
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#3b7dd8", width=1.5), name="train")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen("#d8573b", width=2), symbol="o", symbolSize=6,
                                        symbolBrush="#d8573b", name="validation")
        # each validation of a sampling stage ends with a short sample, shown in the engine's own view
        self.preview_title = QLabel("Short samples appear here at each validation.", objectName="preview_title")
        self.preview_title.setWordWrap(True)         # a failed sample's message can be long
        self.previews = QStackedWidget()
        self.preview_by_engine = {name: make_view(views, engine.modality, "preview")
                                  for name, engine in engines.items()}
        for view in self.preview_by_engine.values():
            self.previews.addWidget(view)
        preview_box = QWidget()
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        preview_layout.addWidget(self.preview_title)
        preview_layout.addWidget(self.previews, 1)

        corpus_row = QHBoxLayout()
        corpus_row.addWidget(self.corpus_edit, 1)
        corpus_row.addWidget(self.file_button)
        corpus_row.addWidget(self.folder_button)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.resume_button, self.stop_button):
            buttons.addWidget(b)
        side = QWidget()
        form = QFormLayout(side)
        form.addRow("Engine", self.engine_box)
        form.addRow("Corpus", corpus_row)
        form.addRow("", self.record_button)
        form.addRow(self.summary)
        form.addRow("Preset", self.preset_box)
        form.addRow(self.preset_note)
        form.addRow("Start from", self.base_box)
        form.addRow("Train for", self.minutes_box)
        form.addRow("", self.fit_box)
        form.addRow(self.fit_note)
        form.addRow("Device", self.device_box)
        form.addRow("Name", self.name_edit)
        form.addRow(buttons)
        form.addRow(self.stage_label)
        form.addRow(self.progress)
        form.addRow(self.progress_label)
        right = QSplitter()
        right.setOrientation(Qt.Vertical)
        right.addWidget(self.plot)
        right.addWidget(preview_box)
        self.splitter = QSplitter()
        self.splitter.addWidget(side)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        QVBoxLayout(self).addWidget(self.splitter)

        self.engine_box.currentIndexChanged.connect(lambda: self.form.set_engine(self.engine_box.currentData()))
        self.preset_box.currentTextChanged.connect(self.form.set_preset)
        self.minutes_box.valueChanged.connect(self.form.set_minutes)
        self.fit_box.toggled.connect(self.form.set_fit_size)
        self.base_box.currentIndexChanged.connect(lambda: self.form.set_base(self.base_box.currentData()))
        self.corpus_edit.editingFinished.connect(lambda: self.form.set_corpus(self.corpus_edit.text()))
        self.file_button.clicked.connect(self.choose_file)
        self.folder_button.clicked.connect(self.choose_folder)
        self.record_button.clicked.connect(self.record_hand)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)
        worker.ready.connect(self.devices_known)
        self.form.on_change(self.form_changed)
        self.shown_engine = None
        self.form_changed()

    @property
    def engine(self):
        return self.form.engine

    @property
    def preview(self):
        return self.preview_by_engine[self.engine.name]

    def form_changed(self) -> None:
        """Draw the form's state; widgets are set without echoing their change back to the form."""
        if self.shown_engine != self.form.engine_name:
            self.shown_engine = self.form.engine_name
            self.engine_box.blockSignals(True)
            self.engine_box.select(self.form.engine_name)
            self.engine_box.blockSignals(False)
            self.previews.setCurrentWidget(self.preview)
            self.preset_box.blockSignals(True)
            self.preset_box.clear()
            for preset in self.form.presets.values():
                self.preset_box.addItem(preset.name, preset.description)
            self.preset_box.blockSignals(False)
            self.list_bases()
        self.preset_box.blockSignals(True)
        self.preset_box.setCurrentText(self.form.preset)
        self.preset_box.blockSignals(False)
        self.preset_note.setText(self.preset_box.currentData() or "" if self.form.base is None else
                                 "a fine-tune takes only the preset's training settings (steps, learning rate …): "
                                 "the model, and how it reads the corpus, are those of the model it starts from")
        if self.corpus_edit.text().strip() != self.form.corpus:
            self.corpus_edit.setText(self.form.corpus)
        self.summary.setText(self.form.summary_text)
        self.start_button.setEnabled(self.form.can_start)
        self.record_button.setVisible(reads_pen_strokes(self.form.engine))
        self.record_button.setEnabled(self.form.can_record)
        for w in (self.engine_box, self.corpus_edit, self.file_button, self.folder_button, self.preset_box,
                  self.device_box, self.name_edit, self.minutes_box):
            w.setEnabled(not self.form.training)
        self.base_box.setEnabled(self.base_box.count() > 1 and not self.form.training)
        # a fine-tuned model keeps its size: there is nothing to fit
        self.fit_box.setVisible(self.form.can_fit_size and self.form.base is None)
        self.fit_box.setEnabled(not self.form.training)
        self.preset_box.setEnabled(not self.form.training and not (self.form.fitting and self.fit_box.isVisible()))

    def list_bases(self) -> None:
        """What a new run can start from: nothing, or a trained model of this engine in the Library (for an
        engine with stages, its last stage is fine-tuned on the earlier ones that model holds)."""
        self.base_box.blockSignals(True)
        self.base_box.clear()
        self.base_box.addItem("a new model", None)
        for entry in self.library.entries():
            if entry.engine == self.form.engine_name and entry.ready and not entry.problem:
                self.base_box.addItem(entry.name, str(entry.checkpoint))
        self.base_box.setCurrentIndex(max(self.base_box.findData(self.form.base), 0))
        self.base_box.blockSignals(False)
        self.base_box.setEnabled(self.base_box.count() > 1 and not self.form.training)     # as form_changed does
        self.form.set_base(self.base_box.currentData())      # a model deleted since is no longer the start

    def showEvent(self, event) -> None:
        self.list_bases()              # models trained or renamed since the page was last shown
        super().showEvent(event)

    def devices_known(self, info: dict) -> None:
        self.device_box.clear()
        self.device_box.addItems(["auto", *info["devices"]])

    # --- corpus ---
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Corpus file")
        if path:
            self.set_corpus(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Corpus folder")
        if path:
            self.set_corpus(path)

    def record_hand(self) -> PenRecorder:
        """Open the pen recorder; the folder it fills becomes the corpus."""
        self.recorder = PenRecorder(self)
        self.recorder.setAttribute(Qt.WA_DeleteOnClose)
        self.recorder.recorded.connect(self.recorded)
        self.recorder.finished.connect(lambda _: setattr(self, "recorder", None))
        self.recorder.open()
        return self.recorder

    def recorded(self, folder: str) -> None:
        self.set_corpus(folder)
        self.message.emit("info", f"Your handwriting is in {folder}: train on it here, or choose one of its "
                                  "files as a style on the Create page.")

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls:
            self.set_corpus(urls[0].toLocalFile())

    def set_corpus(self, path: str) -> None:
        if self.name_edit.text() in ("", self.auto_name):      # a name the user typed is kept
            self.auto_name = Path(path).stem or "model"
            self.name_edit.setText(self.auto_name)
        self.form.set_corpus(path)

    def read_summary(self, request: int, engine: str, corpus: str, preset: str, base: str | None) -> None:
        """The form asks; the worker reads the corpus as this engine and preset (or the start model) will train
        on it."""
        job = self.worker.submit("summarize", engine=engine, data=corpus, preset=preset, start_from=base)
        job.finished.connect(partial(self.form.summary_read, request))
        job.errored.connect(partial(self.summary_failed, request))

    def summary_failed(self, request: int, error: dict) -> None:
        if request == self.form.request:
            self.message.emit("error", error["message"])
        self.form.summary_failed(request, error["message"])

    # --- run control ---
    def start(self) -> None:
        self.run_dir = self.library.new_run_dir(self.name_edit.text() or "model")
        self.launch(resume=False)

    def resume_run(self, run_dir: Path, corpus: str, engine: str) -> None:
        """Pick up a run chosen in the library. A run whose engine does not record its corpus's path goes on
        with the corpus chosen here (the trainer checks it is the one the run was trained on)."""
        if self.job is not None:
            self.message.emit("error", f"{self.run_dir.name} is training: pause or stop it first")
            return
        corpus = corpus or (self.form.corpus if self.form.engine_name == engine else "")
        if not corpus:
            self.message.emit("error", f"{run_dir.name} does not record which corpus it was trained on: choose "
                                       "it here, then resume it from the Library again")
            self.form.set_engine(engine)
            return
        self.form.set_run(engine, corpus)
        self.run_dir = run_dir
        self.name_edit.setText(run_dir.name)
        self.launch(resume=True)

    def launch(self, resume: bool) -> None:
        self.run_engine_and_corpus = (self.engine.name, self.form.corpus)
        self.job = self.worker.submit("train", engine=self.engine.name, data=self.form.corpus, out=str(self.run_dir),
                                      preset=self.form.preset, resume=resume, device=self.device_box.currentText(),
                                      start_from=None if resume else self.form.base,
                                      minutes=self.form.minutes or None,
                                      fit_size=self.form.fitting and self.fit_box.isVisible())
        self.fit_note.hide()
        self.job.yielded.connect(self.on_events)
        self.job.finished.connect(self.on_finished)
        self.job.errored.connect(self.on_errored)
        self.set_running(True)
        self.progress_label.setText("starting…")

    def pause(self) -> None:
        self.paused = True
        self.stop_job()

    def stop(self) -> None:
        self.paused = False
        self.stop_job()

    def stop_job(self) -> None:
        if self.job is not None:
            self.job.cancel()
            # a step is never cut short (exact resume): on a slow CPU a big preset's step takes seconds
            self.progress_label.setText("stopping after this step, then saving a checkpoint…")

    def resume(self) -> None:
        """Go on with the paused run, on what it trained on, whatever the form was changed to meanwhile."""
        if not self.run_dir.is_dir():
            self.resume_button.setEnabled(False)
            self.message.emit("error", f"{self.run_dir.name} was renamed or deleted in the Library: resume it from "
                                       "there")
            return
        if (self.form.engine_name, self.form.corpus) != self.run_engine_and_corpus:
            self.form.set_run(*self.run_engine_and_corpus)
        self.name_edit.setText(self.run_dir.name)
        self.launch(resume=True)

    def set_running(self, running: bool) -> None:
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.resume_button.setEnabled(False)
        self.form.set_training(running)

    # --- the run's events ---
    def on_events(self, items: list) -> None:
        for item in items:
            kind = item["type"]
            if kind == "StageStarted":
                self.stage_started(item)
            elif kind == "Progress":
                self.progress.setMaximum(item["max_steps"])      # 0 (a busy bar) until a budget is fitted
                self.progress.setValue(item["step"])
                of = f"/{item['max_steps']:,}" if item["max_steps"] else ""
                self.progress_label.setText(
                    f"step {item['step']:,}{of} · loss {item['loss']:.3f} · "
                    f"{item['units_per_second']:,.0f} {item['unit']}/s · ETA {format_seconds(item['eta'])}")
                if item["logged"]:
                    self.train_points[0].append(item["step"])
                    self.train_points[1].append(item["loss"])
            elif kind == "Validating":
                # at most `budget` units: a small corpus's held-out split may end sooner
                self.progress_label.setText(f"validating at step {item['step']:,}: {item['units']:,} held-out "
                                            f"units read (at most {item['budget']:,})")
            elif kind == "Evaluation":
                self.val_points[0].append(item["step"])
                self.val_points[1].append(item["val_loss"])
            elif kind == "Preview" and item["error"]:
                self.preview_title.setText(f"No sample at step {item['step']} (training goes on): {item['error']}")
                self.preview.begin(self.engine.preview_settings())      # not the last step's under it
                self.preview.end()
            elif kind == "Preview":
                self.preview_title.setText(f"Sample at step {item['step']}:")
                self.preview.begin(self.engine.preview_settings())
                self.preview.add(item["chunks"])
                self.preview.end()
            elif kind == "PresetChosen":
                self.fit_note.setText(fit_description(item))
                self.fit_note.show()
            elif kind == "CheckpointSaved":
                self.model_saved.emit()
        self.train_curve.setData(*self.train_points)
        self.val_curve.setData(*self.val_points)
        steps = set(self.train_points[0]) | set(self.val_points[0])
        if len(steps) < 2:
            # autorange would centre a lone point in half a step either side ("step (x0.001)", -400 to 400):
            # show the steps ahead instead, the whole schedule when it is known
            first = min(steps, default=0)
            self.plot.setXRange(first, max(self.progress.maximum(), first + 10), padding=0.02)
        else:
            self.plot.enableAutoRange(x=True)

    def stage_started(self, item: dict) -> None:
        """A stage's plot starts from its own history (empty unless resumed), in its own loss unit."""
        self.stage_label.setText(f"stage {item['index']}/{item['count']}: {item['title']}")
        history = item["history"]
        self.train_points = (list(history["steps"]), list(history["losses"]))
        self.val_points = (list(history["val_steps"]), list(history["val_losses"]))
        self.plot.setLabel("left", f"loss ({item['loss_unit']})")
        self.progress.setMaximum(item["max_steps"])
        self.progress.setValue(item["step"])

    def on_finished(self, result: dict) -> None:
        self.job = None
        self.set_running(False)
        if not self.saved_any():          # stopped before its first checkpoint (while the corpus was read)
            self.library.discard_unsaved(self.run_dir)
            self.progress_label.setText("stopped before anything was saved")
            return
        stopped = result.get("reason") == "stopped"
        self.resume_button.setEnabled(stopped and self.paused)
        self.progress_label.setText(f"{'paused' if self.resume_button.isEnabled() else result.get('reason')} "
                                    f"at step {result.get('step')}; saved in {self.run_dir}")
        self.model_saved.emit()

    def saved_any(self) -> bool:
        return self.run_dir is not None and any(self.run_dir.glob("**/last.safetensors"))

    def on_errored(self, error: dict) -> None:
        self.job = None
        self.set_running(False)
        resumable = self.saved_any()
        if not resumable and self.run_dir is not None:
            self.library.discard_unsaved(self.run_dir)
        self.resume_button.setEnabled(resumable)
        self.progress_label.setText("failed" + ("; the last checkpoint is kept — Resume continues from it"
                                                if resumable else ""))
        self.message.emit("error", error["message"])


def fit_description(chosen: dict) -> str:
    """A PresetChosen event in words: the size trained, and what each size should have reached."""
    best, *others = chosen["candidates"]
    rest = ", ".join(f"{c['preset']} {c['expected_loss']:.3f}" for c in others)
    return (f"Training {best['preset']}: {best['units_per_second']:,.0f} {chosen['unit']}s/s here, expected "
            f"{best['expected_loss']:.3f} {chosen['loss_unit']} on {chosen['curve_corpus']} in the time"
            + (f" (others: {rest})" if rest else ""))

"""Train: choose a corpus (dialogs or drag-and-drop), read its summary, pick a preset and device, then
Start / Pause / Resume / Stop with a live loss plot, progress, and short samples as the model improves."""
from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from studio import format_seconds

from .audio_view import AudioView
from .controls import EngineBox
from .views import view_for


class TrainPage(QWidget):
    message = Signal(str, str)
    model_saved = Signal()

    def __init__(self, engines: dict, library, worker, parent=None):
        super().__init__(parent)
        self.engines, self.library, self.worker = engines, library, worker
        self.job: int | None = None
        self.summary_job: int | None = None
        self.run_dir: Path | None = None
        self.corpus_ok = False
        self.paused = False
        self.train_points: tuple[list, list] = ([], [])
        self.val_points: tuple[list, list] = ([], [])
        self.setAcceptDrops(True)

        self.engine_box = EngineBox(engines, "train_engine")
        self.corpus_edit = QLineEdit(objectName="corpus_path", placeholderText="a file or folder of your material — or drop it here")
        self.file_button = QPushButton("File…")
        self.folder_button = QPushButton("Folder…")
        self.summary = QLabel("Choose a corpus to see its summary.", objectName="corpus_summary", wordWrap=True)
        self.preset_box = QComboBox(objectName="preset")
        self.preset_note = QLabel(wordWrap=True)
        self.device_box = QComboBox(objectName="device")
        self.device_box.addItem("auto")
        self.name_edit = QLineEdit(objectName="run_name", placeholderText="name of the new model")
        self.start_button = QPushButton("Start", objectName="start_training", enabled=False)
        self.pause_button = QPushButton("Pause", objectName="pause_training", enabled=False)
        self.resume_button = QPushButton("Resume", objectName="resume_training", enabled=False)
        self.stop_button = QPushButton("Stop", objectName="stop_training", enabled=False)
        self.progress = QProgressBar(objectName="train_progress")
        self.progress_label = QLabel(objectName="train_status")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("left", "loss (nats per unit)")
        self.plot.setLabel("bottom", "step")
        self.plot.addLegend()
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#3b7dd8", width=1.5), name="train")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen("#d8573b", width=2), symbol="o", symbolSize=6,
                                        symbolBrush="#d8573b", name="validation")
        # each validation ends with a short sample, shown in the engine's own view (not auto-played)
        self.preview_title = QLabel("Short samples appear here at each validation.", objectName="preview_title")
        self.previews = QStackedWidget()
        self.preview_by_engine = {name: view_for(engine.modality) for name, engine in engines.items()}
        for view in self.preview_by_engine.values():
            if isinstance(view, AudioView):
                view.live_box.setChecked(False)      # a preview plays when asked, not in the middle of training
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
        form.addRow(self.summary)
        form.addRow("Preset", self.preset_box)
        form.addRow(self.preset_note)
        form.addRow("Device", self.device_box)
        form.addRow("Name", self.name_edit)
        form.addRow(buttons)
        form.addRow(self.progress)
        form.addRow(self.progress_label)
        right = QSplitter()
        right.setOrientation(pg.QtCore.Qt.Vertical)
        right.addWidget(self.plot)
        right.addWidget(preview_box)
        self.splitter = QSplitter()
        self.splitter.addWidget(side)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        QVBoxLayout(self).addWidget(self.splitter)

        self.engine_box.currentIndexChanged.connect(self.engine_changed)
        self.preset_box.currentIndexChanged.connect(self.preset_changed)
        self.corpus_edit.editingFinished.connect(self.summarize)
        self.file_button.clicked.connect(self.choose_file)
        self.folder_button.clicked.connect(self.choose_folder)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)
        worker.ready.connect(self.devices_known)
        worker.yielded.connect(self.on_yielded)
        worker.finished.connect(self.on_finished)
        worker.errored.connect(self.on_errored)
        self.engine_changed()

    @property
    def engine(self):
        return self.engine_box.engine

    @property
    def preview(self):
        return self.preview_by_engine[self.engine.name]

    def engine_changed(self) -> None:
        self.previews.setCurrentWidget(self.preview)
        self.preset_box.clear()
        for preset in self.engine.presets().values():
            self.preset_box.addItem(preset.name, preset.description)
        self.preset_box.setCurrentText(self.engine.default_preset)

    def preset_changed(self) -> None:
        self.preset_note.setText(self.preset_box.currentData() or "")

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

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls:
            self.set_corpus(urls[0].toLocalFile())

    def set_corpus(self, path: str) -> None:
        self.corpus_edit.setText(path)
        if not self.name_edit.text():
            self.name_edit.setText(Path(path).stem or "model")
        self.summarize()

    def summarize(self) -> None:
        path = self.corpus_edit.text().strip()
        if not path:
            return
        self.corpus_ok = False
        self.start_button.setEnabled(False)
        self.summary.setText("reading…")
        self.summary_job = self.worker.submit("summarize", engine=self.engine.name, data=path,
                                              preset=self.preset_box.currentText() or None)

    def show_summary(self, s: dict) -> None:
        warnings = s.get("warnings", [])
        shown = [f"⚠ {w}" for w in warnings[:8]] + ([f"⚠ … and {len(warnings) - 8} more"] if len(warnings) > 8 else [])
        self.summary.setText("\n".join(s.get("lines", []) + shown))

    # --- run control ---
    def start(self) -> None:
        self.run_dir = self.library.new_run_dir(self.name_edit.text() or "model")
        self.launch(resume=False)

    def resume_run(self, run_dir: Path, corpus: str, engine: str) -> None:
        """Pick up a run chosen in the library."""
        if self.job is not None:
            self.message.emit("error", f"{self.run_dir.name} is training: pause or stop it first")
            return
        self.engine_box.select(engine)
        self.corpus_edit.setText(corpus)
        self.run_dir = run_dir
        self.name_edit.setText(run_dir.name)
        self.launch(resume=True)

    def launch(self, resume: bool) -> None:
        if not resume:
            self.train_points, self.val_points = ([], []), ([], [])
            self.train_curve.setData([], [])
            self.val_curve.setData([], [])
        self.job = self.worker.submit("train", engine=self.engine.name, data=self.corpus_edit.text().strip(),
                                      out=str(self.run_dir), preset=self.preset_box.currentText(), resume=resume,
                                      device=self.device_box.currentText())
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
            self.worker.cancel(self.job)
            self.progress_label.setText("stopping: saving a checkpoint…")

    def resume(self) -> None:
        self.launch(resume=True)

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running and self.corpus_ok)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.resume_button.setEnabled(False)
        for w in (self.engine_box, self.corpus_edit, self.file_button, self.folder_button, self.preset_box,
                  self.device_box, self.name_edit):
            w.setEnabled(not running)

    # --- worker events ---
    def on_yielded(self, job: int, items: list) -> None:
        if job != self.job:
            return
        for item in items:
            kind = item["type"]
            if kind == "History":
                self.train_points = (list(item["steps"]), list(item["losses"]))
                self.val_points = (list(item["val_steps"]), list(item["val_losses"]))
            elif kind == "Progress":
                self.progress.setMaximum(item["max_steps"])
                self.progress.setValue(item["step"])
                self.progress_label.setText(
                    f"step {item['step']:,}/{item['max_steps']:,} · loss {item['loss']:.3f} · "
                    f"{item['units_per_second']:,.0f} {item['unit']}/s · ETA {format_seconds(item['eta'])}")
                if item["logged"]:
                    self.train_points[0].append(item["step"])
                    self.train_points[1].append(item["loss"])
            elif kind == "Evaluation":
                self.val_points[0].append(item["step"])
                self.val_points[1].append(item["val_loss"])
            elif kind == "Preview":
                self.preview_title.setText(f"Sample at step {item['step']}:")
                self.preview.begin(self.engine.preview_settings())
                self.preview.add(item["chunks"])
                self.preview.end()
            elif kind == "CheckpointSaved":
                self.model_saved.emit()
        self.train_curve.setData(*self.train_points)
        self.val_curve.setData(*self.val_points)

    def on_finished(self, job: int, result: dict) -> None:
        if job == self.summary_job:
            self.summary_job = None
            self.corpus_ok = True
            self.show_summary(result)
            self.start_button.setEnabled(self.job is None)
            return
        if job != self.job:
            return
        self.job = None
        self.set_running(False)
        stopped = result.get("reason") == "stopped"
        self.resume_button.setEnabled(stopped and self.paused)
        self.progress_label.setText(f"{'paused' if self.resume_button.isEnabled() else result.get('reason')} "
                                    f"at step {result.get('step')}; saved in {self.run_dir}")
        self.model_saved.emit()

    def on_errored(self, job: int, error: dict) -> None:
        if job == self.summary_job:
            self.summary_job = None
            self.summary.setText(f"✖ {error['message']}")
            self.message.emit("error", error["message"])
            return
        if job != self.job:
            return
        self.job = None
        self.set_running(False)
        resumable = self.run_dir is not None and (self.run_dir / "last.safetensors").exists()
        self.resume_button.setEnabled(resumable)
        self.progress_label.setText("failed" + ("; the last checkpoint is kept — Resume continues from it"
                                                if resumable else ""))
        self.message.emit("error", error["message"])

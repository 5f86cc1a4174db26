"""Desktop app benchmark: time to a shown window, and the event loop's longest stall while the worker trains,
while it streams text and while it streams audio that plays live. Prints a table, writes bench/results/app.json.

    .venv/bin/python bench/app.py            # offscreen; ~2 minutes

A stall is the longest gap between two ticks of a 5 ms QTimer: how long the window could not react.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHAKESPEARE = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"

STARTUP = """
import time; t0 = time.perf_counter()
import sys
from PySide6.QtWidgets import QApplication
from engines import available_engines
from studio.app.main_window import MainWindow
app = QApplication([])
window = MainWindow(available_engines())
window.show()
app.processEvents()
print(time.perf_counter() - t0, "torch" in sys.modules)
window.close()
"""


def startup_seconds() -> tuple[float, bool]:
    """Interpreter start to window shown, in a fresh process (the time `studio` takes, less python's boot)."""
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True, cwd=ROOT)
        seconds, torch_loaded = out.stdout.split()
        runs.append(float(seconds))
    return min(runs), torch_loaded == "True"


class StallMeter:
    def __init__(self, app):
        from PySide6.QtCore import QTimer
        self.app, self.last, self.worst, self.ticks = app, None, 0.0, 0
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self.tick)

    def tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last, self.ticks = now, self.ticks + 1

    def run_until(self, condition, seconds):
        self.last, self.worst = None, 0.0
        self.timer.start()
        end = time.time() + seconds
        while not condition() and time.time() < end:
            self.app.processEvents()
            time.sleep(0.001)
        self.timer.stop()
        return self.worst


def stop_during_validation(worker, meter) -> float:
    """Seconds from Stop, pressed while a validation runs, to the job's end (a resumable checkpoint saved)."""
    out = Path(tempfile.mkdtemp()) / "run"
    job = worker.submit("train", engine="text", data=str(SHAKESPEARE), out=str(out), preset="small")
    pressed = []

    def on_items(items):
        if not pressed and any(item.get("type") == "Validating" for item in items):
            pressed.append(time.perf_counter())
            job.cancel()

    job.yielded.connect(on_items)
    meter.run_until(lambda: job.done, 600)
    return time.perf_counter() - pressed[0]


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.playback import use_null_sound_output
    use_null_sound_output()      # a real PortAudio stream, silent, on any machine
    os.environ["SEQUENCE_STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-bench-")
    startup, torch_at_start = startup_seconds()

    from PySide6.QtWidgets import QApplication

    from engines import available_engines
    from studio.app.main_window import MainWindow
    app = QApplication([])
    window = MainWindow(available_engines())
    window.show()
    meter = StallMeter(app)
    meter.run_until(lambda: bool(window.worker.devices), 60)

    create = window.create_page
    create.engine_box.select("text")
    create.controls.set_values({"length": 20_000, "seed": 1})
    create.generate()
    sampling_stall = meter.run_until(lambda: create.job is None, 120)
    streamed = len(create.view.texts()[0])

    create.engine_box.select("audio")
    create.controls.set_values({"seconds": 20.0, "seed": 1, "label": "7"})
    create.generate()
    audio_stall = meter.run_until(lambda: create.job is None, 120)
    player = create.view.player
    meter.run_until(lambda: player is None or player.drained.is_set(), 60)
    audio_played = player.played / player.rate if player else 0.0
    audio_pauses = player.underruns if player else None

    train = window.train_page
    train.engine_box.select("text")
    train.set_corpus(str(SHAKESPEARE))
    meter.run_until(lambda: train.start_button.isEnabled(), 60)
    train.preset_box.setCurrentText("small")
    meter.run_until(lambda: train.start_button.isEnabled(), 120)     # the summary re-read for this preset
    train.start()
    # the step-0 validation, then 30 steps: on a CPU without bf16 the next validation is many minutes away
    training_stall = meter.run_until(lambda: train.progress.value() >= 30 or train.job is None, 600)
    steps = train.progress.value()
    stop_pressed = time.perf_counter()
    train.stop()
    meter.run_until(lambda: train.job is None, 60)
    stop_seconds = time.perf_counter() - stop_pressed     # includes writing the resumable checkpoint
    validation_stop_seconds = stop_during_validation(window.worker, meter)
    window.close()

    from machine import describe, machine
    report = {"machine": machine(), "startup_seconds": startup, "torch_imported_at_startup": torch_at_start,
              "sampling_stall_ms": sampling_stall * 1000, "sampling_chars": streamed,
              "audio_stall_ms": audio_stall * 1000, "audio_seconds_played": audio_played,
              "audio_playback_pauses": audio_pauses,
              "training_stall_ms": training_stall * 1000, "training_steps": steps,
              "training_stop_seconds": stop_seconds, "stop_during_validation_seconds": validation_stop_seconds}
    print(describe(report["machine"]))
    print(f"{'window shown after':28} {startup:8.2f} s   (torch imported: {torch_at_start})")
    print(f"{'longest stall, sampling':28} {sampling_stall * 1000:8.1f} ms  ({streamed:,} chars streamed)")
    print(f"{'longest stall, audio':28} {audio_stall * 1000:8.1f} ms  (20 s of the bundled model, played live "
          f"into the null sink: {audio_played:.1f} s played, {audio_pauses} pauses)")
    print(f"{'longest stall, training':28} {training_stall * 1000:8.1f} ms  ({steps} steps of 'small', "
          f"incl. the step-0 validation)")
    print(f"{'Stop to stopped, training':28} {stop_seconds:8.2f} s   (checkpoint written)")
    print(f"{'Stop to stopped, validating':28} {validation_stop_seconds:8.2f} s   ('small', pressed during its "
          f"first validation; checkpoint written)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "app.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS / 'app.json'}")


if __name__ == "__main__":
    main()

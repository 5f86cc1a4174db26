"""Screenshots of each page of the studio, for docs/screenshots/. Drives the real window like a user.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshots.py

Uses a throw-away data folder; samples the bundled models (ink and video when they are bundled), fills the pen
recorder with sentences written in the Hershey cursive font through simulated tablet events, and trains the
tiny text preset for a minute on Tiny Shakespeare (from ../shared).
"""
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CORPUS = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"


def main() -> None:
    os.environ["SEQUENCE_STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-shots-")
    from PySide6.QtWidgets import QApplication

    from engines import available_engines
    from studio.app.main_window import MainWindow
    from studio.app.pen_recorder import SENTENCES
    sys.path.insert(0, str(ROOT / "tests"))
    from test_ink_app import handwriting, pen_device, write_with_tablet      # the tests' simulated tablet

    app = QApplication(sys.argv)
    window = MainWindow(available_engines())
    window.resize(1280, 760)
    window.show()

    def wait(condition, seconds):
        end = time.time() + seconds
        while not condition() and time.time() < end:
            app.processEvents()
            time.sleep(0.01)
        if not condition():
            raise SystemExit("timed out")

    def shoot(name, widget=window):
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        OUT.mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(OUT / f"{name}.png"))
        print("saved", OUT / f"{name}.png")

    wait(lambda: bool(window.worker.devices), 60)
    create = window.create_page
    create.engine_box.select("text")
    create.controls.set_values({"primer": "ROMEO:\n", "length": 700, "seed": 1234, "temperature": 0.75})
    create.generate()
    wait(lambda: create.job is None, 120)
    shoot("create")

    create.engine_box.select("audio")
    create.controls.set_values({"label": "7 jackson", "seconds": 1.0, "seed": 3})
    create.generate()
    wait(lambda: create.job is None, 120)
    shoot("create-audio")

    if window.engines["video"].bundled_models():
        create.engine_box.select("video")
        create.controls.set_values({"frames": 32, "variations": 3, "seed": 11})
        create.generate()
        wait(lambda: create.job is None, 600)
        view = create.view
        view.variation_box.setCurrentIndex(1)
        view.pause()
        view.show_frame(20)
        shoot("video-create")

    if window.engines["ink"].bundled_models():
        create.engine_box.select("ink")
        create.controls.set_values({"text": "Sequence Studio writes\nin a hand it learned.", "bias": 2.0, "seed": 1})
        create.generate()
        wait(lambda: create.job is None, 300)
        shoot("ink-create")

    # the pen recorder: two sentences saved and the third being written
    train = window.train_page
    window.tabs.setCurrentWidget(train)
    train.engine_box.select("ink")
    recorder = train.record_hand()
    recorder.name_edit.setText("Sam")
    pen = pen_device()
    for i in range(2):
        write_with_tablet(recorder.pad, handwriting(SENTENCES[i], jitter=0.3, seed=i), pen)
        recorder.save_and_next()
    strokes = handwriting(SENTENCES[2], jitter=0.3, seed=2)
    write_with_tablet(recorder.pad, strokes[:len(strokes) * 2 // 3], pen)
    shoot("ink-recorder", recorder)
    recorder.reject()

    train.engine_box.select("text")
    train.set_corpus(str(CORPUS))
    wait(lambda: train.start_button.isEnabled(), 60)
    train.preset_box.setCurrentText("tiny")
    wait(lambda: train.start_button.isEnabled(), 60)     # a new preset re-reads the corpus' summary first
    train.start()
    wait(lambda: len(train.val_points[0]) >= 3, 300)
    shoot("train")
    train.stop()
    wait(lambda: train.job is None, 60)

    window.library_page.refresh()
    window.tabs.setCurrentWidget(window.library_page)
    shoot("library")
    window.history_page.refresh()
    window.tabs.setCurrentWidget(window.history_page)
    shoot("history")
    window.close()


if __name__ == "__main__":
    main()

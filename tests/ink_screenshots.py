"""Screenshots of handwriting in the studio, for docs/screenshots/: the pen recorder and the Create page.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tests/ink_screenshots.py [--model CHECKPOINT]
                                                                                     [--recorder-only]

Drives the real window in a throw-away data folder. The recorder is filled with a few sentences written in the
Hershey cursive font through simulated tablet events. Create writes with the bundled ink model, or the
checkpoint given; with neither, it trains the tiny preset on the shared UNIPEN lines first, and the picture
shows an untrained hand (said on stdout).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
UNIPEN = ROOT.parent / "shared" / "data" / "handwriting" / "unipen_cursive"
TEXT = "Handwriting, drawn live by a network: any text,\nline after line, in the hand of a writer."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="an ink checkpoint to write with (default: the bundled one)")
    parser.add_argument("--recorder-only", action="store_true", help="only the recorder's picture")
    args = parser.parse_args()
    # a throw-away home, so that folders read as on a person's machine (~/.local/share/sequence-studio/...)
    home = tempfile.mkdtemp(prefix="studio-ink-shots-")
    os.environ.pop("SEQUENCE_STUDIO_HOME", None)
    os.environ.update(HOME=home, XDG_DATA_HOME=os.path.join(home, ".local", "share"))
    sys.path.insert(0, str(ROOT / "tests"))
    from PySide6.QtWidgets import QApplication

    from engines import available_engines
    from studio.app.main_window import MainWindow
    from studio.app.pen_recorder import SENTENCES
    from test_ink_app import handwriting, pen_device, write_with_tablet

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

    def shoot(widget, name):
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        OUT.mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(OUT / f"{name}.png"))
        print("saved", OUT / f"{name}.png")

    wait(lambda: bool(window.worker.devices), 60)

    # the recorder, two sentences saved and the third being written
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
    shoot(recorder, "ink-recorder")
    recorder.reject()                # three lines are not yet a corpus to train on
    if args.recorder_only:
        window.close()
        return

    # Create: the bundled model (or the one given, or a tiny one trained now) writes two lines
    create = window.create_page
    if args.model:
        run = window.library.root / Path(args.model).stem
        run.mkdir(parents=True)
        shutil.copy(args.model, run / "best.safetensors")
        window.models_changed()
    create.engine_box.select("ink")
    if create.model_box.count() == 0:
        print("no ink model: training the tiny preset on UNIPEN for the picture (it writes no words)")
        train.set_corpus(str(UNIPEN))
        train.name_edit.setText("unipen-tiny")
        wait(lambda: train.start_button.isEnabled(), 120)
        train.preset_box.setCurrentText("tiny")
        wait(lambda: train.start_button.isEnabled(), 120)
        train.start()
        wait(lambda: train.job is None, 600)
        create.refresh_models()
    window.tabs.setCurrentWidget(create)
    create.controls.set_values({"text": TEXT, "seed": 7, "bias": 1.5, "width": 50})
    create.generate()
    wait(lambda: create.job is None, 600)
    shoot(window, "ink-create")
    window.close()


if __name__ == "__main__":
    main()

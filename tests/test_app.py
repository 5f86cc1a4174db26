"""The desktop app, driven as a person drives it: the real main window (offscreen) and a real worker process."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from PySide6.QtCore import Qt

from conftest import write_corpus
from engines import available_engines

pytest.importorskip("pytestqt")


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQUENCE_STUDIO_HOME", str(tmp_path / "home"))
    from studio.app.main_window import MainWindow
    win = MainWindow(available_engines())
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.worker.ready, timeout=60_000):
        pass
    yield win
    win.close()
    assert not win.worker.process.is_alive()


def collect(win):
    """Record what the worker sends, for assertions about streaming."""
    seen = []
    win.worker.yielded.connect(lambda job, items: seen.extend(items))
    return seen


def click(qtbot, button):
    assert button.isVisible() and button.isEnabled(), button.text()   # as a person sees it
    qtbot.mouseClick(button, Qt.LeftButton)


def test_generate_streams_text_from_the_bundled_model_and_exports(window, qtbot, tmp_path):
    page = window.create_page
    page.engine_box.select("text")
    assert page.model_box.count() >= 1 and "bundled" in page.model_box.currentText()
    page.controls.fields["length"].setValue(400)
    page.controls.fields["seed"].set_value(42)
    items = collect(window)
    batches = []
    window.worker.yielded.connect(lambda job, chunk_list: batches.append(len(page.view.texts()[0])))
    click(qtbot, page.generate_button)
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        pass
    text = page.view.texts()[0]
    assert len(text) == 400
    assert len([n for n in batches if 0 < n < 400]) >= 1      # text appeared before generation finished
    assert sum(1 for i in items if i["type"] == "TextChunk") == 400

    exported = page.export_to(tmp_path / "sample.txt")
    assert exported.read_text(encoding="utf-8") == text
    settings = json.loads((tmp_path / "sample.txt.json").read_text())
    assert settings["seed"] == 42 and settings["length"] == 400 and settings["engine"] == "text"

    # the sample is in History; replaying it gives the same text
    history = window.history_page
    window.tabs.setCurrentWidget(history)
    assert history.list.count() == 1
    click(qtbot, history.replay_button)
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        pass
    assert page.view.texts()[0] == text


def test_stop_ends_generation_within_a_second(window, qtbot):
    page = window.create_page
    page.engine_box.select("text")
    page.controls.fields["length"].setValue(1_000_000)
    click(qtbot, page.generate_button)
    qtbot.waitUntil(lambda: len(page.view.texts()[0]) > 50, timeout=60_000)
    with qtbot.waitSignal(window.worker.finished, timeout=1_000) as finished:
        click(qtbot, page.stop_button)
    assert finished.args[1]["cancelled"] is True
    assert page.generate_button.isEnabled()


def start_tiny_training(window, qtbot, corpus, engine="text", expected_summary=("20,000 characters",
                                                                                  "very small corpus")):
    """On the Train page: choose the engine and corpus, check its summary, start the tiny preset on the CPU."""
    page = window.train_page
    window.tabs.setCurrentWidget(page)
    page.engine_box.select(engine)
    page.set_corpus(str(corpus))
    qtbot.waitUntil(lambda: page.start_button.isEnabled(), timeout=60_000)
    for words in expected_summary:
        assert words in page.summary.text()
    page.preset_box.setCurrentText("tiny")
    page.device_box.setCurrentText("cpu")
    click(qtbot, page.start_button)
    return page


def test_train_pause_resume_with_live_plot(window, qtbot, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    page = start_tiny_training(window, qtbot, corpus)
    qtbot.waitUntil(lambda: len(page.train_points[0]) >= 3 and len(page.val_points[0]) >= 1, timeout=60_000)
    assert page.progress.value() > 0 and "chars/s" in page.progress_label.text()
    with qtbot.waitSignal(window.worker.finished, timeout=5_000):
        click(qtbot, page.pause_button)
    stopped_at = page.progress.value()
    assert page.resume_button.isEnabled() and "paused" in page.progress_label.text()
    assert page.run_dir is not None and (page.run_dir / "last.safetensors").exists()

    click(qtbot, page.resume_button)
    with qtbot.waitSignal(window.worker.finished, timeout=120_000):
        pass
    assert page.progress.value() == page.progress.maximum() > stopped_at
    assert page.val_points[1][-1] < page.val_points[1][0]          # the model learnt
    assert page.preview_title.text() == "Sample at step 300:" and len(page.preview.texts()[0]) == 200
    x, y = page.val_curve.getData()
    assert len(x) >= 3

    assert "corpus" in [e.name for e in window.library_page.entries]      # the library lists it at once
    window.create_page.engine_box.select("text")
    assert window.create_page.model_box.findText("corpus") >= 0               # and Create can sample it


def test_a_corrupt_corpus_is_explained_in_the_window(window, qtbot, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Grüße aus Köln\n".encode("latin-1") * 50)
    page = window.train_page
    page.engine_box.select("text")
    page.set_corpus(str(bad))
    qtbot.waitUntil(lambda: window.messages.isVisible(), timeout=30_000)
    text = window.messages.label.text()
    assert "latin1.txt" in text and "not UTF-8" in text and "byte offset 2" in text
    assert "Traceback" not in text and not page.start_button.isEnabled()


def test_killing_the_worker_mid_training_is_survived_and_the_run_resumes(window, qtbot, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    page = start_tiny_training(window, qtbot, corpus)
    qtbot.waitUntil(lambda: len(page.train_points[0]) >= 2, timeout=60_000)
    old_pid = window.worker.pid
    with qtbot.waitSignal(window.worker.crashed, timeout=10_000):
        os.kill(old_pid, signal.SIGKILL)
    assert window.messages.isVisible() and "stopped unexpectedly" in window.messages.label.text()
    with qtbot.waitSignal(window.worker.ready, timeout=60_000):
        pass
    assert window.worker.pid != old_pid
    assert (page.run_dir / "last.safetensors").exists() and page.resume_button.isEnabled()
    click(qtbot, page.resume_button)
    with qtbot.waitSignal(window.worker.finished, timeout=120_000) as done:
        pass
    assert done.args[1]["reason"] == "completed"


def test_library_rename_and_delete(window, qtbot, tmp_path):
    from engines.core.checkpoint import save_checkpoint
    import torch
    run = window.library.root / "my-model"
    save_checkpoint(run / "best.safetensors", {"model.w": torch.zeros(1)},
                    {"engine": "text", "engine_version": 1, "step": 7, "metrics": {"best_val_loss": 1.5}})
    page = window.library_page
    page.refresh()
    row = [e.name for e in page.entries].index("my-model")
    page.select_row(row)
    assert page.actions["Rename…"].isEnabled() and not page.actions["Resume training"].isEnabled()
    page.rename(new_name="renamed")
    assert "renamed" in [e.name for e in page.entries] and not run.exists()
    page.select_row([e.name for e in page.entries].index("renamed"))
    page.delete(confirmed=True)
    assert "renamed" not in [e.name for e in page.entries]
    bundled = [i for i, e in enumerate(page.entries) if e.bundled]
    page.select_row(bundled[0])
    assert not page.actions["Delete…"].isEnabled()


def test_without_a_display_the_app_explains_instead_of_aborting():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "studio"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "needs a display" in result.stderr and "xvfb-run" in result.stderr


def test_the_gui_process_never_imports_torch(tmp_path):
    code = textwrap.dedent("""
        import sys
        from PySide6.QtWidgets import QApplication
        from engines import available_engines
        from studio.app.main_window import MainWindow
        app = QApplication([])
        window = MainWindow(available_engines())
        window.show()
        app.processEvents()
        print("torch" in sys.modules)
        window.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "SEQUENCE_STUDIO_HOME": str(tmp_path)})
    assert out.stdout.strip() == "False", out.stderr


def test_the_worker_exits_when_the_window_process_dies(tmp_path):
    code = textwrap.dedent("""
        import os, signal, time
        from PySide6.QtWidgets import QApplication
        from engines import available_engines
        from studio.app.main_window import MainWindow
        if __name__ == "__main__":
            app = QApplication([])
            window = MainWindow(available_engines())
            while not window.worker.devices:
                app.processEvents(); time.sleep(0.01)
            print(window.worker.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    script = tmp_path / "gui.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "SEQUENCE_STUDIO_HOME": str(tmp_path)})
    worker_pid = int(out.stdout.split()[0])

    def alive():
        try:
            with open(f"/proc/{worker_pid}/status") as f:
                return "State:\tZ" not in f.read()
        except FileNotFoundError:
            return False

    deadline = time.time() + 10
    while alive() and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(), "the worker outlived the window's process"


def test_controls_and_layout_persist_between_launches(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQUENCE_STUDIO_HOME", str(tmp_path / "home"))
    from studio.app.main_window import MainWindow
    first = MainWindow(available_engines())
    qtbot.addWidget(first)
    first.create_page.engine_box.select("audio")
    first.create_page.controls.fields["label"].setText("7 jackson")
    first.create_page.engine_box.select("text")
    first.create_page.controls.fields["temperature"].setValue(1.3)
    first.create_page.controls.fields["primer"].setText("Once upon")
    first.tabs.setCurrentIndex(2)
    first.close()
    second = MainWindow(available_engines())
    qtbot.addWidget(second)
    assert second.create_page.engine.name == "text"                  # the engine last used
    assert second.create_page.controls.fields["temperature"].value() == pytest.approx(1.3)
    assert second.create_page.controls.fields["primer"].text() == "Once upon"
    second.create_page.engine_box.select("audio")                  # each engine keeps its own settings
    assert second.create_page.controls.fields["label"].text() == "7 jackson"
    assert second.create_page.controls.fields["temperature"].value() == pytest.approx(1.0)
    assert second.tabs.currentIndex() == 2
    assert (tmp_path / "home" / "settings.ini").exists()
    second.close()


def test_a_corpus_dropped_on_the_train_page_is_read(window, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent
    corpus = write_corpus(tmp_path / "dropped.txt")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(corpus))])
    page = window.train_page
    page.engine_box.select("text")
    page.dropEvent(QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert page.corpus_edit.text() == str(corpus) and page.name_edit.text() == "dropped"
    qtbot.waitUntil(lambda: page.start_button.isEnabled(), timeout=30_000)
    assert "20,000 characters" in page.summary.text()


def test_the_text_view_survives_a_long_stream(qtbot):
    from studio.app.views import TextView
    view = TextView()
    qtbot.addWidget(view)
    view.begin({"variations": 2})
    for start in range(0, 30_000, 100):
        view.add([{"type": "TextChunk", "text": ["ab"[i % 2], "c"], "prob": [i / 30_000, 0.9]}
                  for i in range(start, start + 100)])
    assert [len(t) for t in view.texts()] == [30_000, 30_000]


def generate_audio(window, qtbot, seconds=1.0, label="7", seed=7):
    page = window.create_page
    page.engine_box.select("audio")
    assert "bundled" in page.model_box.currentText()
    page.controls.fields["seconds"].setValue(seconds)
    page.controls.fields["label"].setText(label)
    page.controls.fields["seed"].set_value(seed)
    click(qtbot, page.generate_button)
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        pass
    return page, page.view


def test_audio_is_drawn_and_played_live_then_replayed_and_exported(window, qtbot, tmp_path):
    import numpy as np
    import soundfile as sf
    from studio.app.audio_view import AudioView
    AudioView.playback_problem = None
    page, view = generate_audio(window, qtbot)
    assert view.samples == 8000 and len(view.audio()) == 8000
    assert view.spectrum.image is not None and view.spectrum.image.shape[0] == 129      # 256-point FFT bins
    x, y = view.wave.getData()
    assert len(x) == 8000 and x[-1] == pytest.approx(1.0, abs=1e-3)
    # it played while it was generated (into the null sink); Play plays it again from the start
    qtbot.waitUntil(lambda: "1.0 s played" in view.status.text(), timeout=10_000)
    click(qtbot, view.play_button)
    qtbot.waitUntil(lambda: view.player is None and "1.0 s played" in view.status.text(), timeout=10_000)
    players = []
    view.loop_box.setChecked(True)                     # Loop: plays again each time it ends
    click(qtbot, view.play_button)
    qtbot.waitUntil(lambda: players.append(view.player) or len({id(p) for p in players if p}) >= 3, timeout=10_000)
    click(qtbot, view.stop_button)
    assert view.player is None and not view.stop_button.isEnabled()

    exported = page.export_to(tmp_path / "seven.flac")
    audio, rate = sf.read(exported, dtype="float32")
    assert rate == 8000 and np.abs(audio - view.audio()).max() <= 1 / 32768
    with sf.SoundFile(exported) as f:
        assert json.loads(f.comment)["label"] == "7"


def test_without_a_sound_device_the_audio_view_says_so_once_and_still_works(window, qtbot, monkeypatch):
    from studio import playback
    from studio.app.audio_view import AudioView
    attempts = []

    def no_device(*args):
        attempts.append(1)
        raise playback.PlaybackUnavailable("no audio playback: no usable sound output device (test)")
    monkeypatch.setattr(playback, "open_output_stream", no_device)
    monkeypatch.setattr(AudioView, "playback_problem", None)
    page, view = generate_audio(window, qtbot, seconds=0.3)
    assert "no usable sound output device" in view.status.text() and "exporting still work" in view.status.text()
    assert view.samples == 2400
    generate_audio(window, qtbot, seconds=0.3, seed=8)
    click(qtbot, view.play_button)
    assert len(attempts) == 1           # asked the system once, said so once


def test_training_on_sounds_shows_what_was_kept_and_previews_audio(window, qtbot, audio_corpus):
    page = start_tiny_training(window, qtbot, audio_corpus, "audio", ("12 recording(s)", "40 dB below"))
    with qtbot.waitSignal(window.worker.finished, timeout=120_000):
        pass
    assert page.preview_title.text() == "Sample at step 300:"
    assert page.preview.samples == 4000 and page.preview.player is None     # shown, not played by itself
    assert page.val_points[1][-1] < page.val_points[1][0] - 0.5

"""Driving the real main window as a person does (pytest-qt, offscreen): open it, click, wait for jobs."""
from PySide6.QtCore import Qt

from engines import available_engines


def open_window(qtbot, home, monkeypatch):
    """The main window with its own data folder and a real worker process, once the worker is ready."""
    from studio.app.main_window import MainWindow
    monkeypatch.setenv("SEQUENCE_STUDIO_HOME", str(home))
    # the worker trains tiny models: one thread is as fast as two, and far faster on a machine shared with
    # other work, where a second thread spins waiting for a core
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    window = MainWindow(available_engines())
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.worker.ready, timeout=60_000):
        pass
    return window


def close_window(window) -> None:
    window.close()
    assert not window.worker.process.is_alive()


def click(qtbot, button):
    assert button.isVisible() and button.isEnabled(), button.text()   # as a person sees it
    qtbot.mouseClick(button, Qt.LeftButton)


def wait_for(qtbot, job, timeout=60_000):
    """Wait for a job to end; its result. A job that fails fails the test at once, with the worker's message."""
    ended = []
    job.finished.connect(ended.append)
    job.errored.connect(lambda error: ended.append(error | {"failed": True}))
    qtbot.waitUntil(lambda: bool(ended), timeout=timeout)
    assert "failed" not in ended[0], ended[0]["message"]
    return ended[0]


def start_training(window, qtbot, corpus, engine: str, preset: str | None = None):
    """On the Train page: choose the engine and corpus, wait for its summary (read again when a preset is
    chosen, as that preset reads it), then start on the CPU. The page, training."""
    page = window.train_page
    window.tabs.setCurrentWidget(page)
    page.engine_box.select(engine)
    page.set_corpus(str(corpus))
    qtbot.waitUntil(lambda: page.start_button.isEnabled(), timeout=60_000)
    if preset and preset != page.preset_box.currentText():
        page.preset_box.setCurrentText(preset)
        assert page.summary.text() == "reading…" and not page.start_button.isEnabled()
        qtbot.waitUntil(lambda: page.start_button.isEnabled(), timeout=60_000)
    page.device_box.setCurrentText("cpu")
    click(qtbot, page.start_button)
    return page

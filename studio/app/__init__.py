"""The desktop app (PySide6). Imports no torch: models live in the worker process (studio/worker.py)."""
from __future__ import annotations

import os
import sys

NO_DISPLAY = """Sequence Studio needs a display, and this session has none ($DISPLAY and $WAYLAND_DISPLAY are unset).
  - on a server, run the app on a virtual screen:   xvfb-run -a studio
  - or use the headless command line:               studio --help   (train, sample, eval)"""


def has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def launch() -> int:
    if not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 1
    from PySide6.QtWidgets import QApplication

    from engines import available_engines

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("Sequence Studio")
    window = MainWindow(available_engines())
    window.show()
    return app.exec()

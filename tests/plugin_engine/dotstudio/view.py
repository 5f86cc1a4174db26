"""The counter's view: the numbers as they arrive. It implements the studio's view protocol
(studio/app/views.py) and nothing else of the studio."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel


class CountsView(QLabel):
    def __init__(self, role: str = "create", parent=None):
        super().__init__(parent)
        self.role = role
        self.settings: dict | None = None
        self.values: list[int] = []
        self.batches = 0          # add() calls of the current sample
        self.ended = False

    def begin(self, settings: dict) -> None:
        self.settings, self.values, self.batches, self.ended = settings, [], 0, False
        self.setText("")

    def add(self, items: list[dict]) -> None:
        self.batches += 1
        self.values += [item["value"] for item in items if item["type"] == "Count"]
        self.setText(" ".join(map(str, self.values)))

    def end(self) -> None:
        self.ended = True

"""Views that show a sample as it streams in, one per modality, registered in VIEWS.

A view gets the worker's items as plain dicts: begin(settings) once, add(item) for each chunk, end().
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QCheckBox, QLabel, QPlainTextEdit, QTabWidget, QVBoxLayout, QWidget


def confidence_colour(prob: float) -> QColor:
    """Unlikely characters glow red, likely ones stay plain: hue by the model's own probability."""
    alpha = int(max(0.0, min(1.0, 1.0 - prob)) * 150)
    return QColor(230, 60, 40, alpha)


class TextView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.tabs = QTabWidget()
        self.colour = QCheckBox("Colour by the model's confidence")
        self.colour.setChecked(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.colour)
        self.editors: list[QPlainTextEdit] = []
        self.begin({"variations": 1})

    def begin(self, settings: dict) -> None:
        self.tabs.clear()
        self.editors = []
        for i in range(settings.get("variations", 1)):
            editor = QPlainTextEdit(readOnly=True)
            editor.setObjectName(f"text_output_{i}")
            editor.setFont(QFont("monospace"))
            self.editors.append(editor)
            self.tabs.addTab(editor, f"Variation {i + 1}")
        self.tabs.tabBar().setVisible(len(self.editors) > 1)

    def add(self, item: dict) -> None:
        if item.get("type") != "TextChunk":
            return
        for editor, piece, prob in zip(self.editors, item["text"], item["prob"]):
            if not piece:
                continue
            cursor = editor.textCursor()
            cursor.movePosition(QTextCursor.End)
            fmt = QTextCharFormat()
            if self.colour.isChecked() and len(piece) == 1:
                fmt.setBackground(confidence_colour(prob))
            cursor.insertText(piece, fmt)
            editor.setTextCursor(cursor)

    def end(self) -> None:
        pass

    def texts(self) -> list[str]:
        return [e.toPlainText() for e in self.editors]


class UnsupportedView(QLabel):
    """For an engine whose modality this version of the app cannot show; generation and export still work."""

    def __init__(self, parent=None):
        super().__init__("This engine's output cannot be shown here; export it to a file.", parent)
        self.setAlignment(Qt.AlignCenter)
        self.count = 0

    def begin(self, settings: dict) -> None:
        self.count = 0

    def add(self, item: dict) -> None:
        self.count += 1
        self.setText(f"{self.count} chunks generated; export them to a file to see them.")

    def end(self) -> None:
        pass


VIEWS = {"text": TextView}


def view_for(modality: str) -> QWidget:
    return VIEWS.get(modality, UnsupportedView)()

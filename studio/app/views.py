"""Views that show a sample as it streams in, one per modality, registered in VIEWS.

A view gets the worker's items as plain dicts: begin(settings) once, add(items) for each batch of chunks as it
arrives (about 30 batches a second), end() when the sample is complete.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QCheckBox, QLabel, QPlainTextEdit, QTabWidget, QVBoxLayout, QWidget

from .audio_view import AudioView


CONFIDENCE_LEVELS = 8


def confidence_formats() -> list[QTextCharFormat]:
    """Unlikely characters glow red, likely ones stay plain. A few shared formats, not one per character, so
    neighbouring characters of one level merge into one text fragment."""
    formats = []
    for level in range(CONFIDENCE_LEVELS):
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(230, 60, 40, int(150 * (1 - level / (CONFIDENCE_LEVELS - 1)))))
        formats.append(fmt)
    return formats


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
        self.formats, self.plain = confidence_formats(), QTextCharFormat()
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

    def add(self, items: list[dict]) -> None:
        """Append a batch of chunks: one edit block per batch, so the text is laid out once per batch."""
        chunks = [item for item in items if item.get("type") == "TextChunk"]
        if not chunks:
            return
        coloured = self.colour.isChecked()
        for index, editor in enumerate(self.editors):
            cursor = editor.textCursor()
            cursor.movePosition(QTextCursor.End)
            cursor.beginEditBlock()
            for chunk in chunks:
                piece = chunk["text"][index]
                if not piece:
                    continue
                if coloured and len(piece) == 1:
                    level = min(CONFIDENCE_LEVELS - 1, int(chunk["prob"][index] * CONFIDENCE_LEVELS))
                    cursor.insertText(piece, self.formats[level])
                else:
                    cursor.insertText(piece, self.plain)
            cursor.endEditBlock()
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

    def add(self, items: list[dict]) -> None:
        self.count += len(items)
        self.setText(f"{self.count} chunks generated; export them to a file to see them.")

    def end(self) -> None:
        pass


VIEWS = {"text": TextView, "audio": AudioView}


def view_for(modality: str) -> QWidget:
    return VIEWS.get(modality, UnsupportedView)()

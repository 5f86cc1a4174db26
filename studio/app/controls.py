"""A form drawn from an engine's sampling controls: the window knows no engine's settings by name.

Each control kind (engines.core.interface.CONTROL_KINDS) has a field class in FIELDS. A field is a QWidget made
as `FieldClass(control)`, showing the control's default, with

    value()            the current value, as plain data the control's `validate` accepts (a number, a bool,
                       a str, a list of strokes ...): it goes to the worker and, as JSON, into the settings file
    set_value(value)   show a value that `control.validate` has already checked

and a signal the user's edits send: `changed` if the field defines one (fields made of several widgets), else
its Qt widget's own (valueChanged, textChanged, toggled, currentTextChanged). ControlsForm.changed gathers them.
"""
from __future__ import annotations

import random

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QCompleter, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QStyle, QVBoxLayout, QWidget)

from engines.core.errors import ConfigError

from .pen_recorder import PenPad

INT_LIMIT = 2**31 - 1       # what a QSpinBox holds


class EngineBox(QComboBox):
    """Chooses one of the installed engines, listed by title."""

    def __init__(self, engines: dict, object_name: str, parent=None):
        super().__init__(parent, objectName=object_name)
        self.engines = engines
        for engine in engines.values():
            self.addItem(engine.title, engine.name)

    @property
    def engine(self):
        return self.engines[self.currentData()]

    def select(self, name: str) -> None:
        self.setCurrentIndex(self.findData(name))


def bounds(control) -> tuple[float, float]:
    return (control.minimum if control.minimum is not None else -1e9,
            control.maximum if control.maximum is not None else 1e9)


# --- one field per control kind ---

class FloatField(QDoubleSpinBox):
    def __init__(self, control):
        super().__init__()
        self.setDecimals(2 if (control.step or 0.01) >= 0.01 else 4)
        self.setRange(*bounds(control))
        self.setSingleStep(control.step or 0.1)
        self.setValue(control.default)

    def set_value(self, value) -> None:
        self.setValue(value)


class IntField(QSpinBox):
    def __init__(self, control):
        super().__init__()
        low, high = bounds(control)
        self.setRange(int(max(low, -INT_LIMIT)), int(min(high, INT_LIMIT)))
        self.setSingleStep(int(control.step or 1))
        self.setValue(control.default)

    def set_value(self, value) -> None:
        self.setValue(value)


class SeedField(QWidget):
    """A seed, random at first (the control's default is None: "pick one"), with a button to pick another."""

    def __init__(self, control):
        super().__init__()
        self.spin = QSpinBox()
        self.spin.setRange(0, INT_LIMIT)
        self.reroll = QPushButton("Re-roll")
        self.reroll.setToolTip("pick a new random seed")
        self.reroll.clicked.connect(lambda: self.set_value(None))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.spin, 1)
        row.addWidget(self.reroll)
        self.changed = self.spin.valueChanged
        self.set_value(control.default)

    def value(self) -> int:
        return self.spin.value()

    def set_value(self, value) -> None:
        self.spin.setValue(random.randrange(INT_LIMIT) if value is None else value)


class BoolField(QCheckBox):
    def __init__(self, control):
        super().__init__()
        self.setChecked(bool(control.default))

    def value(self) -> bool:
        return self.isChecked()

    def set_value(self, value) -> None:
        self.setChecked(value)


class LineField(QLineEdit):
    """One line of text. Given suggestions (the values the chosen model knows: its writers, its labels), they
    complete what is typed, and an arrow at the field's end lists them all."""

    def __init__(self, control):
        super().__init__(control.default or "")
        self.known = QStringListModel(self)
        completer = QCompleter(self.known, self)
        completer.setCaseSensitivity(Qt.CaseInsensitive)
        self.setCompleter(completer)
        self.list_action = self.addAction(self.style().standardIcon(QStyle.SP_ArrowDown), QLineEdit.TrailingPosition)
        self.list_action.setToolTip("values this model knows")
        self.list_action.triggered.connect(self.list_suggestions)
        self.set_suggestions([])

    def value(self) -> str:
        return self.text()

    def set_value(self, value) -> None:
        self.setText(value)

    def set_suggestions(self, values: list[str]) -> None:
        self.known.setStringList(values)
        self.list_action.setVisible(bool(values))

    def suggestions(self) -> list[str]:
        return self.known.stringList()

    def list_suggestions(self) -> None:
        self.completer().setCompletionPrefix("")
        self.completer().complete()


class ParagraphField(QPlainTextEdit):
    """Text of several lines and paragraphs (a control with lines > 1), e.g. a page to write by hand."""

    def __init__(self, control):
        super().__init__(control.default or "")
        self.setTabChangesFocus(True)       # Tab moves on to the next control, as in a one-line field
        self.setFixedHeight(self.fontMetrics().lineSpacing() * control.lines + 2 * self.frameWidth() + 8)

    def value(self) -> str:
        return self.toPlainText()

    def set_value(self, value) -> None:
        self.setPlainText(value)


def TextField(control):
    """A "text" control's field: one line, or a box of control.lines rows."""
    return (ParagraphField if control.lines > 1 else LineField)(control)


class ChoiceField(QComboBox):
    def __init__(self, control):
        super().__init__()
        self.addItems(control.choices)
        self.setCurrentText(control.default)

    def value(self) -> str:
        return self.currentText()

    def set_value(self, value) -> None:
        self.setCurrentText(value)


class MediaField(QWidget):
    """A media file (primer audio, a video clip): typed in, or picked with a dialog showing the files the
    control accepts (Control.media)."""

    def __init__(self, control):
        super().__init__()
        self.control = control
        self.edit = QLineEdit(control.default or "", placeholderText="none")
        self.browse = QPushButton("…")
        self.browse.setToolTip("choose a file")
        self.browse.clicked.connect(self.choose)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse)
        self.changed = self.edit.textChanged

    def file_filter(self) -> str:
        suffixes = " ".join(f"*{s}" for s in self.control.media) or "*"
        return f"{self.control.label} ({suffixes})"

    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Choose {self.control.label.lower()}", self.edit.text(),
                                              self.file_filter())
        if path:
            self.edit.setText(path)

    def value(self) -> str:
        return self.edit.text()

    def set_value(self, value) -> None:
        self.edit.setText(value)


class StrokesField(QWidget):
    """Pen strokes drawn on a PenPad (pen_recorder.py), as lists of [x, y, t] points."""

    def __init__(self, control):
        super().__init__()
        self.pad = PenPad()
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.pad.clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pad, 1)
        layout.addWidget(self.clear_button, 0, Qt.AlignRight)
        self.changed = self.pad.changed
        self.set_value(control.default or [])

    def value(self) -> list:
        return [[list(point) for point in stroke] for stroke in self.pad.strokes]

    def set_value(self, value) -> None:
        self.pad.set_strokes(value)


FIELDS = {"float": FloatField, "int": IntField, "seed": SeedField, "bool": BoolField, "text": TextField,
          "choice": ChoiceField, "media": MediaField, "strokes": StrokesField}


def change_signal(field: QWidget):
    """The signal `field` sends when its value is edited (see the module's docstring)."""
    for name in ("changed", "valueChanged", "textChanged", "toggled", "currentTextChanged"):
        if hasattr(field, name):
            return getattr(field, name)
    raise TypeError(f"{type(field).__name__} has no signal saying that its value changed")


class ControlsForm(QWidget):
    changed = Signal()          # any field's value, edited by the user or set by set_values

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.fields: dict[str, QWidget] = {}
        self.controls: dict = {}

    def set_controls(self, controls) -> None:
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self.controls = {c.name: c for c in controls}
        self.fields = {}
        for control in controls:
            field = FIELDS[control.kind](control)
            field.setObjectName(f"control_{control.name}")
            field.setToolTip(control.help)
            self.fields[control.name] = field
            self.layout_.addRow(control.label, field)
            change_signal(field).connect(self.changed)

    def values(self) -> dict:
        return {name: field.value() for name, field in self.fields.items()}

    def set_suggestions(self, suggestions: dict[str, list[str]]) -> None:
        """Offer each field that takes suggestions the values listed under its control's name (others: none)."""
        for name, field in self.fields.items():
            if hasattr(field, "set_suggestions"):
                field.set_suggestions(suggestions.get(name, []))

    def set_values(self, values: dict) -> None:
        """Fill fields from saved or recorded settings; a value its control rejects shows the default."""
        for name, value in values.items():
            if name not in self.fields:
                continue
            control = self.controls[name]
            try:
                value = control.validate(value)
            except ConfigError:
                value = control.default
            self.fields[name].set_value(value)

"""A form drawn from an engine's sampling controls: the window knows no engine's settings by name."""
from __future__ import annotations

import random

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
                               QPushButton, QSpinBox, QWidget)

from engines.core.errors import ConfigError


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


class SeedField(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.spin = QSpinBox()
        self.spin.setRange(0, 2**31 - 1)
        self.spin.setValue(random.randrange(2**31))
        self.reroll = QPushButton("Re-roll")
        self.reroll.setToolTip("pick a new random seed")
        self.reroll.clicked.connect(lambda: self.spin.setValue(random.randrange(2**31)))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.spin, 1)
        row.addWidget(self.reroll)

    def value(self):
        return self.spin.value()

    def set_value(self, value):
        self.spin.setValue(int(value))


class FileField(QWidget):
    """A path typed in, or picked with a file dialog."""

    def __init__(self, text: str, parent=None):
        super().__init__(parent)
        self.edit = QLineEdit(text)
        self.edit.setPlaceholderText("none")
        self.browse = QPushButton("…")
        self.browse.setToolTip("choose a file")
        self.browse.clicked.connect(self.choose)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse)

    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", self.edit.text())
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text()

    def setText(self, text: str) -> None:
        self.edit.setText(text)


def make_field(control) -> QWidget:
    if control.kind == "seed":
        return SeedField()
    if control.kind == "file":
        return FileField(str(control.default or ""))
    low = control.minimum if control.minimum is not None else -1e9
    high = control.maximum if control.maximum is not None else 1e9
    if control.kind == "float":
        field = QDoubleSpinBox()
        field.setDecimals(2 if (control.step or 0.01) >= 0.01 else 4)
        field.setRange(low, high)
        field.setSingleStep(control.step or 0.1)
        field.setValue(control.default)
    elif control.kind == "int":
        field = QSpinBox()
        field.setRange(int(max(low, -2**31)), int(min(high, 2**31 - 1)))
        field.setSingleStep(int(control.step or 1))
        field.setValue(control.default)
    elif control.kind == "choice":
        field = QComboBox()
        field.addItems(control.choices)
        field.setCurrentText(str(control.default))
    elif control.kind == "bool":
        field = QCheckBox()
        field.setChecked(bool(control.default))
    else:
        field = QLineEdit(str(control.default or ""))
    return field


def field_value(field):
    if isinstance(field, SeedField):
        return field.value()
    if isinstance(field, (QSpinBox, QDoubleSpinBox)):
        return field.value()
    if isinstance(field, QComboBox):
        return field.currentText()
    if isinstance(field, QCheckBox):
        return field.isChecked()
    return field.text()


def set_field_value(field, value) -> None:
    if isinstance(field, SeedField):
        field.set_value(value)
    elif isinstance(field, (QSpinBox, QDoubleSpinBox)):
        field.setValue(value)
    elif isinstance(field, QComboBox):
        field.setCurrentText(str(value))
    elif isinstance(field, QCheckBox):
        field.setChecked(bool(value))
    else:
        field.setText(str(value))


class ControlsForm(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.fields: dict[str, QWidget] = {}
        self.controls: dict = {}

    def set_controls(self, controls) -> None:
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self.fields = {}
        self.controls = {c.name: c for c in controls}
        for control in controls:
            field = make_field(control)
            field.setObjectName(f"control_{control.name}")
            field.setToolTip(control.help)
            self.fields[control.name] = field
            self.layout_.addRow(control.label, field)

    def values(self) -> dict:
        return {name: field_value(field) for name, field in self.fields.items()}

    def set_values(self, values: dict) -> None:
        """Fill fields from saved or recorded settings (strings from QSettings are coerced; bad ones skipped)."""
        for name, value in values.items():
            if name not in self.fields or value is None:
                continue
            try:
                set_field_value(self.fields[name], self.controls[name].validate(value))
            except ConfigError:
                continue

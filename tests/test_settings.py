"""Sampling settings are checked, not coerced: numbers finite and in range, pen strokes and media files in
their own shapes, and what reaches the window is plain data."""
import math

import numpy as np
import pytest

from engines.core.errors import ConfigError
from engines.core.interface import Control, resolve_settings

LENGTH = Control("length", "Length", "int", 10, 1, 100)
TEMP = Control("temperature", "Temperature", "float", 1.0, 0.05, 2.0)
PEN = Control("style", "Style", "strokes", [])
CLIP = Control("primer", "Primer", "media", "", media=(".wav", ".flac"))
CHOICE = Control("writer", "Writer", "choice", "a", choices=("a", "b"))


@pytest.mark.parametrize("control, value, expected", [
    (LENGTH, "12", 12), (LENGTH, 12.0, 12), (TEMP, "0.5", 0.5), (TEMP, 1, 1.0),
    (Control("loop", "Loop", "bool", False), "yes", True),
    (PEN, [[[0, 0], [1, 2.5, 0.01]], []], [[[0.0, 0.0], [1.0, 2.5, 0.01]], []]),
    (CLIP, "voice.FLAC", "voice.FLAC"), (CLIP, "", ""), (CHOICE, "b", "b"),
])
def test_values_in_their_own_type_pass(control, value, expected):
    assert control.validate(value) == expected


@pytest.mark.parametrize("control, value, message", [
    (TEMP, math.nan, "finite"), (TEMP, "inf", "finite"), (LENGTH, 2.5, "whole"), (LENGTH, "ten", "valid int"),
    (LENGTH, True, "not a number"), (LENGTH, [1], "not a number"), (LENGTH, 101, "outside"),
    (PEN, "[[0, 0]]", "list of pen strokes"), (PEN, [[[0, math.inf]]], "finite"), (PEN, [[[0, 1, 2, 3]]], "point"),
    (CLIP, "clip.mp4", "not one of"), (CLIP, 3, "expected text"), (CHOICE, "c", "not one of"),
    (Control("primer", "Primer", "text", ""), {"a": 1}, "expected text"),
])
def test_anything_else_is_a_clear_error(control, value, message):
    with pytest.raises(ConfigError, match=message):
        control.validate(value)


def test_resolving_fills_defaults_pins_the_seed_and_refuses_unknown_names():
    from engines.core.interface import SEED
    resolved = resolve_settings([LENGTH, SEED], {})
    assert resolved["length"] == 10 and isinstance(resolved["seed"], int)
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve_settings([LENGTH], {"lenght": 3})


def test_only_plain_data_reaches_the_window():
    import torch
    from engines.audio.chunks import AudioChunk
    from engines.core.interface import Notice
    from studio.worker import plain
    sent = plain([AudioChunk(np.zeros((1, 4), np.float32), 8000), Notice("hi")])
    assert sent[0]["type"] == "AudioChunk" and sent[0]["rate"] == 8000 and sent[1] == {"type": "Notice", "message": "hi"}
    with pytest.raises(TypeError, match="Tensor cannot be sent"):
        plain(AudioChunk(torch.zeros(1, 4), 8000))
    with pytest.raises(TypeError, match="plain data"):
        plain({"nested": [object()]})

"""What text generation streams to the window (torch-free: the GUI imports it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TextChunk:
    text: list[str]      # the next character of each variation ("" once a variation has stopped)
    prob: list[float]    # the model's probability of that character (temperature 1, before top-k/p)

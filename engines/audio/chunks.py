"""What audio generation streams to the window (torch-free: the GUI imports it)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AudioChunk:
    audio: np.ndarray     # (variations, samples) float32 in [-1, 1]
    rate: int

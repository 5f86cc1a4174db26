"""What video generation streams to the window (torch-free: the GUI imports it)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VideoChunk:
    frames: np.ndarray    # (variations, T, H, W, C) uint8, C 1 (grey) or 3: the frames decoded since the last chunk
    fps: float
    primer: bool = False  # these frames are the primer clip's, as the tokenizer reconstructs them

"""What ink generation streams to the window (torch-free: the GUI imports it)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class InkChunk:
    # per variation, the new pen points since the last chunk: (n, 3) float32 rows of (dx, dy, pen_up) in the
    # corpus' raw units (y pointing down), pen_up = 1 on a stroke's last point; n may be 0 once it has stopped
    points: list[np.ndarray]
    line: list[int] = field(default_factory=list)     # per variation, which line of the text it is writing
    # optional, per variation: where the attention window is (in characters of the current line) and the
    # attention over that line's characters at the last point, for a live alignment view
    position: list[float] | None = None
    attention: list[np.ndarray] | None = None
    done: list[bool] | None = None                    # per variation: finished (past the end of its text)

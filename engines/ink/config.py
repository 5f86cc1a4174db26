"""The ink model's shape (torch-free, so the GUI can read presets without loading torch)."""
from dataclasses import dataclass

from ..core.errors import ConfigError


@dataclass
class InkModelConfig:
    conditional: bool = True      # False: no attention window, the model scribbles (corpora without transcripts)
    n_layer: int = 3              # LSTM layers; Graves (2013) used 3 x 400
    n_hidden: int = 400
    mixtures: int = 20            # bivariate Gaussians in the output mixture
    window_gaussians: int = 10    # Gaussians in the soft attention window over the characters
    alphabet_size: int = 0        # one-hot width of a character, set from the corpus' alphabet (0 when unconditional)
    # how far the window moves per pen point at initialisation, in characters. Starting near the corpus' own
    # rate (characters / points) means the window does not race past the text before it learns anything.
    window_speed: float = 0.05
    dropout: float = 0.0          # on each layer's output sequence; Graves used weight noise instead
    # a fourth output: "the line ended with the point just read" (sketch-rnn's end of drawing), learnt on the step
    # that reads each whole line's last point. Writing stops there: the window alone, past the last character,
    # lets the pen write on.
    # False in checkpoints made before it existed (the presets turn it on)
    end_flag: bool = False
    # how the corpus is read (saved with the model: a fine-tuning corpus is read the same way; a style primer is
    # instead scaled and redrawn at the corpus' point spacing, write.primer_from_raw)
    smooth: int = 1               # moving average over this many points of each stroke (1 = off)
    downsample: int = 1           # keep every n-th point of each stroke (and its last)
    synthetic_lines: int = 0      # lines written in Hershey's cursive font added to training: exactly aligned
                                  # text, from which the window learns to read quickly
    validation_writers: str = ""  # comma-separated writers held out for validation (default: every n-th line)
    # training: each line's moves are slanted (a shear of up to +-augment) and stretched (each axis by up to a factor
    # e^+-augment), drawn afresh each time the line is batched: a hand's slant and proportions vary, its letters
    # do not, and a few writers are few. 0 = off
    augment: float = 0.0
    # training: lines longer than this many points are trained in chunks with the state carried from one
    # to the next (detached: gradients stop at chunk boundaries); 0 = whole lines in one piece
    chunk_points: int = 0

    def check(self) -> None:
        if self.n_layer < 1 or self.n_hidden < 1 or self.mixtures < 1:
            raise ConfigError(f"model.n_layer, n_hidden and mixtures must be at least 1 "
                              f"({self.n_layer}, {self.n_hidden}, {self.mixtures})")
        if self.conditional and self.window_gaussians < 1:       # (alphabet_size comes from the corpus later)
            raise ConfigError(f"a conditional ink model needs window_gaussians of at least 1, "
                              f"not {self.window_gaussians}")
        if not 0 < self.window_speed < 10:
            raise ConfigError(f"model.window_speed must be in (0, 10) characters per point, not {self.window_speed}")
        if self.smooth < 1 or self.downsample < 1 or self.synthetic_lines < 0 or self.chunk_points < 0:
            raise ConfigError(f"model.smooth and downsample must be at least 1, synthetic_lines and chunk_points "
                              f"at least 0 ({self.smooth}, {self.downsample}, {self.synthetic_lines}, "
                              f"{self.chunk_points})")
        if not 0 <= self.augment < 1:
            raise ConfigError(f"model.augment must be in [0, 1), not {self.augment}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), not {self.dropout}")

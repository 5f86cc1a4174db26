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

    def check(self) -> None:
        if self.n_layer < 1 or self.n_hidden < 1 or self.mixtures < 1:
            raise ConfigError(f"model.n_layer, n_hidden and mixtures must be at least 1 "
                              f"({self.n_layer}, {self.n_hidden}, {self.mixtures})")
        if self.conditional and (self.window_gaussians < 1 or self.alphabet_size < 1):
            raise ConfigError(f"a conditional ink model needs window_gaussians and alphabet_size of at least 1 "
                              f"({self.window_gaussians}, {self.alphabet_size})")
        if not 0 < self.window_speed < 10:
            raise ConfigError(f"model.window_speed must be in (0, 10) characters per point, not {self.window_speed}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), not {self.dropout}")

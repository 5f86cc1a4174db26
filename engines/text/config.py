"""The text model's shape (kept free of torch so the GUI can read presets without loading it)."""
from dataclasses import dataclass

from ..core.errors import ConfigError


@dataclass
class TextModelConfig:
    cell: str = "lstm"          # "lstm" | "gru"
    n_layer: int = 2
    n_hidden: int = 512         # also the embedding width
    dropout: float = 0.25       # on the embedding, between layers and before the output layer

    def check(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ConfigError(f"model.cell must be lstm or gru, not {self.cell!r}")
        if self.n_layer < 1 or self.n_hidden < 1:
            raise ConfigError(f"model.n_layer and model.n_hidden must be at least 1 ({self.n_layer}, {self.n_hidden})")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), not {self.dropout}")

"""The text model's shape (kept free of torch so the GUI can read presets without loading it)."""
from dataclasses import dataclass


@dataclass
class TextModelConfig:
    cell: str = "lstm"          # "lstm" | "gru"
    n_layer: int = 2
    n_hidden: int = 512         # also the embedding width
    dropout: float = 0.25       # on the embedding, between layers and before the output layer

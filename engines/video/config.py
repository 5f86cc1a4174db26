"""The video engine's two shapes: the tokenizer (a VQ-VAE turning a clip into a grid of codes) and the prior
(a GPT over those codes). Torch-free, so the GUI can read presets without loading torch."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..core.errors import ConfigError


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@dataclass
class TokenizerConfig:
    # what a clip is: every video is resized, centre-cropped and resampled to this before the model sees it
    frame_size: int = 64            # square frames, frame_size x frame_size pixels
    clip_frames: int = 16
    channels: int = 3               # 3: RGB, 1: grey
    fps: float = 0.0                # frames per second clips are resampled to; 0: the videos' most common rate
    # the 3D convolutional encoder and decoder
    hidden: int = 64                # channels of every convolution
    res_blocks: int = 2             # residual blocks at the bottom of the encoder and the top of the decoder
    time_downsample: int = 4        # frames per code along time (a power of 2)
    space_downsample: int = 8       # pixels per code along each side (a power of 2, at least 2)
    # true: the encoder reads each code's own patch and nothing around it (kernels no wider than their strides,
    # 1x1x1 after), so a code depends on its patch alone and every blank patch gets the same code. Otherwise a
    # blank patch's code also describes the ink beside it, and the prior must guess that ink twice.
    patch_encoder: bool = False
    # the codebook, learned by exponential moving averages rather than by gradients
    codebook_size: int = 512
    code_dim: int = 64
    ema_decay: float = 0.99
    commitment: float = 0.25        # beta: how hard the encoder is pulled towards the code it chose
    dead_code_threshold: float = 1.0  # a code whose moving-average use falls below this is restarted

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """(t, h, w): the grid of codes one clip becomes."""
        side = self.frame_size // self.space_downsample
        return self.clip_frames // self.time_downsample, side, side

    def check(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"tokenizer.channels must be 1 (grey) or 3 (RGB), not {self.channels}")
        if not _power_of_two(self.time_downsample) or not _power_of_two(self.space_downsample) \
                or self.space_downsample < 2:
            raise ConfigError(f"tokenizer.time_downsample and space_downsample must be powers of 2 (space at least "
                              f"2), not {self.time_downsample} and {self.space_downsample}")
        if self.clip_frames < 1 or self.clip_frames % self.time_downsample:
            raise ConfigError(f"tokenizer.clip_frames ({self.clip_frames}) must be a multiple of time_downsample "
                              f"({self.time_downsample})")
        if self.frame_size < 1 or self.frame_size % self.space_downsample:
            raise ConfigError(f"tokenizer.frame_size ({self.frame_size}) must be a multiple of space_downsample "
                              f"({self.space_downsample})")
        if min(self.hidden, self.code_dim, self.res_blocks + 1) < 1 or self.codebook_size < 2:
            raise ConfigError("tokenizer.hidden and code_dim must be at least 1, res_blocks at least 0 and "
                              "codebook_size at least 2")
        if not 0 < self.ema_decay < 1:
            raise ConfigError(f"tokenizer.ema_decay must be in (0, 1), not {self.ema_decay}")
        if self.commitment < 0 or self.dead_code_threshold < 0 or self.fps < 0:
            raise ConfigError("tokenizer.commitment, dead_code_threshold and fps must not be negative")


@dataclass
class PriorConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    n_classes: int = 0              # > 0: every clip starts with one of this many label tokens
    # the frozen tokenizer's codebook size and code grid of one clip (set by `for_tokenizer`)
    vocab_size: int = 512
    code_frames: int = 4
    code_height: int = 8
    code_width: int = 8

    @property
    def block_size(self) -> int:
        """Tokens per clip: the longest sequence the prior reads."""
        return self.code_frames * self.code_height * self.code_width

    def for_tokenizer(self, tokenizer: TokenizerConfig) -> PriorConfig:
        """This prior sized to model the codes of `tokenizer`."""
        t, h, w = tokenizer.code_shape
        return dataclasses.replace(self, vocab_size=tokenizer.codebook_size, code_frames=t, code_height=h,
                                   code_width=w)

    def check(self) -> None:
        if min(self.n_layer, self.n_head, self.n_embd) < 1 or self.n_embd % self.n_head:
            raise ConfigError(f"prior.n_embd ({self.n_embd}) must be a positive multiple of n_head ({self.n_head}), "
                              f"and n_layer at least 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"prior.dropout must be in [0, 1), not {self.dropout}")
        if self.n_classes < 0 or self.vocab_size < 2 or min(self.code_frames, self.code_height, self.code_width) < 1:
            raise ConfigError("prior.n_classes must not be negative, vocab_size at least 2 and the code grid at "
                              "least 1x1x1")

"""The audio model's shape and how its corpus is read (torch-free, so the GUI can read presets instantly)."""
from dataclasses import dataclass

from ..core.errors import ConfigError


@dataclass
class AudioModelConfig:
    sample_rate: int = 8000          # the corpus is resampled to this; the model only ever hears this rate
    stacks: int = 2                  # each stack doubles its dilation layer by layer: 1, 2, 4, ...
    layers_per_stack: int = 9
    residual_channels: int = 32
    gate_channels: int = 32
    skip_channels: int = 64
    label_channels: int = 16         # width of the conditioning embedding (labels and position)
    # > 0: the model is also told how far into a recording it is (in 10 ms steps, up to this many seconds),
    # so a conditioned word comes out in order rather than as a babble of its sounds
    position_seconds: float = 0.0
    # > 0, instead of position_seconds: the model is told how far through the recording it is in this many
    # equal shares of its length (plus "before it" and "after it"), and generation draws each word's length
    # from the training recordings'. A word said fast and one said slowly then follow one script, and the
    # model knows when its word is over
    position_shares: int = 0
    # a label field (e.g. "digit"): each of its values learns its own course over time instead of one course
    # shared by all, so "seven" can be told which of its sounds comes 0.2 s in (needs position_seconds or _shares)
    position_per: str = ""
    # where labels come from: "auto" (sub-folder names when files sit in sub-folders), "none", or a file name
    # pattern: "{digit}_{speaker}_{}" reads 7_jackson_0.wav as digit 7, speaker jackson ({name} is a label
    # field, {} matches anything; a file whose name does not fit is skipped with a warning naming it)
    conditioning: str = "auto"
    silence_db: float = 40.0         # leading/trailing audio this far below the file's peak is trimmed
    # silence after each training recording: how its sound ends. Longer than the receptive field, it also shows
    # a model that hears its position that a word is followed by silence, not by the start of another word
    tail_seconds: float = 0.05
    # file names (glob) held out for validation; empty: every n-th file, n from val_fraction
    validation_files: str = ""

    def check(self) -> None:
        sizes = (self.sample_rate, self.stacks, self.layers_per_stack, self.residual_channels, self.gate_channels,
                 self.skip_channels, self.label_channels)
        if min(sizes) < 1:
            raise ConfigError("model.sample_rate, stacks, layers_per_stack and the channel counts must be at least 1")
        if min(self.position_seconds, self.position_shares, self.tail_seconds) < 0 or self.silence_db <= 0:
            raise ConfigError(f"model.position_seconds, position_shares and tail_seconds cannot be negative, and "
                              f"silence_db must be above 0 ({self.position_seconds}, {self.position_shares}, "
                              f"{self.tail_seconds}, {self.silence_db})")
        if self.position_seconds > 0 and self.position_shares > 0:
            raise ConfigError("model.position_seconds and position_shares are two ways of telling the model its "
                              "position: set one of them")
        if self.position_per and not (self.position_seconds > 0 or self.position_shares > 0):
            raise ConfigError("model.position_per needs position_seconds or position_shares > 0: there is no "
                              "course over time to split")

"""Reading an audio corpus: any file soundfile or librosa decodes, at any rate and channel count, becomes mono
µ-law codes at the model's rate with leading and trailing silence trimmed, plus each file's labels.

Files that cannot be used are skipped with a warning naming them; when nothing usable is left the corpus is
refused with the reasons. The split into training and validation is by file, so no recording is in both.
"""
from __future__ import annotations

import fnmatch
import glob
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import CorpusError
from ..core.interface import Batch, Corpus
from .config import AudioModelConfig
from .model import SILENCE, mu_law_encode, position_index, position_steps, receptive_field

SILENT_PEAK = 1e-4          # a file whose loudest sample is below -80 dBFS holds nothing to learn
TAIL_SECONDS = 0.05         # silence after each recording, so the model learns how sounds end
MAX_FILE_SECONDS = 3600


@dataclass
class Recording:
    path: Path
    codes: np.ndarray       # uint8 µ-law, trimmed
    labels: dict[str, str]


def list_files(path: str | Path) -> tuple[Path, list[Path]]:
    """The corpus root and the (non-hidden) files a file, folder or glob names."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
        if not files:
            raise CorpusError(f"no files match {text}")
        return Path(text.split("*")[0]).parent, files
    path = Path(path).expanduser()
    if not path.exists():
        raise CorpusError(f"{path} does not exist")
    if path.is_file():
        return path.parent, [path]
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise CorpusError(f"{path} contains no files")
    return path, files


def decode(path: Path, rate: int) -> tuple[np.ndarray, float]:
    """Mono float32 audio at `rate`, and the file's length in seconds; CorpusError when it is not audio."""
    import soundfile as sf
    try:
        info = sf.info(str(path))
        if info.frames and info.frames / info.samplerate > MAX_FILE_SECONDS:
            raise CorpusError(f"{path.name} is {info.frames / info.samplerate / 3600:.1f} hours long; split it into "
                              f"files under {MAX_FILE_SECONDS // 3600} hour")
        audio, source_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except CorpusError:
        raise
    except Exception:  # noqa: BLE001 - libsndfile reports bad files with varying exception types
        raise CorpusError(f"{path.name} is not audio this studio can read (corrupt, or not WAV, FLAC, OGG, Opus "
                          f"or MP3)") from None
    if audio.size == 0:
        raise CorpusError(f"{path.name} holds no samples")
    audio = audio.mean(axis=1)
    seconds = len(audio) / source_rate
    if source_rate != rate:
        import librosa
        audio = librosa.resample(audio, orig_sr=source_rate, target_sr=rate, res_type="soxr_hq")
    return audio.astype(np.float32), seconds


def trim(audio: np.ndarray, silence_db: float) -> np.ndarray:
    import librosa
    trimmed, _ = librosa.effects.trim(audio, top_db=silence_db, frame_length=256, hop_length=64)
    return trimmed


def label_reader(conditioning: str, root: Path, files: list[Path]):
    """A function file -> {field: value} (None when the file does not fit), and the field names."""
    if conditioning == "none":
        return (lambda p: {}), []
    if conditioning == "auto":
        folders = {p.parent for p in files}
        if len(folders) < 2:
            return (lambda p: {}), []
        return (lambda p: {"folder": p.parent.relative_to(root).as_posix() if p.parent != root else "."}), ["folder"]
    fields = re.findall(r"\{(\w*)\}", conditioning)
    regex = ""
    for literal, field in re.findall(r"([^{}]*)(\{\w*\})?", conditioning):
        regex += re.escape(literal)
        if field:
            name = field[1:-1]
            regex += f"(?P<{name}>.+?)" if name else ".+?"
    pattern = re.compile(regex)
    named = [f for f in fields if f]
    if not named:
        raise CorpusError(f"conditioning pattern {conditioning!r} names no field (write e.g. {{speaker}}_{{}})")

    def read(p: Path):
        match = pattern.fullmatch(p.stem)
        return {name: match.group(name) for name in named} if match else None
    return read, named


class AudioCorpus(Corpus):
    def __init__(self, train: list[Recording], val: list[Recording], label_values: dict[str, list[str]],
                 config: AudioModelConfig, summary: dict):
        self.rate = config.sample_rate
        self.receptive_field = receptive_field(config)
        self.position_steps = position_steps(config)
        self.meta = {"sample_rate": config.sample_rate, "labels": label_values}
        self.summary = summary
        self.fields = list(label_values)
        index = {f: {v: i for i, v in enumerate(values)} for f, values in label_values.items()}
        self.train = [self.padded(r.codes) for r in train]
        self.train_labels = torch.tensor([[index[f][r.labels[f]] for f in self.fields] for r in train],
                                         dtype=torch.long).reshape(len(train), len(self.fields))
        self.train_weights = torch.tensor([len(r.codes) for r in train], dtype=torch.float)
        self.val = val
        self.val_labels = [[index[f][r.labels[f]] for f in self.fields] for r in val]

    def padded(self, codes: np.ndarray) -> torch.Tensor:
        """Silence before (the context a recording starts from) and a short silence after it."""
        tail = int(TAIL_SECONDS * self.rate)
        return torch.from_numpy(np.concatenate([np.full(self.receptive_field, SILENCE, np.uint8), codes,
                                                np.full(tail, SILENCE, np.uint8)]))

    def positions(self, first: torch.Tensor, length: int) -> torch.Tensor:
        """Position-table rows of `length` inputs per row, the first at sample offset `first` (B,)."""
        return position_index(first[:, None] + torch.arange(length), self.rate, self.position_steps)

    def batch(self, batch_size: int, seq_len: int, generator):
        """Windows from recordings drawn in proportion to their length:
        (context + inputs, labels, positions of the inputs, targets)."""
        width = self.receptive_field + seq_len
        picks = torch.multinomial(self.train_weights, batch_size, replacement=True, generator=generator)
        windows = torch.full((batch_size, width), SILENCE, dtype=torch.long)
        starts = torch.zeros(batch_size, dtype=torch.long)
        for row, i in enumerate(picks.tolist()):
            codes = self.train[i]
            starts[row] = int(torch.randint(0, max(1, len(codes) - width + 1), (1,), generator=generator))
            piece = codes[starts[row]:starts[row] + width]
            windows[row, :len(piece)] = piece.long()
        positions = self.positions(starts - self.receptive_field, width - 1)
        targets = windows[:, self.receptive_field:]
        return Batch({"codes": windows[:, :-1], "labels": self.train_labels[picks], "positions": positions,
                      "targets": targets}, targets.numel())

    def validation_batches(self, batch_size: int, seq_len: int):
        """Every held-out recording from its first sample to its last, in windows of seq_len predictions;
        targets past a recording's end are -100 (ignored by the loss)."""
        rows, labels, starts, targets = [], [], [], []

        def stacked():
            target = torch.stack(targets)
            return Batch({"codes": torch.stack(rows),
                          "labels": torch.tensor(labels, dtype=torch.long).reshape(len(rows), -1),
                          "positions": self.positions(torch.tensor(starts) - self.receptive_field,
                                                      self.receptive_field + seq_len - 1),
                          "targets": target}, int((target >= 0).sum()))

        # recordings in a fixed shuffled order, so a validation that reads only part of the split hears
        # every digit and speaker rather than the first few in file-name order
        order = torch.randperm(len(self.val), generator=torch.Generator().manual_seed(0)).tolist()
        for recording, label in ((self.val[i], self.val_labels[i]) for i in order):
            codes = torch.from_numpy(recording.codes).long()
            context = torch.full((self.receptive_field,), SILENCE, dtype=torch.long)
            stream = torch.cat([context, codes])
            for start in range(0, len(codes), seq_len):
                window = stream[start:start + self.receptive_field + seq_len]
                row = torch.full((self.receptive_field + seq_len,), SILENCE, dtype=torch.long)
                row[:len(window)] = window
                target = torch.full((seq_len,), -100, dtype=torch.long)
                real = len(window) - self.receptive_field
                target[:real] = window[self.receptive_field:]
                rows.append(row[:-1])
                labels.append(label)
                starts.append(start)
                targets.append(target)
                if len(rows) == batch_size:
                    yield stacked()
                    rows, labels, starts, targets = [], [], [], []
        if rows:
            yield stacked()


def read_audio_corpus(path, config: AudioModelConfig, val_fraction: float = 0.1,
                      meta: dict | None = None) -> AudioCorpus:
    root, files = list_files(path)
    rate = meta["sample_rate"] if meta else config.sample_rate
    read_labels, fields = label_reader(config.conditioning, root, files)
    if meta is not None:
        fields = list(meta["labels"])
    recordings, warnings, seconds_read = [], [], 0.0
    for p in files:
        labels = read_labels(p)
        if labels is None:
            warnings.append(f"skipped {p.name}: its name does not fit the pattern {config.conditioning!r}")
            continue
        if meta is not None:
            unknown = [f"{f}={labels.get(f)}" for f in fields if labels.get(f) not in meta["labels"][f]]
            if unknown:
                warnings.append(f"skipped {p.name}: the model was not trained on {', '.join(unknown)}")
                continue
        try:
            audio, seconds = decode(p, rate)
        except CorpusError as e:
            warnings.append(f"skipped {e}")
            continue
        seconds_read += seconds
        if np.abs(audio).max() < SILENT_PEAK:
            warnings.append(f"skipped {p.name}: it is silent")
            continue
        codes = mu_law_encode(trim(audio, config.silence_db))
        if len(codes) == 0:
            warnings.append(f"skipped {p.name}: nothing left after trimming silence")
            continue
        recordings.append(Recording(p, codes, labels))
    if not recordings:
        reasons = "; ".join(warnings[:3]) + (f"; and {len(warnings) - 3} more" if len(warnings) > 3 else "")
        raise CorpusError(f"{path} holds no usable audio ({reasons})")

    if meta is not None:
        label_values = meta["labels"]
    else:
        label_values = {f: sorted({r.labels[f] for r in recordings}) for f in fields}

    if config.validation_files:
        val = [r for r in recordings if fnmatch.fnmatch(r.path.name, config.validation_files)]
    else:
        every = max(2, round(1 / val_fraction)) if val_fraction > 0 else 0
        val = recordings[every - 1::every] if every else []
    held_out = {id(r) for r in val}
    train = [r for r in recordings if id(r) not in held_out]
    if val_fraction >= 1.0:
        train, val = recordings, recordings
    if not train or not val:
        raise CorpusError(f"{path}: {len(recordings)} usable recording(s) cannot be split into training and "
                          f"validation" + (f" with the pattern {config.validation_files!r}" if config.validation_files else
                                           "; add more files"))

    seconds_kept = sum(len(r.codes) for r in recordings) / rate
    train_samples, val_samples = sum(len(r.codes) for r in train), sum(len(r.codes) for r in val)
    lines = [f"{len(recordings)} recording(s) of {len(files)} file(s), resampled to {rate} Hz mono",
             f"kept {seconds_kept:.1f} s of {seconds_read:.1f} s read ({100 * seconds_kept / max(seconds_read, 1e-9):.0f}%): "
             f"silence more than {config.silence_db:g} dB below each file's peak trimmed from its ends",
             f"split by file: {len(train)} train ({train_samples / rate:.1f} s) / {len(val)} validation ({val_samples / rate:.1f} s)"]
    lines += [f"labels {f}: {', '.join(v[:12])}{' …' if len(v) > 12 else ''}" for f, v in label_values.items()]
    field = receptive_field(config)
    lines.append(f"receptive field: each sample is predicted from the {field:,} before it "
                 f"({1000 * field / rate:.0f} ms)")
    summary = {"source": str(path), "files": len(files), "recordings": len(recordings), "sample_rate": rate,
               "seconds_read": round(seconds_read, 2), "seconds_kept": round(seconds_kept, 2),
               "silence_db": config.silence_db, "train_samples": train_samples, "validation_samples": val_samples,
               "labels": {f: len(v) for f, v in label_values.items()}, "lines": lines, "warnings": warnings}
    return AudioCorpus(train, val, label_values, config, summary)

"""Reading an audio corpus: any file soundfile (libsndfile) decodes, at any rate and channel count, becomes mono
µ-law codes at the model's rate with leading and trailing silence trimmed, plus each file's labels.

Files that cannot be used are skipped with a warning naming them; when nothing usable is left the corpus is
refused with the reasons. The split into training and validation is by file, so no recording is in both; with
fewer files than that needs (one long recording, the most common case for a musician) it is by time instead:
the end of every recording is held out.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ConfigError, CorpusError
from ..core.fingerprint import corpus_files
from ..core.interface import Batch, Corpus
from .config import AudioModelConfig
from .model import SILENCE, mu_law_encode, position_index, receptive_field

SILENT_PEAK = 1e-4          # a file whose loudest sample is below -80 dBFS holds nothing to learn
MAX_FILE_SECONDS = 3600
MAX_PEAK = 100.0            # sound spans -1..1 (a float file may clip a little past it); far beyond is damage
MIN_FILE_RATE = 1000        # Hz; a lower rate in a header is damage, and would "resample" a few samples into hours


@dataclass(eq=False)      # compared by identity: one Recording is one recording (or one part of it)
class Recording:
    path: Path
    codes: np.ndarray       # uint8 µ-law, trimmed
    labels: dict[str, str]
    first: int = 0          # validation scores codes[first:]; codes before it (the training part of a recording
                            # split by time) are only the context it starts from
    whole: int = 0          # the recording's length when codes are only its training part (a split by time)

    @property
    def scored(self) -> int:
        return len(self.codes) - self.first

    @property
    def length(self) -> int:
        """The whole recording's length in samples, which positions in shares of it are counted against."""
        return self.whole or len(self.codes)


def decode(path: Path, rate: int, name: str | None = None) -> tuple[np.ndarray, float, str | None]:
    """Mono float32 audio at `rate`, the file's length in seconds, and a warning when the file is cut short
    (what is there is read); CorpusError when it is not audio. Messages call the file `name` (its name)."""
    import soundfile as sf
    name = name or path.name
    try:
        info = sf.info(str(path))
        if info.samplerate < MIN_FILE_RATE:
            raise CorpusError(f"{name} says its sample rate is {info.samplerate:,} Hz: a damaged header, or not "
                              f"sound (the lowest rate read is {MIN_FILE_RATE:,} Hz)")
        if info.frames and info.frames / info.samplerate > MAX_FILE_SECONDS:
            raise CorpusError(f"{name} is {info.frames / info.samplerate / 3600:.1f} hours long; split it into "
                              f"files under {MAX_FILE_SECONDS // 3600} hour")
        with sf.SoundFile(str(path)) as f:      # mixed to mono a block at a time: an hour of 8 channels at 96 kHz
            source_rate = f.samplerate          # would be 11 GB read whole
            audio = np.concatenate([block.mean(axis=1) for block in
                                    f.blocks(blocksize=1 << 18, dtype="float32", always_2d=True)] or [np.zeros(0)])
    except CorpusError:
        raise
    except Exception:  # noqa: BLE001 - libsndfile reports bad files with varying exception types
        raise CorpusError(f"{name} is not audio this studio can read (corrupt, or not WAV, FLAC, AIFF, OGG, "
                          f"Opus or MP3)") from None
    if audio.size == 0:
        raise CorpusError(f"{name} holds no samples")
    if not np.isfinite(audio).all():        # a float file can hold NaN: it would read as full-scale noise
        bad = int((~np.isfinite(audio)).sum())
        raise CorpusError(f"{name} is damaged: {bad:,} of its {audio.size:,} samples are not numbers (NaN or "
                          f"infinite)")
    if np.abs(audio).max() > MAX_PEAK:      # a float file's damage; it would make all the rest "silence"
        raise CorpusError(f"{name} is damaged: its samples reach {np.abs(audio).max():.3g}, far outside sound's "
                          f"range of -1 to 1")
    seconds = len(audio) / source_rate
    if source_rate != rate:
        import librosa
        audio = librosa.resample(audio, orig_sr=source_rate, target_sr=rate, res_type="soxr_hq")
    return audio.astype(np.float32), seconds, truncation(name, info.extra_info, seconds)


def truncation(name: str, log: str, seconds: float) -> str | None:
    """A warning when libsndfile's log says the audio chunk of a WAV or AIFF file is shorter than its header
    promises (a copy or download that did not finish): libsndfile reads what is there without complaint."""
    cut = re.search(r"^\s*(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", log, re.MULTILINE)
    if not cut or int(cut[2]) >= int(cut[1]):
        return None
    promised = seconds * int(cut[1]) / max(int(cut[2]), 1)
    return (f"{name} is cut short: its header promises {promised:.2f} s of audio but the file ends after "
            f"{seconds:.2f} s (a copy or download that did not finish?); the {seconds:.2f} s there were read")


def trim(audio: np.ndarray, silence_db: float) -> np.ndarray:
    """The recording without the silence at its ends, as µ-law codes. librosa finds the sound by 32 ms frames;
    within the first and last frame, samples the model cannot tell from silence (within a code of it) go too,
    so that a recording starts with a sound: from silence, at the start of a recording, the next sample is
    always sound, and generation starts its word rather than staying silent (30% of FSDD's recordings began
    within a code of silence)."""
    import librosa
    trimmed, _ = librosa.effects.trim(audio, top_db=silence_db, frame_length=256, hop_length=64)
    codes = mu_law_encode(trimmed)
    sound = np.flatnonzero(np.abs(codes.astype(np.int16) - SILENCE) > 1)
    return codes[sound[0]:sound[-1] + 1] if len(sound) else codes[:0]


def label_reader(conditioning: str, root: Path, files: list[Path], known: dict[str, list[str]] | None = None):
    """A function file -> {field: value} (None when the file does not fit), and the field names. With `known`
    (a trained model's label values), a field of a pattern matches only one of the model's values, so a name
    the pattern does not describe is not misread (147793__take.ogg is not digit 147793)."""
    if conditioning == "none":
        return (lambda p: {}), []
    if conditioning == "auto":
        folders = {p.parent for p in files}
        if len(folders) < 2 and "folder" not in (known or {}):
            return (lambda p: {}), []
        return (lambda p: {"folder": p.parent.relative_to(root).as_posix() if p.parent != root else "."}), ["folder"]
    fields = re.findall(r"\{(\w*)\}", conditioning)
    named = [f for f in fields if f]
    for name in named:
        if not name.isidentifier():
            raise CorpusError(f"conditioning pattern {conditioning!r}: {{{name}}} is not a field name (letters, digits "
                              f"and _, not starting with a digit)")
        if named.count(name) > 1:
            raise CorpusError(f"conditioning pattern {conditioning!r} names {{{name}}} twice")
    regex = ""
    for literal, field in re.findall(r"([^{}]*)(\{\w*\})?", conditioning):
        regex += re.escape(literal)
        if field:
            name = field[1:-1]
            if known and name in known:     # where a name reads two ways, the longer value wins
                regex += f"(?P<{name}>{'|'.join(map(re.escape, sorted(known[name], key=len, reverse=True)))})"
            else:
                regex += f"(?P<{name}>.+?)" if name else ".+?"
    pattern = re.compile(regex)
    if not named:
        raise CorpusError(f"conditioning pattern {conditioning!r} names no field (write e.g. {{speaker}}_{{}})")

    def read(p: Path):
        match = pattern.fullmatch(p.stem)
        return {name: match.group(name) for name in named} if match else None
    return read, named


def listed(values: dict[str, list[str]], most: int = 6) -> str:
    """'digit: 0, 1, 2; speaker: ann, bob' with at most `most` values a field."""
    return "; ".join(f"{f}: {', '.join(v[:most])}{' …' if len(v) > most else ''}" for f, v in values.items())


def with_reasons(message: str, warnings: list[str]) -> str:
    """A refusal followed by the first warnings about skipped files, which usually say why."""
    if not warnings:
        return message
    return f"{message} ({'; '.join(warnings[:3])}{f'; and {len(warnings) - 3} more' if len(warnings) > 3 else ''})"


class AudioCorpus(Corpus):
    def __init__(self, train: list[Recording], val: list[Recording], label_values: dict[str, list[str]],
                 config: AudioModelConfig, summary: dict):
        self.rate = config.sample_rate
        self.tail = int(config.tail_seconds * config.sample_rate)
        self.receptive_field = receptive_field(config)
        self.config = config
        self.meta = {"sample_rate": config.sample_rate, "labels": label_values}
        if config.position_per and config.position_per not in label_values:
            raise ConfigError(f"position_per={config.position_per!r} names no label field of this corpus "
                              f"({'its fields: ' + ', '.join(label_values) if label_values else 'it has no labels'})")
        if config.position_shares:
            self.meta["word_lengths"] = word_lengths(train, config.position_per)
        self.summary = summary
        self.fields = list(label_values)
        index = {f: {v: i for i, v in enumerate(values)} for f, values in label_values.items()}
        self.train = [self.padded(r.codes) for r in train]
        self.train_labels = torch.tensor([[index[f][r.labels[f]] for f in self.fields] for r in train],
                                         dtype=torch.long).reshape(len(train), len(self.fields))
        self.train_lengths = torch.tensor([r.length for r in train])      # positions are shares of these
        self.train_weights = torch.tensor([len(r.codes) for r in train], dtype=torch.float)   # a pick per sample
        self.val = val
        self.val_labels = [[index[f][r.labels[f]] for f in self.fields] for r in val]

    def padded(self, codes: np.ndarray) -> torch.Tensor:
        """Silence before (the context a recording starts from) and after it (config.tail_seconds)."""
        return torch.from_numpy(np.concatenate([np.full(self.receptive_field, SILENCE, np.uint8), codes,
                                                np.full(self.tail, SILENCE, np.uint8)]))

    def positions(self, first: torch.Tensor, length: int, recording_lengths: torch.Tensor) -> torch.Tensor:
        """Position-table rows of `length` inputs per row, the first at sample offset `first` (B,) of a
        recording `recording_lengths` (B,) samples long."""
        return position_index(first[:, None] + torch.arange(length), self.config, recording_lengths[:, None])

    def batch(self, batch_size: int, seq_len: int, generator):
        """Windows from recordings drawn in proportion to their length:
        (context + inputs, labels, positions of the inputs, targets).

        A window may begin up to seq_len - 1 samples before its recording's silent context, its targets there
        not counted (-100): otherwise only a window that begins exactly at the start would ever show the first
        sample of a recording predicted from silence (1 in ~5,000 for a spoken digit), and a model that never
        learnt how a sound starts from silence stays silent when it generates from silence."""
        width = self.receptive_field + seq_len
        picks = torch.multinomial(self.train_weights, batch_size, replacement=True, generator=generator)
        windows = torch.full((batch_size, width), SILENCE, dtype=torch.long)
        starts = torch.zeros(batch_size, dtype=torch.long)
        for row, i in enumerate(picks.tolist()):
            codes = self.train[i]
            start = int(torch.randint(1 - seq_len, max(1, len(codes) - width + 1), (1,), generator=generator))
            piece = codes[max(start, 0):start + width]
            windows[row, max(-start, 0):max(-start, 0) + len(piece)] = piece.long()
            starts[row] = start
        positions = self.positions(starts - self.receptive_field, width - 1, self.train_lengths[picks])
        targets = windows[:, self.receptive_field:].clone()
        before = torch.arange(seq_len)[None] < -starts[:, None]       # targets in the silence before a recording
        targets[before] = -100
        return Batch({"codes": windows[:, :-1], "labels": self.train_labels[picks], "positions": positions,
                      "targets": targets}, int((~before).sum()))

    def validation_batches(self, batch_size: int, seq_len: int):
        """Every held-out recording from its first scored sample (`first`: 0, or where the held-out end of a
        recording split by time begins, read on from the audio before it) to its last, in windows of seq_len
        predictions; targets past a recording's end are -100 (ignored by the loss)."""
        rows, labels, starts, lengths, targets = [], [], [], [], []

        def stacked():
            target = torch.stack(targets)
            return Batch({"codes": torch.stack(rows),
                          "labels": torch.tensor(labels, dtype=torch.long).reshape(len(rows), -1),
                          "positions": self.positions(torch.tensor(starts) - self.receptive_field,
                                                      self.receptive_field + seq_len - 1, torch.tensor(lengths)),
                          "targets": target}, int((target >= 0).sum()))

        # recordings in a fixed shuffled order, so a validation that reads only part of the split hears
        # every digit and speaker rather than the first few in file-name order
        order = torch.randperm(len(self.val), generator=torch.Generator().manual_seed(0)).tolist()
        for recording, label in ((self.val[i], self.val_labels[i]) for i in order):
            codes = torch.from_numpy(recording.codes).long()
            context = torch.full((self.receptive_field,), SILENCE, dtype=torch.long)
            stream = torch.cat([context, codes])
            for start in range(recording.first, len(codes), seq_len):
                window = stream[start:start + self.receptive_field + seq_len]
                row = torch.full((self.receptive_field + seq_len,), SILENCE, dtype=torch.long)
                row[:len(window)] = window
                target = torch.full((seq_len,), -100, dtype=torch.long)
                real = len(window) - self.receptive_field
                target[:real] = window[self.receptive_field:]
                rows.append(row[:-1])
                labels.append(label)
                starts.append(start)
                lengths.append(recording.length)
                targets.append(target)
                if len(rows) == batch_size:
                    yield stacked()
                    rows, labels, starts, lengths, targets = [], [], [], [], []
        if rows:
            yield stacked()


def read_audio_corpus(path, config: AudioModelConfig, val_fraction: float = 0.1,
                      meta: dict | None = None) -> AudioCorpus:
    """Read a corpus. With `meta` (a trained model's), it is read at the model's rate, and files whose labels
    are not among the model's are skipped, each with a warning saying why."""
    root, files = corpus_files(path)
    rate = meta["sample_rate"] if meta else config.sample_rate
    read_labels, fields = label_reader(config.conditioning, root, files, meta["labels"] if meta else None)
    if meta is not None:
        fields = list(meta["labels"])
    recordings, warnings, seconds_read = [], [], 0.0
    for p in files:
        name = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name   # low/0.wav, not 0.wav
        labels = read_labels(p)
        if labels is None:
            warnings.append(f"skipped {name}: its name does not fit the pattern {config.conditioning!r}"
                            + (f" with one of the model's labels ({listed(meta['labels'])})" if meta else ""))
            continue
        if meta is not None:
            unknown = [f"{f}={labels.get(f)}" for f in fields if labels.get(f) not in meta["labels"][f]]
            if unknown:
                warnings.append(f"skipped {name}: the model was not trained on {', '.join(unknown)} "
                                f"(it knows {listed(meta['labels'])})")
                continue
        try:
            audio, seconds, cut_short = decode(p, rate, name)
        except CorpusError as e:
            warnings.append(f"skipped {e}")
            continue
        if cut_short:
            warnings.append(cut_short)
        seconds_read += seconds
        if np.abs(audio).max() < SILENT_PEAK:
            warnings.append(f"skipped {name}: it is silent")
            continue
        codes = trim(audio, config.silence_db)
        if len(codes) == 0:
            warnings.append(f"skipped {name}: nothing left after trimming silence")
            continue
        recordings.append(Recording(p, codes, labels))
    if not recordings:
        raise CorpusError(with_reasons(f"{path} holds no usable audio", warnings))

    if meta is not None:
        label_values = meta["labels"]
    else:
        label_values = {f: sorted({r.labels[f] for r in recordings}) for f in fields}

    train, val, how = split(recordings, config.validation_files, val_fraction)
    if config.validation_files and not (train and val):
        raise CorpusError(with_reasons(
            f"{path}: the validation_files pattern {config.validation_files!r} matches {len(val)} of the "
            f"{len(recordings)} usable recordings; it must leave some for training and some for validation",
            warnings))
    if val_fraction > 0 and not val:        # split by time, and every recording too short to split
        named = lambda r: r.path.relative_to(root).as_posix() if r.path.is_relative_to(root) else r.path.name
        names = ", ".join(f"{named(r)} ({len(r.codes)} sample{'s' if len(r.codes) > 1 else ''})"
                          for r in recordings[:6]) + (" …" if len(recordings) > 6 else "")
        raise CorpusError(with_reasons(
            f"{path}: too little audio to hold any out for validation (by time, as there are too few files to "
            f"hold whole ones out): {names} after trimming silence", warnings))

    seconds_kept = sum(len(r.codes) for r in recordings) / rate
    train_samples, val_samples = sum(r.scored for r in train), sum(r.scored for r in val)
    lines = [f"{len(recordings)} recording(s) of {len(files)} file(s), resampled to {rate} Hz mono",
             f"kept {seconds_kept:.1f} s of {seconds_read:.1f} s read ({100 * seconds_kept / max(seconds_read, 1e-9):.0f}%): "
             f"silence more than {config.silence_db:g} dB below each file's peak trimmed from its ends",
             f"{how}: {len(train)} train ({train_samples / rate:.1f} s) / {len(val)} validation ({val_samples / rate:.1f} s)"]
    lines += [f"labels {f}: {', '.join(v[:12])}{' …' if len(v) > 12 else ''}" for f, v in label_values.items()]
    if not label_values and config.conditioning == "auto" and meta is None and len(recordings) > 1:
        lines.append('labels: none found (all files sit in one folder). To label them, put them in one sub-folder '
                     'per label, or name the labels in a file-name pattern with the model setting "conditioning": '
                     '"{digit}_{speaker}_{}" reads 7_jackson_0.wav as digit 7, speaker jackson ({} matches '
                     'anything; on the command line: --set model.conditioning="{digit}_{speaker}_{}")')
    field = receptive_field(config)
    lines.append(f"receptive field: each sample is predicted from the {field:,} before it "
                 f"({1000 * field / rate:.0f} ms)")
    summary = {"source": str(path), "files": len(files), "recordings": len(recordings), "sample_rate": rate,
               "seconds_read": round(seconds_read, 2), "seconds_kept": round(seconds_kept, 2),
               "silence_db": config.silence_db, "train_samples": train_samples, "validation_samples": val_samples,
               "labels": {f: len(v) for f, v in label_values.items()}, "lines": lines, "warnings": warnings}
    return AudioCorpus(train, val, label_values, config, summary)


LENGTH_QUANTILES = 21


def word_lengths(recordings: list[Recording], field: str) -> dict[str, list[int]]:
    """The training recordings' lengths in samples, as quantiles (0%, 5%, ..., 100%): of all of them under "",
    and per value of `field` if one is named. Generation draws a word's length from them
    (sample.draw_word_lengths)."""
    groups: dict[str, list[int]] = {"": [r.length for r in recordings]}
    for r in recordings:
        if field:
            groups.setdefault(r.labels[field], []).append(r.length)
    return {value: [int(round(q)) for q in np.quantile(found, np.linspace(0, 1, LENGTH_QUANTILES))]
            for value, found in sorted(groups.items())}


def split(recordings: list[Recording], validation_files: str, val_fraction: float):
    """(train, validation, how it was split). By file: the recordings matching `validation_files`, else every
    n-th (n from val_fraction); with fewer recordings than n, by time: the last val_fraction of every
    recording, which keeps the part before it as its context. A val_fraction of 1 validates on everything
    (measuring a trained model)."""
    if val_fraction >= 1.0:
        return recordings, recordings, "all of it validated"
    if validation_files:
        val = [r for r in recordings if fnmatch.fnmatch(r.path.name, validation_files)]
        return without(recordings, val), val, f"split by file ({validation_files!r} held out)"
    if val_fraction <= 0:
        return recordings, [], "nothing held out"
    every = max(2, round(1 / val_fraction))
    if len(recordings) >= every:
        val = recordings[every - 1::every]
        return without(recordings, val), val, "split by file"
    train, val = [], []
    for r in recordings:
        first = len(r.codes) - max(1, round(len(r.codes) * val_fraction))
        if first < 1:           # a single sample: nothing to split
            train.append(r)
            continue
        train.append(Recording(r.path, r.codes[:first], r.labels, whole=len(r.codes)))
        val.append(Recording(r.path, r.codes, r.labels, first))
    return train, val, (f"split by time (the last {val_fraction:.0%} of each recording held out, as a split by "
                        f"file needs at least {every} usable files)")


def without(recordings: list[Recording], held_out: list[Recording]) -> list[Recording]:
    held = set(held_out)
    return [r for r in recordings if r not in held]

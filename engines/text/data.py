"""Reading a text corpus: a file, a folder (recursively) or a glob, as UTF-8.

The corpus is read twice in 16 MB blocks, once to collect the vocabulary and count characters and once to
write each character's id into one preallocated array (1 byte per character for up to 256 distinct
characters), so a corpus of hundreds of MB never exists as several full copies in memory.
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..core.errors import CorpusError
from ..core.interface import Batch, Corpus

BLOCK = 1 << 24
SMALL_CORPUS = 100_000          # characters; below this a model mostly memorises
LARGE_VOCAB = 300


def corpus_files(path: str | Path) -> tuple[list[Path], list[str]]:
    """The text files a path names, and warnings about files passed over."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
        if not candidates:
            raise CorpusError(f"no files match {text}")
    else:
        path = Path(path).expanduser()
        if not path.exists():
            raise CorpusError(f"{path} does not exist")
        if path.is_file():
            return [path], []
        candidates = sorted(p for p in path.rglob("*") if p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
    files, warnings = [], []
    for p in candidates:
        with open(p, "rb") as f:
            head = f.read(8192)
        if not head:
            warnings.append(f"skipped empty file {p}")
        elif b"\0" in head:
            warnings.append(f"skipped {p}: it looks binary, not text")
        else:
            files.append(p)
    if not files:
        raise CorpusError(f"{path} contains no text files" + (f" ({'; '.join(warnings[:3])})" if warnings else ""))
    return files, warnings


def complete_utf8_prefix(data: bytes) -> int:
    """Length of the longest prefix of data that does not end inside a multi-byte UTF-8 character."""
    lead = len(data) - 1
    while lead > len(data) - 4 and lead > 0 and data[lead] & 0xC0 == 0x80:   # continuation bytes
        lead -= 1
    first = data[lead]
    needed = 4 if first >= 0xF0 else 3 if first >= 0xE0 else 2 if first >= 0xC0 else 1
    return lead if len(data) - lead < needed else len(data)


def read_blocks(path: Path) -> Iterator[str]:
    """Decoded text of a file, block by block; errors name the file and the exact byte offset."""
    offset, carry = 0, b""
    with open(path, "rb") as f:
        while True:
            raw = f.read(BLOCK)
            data = carry + raw
            if not data:
                return
            nul = data.find(b"\0")
            if nul >= 0:
                raise CorpusError(f"{path} looks like a binary file, not text (NUL byte at byte offset {offset + nul})")
            # cut before an incomplete UTF-8 sequence at the end of the block; the next block completes it
            cut = complete_utf8_prefix(data) if raw else len(data)
            if raw and data[cut - 1:cut] == b"\r":
                cut -= 1          # keep a \r\n pair together so it is normalised below
            try:
                text = data[:cut].decode("utf-8")
            except UnicodeDecodeError as e:
                bad = data[e.start]
                raise CorpusError(f"{path} is not UTF-8 text: byte 0x{bad:02x} at byte offset {offset + e.start} "
                                  f"cannot be decoded (is it Latin-1 or another encoding? re-save it as UTF-8)") from None
            if offset == 0:
                text = text.removeprefix("\ufeff")
            yield text.replace("\r\n", "\n")
            offset += cut
            carry = data[cut:]
            if not raw:
                return


class TextCorpus(Corpus):
    def __init__(self, ids: np.ndarray, vocab: str, val_fraction: float, summary: dict):
        self.meta = {"vocab": vocab}
        data = torch.from_numpy(ids)
        n_val = int(len(data) * val_fraction)
        self.train, self.val = data[: len(data) - n_val], data[len(data) - n_val:]
        self.summary = {**summary, "train_characters": len(self.train), "validation_characters": len(self.val)}
        self.summary["lines"] = [
            f"{summary['files']} file(s), {summary['bytes'] / 1e6:.2f} MB, {summary['characters']:,} characters",
            f"vocabulary: {summary['vocabulary']} symbols",
            f"split: {len(self.train):,} train / {len(self.val):,} validation characters"]

    def batch(self, batch_size: int, seq_len: int, generator):
        seq_len = min(seq_len, len(self.train) - 1)
        starts = torch.randint(0, len(self.train) - seq_len, (batch_size, 1), generator=generator)
        window = starts + torch.arange(seq_len + 1)
        chunk = self.train[window].long()                               # (B, T+1)
        return Batch({"x": chunk[:, :-1], "y": chunk[:, 1:]}, chunk[:, 1:].numel())

    def validation_batches(self, batch_size: int, seq_len: int):
        """The validation text cut into `batch_size` contiguous streams, walked seq_len at a time: row i of
        one batch continues row i of the one before, so an RNN can carry its state across them. The streams
        start evenly spread over the split, so the first batches already sample all of it."""
        streams = max(1, min(batch_size, (len(self.val) - 1) // seq_len))
        length = (len(self.val) - 1) // streams
        x = self.val[: streams * length].view(streams, length)
        y = self.val[1: streams * length + 1].view(streams, length)
        for start in range(0, length, seq_len):
            target = y[:, start:start + seq_len].long()
            yield Batch({"x": x[:, start:start + seq_len].long(), "y": target}, target.numel())


def read_text_corpus(path: str | Path, val_fraction: float = 0.1, vocab: str | None = None) -> TextCorpus:
    """Read a corpus; with `vocab` (a trained model's), characters outside it are an error."""
    files, warnings = corpus_files(path)
    seen: set[str] = set()
    n_chars = n_bytes = 0
    for f in files:
        n_bytes += f.stat().st_size
        for block in read_blocks(f):
            seen.update(block)
            n_chars += len(block)
    if n_chars == 0:
        raise CorpusError(f"{path} holds no text (every file is empty)")
    if vocab is None:
        vocab = "".join(sorted(seen))
    else:
        unseen = seen - set(vocab)
        if unseen:
            raise CorpusError(f"{path} has characters the model never saw: {''.join(sorted(unseen))[:40]!r}")
    lookup = np.zeros(max(map(ord, vocab)) + 1, dtype=np.int32)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    ids = np.empty(n_chars, dtype=np.uint8 if len(vocab) <= 256 else np.int32)
    pos = 0
    for f in files:
        for block in read_blocks(f):
            codepoints = np.frombuffer(block.encode("utf-32-le"), dtype=np.uint32)
            ids[pos:pos + len(block)] = lookup[codepoints]
            pos += len(block)
    val = int(n_chars * val_fraction)
    if val_fraction > 0 and val < 2:
        raise CorpusError(f"{path} is too small ({n_chars} characters) to hold out a validation split")
    if n_chars < SMALL_CORPUS:
        warnings.append(f"very small corpus ({n_chars:,} characters): the model will mostly memorise it")
    if len(vocab) > LARGE_VOCAB:
        warnings.append(f"large vocabulary ({len(vocab)} distinct characters): rare characters will be learnt poorly")
    summary = {"source": str(path), "files": len(files), "bytes": n_bytes, "characters": n_chars,
               "vocabulary": len(vocab), "warnings": warnings}
    return TextCorpus(ids, vocab, val_fraction, summary)

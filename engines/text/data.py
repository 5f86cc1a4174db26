"""Reading a text corpus: a file, a folder (recursively) or a glob, as UTF-8, with every line ending (CRLF,
and the lone CR of old Mac files) read as LF, so the model's newline is always "\n".

The corpus is read twice in 16 MB blocks, once to collect the vocabulary and count characters and once to
write each character's id into one preallocated array (1 byte per character for up to 256 distinct
characters), so a corpus of hundreds of MB never exists as several full copies in memory.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..core.errors import CorpusError
from ..core.fingerprint import corpus_files
from ..core.interface import Batch, Corpus

BLOCK = 1 << 24
SMALL_CORPUS = 100_000          # characters; below this a model mostly memorises
LARGE_VOCAB = 300
ENDING_NAMES = {"CRLF": "CRLF (Windows)", "CR": "lone CR (old Mac)"}


def text_files(path: str | Path) -> tuple[list[Path], list[str]]:
    """The text files a path names, and warnings about files passed over."""
    if Path(path).expanduser().is_file():
        return [Path(path).expanduser()], []        # named on its own: reading it says what is wrong with it
    candidates = corpus_files(path)[1]
    files, warnings = [], []
    for p in candidates:
        with open(p, "rb") as f:
            head = f.read(8192)
        if not head:
            warnings.append(f"skipped empty file {p}")
        elif encoding := wide_unicode(head):
            warnings.append(f"skipped {p}: it is {encoding} text; re-save it as UTF-8 to use it")
        elif b"\0" in head:
            warnings.append(f"skipped {p}: it looks binary, not text")
        elif not is_utf8(head):
            warnings.append(f"skipped {p}: it is not UTF-8 text (Latin-1 or another encoding?); re-save it as "
                            f"UTF-8 to use it")
        else:
            files.append(p)
    if not files:
        raise CorpusError(f"{path} contains no text files" + (f" ({'; '.join(warnings[:3])})" if warnings else ""))
    return files, warnings


def wide_unicode(head: bytes) -> str | None:
    """"UTF-16" or "UTF-32" when a file's first bytes are text in that encoding (its byte order mark, or
    ASCII-range text with a NUL as every other byte), else None. Such files hold NUL bytes, so without this
    they would be called binary."""
    if head[:4] in (b"\xff\xfe\0\0", b"\0\0\xfe\xff"):
        return "UTF-32"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16"
    pairs = len(head) // 2
    even, odd = head[0:2 * pairs:2].count(0), head[1:2 * pairs:2].count(0)
    if pairs >= 4 and max(even, odd) >= 0.9 * pairs and min(even, odd) <= 0.1 * pairs:
        return "UTF-16"
    return None


def is_utf8(head: bytes) -> bool:
    """Whether the start of a file decodes as UTF-8 (a character cut at the end of it aside)."""
    try:
        head[:complete_utf8_prefix(head)].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def complete_utf8_prefix(data: bytes) -> int:
    """Length of the longest prefix of data that does not end inside a multi-byte UTF-8 character."""
    lead = len(data) - 1
    while lead > len(data) - 4 and lead > 0 and data[lead] & 0xC0 == 0x80:   # continuation bytes
        lead -= 1
    first = data[lead]
    needed = 4 if first >= 0xF0 else 3 if first >= 0xE0 else 2 if first >= 0xC0 else 1
    return lead if len(data) - lead < needed else len(data)


def read_blocks(path: Path, endings: Counter | None = None) -> Iterator[str]:
    """Decoded text of a file, block by block, CRLF and lone CR turned into LF (counted in `endings`, under
    "CRLF" and "CR", when given); errors name the file and the exact byte offset."""
    offset, carry = 0, b""
    with open(path, "rb") as f:
        while True:
            raw = f.read(BLOCK)
            data = carry + raw
            if not data:
                return
            wide = wide_unicode(data[:8192]) if offset == 0 else None
            if wide:
                raise CorpusError(f"{path} is {wide} text, and this studio reads UTF-8: re-save it as UTF-8 (in a "
                                  f"text editor: Save As, encoding UTF-8)")
            nul = data.find(b"\0")
            if nul >= 0:
                raise CorpusError(f"{path} looks like a binary file, not text (NUL byte at byte offset {offset + nul})")
            # cut before an incomplete UTF-8 sequence at the end of the block; the next block completes it
            cut = complete_utf8_prefix(data) if raw else len(data)
            if raw and data[cut - 1:cut] == b"\r":
                cut -= 1          # keep a \r\n pair together: it is one line ending, not two
            try:
                text = data[:cut].decode("utf-8")
            except UnicodeDecodeError as e:
                bad = data[e.start]
                raise CorpusError(f"{path} is not UTF-8 text: byte 0x{bad:02x} at byte offset {offset + e.start} "
                                  f"cannot be decoded (is it Latin-1 or another encoding? re-save it as UTF-8)") from None
            if offset == 0:
                text = text.removeprefix("\ufeff")
            if "\r" in text:
                if endings is not None:
                    pairs = text.count("\r\n")
                    endings.update(CRLF=pairs, CR=text.count("\r") - pairs)
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            yield text
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
        endings = [f"{n:,} {ENDING_NAMES[name]}" for name, n in summary["line_endings"].items() if n]
        self.summary["lines"] = [
            f"{summary['files']} file(s), {summary['bytes'] / 1e6:.2f} MB, {summary['characters']:,} characters",
            *([f"line endings: {' and '.join(endings)} read as LF (\\n)"] if endings else []),
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


def read_text_corpus(path: str | Path, val_fraction: float = 0.1, vocab: str | None = None,
                     skip_unseen: bool = False) -> TextCorpus:
    """Read a corpus. With `vocab` (a trained model's), characters outside it refuse the corpus (a resumed
    training must read it as it was first read), or with `skip_unseen` (measuring a model on outside text)
    they are left out and counted in the summary and its warnings."""
    candidates, warnings = text_files(path)
    files: list[Path] = []
    seen: set[str] = set()
    endings: Counter = Counter(CRLF=0, CR=0)
    n_chars = n_bytes = 0
    for f in candidates:
        file_seen, file_endings, file_chars = set(), Counter(), 0
        try:
            for block in read_blocks(f, file_endings):
                file_seen.update(block)
                file_chars += len(block)
        except CorpusError as e:
            if Path(path).expanduser().is_file():
                raise                         # the file named on its own: its error is the answer
            # a file of a folder that goes bad past the start text_files checked: the others are still read
            warnings.append(f"skipped {f}, which {str(e).removeprefix(f'{f} ')}")
            continue
        files.append(f)
        seen |= file_seen
        endings.update(file_endings)
        n_chars += file_chars
        n_bytes += f.stat().st_size
    if not files:
        raise CorpusError(f"{path} contains no text files ({'; '.join(warnings[:3])})")
    if n_chars == 0:
        raise CorpusError(f"{path} holds no text (every file is empty)")
    if vocab is None:
        vocab = "".join(sorted(seen))
    unseen = seen - set(vocab)
    if unseen and not skip_unseen:
        raise CorpusError(f"{path} has characters the model never saw: {''.join(sorted(unseen))[:40]!r}")
    lookup = np.full(max(map(ord, seen | set(vocab))) + 1, -1, dtype=np.int32)    # -1: a character not in vocab
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    ids = np.empty(n_chars, dtype=np.uint8 if len(vocab) <= 256 else np.int32)
    skipped: Counter = Counter()
    pos = 0
    for f in files:
        for block in read_blocks(f):
            codepoints = np.frombuffer(block.encode("utf-32-le"), dtype=np.uint32)
            block_ids = lookup[codepoints]
            if unseen:
                known = block_ids >= 0
                values, counts = np.unique(codepoints[~known], return_counts=True)
                skipped.update(dict(zip(map(chr, values), counts.tolist())))
                block_ids = block_ids[known]
            ids[pos:pos + len(block_ids)] = block_ids
            pos += len(block_ids)
    ids = ids[:pos]
    if skipped:
        if pos == 0:
            raise CorpusError(f"{path} holds no character the model knows")
        common = ", ".join(f"{c!r} x{n:,}" for c, n in skipped.most_common(8))
        warnings.append(f"left out {skipped.total():,} character(s) the model never saw ({common}"
                        f"{', ...' if len(skipped) > 8 else ''}): measured on the other {pos:,}")
    val = int(pos * val_fraction)
    if val_fraction > 0 and val < 2:
        raise CorpusError(f"{path} is too small ({pos} characters) to hold out a validation split")
    if pos < SMALL_CORPUS:
        warnings.append(f"very small corpus ({pos:,} characters): the model will mostly memorise it")
    if len(vocab) > LARGE_VOCAB:
        warnings.append(f"large vocabulary ({len(vocab)} distinct characters): rare characters will be learnt poorly")
    summary = {"source": str(path), "files": len(files), "bytes": n_bytes, "characters": pos,
               "skipped_characters": skipped.total(), "line_endings": dict(endings), "vocabulary": len(vocab),
               "warnings": warnings}
    return TextCorpus(ids, vocab, val_fraction, summary)

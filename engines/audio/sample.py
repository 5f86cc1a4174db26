"""Streaming audio generation: labels chosen, an optional primer fed in, then AudioChunks of ~50 ms.

Every variation starts from a receptive field of silence (what each training recording starts from), then the
primer if there is one, fed a second at a time: the primer's audio streams out as it is read (unless the
setting keep_primer is off) and a long one reports its progress, so a two-minute primer neither looks like a
hang nor holds up Stop. Draws use one uniform number per sample from a seeded numpy generator, so the fast
path (fast.py) and the reference path here (a full forward pass per sample) can be checked sample for sample.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.interface import Notice
from .chunks import AudioChunk
from .fast import FastGenerator
from .model import SILENCE, WaveNet, mu_law_decode, mu_law_encode, position_index

CHUNK_SECONDS = 0.05
PRIMER_BLOCK_SECONDS = 1.0        # the primer is fed a block at a time; Stop is heard between blocks
PRIMER_PROGRESS_SECONDS = 10.0    # a primer longer than this reports each tenth of it read


def parse_labels(text: str, label_values: dict[str, list[str]], variations: int,
                 rng: np.random.Generator) -> tuple[torch.Tensor | None, list[str]]:
    """'7 jackson' or 'digit=7 speaker=jackson' -> label indices (variations, fields); fields left out are
    drawn at random for each variation. Returns the indices and a description of what was chosen."""
    fields = list(label_values)
    tokens = text.replace(",", " ").split()
    if not fields:
        if tokens:
            raise ConfigError("this model was trained without labels; leave the label empty")
        return None, []
    chosen: dict[str, str] = {}
    for token in tokens:
        if "=" in token:
            field, value = token.split("=", 1)
            if field not in label_values:
                raise ConfigError(f"no label field {field!r}; this model has {', '.join(fields)}")
        else:
            owners = [f for f in fields if token in label_values[f]]
            if len(owners) != 1:
                known = "; ".join(f"{f}: {', '.join(v)}" for f, v in label_values.items())
                why = "is ambiguous" if owners else "is not a label this model knows"
                raise ConfigError(f"label {token!r} {why} ({known})")
            field, value = owners[0], token
        if value not in label_values[field]:
            raise ConfigError(f"{field} {value!r} is not one of {', '.join(label_values[field])}")
        chosen[field] = value
    rows, described = [], []
    for _ in range(variations):
        row = {f: chosen.get(f) or label_values[f][rng.integers(len(label_values[f]))] for f in fields}
        rows.append([label_values[f].index(row[f]) for f in fields])
        described.append(" ".join(f"{f}={row[f]}" for f in fields))
    return torch.tensor(rows, dtype=torch.long), described


# a drawn word length lies between these quantiles of the training recordings' lengths: beyond them are a few odd
# recordings (a 2.3 s "nine" among words of 0.3-0.6 s) whose pace the model has barely heard
DRAWN_LENGTHS = (0.05, 0.95)


def draw_word_lengths(model: WaveNet, meta: dict, labels: torch.Tensor | None, variations: int, seconds: float,
                      rng: np.random.Generator) -> np.ndarray | None:
    """Each variation's word length in samples, for a model told its position in shares of a recording's length
    (None for any other): `seconds` if above 0, else drawn from the middle of the training recordings' lengths
    for its value of position_per."""
    if not model.config.position_shares:
        return None
    if seconds > 0:
        return np.full(variations, max(1, round(seconds * meta["sample_rate"])), np.int64)
    quantiles, field = meta["word_lengths"], model.config.position_per
    values = [""] * variations
    if field:
        values = [meta["labels"][field][i] for i in labels[:, list(meta["labels"]).index(field)].tolist()]
    grid = np.linspace(0, 1, len(quantiles[""]))
    return np.array([round(np.interp(rng.uniform(*DRAWN_LENGTHS), grid, quantiles.get(v, quantiles[""])))
                     for v in values], np.int64)


def primer_codes(path: str, rate: int) -> tuple[np.ndarray, str | None]:
    """The primer's µ-law codes at `rate`, and a warning when the file is cut short."""
    from .data import decode
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"the primer {path} does not exist")
    audio, _, cut_short = decode(path, rate)
    return mu_law_encode(audio).astype(np.int64), cut_short


def warm_up_codes(model: WaveNet, primer: np.ndarray | None) -> np.ndarray:
    """Codes fed before sampling starts: silence across the receptive field, then the primer."""
    silence = np.full(model.receptive_field - 1, SILENCE, np.int64)
    return silence if primer is None else np.concatenate([silence, primer])


def feed(fast: FastGenerator, codes: np.ndarray) -> None:
    """The same codes fed to every variation (nothing drawn)."""
    fast.run(np.broadcast_to(codes, (fast.batch, len(codes))), np.zeros((fast.batch, len(codes))))


def read_primer(fast: FastGenerator, primer: np.ndarray, rate: int, keep: bool) -> Iterator[AudioChunk | Notice]:
    """Feed the primer a block at a time: each block's audio follows when the primer is kept in the output,
    and a long primer reports every tenth of it read."""
    block, seconds, tenths = max(1, int(PRIMER_BLOCK_SECONDS * rate)), len(primer) / rate, 0
    for start in range(0, len(primer), block):
        piece = primer[start:start + block]
        feed(fast, piece)
        if keep:
            yield AudioChunk(np.repeat(mu_law_decode(piece)[None], fast.batch, axis=0), rate)
        done = start + len(piece)
        if seconds > PRIMER_PROGRESS_SECONDS and 10 * done // len(primer) > tenths:
            tenths = 10 * done // len(primer)
            yield Notice(f"primer: {done / rate:.0f} of {seconds:.0f} s read")


def generate(model: WaveNet, meta: dict, settings: dict) -> Iterator[AudioChunk | Notice]:
    rate = meta["sample_rate"]
    variations = settings["variations"]
    rng = np.random.default_rng(settings["seed"])
    labels, described = parse_labels(settings.get("label") or "", meta["labels"], variations, rng)
    if described:
        yield Notice("labels: " + " | ".join(described))
    primer, cut_short = primer_codes(settings["primer"], rate) if settings.get("primer") else (None, None)
    if cut_short:
        yield Notice(cut_short)
    lengths = draw_word_lengths(model, meta, labels, variations, settings.get("word_seconds", 0.0), rng)
    if lengths is not None:
        yield Notice("word length: " + " | ".join(f"{n / rate:.2f} s" for n in lengths))
    fast = FastGenerator(model, labels, variations, lengths=lengths)
    fast.previous[:] = SILENCE
    feed(fast, warm_up_codes(model, None))
    if primer is not None:
        # keep_primer: whether the output begins with the primer (it does unless the setting says otherwise)
        yield from read_primer(fast, primer, rate, settings.get("keep_primer", True))
    total, chunk = int(settings["seconds"] * rate), max(1, int(CHUNK_SECONDS * rate))
    done = 0
    while done < total:
        n = min(chunk, total - done)
        uniforms = rng.random((variations, n))
        codes, _ = fast.run(np.full((variations, n), -1), uniforms, settings["temperature"])
        yield AudioChunk(mu_law_decode(codes), rate)
        done += n


def reference_generate(model: WaveNet, labels: torch.Tensor | None, history: np.ndarray, uniforms: np.ndarray,
                       temperature: float = 1.0,
                       lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The slow, obviously-correct path: a full forward pass over the receptive field for every sample.
    history: (B, >= receptive field) codes already there, starting with the receptive field of silence that
    generation starts from; lengths as FastGenerator takes them. Returns new codes (B, steps) and their
    probabilities."""
    window = model.receptive_field
    codes = torch.from_numpy(history.astype(np.int64))
    new, all_probs = [], []
    with torch.no_grad():
        for s in range(uniforms.shape[1]):
            offsets = torch.arange(codes.size(1) - window, codes.size(1)) - window
            positions = position_index(offsets[None], model.config,
                                       None if lengths is None else torch.from_numpy(lengths)[:, None])
            logits, _ = model(codes[:, -window:], labels, positions.expand(len(codes), -1))
            probs = torch.softmax(logits[:, :, -1].double() / temperature, dim=-1).numpy()
            cdf = np.cumsum(probs, axis=1)
            picked = np.array([min(int(np.searchsorted(cdf[b], uniforms[b, s] * cdf[b, -1], side="right")), 255)
                               for b in range(len(probs))])
            new.append(picked)
            all_probs.append(probs)
            codes = torch.cat([codes, torch.from_numpy(picked)[:, None]], dim=1)
    return np.stack(new, axis=1), np.stack(all_probs, axis=1)

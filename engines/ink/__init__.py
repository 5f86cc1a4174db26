"""The ink engine: handwriting synthesis (Graves 2013) from typed text, in a chosen hand, drawn live; or
scribbles and sketches from an unconditional model, for corpora without transcripts.

Importing this module is cheap (no torch): the GUI reads the engine's description at start-up; the model,
data and writing modules are imported when the worker first needs them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..core.interface import SEED, TEMPERATURE, VARIATIONS, Control, Engine, Loss, Stage, resolve_settings
from .chunks import INK_COLOUR
from .config import InkModelConfig

STYLE_FILES = (".inkml", ".xml", ".npz")    # .npz: a strokes.npz beside its texts.jsonl (the shared UNIPEN layout)


def line_nll(model, tensors: dict, chunk: int):
    """Summed nats of a batch of lines, read in pieces of `chunk` points (0: whole) with the state carried from
    one piece to the next, detached, so that each piece's graph is freed once it is scored."""
    from .data import InkBatch, time_chunks
    ink = InkBatch(tensors["points"], tensors["point_mask"], tensors.get("text"), tensors.get("text_mask"),
                   tensors["ends"])
    if not chunk or chunk >= ink.points.shape[1] - 1:
        return model(*ink).nll.sum()
    total, state = 0.0, None
    for points, mask, ends in time_chunks(ink, chunk):
        out = model(points, mask, ink.text, ink.text_mask, ends, state=state)
        total, state = total + out.nll.sum(), out.state.detach()
    return total


class InkEngine(Engine):
    name = "ink"
    modality = "ink"
    title = "Ink — handwriting synthesis from typed text (Graves' LSTM with attention and a mixture density output)"
    default_preset = "small"
    export_formats = (".svg", ".png", ".gif")
    stages = (Stage("model", "handwriting model", InkModelConfig, unit="point"),)

    def controls(self) -> list[Control]:
        return [
            Control("text", "Text", "text", "Handwriting, drawn live by a network.", lines=4,
                    help="what to write: any length, several lines; characters the model cannot write are drawn "
                         "from a font"),
            Control("bias", "Bias", "float", 1.0, 0.0, 5.0, 0.1,
                    help="higher: neater and more regular; 0: the model's own variety (Graves' b)"),
            dataclasses.replace(TEMPERATURE, default=1.0),
            Control("style", "Style", "text", "default",
                    help="a writer of the model's training data (listed by the arrow; a wrong name is answered "
                         "with the list); 'default': the writer the model names (the bundled model's is the one "
                         "its writing is read best in), else one chosen by the seed; empty: one chosen by the "
                         "seed; 'none': no style primer"),
            Control("style_file", "Style sample", "media", "", media=STYLE_FILES,
                    help="write in the hand of a recorded line with its text (InkML, as the pen pad saves it; "
                         "IAM-style XML; or a strokes.npz beside its texts.jsonl)"),
            Control("pen_sample", "Pen sample", "strokes", [],
                    help="write in the hand of a line drawn on the pen pad (say what it reads in Pen text)"),
            Control("pen_text", "Pen text", "text", "", help="what the pen sample says"),
            Control("dots", "Dots and crosses", "bool", True, before=False,
                    help="dot the i and j and cross the t where the pen left them out (the attention window "
                         "says where each letter is)"),
            Control("width", "Line width", "int", 60, 8, 400, 1, help="characters per line before wrapping"),
            Control("line_spacing", "Line spacing", "float", 4.0, 1.5, 20.0, 0.25, help="in x-heights"),
            Control("slant", "Slant", "float", 0.0, -30.0, 30.0, 1.0, help="degrees, positive leans right"),
            Control("stroke_width", "Stroke width", "float", 2.0, 0.2, 20.0, 0.1,
                    help="pen width in pixels at an x-height of 16 pixels (exports and the view)"),
            Control("colour", "Colour", "text", INK_COLOUR, help="ink colour: a name (navy) or #rrggbb"),
            Control("length", "Points", "int", 400, 10, 20_000, 10,
                    help="how long a scribble is (models trained without transcripts; one trained with the end "
                         "flag may end a drawing sooner)"),
            SEED, VARIATIONS,
        ]

    def preview_settings(self) -> dict:
        return resolve_settings(self.controls(), {"text": "the quick brown fox", "seed": 0, "length": 200})

    def read_corpus(self, path, val_fraction: float = 0.1, meta: dict | None = None, model_config=None,
                    skip_unseen: bool = False):
        # characters a model has no input for read as "unknown" (id 0): nothing has to be left out
        from .corpus import read_ink_corpus
        config = model_config or InkModelConfig(**self.preset(None).stages["model"].model)
        return read_ink_corpus(path, config, val_fraction, meta)

    def read_corpus_to_fine_tune(self, path, val_fraction: float, meta: dict, model_config):
        """As read_corpus, and each writer the model has no style of gets one (your own hand)."""
        from .corpus import read_ink_corpus
        return read_ink_corpus(path, model_config, val_fraction, meta, new_styles=True)

    def build_model(self, stage, config, corpus_meta: dict, previous=None):
        """The model's input width and window speed come from the corpus: its alphabet, its characters per
        point (so the window starts moving at about the right speed)."""
        from .model import InkModel
        conditional = config.conditional and corpus_meta["alphabet"] is not None
        size = len(corpus_meta["alphabet"]["chars"]) + 1 if conditional else 0
        speed = corpus_meta["chars_per_point"] if conditional else config.window_speed
        return InkModel(dataclasses.replace(config, conditional=conditional, alphabet_size=size, window_speed=speed))

    def loss(self, model, batch, stage):
        """Nats per point; long lines in chunks of model.chunk_points with the state carried between them."""
        chunk = getattr(model, "module", model).config.chunk_points
        return Loss(line_nll(model, batch.tensors, chunk) / max(batch.units, 1))

    def validate(self, model, corpus, stage, batch_size: int, seq_len: int):
        # whole held-out lines, read in pieces of seq_len points with the state carried: what it costs to write
        # a line from its first point to its last (pieces of 200 at least: each is a call of every layer, and
        # validation keeps no graph that longer pieces would make larger)
        device = next(model.parameters()).device
        for batch in corpus.validation_batches(batch_size, seq_len):
            nll = line_nll(model, batch.to(device).tensors, max(seq_len, 200))
            yield Loss(nll / max(batch.units, 1)), batch.units

    def generate(self, model, header: dict, settings: dict):
        from .write import generate
        return generate(model, header["corpus"], settings)

    def suggestions(self, header: dict) -> dict[str, list[str]]:
        styles = sorted((header.get("corpus") or {}).get("styles") or {})
        return {"style": ["default", *styles, "none"]} if styles else {}

    def prepare(self, model, header: dict, settings: dict) -> None:
        from .write import prepare
        prepare(model, header["corpus"], settings)

    def export(self, chunks: list, settings: dict, path: Path) -> Path:
        """SVG (filled outlines; single-line paths for plotters in a hidden group), PNG or an animated GIF;
        the sample and its settings inside the file, and the settings in a .json beside it."""
        from .export import export
        return export(chunks, settings, path)

    def load_sample(self, path: Path) -> tuple[list, dict]:
        from .export import load_sample
        return load_sample(path)

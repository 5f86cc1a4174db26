"""The Train page's form as a Qt-free model: engine, preset, corpus, the corpus's summary, a time budget and
whether Start is allowed. The page's widgets set it and redraw from it when it reports a change, as napari's
widgets observe their models.

A summary is read the way the chosen engine and preset will read the corpus (a sample rate, labels ...), or
the model a new run starts from (its vocabulary, frame size ...), so choosing another engine, preset or start
model after a corpus asks for a new one, and Start waits for it. Reading is the worker's job: the form asks
for it through `read_summary(request, engine, corpus, preset, base)` and is told the
answer with `summary_read(request, summary)` or `summary_failed(request, message)`; an answer to an older
request than the latest is ignored.
"""
from __future__ import annotations

from typing import Callable

WARNINGS_SHOWN = 8


def reads_pen_strokes(engine) -> bool:
    """Whether pen recordings (InkML files, studio/app/pen_recorder.py) are material for this engine, so the
    page offers to record some. An engine says what it reads only through what it declares, never its name:
    a control that takes strokes drawn on a pen pad, or a file control that takes InkML (a style primer), is
    an engine that reads handwriting, and the recordings are the files such a control takes."""
    return any(c.kind == "strokes" or (c.kind == "media" and ".inkml" in c.media) for c in engine.controls())


class TrainForm:
    def __init__(self, engines: dict, read_summary: Callable[[int, str, str, str, str | None], None]):
        self.engines = engines
        self.read_summary = read_summary
        self.listeners: list[Callable[[], None]] = []
        self.engine_name = next(iter(engines))
        self.preset = self.engine.default_preset
        self.corpus = ""
        self.base: str | None = None  # the checkpoint a new run fine-tunes, else None: a new model
        self.summary: dict | None = None
        self.problem = ""            # why the corpus cannot be read, else ""
        self.request = 0             # the latest summary asked for
        self.reading = False
        self.training = False
        self.minutes = 0.0           # a time budget the schedule is fitted to; 0: the preset's steps
        self.fit_size = False        # with a budget: train the size that should do best in it on this machine

    # --- observed by the page ---
    def on_change(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def changed(self) -> None:
        for listener in self.listeners:
            listener()

    @property
    def engine(self):
        return self.engines[self.engine_name]

    @property
    def presets(self) -> dict:
        return self.engine.presets()

    @property
    def can_record(self) -> bool:
        return reads_pen_strokes(self.engine) and not self.training

    @property
    def can_fit_size(self) -> bool:
        """Whether the size can be fitted to the budget: a budget is set, and the engine's presets carry
        measured curves of loss against training (what the choice is read from)."""
        return self.minutes > 0 and any(p.curve for p in self.presets.values())

    @property
    def fitting(self) -> bool:
        return self.fit_size and self.can_fit_size

    @property
    def can_start(self) -> bool:
        return self.summary is not None and not self.reading and not self.training

    @property
    def summary_text(self) -> str:
        if not self.corpus:
            return "Choose a corpus to see its summary."
        if self.reading:
            return "reading…"
        if self.problem:
            return f"✖ {self.problem}"
        warnings = self.summary.get("warnings", []) if self.summary else []
        shown = [f"⚠ {w}" for w in warnings[:WARNINGS_SHOWN]]
        if len(warnings) > WARNINGS_SHOWN:
            shown.append(f"⚠ … and {len(warnings) - WARNINGS_SHOWN} more")
        return "\n".join((self.summary or {}).get("lines", []) + shown)

    # --- set by the page ---
    def set_engine(self, name: str) -> None:
        if name == self.engine_name:
            return
        self.engine_name = name
        self.preset = self.engine.default_preset
        self.base = None
        self.reread()

    def set_preset(self, name: str) -> None:
        if name == self.preset or name not in self.presets:
            return
        self.preset = name
        self.reread()

    def set_base(self, checkpoint: str | None) -> None:
        if checkpoint == self.base:
            return
        self.base = checkpoint
        self.reread()

    def set_minutes(self, minutes: float) -> None:
        self.minutes = max(float(minutes), 0.0)
        self.changed()

    def set_fit_size(self, fit: bool) -> None:
        self.fit_size = fit
        self.changed()

    def set_corpus(self, path: str) -> None:
        self.corpus = path.strip()
        self.reread()

    def set_run(self, engine_name: str, corpus: str) -> None:
        """A run chosen in the Library, to resume: it reads its corpus as it first did, so no summary is asked
        for (and Start, which begins a new run, waits for a corpus to be chosen)."""
        self.engine_name, self.preset, self.corpus = engine_name, self.engines[engine_name].default_preset, corpus
        self.base, self.summary, self.problem, self.reading = None, None, "", False
        self.request += 1       # an answer still on its way is for other choices
        self.changed()

    def set_training(self, training: bool) -> None:
        self.training = training
        self.changed()

    def reread(self) -> None:
        """Forget the summary, and ask for the one the current choices give."""
        self.summary, self.problem = None, ""
        self.reading = bool(self.corpus)
        if self.reading:
            self.request += 1
            self.read_summary(self.request, self.engine_name, self.corpus, self.preset, self.base)
        self.changed()

    # --- answers ---
    def summary_read(self, request: int, summary: dict) -> None:
        if request == self.request:
            self.summary, self.reading = summary, False
            self.changed()

    def summary_failed(self, request: int, message: str) -> None:
        if request == self.request:
            self.problem, self.reading = message, False
            self.changed()

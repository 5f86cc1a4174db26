"""The model worker: a separate process that owns torch and the device.

The GUI never imports torch. It sends jobs over a command queue and reads events from an event queue:

    commands  (kind, job, {...}) for kind in generate | prepare | train | summarize | load | convert;
              ("cancel", job)
    events    ("ready", None, {"devices": [...]})
              ("started" | "yielded" | "errored" | "finished", job, payload)

Everything on the event queue is plain data (dicts, lists, str, numbers, numpy arrays): engine dataclasses
(chunks, trainer events) are turned into dicts with a "type" key here, recursively, and anything else (a
tensor, say) is an error rather than a pickle, so unpickling in the GUI imports nothing heavy. The worker runs
one job at a time and looks for "cancel" between every two items a job yields, so a stop lands within a
training step, a validation batch or a sampling step; a job cancelled while it waits its turn ends then too,
without ever starting. Cancelling training closes the trainer's generator, which saves a resumable checkpoint
first. The last model loaded and the last corpus summarised are kept, so
generating again starts at once and training starts without reading the corpus a second time. `prepare`
loads a model before it is asked for and lets its engine get ready for the settings being chosen
(Engine.prepare), so the first Generate does not wait for either.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
import shutil
import threading
import time
import traceback
from collections import deque
from pathlib import Path

import numpy as np

from engines.core.errors import CorpusError, StudioError
from engines.core.fingerprint import corpus_files

GENERATION_BATCH_SECONDS = 0.03    # generation chunks are sent in small batches: ~30 messages a second
POLL_SECONDS = 0.02                # how often a running job looks for "cancel"
STOPPED_BEFORE_IT_STARTED = {"cancelled": True, "reason": "stopped", "settings": {}}


def plain(item):
    """Engine and trainer dataclasses as dicts with a "type" key, all the way down; only plain data passes."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {"type": type(item).__name__, **{f.name: plain(getattr(item, f.name)) for f in dataclasses.fields(item)}}
    if isinstance(item, (list, tuple)):
        return [plain(v) for v in item]
    if isinstance(item, dict):
        return {k: plain(v) for k, v in item.items()}
    if item is None or isinstance(item, (str, int, float, bool, np.generic)):
        return item
    if isinstance(item, np.ndarray) and item.dtype != object:
        return item
    raise TypeError(f"a {type(item).__module__}.{type(item).__name__} cannot be sent to the window: chunks and "
                    f"events must hold plain data (str, numbers, lists, dicts, numpy arrays)")


def fingerprint(path: str) -> tuple:
    """Names, sizes and times of the files a corpus path names (a file, a folder or a glob), as the engines read
    them: equal fingerprints, same corpus. Cheaper than the checkpoint's content hash, and enough to tell an
    edit between Summarize and Start."""
    try:
        files = corpus_files(path)[1]
    except CorpusError:                  # a built-in data set, or a path the engine will refuse by name
        return ()
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


class Worker:
    def __init__(self, commands, events):
        self.commands, self.events = commands, events
        self.pending: deque = deque()
        self.cancelled: set = set()
        self.orphaned = False
        self.last_poll = 0.0
        self.parent = mp.parent_process()
        self.loaded: tuple | None = None        # (key, model, header) of the last model generated from
        self.summarised: tuple | None = None    # (key, corpus) of the last corpus summarised

    def parent_alive(self) -> bool:
        return self.parent is None or self.parent.is_alive()

    # --- queue plumbing ---
    def send(self, kind, job, payload=None):
        self.events.put((kind, job, payload))

    def poll(self) -> None:
        """Take commands that arrived while a job runs: cancels act at once, the rest wait their turn.
        If the window's process has gone (killed, crashed), every job counts as cancelled and the worker ends."""
        if not self.parent_alive():
            self.orphaned = True
            return
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            if command[0] == "cancel":
                self.cancelled.add(command[1])
                waiting = [c for c in self.pending if c[1] == command[1]]
                for c in waiting:               # not started: it ends now, not after the job running ahead of it
                    self.pending.remove(c)
                    self.send("finished", c[1], STOPPED_BEFORE_IT_STARTED)
            else:
                self.pending.append(command)

    def run(self) -> None:
        from engines.core.device import available_devices
        self.send("ready", None, {"devices": available_devices()})
        threading.Thread(target=warm_up_engines, daemon=True).start()
        while not self.orphaned:
            self.poll()                         # cancels that came while the last job ran without looking
            try:
                command = self.pending.popleft() if self.pending else self.commands.get(timeout=1.0)
            except queue.Empty:
                self.orphaned = not self.parent_alive()
                continue
            kind, job = command[0], command[1]
            if kind == "quit":
                return
            if kind == "cancel":        # of a job that has ended (poll ends one still waiting)
                continue
            handler = {"generate": self.generate, "prepare": self.prepare, "train": self.train,
                       "summarize": self.summarize, "load": self.load, "convert": self.convert}[kind]
            try:
                self.send("started", job, command[2])
                result = handler(job, **command[2])
                self.send("finished", job, result)
            except Exception as e:  # noqa: BLE001 - every failure goes back to the window as text
                message = str(e) if isinstance(e, StudioError) else f"{type(e).__name__}: {e}"
                detail = "" if isinstance(e, StudioError) else traceback.format_exc()
                self.send("errored", job, {"message": message, "detail": detail})

    def stopped(self, job) -> bool:
        if time.time() - self.last_poll > POLL_SECONDS:
            self.last_poll = time.time()
            self.poll()
        return job in self.cancelled or self.orphaned

    # --- jobs ---
    def read_corpus(self, engine: str, data: str, preset: str | None, start_from: str | None = None):
        """The corpus as the chosen preset reads it (e.g. at its sample rate, with its labels), or as a fine-tune
        of the model `start_from` names does (its vocabulary, frame size ...), kept for the training job that
        usually follows."""
        from engines import get_engine
        from engines.core.interface import config_from_dict
        from engines.core.trainer import fine_tune_reading
        eng = get_engine(engine)
        recipe = eng.preset(preset).stages[eng.stages[0].name]
        key = (engine, data, eng.preset(preset).name, start_from and fingerprint(start_from), fingerprint(data))
        if self.summarised is None or self.summarised[0] != key:
            self.summarised = None     # let the old corpus go before reading the new one
            meta, settings = fine_tune_reading(eng, start_from) if start_from else (None, recipe.model)
            where = f"fine-tuning {Path(start_from).name}" if start_from else f"preset {preset}"
            config = config_from_dict(eng.stages[0].model_config_class, settings, where)
            read = eng.read_corpus_to_fine_tune if start_from else eng.read_corpus
            self.summarised = key, read(data, recipe.train.val_fraction, meta, config)
        return self.summarised[1]

    def summarize(self, job, engine: str, data: str, preset: str | None = None, start_from: str | None = None) -> dict:
        return plain(self.read_corpus(engine, data, preset, start_from).summary)

    def model(self, eng, checkpoint: str, device: str):
        from engines.core.trainer import load_model, sampling_checkpoint
        path = sampling_checkpoint(eng, checkpoint).resolve()
        key = (eng.name, str(path), path.stat().st_mtime_ns, device)
        if self.loaded is None or self.loaded[0] != key:
            self.loaded = None
            self.loaded = (key, *load_model(eng, path, device))
        return self.loaded[1], self.loaded[2]

    def stream(self, job, items) -> tuple[list, bool]:
        """Send items in small batches (~30 messages a second); (everything sent, whether it was stopped)."""
        sent, batch, last_sent = [], [], time.time()
        for item in items:
            sent.append(item)
            batch.append(plain(item))
            if time.time() - last_sent >= GENERATION_BATCH_SECONDS:
                self.send("yielded", job, batch)
                batch, last_sent = [], time.time()
            if self.stopped(job):
                if hasattr(items, "close"):
                    items.close()
                break
        if batch:
            self.send("yielded", job, batch)
        return sent, job in self.cancelled

    def generate(self, job, engine: str, checkpoint: str, settings: dict, device: str = "auto",
                 save_to: str | None = None) -> dict:
        from engines import get_engine
        from engines.core.interface import resolve_settings
        eng = get_engine(engine)
        settings = resolve_settings(eng.controls(), settings)
        model, header = self.model(eng, checkpoint, device)
        self.send("yielded", job, [{"type": "Settings", "settings": settings}])
        chunks, cancelled = self.stream(job, eng.generate(model, header, settings))
        if save_to:
            from studio.library import sample_record
            record = sample_record(eng.name, checkpoint, header, settings, stopped_early=cancelled)
            eng.export(chunks, record, Path(save_to))
        return {"settings": settings, "cancelled": cancelled, "saved": save_to}

    def prepare(self, job, engine: str, checkpoint: str, settings: dict, device: str = "auto") -> dict:
        """Load the model and let its engine get ready for these settings, so that generating starts at once."""
        from engines import get_engine
        from engines.core.interface import resolve_settings
        eng = get_engine(engine)
        model, header = self.model(eng, checkpoint, device)
        eng.prepare(model, header, resolve_settings(eng.controls(), settings))
        return {}

    def load(self, job, engine: str, path: str) -> dict:
        """A saved sample, streamed like a generation, so a view shows it the same way."""
        from engines import get_engine
        chunks, settings = get_engine(engine).load_sample(Path(path))
        self.send("yielded", job, [{"type": "Settings", "settings": settings}])
        _, cancelled = self.stream(job, chunks)
        return {"settings": settings, "cancelled": cancelled}

    def convert(self, job, engine: str, source: str, target: str) -> dict:
        """A saved sample in another of the engine's formats, written by the engine's own export."""
        from engines import get_engine
        source_path, target_path = Path(source), Path(target)
        if target_path.suffix.lower() == source_path.suffix.lower():
            shutil.copyfile(source_path, target_path)
            shutil.copyfile(source_path.with_name(source_path.name + ".json"),
                            target_path.with_name(target_path.name + ".json"))
        else:
            eng = get_engine(engine)
            chunks, settings = eng.load_sample(source_path)
            eng.export(chunks, settings, target_path)
        return {"saved": str(target_path)}

    def train(self, job, engine: str, data: str, out: str, preset: str | None = None, resume: bool = False,
              device: str = "auto", stage: str | None = None, start_from: str | None = None,
              minutes: float | None = None, fit_size: bool = False) -> dict:
        """minutes: a time budget the schedule is fitted to (a resumed run keeps its own); fit_size: a new run
        trains the preset that should do best in that time here, timed first (budget.fit_preset)."""
        from engines import get_engine
        from engines.core import trainer
        from engines.core.budget import fit_preset, has_curves
        from engines.core.events import STEPS_FROM_THE_CLOCK, Finished, Progress
        eng = get_engine(engine)
        self.loaded = None              # a training run needs the memory (a GPU's, perhaps) more than a cached model
        minutes = None if resume else minutes
        corpus = None if resume else self.read_corpus(engine, data, preset, start_from)   # as the summary read it
        corpus, recipes, preset = trainer.prepare_run(eng, data, out, None if resume else preset, resume=resume,
                                                      corpus=corpus,
                                                      max_steps=STEPS_FROM_THE_CLOCK if minutes else None,
                                                      device=device, start_from=start_from, stage=stage)
        if minutes and fit_size and start_from is None and has_curves(eng):
            chosen, (corpus, recipes, preset) = fit_preset(eng, data, out, corpus, minutes, device)
            self.send("yielded", job, [plain(chosen)])
            minutes = chosen.minutes_left
        events = trainer.train(eng, corpus, out, recipes=recipes, stage=stage, preset=preset, resume=resume,
                               device=device, minutes=minutes)
        last_progress, step = 0.0, 0
        for event in events:
            step = getattr(event, "step", step)
            # the window gets every history point (for the plot) and otherwise ten progress updates a second
            progress = isinstance(event, Progress)
            if not progress or event.logged or time.time() - last_progress >= 0.1:
                last_progress = time.time() if progress else last_progress
                self.send("yielded", job, [plain(event)])
            if isinstance(event, Finished):
                return {"out": out, "reason": event.reason, "step": event.step}
            if self.stopped(job):
                events.close()      # saves last.safetensors
                return {"out": out, "reason": "stopped", "step": step}
        return {"out": out, "reason": "completed", "step": step}


def warm_up_engines() -> None:
    """Let engines compile what they need (the audio engine's numba kernel) while the user looks around,
    so the first sample starts at once; a failure here only makes the first sample slower."""
    from engines import available_engines
    for engine in available_engines().values():
        try:
            engine.warm_up()
        except Exception:  # noqa: BLE001 - the job that needs it will report the real error
            pass


def worker_main(commands, events) -> None:
    """Entry point of the worker process."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C in the app's terminal is the window's to handle
    Worker(commands, events).run()

"""The model worker: a separate process that owns torch and the device.

The GUI never imports torch. It sends jobs over a command queue and reads events from an event queue:

    commands  ("generate", job, {...}) | ("train", job, {...}) | ("summarize", job, {...}) | ("cancel", job)
    events    ("ready", None, {"devices": [...]})
              ("started" | "yielded" | "errored" | "finished", job, payload)

Everything on the event queue is plain data (dicts, lists, str, numpy arrays): engine dataclasses are turned
into dicts with a "type" key here, so unpickling them in the GUI imports nothing heavy. The worker runs one
job at a time and looks for "cancel" between every two items a job yields, so a stop lands within a
training step or a sampling step. Cancelling training closes the trainer's generator, which saves a
resumable checkpoint first.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
import time
import traceback
from collections import deque
from pathlib import Path

GENERATION_BATCH_SECONDS = 0.03    # generation chunks are sent in small batches: ~30 messages a second
POLL_SECONDS = 0.02                # how often a running job looks for "cancel"


def plain(item) -> dict:
    """An engine or trainer dataclass as a dict the GUI can read without importing the engine."""
    if dataclasses.is_dataclass(item):
        out = {"type": type(item).__name__}
        for f in dataclasses.fields(item):
            value = getattr(item, f.name)
            out[f.name] = [plain(v) for v in value] if isinstance(value, list) else value
        return out
    return item


class Worker:
    def __init__(self, commands, events):
        self.commands, self.events = commands, events
        self.pending: deque = deque()
        self.cancelled: set = set()
        self.orphaned = False
        self.last_poll = 0.0
        self.parent = mp.parent_process()

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
            else:
                self.pending.append(command)

    def run(self) -> None:
        from engines.core.device import available_devices
        self.send("ready", None, {"devices": available_devices()})
        while not self.orphaned:
            try:
                command = self.pending.popleft() if self.pending else self.commands.get(timeout=1.0)
            except queue.Empty:
                self.orphaned = not self.parent_alive()
                continue
            kind, job = command[0], command[1]
            if kind == "quit":
                return
            if kind == "cancel":
                continue
            if job in self.cancelled:     # stopped before it started: the window still hears that it ended
                self.send("finished", job, {"cancelled": True, "reason": "stopped", "settings": {}})
                continue
            handler = {"generate": self.generate, "train": self.train, "summarize": self.summarize}[kind]
            try:
                self.send("started", job, command[2])
                result = handler(job, **command[2])
                self.send("finished", job, result)
            except Exception as e:  # noqa: BLE001 - every failure goes back to the window as text
                from engines.core.errors import StudioError
                message = str(e) if isinstance(e, StudioError) else f"{type(e).__name__}: {e}"
                detail = "" if isinstance(e, StudioError) else traceback.format_exc()
                self.send("errored", job, {"message": message, "detail": detail})

    def stopped(self, job) -> bool:
        if time.time() - self.last_poll > POLL_SECONDS:
            self.last_poll = time.time()
            self.poll()
        return job in self.cancelled or self.orphaned

    # --- jobs ---
    def summarize(self, job, engine: str, data: str, preset: str | None = None) -> dict:
        """The corpus as the chosen preset would read it (e.g. at its sample rate, with its labels)."""
        from engines import get_engine
        from engines.core.interface import config_from_dict
        eng = get_engine(engine)
        config = config_from_dict(eng.model_config_class, eng.preset(preset).model, f"preset {preset}")
        return eng.read_corpus(data, model_config=config).summary

    def generate(self, job, engine: str, checkpoint: str, settings: dict, device: str = "auto",
                 save_to: str | None = None) -> dict:
        from engines import get_engine
        from engines.core.interface import resolve_settings
        from engines.core.trainer import load_model
        eng = get_engine(engine)
        settings = resolve_settings(eng.controls(), settings)
        model, meta = load_model(eng, checkpoint, device)
        self.send("yielded", job, [{"type": "Settings", "settings": settings}])
        chunks, batch, last_sent, stream = [], [], time.time(), eng.generate(model, meta, settings)
        for chunk in stream:
            chunks.append(chunk)
            batch.append(plain(chunk))
            if time.time() - last_sent >= GENERATION_BATCH_SECONDS:
                self.send("yielded", job, batch)
                batch, last_sent = [], time.time()
            if self.stopped(job):
                stream.close()
                break
        if batch:
            self.send("yielded", job, batch)
        cancelled = job in self.cancelled
        if save_to:
            from studio.library import sample_record
            record = sample_record(eng.name, checkpoint, meta, settings, stopped_early=cancelled)
            eng.export(chunks, record, Path(save_to))
        return {"settings": settings, "cancelled": cancelled, "saved": save_to}

    def train(self, job, engine: str, data: str, out: str, preset: str | None = None, resume: bool = False,
              device: str = "auto") -> dict:
        from engines import get_engine
        from engines.core import trainer
        from engines.core.checkpoint import read_meta
        eng = get_engine(engine)
        corpus, model_config, train_config, preset = trainer.prepare_run(eng, data, out, preset, resume=resume)
        if resume:   # let the plot redraw what came before
            history = read_meta(Path(out) / "last.safetensors", eng.name)["history"]
            self.send("yielded", job, [{"type": "History", **history}])
        events = trainer.train(eng, corpus, out, model_config=model_config, train_config=train_config,
                               preset=preset, resume=resume, device=device)
        last_progress, step = 0.0, 0
        for event in events:
            step = getattr(event, "step", step)
            # the window gets every history point (for the plot) and otherwise ten progress updates a second
            progress = isinstance(event, trainer.Progress)
            if not progress or event.logged or time.time() - last_progress >= 0.1:
                last_progress = time.time() if progress else last_progress
                self.send("yielded", job, [plain(event)])
            if isinstance(event, trainer.Finished):
                return {"out": out, "reason": event.reason, "step": event.step}
            if self.stopped(job):
                events.close()      # saves last.safetensors
                return {"out": out, "reason": "stopped", "step": step}
        return {"out": out, "reason": "completed", "step": step}


def worker_main(commands, events) -> None:
    """Entry point of the worker process."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C in the app's terminal is the window's to handle
    Worker(commands, events).run()

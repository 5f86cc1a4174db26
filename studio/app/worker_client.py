"""The GUI's side of the model worker: a process started with `spawn`, its queues bridged to Qt signals.

A QTimer drains the event queue every few milliseconds without ever blocking, so the event loop stays free
while a model trains or samples. If the process dies (a crash, an out-of-memory kill, a user's `kill`),
the client reports it with `crashed`, fails the job that was running and starts a new worker.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import queue

from PySide6.QtCore import QObject, QTimer, Signal

from studio.worker import worker_main

POLL_MS = 15
MAX_EVENTS_PER_POLL = 200       # leave the event loop time to paint between bursts


class WorkerClient(QObject):
    ready = Signal(dict)                    # {"devices": [...]}
    started = Signal(int, dict)             # job, its arguments
    yielded = Signal(int, list)             # job, items (dicts with a "type")
    errored = Signal(int, dict)             # job, {"message", "detail"}
    finished = Signal(int, dict)            # job, result
    crashed = Signal(str)                   # what happened; a new worker is already starting

    def __init__(self, parent=None):
        super().__init__(parent)
        self.context = mp.get_context("spawn")
        self.jobs = itertools.count(1)
        self.running: int | None = None
        self.waiting: list[int] = []
        self.process = None
        self.devices: list[str] = []
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.poll)
        self.start()

    def start(self) -> None:
        self.commands = self.context.Queue()
        self.events = self.context.Queue()
        self.process = self.context.Process(target=worker_main, args=(self.commands, self.events), daemon=True,
                                            name="studio-worker")
        self.process.start()
        self.timer.start(POLL_MS)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def submit(self, kind: str, **arguments) -> int:
        job = next(self.jobs)
        self.waiting.append(job)
        self.commands.put((kind, job, arguments))
        return job

    def cancel(self, job: int) -> None:
        self.commands.put(("cancel", job))

    def poll(self) -> None:
        for _ in range(MAX_EVENTS_PER_POLL):
            try:
                kind, job, payload = self.events.get_nowait()
            except queue.Empty:
                break
            self.dispatch(kind, job, payload)
        else:
            return
        if not self.process.is_alive():
            self.recover()

    def dispatch(self, kind: str, job, payload) -> None:
        if kind == "ready":
            self.devices = payload["devices"]
            self.ready.emit(payload)
        elif kind == "started":
            self.running = job
            if job in self.waiting:
                self.waiting.remove(job)
            self.started.emit(job, payload)
        elif kind == "yielded":
            self.yielded.emit(job, payload)
        elif kind in ("errored", "finished"):
            if self.running == job:
                self.running = None
            if job in self.waiting:
                self.waiting.remove(job)
            (self.errored if kind == "errored" else self.finished).emit(job, payload)

    def recover(self) -> None:
        code = self.process.exitcode
        lost = ([self.running] if self.running is not None else []) + self.waiting
        self.running, self.waiting = None, []
        self.timer.stop()
        for job in lost:
            self.errored.emit(job, {"message": f"the model worker stopped unexpectedly (exit code {code})",
                                    "detail": ""})
        self.crashed.emit(f"The model worker stopped unexpectedly (exit code {code}); a new one was started. "
                          "Trained models keep their last checkpoint and can be resumed.")
        self.start()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every job (a training run saves its checkpoint first), then let the worker quit."""
        self.timer.stop()
        if self.process and self.process.is_alive():
            for job in ([self.running] if self.running is not None else []) + self.waiting:
                self.cancel(job)
            self.commands.put(("quit", None))
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()

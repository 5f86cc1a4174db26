"""The GUI's side of the model worker: a process started with `spawn`, its queues bridged to Qt signals.

`submit(kind, **arguments)` returns a Job, a handle with its own signals, named as napari names its workers':

    started(arguments)   yielded(items)   errored({"message", "detail"})   finished(result)

so a page connects to the jobs it started and never sees anyone else's. A QTimer drains the event queue every
few milliseconds without ever blocking, so the event loop stays free while a model trains or samples. If the
process dies (a crash, an out-of-memory kill, a user's `kill`), the client fails every job it had (`errored`),
says so with `crashed` and starts a new worker.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
import time

from PySide6.QtCore import QObject, QTimer, Signal

from studio.worker import worker_main

POLL_MS = 15
MAX_EVENTS_PER_POLL = 200       # leave the event loop time to paint between bursts


class Job(QObject):
    """One submitted job. Exactly one of `errored` and `finished` ends it."""
    started = Signal(dict)      # its arguments
    yielded = Signal(list)      # items: plain dicts with a "type"
    errored = Signal(dict)      # {"message", "detail"}
    finished = Signal(dict)     # the job's result

    def __init__(self, client: "WorkerClient", number: int, kind: str):
        super().__init__()
        self.client, self.number, self.kind = client, number, kind
        self.running = False
        self.done = False

    def cancel(self) -> None:
        """Ask the worker to stop this job; it still ends with `finished` (a training run saves first)."""
        if not self.done:
            self.client.cancel(self)


class WorkerClient(QObject):
    ready = Signal(dict)                    # {"devices": [...]}
    crashed = Signal(str)                   # what happened; a new worker is already starting

    def __init__(self, parent=None):
        super().__init__(parent)
        self.context = mp.get_context("spawn")
        self.numbers = itertools.count(1)
        self.jobs: dict[int, Job] = {}      # submitted and not yet ended, in order
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

    @property
    def busy(self) -> bool:
        """Whether a job is running now, so a new one will wait for it."""
        return any(job.running for job in self.jobs.values())

    def submit(self, kind: str, **arguments) -> Job:
        job = Job(self, next(self.numbers), kind)
        self.jobs[job.number] = job
        self.commands.put((kind, job.number, arguments))
        return job

    def cancel(self, job: Job) -> None:
        """The worker decides when a job has ended: a running one at its next look (a step, a chunk), one still
        waiting behind it as soon as the running job looks (a training run does every step)."""
        self.commands.put(("cancel", job.number))

    def poll(self) -> None:
        for _ in range(MAX_EVENTS_PER_POLL):
            try:
                kind, number, payload = self.events.get_nowait()
            except queue.Empty:
                break
            self.dispatch(kind, number, payload)
        else:
            return
        if not self.process.is_alive():
            self.recover()

    def dispatch(self, kind: str, number, payload) -> None:
        if kind == "ready":
            self.devices = payload["devices"]
            self.ready.emit(payload)
            return
        job = self.jobs.get(number)
        if job is None:          # a job failed as lost in a crash, reported late by nobody
            return
        if kind == "started":
            job.running = True
            job.started.emit(payload)
        elif kind == "yielded":
            job.yielded.emit(payload)
        elif kind in ("errored", "finished"):
            self.end(job, kind, payload)

    def end(self, job: Job, kind: str, payload: dict) -> None:
        del self.jobs[job.number]
        job.running, job.done = False, True
        (job.errored if kind == "errored" else job.finished).emit(payload)

    def recover(self) -> None:
        code = self.process.exitcode
        self.timer.stop()
        for job in list(self.jobs.values()):
            self.end(job, "errored", {"message": f"the model worker stopped unexpectedly (exit code {code})",
                                      "detail": ""})
        self.crashed.emit(f"The model worker stopped unexpectedly (exit code {code}); a new one was started. "
                          "Trained models keep their last checkpoint and can be resumed.")
        self.start()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every job (a training run saves its checkpoint first), then let the worker quit."""
        self.timer.stop()
        if self.process and self.process.is_alive():
            for job in list(self.jobs.values()):
                self.cancel(job)
            self.commands.put(("quit", None))
            # a process that has put events on a queue exits only once they are read: read and drop them
            deadline = time.monotonic() + timeout
            while self.process.is_alive() and time.monotonic() < deadline:
                self.process.join(0.05)
                try:
                    while True:
                        self.events.get_nowait()
                except queue.Empty:
                    pass
            if self.process.is_alive():
                self.process.kill()

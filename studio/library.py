"""The model library and the sample history: plain Python over folders, no Qt, no torch.

A trained model is a run folder in models/ (last.safetensors to resume, best.safetensors to sample; an engine
that trains in stages keeps one sub-folder of those per stage); the bundled models are the checkpoints in
assets/. A generated sample is the engine's export in history/ plus its settings (.json beside it), enough to
replay it exactly; converting it to another format is the engine's own export, run by the worker.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from engines.core.checkpoint import read_meta
from engines.core.errors import StudioError
from engines.core.events import known_steps

from .paths import history_dir, models_dir


@dataclass
class StageEntry:
    name: str
    steps: int
    max_steps: int          # 0 while a time budget is not yet turned into steps
    val_loss: float | None
    loss_unit: str


@dataclass
class ModelEntry:
    name: str
    engine: str
    checkpoint: Path            # what sampling loads: the last stage's best (else last) checkpoint
    run_dir: Path | None        # None for a bundled model (read-only)
    corpus: str = ""
    steps: int = 0
    val_loss: float | None = None
    loss_unit: str = ""
    saved_at: str = ""
    stages: list[StageEntry] | None = None   # of an engine that trains in stages, in order
    problem: str = ""           # why this entry cannot be used (e.g. a corrupt file), else ""
    ready: bool = True          # its last stage is trained, so it makes samples
    header: dict = field(default_factory=dict, repr=False)   # the checkpoint's meta, as read

    @property
    def bundled(self) -> bool:
        return self.run_dir is None

    @property
    def resumable(self) -> bool:
        return self.run_dir is not None and any(self.run_dir.glob("**/last.safetensors"))

    @property
    def loss_text(self) -> str:
        return f"{self.val_loss:.3f} {self.loss_unit}" if self.val_loss is not None else "—"


def entry_for(checkpoint: Path, name: str, run_dir: Path | None) -> ModelEntry:
    try:
        meta = read_meta(checkpoint)
    except StudioError as e:
        return ModelEntry(name, "?", checkpoint, run_dir, problem=str(e), ready=False)
    summary, metrics = meta.get("corpus_summary", {}), meta.get("metrics", {})
    return ModelEntry(name, meta.get("engine", "?"), checkpoint, run_dir, corpus=str(summary.get("source", "")),
                      steps=meta.get("step", 0), val_loss=metrics.get("best_val_loss"),
                      loss_unit=metrics.get("loss_unit", ""), saved_at=meta.get("saved_at", ""), header=meta)


def staged_entry(run: Path, engine) -> ModelEntry:
    """A run folder of an engine with stages: one sub-folder per stage; ready once the last has a model."""
    stages, entry = [], None
    for stage in engine.stages:
        folder = run / stage.name
        found = {n: entry_for(folder / n, run.name, run) for n in ("best.safetensors", "last.safetensors")
                 if (folder / n).exists()}
        if not found:
            continue
        entry = next((e for e in found.values() if not e.problem), [*found.values()][0])   # a damaged file's twin
        if entry.problem:
            return entry
        last = found.get("last.safetensors")
        # the schedule's length is the last checkpoint's; without a readable one, the steps the other reached
        readable_last = last is not None and not last.problem
        max_steps = known_steps(last.header.get("max_steps", entry.steps)) if readable_last else entry.steps
        stages.append(StageEntry(stage.name, entry.steps, max_steps, entry.val_loss, entry.loss_unit))
    entry.stages = stages
    entry.ready = stages[-1].name == engine.stages[-1].name
    return entry


def safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-.") or "model"


class ModelLibrary:
    def __init__(self, engines: dict, root: Path | None = None):
        self.engines = engines
        self.root = root or models_dir()

    def entries(self) -> list[ModelEntry]:
        found = [entry_for(path, f"{path.stem} (bundled)", None)
                 for engine in self.engines.values() for path in engine.bundled_models()]
        if self.root.is_dir():
            for run in sorted(p for p in self.root.iterdir() if p.is_dir()):
                best, last = run / "best.safetensors", run / "last.safetensors"
                if best.exists() or last.exists():
                    found.append(entry_for(best if best.exists() else last, run.name, run))
                    continue
                first = sorted(run.glob("*/last.safetensors"))
                if first:   # an engine that trains in stages, one sub-folder each
                    entry = entry_for(first[0], run.name, run)
                    engine = self.engines.get(entry.engine)
                    found.append(staged_entry(run, engine) if engine and not entry.problem else entry)
        return found

    def new_run_dir(self, name: str) -> Path:
        base = safe_name(name)
        path = self.root / base
        n = 2
        while path.exists():
            path, n = self.root / f"{base}-{n}", n + 1
        return path

    def rename(self, entry: ModelEntry, new_name: str) -> Path:
        if entry.bundled:
            raise StudioError("bundled models cannot be renamed")
        target = self.root / safe_name(new_name)
        if target.exists():
            raise StudioError(f"a model called {target.name!r} already exists")
        entry.run_dir.rename(target)
        return target

    def discard_unsaved(self, run_dir: Path) -> None:
        """Remove a new run's folder that holds nothing but its lock (stopped before its first checkpoint), which
        the Library would neither list nor let anyone delete."""
        if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".lock"}:
            shutil.rmtree(run_dir, ignore_errors=True)

    def delete(self, entry: ModelEntry) -> None:
        if entry.bundled:
            raise StudioError("bundled models cannot be deleted")
        shutil.rmtree(entry.run_dir)


def sample_record(engine: str, checkpoint, meta: dict, settings: dict, **extra) -> dict:
    """What is saved beside an exported sample: enough to generate it again, exactly."""
    return {"engine": engine, "checkpoint": str(checkpoint), "checkpoint_step": meta.get("step"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra, **settings}


def created_at(settings: dict) -> float:
    """When a sample was made (its record's local time with its UTC offset, so a clock change or a trip does not
    reorder History), in seconds since the epoch; 0 when the record does not say."""
    try:
        return datetime.strptime(str(settings.get("created")), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return 0.0


@dataclass
class SampleRecord:
    path: Path                  # the exported sample; settings are at path + ".json"
    settings: dict

    @property
    def title(self) -> str:
        s = self.settings
        return f"{s.get('created', '')[:19].replace('T', ' ')}  {s.get('engine', '')}  seed {s.get('seed')}"


class SampleHistory:
    def __init__(self, root: Path | None = None):
        self.root = root or history_dir()

    def new_path(self, engine: str, suffix: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path, n = self.root / f"{engine}-{stamp}{suffix}", 2
        while path.exists():
            path, n = self.root / f"{engine}-{stamp}-{n}{suffix}", n + 1
        return path

    def records(self) -> list[SampleRecord]:
        """Newest first, whichever engine made them (file names begin with the engine's, so not by name)."""
        found = []
        if self.root.is_dir():
            for settings_file in self.root.glob("*.json"):
                sample = settings_file.with_suffix("")
                if sample.exists():
                    try:
                        settings = json.loads(settings_file.read_text(encoding="utf-8"))
                        if isinstance(settings, dict):          # not a record of ours otherwise
                            found.append((created_at(settings), settings_file.stat().st_mtime,
                                          SampleRecord(sample, settings)))
                    except (json.JSONDecodeError, OSError):
                        continue
        return [record for *_, record in sorted(found, key=lambda f: f[:2], reverse=True)]

"""What the trainer reports, as plain dataclasses (no torch), so the CLI prints them and the worker forwards
them to the window as dicts. Every event names the stage it belongs to."""
from __future__ import annotations

from dataclasses import dataclass, field

# max_steps of a run whose time budget decides its length: the real number is fitted after 20 steps and saved
# with the run; a run stopped before then keeps this
STEPS_FROM_THE_CLOCK = 10**9


def known_steps(max_steps: int) -> int:
    """A run's max_steps as events and the Library report it: 0 ("not known yet") until a time budget has been
    turned into steps."""
    return 0 if max_steps >= STEPS_FROM_THE_CLOCK else max_steps


@dataclass
class History:
    """What the loss plot needs to redraw a stage after a restart; saved in every checkpoint."""
    steps: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    val_steps: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    val_times: list = field(default_factory=list)     # seconds of training when each validation ran
    val_metrics: list = field(default_factory=list)   # each validation's metrics, {name: value}; runs saved
                                                      # before this was kept have fewer entries than val_steps


@dataclass
class StageStarted:
    stage: str
    title: str
    index: int              # 1-based, of `count` stages the engine trains
    count: int
    step: int               # > 0 when resumed
    max_steps: int          # 0 while a time budget is not yet turned into steps
    loss_unit: str
    history: History        # of this stage so far (empty for a fresh one)


@dataclass
class Progress:
    stage: str
    step: int
    max_steps: int          # as in StageStarted
    loss: float
    lr: float
    units_per_second: float
    unit: str
    elapsed: float          # seconds of training in this stage, resumed runs included
    eta: float              # seconds left in this stage at the current speed
    logged: bool            # a point of the stage's loss history (every log_interval steps)


@dataclass
class Validating:
    """Sent after each validation batch, so whoever drives the loop can stop it mid-validation."""
    stage: str
    step: int
    units: int
    budget: int


@dataclass
class Evaluation:
    stage: str
    step: int
    val_loss: float
    best_val_loss: float
    loss_unit: str
    metrics: dict           # name -> [value, unit]
    units: int              # held-out units the numbers were measured on
    unit: str               # what a unit is: "char", "sample" ...


@dataclass
class CheckpointSaved:
    stage: str
    path: str
    step: int
    best: bool


@dataclass
class Preview:
    stage: str
    step: int
    chunks: list
    error: str = ""         # the sample failed (a bug in the engine): said, and the training goes on


@dataclass
class Finished:
    stage: str              # the last stage trained
    step: int
    reason: str             # "completed" | "time limit"
    checkpoint: str
    best_val_loss: float | None
    loss_unit: str


@dataclass
class PresetChosen:
    """A new run fitted to a time budget here (engines.core.budget.fit_preset): every preset with a measured
    curve, timed on this machine, best expected loss first; the first is the one trained."""
    candidates: list        # of {"preset", "units_per_second", "units", "expected_loss"}
    unit: str               # what the units are ("char" ...)
    loss_unit: str
    curve_corpus: str       # where the curves were measured
    minutes_left: float     # of the budget, after the timing

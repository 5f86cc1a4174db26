"""Engines and views from other packages: installed from a dist-info made here, found through their entry
points, and used by the real main window as the built-in ones are."""
import shutil
import sys
from pathlib import Path

import pytest

from window_driver import click, close_window, open_window, start_training, wait_for

pytest.importorskip("pytestqt")

HERE = Path(__file__).parent
ENTRY_POINTS = """\
[sequence_studio.engines]
counter = dotstudio.engine:CounterEngine
twostage = two_stage_engine:TwoStageEngine

[sequence_studio.views]
counts = dotstudio.view:CountsView
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The dotstudio package (tests/plugin_engine) and the two-stage test engine, installed as a package
    manager would: the code and a dist-info with its entry points, in a folder on sys.path (which the worker
    process inherits)."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(HERE / "plugin_engine" / "dotstudio", site / "dotstudio")
    info = site / "dotstudio-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dotstudio\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        yield site
    for name in [m for m in sys.modules if m == "dotstudio" or m.startswith("dotstudio.")]:
        del sys.modules[name]


@pytest.fixture
def window(installed, qtbot, tmp_path, monkeypatch):
    win = open_window(qtbot, tmp_path / "home", monkeypatch)
    yield win
    close_window(win)


def counting(values: list[int]) -> int:
    """How many steps of a sequence count up by one (0 follows 9)."""
    return sum((b - a) % 10 == 1 for a, b in zip([0, *values], values))


def test_a_plugin_engine_trains_and_streams_into_its_own_view(window, qtbot, tmp_path):
    from dotstudio.view import CountsView
    create = window.create_page
    assert create.engine_box.findData("counter") >= 0              # the engine is offered
    create.engine_box.select("counter")
    assert isinstance(create.view, CountsView) and create.view.role == "create"
    assert create.model_box.count() == 0                           # no model yet: train one

    corpus = tmp_path / "counting.txt"
    corpus.write_text(" ".join(str(i % 10) for i in range(2000)))
    train = start_training(window, qtbot, corpus, "counter")
    assert "2,000 counts" in train.summary.text()
    wait_for(qtbot, train.job)
    assert train.stage_label.text() == "stage 1/1: bigram"
    assert train.plot.getAxis("left").labelText == "loss (nats/count)"
    preview = train.preview                                         # each validation's sample, in its view
    assert isinstance(preview, CountsView) and preview.role == "preview"
    assert preview.ended and counting(preview.values) >= 9

    window.tabs.setCurrentWidget(create)
    assert create.model_box.findText("counting") >= 0
    create.controls.fields["length"].set_value(40)
    click(qtbot, create.generate_button)
    job, streamed = create.job, []
    job.yielded.connect(streamed.extend)
    wait_for(qtbot, job)
    view = create.view
    assert view.settings["length"] == 40 and view.ended
    assert view.values == [item["value"] for item in streamed if item["type"] == "Count"]
    assert len(view.values) == 40 and counting(view.values) >= 30     # it learnt to count (chance: 4)

    # History loads the saved sample into the plug-in's view, and exports it with the engine's own export
    history = window.history_page
    window.tabs.setCurrentWidget(history)
    wait_for(qtbot, history.load_job)
    shown = history.views.currentWidget()
    assert isinstance(shown, CountsView) and shown.role == "history" and shown.values == view.values
    wait_for(qtbot, history.export_to(history.current(), tmp_path / "copy.counts"))
    assert (tmp_path / "copy.counts").read_text().split() == [str(v) for v in view.values]


def test_a_two_stage_run_shows_its_stages_and_is_offered_for_sampling_once_both_are_trained(window, qtbot,
                                                                                              tmp_path):
    from engines.core import trainer
    from two_stage_engine import TwoStageEngine
    engine, run, data = TwoStageEngine(), window.library.root / "points", tmp_path / "points.txt"
    data.write_text("the test engine makes its own points")
    corpus, recipes, preset = trainer.prepare_run(engine, str(data), run, "tiny")
    for _ in trainer.train(engine, corpus, run, recipes=recipes, stage="tokenizer", preset=preset, device="cpu"):
        pass       # the first stage only, as `studio train twostage --stage tokenizer` trains it
    window.models_changed()

    library = window.library_page
    row = [e.name for e in library.entries].index("points")
    assert not library.entries[row].ready
    assert library.table.item(row, library.COLUMNS.index("Stages")).text() == "tokenizer 40/40"
    assert library.table.item(row, library.COLUMNS.index("Validation loss")).text().endswith(" MSE")
    window.tabs.setCurrentWidget(library)
    library.select_row(row)
    assert not library.actions["Open"].isEnabled() and not library.actions["Preview"].isEnabled()
    window.create_page.engine_box.select("twostage")
    assert window.create_page.model_box.count() == 0               # its last stage is not trained yet

    # this engine's corpus summary does not name its file: the run resumes on the corpus chosen for it
    click(qtbot, library.actions["Resume training"])
    train = window.train_page
    assert window.tabs.currentWidget() is train and train.job is None
    assert "does not record which corpus" in window.messages.label.text()
    train.set_corpus(str(data))
    window.tabs.setCurrentWidget(library)
    click(qtbot, library.actions["Resume training"])
    assert window.tabs.currentWidget() is train
    started = []
    train.job.yielded.connect(lambda items: started.extend(i for i in items if i["type"] == "StageStarted"))
    wait_for(qtbot, train.job)
    assert [(s["index"], s["count"], s["stage"]) for s in started] == [(2, 2, "prior")]
    assert train.stage_label.text() == "stage 2/2: prior"
    assert train.plot.getAxis("left").labelText == "loss (nats/code)"
    assert train.train_points[0] == list(range(1, 41))              # the plot holds this stage's steps only

    row = [e.name for e in library.entries].index("points")
    assert library.entries[row].ready
    assert library.table.item(row, library.COLUMNS.index("Stages")).text() == "tokenizer 40/40 · prior 40/40"
    assert library.table.item(row, library.COLUMNS.index("Validation loss")).text().endswith(" nats/code")
    assert window.create_page.model_box.findText("points") >= 0     # now it makes samples


def test_a_run_stopped_before_its_time_budget_became_steps_shows_its_steps_as_not_yet_known(window, tmp_path):
    from engines.core import trainer
    from engines.core.events import STEPS_FROM_THE_CLOCK
    from helpers import events_until
    from two_stage_engine import TwoStageEngine
    engine, run, data = TwoStageEngine(), window.library.root / "budget", tmp_path / "points.txt"
    data.write_text("the test engine makes its own points")
    # as `studio train --minutes 5` prepares it
    corpus, recipes, preset = trainer.prepare_run(engine, str(data), run, "tiny", max_steps=STEPS_FROM_THE_CLOCK)
    events = trainer.train(engine, corpus, run, recipes=recipes, stage="tokenizer", preset=preset, device="cpu",
                           minutes=5)
    events_until(events, ("tokenizer", 5))                     # before the budget is turned into steps
    window.models_changed()
    library = window.library_page
    row = [e.name for e in library.entries].index("budget")
    assert library.table.item(row, library.COLUMNS.index("Stages")).text() == "tokenizer 5/?"

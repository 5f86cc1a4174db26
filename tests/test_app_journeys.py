"""Journeys across the app's pages with a model of the user's own: chosen in the Library, kept while other
things change, replayed from History, renamed; training paused and resumed whatever the form shows since;
a sample waiting behind a training run stopped at once."""
import pytest
import torch

from engines import available_engines
from engines.core.checkpoint import save_checkpoint
from engines.core.trainer import train
from engines.text import TextEngine
from helpers import recipes, tiny_model, tiny_train
from window_driver import click, close_window, open_window, start_training, wait_for

pytest.importorskip("pytestqt")


@pytest.fixture
def own_model_window(qtbot, tmp_path, monkeypatch, corpus_file):
    """The window, its Library holding a tiny text model called "mine"."""
    engine = TextEngine()
    list(train(engine, engine.read_corpus(corpus_file), tmp_path / "home" / "models" / "mine",
               recipes=recipes(tiny_model(), tiny_train(10)), device="cpu", previews=False))
    window = open_window(qtbot, tmp_path / "home", monkeypatch)
    yield window
    close_window(window)


def test_a_model_opened_from_the_library_stays_chosen_replays_and_follows_a_rename(own_model_window, qtbot):
    window = own_model_window
    library, page = window.library_page, window.create_page
    window.tabs.setCurrentWidget(library)
    library.select_row([e.name for e in library.entries].index("mine"))
    click(qtbot, library.actions["Open"])
    assert window.tabs.currentWidget() is page and page.model_box.currentText() == "mine"
    window.models_changed()                     # what each checkpoint of a training run does
    assert page.model_box.currentText() == "mine"

    page.controls.fields["length"].set_value(40)
    page.controls.fields["seed"].set_value(3)
    click(qtbot, page.generate_button)
    wait_for(qtbot, page.job)
    text = page.view.texts()[0]
    assert len(text) == 40 and page.export_button.isEnabled()
    page.engine_box.select("ink")               # Export writes the last sample: not from another engine's page
    assert not page.export_button.isEnabled()
    before = page.controls.values()["seed"]     # nor does a seed drawn for it land in this page's field
    page.on_items([{"type": "Settings", "settings": {"seed": 987654}}])
    assert page.controls.values()["seed"] == before != 987654
    page.engine_box.select("text")
    assert page.export_button.isEnabled()

    history = window.history_page
    window.tabs.setCurrentWidget(history)
    wait_for(qtbot, history.load_job)
    click(qtbot, history.replay_button)
    assert window.tabs.currentWidget() is page and page.model_box.currentText() == "mine"
    wait_for(qtbot, page.job)
    assert page.view.texts()[0] == text

    window.tabs.setCurrentWidget(library)
    library.select_row([e.name for e in library.entries].index("mine"))
    library.rename(new_name="renamed")
    names = [page.model_box.itemText(i) for i in range(page.model_box.count())]
    assert "renamed" in names and "mine" not in names


def test_stop_ends_a_sample_waiting_behind_training_at_once(own_model_window, qtbot, tmp_path, corpus_file):
    window = own_model_window
    train_page = start_training(window, qtbot, corpus_file, "text", "tiny")
    qtbot.waitUntil(lambda: train_page.progress.value() > 0, timeout=60_000)
    page = window.create_page
    window.tabs.setCurrentWidget(page)
    page.engine_box.select("text")
    click(qtbot, page.generate_button)
    assert not page.job.running and "waiting" in page.status.text()
    with qtbot.waitSignal(page.job.finished, timeout=1_000) as finished:
        click(qtbot, page.stop_button)
    assert finished.args[0]["cancelled"] and page.generate_button.isEnabled()
    assert "stopped" in page.status.text() and "seed" not in page.status.text()
    window.tabs.setCurrentWidget(train_page)
    with qtbot.waitSignal(train_page.job.finished, timeout=30_000):
        click(qtbot, train_page.stop_button)
    assert not page.sample_path.exists()                # the worker never began it


def test_resume_goes_on_with_the_paused_run_whatever_the_form_shows_now(own_model_window, qtbot, tmp_path,
                                                                         corpus_file):
    window = own_model_window
    page = start_training(window, qtbot, corpus_file, "text", "tiny")
    assert page.name_edit.text() == corpus_file.stem            # named after its corpus
    run_dir = page.run_dir
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=60_000)
    with qtbot.waitSignal(page.job.finished, timeout=30_000):
        click(qtbot, page.pause_button)
    paused_at = page.progress.value()

    page.engine_box.select("ink")               # the user looks at another engine meanwhile
    other = tmp_path / "other.txt"
    other.write_text("x")
    page.set_corpus(str(other))
    assert page.name_edit.text() == "other"    # a name the page gave follows the corpus ...
    page.name_edit.setText("my own name")
    page.set_corpus(str(corpus_file))
    assert page.name_edit.text() == "my own name"     # ... one the user typed does not

    click(qtbot, page.resume_button)
    assert page.form.engine_name == "text" and page.run_dir == run_dir
    qtbot.waitUntil(lambda: page.progress.value() > paused_at, timeout=60_000)
    with qtbot.waitSignal(page.job.finished, timeout=30_000):
        click(qtbot, page.stop_button)
    assert "failed" not in page.progress_label.text()


def test_a_damaged_stage_checkpoint_is_passed_over_for_its_twin(tmp_path):
    from studio.library import ModelLibrary
    run = tmp_path / "models" / "clips"
    for stage, step in (("tokenizer", 10), ("prior", 5)):
        for name in ("best", "last"):
            save_checkpoint(run / stage / f"{name}.safetensors", {"x": torch.zeros(1)},
                            {"engine": "video", "stage": stage, "step": step, "max_steps": 10})
    (run / "tokenizer" / "last.safetensors").write_bytes(b"\0" * 10)       # a disk full mid-write, say
    (run / "prior" / "best.safetensors").write_bytes(b"")
    [entry] = [e for e in ModelLibrary(available_engines(), tmp_path / "models").entries() if e.name == "clips"]
    assert not entry.problem and entry.ready and entry.checkpoint == run / "prior" / "last.safetensors"
    assert [(s.name, s.steps) for s in entry.stages] == [("tokenizer", 10), ("prior", 5)]


def test_history_lists_the_newest_sample_first_whatever_its_engine(tmp_path):
    import json
    import time
    from studio.library import SampleHistory
    for name, created in (("video-20261207-123533.gif", "2026-12-07T12:35:33+0000"),
                          ("text-20261207-133536.txt", "2026-12-07T13:35:36+0100"),     # the clock moved on an hour
                          ("audio-20261207-123530.wav", "2026-12-07T12:35:30+0000"),
                          ("audio-20261207-123530-2.wav", "2026-12-07T12:35:30+0000")):  # the same second, later
        (tmp_path / name).write_bytes(b"x")
        (tmp_path / f"{name}.json").write_text(json.dumps({"created": created}))
        time.sleep(0.01)
    (tmp_path / "text-20261207-133600.txt").write_bytes(b"x")
    (tmp_path / "text-20261207-133600.txt.json").write_text("[1, 2]")          # not a record of ours: left out
    assert [r.path.name for r in SampleHistory(tmp_path).records()] == [
        "text-20261207-133536.txt", "video-20261207-123533.gif", "audio-20261207-123530-2.wav",
        "audio-20261207-123530.wav"]

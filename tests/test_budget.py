"""Fitting the model size to a time budget: `studio train text --minutes M` without a preset."""
import pytest
import torch

from engines.core import budget
from engines.core.checkpoint import read_meta
from engines.core.errors import ConfigError
from engines.core.interface import read_curve
from engines.text import TextEngine
from studio.cli import main
from test_cli import studio


def test_expected_loss_follows_the_curve_in_log_units_and_stays_level_past_its_end():
    curve = [(1e6, 2.0), (1e7, 1.6), (1e8, 1.4)]
    assert budget.expected_loss(curve, 1e6) == pytest.approx(2.0)
    assert budget.expected_loss(curve, 10 ** 6.5) == pytest.approx(1.8)
    assert budget.expected_loss(curve, 10 ** 7.5) == pytest.approx(1.5)
    assert budget.expected_loss(curve, 1e9) == pytest.approx(1.4)        # nothing promised beyond the data
    assert budget.expected_loss(curve, 10 ** 5.5) == pytest.approx(2.2)  # the first slope, backwards


@pytest.mark.parametrize("table", [{"units": [1, 2]}, {"units": [2, 1], "loss": [1, 2]},
                                   {"units": [1], "loss": [1]}, {"units": [1, 2], "loss": [1, "x"]},
                                   {"units": [0, 2], "loss": [1, 2]}, {"units": [1, 2], "loss": [1, 2], "x": 1}])
def test_a_malformed_curve_table_is_refused(table):
    with pytest.raises(ConfigError, match=r"\[curve\]"):
        read_curve(table, "preset x")


def test_text_presets_carry_curves_that_fall():
    curves = {name: p.curve for name, p in TextEngine().presets().items() if p.curve}
    assert {"mini", "compact", "small"} <= set(curves)
    for curve in curves.values():
        assert curve[-1][1] < curve[0][1]


def test_a_slow_machine_or_short_budget_gets_a_smaller_model(monkeypatch):
    # relative speeds as measured on an AVX2 core (2x256 : 2x384 : 2x512 at about 3 : 1.7 : 1)
    speeds = {"mini": 9400, "compact": 5000, "small": 3000}
    engine = TextEngine()

    def chosen(speed_factor, minutes):
        monkeypatch.setattr(budget, "training_speed", lambda e, corpus, preset, device: speeds[preset.name] * speed_factor)
        found = budget.candidates(engine, None, minutes, torch.device("cpu"))
        assert [c.expected_loss for c in found] == sorted(c.expected_loss for c in found)
        return engine.preset(found[0].preset).stages["model"].model["n_hidden"]

    assert chosen(1, 5) == 256
    assert chosen(20, 30) > 256


def test_the_cli_shows_each_size_timed_and_trains_the_one_it_chose(corpus_file, tmp_path, monkeypatch, capsys):
    # the timing itself is the app's test (test_a_time_budget_trains_the_size_timed_best_here); here the speeds
    # are given, so the choice is known: where the bigger sizes train 100x slower, the smallest one wins
    speeds = {"mini": 9400, "compact": 94, "small": 60}
    monkeypatch.setattr(budget, "training_speed", lambda e, corpus, preset, device: speeds[preset.name])
    run = tmp_path / "run"
    assert main(["train", "text", "--data", str(corpus_file), "--minutes", "0.1", "--out", str(run),
                 "--no-preview", "--device", "cpu"]) == 0
    stderr = capsys.readouterr().err
    rows = [line.split() for line in stderr.splitlines() if line.startswith("  ") and "chars/s" not in line]
    assert {"mini", "compact", "small"} <= {row[0] for row in rows}
    assert [row[0] for row in rows if row[-1] == "chosen"] == ["mini"]
    assert read_meta(run / "last.safetensors")["preset"] == "mini"
    assert "time limit" in stderr or "completed" in stderr


def test_a_named_preset_is_trained_as_named(corpus_file, tmp_path):
    trained = studio("train", "text", "--data", corpus_file, "--preset", "tiny", "--minutes", 0.05,
                     "--out", tmp_path / "run", "--no-preview", "--device", "cpu")
    assert "timing" not in trained.stderr
    assert read_meta(tmp_path / "run" / "last.safetensors")["preset"] == "tiny"

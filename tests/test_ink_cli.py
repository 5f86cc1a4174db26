"""The ink engine through the headless CLI, as a user runs it: train -> sample -> export -> open again."""
import json
import os
import subprocess
import sys
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from engines.ink import InkEngine
from engines.ink.chunks import variation_points
from helpers import studio as in_process_studio
from test_ink_engine import write_hershey_corpus


def studio(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"studio {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def test_train_sample_export_and_errors(tmp_path, capsys):
    data = write_hershey_corpus(tmp_path / "data", lines=120)
    run = tmp_path / "run"
    trained = studio("train", "ink", "--data", data, "--preset", "tiny", "--out", run, "--steps", 30,
                     "--set", "train.eval_interval=15", "--set", "train.seq_len=120", "--device", "cpu")
    assert "120 line(s) by 3 writer(s)" in trained.stderr and "nats/point" in trained.stderr
    assert (run / "best.safetensors").exists()

    svg = tmp_path / "x.svg"
    sampled = studio("sample", "ink", "--checkpoint", run, "--text", "an ox can see, 42!", "--bias", "1.5",
                     "--style", "w1", "--seed", 4, "--out", svg)
    assert "in the hand of writer w1" in sampled.stderr and "Hershey" in sampled.stderr
    ElementTree.parse(svg)
    settings = json.loads((tmp_path / "x.svg.json").read_text())
    assert settings["engine"] == "ink" and settings["bias"] == 1.5 and settings["style"] == "w1"
    chunks, saved = InkEngine().load_sample(svg)
    assert saved["text"] == "an ox can see, 42!" and len(variation_points(chunks)) > 20

    png = tmp_path / "x.png"
    studio("sample", "ink", "--checkpoint", run, "--text", "an ox can see, 42!", "--bias", "1.5", "--style", "w1",
           "--seed", 4, "--out", png)
    again, _ = InkEngine().load_sample(png)
    np.testing.assert_array_equal(variation_points(again), variation_points(chunks))   # same seed, same page
    with Image.open(png) as image:
        assert image.width > 100

    pen = json.dumps([[[0, 0], [2, -3], [4, 0], [5, -1]], [[7, 0], [8, -3], [10, 0]]])      # as the pen pad saves
    sampled = studio("sample", "ink", "--checkpoint", run, "--text", "an ox", "--pen-sample", pen, "--pen-text", "an",
                     "--out", tmp_path / "pen.svg")
    assert "in the hand of the pen sample" in sampled.stderr

    evaluated = studio("eval", "ink", "--checkpoint", run, "--data", data, "--split", "validation")
    assert "nats/point" in evaluated.stdout and float(evaluated.stdout.split()[0]) < 3.0

    for args, message in [(["--text", "hi"], "add --out FILE (.svg or .png or .gif)"),
                          (["--style", "nobody", "--out", tmp_path / "y.svg"], "no style 'nobody'"),
                          (["--colour", "inky", "--out", tmp_path / "y.png"], "not a colour"),
                          (["--bias", "-1", "--out", tmp_path / "y.svg"], "outside"),
                          (["--pen-sample", "[[0, 0", "--out", tmp_path / "y.svg"], "--pen-sample: not JSON"),
                          (["--text", " \n ", "--out", tmp_path / "y.svg"], "nothing to write")]:
        code, said = in_process_studio(capsys, "sample", "ink", "--checkpoint", run, *args)   # no torch import each
        assert code != 0 and message in said, said
        assert "Traceback" not in said and not (tmp_path / "y.svg").exists()


@pytest.mark.skipif(not InkEngine().bundled_models(), reason="the bundled handwriting model is not in assets/ink/")
def test_the_bundled_model_writes_without_a_checkpoint(tmp_path):
    out = tmp_path / "hello.svg"
    sampled = studio("sample", "ink", "--text", "Hello there, my dear friend.", "--seed", 2, "--out", out)
    assert "in the hand of writer" in sampled.stderr and "(step " in sampled.stderr
    chunks, _ = InkEngine().load_sample(out)
    assert len(variation_points(chunks)) > 100

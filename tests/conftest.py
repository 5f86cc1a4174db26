import gc
import os
import random
from pathlib import Path

import pytest

from studio.playback import use_null_sound_output

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# tests play through a real PortAudio stream into ALSA's null sink: silent on a desktop, and a working
# output on a server without a sound card
use_null_sound_output()

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def collect_earlier_tests_garbage():
    """Collect what earlier tests left (their windows and widgets) before this one starts, where nothing holds a
    Qt lock. Left to itself, a collection can start inside one of PySide's signal disconnections and destroy
    widgets there, which deadlocks on Qt's connection mutex (seen once in CI, while a window was being built)."""
    gc.collect()


@pytest.fixture(autouse=True)
def own_cache_folder(tmp_path_factory, monkeypatch):
    """What engines keep between runs goes to a folder of each test's own, not the user's cache: a test sees
    only what it cached itself (one that patches a model's forward pass must not find its state from another)."""
    monkeypatch.setenv("SEQUENCE_STUDIO_CACHE", str(tmp_path_factory.mktemp("cache")))


def write_corpus(path: Path, n_chars: int = 20_000, seed: int = 0) -> Path:
    """Deterministic English-like text with structure a small model picks up in a few dozen steps."""
    rng = random.Random(seed)
    names = ["ROMEO", "JULIET", "NURSE", "FRIAR"]
    words = "the a my thy love night day sweet fair death light heart moon sun dear good".split()
    lines = []
    while sum(map(len, lines)) < n_chars:
        speech = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
        lines.append(f"{rng.choice(names)}:\n{speech.capitalize()}.\n\n")
    path.write_text("".join(lines)[:n_chars], encoding="utf-8")
    return path


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus.txt")


def write_audio_corpus(folder: Path, rate: int = 16000, files_per_class: int = 6, seconds: float = 0.4) -> Path:
    """Two classes of stereo tones in sub-folders at `rate`, each with silence around it: enough structure
    for a tiny WaveNet to learn in a few dozen steps, and exercising resampling, mixing down and trimming."""
    import numpy as np
    import soundfile as sf
    rng = np.random.default_rng(0)
    for name, pitch in (("low", 220.0), ("high", 660.0)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(files_per_class):
            t = np.arange(int(seconds * rate)) / rate
            tone = 0.5 * np.sin(2 * np.pi * pitch * (1 + 0.02 * i) * t) * np.hanning(len(t))
            quiet = np.zeros(int(0.1 * rate))
            mono = np.concatenate([quiet, tone, quiet]) + 1e-4 * rng.standard_normal(len(tone) + 2 * len(quiet))
            sf.write(folder / name / f"{name}_{i}.wav", np.stack([mono, 0.8 * mono], axis=1), rate)
    return folder


@pytest.fixture
def audio_corpus(tmp_path) -> Path:
    return write_audio_corpus(tmp_path / "sounds")


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models, which are bound by overhead: on a shared two-core machine a second thread only
    adds synchronisation (several times slower)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

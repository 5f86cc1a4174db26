import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


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

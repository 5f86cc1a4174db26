"""The ink engine on the studio's interface: a corpus of any pen format, learning to read text on Hershey
strokes, writing any text as a complete page, exports that open again, and bad pen files named."""
import io
import json
import pickle
import string
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from PIL import Image

from engines.core.errors import ConfigError, CorpusError
from engines.core.interface import Notice, StageRecipe, TrainConfig, resolve_settings
from engines.core.trainer import Evaluation, load_model, train
from engines.core.checkpoint import load_checkpoint
from engines.ink import InkEngine
from engines.ink.chunks import InkChunk, strokes_of, variation_points
from engines.ink.data import Alphabet, read_corpus
from engines.ink.hershey import fallback, synthetic_line
from engines.ink.model import past_end
from engines.ink.corpus import SHAPE_DEFAULTS, unpack_points
from engines.ink.write import (Page, Primer, Writer, choose_primer, load_primed, plan_line, primed_writer,
                               read_primer_points, shipped_file, wrap)
from helpers import events_until

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENGINE = InkEngine()
WORDS = "an ox can see a cat on the hill".split()
TINY = dict(n_layer=2, n_hidden=32, mixtures=3, window_gaussians=3, end_flag=True)


def write_hershey_corpus(folder: Path, lines: int = 200, seed: int = 0, most_words: int = 5, size: float = 1.0) -> Path:
    """The studio's corpus format (strokes.npz + texts.jsonl) of exactly aligned lines in Hershey's cursive,
    in integer tablet-like units (`size` times larger), by three 'writers'."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    points, offsets, rows = [], [0], []
    for i in range(lines):
        text = " ".join(rng.choice(WORDS, rng.integers(1, most_words + 1)))
        p = np.round(synthetic_line(text, rng, 20.0 * size, 7.0 * size)).astype(np.int16)
        points.append(p)
        offsets.append(offsets[-1] + len(p))
        rows.append({"index": i, "writer": f"w{i % 3}", "text": text})
    np.savez(folder / "strokes.npz", points=np.concatenate(points), offsets=np.array(offsets))
    (folder / "texts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def tiny_recipe(steps: int = 80, **model) -> dict:
    train_config = TrainConfig(batch_size=8, seq_len=120, lr=1e-2, warmup_steps=10, max_steps=steps,
                               weight_decay=0.0, grad_clip=3.0, eval_interval=steps // 2, log_interval=1,
                               precision="fp32", val_units=5000)
    return {"model": StageRecipe({**TINY, **model}, train_config)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for 80 steps on Hershey lines: (run folder, corpus folder, validation losses)."""
    root = tmp_path_factory.mktemp("ink")
    data = write_hershey_corpus(root / "data")
    recipe = tiny_recipe()
    from engines.ink.config import InkModelConfig
    corpus = ENGINE.read_corpus(data, model_config=InkModelConfig(**TINY))
    events = list(train(ENGINE, corpus, root / "run", recipes=recipe, device="cpu", previews=False))
    return root / "run", data, [e.val_loss for e in events if isinstance(e, Evaluation)]


@pytest.fixture(scope="module")
def model(trained):
    return load_model(ENGINE, trained[0], "cpu")


def settings(**values):
    return resolve_settings(ENGINE.controls(), {"seed": 0, **values})


def write(model_and_header, **values):
    model, header = model_and_header
    chunks = list(ENGINE.generate(model, header, settings(**values)))
    return [c for c in chunks if isinstance(c, InkChunk)], [c.message for c in chunks if isinstance(c, Notice)]


# ----------------------------------------------------------------------------------------------------
# the corpus

def test_summary_names_writers_lines_alphabet_and_rate(trained):
    _, data, _ = trained
    corpus = ENGINE.read_corpus(data)
    s, meta = corpus.summary, corpus.meta
    text = "\n".join(s["lines"])
    assert s["ink_lines"] == 200 and s["writers"] == 3 and "w0, w1, w2" in text
    assert "never seen: " in text and "ABC" in text            # capitals and digits are not in these lines
    assert "points per character" in text and "do not say how fast" in text
    assert set(meta["alphabet"]["chars"]) == set("anoxcsethil ")
    assert sorted(meta["styles"]) == ["w0", "w1", "w2"] and all(len(s["text"]) > 10 for s in meta["styles"].values())
    json.dumps(meta)                                           # saved in every checkpoint
    batch = corpus.batch(4, 50, torch.Generator().manual_seed(0))
    # lines cut to 51 points, and a padding point after them (where the end flag is read)
    assert batch.tensors["points"].shape[:2] == (4, 52) and batch.units == int(batch.tensors["point_mask"][:, 1:].sum())


def test_writers_can_be_held_out_and_unknown_ones_are_named(trained):
    _, data, _ = trained
    from engines.ink.config import InkModelConfig
    corpus = ENGINE.read_corpus(data, model_config=InkModelConfig(validation_writers="w1"))
    assert len(corpus.val) == 200 // 3 + (200 % 3 > 1) and "w1" not in corpus.meta["styles"]
    with pytest.raises(CorpusError, match="nobody"):
        ENGINE.read_corpus(data, model_config=InkModelConfig(validation_writers="nobody"))


def sketch_npz(path: Path, **arrays):
    np.savez(path, **arrays)
    return path


def test_sketch_rnn_stroke3_and_stroke5_files_parse_without_unpickling_code(tmp_path):
    sketches = np.empty(2, dtype=object)
    sketches[0] = np.array([[5, 0, 0], [5, 5, 1], [-10, 0, 0], [0, 5, 1]], np.int16)
    sketches[1] = np.array([[1, 1, 0], [2, 2, 1]], np.int16)
    sketch_npz(tmp_path / "cat.npz", train=sketches, valid=sketches[:1])
    stroke5 = np.zeros((1, 6, 5), np.float32)          # padded stroke-5: dx, dy, down, up, end
    stroke5[0, :3] = [[3, 0, 1, 0, 0], [3, 0, 0, 1, 0], [0, 3, 0, 0, 1]]
    sketch_npz(tmp_path / "dog.npz", test=stroke5)
    lines, warnings = read_corpus(tmp_path)
    assert len(lines) == 4 and not warnings and all(l.text == "" for l in lines)
    cat = next(l for l in lines if l.source.endswith("train[0]"))
    np.testing.assert_array_equal(cat.points, [[0, 0, 0], [5, 0, 0], [5, 5, 1], [-10, 0, 0], [0, 5, 1]])
    dog = next(l for l in lines if "dog" in l.source)
    np.testing.assert_array_equal(dog.points, [[0, 0, 0], [3, 0, 0], [3, 0, 1]])
    assert [len(s) for s in strokes_of(cat.points)] == [3, 2]

    class Evil:                                         # a pickle that would run a command when loaded
        def __reduce__(self):
            return (print, ("pwned",))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        z.writestr("train.npy", np.lib.format.MAGIC_PREFIX + b"\x01\x00" + header.getvalue()[8:] + pickle.dumps([Evil()]))
    (tmp_path / "bad" ).mkdir()
    (tmp_path / "bad" / "evil.npz").write_bytes(buffer.getvalue())
    with pytest.raises(CorpusError, match=r"evil\.npz.*builtins\.print"):
        read_corpus(tmp_path / "bad")


@pytest.mark.parametrize("name, content, why", [
    ("empty.inkml", b"", "not well-formed"),
    ("binary.xml", bytes(range(256)) * 4, "not well-formed"),
    ("truncated.npz", b"PK\x03\x04garbage", "not a readable .npz"),
    ("words.ndjson", b"hello world\n", "skipped"),
    ("flat.npz", None, "expected (n, 3) stroke-3"),
    ("nopoints.inkml", b'<ink xmlns="http://www.w3.org/2003/InkML"><trace>1 2</trace></ink>', "at least 2 points"),
    ("nan.inkml", b'<ink xmlns="http://www.w3.org/2003/InkML"><trace>1 2, nan nan, 3 4</trace></ink>',
     "trace point 'nan nan' does not begin with two numbers"),
    ("notes.txt", b"just text", "no pen data"),
])
def test_bad_pen_files_are_each_named_with_a_reason(tmp_path, name, content, why):
    path = tmp_path / name
    if content is None:
        np.savez(path, train=np.zeros((4, 7)))
    else:
        path.write_bytes(content)
    with pytest.raises(CorpusError) as e:
        ENGINE.read_corpus(tmp_path if name != "notes.txt" else path)
    assert name in str(e.value) and why in str(e.value)


def test_an_unconditional_corpus_trains_and_scribbles(tmp_path):
    rng = np.random.default_rng(0)
    rows = [json.dumps({"drawing": [[list(np.cumsum(rng.integers(-9, 10, 30)).tolist()),
                                     list(np.cumsum(rng.integers(-9, 10, 30)).tolist())]]}) for _ in range(40)]
    (tmp_path / "doodles.ndjson").write_text("\n".join(rows))
    corpus = ENGINE.read_corpus(tmp_path / "doodles.ndjson")
    assert corpus.meta["alphabet"] is None and "unconditional" in " ".join(corpus.summary["lines"])
    events = list(train(ENGINE, corpus, tmp_path / "run", recipes=tiny_recipe(20), device="cpu", previews=False))
    losses = [e.val_loss for e in events if isinstance(e, Evaluation)]
    assert losses[-1] < losses[0]
    model, header = load_model(ENGINE, tmp_path / "run")
    drawn = {}
    for flag, bias in (("never", -50.0), ("at once", 50.0)):       # the end flag decides where a drawing ends
        with torch.no_grad():
            model.end.bias.fill_(bias)
        out = list(ENGINE.generate(model, header, settings(length=50, variations=2, text="a cat", style="jab")))
        chunks = [c for c in out if isinstance(c, InkChunk)]
        drawn[flag] = [len(variation_points(chunks, v)) for v in (0, 1)]
        assert chunks[-1].done == [True, True]
        assert "text and style do not apply" in out[0].message      # said, not silently ignored
    assert drawn == {"never": [50, 50], "at once": [0, 0]}


# ----------------------------------------------------------------------------------------------------
# learning to read

def test_loss_falls(trained):
    _, _, losses = trained
    assert losses[-1] < 0.5 * losses[0], losses


def test_chunked_training_scores_what_whole_lines_score(trained):
    """chunk_points cuts the gradient at chunk boundaries, not the state: the loss is the same number."""
    _, data, _ = trained
    from engines.ink.config import InkModelConfig
    corpus = ENGINE.read_corpus(data)
    batch = corpus.batch(4, 60, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    whole = ENGINE.build_model(ENGINE.stage(), InkModelConfig(**TINY), corpus.meta)
    chunked = ENGINE.build_model(ENGINE.stage(), InkModelConfig(**TINY, chunk_points=7), corpus.meta)
    chunked.load_state_dict(whole.state_dict())
    a, b = ENGINE.loss(whole, batch, ENGINE.stage()).value, ENGINE.loss(chunked, batch, ENGINE.stage()).value
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    b.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in chunked.parameters())


def test_the_window_moves_forward_and_reaches_the_end_of_the_text(model):
    """Trained for a few seconds on exactly aligned Hershey lines, the tiny model reads its text."""
    net, header = model
    alphabet = Alphabet.from_meta(header["corpus"]["alphabet"])
    text = "a cat can see"
    ids = torch.tensor([alphabet.encode(text)] * 4)
    reading = net.encode_text(ids, torch.ones_like(ids, dtype=torch.bool))
    g = torch.Generator().manual_seed(0)
    x, state = torch.zeros(4, 3), net.initial_state(4)
    positions, finished_at = [], [None] * 4
    expected = len(text) / header["corpus"]["chars_per_point"]
    for t in range(int(3 * expected)):
        step = net.step(x, state, reading, bias=1.0, generator=g)
        x, state = step.point, step.state
        positions.append(state.kappa.mean(-1))
        for i, done in enumerate(past_end(step.phi, torch.full((4,), len(text))).tolist()):
            if done and finished_at[i] is None:
                finished_at[i] = t
    positions = torch.stack(positions)
    assert (positions.diff(dim=0) >= 0).all()                          # kappa only moves forward
    assert all(f is not None and 0.5 * expected < f < 1.5 * expected for f in finished_at), (finished_at, expected)


def test_a_line_ends_where_the_model_ends_it_once_its_last_character_is_reached(model):
    net, _ = model
    kept = net.end.bias.detach().clone()
    written = {}
    try:
        for flag, bias in (("always", 50.0), ("never", -50.0)):    # never: the window's rule alone
            with torch.no_grad():
                net.end.bias.fill_(bias)
            written[flag] = write(model, text="a cat can see", bias=1.0, style="none")
    finally:
        with torch.no_grad():
            net.end.bias.copy_(kept)
    (always, notices), (never, _) = written["always"], written["never"]
    assert 0.5 * len(variation_points(never)) < len(variation_points(always)) < len(variation_points(never))
    assert not any("could not follow" in n for n in notices)   # not cut short before its last character


# ----------------------------------------------------------------------------------------------------
# writing

def test_text_wraps_and_splits_into_written_and_drawn_pieces():
    assert wrap("one two three four\n\nfive", 9) == ["one two", "three", "four", "", "five"]
    assert wrap("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    pieces, substituted = plan_line("an ox, née 5 cats", set("anoxcest "))
    assert [(p.text, p.glyph) for p in pieces] == [("an ox", ""), ("", ","), ("nee", ""), ("", "5"), ("cats", "")]
    assert pieces[2].marks == [(1, "\u0301")] and pieces[2].gap and not pieces[1].gap
    assert substituted == {",", "é", "5"}


def test_every_character_a_user_can_type_is_written(model):
    text = "".join(ch for ch in string.printable if not ch.isspace() or ch == " ") + \
        " Ærø Ünïcödé ñ ç ß Ωμέγα Жизнь 中文 🙂 \u0301 \x00 fin \x1b[31m \u200d"
    chunks, notices = write(model, text=text, width=40, variations=2)
    assert any("Hershey" in n and "中" in n and "@" in n for n in notices)
    assert not any(ch in n for n in notices for ch in "\x00\x1b\u200d")      # invisible: left out, not drawn
    assert any("accent" in n and "ü" not in n and "ï" in n for n in notices)
    for v in range(2):
        points = variation_points(chunks, v)
        assert len(points) > len(text) and np.isfinite(points).all()
        assert set(np.unique(points[:, 2])) <= {0.0, 1.0}
    assert chunks[-1].done == [True, True]
    lines = {line for c in chunks for line in c.line}
    assert lines == set(range(len(wrap(text, 40))))


def a_written_word(text: str, delayed: list = (), level_cross: bool = False):
    """A word as the model might write it (x-height and character width 1, baseline at y = 0, y down), one
    letter a character width, without dots or crosses: i a short stem, t and l tall ones, others a hump;
    `delayed`: strokes made after the word, the window on the space after it. (xy, pen_up, char of each point)."""
    xy, chars = [], []
    for k, ch in enumerate(text):
        if ch == "i":
            shape = [(0, 0), (0.15, -0.5), (0.3, -1.0), (0.35, -0.5), (0.4, 0)]
        elif ch in "tl":
            shape = [(0, 0), (0.2, -0.8), (0.4, -1.6), (0.45, -0.8), (0.5, 0), (0.8, -0.3)]
            if level_cross and ch == "t":
                shape[3:3] = [(0.15, -1.1), (0.65, -1.1)]
        else:
            shape = [(0, 0), (0.3, -0.9), (0.6, -0.9), (0.9, 0)]
        xy += [(k + x, y) for x, y in shape]
        chars += [k] * len(shape)
    pens = np.zeros(len(xy))
    pens[-1] = 1
    for stroke in delayed:
        xy += stroke
        chars += [len(text)] * len(stroke)
        pens = np.r_[pens, np.zeros(len(stroke) - 1), 1]
    return np.array(xy, float), pens, np.array(chars)


def marks_drawn(xy, moves):
    at = xy[-1] + np.cumsum(moves[:, :2], axis=0)
    return [s for s in np.split(at, np.flatnonzero(moves[:, 2] > 0.5) + 1) if len(s)]


def missing(text, accents=None, **word):
    from engines.ink.dots import missing_marks
    xy, pens, chars = a_written_word(text, **word)
    return marks_drawn(xy, missing_marks(text, [(0, len(text) - 1)], accents or {}, xy, pens, chars, 1.0, 1.0))


def test_the_dots_and_crosses_the_pen_left_out_are_placed_on_their_letters():
    from engines.ink.dots import missing_marks
    xy, pens, chars = a_written_word("it")
    moves = missing_marks("it", [(0, 1)], {}, xy, pens, chars, x_height=1.0, char_width=1.0)
    assert moves[:, 2].tolist() == [0, 1, 0, 0, 0, 0, 1]
    dot, cross = marks_drawn(xy, moves)
    assert len(dot) == 2 and np.ptp(dot, axis=0).max() < 0.2                    # a dot
    assert -1.9 < dot[:, 1].mean() < -1.3 and 0.2 < dot[:, 0].mean() < 0.7      # above the i's stem
    assert np.ptp(cross[:, 0]) > 0.5 and np.ptp(cross[:, 1]) < 0.1              # a level stroke
    assert -1.3 < cross[:, 1].mean() < -0.9 and cross[0, 0] < 1.3 < cross[-1, 0]  # across the t's stem

    assert len(missing("it", delayed=[[(0.45, -1.6)]])) == 1                   # the pen dotted the i itself
    assert len(missing("it", level_cross=True)) == 1                            # and crossed the t on its way
    assert len(missing("litt", delayed=[[(2.0, -1.1), (4.0, -1.1)]])) == 1     # one bar over both t's of "litt"
    assert len(missing("it", delayed=[[(1.0, -1.1), (1.7, -1.1)]])) == 1       # a cross is the t's, not the i's
    dot, = missing("ti", delayed=[[(0.1, -1.1), (0.3, -1.1), (0.5, -1.1)]])    # and a short one too
    assert 1.0 < dot[:, 0].mean() < 1.7
    cross, = missing("tot", delayed=[[(1.2, -1.1), (1.5, -1.1), (1.8, -1.1)]])  # the nearer t's
    assert cross[:, 0].mean() < 1.0
    assert missing("it", accents={0: "\u0301"}, level_cross=True) == []        # í: the accent is its dot
    assert len(missing("it", accents={1: "\u0327"}, level_cross=True)) == 1    # ţ keeps its cross, the i its dot
    dot, = missing("li", level_cross=True)                                      # the l's top is not the i's
    assert -1.9 < dot[:, 1].mean() < -1.3


def test_a_sample_recorded_before_the_dots_were_added_replays_without_them():
    from engines.core.interface import recorded_settings
    old = recorded_settings(ENGINE.controls(), {"text": "a cat", "seed": 1})      # as History kept it then
    assert old["dots"] is False and old["bias"] == 1.0 and old["text"] == "a cat"
    assert recorded_settings(ENGINE.controls(), {"dots": True})["dots"] is True
    assert settings()["dots"] is True                                            # new samples have them


def test_the_writer_adds_missing_dots_and_crosses_word_by_word_and_only_when_asked(model, monkeypatch):
    from engines.ink import dots
    asked, added = [], []

    def spy(text, spans, *args, **kwargs):
        moves = missing_marks(text, spans, *args, **kwargs)
        asked.append([text[a:b + 1] for a, b in spans])
        added.append(moves)
        return moves

    missing_marks = dots.missing_marks
    monkeypatch.setattr(dots, "missing_marks", spy)
    text = "a tin in the hill"
    chunks, _ = write(model, text=text, bias=1.0, style="none", seed=2)
    assert {w for words in asked for w in words} == set(text.split())            # each word, once it is written
    points = variation_points(chunks) / np.r_[model[1]["corpus"]["scale"], model[1]["corpus"]["scale"], 1]
    found = [any(np.allclose(points[k:k + len(m)], m, atol=1e-4) for k in range(len(points) - len(m) + 1))
             for m in added if len(m)]
    assert found and any(found)                   # drawn as they were planned (those of retried attempts gone)
    asked.clear()
    write(model, text=text, bias=1.0, style="none", seed=2, dots=False)
    assert not asked


@pytest.mark.parametrize("ch", ["@", "Q", "Ω", "Ж", "中"])
def test_font_fallback_is_scaled_to_the_hand(ch):
    small, _, _ = fallback(ch, 2.0)
    large, advance, known = fallback(ch, 4.0)
    assert known == (ch != "中") and advance > 0
    np.testing.assert_allclose(np.concatenate(large), 2 * np.concatenate(small))


def test_glyphs_take_the_size_of_the_hand_written_before_them():
    """The font is scaled to the model's own writing on the line, and glyphs never measure themselves (each
    word from the font was once drawn larger than the one before)."""
    meta = {"x_height": 2.0, "char_width": 1.0, "lead_in": 0.0, "first_above_baseline": 0.0}
    page = Page(meta, line_height=8.0, slant=0.0)
    page.new_line(0)
    for left in range(0, 30, 3):                    # ten 'letters' 1.5 tall: sine loops, pen lifted after each
        t = np.linspace(0, 2 * np.pi, 30)
        pen_up = np.zeros(len(t))
        pen_up[-1] = 1
        page.draw(np.column_stack([left + t / 3, -0.75 + 0.75 * np.cos(t)]), pen_up)
    hand = page.x_height
    loop = -0.75 + 0.75 * np.cos(np.linspace(0, 2 * np.pi, 30))
    assert hand == pytest.approx(np.percentile(loop, 80) - np.percentile(loop, 20)) and hand < meta["x_height"]
    for ch in "jumps over the lazy dog":
        page.draw_strokes(fallback(ch, page.x_height)[0])
    assert page.x_height == hand
def test_a_page_is_reproducible_and_keeps_its_lines_apart(model):
    a, _ = write(model, text="a cat can see the ox on the hill and an ox can see a cat", width=20, seed=3)
    b, _ = write(model, text="a cat can see the ox on the hill and an ox can see a cat", width=20, seed=3)
    pa, pb = variation_points(a, 0), variation_points(b, 0)
    np.testing.assert_array_equal(pa, pb)
    xy = np.cumsum(pa[:, :2], axis=0)
    line_of_point = np.concatenate([np.full(len(c.points[0]), c.line[0]) for c in a])[:len(xy)]
    if not any(c.retract for c in a):   # (retractions shift which chunk a point came from)
        means = [xy[line_of_point == k, 1].mean() for k in range(3)]
        assert means[0] < means[1] < means[2]


def test_a_stalling_pen_is_retried_then_drawn_from_the_font(trained, tmp_path):
    """A model whose window never moves (an untrained one moves at the corpus' pace: this one is held still)
    cannot follow the text: its attempts are taken back, and the page still ends with every word on it (from
    the font), said in a notice."""
    _, data, _ = trained
    corpus = ENGINE.read_corpus(data)
    from engines.ink.config import InkModelConfig
    torch.manual_seed(0)
    net = ENGINE.build_model(ENGINE.stage(), InkModelConfig(**TINY), corpus.meta).eval()
    with torch.no_grad():
        net.window.bias[2 * TINY["window_gaussians"]:] = -30.0
    chunks = list(ENGINE.generate(net, {"corpus": corpus.meta}, settings(text="a cat can see the hill", style="none")))
    ink = [c for c in chunks if isinstance(c, InkChunk)]
    notices = " ".join(c.message for c in chunks if isinstance(c, Notice))
    assert any(c.retract and any(c.retract) for c in ink)
    assert "could not follow" in notices and "'a'" in notices and "'hill'" in notices
    sent = sum(len(c.points[0]) for c in ink)
    kept = variation_points(ink, 0)
    assert len(kept) < sent and np.isfinite(kept).all()


def test_styles_from_the_training_data_a_file_and_the_pen_pad(model, trained, tmp_path):
    _, header = model
    styles = header["corpus"]["styles"]
    writer = sorted(styles)[0]
    chunks, notices = write(model, text="an ox", style=writer)
    assert f"writer {writer}" in notices[0] and len(variation_points(chunks)) > 10
    with pytest.raises(ConfigError, match="no style 'nobody'"):
        write(model, text="an ox", style="nobody")
    # a recorded line in InkML, in quite other units, with its text
    rng = np.random.default_rng(1)
    xy = np.cumsum(np.round(synthetic_line("a cat", rng, 300.0, 40.0)[:, :2]), axis=0)
    trace = ", ".join(f"{x:g} {y:g}" for x, y in xy)
    (tmp_path / "mine.inkml").write_text(f'<ink xmlns="http://www.w3.org/2003/InkML"><annotation type="truth">a cat'
                                         f'</annotation><trace>{trace}</trace></ink>')
    chunks, notices = write(model, text="an ox", style_file=str(tmp_path / "mine.inkml"))
    assert "mine.inkml" in notices[0] and len(variation_points(chunks)) > 10
    chunks, notices = write(model, text="an ox", style_file=str(trained[1] / "strokes.npz"))   # a recording
    assert "strokes.npz" in notices[0] and len(variation_points(chunks)) > 10
    pen = [[[float(x), float(y), 0.01 * i] for i, (x, y) in enumerate(xy)]]
    chunks, notices = write(model, text="an ox", pen_sample=pen, pen_text="a cat")
    assert "pen sample" in notices[0]
    with pytest.raises(ConfigError, match="no text: say what it reads in Pen text"):
        write(model, text="an ox", pen_sample=pen)
    untimed = [[[x, y] if i % 2 else [x, y, t] for i, (x, y, t) in enumerate(pen[0])]]   # some points lack times
    chunks, notices = write(model, text="an ox", pen_sample=untimed, pen_text="a cat")
    assert "pen sample" in notices[0] and len(variation_points(chunks)) > 10


def test_style_default_writes_in_the_writer_the_model_names(model, trained, tmp_path):
    """The bundled model names the writer it is read best in (scripts/ship_ink_styles.py --default); Style
    'default' (the control's default) writes in it whatever the seed. A model that names none, or a writer it
    lacks (a hand-edited header), leaves the choice to the seed, as an empty Style does: samples recorded with
    one before there were defaults replay in the writer they had. A style asked for by name is kept."""
    import importlib.util
    meta = model[1]["corpus"]
    writers = sorted(meta["styles"])
    picked = lambda meta, style: {choose_primer(meta, {"style": style}, np.random.default_rng(seed))[0].name
                                  for seed in range(12)}
    assert settings()["style"] == "default" and len(picked(meta, "default")) > 1
    spec = importlib.util.spec_from_file_location("ship", Path(__file__).parents[1] / "scripts/ship_ink_styles.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes((trained[0] / "best.safetensors").read_bytes())
    ship.name_default(checkpoint, writers[-1])
    tensors, header = load_checkpoint(checkpoint)
    old_tensors, old_header = load_checkpoint(trained[0] / "best.safetensors")
    assert tensors.keys() == old_tensors.keys() and all(torch.equal(tensors[k], old_tensors[k]) for k in tensors)
    assert header == {**old_header, "corpus": {**old_header["corpus"], "default_style": writers[-1]}}
    named = header["corpus"]
    assert picked(named, "default") == {writers[-1]} and picked(named, writers[0]) == {writers[0]}
    assert picked(named, "") == picked(meta, "default") == picked(meta, "")          # the seed's pick, as before
    assert picked({**meta, "default_style": "nobody"}, "default") == picked(meta, "")
    with pytest.raises(SystemExit, match="no style 'nobody'"):
        ship.name_default(checkpoint, "nobody")


def test_a_print_sample_too_coarse_to_measure_keeps_the_models_page_layout(model):
    """Print letters of a pen sample redrawn at the model's point spacing are strokes of a few points, too short
    for a letter's height to be measured: the page is then laid out by the model's own figures, not by made-up
    ones (lines one unit apart, overlapping)."""
    m, header = model
    meta = header["corpus"]
    bars = [[[10.0 * i, 0.0, 0.0], [10.0 * i, 8.0, 0.05]] for i in range(12)]   # "IIIIIIIIIIII", one stroke each
    writer, _ = primed_writer(m, meta, settings(text="an ox", pen_sample=bars, pen_text="I" * 12))
    assert all(writer.meta[key] == meta[key] for key in SHAPE_DEFAULTS)


def test_prepare_reads_the_built_in_hands_ahead_so_writing_starts_from_the_primed_state(trained, monkeypatch):
    """What the app does while the user types: after prepare, Generate in the chosen style, or in any other
    built-in one, reads no primer line (the only forward pass writing makes); a recorded sample is still read
    when asked for, and the page is the same either way."""
    model, header = load_model(ENGINE, trained[0], "cpu")     # a model of its own: nothing primed yet
    writer_a, writer_b = sorted(header["corpus"]["styles"])[:2]
    reference, _ = write((model, header), text="an ox", style=writer_a)
    model, header = load_model(ENGINE, trained[0], "cpu")
    ENGINE.prepare(model, header, settings(text="an ox", style=writer_a))
    primer_reads = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: primer_reads.append(1) or forward(*a, **k))
    chunks, _ = write((model, header), text="an ox", style=writer_a)
    assert primer_reads == []
    assert all(np.array_equal(a, b) for a, b in zip(variation_points(chunks), variation_points(reference)))
    write((model, header), text="an ox", style=writer_b)
    assert primer_reads == []
    write((model, header), text="an ox", style_file=str(trained[1] / "strokes.npz"))
    assert primer_reads == [1]


def test_a_new_process_starts_from_the_primed_state_kept_on_disk(trained, tmp_path, monkeypatch):
    """The CLI's first line: a style written before on this machine is not read again, a damaged file is read
    again and replaced, and other weights never get the state of these; the page is the same every time."""
    def fresh_model():      # what a new process has: nothing primed in memory; counts its primer reads
        model, header = load_model(ENGINE, trained[0], "cpu")
        forward = model.forward
        monkeypatch.setattr(model, "forward", lambda *a, **k: reads.append(1) or forward(*a, **k))
        return model, header
    reads = []
    monkeypatch.setenv("SEQUENCE_STUDIO_CACHE", str(tmp_path / "cache"))
    style = sorted(load_model(ENGINE, trained[0], "cpu")[1]["corpus"]["styles"])[0]
    reference, _ = write(fresh_model(), text="an ox", style=style)
    [kept] = (tmp_path / "cache" / "ink-primed").iterdir()
    assert reads == [1]
    chunks, _ = write(fresh_model(), text="an ox", style=style)
    assert reads == [1]
    assert all(np.array_equal(a, b) for a, b in zip(variation_points(chunks), variation_points(reference)))

    kept.write_bytes(kept.read_bytes()[:100])                       # a disk full or a kill mid-write elsewhere
    chunks, _ = write(fresh_model(), text="an ox", style=style)
    assert reads == [1, 1] and load_checkpoint(kept, engine="ink")
    assert all(np.array_equal(a, b) for a, b in zip(variation_points(chunks), variation_points(reference)))

    model, header = fresh_model()
    write((model, header), text="an ox", style=style)
    with torch.no_grad():
        model.layers[0].weight_ih_l0[0, 0] += 0.5                  # other weights, by as little as this
    write((model, header), text="an ox", style=style)
    assert reads == [1, 1, 1] and len(list(kept.parent.iterdir())) == 2

    write(fresh_model(), text="an ox", style=style)                 # used again: the other weights' is older
    monkeypatch.setattr("engines.ink.write.PRIMED_ON_DISK", 2)
    write(fresh_model(), text="an ox", style=sorted(header["corpus"]["styles"])[1])
    assert reads == [1, 1, 1, 1] and len(list(kept.parent.iterdir())) == 2 and kept.exists()


@pytest.mark.skipif(not ENGINE.bundled_models(), reason="no bundled handwriting model in assets/ink/")
def test_the_bundled_models_built_in_styles_are_shipped_read(tmp_path, monkeypatch):
    """A machine's first line in a built-in style reads no primer: its state came with the model, and it is the
    state reading the primer gives (else run scripts/ship_ink_styles.py after bundling a model)."""
    monkeypatch.setenv("SEQUENCE_STUDIO_CACHE", str(tmp_path / "cache"))        # nothing read on this machine
    for path in ENGINE.bundled_models():
        model, header = load_model(ENGINE, path, "cpu")
        meta = header["corpus"]
        for style in sorted(meta["styles"]):
            primer, _ = choose_primer(meta, {"style": style}, np.random.default_rng(0))
            shipped = load_primed(shipped_file(model, primer), model, torch.device("cpu"))
            assert shipped is not None, f"{path.name}'s style {style} is not shipped: run scripts/ship_ink_styles.py"
            (state, last), (read_state, read_last) = shipped, read_primer_points(model, Alphabet.from_meta(
                meta["alphabet"]), primer)
            for a, b in zip([*state.h, *state.c, state.kappa, state.window, last],
                            [*read_state.h, *read_state.c, read_state.kappa, read_state.window, read_last]):
                torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        forward = model.forward
        reads = []
        monkeypatch.setattr(model, "forward", lambda *a, **k: reads.append(1) or forward(*a, **k))
        chunks, _ = write((model, header), text="ox", style=sorted(meta["styles"])[0])
        assert reads == [] and len(variation_points(chunks)) > 10
        assert not (tmp_path / "cache").exists()


def test_a_cache_folder_that_cannot_be_written_only_costs_time(trained, tmp_path, monkeypatch):
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("SEQUENCE_STUDIO_CACHE", str(tmp_path / "a file" / "cache"))
    model = load_model(ENGINE, trained[0], "cpu")
    chunks, _ = write(model, text="an ox", style=sorted(model[1]["corpus"]["styles"])[0])
    assert len(variation_points(chunks)) > 10


@pytest.mark.parametrize("centre,moved", [(1, 3.0), (4, 0.0), (5, 0.0)])
def test_a_window_left_short_of_the_primers_end_is_moved_to_its_last_character_and_no_further(
        trained, monkeypatch, centre, moved):
    """Primer 'an ox' (last character at 4, the space before the new text at 5, its first character at 6). A
    window that read the primer only up to 'n' is moved on to 'x'; one already there, or on the space, is left
    alone: a window moved onto the new text's first character takes it as written, and the pen skips it."""
    model, header = load_model(ENGINE, trained[0], "cpu")
    forward = model.forward

    def window_at(*args, **kwargs):
        out = forward(*args, **kwargs)
        phi = torch.zeros_like(out.phi)
        phi[0, -1, centre] = 1.0
        return out._replace(phi=phi, state=out.state._replace(kappa=torch.zeros_like(out.state.kappa)))
    monkeypatch.setattr(model, "forward", window_at)
    writer = Writer(model, header["corpus"], settings(text="a cat"))
    primer = next(iter(header["corpus"]["styles"].values()))
    writer.prime(Primer("an ox", unpack_points(primer["points"]), "test"))
    assert torch.allclose(writer.state0.kappa, torch.full_like(writer.state0.kappa, moved))


# ----------------------------------------------------------------------------------------------------
# files

def test_exports_open_and_load_back(model, tmp_path):
    typed = "an ox can\x07 see\x1b[1m\na cat\uffff"      # pasted control codes: not drawn, not in the XML
    chunks, _ = write(model, text=typed, variations=2, colour="darkred", stroke_width=3.0)
    record = {**settings(text=typed, variations=2, colour="darkred"), "engine": "ink"}
    for suffix in ENGINE.export_formats:
        path = ENGINE.export(chunks, record, tmp_path / f"page{suffix}")
        assert json.loads(path.with_name(path.name + ".json").read_text())["colour"] == "darkred"
        if suffix == ".svg":
            root = ElementTree.parse(path).getroot()
            paths = [e for e in root.iter() if e.tag.endswith("path")]
            assert len(paths) == 4 and all(p.get("d").startswith("M") for p in paths)    # outline + line, x2
            assert any(e.get("id") == "plotter-lines" for e in root.iter())
        else:
            with Image.open(path) as image:
                image.load()
                assert image.width > 50 and image.height > 50
                if suffix == ".gif":
                    assert image.n_frames > 5
                else:
                    assert np.asarray(image.convert("L")).min() < 100                   # ink on the page
        loaded, saved = ENGINE.load_sample(path)
        assert saved["colour"] == "darkred" and saved["text"] == typed
        for v in range(2):
            np.testing.assert_array_equal(variation_points(loaded, v), variation_points(chunks, v))
    with pytest.raises(ConfigError, match="not a colour"):
        ENGINE.export(chunks, {**record, "colour": "inky"}, tmp_path / "bad.png")
    (tmp_path / "other.png").write_bytes((tmp_path / "page.png").read_bytes()[:100])
    with pytest.raises(CorpusError, match="other.png"):
        ENGINE.load_sample(tmp_path / "other.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(CorpusError, match="no handwriting"):
        ENGINE.load_sample(tmp_path / "plain.png")


def test_retracted_points_are_off_the_page():
    a = np.array([[0, 0, 0], [1, 0, 1]], np.float32)
    b = np.array([[5, 5, 0], [1, 1, 0], [1, 1, 1]], np.float32)
    c = np.array([[2, 0, 0], [2, 0, 1]], np.float32)
    chunks = [InkChunk([a]), InkChunk([b]), InkChunk([c], retract=[2])]
    np.testing.assert_array_equal(variation_points(chunks), np.vstack([a, b[:1], c]))
    chunks = [InkChunk([a]), InkChunk([b]), InkChunk([c], retract=[4])]
    np.testing.assert_array_equal(variation_points(chunks), np.vstack([a[:1], c]))


def test_exact_resume(trained, tmp_path):
    _, data, _ = trained
    corpus = ENGINE.read_corpus(data)

    def run(out, stop=None, resume=False):
        events = train(ENGINE, corpus, out, recipes=tiny_recipe(12), resume=resume, device="cpu", seed=2,
                       previews=False)
        events_until(events, ("model", stop) if stop else None)
    run(tmp_path / "straight")
    run(tmp_path / "stopped", stop=5)
    run(tmp_path / "stopped", resume=True)
    a = load_checkpoint(tmp_path / "straight" / "last.safetensors", prefix="model.")[0]
    b = load_checkpoint(tmp_path / "stopped" / "last.safetensors", prefix="model.")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pen_data_in_other_units_is_read_at_the_models_size(tmp_path):
    """Fine-tuning on a user's recordings (pad pixels) with a model trained on tablet units: the lines are scaled
    to the size the model writes at, and the model's own corpus read again is left exactly as it was."""
    from engines.ink.config import InkModelConfig
    from engines.ink.corpus import read_ink_corpus, writing_shape
    config = InkModelConfig(**TINY)
    own = read_ink_corpus(write_hershey_corpus(tmp_path / "own", lines=40), config)
    again = read_ink_corpus(tmp_path / "own", config, meta=own.meta)
    assert all(np.array_equal(a, b) for a, b in zip(own.train, again.train))
    assert not any("scaled" in w for w in again.summary["warnings"])
    big = read_ink_corpus(write_hershey_corpus(tmp_path / "big", lines=40, seed=1, size=5.0), config, meta=own.meta)
    said = [w for w in big.summary["warnings"] if "scaled to match" in w]
    assert said and 4.5 < float(said[0].split("was ")[1].split("x the size")[0]) < 5.5, big.summary["warnings"]
    texts = ["x" * len(t) for t in big.train_texts]      # only their lengths count
    width = writing_shape(big.train, texts)["char_width"]
    assert abs(width / own.meta["char_width"] - 1) < 0.2
    # described by its own characters and points per character, beside the model's
    summary = "\n".join(big.summary["lines"])
    assert f"(the model's writing: {1 / own.meta['chars_per_point']:.1f})" in summary
    assert f"{sum(len(t) for t in big.train_texts) + sum(len(t) for t in big.val_texts):,} characters" in summary

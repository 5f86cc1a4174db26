"""The ink engine's torch core: readers, normalising, batching and masks, the Graves model, sampling."""
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.core.errors import CorpusError
from engines.ink.chunks import InkChunk, strokes_of
from engines.ink.config import InkModelConfig
from engines.ink.data import (Batcher, InkLine, build_alphabet, downsample, normalise, read_corpus,
                              smooth, strokes_to_points, time_chunks)
from engines.ink.model import InkModel, mixture_nll, past_end

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHARED_UNIPEN = Path(__file__).resolve().parents[2] / "shared/data/handwriting/unipen_cursive"


def glyph_lines(n_lines: int = 6, seed: int = 0) -> list[InkLine]:
    """Exactly aligned toy handwriting: each letter of "abcd" is one stroke of 6 points, a loop whose size
    and turn depend on the letter, lifted at its end; lines are 3-5 random letters. A model that reads the
    window can predict each loop; one that does not, cannot."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n_lines):
        text = "".join(rng.choice(list("abcd"), rng.integers(3, 6)))
        strokes, x = [], 0.0
        for ch in text:
            k = "abcd".index(ch)
            angle = np.linspace(0, (1.2 + 0.4 * k) * np.pi, 6)
            radius = 4.0 + 2.0 * k
            s = np.stack([x + radius * np.sin(angle), radius * (1 - np.cos(angle))], axis=1)
            strokes.append(np.round(s + rng.normal(0, 0.3, s.shape)))
            x += 2.5 * radius
        lines.append(InkLine(strokes_to_points(strokes), text, f"w{i % 2}", f"toy {i}"))
    return lines


def toy_model(lines, conditional=True, **shape):
    pts, meta = normalise(lines)
    alphabet = build_alphabet([l.text for l in lines], min_count=1)
    speed = sum(len(l.text) for l in lines) / sum(len(p) for p in pts)
    config = InkModelConfig(conditional=conditional, n_layer=2, n_hidden=32, mixtures=3, window_gaussians=2,
                            alphabet_size=alphabet.size if conditional else 0, window_speed=speed, **shape)
    batcher = Batcher(pts, [alphabet.encode(l.text) for l in lines] if conditional else None, meta["quantum"])
    torch.manual_seed(0)
    return InkModel(config), batcher, alphabet


def mean_nll(model, batch, state=None):
    out = model(*batch, state=state)
    return out.nll.sum() / batch.point_mask[:, 1:].sum(), out


# ----------------------------------------------------------------------------------------------------
# reading

@pytest.mark.skipif(not SHARED_UNIPEN.is_dir(), reason=f"shared UNIPEN set not found at {SHARED_UNIPEN}")
def test_shared_unipen_reads_and_normalises():
    lines, warnings = read_corpus(SHARED_UNIPEN)
    assert len(lines) == 858 - 16 and len({l.writer for l in lines}) == 7
    assert any("16 samples" in w and "'-'" in w for w in warnings)
    assert all(l.points.dtype == np.float32 and l.points.shape[1] == 3 and l.text and l.text != "-" for l in lines)
    assert all(np.array_equal(l.points[0], [0, 0, 0]) for l in lines[:50])
    some = lines[:40]
    pts, meta = normalise(some, smooth_width=3, downsample_factor=3)
    json.dumps(meta)                                          # stored with the checkpoint
    assert meta["points_per_second"] == pytest.approx(100 / 3) and meta["scale"] > 1
    assert sum(map(len, pts)) < 0.4 * sum(len(l.points) for l in some)
    down = np.concatenate([p[1:][p[:-1, 2] < 0.5, :2] for p in pts])
    assert down.std() == pytest.approx(1.0, rel=1e-3)          # pen-down moves are the unit
    assert [p[:, 2].sum() for p in pts] == [l.points[:, 2].sum() for l in some]   # no stroke lost
    alphabet = build_alphabet([l.text for l in lines])
    assert {"Q", "X", "@"} <= set(alphabet.rare()) and "e" not in alphabet.rare()
    assert alphabet.unknown("Hi ~ü") == ["~", "ü"] and alphabet.encode("~e")[0] == 0 and alphabet.encode("e")[0] > 0


def test_every_format_parses_and_bad_files_are_named(tmp_path):
    # IAM-OnDB style line, its text in IAM's ascii/ tree
    line_dir = tmp_path / "lineStrokes/a01/a01-000"
    line_dir.mkdir(parents=True)
    (line_dir / "a01-000u-02.xml").write_text(
        '<WhiteboardCaptureSession><General><Form writerID="10059"/></General><StrokeSet>'
        '<Stroke start_time="1.00" end_time="1.02"><Point x="10" y="20" time="1.00"/><Point x="12" y="21" time="1.01"/>'
        '<Point x="15" y="25" time="1.02"/></Stroke>'
        '<Stroke><Point x="30" y="20" time="1.10"/><Point x="31" y="22" time="1.11"/></Stroke></StrokeSet>'
        '</WhiteboardCaptureSession>')
    ascii_dir = tmp_path / "ascii/a01/a01-000"
    ascii_dir.mkdir(parents=True)
    (ascii_dir / "a01-000u.txt").write_text("OCR:\n\nwrong\n\nCSR:\n\nfirst line\nsecond line\n")
    # InkML with a truth annotation and InkML's first-difference encoding
    (tmp_path / "pad.inkml").write_text(
        '<ink xmlns="http://www.w3.org/2003/InkML"><annotation type="truth">hi</annotation>'
        '<annotation type="writer">me</annotation>'
        "<trace>10 20, '2'1, 3 4</trace><trace>40 20, 41 22</trace></ink>")
    (tmp_path / "sketch.ndjson").write_text(json.dumps({"countrycode": "FR", "drawing": [[[0, 5, 9], [0, 2, 4]]]}) + "\n")
    # bad files
    (tmp_path / "broken.xml").write_text("<WhiteboardCaptureSession><StrokeSet>")
    (tmp_path / "empty.inkml").write_text('<ink xmlns="http://www.w3.org/2003/InkML"></ink>')
    (tmp_path / "garbage.ndjson").write_text("{not json\n")
    (tmp_path / "nan.ndjson").write_text('{"drawing": [[[0, NaN], [0, 1]]]}\n')

    lines, warnings = read_corpus(tmp_path)
    by_text = {l.text: l for l in lines}
    iam, ink = by_text["second line"], by_text["hi"]
    assert iam.writer == "10059" and iam.rate == pytest.approx(100)
    np.testing.assert_array_equal(iam.points, [[0, 0, 0], [2, 1, 0], [3, 4, 1], [15, -5, 0], [1, 2, 1]])
    assert ink.writer == "me"
    np.testing.assert_array_equal(ink.points, [[0, 0, 0], [2, 1, 0], [3, 4, 1], [25, -5, 0], [1, 2, 1]])
    assert by_text[""].writer == "FR" and len(by_text[""].points) == 3
    for name in ("broken.xml", "empty.inkml", "garbage.ndjson", "nan.ndjson"):
        assert any(name in w for w in warnings), (name, warnings)
    (tmp_path / "README.md").write_text("notes, not pen data")
    assert len(read_corpus(tmp_path)[0]) == len(lines)            # a file of another kind in a folder is passed over
    assert [l.text for l in read_corpus(tmp_path / "*.inkml")[0]] == ["hi"]     # a glob names some files

    bad = tmp_path / "only_bad"
    bad.mkdir()
    (bad / "broken.xml").write_text("<<<")
    with pytest.raises(CorpusError, match="broken.xml"):
        read_corpus(bad)



def write_stroke_set(folder: Path, rows: list[dict], offsets=(0, 4, 8, 12)) -> Path:
    """The studio's own format: strokes.npz (3 samples of 4 points by default) and texts.jsonl."""
    folder.mkdir()
    points = np.tile([[0, 0, 0], [3, 1, 0], [2, 2, 0], [1, -1, 1]], (3, 1)).astype(np.float32)
    np.savez(folder / "strokes.npz", points=points, offsets=np.asarray(offsets))
    (folder / "texts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_damaged_pen_data_is_named_and_the_rest_read(tmp_path):
    rows = [{"index": 0, "text": "ab", "rate": "fast"}, {"index": 1, "text": None},
            {"index": 2, "text": "cd", "rate": 120}, {"index": 2, "text": "again"}]
    lines, warnings = read_corpus(write_stroke_set(tmp_path / "own", rows))
    assert [(l.text, l.rate) for l in lines] == [("ab", None), ("cd", 120)]
    for expected in ("sample 0: its rate 'fast'", "line 2: not a JSON object with an index and a text",
                     "line 4: sample 2 was already read"):
        assert any(expected in w for w in warnings), (expected, warnings)
    # offsets that are not whole numbers, before the start, or going back (unsigned, whose differences wrap)
    for i, offsets in enumerate([(0, 4.0, 8, 12), (-4, 4, 8, 12), np.array([0, 8, 4, 12], dtype=np.uint64)]):
        folder = write_stroke_set(tmp_path / f"offsets{i}", rows[:1], offsets)
        with pytest.raises(CorpusError, match="whole-number offsets"):
            read_corpus(folder)

    other = tmp_path / "other"
    other.mkdir()
    (other / "huge.inkml").write_text('<ink xmlns="http://www.w3.org/2003/InkML"><annotation type="truth">hi'
                                      '</annotation><trace>0 0, 1e30 1e30, 2e30 0</trace></ink>')
    (other / "no_x.xml").write_text('<StrokeSet><Stroke><Point y="1"/><Point x="2" y="3"/></Stroke></StrokeSet>')
    (other / "bom.ndjson").write_text("\ufeff" + json.dumps({"drawing": [[[0, 5, 9], [0, 2, 4]]]}) + "\n"
                                      + json.dumps({"drawing": [[0, 5, 9]]}) + "\n", encoding="utf-8")
    lines, warnings = read_corpus(other)
    assert [len(l.points) for l in lines] == [3]                # the first row, after its byte order mark
    for expected in ("huge.inkml: it has coordinates that are not numbers (NaN or infinite) or too large",
                     "no_x.xml: a <Point> whose x is None, not a number", "bom.ndjson row 2: not a drawing"):
        assert any(expected in w for w in warnings), (expected, warnings)


def test_a_transcript_too_long_for_its_ink_is_skipped_not_taken_as_the_pace(tmp_path):
    from engines.ink.corpus import read_ink_corpus
    for i, text in enumerate(["abc", "abd", "x" * 1000, "bcd", "cab"]):
        (tmp_path / f"line{i}.inkml").write_text(
            f'<ink xmlns="http://www.w3.org/2003/InkML"><annotation type="truth">{text}</annotation>'
            + "<trace>" + ", ".join(f"{3 * k} {k % 4}" for k in range(40)) + "</trace></ink>")
    corpus = read_ink_corpus(tmp_path, InkModelConfig(synthetic_lines=0), val_fraction=0.25)
    assert corpus.summary["ink_lines"] == 4
    assert any("line2.inkml: its transcript has 1,000 characters for 40 pen points" in w
               for w in corpus.summary["warnings"])
    assert corpus.meta["chars_per_point"] < 0.1
    for i in (0, 1, 3, 4):
        (tmp_path / f"line{i}.inkml").unlink()
    with pytest.raises(CorpusError, match="every transcript is longer than its ink has points"):
        read_ink_corpus(tmp_path, InkModelConfig(synthetic_lines=0))


def test_smoothing_and_downsampling_keep_strokes():
    points = glyph_lines(1)[0].points
    strokes = strokes_of(points)
    np.testing.assert_allclose(strokes_to_points(strokes), points)
    for changed in (smooth(points, 3), downsample(points, 2)):
        assert changed[:, 2].sum() == points[:, 2].sum() and np.array_equal(changed[0], [0, 0, 0])
    ends = lambda p: np.array([s[-1] for s in strokes_of(p)])
    np.testing.assert_allclose(ends(downsample(points, 2)), ends(points))      # downsampling keeps stroke ends
    assert len(downsample(points, 2)) < 0.8 * len(points)


# ----------------------------------------------------------------------------------------------------
# batching, masks, chunks

def test_augmenting_slants_and_stretches_each_line_and_nothing_else():
    lines = glyph_lines(3)
    pts, meta = normalise(lines)
    plain = Batcher(pts).batch([0, 1, 2], torch.Generator().manual_seed(0)).points
    augmented = Batcher(pts, augment=0.2).batch([0, 1, 2], torch.Generator().manual_seed(0)).points
    assert torch.equal(augmented[..., 2], plain[..., 2])                     # the pen lifts where it did
    assert not augmented[plain.abs().sum(-1) == 0].any()                     # padding and first points stay zero
    shears = []
    for line, moved in zip(plain, augmented):
        # one linear map per line: slant (x moves by a share of y), then a stretch of each axis
        down = line[:, :2].abs().sum(-1) > 0
        a, b = line[down, :2], moved[down, :2]
        fit = torch.linalg.lstsq(a.double(), b.double()).solution               # b = a @ fit
        torch.testing.assert_close(a.double() @ fit, b.double(), rtol=1e-4, atol=1e-4)
        assert abs(fit[1, 0]) > 1e-3 and abs(fit[0, 1]) < 1e-6                  # slanted; y never takes x
        assert math.exp(-0.2) - 1e-6 <= fit[0, 0] <= math.exp(0.2) + 1e-6
        assert math.exp(-0.2) - 1e-6 <= fit[1, 1] <= math.exp(0.2) + 1e-6
        shears.append(float(fit[1, 0]))
    assert len(set(shears)) == 3                                             # drawn afresh for each line
    with pytest.raises(Exception, match="augment"):
        InkModelConfig(augment=1.5).check()


def test_masks_padding_and_chunked_state_change_nothing():
    lines = glyph_lines(3)
    model, batcher, _ = toy_model(lines, end_flag=True)
    model.eval()
    batch = batcher.batch([0, 1, 2])
    lengths = [len(p) for p in batcher.points[:3]]
    assert batch.point_mask.sum(1).tolist() == lengths
    assert batch.ends.nonzero()[:, 1].tolist() == [n - 1 for n in lengths]    # each line ends at its last point
    cut = Batcher([p.numpy() for p in batcher.points], None, max_points=min(lengths) - 1).batch([0, 1, 2])
    assert not cut.ends.any()                                               # a line cut short has no end
    assert batch.text_mask.sum(1).tolist() == [len(l.text) for l in lines]
    assert not batch.points[~batch.point_mask].any() and not batch.text[~batch.text_mask].any()

    with torch.no_grad():
        both = model(*batch).nll
        # padding scores nothing, but for the end flag read with each line's last point
        ended = batch.ends[:, :-1]
        assert not both[~(batch.point_mask[:, 1:] | ended)].any()
        points_alone = model(batch.points, batch.point_mask, batch.text, batch.text_mask).nll
        assert not points_alone[ended].any() and (both[ended] > 0).all()
        assert (both - points_alone)[batch.point_mask[:, 1:]].gt(0).all()      # and every real point's flag
        for i in range(3):                                                    # a line alone scores the same
            alone = model(*batcher.batch([i])).nll[0]
            torch.testing.assert_close(both[i, :lengths[i]], alone, rtol=1e-4, atol=1e-4)
        # chunks, carrying the state, give the whole-line scores (23 and 29: a line's end read first in a chunk)
        for length in (7, 23, 29):
            state, pieces = None, []
            for points, mask, ends in time_chunks(batch, length):
                out = model(points, mask, batch.text, batch.text_mask, ends, state=state)
                pieces.append(out.nll)
                state = out.state.detach()
            torch.testing.assert_close(torch.cat(pieces, 1), both, rtol=1e-4, atol=1e-4)
        phi = model(*batch, want_phi=True).phi                               # for an alignment view
        assert phi.shape == (3, batch.points.shape[1] - 1, batch.text.shape[1] + 1) and (phi >= 0).all()


def test_mixture_nll_matches_a_hand_computed_gaussian():
    y = torch.zeros(2, 1 + 6)                       # M = 1: pi = 1, mu = 0, sigma = 1, rho = 0, p(pen up) = 1/2
    target = torch.tensor([[0.0, 0.0, 1.0], [1.0, -2.0, 0.0]])
    expected = torch.tensor([math.log(2 * math.pi) + math.log(2), math.log(2 * math.pi) + 2.5 + math.log(2)])
    torch.testing.assert_close(mixture_nll(y, target, 1), expected)


# ----------------------------------------------------------------------------------------------------
# training and sampling

def train(model, batcher, steps, lr=1e-2, batch_size=6):
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for _ in range(steps):
        loss, _ = mean_nll(model, batcher.sample(batch_size, g))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained():
    """A tiny conditional model after 250 steps on the toy glyphs (shared by the sampling tests; the end flag,
    one point in 25, takes that long)."""
    model, batcher, alphabet = toy_model(glyph_lines(), end_flag=True)
    losses = train(model, batcher, 250)
    return model.eval(), alphabet, losses


def test_loss_falls(trained):
    _, _, losses = trained
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"toy conditional model: nll {first:.2f} -> {last:.2f} nats/point")
    assert last < first - 2.0 and last < 0.6 * first


def sample_line(model, alphabet, text, bias=0.0, max_points=400, seed=0, until="window"):
    ids = torch.tensor([alphabet.encode(text)])
    chars = model.encode_text(ids, torch.ones_like(ids, dtype=torch.bool))
    g = torch.Generator().manual_seed(seed)
    x, state, points, kappas, flagged = torch.zeros(1, 3), model.initial_state(1), [], [], []
    for _ in range(max_points):
        step = model.step(x, state, chars, bias=bias, generator=g)
        flagged.append(step.ends.item())
        x, state = step.point, step.state
        points.append(x[0].numpy())
        kappas.append(step.state.kappa.mean().item())
        if until == "window" and past_end(step.phi, torch.tensor([len(text)])).item():
            return np.array(points), kappas, flagged, True
        if until == "end flag" and flagged[-1]:
            return np.array(points[:-1]), kappas, flagged, True
    return np.array(points), kappas, flagged, False


def test_sampling_moves_along_the_text_and_stops(trained):
    model, alphabet, _ = trained
    points, kappas, _, finished = sample_line(model, alphabet, "abcab")
    assert finished, f"the window never passed the end of the text (kappa reached {kappas[-1]:.1f})"
    assert np.all(np.diff(kappas) >= 0) and kappas[-1] > 4
    assert points.shape[1] == 3 and np.isfinite(points).all() and set(np.unique(points[:, 2])) <= {0.0, 1.0}
    chunk = InkChunk([points.astype(np.float32)], [0])
    assert pickle.loads(pickle.dumps(chunk)).points[0].shape == points.shape


def test_the_end_flag_is_learnt_and_raised_at_the_end_of_the_text_only(trained):
    model, alphabet, _ = trained
    for seed, text in enumerate(["abcab", "dcba", "bbd"]):
        points, kappas, _, ended = sample_line(model, alphabet, text, max_points=120, seed=seed, until="end flag")
        assert ended, f"{text!r}: the model never ended the line"
        # after the last character's stroke: the window on it or past it, the pen lifted
        assert kappas[-1] > len(text) - 1 and points[-1, 2] == 1, (text, kappas[-1], points[-1])


def test_bias_narrows_the_samples(trained):
    model, alphabet, _ = trained
    # the first point of a line drawn 4000 times over, at bias 0 and at bias 2
    ids = torch.tensor([alphabet.encode("abcd")] * 4000)
    chars = model.encode_text(ids, torch.ones_like(ids, dtype=torch.bool))
    spread = {}
    for bias in (0.0, 2.0):
        g = torch.Generator().manual_seed(1)
        x = model.step(torch.zeros(4000, 3), model.initial_state(4000), chars, bias=bias, generator=g).point
        spread[bias] = x[:, :2].var(0).sum().item()
    assert spread[2.0] < 0.5 * spread[0.0], spread


def test_unconditional_model_trains_and_scribbles():
    model, batcher, _ = toy_model(glyph_lines(), conditional=False)
    batch = batcher.sample(4, torch.Generator().manual_seed(0))
    assert batch.text is None
    losses = train(model, batcher, 30)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    model.eval()
    g = torch.Generator().manual_seed(0)
    x, state = torch.zeros(2, 3), model.initial_state(2)
    for _ in range(50):
        step = model.step(x, state, generator=g)
        x, state = step.point, step.state
        assert step.phi is None and step.state.kappa is None and torch.isfinite(x).all()

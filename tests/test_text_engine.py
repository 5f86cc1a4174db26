"""The text engine: reading corpora (and refusing bad ones clearly), the model, streaming sampling."""
import json

import pytest
import torch

from engines.core.errors import CorpusError
from engines.core.interface import Notice, resolve_settings
from engines.core.sampling import filtered_probs
from engines.text import TextEngine
from engines.text import data as text_data
from engines.text.model import CharRNN, Stepper
from helpers import tiny_model

ENGINE = TextEngine()


# --- corpora ------------------------------------------------------------------------------------------


def test_corpus_summary_and_split(corpus_file):
    corpus = ENGINE.read_corpus(corpus_file)
    s = corpus.summary
    assert s["characters"] == 20_000 and s["files"] == 1
    assert s["train_characters"] == 18_000 and s["validation_characters"] == 2_000
    assert corpus.meta["vocab"] == "".join(sorted(set(corpus_file.read_text())))
    assert any("very small corpus" in w for w in s["warnings"])
    batch = corpus.batch(4, 16, torch.Generator().manual_seed(0))
    x, y = batch.tensors["x"], batch.tensors["y"]
    assert batch.units == 64 and x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])


def test_folder_and_glob_corpora(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n" * 50, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("more words here\n" * 50, encoding="utf-8")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200))
    corpus = ENGINE.read_corpus(tmp_path)
    assert corpus.summary["files"] == 2
    assert any("picture.png" in w and "binary" in w for w in corpus.summary["warnings"])
    assert ENGINE.read_corpus(str(tmp_path / "*.txt")).summary["files"] == 1


def test_windows_line_endings_and_byte_order_mark_are_normalised(tmp_path):
    path = tmp_path / "win.txt"
    path.write_bytes(("\ufeff" + "line one\r\nline two\r\n" * 20).encode("utf-8"))
    corpus = ENGINE.read_corpus(path)
    assert "\r" not in corpus.meta["vocab"] and "\ufeff" not in corpus.meta["vocab"]


def test_multibyte_characters_split_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(text_data, "BLOCK", 7)    # cut inside nearly every multi-byte character
    text = "naïve café — ünïcödé ✓ 🎵 " * 40
    path = tmp_path / "u.txt"
    path.write_text(text, encoding="utf-8")
    corpus = ENGINE.read_corpus(path, val_fraction=0.5)
    vocab = corpus.meta["vocab"]
    decoded = "".join(vocab[i] for i in torch.cat([corpus.train, corpus.val]).tolist())
    assert decoded == text


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "holds no text"),
    (lambda p: p.write_bytes(b"abc\0\1\2" * 100), "binary file.*offset 3"),
    (lambda p: p.write_bytes("Grüße aus Köln\n".encode("latin-1") * 10), r"not UTF-8.*0xfc at byte offset 2 "),
])
def test_bad_files_get_clear_errors(tmp_path, make, message):
    path = tmp_path / "bad.txt"
    make(path)
    with pytest.raises(CorpusError, match=message) as err:
        ENGINE.read_corpus(path)
    assert "bad.txt" in str(err.value)


def test_latin1_error_offset_is_exact_deep_in_a_large_file(tmp_path, monkeypatch):
    monkeypatch.setattr(text_data, "BLOCK", 1000)
    path = tmp_path / "big.txt"
    path.write_bytes("ok ✓ ".encode() * 2000 + "é".encode("latin-1") + b" tail")
    offset = len("ok ✓ ".encode()) * 2000
    with pytest.raises(CorpusError, match=f"byte offset {offset} "):
        ENGINE.read_corpus(path)


def test_a_folder_skips_files_of_another_encoding_by_name(tmp_path, corpus_file):
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "good.txt").write_bytes(corpus_file.read_bytes())
    (tmp_path / "mix" / "latin.txt").write_bytes("Grüße aus Köln\n".encode("latin-1") * 10)
    corpus = ENGINE.read_corpus(tmp_path / "mix")
    assert any("latin.txt: it is not UTF-8 text" in w for w in corpus.summary["warnings"])
    assert "ü" not in corpus.meta["vocab"]


def test_a_folder_skips_a_file_that_goes_bad_past_its_start_by_name_and_offset(tmp_path, corpus_file):
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "good.txt").write_bytes(corpus_file.read_bytes())
    (tmp_path / "mix" / "late.txt").write_bytes(b"plain start " * 1000 + "caf\xe9".encode("latin-1"))
    corpus = ENGINE.read_corpus(tmp_path / "mix")
    assert any("late.txt, which is not UTF-8 text: byte 0xe9 at byte offset 12003" in w
               for w in corpus.summary["warnings"])
    assert corpus.summary["files"] == 1 and corpus.summary["bytes"] == corpus_file.stat().st_size
    (tmp_path / "mix" / "good.txt").unlink()
    with pytest.raises(CorpusError, match="no text files .*late.txt"):
        ENGINE.read_corpus(tmp_path / "mix")


def test_missing_path_and_folder_without_text(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        ENGINE.read_corpus(tmp_path / "nope.txt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.bin").write_bytes(b"\0\1\2\3")
    with pytest.raises(CorpusError, match="contains no text files"):
        ENGINE.read_corpus(tmp_path / "empty")
    with pytest.raises(CorpusError, match="no files match"):
        ENGINE.read_corpus(str(tmp_path / "*.nothing"))


def test_a_corpus_read_for_a_trained_model_must_fit_its_vocabulary(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcabc" * 100, encoding="utf-8")
    assert ENGINE.read_corpus(path, meta={"vocab": "abcd"}).meta["vocab"] == "abcd"
    with pytest.raises(CorpusError, match="never saw"):
        ENGINE.read_corpus(path, meta={"vocab": "ab"})


# --- model and sampling ------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepper_computes_exactly_what_the_network_computes(cell):
    torch.manual_seed(0)
    model = CharRNN(tiny_model(cell), 30).eval()
    x = torch.randint(0, 30, (3, 25))
    with torch.no_grad():
        full = model(x)[0]
    stepper = Stepper(model, 3)
    stepped = torch.stack([stepper.step(x[:, t]) for t in range(25)], 1)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)


def sample(model, vocab, **settings):
    settings = resolve_settings(ENGINE.controls(), settings)
    chunks = list(ENGINE.generate(model, {"corpus": {"vocab": vocab}}, settings))
    return chunks, ["".join(c.text[i] for c in chunks if not isinstance(c, Notice))
                    for i in range(settings["variations"])]


def test_same_seed_same_text_and_probabilities_reported():
    torch.manual_seed(0)
    vocab = "abcdefgh \n"
    model = CharRNN(tiny_model(), len(vocab)).eval()
    chunks, (a,) = sample(model, vocab, seed=7, length=80)
    _, (b,) = sample(model, vocab, seed=7, length=80)
    _, (c,) = sample(model, vocab, seed=8, length=80)
    assert a == b and a != c and len(a) == 80
    assert all(0 < p <= 1 for chunk in chunks for p in chunk.prob)


def test_variations_primer_stop_and_unknown_primer_characters():
    torch.manual_seed(0)
    vocab = "ab \n"
    model = CharRNN(tiny_model(), len(vocab)).eval()
    chunks, texts = sample(model, vocab, seed=1, length=200, variations=4, primer="ab?é", stop="b")
    notices = [c for c in chunks if isinstance(c, Notice)]
    assert len(notices) == 1 and "'?'" in notices[0].message and "'é'" in notices[0].message
    assert len(texts) == 4 and len(set(texts)) > 1
    for text in texts:
        assert text.startswith("ab") and text.endswith("b") and "b" not in text[2:-1]


def test_top_k_and_top_p_truncate():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert (filtered_probs(logits, top_k=2) > 0).sum() == 2
    kept = filtered_probs(logits, top_p=0.7)
    assert (kept > 0).tolist() == [[True, True, False, False]]
    torch.testing.assert_close(kept.sum(), torch.tensor(1.0))
    assert (filtered_probs(logits, top_p=0.01) > 0).sum() == 1


def test_export_writes_text_and_reproducible_settings(tmp_path):
    torch.manual_seed(0)
    vocab = "xyz \n"
    model = CharRNN(tiny_model(), len(vocab)).eval()
    settings = resolve_settings(ENGINE.controls(), {"length": 30, "variations": 2})
    chunks = list(ENGINE.generate(model, {"corpus": {"vocab": vocab}}, settings))
    path = ENGINE.export(chunks, settings, tmp_path / "out.txt")
    first, second = path.read_text(encoding="utf-8").split("\n\n" + "-" * 40 + "\n\n")
    assert len(first) == len(second) == 30
    recorded = json.loads((tmp_path / "out.txt.json").read_text())
    _, again = sample(model, vocab, **{k: recorded[k] for k in ("length", "variations", "seed")})
    assert again == [first, second]

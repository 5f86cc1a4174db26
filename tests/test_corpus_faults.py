"""What a new user's real data did to the corpus readers (issue 12, items 3, 4, 5 and 7): old Mac line
endings, outside text with characters a model never saw, UTF-16 files, one long recording, a few files, a
truncated WAV, flat file names and a trained model's labels meeting other names."""
import numpy as np
import pytest
import soundfile as sf
import torch

from engines.audio import AudioEngine
from engines.audio.data import read_audio_corpus
from engines.core.errors import CorpusError
from engines.core.events import Evaluation
from engines.core.trainer import train, validation
from engines.text import TextEngine
from engines.text import data as text_data
from engines.text.data import read_text_corpus
from engines.text.model import CharRNN
from helpers import recipes, tiny_audio_model, tiny_model, tiny_train

TEXT, AUDIO = TextEngine(), AudioEngine()


def decoded(corpus) -> str:
    return "".join(corpus.meta["vocab"][i] for i in torch.cat([corpus.train, corpus.val]).tolist())


# --- text: line endings (item 3) ----------------------------------------------------------------------------


@pytest.mark.parametrize("block", [text_data.BLOCK, 5])      # 5: a CR LF pair cut by nearly every block end
def test_crlf_and_lone_cr_are_read_as_lf_and_the_summary_says_so(tmp_path, monkeypatch, block):
    monkeypatch.setattr(text_data, "BLOCK", block)
    old_mac = tmp_path / "novel.txt"
    old_mac.write_bytes(("\ufeff" + "It was a dark night.\rThe end?\r\n" * 30).encode("utf-8"))
    corpus = TEXT.read_corpus(old_mac, val_fraction=0.5)
    assert decoded(corpus) == "It was a dark night.\nThe end?\n" * 30
    assert "\r" not in corpus.meta["vocab"]
    assert corpus.summary["line_endings"] == {"CRLF": 30, "CR": 30}
    assert "line endings: 30 CRLF (Windows) and 30 lone CR (old Mac) read as LF" in " ".join(corpus.summary["lines"])

    unix = tmp_path / "unix.txt"            # the same text with LF reads the same, so a model of one measures the other
    unix.write_text("It was a dark night.\nThe end?\n" * 30, encoding="utf-8")
    same = TEXT.read_corpus(unix, val_fraction=0.5, meta=corpus.meta)
    assert torch.equal(same.train, corpus.train) and not any("line endings" in line for line in same.summary["lines"])


# --- text: outside text (item 4) ---------------------------------------------------------------------------


def test_outside_text_leaves_out_unseen_characters_when_asked_and_counts_them(tmp_path):
    path = tmp_path / "outside.txt"
    path.write_text("a cab, a bac. é\n" * 50 + "✓", encoding="utf-8")
    vocab = " \nabc"
    with pytest.raises(CorpusError, match="never saw"):        # a resumed training still refuses it
        read_text_corpus(path, 1.0, vocab=vocab)
    corpus = read_text_corpus(path, 1.0, vocab=vocab, skip_unseen=True)
    assert decoded(corpus) == "a cab a bac \n" * 50
    assert corpus.summary["skipped_characters"] == 50 * 3 + 1 and corpus.summary["characters"] == 13 * 50
    warning = next(w for w in corpus.summary["warnings"] if "never saw" in w)
    assert "151 character(s)" in warning and "'é' x50" in warning and "'✓' x1" in warning and "650" in warning

    torch.manual_seed(0)       # and the model is measured on the rest: nats/char over the characters it knows
    model = CharRNN(tiny_model(), len(vocab)).eval()
    *_, tally = validation(TEXT, model, corpus, TEXT.stage(), 4, 32, None)
    assert tally.units > 600 and 0 < tally.loss < 3


def test_outside_text_with_no_known_character_is_refused(tmp_path):
    path = tmp_path / "greek.txt"
    path.write_text("αβγ" * 10, encoding="utf-8")
    with pytest.raises(CorpusError, match="no character the model knows"):
        read_text_corpus(path, 1.0, vocab="abc", skip_unseen=True)


# --- text: UTF-16 (item 7) -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])   # with a byte order mark, and without
def test_a_utf16_file_is_named_as_utf16_with_advice(tmp_path, encoding):
    path = tmp_path / "notes.txt"
    path.write_text("Dear diary,\nnothing happened.\n" * 20, encoding=encoding)
    with pytest.raises(CorpusError, match=r"notes.txt is UTF-16 text.*re-save it as UTF-8") as err:
        TEXT.read_corpus(path)
    assert "binary" not in str(err.value)
    (tmp_path / "other.txt").write_text("plain text\n" * 20, encoding="utf-8")
    warnings = TEXT.read_corpus(tmp_path).summary["warnings"]       # in a folder: skipped, saying why
    assert any("notes.txt" in w and "UTF-16" in w and "UTF-8" in w for w in warnings)


def test_a_binary_file_is_still_called_binary(tmp_path):
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(CorpusError, match="binary file"):
        TEXT.read_corpus(path)


# --- audio: few files, one recording, truncation, labels (item 5) -------------------------------------------


def tone(seconds: float, rate: int = 8000, pitch: float = 330.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.4 * np.sin(2 * np.pi * pitch * t)


def test_one_long_recording_is_split_by_time(tmp_path):
    path = tmp_path / "session.flac"
    sf.write(path, tone(4.0) * np.linspace(0.2, 1, 32000), 8000)
    corpus = AUDIO.read_corpus(path, 0.1, model_config=tiny_audio_model())
    s, (held,) = corpus.summary, corpus.val
    assert s["recordings"] == 1 and len(corpus.train) == 1
    assert s["validation_samples"] == held.scored == round(0.1 * len(held.codes)) > 3000
    assert s["train_samples"] + s["validation_samples"] == len(held.codes)
    split = next(line for line in s["lines"] if "split" in line)
    assert "split by time" in split and "last 10% of each recording" in split and "at least 10 usable files" in split
    # validation scores the held-out end only, read on from the audio before it (not from made-up silence)
    batches = list(corpus.validation_batches(4, 1000))
    assert sum(b.units for b in batches) == held.scored
    rf = corpus.receptive_field
    context = torch.from_numpy(held.codes[held.first - rf:held.first]).long()
    assert torch.equal(batches[0].tensors["codes"][0, :rf], context)
    assert corpus.batch(2, 500, torch.Generator().manual_seed(0)).units == 1000


def test_a_run_trains_and_validates_on_one_recording(tmp_path):
    path = tmp_path / "session.wav"
    sf.write(path, tone(3.0), 8000)
    config = tiny_audio_model()
    corpus = AUDIO.read_corpus(path, 0.1, model_config=config)
    events = list(train(AUDIO, corpus, tmp_path / "run", device="cpu", previews=False,
                        recipes=recipes(config, tiny_train(4, batch_size=2, seq_len=200, eval_interval=2))))
    evaluations = [e for e in events if isinstance(e, Evaluation)]
    assert [e.step for e in evaluations] == [0, 2, 4] and evaluations[-1].units == corpus.summary["validation_samples"]


def test_a_few_files_are_split_by_time_and_keep_their_labels(tmp_path):
    for i, name in enumerate(["3_ann_0", "7_bob_0", "7_ann_1"]):
        sf.write(tmp_path / f"{name}.wav", tone(1.0, pitch=200 + 100 * i), 8000)
    corpus = AUDIO.read_corpus(tmp_path, 0.1, model_config=tiny_audio_model(conditioning="{digit}_{speaker}_{}"))
    assert len(corpus.train) == len(corpus.val) == 3
    assert corpus.meta["labels"] == {"digit": ["3", "7"], "speaker": ["ann", "bob"]}
    assert corpus.val_labels == corpus.train_labels.tolist()


def test_a_validation_pattern_that_leaves_nothing_says_so_with_the_skipped_files(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"take_{i}.wav", tone(0.5), 8000)
    (tmp_path / "readme.wav").write_text("not audio")
    config = tiny_audio_model(validation_files="*_9.wav")
    with pytest.raises(CorpusError, match=r"'\*_9.wav' matches 0 of the 3 usable recordings.*readme.wav is not audio"):
        read_audio_corpus(tmp_path, config, 0.1)


def test_a_truncated_wav_is_read_and_reported(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, tone(2.0), 8000, subtype="PCM_16")
    data = whole.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:len(data) // 2])
    whole.unlink()
    corpus = AUDIO.read_corpus(tmp_path, 0.1, model_config=tiny_audio_model())
    warning = " ".join(corpus.summary["warnings"])
    assert "cut.wav is cut short" in warning and "promises 2.00 s" in warning and "after 1.00 s" in warning
    assert corpus.summary["seconds_read"] == pytest.approx(1.0, abs=0.01)


def test_flat_file_names_get_a_summary_saying_how_to_label_them(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"147793__fiddler__reel_{i}.wav", tone(0.5), 8000)
    corpus = AUDIO.read_corpus(tmp_path, 0.1, model_config=tiny_audio_model())
    lines = " ".join(corpus.summary["lines"])
    assert corpus.meta["labels"] == {}
    assert "labels: none found" in lines and "sub-folder" in lines and 'conditioning="{digit}_{speaker}_{}"' in lines


def test_a_trained_models_labels_do_not_misread_other_names(tmp_path):
    meta = {"sample_rate": 8000, "labels": {"digit": [str(d) for d in range(10)], "speaker": ["ann", "bob"]}}
    config = tiny_audio_model(conditioning="{digit}_{speaker}_{}")
    sf.write(tmp_path / "147793__fiddler__reel.wav", tone(0.5), 8000)     # a freesound download
    sf.write(tmp_path / "7_bob_12.wav", tone(0.5, pitch=500), 8000)
    sf.write(tmp_path / "10_ann_2.wav", tone(0.5, pitch=500), 8000)       # a digit this model does not know
    corpus = read_audio_corpus(tmp_path, config, 1.0, meta)
    assert [r.path.name for r in corpus.val] == ["7_bob_12.wav"] and corpus.val_labels == [[7, 1]]
    warnings = corpus.summary["warnings"]
    assert "digit=147793" not in " ".join(warnings)
    for name in ("147793__fiddler__reel.wav", "10_ann_2.wav"):
        warning = next(w for w in warnings if name in w)
        assert "'{digit}_{speaker}_{}'" in warning and "digit: 0, 1, 2, 3, 4, 5 …" in warning

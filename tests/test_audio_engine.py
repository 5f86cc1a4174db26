"""The audio engine: reading sounds (and refusing bad ones), learning, cached == naive generation, export."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from engines.audio import AudioEngine
from engines.audio.config import AudioModelConfig
from engines.audio.data import Recording, split, word_lengths
from engines.audio.fast import FastGenerator, with_generation_weights
from engines.audio.model import SILENCE, WaveNet, mu_law_decode, mu_law_encode
from engines.audio.sample import draw_word_lengths, generate, parse_labels, reference_generate, warm_up_codes
from engines.core.errors import ConfigError, CorpusError
from engines.core.interface import Notice, config_from_dict, resolve_settings
from engines.core.trainer import Evaluation, load_model, train
from helpers import recipes, tiny_audio_model, tiny_train

from conftest import SHARED

ENGINE = AudioEngine()


def test_mu_law_round_trip_is_close_where_it_matters():
    audio = np.linspace(-1, 1, 10001, dtype=np.float32)
    error = np.abs(mu_law_decode(mu_law_encode(audio)) - audio)
    assert error[np.abs(audio) < 0.01].max() < 3e-4          # fine steps near silence
    assert error.max() < 0.025
    assert mu_law_encode(np.zeros(1))[0] == SILENCE


def test_corpus_is_resampled_mixed_down_trimmed_and_labelled_by_folder(audio_corpus):
    corpus = ENGINE.read_corpus(audio_corpus, model_config=tiny_audio_model(sample_rate=8000))
    s = corpus.summary
    assert s["recordings"] == 12 and s["sample_rate"] == 8000
    assert corpus.meta["labels"] == {"folder": ["high", "low"]}
    # each file is 0.6 s with 0.2 s of near-silence: trimming keeps about two thirds, and says so
    assert 0.5 < s["seconds_kept"] / s["seconds_read"] < 0.8
    assert "40 dB below" in " ".join(s["lines"]) and "kept" in s["lines"][1]
    assert s["train_samples"] + s["validation_samples"] == pytest.approx(s["seconds_kept"] * 8000, abs=80)
    rf = corpus.receptive_field
    onsets = 0
    for seed in range(20):
        batch = corpus.batch(4, 300, torch.Generator().manual_seed(seed))
        codes, labels, targets = batch.tensors["codes"], batch.tensors["labels"], batch.tensors["targets"]
        assert codes.shape == (4, rf - 1 + 300) and targets.shape == (4, 300) and labels.shape == (4, 1)
        counted = targets >= 0         # not counted: targets in the silence before a recording
        assert batch.units == counted.sum() > 0
        # targets are the inputs shifted by one sample
        assert torch.equal(codes[:, rf:][counted[:, :-1]], targets[:, :-1][counted[:, :-1]])
        for row in range(4):           # a recording's first sample, predicted from silence alone
            first = int(counted[row].int().argmax())
            if first > 0:
                onsets += 1
                assert (codes[row, first:first + rf - 1] == SILENCE).all() and targets[row, first] != SILENCE
    assert onsets >= 2
    # each recording trains with silence after it, as long as the model's setting says
    longer = ENGINE.read_corpus(audio_corpus, model_config=tiny_audio_model(sample_rate=8000, tail_seconds=0.3))
    for short, long in zip(corpus.train, longer.train):
        assert len(long) - len(short) == 0.25 * 8000
        assert (long[len(short) - 400:] == SILENCE).all() and (short[-400:] == SILENCE).all()


def test_files_named_by_pattern_give_several_label_fields(tmp_path):
    rate = 8000
    tone = 0.3 * np.sin(np.arange(2000) / 5)
    for name in ["3_ann_0.wav", "3_bob_1.wav", "7_ann_2.wav", "7_bob_3.wav", "notes.wav"]:
        sf.write(tmp_path / name, tone, rate)
    config = tiny_audio_model(conditioning="{digit}_{speaker}_{}")
    corpus = ENGINE.read_corpus(tmp_path, 0.25, model_config=config)
    assert corpus.meta["labels"] == {"digit": ["3", "7"], "speaker": ["ann", "bob"]}
    assert any("notes.wav" in w and "pattern" in w for w in corpus.summary["warnings"])



@pytest.mark.parametrize("pattern, problem", [("{a}_{a}", "names {a} twice"), ("{1}_{}", "{1} is not a field name")])
def test_a_pattern_that_cannot_be_read_says_why(tmp_path, pattern, problem):
    sf.write(tmp_path / "3_ann.wav", 0.3 * np.sin(np.arange(2000) / 5), 8000)
    with pytest.raises(CorpusError, match=re.escape(problem)):
        ENGINE.read_corpus(tmp_path, 0.25, model_config=tiny_audio_model(conditioning=pattern))


def test_bad_files_are_skipped_by_name_and_a_corpus_of_only_bad_files_is_refused(tmp_path, audio_corpus):
    bad = audio_corpus / "low"
    (bad / "empty.wav").write_bytes(b"")
    (bad / "notes.wav").write_text("this is not audio")
    sf.write(bad / "zero.wav", np.zeros((0, 1)), 8000)
    sf.write(bad / "silent.flac", np.zeros(8000), 8000)
    good = (audio_corpus / "high" / "high_0.wav").read_bytes()
    (bad / "cut.wav").write_bytes(good[:60] + b"\xff" * 10)       # a header promising data that is not there
    sound = np.sin(np.arange(8000, dtype=np.float32) / 5)
    sound[100:110] = np.nan
    sf.write(bad / "nan.wav", sound, 8000, subtype="FLOAT")
    sf.write(bad / "one_hertz.wav", sound[:3000], 1)          # would "resample" 3,000 samples into hours
    spike = np.sin(np.arange(8000, dtype=np.float32) / 5)
    spike[100] = 1e30                                           # would make all the rest "silence"
    sf.write(bad / "spike.wav", spike, 8000, subtype="FLOAT")
    corpus = ENGINE.read_corpus(audio_corpus, model_config=tiny_audio_model())
    warnings = " ".join(corpus.summary["warnings"])
    for name in ["empty.wav", "notes.wav", "zero.wav", "silent.flac", "cut.wav"]:
        assert name in warnings
    assert "low/nan.wav is damaged: 10 of its 8,000 samples are not numbers" in warnings      # named in its folder
    assert "low/one_hertz.wav says its sample rate is 1 Hz" in warnings
    assert "low/spike.wav is damaged: its samples reach 1e+30" in warnings
    assert corpus.summary["recordings"] == 12

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "notes.wav").write_text("not audio")
    sf.write(only_bad / "silent.wav", np.zeros(4000), 8000)
    with pytest.raises(CorpusError, match="no usable audio.*notes.wav.*silent.wav"):
        ENGINE.read_corpus(only_bad, model_config=tiny_audio_model())
    with pytest.raises(CorpusError, match="does not exist"):
        ENGINE.read_corpus(tmp_path / "nowhere", model_config=tiny_audio_model())

    click = tmp_path / "click"
    click.mkdir()
    sf.write(click / "click.wav", np.full(1, 0.5), 8000)
    with pytest.raises(CorpusError, match=r"hold any out for validation .*: click.wav \(1 sample\)"):
        ENGINE.read_corpus(click, model_config=tiny_audio_model())


def test_quiet_recordings_are_kept_because_the_threshold_is_relative_to_each_file(tmp_path):
    # the anchors' fixed silence threshold throws away a whole corpus recorded quietly; ours is relative
    rate = 8000
    t = np.arange(rate) / rate
    for i in range(4):
        quiet = 0.003 * np.sin(2 * np.pi * 300 * t) * (t > 0.25)        # -50 dBFS after a silent start
        sf.write(tmp_path / f"quiet_{i}.wav", quiet, rate)
    corpus = ENGINE.read_corpus(tmp_path, 0.25, model_config=tiny_audio_model())
    assert corpus.summary["recordings"] == 4
    assert corpus.summary["seconds_kept"] == pytest.approx(3.0, abs=0.1)     # the silent quarters trimmed
    assert "kept 3.0 s of 4.0 s read" in corpus.summary["lines"][1]


def test_a_recording_starts_and_ends_with_a_sound():
    from engines.audio.data import trim
    tone = 0.5 * np.sin(np.arange(800) / 3)
    faint = np.full(40, 1e-5)                      # within a µ-law code of silence: still silence to the model
    codes = trim(np.concatenate([np.zeros(500), faint, tone, faint, np.zeros(500)]).astype(np.float32), 40.0)
    assert abs(int(codes[0]) - SILENCE) > 1 and abs(int(codes[-1]) - SILENCE) > 1
    assert 780 <= len(codes) <= 800


def test_a_tiny_wavenet_learns_the_tones(audio_corpus, tmp_path):
    config = tiny_audio_model(position_seconds=0.5)
    corpus = ENGINE.read_corpus(audio_corpus, 0.2, model_config=config)
    events = list(train(ENGINE, corpus, tmp_path / "run", device="cpu",
                        recipes=recipes(config, tiny_train(100, batch_size=8, seq_len=400, lr=2e-2, eval_interval=50)),
                        previews=False))
    losses = [e.val_loss for e in events if isinstance(e, Evaluation)]
    assert losses[0] > 5.0                     # about log(256): knows nothing
    assert losses[-1] < losses[0] - 1.2        # tones are predictable: over 1.7 bits/sample learned


def random_model(config, labels, position_field=None) -> WaveNet:
    torch.manual_seed(1)
    model = WaveNet(config, labels, position_field).eval()
    with torch.no_grad():    # larger than initial weights, so the distributions are far from uniform
        for p in model.parameters():
            p.mul_(3.0)
        if model.positions is not None:     # initialised to zero: give each row a course of its own
            model.positions.weight.normal_()
    return model


@pytest.mark.parametrize("position,position_field,weights",
                         [({}, None, "fp32"), ({"position_seconds": 0.02}, None, "fp32"),
                          ({"position_seconds": 0.02}, None, "int8"), ({"position_seconds": 0.02}, 0, "fp32"),
                          ({"position_shares": 5}, 0, "fp32")])
def test_cached_generation_draws_the_same_samples_as_the_full_forward_pass(position, position_field, weights):
    """fp32: the loop computes exactly what the network computes. int8: exactly what the network computes with
    its matrices rounded to int8 and scaled back (the model whose held-out NLL bench/audio.py reports). With a
    position field, each variation follows the course over time of its own label; with position shares, in
    shares of its own word length, then past its end."""
    config = tiny_audio_model(stacks=2, layers_per_stack=4, **position)
    model = random_model(config, [3, 2], position_field)
    labels = torch.tensor([[0, 1], [2, 0]])
    lengths = np.array([60, 200]) if "position_shares" in position else None
    primer = np.array([[100, 140, 180, 90]] * 2)
    uniforms = np.random.default_rng(3).random((2, 300))     # 300 samples: well past the receptive field (31)

    history = np.concatenate([np.full((2, model.receptive_field), SILENCE), primer], axis=1)
    reference = with_generation_weights(model, weights)
    slow_codes, slow_probs = reference_generate(reference, labels, history, uniforms, 0.9, lengths)
    assert len(np.unique(slow_codes)) > 20          # a real draw, not a constant

    # the loop follows the reference sample step by step: at each step it draws from its own state (then put
    # back), and is fed the reference's code. The two paths round differently (~3e-6 in the distribution
    # function), so a uniform number closer than that to one of its steps may pick the neighbouring code
    fast = FastGenerator(model, labels, 2, weights, lengths)
    fast.previous[:] = SILENCE
    warm = np.broadcast_to(warm_up_codes(model, primer[0]), (2, model.receptive_field - 1 + 4))
    fast.run(warm, np.zeros(warm.shape))
    drawn, fast_probs = np.empty_like(slow_codes), np.empty_like(slow_probs)
    for s in range(slow_codes.shape[1]):
        queues, previous, now = fast.queues.copy(), fast.previous.copy(), fast.time
        drawn[:, s] = fast.run(np.full((2, 1), -1), uniforms[:, s:s + 1], temperature=0.9)[0][:, 0]
        fast.queues[...], fast.previous[...], fast.time = queues, previous, now
        fast_probs[:, s] = fast.run(slow_codes[:, s:s + 1], uniforms[:, s:s + 1], 0.9, want_probs=True)[1][:, 0]
    assert np.abs(fast_probs - slow_probs).max() < 1e-5
    cdf = np.cumsum(slow_probs, axis=-1)
    tie = (np.abs(cdf - uniforms[..., None] * cdf[..., -1:]) < 5e-6).any(axis=-1)
    assert tie.sum() <= 3 and np.array_equal(drawn[~tie], slow_codes[~tie])
    if weights == "int8":                           # and the rounding is real: the fp32 network differs
        _, fp32_probs = reference_generate(model, labels, history, uniforms, 0.9, lengths)
        assert np.abs(fp32_probs - slow_probs).max() > 1e-4


def test_a_course_per_label_needs_that_label_and_positions(audio_corpus):
    stage = ENGINE.stage()
    labelled = {"labels": {"digit": ["1", "7"], "speaker": ["a", "b"]}}
    model = ENGINE.build_model(stage, tiny_audio_model(position_seconds=0.05, position_per="speaker"), labelled)
    assert model.positions.num_embeddings == 2 * 6          # two speakers, each 1 + 5 steps of 10 ms
    # a field the corpus does not have: said when it is read, whether positions are in seconds or shares
    for position in ({"position_seconds": 0.05}, {"position_shares": 4}):
        with pytest.raises(ConfigError, match="names no label field.*its fields: folder"):
            ENGINE.read_corpus(audio_corpus, 0.2, model_config=tiny_audio_model(position_per="accent", **position))
    with pytest.raises(ConfigError, match="it has no labels"):
        ENGINE.read_corpus(audio_corpus, 0.2, model_config=tiny_audio_model(
            conditioning="none", position_shares=4, position_per="folder"))
    # what a preset or --set gives is checked before anything is read
    with pytest.raises(ConfigError, match="needs position_seconds or position_shares"):
        config_from_dict(AudioModelConfig, {"position_per": "digit"}, "preset x")
    with pytest.raises(ConfigError, match="set one of them"):
        config_from_dict(AudioModelConfig, {"position_seconds": 1.0, "position_shares": 10}, "preset x")
    with pytest.raises(ConfigError, match="cannot be negative"):
        config_from_dict(AudioModelConfig, {"tail_seconds": -1.0}, "preset x")


def test_positions_in_shares_of_a_word_run_from_before_it_to_after_it(audio_corpus):
    """With position_shares, a training window's rows say: before the recording (0), which fifth of it (1-5),
    after it (6); the corpus keeps the recordings' lengths per label, and generation draws each word's length
    from them and says what it drew."""
    config = tiny_audio_model(sample_rate=8000, position_shares=5, position_per="folder", tail_seconds=0.1)
    corpus = ENGINE.read_corpus(audio_corpus, model_config=config)
    lengths = corpus.meta["word_lengths"]
    assert set(lengths) == {"", "high", "low"} and all(len(q) == 21 and q == sorted(q) for q in lengths.values())
    after = 0
    for seed in range(10):
        batch = corpus.batch(2, 2000, torch.Generator().manual_seed(seed))
        # the row of the input each target is predicted from
        rows, targets = batch.tensors["positions"][:, corpus.receptive_field - 1:], batch.tensors["targets"]
        assert (torch.diff(rows, dim=1) >= 0).all() and rows.min() >= 0 and rows.max() <= 6
        counted = targets >= 0          # "before" is counted only where it predicts the recording's first sample
        assert ((rows == 0) & counted).sum() <= 2 and set(rows[~counted].unique().tolist()) <= {0}
        assert (targets[rows == 6] == SILENCE).all()          # after the recording: its silent tail
        after += int((rows == 6).sum())
    assert after > 0
    model = ENGINE.build_model(ENGINE.stage(), config, corpus.meta).eval()
    chunks, _ = generate_all(model, corpus.meta, seconds=0.05, seed=0, variations=3, label="low")
    drawn = [float(t[:-2]) for t in chunks[1].message.removeprefix("word length: ").split(" | ")]
    assert len(drawn) == 3 and all(lengths["low"][1] - 40 <= 8000 * d <= lengths["low"][-2] + 40 for d in drawn)
    chosen, _ = generate_all(model, corpus.meta, seconds=0.05, seed=0, label="low", word_seconds=0.8)
    assert chosen[1].message == "word length: 0.80 s"


def test_word_lengths_are_drawn_from_the_middle_of_the_training_lengths():
    """Between the 5% and 95% quantiles: a few odd recordings, four times longer than the rest, are not a pace to
    generate at."""
    model = SimpleNamespace(config=SimpleNamespace(position_shares=50, position_per=""))
    meta = {"word_lengths": {"": list(range(0, 2001, 100))}}            # 21 quantiles: 0, 100, ..., 2000
    drawn = draw_word_lengths(model, meta, None, 500, 0.0, np.random.default_rng(0))
    assert 100 <= drawn.min() < 200 and 1800 < drawn.max() <= 1900


def test_a_recording_split_by_time_counts_its_positions_in_shares_of_the_whole_recording():
    """A corpus of a few recordings trains on the first 90% of each: its positions and the word lengths
    generation draws are still shares of the whole recording, as validation and generation count them."""
    train, val, how = split([Recording(Path("a.wav"), np.full(1000, SILENCE, np.uint8), {})], "", 0.1)
    assert "by time" in how and len(train[0].codes) == 900
    assert train[0].length == val[0].length == 1000 and word_lengths(train, "")[""] == [1000] * 21


def generate_all(model, meta, **settings):
    settings = resolve_settings(ENGINE.controls(), settings)
    return list(generate(model, {"sample_rate": 8000, **meta}, settings)), settings


def test_generation_streams_chunks_reproducibly_for_every_variation():
    model = random_model(tiny_audio_model(), [2])
    meta = {"labels": {"speaker": ["ann", "bob"]}}
    chunks, _ = generate_all(model, meta, seconds=0.3, seed=4, variations=3, label="")
    notices = [c for c in chunks if isinstance(c, Notice)]
    audio = np.concatenate([c.audio for c in chunks if not isinstance(c, Notice)], axis=1)
    assert audio.shape == (3, 2400) and audio.dtype == np.float32
    assert "speaker=" in notices[0].message          # the labels drawn at random are named
    again, _ = generate_all(model, meta, seconds=0.3, seed=4, variations=3, label="")
    assert np.array_equal(audio, np.concatenate([c.audio for c in again if not isinstance(c, Notice)], axis=1))
    chosen, _ = generate_all(model, meta, seconds=0.05, seed=4, label="bob")
    assert "speaker=bob" in chosen[0].message


def test_labels_are_parsed_by_value_or_by_field_and_errors_list_the_choices():
    values = {"digit": ["1", "7"], "speaker": ["ann", "bob"]}
    rng = np.random.default_rng(0)
    rows, described = parse_labels("7 speaker=bob", values, 2, rng)
    assert rows.tolist() == [[1, 1], [1, 1]] and described[0] == "digit=7 speaker=bob"
    with pytest.raises(ConfigError, match="not a label this model knows.*digit: 1, 7"):
        parse_labels("9", values, 1, rng)
    with pytest.raises(ConfigError, match="no label field 'accent'"):
        parse_labels("accent=x", values, 1, rng)
    with pytest.raises(ConfigError, match="without labels"):
        parse_labels("7", {}, 1, rng)


def test_the_labels_the_app_lists_each_parse_to_the_value_they_name():
    """What the Create page lists beside the Label field: every value, named by its field where two fields share
    it (a bare '1' would be ambiguous)."""
    values = {"digit": ["1", "7"], "take": ["1", "2"], "speaker": ["ann"]}
    listed = AudioEngine().suggestions({"corpus": {"labels": values}})["label"]
    assert listed == ["digit=1", "7", "take=1", "2", "ann"]
    rng = np.random.default_rng(0)
    field_of = {"digit=1": (0, 0), "7": (0, 1), "take=1": (1, 0), "2": (1, 1), "ann": (2, 0)}
    for label in listed:
        field, index = field_of[label]
        assert parse_labels(label, values, 1, rng)[0][0, field] == index
    assert AudioEngine().suggestions({"corpus": {"labels": {}}}) == {}


def test_a_primer_is_played_first_and_continued(tmp_path):
    model = random_model(tiny_audio_model(), [])
    primer = tmp_path / "primer.flac"
    sf.write(primer, 0.4 * np.sin(np.arange(4410) / 7), 44100)       # 0.1 s at another rate
    chunks, _ = generate_all(model, {"labels": {}}, seconds=0.1, seed=1, primer=str(primer))
    assert chunks[0].audio.shape == (1, 800)          # resampled to the model's 8 kHz
    assert sum(c.audio.shape[1] for c in chunks) == 1600
    with pytest.raises(ConfigError, match="primer .* does not exist"):
        generate_all(model, {"labels": {}}, seconds=0.1, primer=str(tmp_path / "nope.wav"))
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(CorpusError, match="notes.wav is not audio"):
        generate_all(model, {"labels": {}}, seconds=0.1, primer=str(tmp_path / "notes.wav"))


def test_export_writes_wav_and_flac_with_the_settings_inside(tmp_path):
    model = random_model(tiny_audio_model(), [])
    chunks, settings = generate_all(model, {"labels": {}}, seconds=0.2, seed=2, variations=2)
    for suffix in (".wav", ".flac"):
        path = ENGINE.export(chunks, {**settings, "engine": "audio"}, tmp_path / f"out{suffix}")
        audio, rate = sf.read(path)
        assert rate == 8000 and audio.shape == (1600, 2)
        with sf.SoundFile(path) as f:
            assert json.loads(f.comment)["seed"] == 2
    with pytest.raises(ConfigError, match="wav or .flac"):
        ENGINE.export(chunks, settings, tmp_path / "out.mp4")
    nine, settings = generate_all(model, {"labels": {}}, seconds=0.05, seed=2, variations=9)
    with pytest.raises(ConfigError, match="FLAC holds at most 8 channels"):
        ENGINE.export(nine, settings, tmp_path / "nine.flac")
    assert sf.read(ENGINE.export(nine, settings, tmp_path / "nine.wav"))[0].shape[1] == 9
    with pytest.raises(OSError, match="out.wav: its folder does not exist"):     # an OSError, as Python's own writes
        ENGINE.export(chunks, settings, tmp_path / "no such folder" / "out.wav")


def test_a_trained_model_round_trips_through_its_checkpoint(audio_corpus, tmp_path):
    config = tiny_audio_model()
    corpus = ENGINE.read_corpus(audio_corpus, 0.2, model_config=config)
    list(train(ENGINE, corpus, tmp_path / "run", device="cpu",
               recipes=recipes(config, tiny_train(4, batch_size=2, seq_len=100)), previews=False))
    model, meta = load_model(ENGINE, tmp_path / "run" / "best.safetensors")
    assert meta["corpus"]["labels"] == {"folder": ["high", "low"]}
    chunks, _ = generate_all(model, meta["corpus"], seconds=0.05, seed=0, label="low")
    assert "folder=low" in chunks[0].message


@pytest.mark.skipif(not (SHARED / "audio" / "fsdd").exists(), reason="needs ../shared/data/audio/fsdd (absent)")
def test_the_digits_preset_reads_fsdd_with_the_official_split():
    config = AudioModelConfig(**ENGINE.preset("digits").stages["model"].model)
    corpus = ENGINE.read_corpus(SHARED / "audio" / "fsdd" / "recordings", model_config=config)
    assert corpus.meta["labels"]["digit"] == [str(d) for d in range(10)]
    assert len(corpus.meta["labels"]["speaker"]) == 6
    assert len(corpus.val) == 300 and all(int(r.path.stem.split("_")[2]) < 5 for r in corpus.val)


def test_a_long_primer_is_read_in_blocks_with_progress_and_can_be_left_out(tmp_path, monkeypatch):
    from engines.audio import sample
    from engines.audio.fast import FastGenerator
    monkeypatch.setattr(sample, "PRIMER_PROGRESS_SECONDS", 1.0)     # a 2.5 s primer counts as long here
    model = random_model(tiny_audio_model(), [])
    primer = tmp_path / "primer.wav"
    sf.write(primer, 0.4 * np.sin(np.arange(20000) / 7), 8000)
    settings = resolve_settings(ENGINE.controls(), {"seconds": 0.2, "seed": 3, "primer": str(primer)})

    def run(keep):
        chunks = list(generate(model, {"sample_rate": 8000, "labels": {}}, {**settings, "keep_primer": keep}))
        return [c.message for c in chunks if isinstance(c, Notice)], [c.audio for c in chunks if not isinstance(c, Notice)]

    notices, kept = run(True)
    assert notices == ["primer: 1 of 2 s read", "primer: 2 of 2 s read", "primer: 2 of 2 s read"]   # 8000, 16000, 20000
    assert [a.shape[1] for a in kept[:3]] == [8000, 8000, 4000]       # the primer streams out as it is read
    _, left_out = run(False)
    assert sum(a.shape[1] for a in left_out) == 1600                  # only the 0.2 s generated
    assert np.array_equal(np.concatenate(left_out, axis=1), np.concatenate(kept[3:], axis=1))

    # fed in blocks, the primer leaves the generator exactly where feeding it in one go does
    fast = FastGenerator(model, None, 1)
    fast.previous[:] = SILENCE
    codes = mu_law_encode(sf.read(primer, dtype="float32")[0]).astype(np.int64)
    warm = warm_up_codes(model, codes)[None]
    fast.run(warm, np.zeros(warm.shape))
    rng = np.random.default_rng(3)
    drawn = [fast.run(np.full((1, 400), -1), rng.random((1, 400)))[0] for _ in range(4)]
    assert np.array_equal(np.concatenate(left_out, axis=1), mu_law_decode(np.concatenate(drawn, axis=1)))

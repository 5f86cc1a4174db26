"""The video engine end to end on tiny moving-digit clips (16x16, 8 frames, 2x4x4 codes): both stages learn and
resume exactly, generation streams frames that equal the uncached sampler's clip decoded whole, a primer is
an exact token prefix, clips run past the trained length, and exports decode back. And a folder of videos as a
corpus: what was found, what was done to it, and what was skipped and why."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.core.checkpoint import load_checkpoint, read_meta
from engines.core.errors import ConfigError
from engines.core.events import Evaluation, Preview
from engines.core.interface import Notice, StageRecipe, resolve_settings
from engines.core.trainer import build_from_header, load_model, load_weights, train
from engines.video import VideoEngine
from engines.video.chunks import VideoChunk
from engines.video.config import TokenizerConfig
from engines.video.corpus import as_floats
from engines.video.prior import sample
from engines.video.sample import as_frames, read_primer
from helpers import events_until

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "mnist_t10k"
needs_mnist = pytest.mark.skipif(not MNIST.exists(), reason=f"moving digits need the MNIST digits in {MNIST} "
                                                            f"(../shared is absent)")

ENGINE = VideoEngine()
TINY = ENGINE.preset("tiny").stages
TOKENIZER = TokenizerConfig(**TINY["tokenizer"].model)
STEPS = 40


def corpus():
    return ENGINE.read_corpus("moving-digits", 0.1, model_config=TOKENIZER)


def run(out, resume=False, stop=None, previews=False):
    """Train both stages of the tiny preset for STEPS steps each; stop=(stage, step) stops like the Stop button."""
    recipes = {name: StageRecipe(r.model, dataclasses.replace(r.train, max_steps=STEPS, eval_interval=20))
               for name, r in TINY.items()}
    events = train(ENGINE, corpus(), out, recipes=recipes, resume=resume, device="cpu", previews=previews)
    return events_until(events, stop)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    return out, run(out, previews=True)


@pytest.fixture(scope="module")
def model(trained):
    return load_model(ENGINE, trained[0], "cpu")


def clip_of(chunks):
    return np.concatenate([c.frames for c in chunks if isinstance(c, VideoChunk)], axis=1)


@needs_mnist
def test_moving_digits_are_a_corpus_with_held_out_digits():
    digits = corpus()
    text = "\n".join(digits.summary["lines"])
    assert "moving digits" in text and "MNIST" in text and "digits 9000-9999" in text
    assert digits.meta == {"source": "moving-digits", "fps": 10.0, "digits_per_clip": 2}
    batch = digits.batch(4, 0, torch.Generator().manual_seed(3))
    assert batch.tensors["video"].shape == (4, 1, 8, 16, 16) and batch.units == 4 * 8
    again = digits.batch(4, 0, torch.Generator().manual_seed(3))
    assert torch.equal(batch.tensors["video"], again.tensors["video"])          # what exact resume needs
    val = torch.cat([b.tensors["video"] for b in digits.validation_batches(64, 0)])
    assert val.shape == (256, 1, 8, 16, 16) and torch.equal(val, torch.cat(
        [b.tensors["video"] for b in corpus().validation_batches(64, 0)]))


@needs_mnist
def test_both_stages_learn_report_codebook_use_and_show_previews(trained):
    _, events = trained
    evaluations = [e for e in events if isinstance(e, Evaluation)]
    tokenizer = [e for e in evaluations if e.stage == "tokenizer"]
    prior = [e for e in evaluations if e.stage == "prior"]
    assert tokenizer[-1].val_loss < 0.4 * tokenizer[0].val_loss
    assert tokenizer[-1].metrics["psnr"][0] > tokenizer[0].metrics["psnr"][0] + 5
    assert tokenizer[-1].metrics["psnr"][1] == "dB" and tokenizer[-1].metrics["unused"][1] == "codes"
    assert tokenizer[-1].metrics["perplexity"][0] > 4 and tokenizer[-1].metrics["restarts"][0] > 0
    assert 0 < tokenizer[0].metrics["ssim"][0] < tokenizer[-1].metrics["ssim"][0] <= 1
    # every validation's metrics stay in the checkpoint, for curves against training time
    kept = read_meta(trained[0] / "tokenizer" / "last.safetensors")["history"]["val_metrics"]
    assert [m["psnr"] for m in kept] == [e.metrics["psnr"][0] for e in tokenizer]
    assert prior[-1].val_loss < prior[0].val_loss - 1.0 and prior[0].loss_unit == "nats/token"
    assert prior[-1].metrics["bits"][1] == "bits/token" and prior[-1].unit == "frame"
    previews = {stage: [e for e in events if isinstance(e, Preview) and e.stage == stage]
                for stage in ("tokenizer", "prior")}
    assert [e.step for e in previews["tokenizer"]] == [0, 20, 40] and len(previews["prior"]) == 3
    assert all(c.frames.shape == (4, 8, 16, 2 * 16 + 2, 1) for e in previews["tokenizer"] for c in e.chunks)
    assert clip_of(previews["prior"][-1].chunks).shape == (1, 8, 16, 16, 1)      # a clip of the trained length


@needs_mnist
def test_each_stage_resumes_exactly(trained, tmp_path):
    out = tmp_path / "run"
    run(out, stop=("tokenizer", 25))
    run(out, resume=True, stop=("prior", 25))
    run(out, resume=True)
    for stage in ("tokenizer", "prior"):
        resumed = load_checkpoint(out / stage / "last.safetensors", prefix="model.")[0]
        straight = load_checkpoint(trained[0] / stage / "last.safetensors", prefix="model.")[0]
        assert resumed.keys() == straight.keys()
        for name in straight:
            assert torch.equal(resumed[name], straight[name]), (stage, name)


@needs_mnist
def test_tokenizer_preview_shows_held_out_clips_beside_their_reconstructions(trained):
    tensors, header = load_checkpoint(trained[0] / "tokenizer" / "best.safetensors", prefix="model.")
    tokenizer = build_from_header(ENGINE, header)
    load_weights(tokenizer, tensors, header, "tokenizer")
    tokenizer.eval()                                        # as the trainer hands it over
    digits = corpus()
    [chunk] = ENGINE.preview(tokenizer, header, ENGINE.stage("tokenizer"), digits)
    assert chunk.frames.shape == (4, 8, 16, 2 * 16 + 2, 1) and chunk.fps == 10.0
    video = next(digits.validation_batches(4, 0)).tensors["video"]
    assert np.array_equal(chunk.frames[..., :16, :], as_frames(video))
    assert np.array_equal(chunk.frames[..., -16:, :], as_frames(tokenizer.decode(tokenizer.encode(video))))


@needs_mnist
def test_streamed_frames_are_the_uncached_sample_decoded_whole(model):
    prior, header = model
    prior = prior.double()      # float64: the cached and uncached paths round differently in float32
    try:
        settings = resolve_settings(ENGINE.controls(), {"frames": 16, "seed": 5, "temperature": 0.9, "top_k": 10})
        chunks = list(ENGINE.generate(prior, header, settings))
        notices = [c.message for c in chunks if isinstance(c, Notice)]
        assert any("past the 8" in n for n in notices)                   # twice the trained length
        frames = [c.frames for c in chunks if isinstance(c, VideoChunk)]
        assert all(f.shape == (1, 2, 16, 16, 1) for f in frames) and len(frames) == 8
        gpt, tokenizer = prior.gpt, prior.tokenizer.module
        codes = torch.stack(list(sample(gpt, torch.zeros(1, 0, 4, 4, dtype=torch.long), 8, temperature=0.9,
                                        top_k=10, generator=torch.Generator().manual_seed(5), use_cache=False)), 1)
        assert np.array_equal(clip_of(chunks), as_frames(tokenizer.decode(codes)))
    finally:
        prior.float()


def write_gif(path, frames):
    """(T, H, W) uint8 grey frames as a GIF at 10 fps: lossless for grey."""
    from PIL import Image
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


@needs_mnist
def test_a_primer_is_an_exact_token_prefix(model, tmp_path):
    prior, header = model
    tokenizer = prior.tokenizer.module
    clip = next(corpus().validation_batches(1, 0)).tensors["video"]                    # (1, 1, 8, 16, 16)
    primer = write_gif(tmp_path / "primer.gif", as_frames(clip)[0, ..., 0])
    frames = read_primer(str(primer), tokenizer.config, 10.0, 8)
    assert torch.equal(as_floats(frames).transpose(0, 1)[None], clip)                    # read back exactly
    assert 3 <= len(read_primer(str(primer), tokenizer.config, 10.0, 3)) < 8           # only what is kept is read
    settings = resolve_settings(ENGINE.controls(), {"frames": 12, "primer": str(primer), "primer_frames": 5,
                                                    "seed": 1, "variations": 2})
    chunks = list(ENGINE.generate(prior, header, settings))
    assert any("kept 4 primer frames, not 5" in c.message for c in chunks if isinstance(c, Notice))
    out = clip_of(chunks)
    assert out.shape == (2, 12, 16, 16, 1)
    assert [c.primer for c in chunks if isinstance(c, VideoChunk)][:2] == [True, False]   # the view marks them
    one = list(ENGINE.generate(prior, header, {**settings, "primer_frames": 1}))     # fewer than a code covers
    assert any("kept 2 primer frames, not 1" in c.message for c in one if isinstance(c, Notice))
    assert [c.primer for c in one if isinstance(c, VideoChunk)][0]
    # the primer's 4 frames as the whole clip's reconstruction has them: later frames cannot change them
    whole = as_frames(tokenizer.decode(tokenizer.encode(clip)))
    assert np.array_equal(out[0, :4], whole[0, :4]) and np.array_equal(out[1, :4], whole[0, :4])
    assert not np.array_equal(out[0, 4:], out[1, 4:])                                   # then each its own way
    # saved and read back for History, the primer's frames are still the primer's
    saved, _ = ENGINE.load_sample(ENGINE.export(chunks, {"engine": "video", **settings}, tmp_path / "primed.png"))
    assert [(c.primer, c.frames.shape[1]) for c in saved] == [(True, 4), (False, 8)]


@needs_mnist
def test_exports_decode_back_with_their_frames_and_rate(model, tmp_path):
    import av
    prior, header = model
    settings = resolve_settings(ENGINE.controls(), {"frames": 10, "seed": 2, "variations": 2, "fps": 8})
    chunks = list(ENGINE.generate(prior, header, settings))
    frames = clip_of(chunks)
    for suffix in (".mp4", ".gif", ".png"):
        path = ENGINE.export(chunks, {"engine": "video", **settings}, tmp_path / f"clip{suffix}")
        [chunk], saved = ENGINE.load_sample(path)
        assert chunk.frames.shape == (2, 10, 16, 16, 3) and chunk.fps == 8.0, suffix
        assert saved["seed"] == 2 and saved["variations"] == 2 and Path(f"{path}.json").exists()
        error = np.abs(chunk.frames.astype(int) - frames.astype(int)).mean()
        assert error == 0 if suffix != ".mp4" else error < 6, (suffix, error)
    with av.open(str(tmp_path / "clip.mp4")) as container:      # as any player sees it
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == 8.0
        assert sum(1 for _ in container.decode(stream)) == 10
    assert len(list((tmp_path / "clip-frames").glob("*.png"))) == 10
    with pytest.raises(ConfigError, match="choose .mp4"):
        ENGINE.export(chunks, settings, tmp_path / "clip.avi")


@needs_mnist
def test_settings_that_cannot_work_are_clear_errors(model, tmp_path):
    prior, header = model
    with pytest.raises(ConfigError, match="does not exist"):
        list(ENGINE.generate(prior, header, resolve_settings(ENGINE.controls(), {"primer": str(tmp_path / "no.mp4")})))
    clip = np.zeros((8, 16, 16), np.uint8)
    primer = write_gif(tmp_path / "p.gif", clip)
    with pytest.raises(ConfigError, match="must be more than the primer"):
        list(ENGINE.generate(prior, header, resolve_settings(ENGINE.controls(), {
            "primer": str(primer), "primer_frames": 8, "frames": 6})))
    with pytest.raises(ConfigError, match="Primer clip"):
        resolve_settings(ENGINE.controls(), {"primer": "notes.txt"})
    with pytest.raises(ConfigError, match="class-conditioned prior needs a label"):
        ENGINE.build_model(ENGINE.stage("prior"), dataclasses.replace(prior.gpt.config, n_classes=3), {})
    # a primer far longer than the model sees: its last frames in view are kept, not all of it encoded at once
    c = prior.tokenizer.module.config
    view = c.clip_frames - c.time_downsample
    long = write_gif(tmp_path / "long.gif", np.zeros((10 * c.clip_frames, 16, 16), np.uint8))
    chunks = list(ENGINE.generate(prior, header, resolve_settings(ENGINE.controls(), {
        "primer": str(long), "primer_frames": 10 * c.clip_frames, "frames": view + c.time_downsample})))
    assert any(f"sees the last {view} of the {10 * c.clip_frames}" in getattr(x, "message", "") for x in chunks)
    assert [x.frames.shape[1] for x in chunks if isinstance(x, VideoChunk) and x.primer] == [view]


def test_a_folder_corpus_says_what_it_found_did_and_skipped(tmp_path):
    pytest.importorskip("av", reason="reading videos needs PyAV (pip install av)")
    import soundfile as sf
    from test_video_core import write_video
    frames = np.zeros((24, 48, 64, 3), np.uint8)           # a bright square sweeping right, 1 s at 24 fps
    for i in range(24):
        frames[i, 16:32, 2 * i:2 * i + 16] = 255
    write_video(tmp_path / "sweep.mp4", frames, 24, "libx264", "yuv420p")
    write_video(tmp_path / "sweep.mkv", frames, 24, "ffv1", "yuv444p")
    write_video(tmp_path / "sweep.gif", frames, 24, "gif", "rgb8")
    write_video(tmp_path / "short.mp4", frames[:3], 24, "libx264", "yuv420p")
    sf.write(tmp_path / "voice.wav", np.zeros(8000), 8000)
    (tmp_path / "empty.mkv").write_bytes(b"")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    config = TokenizerConfig(frame_size=16, clip_frames=4, fps=12)
    found = ENGINE.read_corpus(tmp_path, 0.25, model_config=config)
    lines, warnings = found.summary["lines"], "\n".join(found.summary["warnings"])
    assert lines[0].startswith("9 clip(s) of 4 frames, 16x16 RGB at 12 fps, from 3 of 7 source(s)")
    assert "sweep.mkv: 64x48, 24 frames at 24 fps -> scaled to 21x16, cropped to 16x16, 12 frames at 12 fps -> " \
           "3 clip(s)" in lines
    assert "7 clip(s) to train on, 2 held out (one clip in 4)" in lines
    for name, why in (("voice.wav", "audio only"), ("empty.mkv", "empty"), ("broken.mp4", "PyAV can decode"),
                      ("short.mp4", "too short")):
        assert f"skipped {name}: " in warnings and why in warnings.split(f"skipped {name}: ")[1].split("\n")[0], \
            warnings
    batch = found.batch(2, 0, torch.Generator().manual_seed(0))
    assert batch.tensors["video"].shape == (2, 3, 4, 16, 16) and batch.units == 8
    assert found.meta == {"source": "folder", "fps": 12.0}
    # fewer clips than one in ten would need: one is held out all the same, so validation has something to read
    few = ENGINE.read_corpus(tmp_path, 0.1, model_config=config)
    assert "8 clip(s) to train on, 1 held out (one clip in 9)" in few.summary["lines"] and len(few.val) == 1

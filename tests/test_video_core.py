"""The video engine's torch core: the VQ-VAE tokenizer and the GPT prior on tiny moving-digit clips (16x16,
8 frames), sampling with and without a KV cache, and reading clips from videos and image sequences."""
import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.core.errors import ConfigError, CorpusError
from engines.video.config import PriorConfig, TokenizerConfig
from engines.video.corpus import MovingDigitsCorpus, as_floats
from engines.video.data import fit_frames, nearest_frames, read_clips
from engines.video.prior import GPT, KVCache, sample
from engines.video.vqvae import VQVAE, Codebook

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VIDEO_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
MNIST, ASL = VIDEO_DATA / "mnist_t10k", VIDEO_DATA / "asl_gestures"
needs_mnist = pytest.mark.skipif(not MNIST.exists(), reason=f"moving digits need the MNIST digits in {MNIST}")

TOKENIZER = TokenizerConfig(frame_size=16, clip_frames=8, channels=1, hidden=32, res_blocks=1, time_downsample=2,
                            space_downsample=4, codebook_size=32, code_dim=16,
                            ema_decay=0.9)    # a short run: the codebook must keep up with a fast-moving encoder
PRIOR = PriorConfig(n_layer=2, n_head=4, n_embd=64).for_tokenizer(TOKENIZER)      # 4x4x4 = 64 tokens a clip


@pytest.fixture(scope="module")
def clips():
    """256 fixed moving-digits clips (N, 1, 8, 16, 16), floats in [-1, 1]."""
    digits = MovingDigitsCorpus(TOKENIZER, 0.1, folder=MNIST)
    return as_floats(digits.clips(digits.train_digits, 256, np.random.default_rng(0)))


def draw(clips, batch_size, generator):
    return clips[torch.randint(len(clips), (batch_size,), generator=generator)]


@pytest.fixture(scope="module")
def tokenizer(clips):
    """A VQ-VAE trained 250 steps, and its metrics at every step. The learning rate warms up: full steps from
    the start kill most ReLUs of the encoder within ten steps, and the model then only draws the background."""
    torch.manual_seed(0)
    model = VQVAE(TOKENIZER)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    warm_up = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 25))
    generator = torch.Generator().manual_seed(0)
    history = []
    for _ in range(250):
        _, metrics = model(draw(clips, 8, generator))
        optimizer.zero_grad()
        metrics["loss"].backward()
        optimizer.step()
        warm_up.step()
        history.append({k: v.item() for k, v in metrics.items()})
    return model.eval(), history


@pytest.fixture(scope="module")
def prior(tokenizer, clips):
    """A GPT trained 150 steps on the frozen tokenizer's codes of every clip, and its loss at every step."""
    model, _ = tokenizer
    codes = torch.cat([model.encode(clips[i:i + 64]) for i in range(0, len(clips), 64)])     # (256, 4, 4, 4)
    torch.manual_seed(0)
    gpt = GPT(PRIOR)
    optimizer = torch.optim.AdamW(gpt.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        batch = codes[torch.randint(len(codes), (16,), generator=generator)]
        _, loss = gpt(gpt.tokens(batch), batch.flatten(1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return gpt.eval(), codes, losses


def test_configs_refuse_shapes_the_networks_cannot_take():
    TokenizerConfig().check()
    PriorConfig().check()
    assert PRIOR.block_size == 64 and TOKENIZER.code_shape == (4, 4, 4)
    for bad in (TokenizerConfig(frame_size=60), TokenizerConfig(clip_frames=10), TokenizerConfig(space_downsample=3),
                TokenizerConfig(channels=2), TokenizerConfig(ema_decay=1.0)):
        with pytest.raises(ConfigError):
            bad.check()
    with pytest.raises(ConfigError, match="multiple of n_head"):
        PriorConfig(n_embd=100, n_head=3).check()


# ----------------------------------------------------------------------------------------------------------
# moving digits

@needs_mnist
def test_moving_digits_move_and_fit_the_preset(clips):
    assert clips.shape == (256, 1, 8, 16, 16)
    # digits move: consecutive frames differ, and every frame shows something
    frames = (clips[:, 0] + 1) * 127.5
    assert (frames[:, 1:] - frames[:, :-1]).abs().mean() > 5
    assert (frames.amax(dim=(2, 3)) > 50).all()
    rgb = MovingDigitsCorpus(TokenizerConfig(frame_size=32, clip_frames=4), 0.1, folder=MNIST)
    assert rgb.val.shape == (256, 3, 4, 32, 32)


def test_missing_mnist_is_a_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="MNIST"):
        MovingDigitsCorpus(TOKENIZER, 0.1, folder=tmp_path)


# ----------------------------------------------------------------------------------------------------------
# tokenizer

@needs_mnist
def test_tokenizer_reconstruction_improves_and_uses_its_codebook(tokenizer, clips):
    model, history = tokenizer
    first = {k: np.mean([h[k] for h in history[:5]]) for k in history[0]}
    last = {k: np.mean([h[k] for h in history[-10:]]) for k in history[0]}
    print(f"\ntokenizer MSE {first['mse']:.3f} -> {last['mse']:.4f}, PSNR {first['psnr']:.1f} -> "
          f"{last['psnr']:.1f} dB, perplexity {last['perplexity']:.1f} of {TOKENIZER.codebook_size}, "
          f"{int(model.codebook.restarts)} codes restarted")
    # far better than the mean frame (mostly black), not just the drop from an untrained decoder's noise
    variance = clips.var().item()
    assert last["mse"] < 0.75 * variance and last["mse"] < 0.1 * first["mse"]
    assert last["psnr"] > first["psnr"] + 10
    assert last["perplexity"] > TOKENIZER.codebook_size / 4
    video = clips[:2]
    codes = model.encode(video)
    assert codes.shape == (2, 4, 4, 4) and codes.dtype == torch.long
    assert model.decode(codes).shape == video.shape


@needs_mnist
def test_eval_mode_and_encode_never_move_the_codebook(tokenizer, clips):
    model = copy.deepcopy(tokenizer[0])
    video = draw(clips, 8, torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.codebook.state_dict().items()}

    def unchanged():
        return all(torch.equal(before[k], v) for k, v in model.codebook.state_dict().items())

    model.eval()
    model(video)
    model.encode(video)
    assert unchanged()
    model.train()
    model.encode(video)                                     # a pure lookup, whatever the mode
    assert unchanged()
    model(video)                                            # training does move it
    assert not unchanged()


def test_codebook_starts_from_the_data_where_random_codes_collapse():
    """Encoder outputs far from the standard-normal start: random codes leave one code winning everything."""
    torch.manual_seed(0)
    z = 5 + 0.5 * torch.randn(4, 16, 2, 4, 4)                        # (B, D, t, h, w)
    from_data = Codebook(32, 16, decay=0.99, dead_code_threshold=1.0)
    _, _, stats = from_data(z)
    random_start = Codebook(32, 16, decay=0.99, dead_code_threshold=0.0)
    random_start.initialised.fill_(True)
    _, _, random_stats = random_start(z)
    assert random_stats["perplexity"] < 2
    assert stats["perplexity"] > 16


def test_dead_codes_restart_where_the_data_went():
    torch.manual_seed(0)
    usage = {}
    for threshold in (1.0, 0.0):                            # 0: restarts off
        codebook = Codebook(8, 2, decay=0.5, dead_code_threshold=threshold)
        codebook(0.01 * torch.randn(1, 2, 1, 8, 8))        # initialised around the origin...
        for _ in range(5):                                  # ...then the data moves away
            _, _, stats = codebook(torch.tensor([10.0, -10.0]).view(1, 2, 1, 1, 1) + torch.randn(1, 2, 1, 8, 8))
        usage[threshold] = stats["perplexity"].item()
        assert (int(codebook.restarts) > 0) == (threshold > 0)
    assert usage[0.0] < 1.5 and usage[1.0] > 4


def codebook_rank(rank: int, port: int, results) -> None:
    """One of two Gloo ranks: the same codebook, a different batch each; the statistics after one update."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    codebook = Codebook(4, 2, decay=0.5, dead_code_threshold=0.0)
    codebook.embed.copy_(torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]]))
    codebook.embed_avg.copy_(codebook.embed)
    codebook.cluster_size.fill_(1.0)
    codebook.initialised.fill_(True)
    batch = torch.tensor([[1.0, 0], [1, 0]]) if rank == 0 else torch.tensor([[9.0, 9], [11, 11]])
    codebook.update_(batch, codebook.nearest(batch))
    results.put((rank, codebook.cluster_size.tolist(), codebook.embed_avg.tolist()))
    dist.destroy_process_group()


def test_under_ddp_every_ranks_batch_moves_the_codebook():
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    ranks = [context.Process(target=codebook_rank, args=(r, port, results)) for r in range(2)]
    for p in ranks:
        p.start()
    got = dict((rank, (sizes, sums)) for rank, sizes, sums in (results.get(timeout=60) for _ in ranks))
    for p in ranks:
        p.join(30)
    assert got[0] == got[1]                                  # the same statistics on both ranks
    sizes, sums = got[0]
    assert sizes == [1.5, 0.5, 0.5, 1.5]                      # code 0 won rank 0's two, code 3 rank 1's two
    assert sums[0] == [1.0, 0.0] and sums[3] == [15.0, 15.0]  # 0.5 * old + 0.5 * (sum of both ranks' vectors)


def test_straight_through_gradients_reach_the_encoder():
    model = VQVAE(TOKENIZER)
    _, metrics = model(torch.rand(2, 1, 8, 16, 16) * 2 - 1)
    metrics["loss"].backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0



@pytest.mark.parametrize("patch_encoder", [False, True])
def test_a_patch_encoders_code_sees_its_own_patch_only(patch_encoder):
    """Ink in one patch moves that patch's code alone with a patch encoder, so all blank patches share a code;
    the ordinary encoder's codes see their neighbours and later frames too. Neither sees earlier frames."""
    torch.manual_seed(0)
    model = VQVAE(dataclasses.replace(TOKENIZER, patch_encoder=patch_encoder))
    blank = -torch.ones(1, 1, 8, 16, 16)
    inked = blank.clone()
    inked[..., 2:4, 4:8, 4:8] = 1                           # code frame 1, patch (1, 1): 2 frames x 4 x 4 pixels
    with torch.no_grad():
        moved = (model.encoder(inked) - model.encoder(blank)).abs().sum(1)[0] > 0        # (t, h, w)
    assert moved[1, 1, 1] and not moved[0].any()
    assert moved.sum() == 1 if patch_encoder else moved.sum() > 9


# ----------------------------------------------------------------------------------------------------------
# prior

@needs_mnist
def test_prior_learns_the_codes(prior):
    _, _, losses = prior
    last = np.mean(losses[-10:])
    print(f"\nprior loss {losses[0]:.3f} -> {last:.3f} nats/token (uniform: {math.log(PRIOR.vocab_size):.3f})")
    assert abs(losses[0] - math.log(PRIOR.vocab_size)) < 0.2      # starts out knowing nothing
    assert last < losses[0] - 1.0


def test_cached_logits_equal_the_full_forward_pass():
    torch.manual_seed(0)
    gpt = GPT(PRIOR).eval()
    codes = torch.randint(PRIOR.vocab_size, (2, 4, 4, 4))
    tokens = gpt.tokens(codes)                                           # (2, 64)
    full, _ = gpt(tokens, codes.flatten(1))                              # (2, 64, V)
    cache = KVCache(PRIOR, 2)
    stepped = [gpt(tokens[:, :20], cache=cache)[0]]                      # a primer, then one token at a time
    stepped += [gpt(tokens[:, i:i + 1], cache=cache)[0] for i in range(20, 64)]
    assert cache.length == 64
    torch.testing.assert_close(torch.cat(stepped, 1), full[:, 19:], atol=1e-5, rtol=1e-5)


@needs_mnist
def test_sampling_with_the_cache_equals_sampling_without_past_the_trained_length(prior, tokenizer):
    gpt, codes, _ = prior
    gpt = copy.deepcopy(gpt).double()           # float64: the two paths round differently in float32
    primer = codes[:2, :1]                      # the first code frame of two clips
    frames = 2 * PRIOR.code_frames              # twice the trained length: the window slides 4 times
    runs = {}
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(7)
        runs[use_cache] = torch.stack(list(sample(gpt, primer, frames, temperature=0.9, top_k=20, top_p=0.95,
                                                  generator=generator, use_cache=use_cache)), 1)
    assert runs[True].shape == (2, frames - 1, 4, 4)
    assert torch.equal(runs[True], runs[False])
    video = tokenizer[0].decode(torch.cat([primer, runs[True]], 1))
    assert video.shape == (2, 1, 2 * TOKENIZER.clip_frames, 16, 16)
    assert video.min() >= -1 and video.max() <= 1


def test_class_conditioned_prior_needs_its_labels():
    gpt = GPT(PriorConfig(n_layer=1, n_head=2, n_embd=16, n_classes=3).for_tokenizer(TOKENIZER)).eval()
    codes = torch.randint(TOKENIZER.codebook_size, (2, 4, 4, 4))
    labels = torch.tensor([0, 2])
    tokens = gpt.tokens(codes, labels)
    assert tokens[:, 0].tolist() == [32, 34]
    with pytest.raises(ValueError, match="labels"):
        gpt.tokens(codes)
    frame = next(sample(gpt, codes[:, :0], 1, labels=labels, generator=torch.Generator().manual_seed(0)))
    assert frame.shape == (2, 4, 4)


# ----------------------------------------------------------------------------------------------------------
# reading clips

def test_fitting_scales_the_shorter_side_and_crops_the_centre():
    frames = torch.zeros(3, 3, 48, 64, dtype=torch.uint8)
    frames[:, :, :, 24:40] = 255                                  # a white band down the middle
    fitted = fit_frames(frames, 12)                               # 48x64 -> 12x16 -> the middle 12x12
    assert fitted.shape == (3, 3, 12, 12)
    row = fitted[0, 0, 0].tolist()
    assert row == row[::-1] and row[:3] == [0, 0, 0] and row[5:7] == [255, 255]


def test_resampling_drops_and_repeats_the_nearest_frames():
    times = np.arange(30) / 30 + 0.001 * np.sin(np.arange(30))     # 1 s at 30 fps, jittered timestamps
    assert nearest_frames(times, 30, 10).tolist() == list(range(0, 30, 3))
    assert nearest_frames(times, 30, 30).tolist() == list(range(30))
    assert nearest_frames(times[:3], 30, 60).tolist() == [0, 0, 1, 1, 2, 2]


def test_a_folder_with_nothing_usable_names_its_files(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "broken.mkv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CorpusError, match="empty.mp4") as error:
        read_clips(tmp_path, TOKENIZER)
    assert "broken.mkv" in str(error.value)
    with pytest.raises(CorpusError, match="does not exist"):
        read_clips(tmp_path / "nowhere", TOKENIZER)


def write_video(path: Path, frames: np.ndarray, fps: int, codec: str, pix_fmt: str) -> Path:
    """(T, H, W, 3) uint8 frames encoded with PyAV."""
    import av
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_videos_are_read_and_broken_files_named_and_skipped(tmp_path):
    pytest.importorskip("av", reason="reading videos needs PyAV (pip install av)")
    # a bright square sweeping right over 24 frames at 24 fps
    frames = np.zeros((24, 48, 64, 3), np.uint8)
    for i in range(24):
        frames[i, 16:32, 2 * i:2 * i + 16] = 255
    write_video(tmp_path / "sweep.mp4", frames, 24, "libx264", "yuv420p")
    write_video(tmp_path / "sweep.mkv", frames, 24, "ffv1", "yuv444p")
    write_video(tmp_path / "sweep.gif", frames, 24, "gif", "rgb8")
    write_video(tmp_path / "short.mp4", frames[:5], 24, "mpeg4", "yuv420p")
    (tmp_path / "empty.webm").write_bytes(b"")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (tmp_path / "notes.txt").write_text("not a video\n" * 20)
    config = TokenizerConfig(frame_size=16, clip_frames=4, fps=12)
    found = read_clips(tmp_path, config)
    # each 1 s sweep at 12 fps: 12 frames, 3 clips of 4
    assert found.clips.shape == (9, 3, 4, 16, 16)
    assert found.facts == {"clips": 9, "frames": 36, "fps": 12.0, "resolution": [16, 16], "sources": 3,
                           "skipped": 4}
    reasons = "\n".join(found.skipped)
    for name, why in [("empty.webm", "empty"), ("broken.mp4", "PyAV can decode"), ("notes.txt", "not a video"),
                      ("short.mp4", "too short")]:
        assert any(line.startswith(name) and why in line for line in found.skipped), reasons
    assert "sweep.mp4: 64x48, 24 frames at 24 fps -> scaled to 21x16, cropped to 16x16, 12 frames at 12 fps -> " \
           "3 clip(s)" in found.lines, found.lines
    # the square moves right: its brightest column advances through each clip
    column = found.clips[0, 0].float().mean(1).argmax(-1)            # (T,)
    assert (column[1:] >= column[:-1]).all() and column[-1] > column[0]


@pytest.mark.skipif(not ASL.exists(), reason=f"the sample videos are not in {ASL}")
def test_real_videos_become_clips():
    pytest.importorskip("av", reason="reading videos needs PyAV (pip install av)")
    found = read_clips(ASL, TokenizerConfig(frame_size=32, clip_frames=8, fps=10))
    assert found.facts["sources"] == 20 and found.facts["fps"] == 10.0 and found.facts["resolution"] == [32, 32]
    assert found.clips.shape[1:] == (3, 8, 32, 32) and found.facts["clips"] == len(found.clips) >= 40
    assert {line.split(":")[0] for line in found.skipped} == {"LICENSE_CC-BY-4.0.txt", "README_upstream.md"}
    assert found.clips.float().std() > 10                             # pictures, not blank frames


def test_image_sequences_are_read_in_natural_order(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="reading image sequences needs Pillow (pip install Pillow)")
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    for i in range(1, 13):                                            # frame1 .. frame12, brighter each time
        Image.fromarray(np.full((20, 30, 3), 20 * i, np.uint8)).save(tmp_path / "good" / f"frame{i}.png")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "bad" / "a.png")
    (tmp_path / "bad" / "b.png").write_bytes(b"")
    found = read_clips(tmp_path, TokenizerConfig(frame_size=8, clip_frames=4, channels=1))
    assert found.clips.shape == (3, 1, 4, 8, 8) and found.fps == 10.0
    assert found.clips[:, 0, :, 0, 0].flatten().tolist() == [20 * i for i in range(1, 13)]
    assert found.skipped == ["bad/ (2 images): b.png is not an image Pillow can read"]


def test_sixteen_bit_images_are_scaled_and_a_sequence_of_several_sizes_is_named(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="reading image sequences needs Pillow (pip install Pillow)")
    (tmp_path / "deep").mkdir()
    (tmp_path / "mixed").mkdir()
    for i in range(1, 5):                                             # 16-bit greys, 1/5 .. 4/5 of full scale
        Image.fromarray(np.full((16, 16), 13107 * i, np.uint16)).save(tmp_path / "deep" / f"f{i}.png")
    for i, size in enumerate([(16, 16), (16, 16), (40, 12), (16, 16)]):
        Image.fromarray(np.zeros(size[::-1], np.uint8)).save(tmp_path / "mixed" / f"m{i}.png")
    found = read_clips(tmp_path, TokenizerConfig(frame_size=8, clip_frames=4, channels=1))
    assert found.clips[0, 0, :, 0, 0].tolist() == [51, 102, 153, 204]
    assert found.skipped == ["mixed/ (4 images): its images differ in size (16x16 (m0.png), 40x12 (m2.png)): the "
                             "frames of a sequence must match; put each clip's frames in a folder of its own"]

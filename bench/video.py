"""Video engine benchmark: generation speed (seconds per 16-frame clip, tokens/s against the weight-bandwidth
bound, first-frame latency, the cost of each frame past the trained length) and, given a trained run, its
quality: tokenizer PSNR / SSIM / codebook use on held-out clips, the prior's held-out bits per token, both
against training time, where those bits go (by code frame, black patches against ink), and 10 -> 10 frame
prediction on held-out moving digits beside OpenSTL's figures.
Prints tables, writes bench/results/video.json.

    python bench/video.py                                  # speed only, a model of the digits preset's shape
    python bench/video.py --run /work/runs/video-bundled   # and the quality of a trained run
    python bench/video.py --run DIR --clips 20             # fewer prediction clips (default 100)
    python bench/video.py --run DIR --skip-speed           # the quality alone -> video-quality-<DIR's name>.json
    python bench/video.py --run DIR --temperatures 1 0.8 0.6   # the prediction at each sampling temperature

Speeds are batch 1 with 1 and 2 torch threads, each in its own subprocess. Take them on an idle machine: a
background training run halves them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
PRESET = "digits"
# OpenSTL (Tan et al. 2023), Moving MNIST 64x64, 10 -> 10 frames: MSE per frame (sum over pixels in [0, 1]), SSIM
OPENSTL = {"ConvLSTM": (46.3, 0.878), "PredRNN": (25.0, 0.944)}


def child(function: str, *args) -> dict:
    threads = args[0] if function == "speed" else 1
    out = subprocess.run([sys.executable, __file__, "--child", function, *map(str, args)], capture_output=True,
                         text=True, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def random_model():
    """A prior (with its tokenizer) of the digits preset's shape, random weights: speed does not depend on them."""
    import torch
    from engines.core.frozen import Frozen
    from engines.video import VideoEngine
    from engines.video.config import PriorConfig, TokenizerConfig
    engine = VideoEngine()
    recipe = engine.preset(PRESET).stages
    torch.manual_seed(0)
    tokenizer = engine.build_model(engine.stage("tokenizer"), TokenizerConfig(**recipe["tokenizer"].model), {})
    prior = engine.build_model(engine.stage("prior"), PriorConfig(**recipe["prior"].model), {}, Frozen(tokenizer))
    return engine, prior.eval(), {"corpus": {"fps": 10.0}}


def memory_bandwidth() -> float:
    """Bytes per second a copy of 256 MB moves (read + write), the best of three."""
    import numpy as np
    a = np.ones(32 << 20)
    b = np.empty_like(a)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best


# ----------------------------------------------------------------------------------------------------------
# measurements (each in a child process)

def measure_speed(threads: int) -> dict:
    import torch
    from engines.core.interface import resolve_settings
    from engines.video.chunks import VideoChunk
    from engines.video.prior import sample
    torch.set_num_threads(int(threads))
    engine, model, meta = random_model()
    c, gpt = model.tokenizer.module.config, model.gpt
    frames = c.clip_frames
    settings = resolve_settings(engine.controls(), {"frames": 3 * frames, "seed": 0})
    list(engine.generate(model, meta, {**settings, "frames": 4}))                        # warm up
    t0 = time.perf_counter()
    stamps = []
    for chunk in engine.generate(model, meta, settings):
        if isinstance(chunk, VideoChunk):
            stamps += [time.perf_counter() - t0] * chunk.frames.shape[1]
    per_frame = [b - a for a, b in zip([0.0] + stamps[:-1], stamps)]

    def mean(xs):
        return sum(xs) / len(xs)

    tokens = c.code_shape[1] * c.code_shape[2] * math.ceil(frames / c.time_downsample)
    empty = torch.zeros(1, 0, *c.code_shape[1:], dtype=torch.long)
    rates = {}
    for cached in (True, False):
        t0 = time.perf_counter()
        for _ in sample(gpt, empty, c.code_shape[0], generator=torch.Generator().manual_seed(0), use_cache=cached):
            pass
        rates[cached] = tokens / (time.perf_counter() - t0)
    weight_bytes = sum(p.numel() * p.element_size() for p in gpt.parameters())
    return {"threads": int(threads), "seconds_per_clip": stamps[frames - 1], "clip_frames": frames,
            "first_frame_seconds": stamps[0], "tokens_per_clip": tokens,
            "seconds_per_frame": {f"frames 1-{frames}": mean(per_frame[:frames]),
                                  f"frames {frames + 1}-{2 * frames}": mean(per_frame[frames:2 * frames]),
                                  f"frames {2 * frames + 1}-{3 * frames}": mean(per_frame[2 * frames:])},
            "cached_tokens_per_second": rates[True], "uncached_tokens_per_second": rates[False],
            "gpt_weight_bytes": weight_bytes, "bandwidth_bytes_per_second": memory_bandwidth()}


def measure_quality(run: str, clips: int, temperatures: list[float]) -> dict:
    import numpy as np
    import torch
    from engines.core.checkpoint import read_meta
    from engines.core.interface import resolve_settings
    from engines.core.trainer import load_model
    from engines.video import VideoEngine
    from engines.video.corpus import DIGITS_PER_CLIP, MovingDigitsCorpus, as_floats
    from engines.video.data import CANVAS, bouncing_digits, fit_frames
    from engines.video.prior import sample
    from engines.video.vqvae import ssim
    torch.set_num_threads(1)
    engine = VideoEngine()
    model, header = load_model(engine, run, "cpu")
    tokenizer, gpt = model.tokenizer.module, model.gpt
    c = tokenizer.config
    out = {"run": run, "curves": {}}
    for stage in ("tokenizer", "prior"):
        if not (Path(run) / stage).is_dir():    # a fine-tuned run: its tokenizer is the one its prior started on
            continue
        meta = read_meta(Path(run) / stage / "last.safetensors")
        history = meta["history"]
        scale = 1 / math.log(2) if stage == "prior" else 1.0
        # runs saved before checkpoints kept each validation's metrics have none: their points carry {}
        metrics = [{}] * (len(history["val_steps"]) - len(history.get("val_metrics", []))) + \
            history.get("val_metrics", [])
        out["curves"][stage] = {"unit": "bits/token" if stage == "prior" else "MSE", "step": meta["step"],
                                "points": [[round(t / 60, 1), s, v * scale, m] for t, s, v, m in
                                           zip(history["val_times"], history["val_steps"], history["val_losses"],
                                               metrics)]}
    # the tokenizer on the held-out clips
    digits = MovingDigitsCorpus(c, 0.1)
    video = as_floats(digits.val)
    decoded = torch.cat([tokenizer.decode(tokenizer.encode(video[i:i + 16])) for i in range(0, len(video), 16)])
    codes = torch.cat([tokenizer.encode(video[i:i + 16]) for i in range(0, len(video), 16)])
    a, b = (video + 1) / 2, (decoded + 1) / 2
    mse = (a - b).pow(2).flatten(1).mean(1)
    used = torch.bincount(codes.flatten(), minlength=c.codebook_size)
    p = used.double() / used.sum()
    out["tokenizer"] = {"clips": len(video), "psnr_db": float((10 * torch.log10(1 / mse)).mean()),
                        "ssim": float(ssim(a.flatten(0, 2), b.flatten(0, 2)).mean()),
                        "codes_used": int((used > 0).sum()), "codebook_size": c.codebook_size,
                        "perplexity": float(torch.exp(-(p * torch.log(p + 1e-12)).sum()))}
    out["where_the_bits_go"] = where_the_bits_go(gpt, video[:64], codes[:64], c)
    # 10 -> 10 prediction on held-out digits, clips of 20 frames (past the trained length: the window slides)
    rng = np.random.default_rng(1)
    raw = torch.from_numpy(bouncing_digits(digits.val_digits, clips, 20, DIGITS_PER_CLIP, rng))
    truth = fit_frames(raw.view(-1, 1, CANVAS, CANVAS), c.frame_size).view(clips, 20, c.frame_size, c.frame_size)
    truth = truth.float() / 255
    # at each temperature (by default the app's) the same clips and seeds, and the app's other sampling defaults
    settings = resolve_settings(engine.controls(), {"seed": 0})
    out["prediction"] = []
    for temperature in temperatures or [settings["temperature"]]:
        results = {1: [], 8: []}
        t0 = time.perf_counter()
        for i in range(clips):
            primer = as_floats((truth[i, :10] * 255).round().to(torch.uint8))[None, None]   # (1, 1, 10, S, S)
            start = tokenizer.encode(primer.expand(8, -1, -1, -1, -1).contiguous())
            new = torch.stack(list(sample(gpt, start, 20 // c.time_downsample, temperature=temperature,
                                          top_k=settings["top_k"], top_p=settings["top_p"],
                                          generator=torch.Generator().manual_seed(i))), 1)
            clip = tokenizer.decode(torch.cat([start, new], 1))[:, 0, 10:20]              # (8, 10, S, S)
            guess = (clip + 1) / 2
            per_sample = (guess - truth[i, 10:]).pow(2).sum(dim=(2, 3)).mean(1)           # (8,) MSE per frame
            s = ssim(guess.flatten(0, 1), truth[i, 10:].repeat(8, 1, 1)).view(8, 10).mean(1)
            results[1].append((float(per_sample[0]), float(s[0])))
            best = int(per_sample.argmin())
            results[8].append((float(per_sample[best]), float(s[best])))
        out["prediction"].append({"temperature": temperature, "clips": clips, "seconds": time.perf_counter() - t0, **{
            f"best_of_{k}": {"mse_per_frame": float(np.mean([r[0] for r in v])),
                             "ssim": float(np.mean([r[1] for r in v]))} for k, v in results.items()}})
    out["prior"] = {"val_bits_per_token": header["metrics"]["val_metrics"].get("bits", [None])[0],
                    "val_bits_per_pixel": header["metrics"]["val_metrics"].get("bits_per_pixel", [None])[0],
                    "step": header["step"], "started_from": header.get("started_from")}
    return out


def where_the_bits_go(gpt, video, codes, c) -> dict:
    """Where the prior's held-out bits are spent: per code frame (do later frames, with history, cost less?),
    with the history swapped for another clip's (does it use it?), and on the codes of all-black patches (most
    of a moving-digits frame) against the codes of patches with ink."""
    import torch
    import torch.nn.functional as F
    bits = math.log(2)

    def per_token(codes):
        with torch.no_grad():
            logits, _ = gpt(gpt.tokens(codes), codes.flatten(1))
        return F.cross_entropy(logits.flatten(0, 1), codes.flatten(), reduction="none").view(codes.shape) / bits

    own = per_token(codes)
    half = codes.shape[1] // 2
    swapped = codes.clone()
    swapped[:, :half] = codes.roll(1, dims=0)[:, :half]
    pixels = (video[:, 0] + 1) / 2                                              # (N, T, H, W) in [0, 1]
    n, t, h, w = codes.shape
    patch = pixels.reshape(n, t, -1, h, pixels.shape[2] // h, w, pixels.shape[3] // w).amax(dim=(2, 4, 6))
    black = patch < 0.1                                                         # the code's pixels all near black
    used = torch.bincount(codes[black], minlength=c.codebook_size).double()
    p = used[used > 0] / used.sum()
    return {"clips": n, "bits_per_code_frame": own.mean(dim=(0, 2, 3)).tolist(),
            "bits_per_code_frame_history_swapped": per_token(swapped).mean(dim=(0, 2, 3)).tolist(),
            "black_share": float(black.float().mean()), "black_codes_used": int((used > 0).sum()),
            "black_code_entropy_bits": float(-(p * p.log2()).sum()),
            "bits_per_token_black": float(own[black].mean()), "bits_per_token_ink": float(own[~black].mean())}


# ----------------------------------------------------------------------------------------------------------

def print_speed(speed: list[dict]) -> None:
    print("\ngeneration, batch 1 (digits preset shape: 64x64, 16 frames, 2x8x8 codes, GPT 4x256)")
    print(f"{'threads':>7} {'s/clip':>7} {'1st frame s':>11} {'tok/s':>7} {'uncached':>8} {'bound tok/s':>11}  "
          f"s/frame (frames 1-16 | 17-32 | 33-48)")
    for s in speed:
        bound = s["bandwidth_bytes_per_second"] / s["gpt_weight_bytes"]
        per = " | ".join(f"{v:.3f}" for v in s["seconds_per_frame"].values())
        print(f"{s['threads']:>7} {s['seconds_per_clip']:>7.2f} {s['first_frame_seconds']:>11.3f} "
              f"{s['cached_tokens_per_second']:>7.0f} {s['uncached_tokens_per_second']:>8.0f} {bound:>11.0f}  {per}")


def report(speed: list[dict], quality: dict | None, machine_line: str) -> None:
    print(machine_line)
    if speed:
        print_speed(speed)
    if not quality:
        print("\nquality: pass --run DIR (a trained run) for the tokenizer, prior and prediction numbers")
        return
    t = quality["tokenizer"]
    print(f"\ntokenizer on {t['clips']} held-out clips: PSNR {t['psnr_db']:.2f} dB, SSIM {t['ssim']:.3f}, "
          f"{t['codes_used']}/{t['codebook_size']} codes used (perplexity {t['perplexity']:.0f})")
    started_from = quality["prior"].get("started_from")
    if started_from:
        print(f"the prior was fine-tuned from {started_from['file']} (step {started_from['step']}); its curve "
              f"starts there")
    for stage, curve in quality["curves"].items():
        print(f"{stage} held-out {curve['unit']} against training time (minutes, step, value):")
        print("   " + "  ".join(f"{m:g}m/{s}: {v:.4f}" for m, s, v, _ in curve["points"]))
        if stage == "tokenizer" and any("ssim" in m for *_, m in curve["points"]):
            print("   PSNR dB / SSIM: " + "  ".join(f"{t:g}m: {m['psnr']:.2f}/{m['ssim']:.3f}"
                                                  for t, _, _, m in curve["points"] if "ssim" in m))
    b = quality.get("where_the_bits_go")
    if b:
        print(f"\nwhere the prior's bits go ({b['clips']} held-out clips): bits/token by code frame "
              + " ".join(f"{v:.2f}" for v in b["bits_per_code_frame"]) + "; with the first half's codes from "
              "another clip " + " ".join(f"{v:.2f}" for v in b["bits_per_code_frame_history_swapped"]))
        print(f"   all-black patches: {b['black_share']:.0%} of the codes, {b['black_codes_used']} distinct codes "
              f"({b['black_code_entropy_bits']:.2f} bits of entropy), {b['bits_per_token_black']:.2f} bits/token "
              f"for the prior, against {b['bits_per_token_ink']:.2f} on patches with ink")
    predictions = quality["prediction"]
    print(f"\n10 -> 10 prediction on {predictions[0]['clips']} held-out moving-digits clips (MSE per frame, SSIM):")
    for name, (mse, s) in OPENSTL.items():
        print(f"   {name:<31} {mse:>6.1f}  {s:.3f}   (OpenSTL)")
    for p in predictions:
        for k in (1, 8):
            r, name = p[f"best_of_{k}"], f"this model, T {p['temperature']:g}, best of {k}"
            print(f"   {name:<31} {r['mse_per_frame']:>6.1f}  {r['ssim']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a trained video run folder (its prior stage) to measure quality on")
    parser.add_argument("--clips", type=int, default=100, help="held-out clips for the 10 -> 10 prediction")
    parser.add_argument("--temperatures", type=float, nargs="+",
                        help="sampling temperatures the 10 -> 10 prediction is measured at (default: the app's)")
    parser.add_argument("--skip-speed", action="store_true", help="only the run's quality (needs --run)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if (args.skip_speed or args.temperatures) and not args.run:
        parser.error("--skip-speed and --temperatures measure a run's quality: name the run with --run")
    if args.child:
        function, *rest = args.child
        result = measure_speed(*rest) if function == "speed" else \
            measure_quality(rest[0], int(rest[1]), [float(t) for t in rest[2:]])
        print(json.dumps(result))
        return
    from machine import describe, machine
    m = machine()
    speed = [] if args.skip_speed else [child("speed", threads) for threads in (1, 2)]
    quality = child("quality", args.run, args.clips, *(args.temperatures or [])) if args.run else None
    report(speed, quality, describe(m))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"video-quality-{Path(args.run).name}.json" if args.skip_speed else "video.json")
    out.write_text(json.dumps({"machine": m, "speed": speed, "quality": quality, "openstl": OPENSTL}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

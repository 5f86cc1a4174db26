"""Text engine benchmark: quality against wall-clock time, training throughput, sampling speed against
its memory-bandwidth bound, first-character latency and peak memory. Prints a table, writes JSON.

    python bench/text.py                      # everything; trains the default preset for 30 and 5 minutes
    python bench/text.py --run DIR            # reuse a finished 30-minute run for the quality numbers
    python bench/text.py --skip-quality       # speed, memory and validation cost only (~8 minutes)

Corpus: ../shared/data/text/tinyshakespeare/input.txt, last 10% held out (as nanoGPT does).
Every measurement runs in its own subprocess so thread counts and peak memory are its own.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"
RESULTS = ROOT / "bench" / "results"
CORPUS_SIZES_MB = (1, 20, 200)      # validation cost against corpus size


def child(function: str, *args) -> dict:
    """Run one measurement below in a fresh interpreter; it prints one JSON line."""
    out = subprocess.run([sys.executable, __file__, "--child", function, *map(str, args)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------------
# measurements (each in a child process)


def measure_training(preset: str, threads: int, steps: int = 7) -> dict:
    import torch
    from engines.core.device import autocast_dtype
    from engines.core.trainer import make_optimizer
    from engines.text import TextEngine
    from engines.text.config import TextModelConfig
    torch.set_num_threads(threads)
    engine = TextEngine()
    stage = engine.stage()
    p = engine.preset(preset).stages[stage.name]
    corpus = engine.read_corpus(SHAKESPEARE)
    model = engine.build_model(stage, TextModelConfig(**p.model), corpus.meta)
    optimizer = make_optimizer(model, p.train)
    amp = autocast_dtype(torch.device("cpu"), p.train.precision)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = corpus.batch(p.train.batch_size, p.train.seq_len, gen)
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            loss = engine.loss(model, batch, stage).value
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    per_step = sorted(times[2:])[len(times[2:]) // 2]
    return {"preset": preset, "threads": threads, "chars_per_second": p.train.batch_size * p.train.seq_len / per_step,
            "precision": str(amp or "fp32"), "peak_rss_mb": peak_rss_mb()}


def gemv_bandwidth(n_bytes: int, threads: int) -> float:
    """Bytes/s one matrix-vector product of this many fp32 weights achieves: the bound's bandwidth."""
    import torch
    torch.set_num_threads(threads)
    cols = 1024
    matrix = torch.randn(max(1, n_bytes // 4 // cols), cols)
    vector = torch.randn(cols)
    for _ in range(10):
        torch.mv(matrix, vector)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            torch.mv(matrix, vector)
        best = min(best, (time.perf_counter() - t0) / 20)
    return matrix.numel() * 4 / best


def measure_sampling(checkpoint: str, threads: int, variations: int, length: int = 3000) -> dict:
    import torch
    from engines.core.interface import resolve_settings
    from engines.core.trainer import load_model
    from engines.text import TextEngine
    from engines.text.model import Stepper
    torch.set_num_threads(threads)
    engine = TextEngine()
    model, meta = load_model(engine, checkpoint, "cpu")
    settings = resolve_settings(engine.controls(), {"length": length, "variations": variations, "seed": 0})
    t0 = time.perf_counter()
    stream = engine.generate(model, meta, settings)
    next(stream)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 1 + sum(1 for _ in stream)
    rate = (n - 1) * variations / (time.perf_counter() - t1)
    all_weights = sum(p.numel() * p.element_size() for name, p in model.named_parameters() if not name.startswith("emb"))
    read = Stepper(model, 1).weight_bytes()
    bandwidth = gemv_bandwidth(all_weights, threads)
    return {"threads": threads, "variations": variations, "chars_per_second": rate, "first_char_ms": first * 1000,
            "weight_bytes": all_weights, "weight_bytes_read_per_char": read,
            "bandwidth_gb_s": bandwidth / 1e9, "bound_chars_per_second": bandwidth / all_weights,
            "bound_of_bytes_read_chars_per_second": bandwidth / read,
            "peak_rss_mb": peak_rss_mb()}


def measure_heldout(checkpoint: str) -> dict:
    from engines.core.trainer import load_model, validation
    from engines.text import TextEngine
    engine = TextEngine()
    model, meta = load_model(engine, checkpoint, "cpu")
    corpus = engine.read_corpus(SHAKESPEARE, 0.1, meta["corpus"])
    for tally in validation(engine, model, corpus, engine.stage(), 64, 512, None):   # the whole held-out 10%
        pass
    return {"heldout_nats_per_char": tally.loss, "step": meta["step"], "checkpoint": checkpoint}


def corpus_of_size(mb: int) -> Path:
    """Tiny Shakespeare repeated to `mb` MB (made once, outside the repo)."""
    path = RESULTS / "corpora" / f"shakespeare-{mb}mb.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = SHAKESPEARE.read_text(encoding="utf-8")
        path.write_text((text * (mb * 10**6 // len(text) + 1))[: mb * 10**6], encoding="utf-8")
    return path


def measure_validation(mb: int) -> dict:
    """Reading a corpus, then one validation of the tiny preset as the trainer runs it (on its budget)."""
    import torch
    from engines.core.trainer import validation
    from engines.text import TextEngine
    from engines.text.config import TextModelConfig
    torch.set_num_threads(1)
    engine, path = TextEngine(), corpus_of_size(mb)
    stage, recipe = engine.stage(), engine.preset("tiny").stages["model"]
    t0 = time.perf_counter()
    corpus = engine.read_corpus(path)
    read = time.perf_counter() - t0
    model = engine.build_model(stage, TextModelConfig(**recipe.model), corpus.meta).eval()
    t0 = time.perf_counter()
    for tally in validation(engine, model, corpus, stage, recipe.train.batch_size, recipe.train.seq_len,
                            recipe.train.val_units):
        pass
    return {"corpus_mb": mb, "read_seconds": read, "validation_seconds": time.perf_counter() - t0,
            "validation_chars": tally.units, "held_out_chars": len(corpus.val), "peak_rss_mb": peak_rss_mb()}


def cli_training(mb: int) -> dict:
    """The user's command on a big corpus: `studio train text --preset tiny --steps 3`, wall time and peak
    memory of the whole process."""
    import shutil
    import tempfile
    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "studio", "train", "text", "--data", corpus_of_size(mb), "--preset",
                    "tiny", "--steps", "3", "--out", out / "run"], check=True, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out)
    return {"corpus_mb": mb, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


# ----------------------------------------------------------------------------------------------------
# the report


def train_run(out: Path, minutes: float) -> Path:
    """The documented command that builds the bundled model, with a time budget."""
    if not (out / "last.safetensors").exists():
        subprocess.run([sys.executable, "-m", "studio", "train", "text", "--data", SHAKESPEARE, "--preset", "small",
                        "--minutes", str(minutes), "--out", out, "--no-preview"], check=True, cwd=ROOT)
    return out


def quality(run: Path | None, minutes: float) -> dict:
    """The default preset given 30 minutes (its curve against wall-clock time), and given 5 minutes (the
    schedule fitted to that budget, as `--minutes 5` does for a user in a hurry)."""
    from engines.core.checkpoint import read_meta
    run = train_run(run or RESULTS / "runs" / "text-small", minutes)
    short = train_run(RESULTS / "runs" / "text-small-5min", 5)
    meta, short_meta = read_meta(run / "last.safetensors"), read_meta(short / "last.safetensors")
    h = meta["history"]
    curve = [{"minutes": t / 60, "step": s, "val_loss": v} for t, s, v in zip(h["val_times"], h["val_steps"], h["val_losses"])]
    return {"run": str(run), "curve": curve, "minutes_trained": meta["elapsed_seconds"] / 60, "steps": meta["step"],
            "best_val_loss": meta["metrics"]["best_val_loss"],
            "five_minute_run": {"run": str(short), "step": short_meta["step"],
                                "best_val_loss": short_meta["metrics"]["best_val_loss"],
                                "minutes_trained": short_meta["elapsed_seconds"] / 60},
            **child("heldout", run / "best.safetensors")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a finished training run to report instead of training anew")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--checkpoint", default=None, help="model for the sampling numbers (default: bundled)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        function, *rest = args.child
        result = {"training": lambda: measure_training(rest[0], int(rest[1])),
                  "sampling": lambda: measure_sampling(rest[0], int(rest[1]), int(rest[2])),
                  "heldout": lambda: measure_heldout(rest[0]),
                  "validation": lambda: measure_validation(int(rest[0])),
                  "cli": lambda: cli_training(int(rest[0]))}[function]()
        print(json.dumps(result))
        return
    if not SHAKESPEARE.exists():
        raise SystemExit(f"needs {SHAKESPEARE} (the shared data sets beside the repo)")

    from engines.text import TextEngine
    checkpoint = args.checkpoint or str(TextEngine().bundled_models()[0])
    from machine import describe, machine
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(describe(report["machine"]))
    if not args.skip_quality:
        report["quality"] = quality(args.run, args.minutes)
    report["training"] = [child("training", preset, threads) for preset in ("tiny", "small", "large") for threads in (1, 2)]
    report["sampling"] = [child("sampling", checkpoint, threads, variations)
                          for threads, variations in ((1, 1), (2, 1), (2, 8))]
    report["validation_cost"] = [child("validation", mb) for mb in CORPUS_SIZES_MB]
    report["cli_tiny_3_steps"] = [child("cli", mb) for mb in CORPUS_SIZES_MB]

    print("\n== quality (default preset 'small', Tiny Shakespeare, last 10% held out) ==")
    if "quality" in report:
        q = report["quality"]
        print(f"{'minutes':>8} {'step':>6} {'val loss':>9}")
        for p in q["curve"]:
            print(f"{p['minutes']:8.1f} {p['step']:6d} {p['val_loss']:9.4f}")
        five = q["five_minute_run"]
        print(f"30-minute run: best validation {q['best_val_loss']:.4f} after {q['minutes_trained']:.1f} min "
              f"({q['steps']} steps); held-out of its best checkpoint in fp32: {q['heldout_nats_per_char']:.4f} nats/char")
        print(f" 5-minute run: best validation {five['best_val_loss']:.4f} after {five['minutes_trained']:.1f} min "
              f"({five['step']} steps)")
    print("\n== training throughput (chars/s) ==")
    print(f"{'preset':8} {'1 thread':>10} {'2 threads':>10} {'peak MB':>8}")
    for preset in ("tiny", "small", "large"):
        rows = {r["threads"]: r for r in report["training"] if r["preset"] == preset}
        print(f"{preset:8} {rows[1]['chars_per_second']:10,.0f} {rows[2]['chars_per_second']:10,.0f} "
              f"{max(r['peak_rss_mb'] for r in rows.values()):8.0f}")
    print(f"\n== sampling ({Path(checkpoint).name}) ==")
    print("bound = gemv bandwidth / all weight bytes, per step (a batch shares one read of the weights);")
    print("the stepper reads fewer bytes (layer 1's input product is a table lookup): 'bound*' uses those")
    print(f"{'threads':>7} {'batch':>5} {'chars/s':>9} {'bound':>7} {'of bound':>8} {'bound*':>7} {'of bound*':>9} "
          f"{'GB/s':>6} {'first ms':>8} {'peak MB':>8}")
    for r in report["sampling"]:
        steps = r["chars_per_second"] / r["variations"]
        print(f"{r['threads']:7d} {r['variations']:5d} {r['chars_per_second']:9,.0f} {r['bound_chars_per_second']:7,.0f} "
              f"{steps / r['bound_chars_per_second']:8.0%} {r['bound_of_bytes_read_chars_per_second']:7,.0f} "
              f"{steps / r['bound_of_bytes_read_chars_per_second']:9.0%} {r['bandwidth_gb_s']:6.1f} "
              f"{r['first_char_ms']:8.1f} {r['peak_rss_mb']:8.0f}")
    print("\n== validation cost against corpus size (preset tiny, 1 thread; a validation reads val_units chars) ==")
    print(f"{'corpus MB':>9} {'read s':>7} {'held out':>12} {'validated':>10} {'validation s':>12} {'peak MB':>8} "
          f"{'CLI 3 steps s':>13} {'CLI peak MB':>11}")
    for v, c in zip(report["validation_cost"], report["cli_tiny_3_steps"]):
        print(f"{v['corpus_mb']:9d} {v['read_seconds']:7.1f} {v['held_out_chars']:12,} {v['validation_chars']:10,} "
              f"{v['validation_seconds']:12.2f} {v['peak_rss_mb']:8.0f} {c['seconds']:13.1f} {c['peak_rss_mb']:11.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS / 'text.json'}")


if __name__ == "__main__":
    main()

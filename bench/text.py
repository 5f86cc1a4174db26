"""Text engine benchmark: quality against wall-clock time, training throughput, sampling speed against
its memory-bandwidth bound, first-character latency and peak memory. Prints a table, writes JSON.

    python bench/text.py                      # everything; trains the default preset for 30 and 5 minutes
    python bench/text.py --run DIR            # reuse a finished 30-minute run for the quality numbers
    python bench/text.py --skip-quality       # speed and memory only (~5 minutes)

Corpus: ../shared/data/text/tinyshakespeare/input.txt, last 10% held out (as nanoGPT does).
Every measurement runs in its own subprocess so thread counts and peak memory are its own.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"
RESULTS = ROOT / "bench" / "results"


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
    from engines.core.interface import config_from_dict
    from engines.core.trainer import make_optimizer
    from engines.text import TextEngine
    torch.set_num_threads(threads)
    engine = TextEngine()
    p = engine.preset(preset)
    corpus = engine.read_corpus(SHAKESPEARE)
    model = engine.build_model(config_from_dict(engine.model_config_class, p.model, "preset"), corpus.meta)
    optimizer = make_optimizer(model, p.train)
    amp = autocast_dtype(torch.device("cpu"), p.train.precision)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = corpus.batch(p.train.batch_size, p.train.seq_len, gen)
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            loss = engine.loss(model, batch)
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
    import torch
    from engines.core.trainer import load_model
    from engines.text import TextEngine
    engine = TextEngine()
    model, meta = load_model(engine, checkpoint, "cpu")
    corpus = engine.read_corpus(SHAKESPEARE, 0.1, meta["corpus"])
    with torch.no_grad():
        loss = engine.evaluate(model, corpus, 64, 512)
    return {"heldout_nats_per_char": loss, "step": meta["step"], "checkpoint": checkpoint}


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
                  "heldout": lambda: measure_heldout(rest[0])}[function]()
        print(json.dumps(result))
        return
    if not SHAKESPEARE.exists():
        raise SystemExit(f"needs {SHAKESPEARE} (the shared data sets beside the repo)")

    from engines.text import TextEngine
    checkpoint = args.checkpoint or str(TextEngine().bundled_models()[0])
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d %H:%M")}
    if not args.skip_quality:
        report["quality"] = quality(args.run, args.minutes)
    report["training"] = [child("training", preset, threads) for preset in ("tiny", "small", "large") for threads in (1, 2)]
    report["sampling"] = [child("sampling", checkpoint, threads, variations)
                          for threads, variations in ((1, 1), (2, 1), (2, 8))]

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
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS / 'text.json'}")


if __name__ == "__main__":
    main()

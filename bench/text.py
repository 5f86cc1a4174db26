"""Text engine benchmark: quality against wall-clock time, training throughput, sampling speed against
its memory-bandwidth bound, first-character latency and peak memory. Prints a table, writes JSON.

    python bench/text.py                      # everything; `studio train text --minutes 30` and `--minutes 5`
    python bench/text.py --run DIR            # reuse a finished 30-minute run for the quality numbers
    python bench/text.py --curve mini         # a preset's [curve] table (what --minutes chooses sizes by)
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

from machine import describe, machine, tag

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"
RESULTS = ROOT / "bench" / "results"
CORPUS_SIZES_MB = (1, 20, 200)      # validation cost against corpus size
PRESETS = ("tiny", "mini", "compact", "small", "large")


def child(function: str, *args) -> dict:
    """Run one measurement below in a fresh interpreter; it prints one JSON line."""
    out = subprocess.run([sys.executable, __file__, "--child", function, *map(str, args)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------------
# measurements (each in a child process)


def measure_training(preset: str, threads: int) -> dict:
    """Whole training steps at the preset's batch and precision, as `studio train --minutes` times them."""
    import torch
    from engines.core.budget import training_speed
    from engines.core.device import autocast_dtype
    from engines.text import TextEngine
    torch.set_num_threads(threads)
    engine, cpu = TextEngine(), torch.device("cpu")
    chosen = engine.preset(preset)
    speed = training_speed(engine, engine.read_corpus(SHAKESPEARE), chosen, cpu, steps=4)
    precision = autocast_dtype(cpu, chosen.stages["model"].train.precision)
    return {"preset": preset, "threads": threads, "chars_per_second": speed,
            "precision": str(precision or "fp32"), "peak_rss_mb": peak_rss_mb()}


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


def train_run(out: Path, minutes: float) -> tuple[Path, float]:
    """What a user types with a time budget, `studio train text --minutes M`: the model size is chosen here
    by a throughput probe. (run folder, wall-clock seconds of the whole command)"""
    t0 = time.perf_counter()
    if not (out / "last.safetensors").exists():
        subprocess.run([sys.executable, "-m", "studio", "train", "text", "--data", SHAKESPEARE, "--minutes",
                        str(minutes), "--out", out, "--no-preview"], check=True, cwd=ROOT)
    return out, time.perf_counter() - t0


def budget_result(run: Path, seconds: float) -> dict:
    from engines.core.checkpoint import read_meta
    meta = read_meta(run / "last.safetensors")
    h = meta["history"]
    curve = [{"minutes": t / 60, "step": s, "val_loss": v} for t, s, v in zip(h["val_times"], h["val_steps"], h["val_losses"])]
    return {"run": str(run), "preset": meta["preset"], "command_minutes": seconds / 60, "curve": curve,
            "minutes_trained": meta["elapsed_seconds"] / 60, "steps": meta["step"],
            "best_val_loss": meta["metrics"]["best_val_loss"], **child("heldout", run / "best.safetensors")}


def quality(run: Path | None, minutes: float) -> dict:
    """`studio train text --minutes 30` and `--minutes 5` on this machine: the size each chose, its curve
    against wall-clock time, and the held-out loss of its best checkpoint."""
    isa = tag(machine())
    runs = {minutes: (run, 0.0) if run else train_run(RESULTS / "runs" / f"text-{minutes:g}min-{isa}", minutes),
            5: train_run(RESULTS / "runs" / f"text-5min-{isa}", 5)}
    return {f"{m:g}_minutes": budget_result(*r) for m, r in runs.items()}


def curve(preset: str) -> str:
    """One run of a preset over its whole max_steps on Tiny Shakespeare, its validations as the preset's
    [curve] table (validation loss against characters trained)."""
    from engines.core.checkpoint import read_meta
    from engines.text import TextEngine
    out = RESULTS / "runs" / f"text-curve-{preset}"
    if not (out / "last.safetensors").exists():
        subprocess.run([sys.executable, "-m", "studio", "train", "text", "--data", SHAKESPEARE, "--preset", preset,
                        "--out", out, "--no-preview"], check=True, cwd=ROOT)
    train = TextEngine().preset(preset).stages["model"].train
    h = read_meta(out / "last.safetensors")["history"]
    points = [(step * train.batch_size * train.seq_len, loss) for step, loss in zip(h["val_steps"], h["val_losses"]) if step]
    return (f"[curve]   # bench/text.py --curve {preset}: validation every {train.eval_interval} steps of one "
            f"{train.max_steps}-step run\nunits = [{', '.join(f'{u:.3g}' for u, _ in points)}]\n"
            f"loss = [{', '.join(f'{v:.3f}' for _, v in points)}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a finished training run to report instead of training anew")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--checkpoint", default=None, help="model for the sampling numbers (default: bundled)")
    parser.add_argument("--curve", metavar="PRESET", help="train PRESET once over its max_steps and print its "
                        "[curve] table for presets/text/PRESET.toml (what `studio train --minutes` chooses by)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.curve:
        print(curve(args.curve))
        return
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
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(describe(report["machine"]))
    if not args.skip_quality:
        report["quality"] = quality(args.run, args.minutes)
    report["training"] = [child("training", preset, threads) for preset in PRESETS for threads in (1, 2)]
    report["sampling"] = [child("sampling", checkpoint, threads, variations)
                          for threads, variations in ((1, 1), (2, 1), (2, 8))]
    report["validation_cost"] = [child("validation", mb) for mb in CORPUS_SIZES_MB]
    report["cli_tiny_3_steps"] = [child("cli", mb) for mb in CORPUS_SIZES_MB]

    print("\n== quality: `studio train text --minutes M` (size chosen by its probe; Tiny Shakespeare, last 10% held out) ==")
    for name, q in report.get("quality", {}).items():
        print(f"{name.replace('_', ' ')}: preset {q['preset']}, {q['steps']} steps in {q['minutes_trained']:.1f} min "
              f"of training ({q['command_minutes']:.1f} min for the whole command); best validation "
              f"{q['best_val_loss']:.4f}; whole held-out 10% in fp32: {q['heldout_nats_per_char']:.4f} nats/char")
        print("   " + "  ".join(f"{p['minutes']:.1f} min {p['val_loss']:.3f}" for p in q["curve"]))
    print("\n== training throughput (chars/s) ==")
    print(f"{'preset':8} {'1 thread':>10} {'2 threads':>10} {'peak MB':>8}")
    for preset in PRESETS:
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
    out = RESULTS / f"text-{tag(report['machine'])}.json"     # one file per ISA: AVX2 and AVX-512 side by side
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

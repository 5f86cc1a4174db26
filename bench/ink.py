"""Ink engine benchmark: how fast the pen writes (points/s at batch 1 and batched, seconds per 60-character
line, time to the first point) against the bound of reading every weight once per point, training throughput,
and the held-out NLL of training runs against training time. Prints tables, writes bench/results/ink.json.

    python bench/ink.py                              # speed of each preset's shape, and the held-out curves
    python bench/ink.py --curves /work/runs/other    # the curve of another run (its validation split)

The model's step is timed with random weights of each preset's shape (its speed does not depend on what it
learnt); the whole writer with the run's own model (--run), whose stalls and retries are part of the cost. One
torch thread, each measurement in its own subprocess. A held-out curve is a run's own validation, read whole, in
nats per point: the bundled model's three phases hold out every 10th line (84 lines of all 7 writers), and so
does its first phase run again from scratch with each training line slanted and stretched (`--set
model.augment=0.15`); the same recipe's first phase run with writer "sin" held out (`--set
model.validation_writers=sin`, 66 lines) gives the NLL of a hand the model never saw, without and with augment.

    python bench/ink.py --legibility 60 30 20        # + CER: recogniser <= 60 epochs / 30 min, 20 texts
    python bench/ink.py --skip-speed                 # the curves alone -> bench/results/ink-heldout.json
    python bench/ink.py --skip-speed --legibility 60 40 20 --by-style    # + CER in each built-in style

Legibility: a BiLSTM-CTC recogniser over the pen points, trained on the run's real training lines (once; kept in
bench/results/runs/), reads the held-out lines (real CER), the same texts written by the model (the run's best, or
--checkpoint) at bias 0, 1 and 2, and 20 fixed pangrams written the same way; and of the lines ending in a period,
how many it reads on past the period (strokes after the text) or without it (the end cut off). With --by-style,
the CER in each built-in style at bias 1 and 2 on the held-out texts and the pangrams, which choose the writer an
empty Style defaults to (scripts/ship_ink_styles.py --default), and on as many held-out texts again, which did not.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
UNIPEN = ROOT.parent / "shared" / "data" / "handwriting" / "unipen_cursive"
RESULTS = ROOT / "bench" / "results"
RUN = Path("/work/runs/ink-whole")         # the bundled model's run, its second phase (docs/ink.md)
CURVES = [Path("/work/runs/ink-unipen"), RUN,   # its first phase, then the second
          Path("/work/runs/ink-unseen-writer"),   # the first phase's recipe with writer "sin" held out
          Path("/work/runs/ink-unseen-aug"),      # the same, each line slanted and stretched (model.augment=0.15)
          Path("/work/runs/ink-whole-aug"),       # the bundled model's third phase (augment=0.1, whole lines)
          Path("/work/runs/ink-aug-p1")]          # the first phase again from scratch, with augment=0.15
SHAPES = {"small (3x256)": ("small", {}), "Graves (3x400)": ("small", {"n_hidden": 400}), "tiny": ("tiny", {})}
LINE = "The quick brown fox jumps over the lazy dog, said Mr. Jones"   # 60 characters
# a fixed set for legibility: every one holds every letter of the alphabet (upper case only where it starts)
PANGRAMS = [
    "The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs.",
    "How vexingly quick daft zebras jump!", "The five boxing wizards jump quickly.",
    "Sphinx of black quartz, judge my vow.", "Jackdaws love my big sphinx of quartz.",
    "Waltz, bad nymph, for quick jigs vex.", "Quick zephyrs blow, vexing daft Jim.",
    "Two driven jocks help fax my big quiz.", "Five quacking zephyrs jolt my wax bed.",
    "The jay, pig, fox, zebra and my wolves quack!", "Crazy Fredrick bought many very exquisite opal jewels.",
    "We promptly judged antique ivory buckles for the next prize.",
    "A mad boxer shot a quick, gloved jab to the jaw of his dizzy opponent.",
    "Jaded zombies acted quaintly but kept driving their oxen forward.",
    "The job requires extra pluck and zeal from every young wage earner.",
    "Grumpy wizards make toxic brew for the evil queen and jack.",
    "Just keep examining every low bid quoted for zinc etchings.",
    "Amazingly few discotheques provide jukeboxes.", "Heavy boxes perform quick waltzes and jigs.",
]


def child(function: str, *args, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", function, *map(str, args)], capture_output=True,
                         text=True, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def shape_model(name: str, meta: dict):
    import dataclasses
    import torch
    from engines.ink import InkEngine
    from engines.ink.config import InkModelConfig
    engine = InkEngine()
    preset, changes = SHAPES[name]
    config = dataclasses.replace(InkModelConfig(**engine.preset(preset).stages["model"].model), **changes)
    torch.manual_seed(0)
    return engine, engine.build_model(engine.stage(), config, meta).eval()


def corpus_meta(checkpoint: str | None) -> dict:
    """A trained run's corpus meta (alphabet, scale, styles), else the UNIPEN set read with the small preset."""
    if checkpoint:
        from engines.core.checkpoint import read_meta
        return read_meta(checkpoint)["corpus"]
    from engines.ink import InkEngine
    from engines.ink.config import InkModelConfig
    engine = InkEngine()
    return engine.read_corpus(UNIPEN, model_config=InkModelConfig(**engine.preset("small").stages["model"].model)).meta


def memory_bandwidth() -> float:
    """Bytes per second of a large copy (read + write), best of 5."""
    import numpy as np
    a = np.ones(64 * 2**20 // 8)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best


# ----------------------------------------------------------------------------------------------------
# measurements (each in a child process)

def measure_steps(name: str, batch: int, checkpoint: str) -> dict:
    """The bare model step (one point for each of `batch` lines) and the bound of reading every weight once."""
    import torch
    torch.set_num_threads(1)
    meta = corpus_meta(checkpoint or None)
    _, model = shape_model(name, meta)
    from engines.ink.data import Alphabet
    alphabet = Alphabet.from_meta(meta["alphabet"])
    ids = torch.tensor([alphabet.encode(LINE)] * batch)
    text = model.encode_text(ids, torch.ones_like(ids, dtype=torch.bool))
    x, state, g = torch.zeros(batch, 3), model.initial_state(batch), torch.Generator().manual_seed(0)
    for _ in range(20):
        step = model.step(x, state, text, 1.0, 1.0, g)
        x, state = step.point, step.state
    n = 400
    t0 = time.perf_counter()
    for _ in range(n):
        step = model.step(x, state, text, 1.0, 1.0, g)
        x, state = step.point, step.state
    seconds = time.perf_counter() - t0
    weights = sum(p.numel() for p in model.parameters())
    c = model.config
    H, V, L = c.n_hidden, c.alphabet_size, c.n_layer
    macs = (3 + V + H) * 4 * H + H * 3 * c.window_gaussians + (L - 1) * (3 + 2 * H + V) * 4 * H + L * H * (1 + 6 * c.mixtures)
    bandwidth = memory_bandwidth()
    return {"shape": name, "batch": batch, "weights": weights, "mflop_per_point": 2 * macs / 1e6,
            "points_per_second": n * batch / seconds, "steps_per_second": n / seconds,
            "bound_steps_per_second": bandwidth / (4 * weights), "bandwidth_gb_s": bandwidth / 1e9,
            "seconds_per_60_char_line": 60 / meta["chars_per_point"] / (n / seconds)}


WRITING_SITUATIONS = ("cold", "new style", "prepared")
OWN_SAMPLE = "own sample"


def measure_writing(run: str, situations: str) -> dict:
    """The whole writer (style primer read, window watched, stalls retried, chunks made) with a trained run's
    model: a 60-character line at batch 1, in situations that differ in what is ready before Generate:
    `cold`, the process's first line, in a built-in style not written on this machine before (the CLI: the
    writing modules are imported and the style's primed state loaded, shipped with a bundled model, else read,
    after the model loads); `own sample`, the same in a style that is neither shipped nor read before (a user's
    own recording: here a built-in style with the shipped states out of reach); `own sample, read before`, that
    again in a new process, its primed state now in the cache folder; `new style`, a built-in style not used yet
    in a process that has written (the app, when Generate comes before the style is ready); `prepared`, after
    Engine.prepare (the app while the user types), in another built-in style than the one prepare was asked for.
    Each new style is the longest unused primer. The parent gives the child a fresh cache folder
    (SEQUENCE_STUDIO_CACHE)."""
    import torch
    torch.set_num_threads(1)
    from engines.core.interface import resolve_settings
    from engines.core.trainer import load_model
    from engines.ink import InkEngine
    from engines.ink.chunks import InkChunk, variation_points
    from engines.ink.corpus import unpack_points
    engine = InkEngine()
    model, header = load_model(engine, run, "cpu")
    styles = header["corpus"]["styles"]
    unread = sorted(styles, key=lambda name: -len(unpack_points(styles[name]["points"])))
    out = {"run": run, "step": header["step"]}
    for situation in situations.split(","):
        style = unread.pop(0)
        if situation == OWN_SAMPLE:
            import engines.ink.write
            engines.ink.write.SHIPPED_PRIMED = Path(tempfile.mkdtemp(prefix="nothing-shipped-"))
        settings = resolve_settings(engine.controls(), {"text": LINE, "seed": 0, "width": 80, "style": style})
        if situation == "prepared":
            engine.prepare(model, header, {**settings, "style": unread[0]})
        t0, first, chunks = time.perf_counter(), None, []
        for chunk in engine.generate(model, header, settings):
            if first is None and isinstance(chunk, InkChunk) and len(chunk.points[0]):
                first = time.perf_counter() - t0
            chunks.append(chunk)
        out[situation] = {"style": style, "primer_points": len(unpack_points(styles[style]["points"])),
                          "seconds_per_line": time.perf_counter() - t0, "first_point_ms": 1000 * first,
                          "points": len(variation_points(chunks)),
                          "retracted": sum(sum(c.retract) for c in chunks if isinstance(c, InkChunk) and c.retract),
                          "fell_back": [c.message for c in chunks if "could not follow" in getattr(c, "message", "")]}
    return out


def measure_writing_situations(run: str) -> dict:
    """Every situation of measure_writing, the cold ones each in a new process, over one fresh cache folder."""
    with tempfile.TemporaryDirectory(prefix="ink-bench-cache-") as cache:
        env = {"SEQUENCE_STUDIO_CACHE": cache}
        report = child("writing", run, ",".join(WRITING_SITUATIONS), env=env)
        report[OWN_SAMPLE] = child("writing", run, OWN_SAMPLE, env=env)[OWN_SAMPLE]
        report[f"{OWN_SAMPLE}, read before"] = child("writing", run, OWN_SAMPLE, env=env)[OWN_SAMPLE]
    return report


def measure_training(name: str, checkpoint: str, steps: int = 3) -> dict:
    import torch
    torch.set_num_threads(1)
    meta = corpus_meta(checkpoint or None)
    engine, model = shape_model(name, meta)
    model.train()
    batch, seq = 16, 320
    from engines.core.interface import Batch
    points = torch.randn(batch, seq + 1, 3)
    points[..., 2] = (points[..., 2] > 1.2).float()
    text = torch.randint(1, model.config.alphabet_size, (batch, 40))
    tensors = {"points": points, "point_mask": torch.ones(batch, seq + 1, dtype=torch.bool), "text": text,
               "text_mask": torch.ones_like(text, dtype=torch.bool),
               "ends": torch.zeros(batch, seq + 1, dtype=torch.bool)}
    b = Batch(tensors, batch * seq)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = engine.loss(model, b, engine.stage()).value
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return {"shape": name, "points_per_second": b.units / min(times[1:]), "seconds_per_step_16x320": min(times[1:])}


# ----------------------------------------------------------------------------------------------------
# legibility: a small recogniser trained on real lines reads real held-out lines and generated ones

def recogniser_corpus(run: str):
    """The UNIPEN lines as the run's model reads them (its scale, smoothing, alphabet, split), without
    the synthetic font lines: (train points, train ids, held-out points, held-out texts, header)."""
    import dataclasses
    from engines.core.checkpoint import read_meta
    from engines.ink import InkEngine
    from engines.ink.config import InkModelConfig
    header = read_meta(Path(run) / "best.safetensors")
    config = dataclasses.replace(InkModelConfig(**header["model_config"]), synthetic_lines=0)
    corpus = InkEngine().read_corpus(UNIPEN, meta=header["corpus"], model_config=config)
    from engines.ink.data import Alphabet
    alphabet = Alphabet.from_meta(header["corpus"]["alphabet"])
    # the held-out lines' texts back from their ids (a character the model has no input for reads as '?'),
    # without UNIPEN's lines that are a lone '-'
    texts = ["".join(alphabet.chars[i - 1] if i else "?" for i in ids) for ids in corpus.val_texts]
    kept = [i for i, t in enumerate(texts) if len(t) > 1]
    return corpus.train, corpus.train_texts, [corpus.val[i] for i in kept], [texts[i] for i in kept], alphabet, header


class Recogniser:
    """A BiLSTM over pairs of (dx, dy, pen_up) points (half as many steps; ~4 per character remain) with a CTC
    head over the model's alphabet (blank last)."""

    def __init__(self, classes: int, hidden: int = 128):
        import torch
        self.net = torch.nn.LSTM(6, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(2 * hidden, classes + 1)
        self.blank = classes

    def parameters(self):
        return list(self.net.parameters()) + list(self.head.parameters())

    def logits(self, points):
        import torch.nn.functional as F
        B, T, _ = points.shape
        pairs = F.pad(points, (0, 0, 0, T % 2)).reshape(B, (T + 1) // 2, 6)
        return self.head(self.net(pairs)[0])                               # (B, ceil(T / 2), classes + 1)

    def read(self, points) -> list[int]:
        import torch
        with torch.no_grad():
            best = self.logits(torch.as_tensor(points)[None]).argmax(-1)[0].tolist()
        out, previous = [], None
        for c in best:
            if c != previous and c != self.blank:
                out.append(c)
            previous = c
        return out


def train_recogniser(points, ids, epochs: int, seconds: float):
    import torch
    torch.manual_seed(0)
    classes = max(max(t) for t in ids) + 1
    model = Recogniser(classes)
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    ctc = torch.nn.CTCLoss(blank=model.blank, zero_infinity=True)
    order = sorted(range(len(points)), key=lambda i: len(points[i]))
    batches = [order[i:i + 16] for i in range(0, len(order), 16)]
    rng, started = np.random.default_rng(0), time.perf_counter()
    for epoch in range(epochs):
        for b in rng.permutation(len(batches)):
            lines = [torch.from_numpy(points[i]) for i in batches[b]]
            x = torch.nn.utils.rnn.pad_sequence(lines, batch_first=True)
            targets = torch.cat([torch.tensor(ids[i]) for i in batches[b]])
            log_probs = model.logits(x).log_softmax(-1).transpose(0, 1)   # (T, B, C)
            loss = ctc(log_probs, targets, torch.tensor([(len(l) + 1) // 2 for l in lines]),
                       torch.tensor([len(ids[i]) for i in batches[b]]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if time.perf_counter() - started > seconds:
                return model, epoch + 1
    return model, epochs


def cer(model, points: list, texts: list[str], alphabet) -> float:
    """Character error rate: edit distance between what the recogniser reads and the text, over all characters."""
    errors = total = 0
    for p, text in zip(points, texts):
        truth = alphabet.encode(text)
        read = model.read(p)
        row = list(range(len(read) + 1))                                   # Levenshtein, one row at a time
        for i, t in enumerate(truth, 1):
            previous, row[0] = row[0], i
            for j, r in enumerate(read, 1):
                previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (t != r))
        errors += row[-1]
        total += len(truth)
    return errors / max(total, 1)


def endings(model, points: list, texts: list[str], alphabet) -> dict:
    """Of the lines whose text ends in a period, how many the recogniser reads with fewer periods than the text
    has (the end cut off, or its period not written) and how many it reads on past the last period (strokes
    after the end of the text)."""
    period = alphabet.encode(".")[0]
    out = {"ending_in_a_period": 0, "read_on_past_it": 0, "period_missing": 0}
    for p, text in zip(points, texts):
        if text.endswith("."):
            read = model.read(p)
            periods = [i for i, c in enumerate(read) if c == period]
            out["ending_in_a_period"] += 1
            if len(periods) < text.count("."):
                out["period_missing"] += 1
            elif periods[-1] < len(read) - 1:
                out["read_on_past_it"] += 1
    return out


def recogniser_for(run: str, epochs: int, minutes: float):
    """The recogniser for a run's way of reading pen points, trained once and kept in bench/results/runs/ (keyed
    by the corpus meta that decides the points it sees: scale, smoothing, downsampling, alphabet)."""
    import hashlib
    from safetensors.torch import load_file, save_file
    train_points, train_ids, val_points, val_texts, alphabet, header = recogniser_corpus(run)
    corpus = header["corpus"]
    key = json.dumps([corpus["scale"], corpus.get("smooth"), corpus.get("downsample"), alphabet.chars, epochs,
                      minutes], default=str)
    path = RESULTS / "runs" / f"ink-recogniser-{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors"
    classes = max(max(t) for t in train_ids) + 1
    if path.exists():
        recogniser = Recogniser(classes)
        weights = load_file(path)
        recogniser.net.load_state_dict({k[4:]: v for k, v in weights.items() if k.startswith("net.")})
        recogniser.head.load_state_dict({k[5:]: v for k, v in weights.items() if k.startswith("head.")})
        info = json.loads(path.with_suffix(".json").read_text())
    else:
        started = time.perf_counter()
        recogniser, done = train_recogniser(train_points, train_ids, epochs, minutes * 60)
        info = {"epochs": done, "minutes": (time.perf_counter() - started) / 60}
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({**{f"net.{k}": v for k, v in recogniser.net.state_dict().items()},
                   **{f"head.{k}": v for k, v in recogniser.head.state_dict().items()}}, path)
        path.with_suffix(".json").write_text(json.dumps(info))
    return recogniser, info, val_points, val_texts, alphabet


def written_lines(checkpoint: str, texts: list[str], bias: float, dots: bool,
                  style: str = "default") -> tuple[list[np.ndarray], int]:
    """Each text written as one line by the model (seed = the text's index; in `style`, by default the app's:
    the writer the model names, else one chosen by the seed), in the points the model reads; and how many lines
    needed the font for a word. `dots`: the writer adds the dots and crosses the pen left out (the app's
    default), or leaves the pen's own."""
    from engines.core.interface import resolve_settings
    from engines.core.trainer import load_model
    from engines.ink import InkEngine
    from engines.ink.chunks import InkChunk, variation_points
    engine = InkEngine()
    model, header = load_model(engine, checkpoint, "cpu")
    scale = header["corpus"]["scale"]
    written, fell_back = [], 0
    for k, text in enumerate(texts):
        settings = resolve_settings(engine.controls(), {"text": text, "seed": k, "bias": bias, "width": 400,
                                                              "dots": dots, "style": style})
        chunks = list(engine.generate(model, header, settings))
        fell_back += any("could not follow" in getattr(c, "message", "") for c in chunks)
        p = variation_points([c for c in chunks if isinstance(c, InkChunk)])
        p[:, :2] /= scale
        written.append(np.vstack([np.zeros((1, 3), np.float32), p]))
    return written, fell_back


def measure_legibility(run: str, checkpoint: str, epochs: int, minutes: float, lines: int) -> dict:
    """CER of the recogniser on real held-out lines, and on the model writing the same texts and the 20 pangrams
    (one line each) at bias 0, 1 and 2. The page a user gets is measured, font fallbacks included; how many
    lines needed the font is reported beside it; and the same lines with the pen's own dots and crosses only."""
    import torch
    torch.set_num_threads(1)
    from engines.core.checkpoint import read_meta
    from engines.ink.model import END_THRESHOLD
    recogniser, info, val_points, val_texts, alphabet = recogniser_for(run, epochs, minutes)
    meta = read_meta(checkpoint)
    out = {"run": run, "checkpoint": checkpoint, "step": meta["step"], "end_threshold": END_THRESHOLD,
           "style": meta["corpus"].get("default_style") or "chosen by the seed", "recogniser_epochs": info["epochs"],
           "recogniser_minutes": info["minutes"], "lines": lines,
           "real_cer": cer(recogniser, val_points[:lines], val_texts[:lines], alphabet), "generated": []}
    for bias in (0.0, 1.0, 2.0):
        row = {"bias": bias}
        for name, texts in (("heldout", val_texts[:lines]), ("pangrams", PANGRAMS)):
            written, fell_back = written_lines(checkpoint, texts, bias, dots=True)
            pens_own, _ = written_lines(checkpoint, texts, bias, dots=False)
            row[name] = {"cer": cer(recogniser, written, texts, alphabet), "lines_with_font_fallback": fell_back,
                         "endings": endings(recogniser, written, texts, alphabet),
                         "cer_pen_dots_only": cer(recogniser, pens_own, texts, alphabet)}
        out["generated"].append(row)
    return out


def measure_styles(run: str, checkpoint: str, epochs: int, minutes: float, lines: int) -> dict:
    """CER in each built-in style (dots and crosses added) at bias 1 and 2: on the held-out texts and pangrams
    the default writer is chosen on, then on the next `lines` held-out texts, which did not choose it."""
    import torch
    torch.set_num_threads(1)
    from engines.core.checkpoint import read_meta
    recogniser, _, _, val_texts, alphabet = recogniser_for(run, epochs, minutes)
    if len(val_texts) < 2 * lines:
        raise SystemExit(f"{len(val_texts)} held-out texts: too few to choose on {lines} and check on {lines} more")
    meta = read_meta(checkpoint)
    out = {"checkpoint": checkpoint, "step": meta["step"], "lines": lines,
           "default_style": meta["corpus"].get("default_style"), "styles": {}}
    for style in sorted(meta["corpus"]["styles"]):
        out["styles"][style] = {f"{name} bias {bias:g}": cer(recogniser, written_lines(checkpoint, texts, bias, True,
                                                                                        style)[0], texts, alphabet)
                                for name, texts in (("heldout", val_texts[:lines]), ("pangrams", PANGRAMS),
                                                    ("next heldout", val_texts[lines:2 * lines]))
                                for bias in (1.0, 2.0)}
    return out


def heldout_curve(run: Path) -> dict:
    from engines.core.checkpoint import read_meta
    header = read_meta(run / "last.safetensors")
    h = header["history"]
    return {"run": str(run), "preset": header.get("preset"), "step": header["step"],
            "validation_writers": header["model_config"].get("validation_writers", ""),
            "augment": header["model_config"].get("augment", 0.0),
            "curve": [{"step": s, "minutes": t / 60, "nats_per_point": v}
                      for s, t, v in zip(h["val_steps"], h["val_times"], h["val_losses"])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=RUN, help="the training run whose model writes and is read")
    parser.add_argument("--legibility", nargs=3, type=float, metavar=("EPOCHS", "MINUTES", "LINES"),
                        help="also train the recogniser (at most EPOCHS epochs or MINUTES) and measure CER on LINES "
                             "held-out texts, real and written by the run's best model (e.g. 30 20 20)")
    parser.add_argument("--checkpoint", help="the model whose writing the legibility test reads (default: the run's "
                                             "best.safetensors), e.g. assets/ink/unipen-cursive.safetensors")
    parser.add_argument("--by-style", action="store_true",
                        help="with --legibility: the CER in each built-in style too (about 40 minutes more)")
    parser.add_argument("--curves", type=Path, nargs="+", default=CURVES,
                        help="runs whose held-out curves to report (those that exist)")
    parser.add_argument("--skip-speed", action="store_true", help="only the held-out curves (and legibility if asked)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.by_style and not args.legibility:
        parser.error("--by-style measures legibility in each style: give --legibility too")
    if args.child:
        function, *rest = args.child
        read = lambda measure: measure(rest[0], rest[1], int(rest[2]), float(rest[3]), int(rest[4]))
        result = {"steps": lambda: measure_steps(rest[0], int(rest[1]), rest[2]),
                  "writing": lambda: measure_writing(rest[0], rest[1]),
                  "training": lambda: measure_training(rest[0], rest[1]),
                  "legibility": lambda: read(measure_legibility),
                  "styles": lambda: read(measure_styles)}[function]()
        print(json.dumps(result))
        return

    from machine import describe, machine
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": os.getloadavg()}
    print(describe(report["machine"]))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in report['load_average'])} "
          f"(other work on the machine slows every number below)")
    checkpoint = str(args.run / "last.safetensors") if (args.run / "last.safetensors").exists() else ""
    if not args.skip_speed:
        report["steps"] = [child("steps", name, batch, checkpoint) for name in SHAPES for batch in (1, 8)]
        if checkpoint:
            report["writing"] = measure_writing_situations(str(args.run))
        report["training"] = [child("training", name, checkpoint) for name in SHAPES]
    report["heldout"] = [heldout_curve(run) for run in args.curves if (run / "last.safetensors").exists()]
    if checkpoint and args.legibility:
        epochs, minutes, lines = args.legibility
        model = args.checkpoint or str(args.run / "best.safetensors")
        report["legibility"] = child("legibility", str(args.run), model, int(epochs), minutes, int(lines))
        if args.by_style:
            report["legibility_by_style"] = child("styles", str(args.run), model, int(epochs), minutes, int(lines))

    if "steps" in report:
        print_speed(report)
    for h in report["heldout"]:
        print(f"\n== {h['run']} (preset {h['preset']}): held-out "
              f"{'writer(s) ' + h['validation_writers'] if h['validation_writers'] else 'lines (every n-th)'}, "
              f"whole lines{', augment ' + str(h['augment']) if h['augment'] else ''} ==")
        print(f"{'minutes':>8} {'step':>6} {'nats/point':>10}")
        for point in h["curve"]:
            print(f"{point['minutes']:8.1f} {point['step']:6d} {point['nats_per_point']:10.3f}")
    if "legibility" in report:
        print_legibility(report["legibility"])
    if "legibility_by_style" in report:
        print_styles(report["legibility_by_style"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("ink-heldout.json" if args.skip_speed else "ink.json")
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


def print_speed(report: dict) -> None:
    print("\n== the model's step, one thread (random weights of each shape) ==")
    print(f"{'shape':15} {'weights':>9} {'MFLOP/pt':>8} {'pts/s b1':>9} {'bound b1':>9} {'pts/s b8':>9} "
          f"{'s/60-char line b1':>17}")
    for name in SHAPES:
        one = next(r for r in report["steps"] if r["shape"] == name and r["batch"] == 1)
        eight = next(r for r in report["steps"] if r["shape"] == name and r["batch"] == 8)
        print(f"{name:15} {one['weights']:9,} {one['mflop_per_point']:8.2f} {one['points_per_second']:9,.0f} "
              f"{one['bound_steps_per_second']:9,.0f} {eight['points_per_second']:9,.0f} "
              f"{one['seconds_per_60_char_line']:17.2f}")
    print(f"(bound: memory bandwidth {report['steps'][0]['bandwidth_gb_s']:.1f} GB/s over the fp32 weights, read once "
          f"per point)")
    if "writing" in report:
        w = report["writing"]
        print(f"\n== the whole writer, {w['run']} at step {w['step']}, a 60-character line, batch 1 ==")
        for situation in ("cold", OWN_SAMPLE, f"{OWN_SAMPLE}, read before", *WRITING_SITUATIONS[1:]):
            r = w[situation]
            print(f"{situation:23} {r['seconds_per_line']:5.2f} s/line, first point {r['first_point_ms']:4.0f} ms "
                  f"(style {r['style']}, primer {r['primer_points']} points), {r['points']} points, "
                  f"{r['retracted']} taken back, font fallbacks: {len(r['fell_back'])}")
    print("\n== training, one thread, batch 16 x 320 points ==")
    for r in report["training"]:
        print(f"{r['shape']:15} {r['points_per_second']:9,.0f} points/s  {r['seconds_per_step_16x320']:.2f} s/step")


def print_legibility(g: dict) -> None:
    print(f"\n== legibility: a BiLSTM-CTC recogniser ({g['recogniser_epochs']} epochs, "
          f"{g['recogniser_minutes']:.0f} min on the real training lines) reads {g['lines']} held-out texts ==")
    print(f"real handwriting of the held-out lines: CER {g['real_cer']:.1%}")
    print(f"written by {g['checkpoint']} (step {g['step']}), style {g.get('style', 'chosen by the seed')}:")
    print(f"{'bias':>5} {'CER held-out texts':>19} {'pen dots':>9} {'font':>5} {'ends':>7} "
          f"{'CER 20 pangrams':>16} {'pen dots':>9} {'font':>5} {'ends':>7}")
    ends = lambda e: f"{e['read_on_past_it']}+{e['period_missing']}/{e['ending_in_a_period']}"
    for r in g["generated"]:
        h, p = r["heldout"], r["pangrams"]
        print(f"{r['bias']:5g} {h['cer']:19.1%} {h['cer_pen_dots_only']:9.1%} {h['lines_with_font_fallback']:5d} "
              f"{ends(h['endings']):>7} {p['cer']:16.1%} {p['cer_pen_dots_only']:9.1%} "
              f"{p['lines_with_font_fallback']:5d} {ends(p['endings']):>7}")
    print("(pen dots: the same texts and seeds with the dots and crosses the pen left out not added; font: lines "
          "with a word the model could not follow, drawn from the Hershey font instead; ends: of the lines ending "
          "in a period, read on past it + read without it / all)")


def print_styles(g: dict) -> None:
    print(f"\n== CER in each built-in style, dots and crosses added ({g['checkpoint']}, step {g['step']}; "
          f"its default writer now: {g['default_style'] or 'none (the seed picks)'}) ==")
    if not g["styles"]:
        print("(the model has no built-in styles)")
        return
    cells = list(next(iter(g["styles"].values())))
    print(f"{'style':>6} " + " ".join(f"{c:>19}" for c in cells))
    for style, row in g["styles"].items():
        print(f"{style:>6} " + " ".join(f"{row[c]:19.1%}" for c in cells))
    print(f"{'mean':>6} " + " ".join(f"{np.mean([row[c] for row in g['styles'].values()]):19.1%}" for c in cells))
    print(f"(the default: the lowest mean of the first four columns; the next {g['lines']} held-out texts, which "
          f"did not choose it, say how it reads against the others; mean: what the seed's pick gives on average)")


if __name__ == "__main__":
    main()

"""`studio`: the desktop app, and the same engines headless for servers and scripts.

    studio                                   open the desktop app
    studio engines                           list installed engines and their presets
    studio train ENGINE --data PATH --out DIR [--preset NAME] [--stage NAME] [--steps N | --minutes M] [--resume]
    studio sample ENGINE [--checkpoint PATH] [--<control> VALUE ...] [--out FILE]
    studio eval ENGINE [--checkpoint PATH] --data PATH
    studio info CHECKPOINT

Sampling flags come from each engine's own controls (`studio sample text --help`).
`--minutes M` without `--preset` (text) times each model size here and trains the one that should do best in M.
Multi-GPU / multi-node: `torchrun --nproc_per_node N -m studio train ...` (rank 0 logs and saves).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from engines import available_engines, get_engine
from studio import format_seconds
from engines.core.errors import StudioError
from engines.core.interface import Notice, config_from_dict, resolve_settings

DEVICES = ("auto", "cpu", "cuda", "mps")


# ----------------------------------------------------------------------------------------------------
# argument parsing


def flag(control) -> str:
    return "--" + control.name.replace("_", "-")


def add_control_flags(parser: argparse.ArgumentParser, engine) -> None:
    group = parser.add_argument_group(f"{engine.name} sampling controls")
    for c in engine.controls():
        bounds = f" [{c.minimum:g}..{c.maximum:g}]" if c.minimum is not None and c.kind != "seed" else ""
        default = "random" if c.kind == "seed" else repr(c.default)
        choices = f" ({', '.join(c.choices)})" if c.choices else ""
        given_as = " given as JSON: [[[x, y], ...], ...], one list of points per stroke" if c.kind == "strokes" else ""
        group.add_argument(flag(c), dest=c.name, default=None, metavar="JSON" if given_as else c.kind.upper(),
                           help=f"{c.help}{given_as}{choices}{bounds} (default {default})")


def build_parser() -> argparse.ArgumentParser:
    engines = available_engines()
    parser = argparse.ArgumentParser(prog="studio", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("app", help="open the desktop app (the default)")
    sub.add_parser("engines", help="list installed engines, their presets and bundled models")

    train = sub.add_parser("train", help="train a model on your own corpus",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
                               "audio labels: from sub-folder names (the default), or from a file-name pattern:\n"
                               "  --set model.conditioning=\"{digit}_{speaker}_{}\" reads 7_jackson_0.wav as digit 7,\n"
                               "  speaker jackson ({} matches anything); --set model.conditioning=none for no labels"))
    train.add_argument("engine", choices=list(engines), help="which engine (see `studio engines`)")
    train.add_argument("--data", required=True, help="corpus: a file, a folder or a glob")
    train.add_argument("--out", required=True, help="run folder: last.safetensors (resumable) and best.safetensors "
                       "(one sub-folder per stage for engines that train in stages)")
    train.add_argument("--stage", help="train only this stage (default: every stage, in order; see `studio engines`)")
    train.add_argument("--preset", help="model size and recipe (see `studio engines`; default: the engine's)")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="total optimizer steps of the run (overrides the preset; "
                        "with --resume, extends a run to this many)")
    budget.add_argument("--minutes", type=float, help="wall-clock budget; the learning-rate schedule is fitted to it. "
                        "Without --preset (text): times a training step of each model size here and trains the one "
                        "that should reach the lowest loss in that time")
    train.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped "
                       "(with the run's own preset, settings and seed)")
    train.add_argument("--from", dest="start_from", metavar="CHECKPOINT",
                       help="fine-tune: start a new run from a trained model's weights (a run folder, a "
                            ".safetensors file, or 'bundled' for the engine's bundled model); it keeps that model's "
                            "shape and reads the corpus as that model did, with the preset's training settings; "
                            "an engine with stages fine-tunes its last stage on the earlier ones that model holds "
                            "(--set model.KEY=VALUE still changes a setting that is not its shape, or one that adds a "
                            "part, which starts new: e.g. the ink engine's model.end_flag=true)")
    train.add_argument("--new-data", action="store_true", help="with --resume: continue on a corpus that changed "
                       "since the run began (its best model starts again)")
    train.add_argument("--device", choices=DEVICES, default="auto",
                       help="where to train; auto picks CUDA, then MPS, then the CPU")
    train.add_argument("--seed", type=int, default=0, help="seeds the weights, batches and dropout (default 0)")
    train.add_argument("--set", action="append", default=[], metavar="[STAGE.]SECTION.KEY=VALUE",
                       help="override one preset value, e.g. --set model.n_hidden=256 --set train.lr=1e-3; "
                       "for an engine with stages, STAGE.train.lr=... sets one stage (without STAGE: every stage)")
    train.add_argument("--no-preview", action="store_true", help="skip the short samples shown at each validation")

    sample = sub.add_parser("sample", help="generate from a trained or bundled model (text streams to the terminal; "
                                           "every engine exports with --out)")
    sample_engines = sample.add_subparsers(dest="engine", metavar="ENGINE", required=True)
    for engine in engines.values():
        p = sample_engines.add_parser(engine.name, help=engine.title)
        p.add_argument("--checkpoint", help="checkpoint file or run folder (default: the bundled model)")
        p.add_argument("--out", help=f"export to this file ({', '.join(engine.export_formats)}), settings alongside")
        p.add_argument("--device", choices=DEVICES, default="auto", help="where to run the model")
        p.add_argument("--quiet", action="store_true", help="do not stream the sample to the terminal (only text "
                                                             "streams; other samples go to --out)")
        add_control_flags(p, engine)

    evaluate = sub.add_parser("eval", help="the model's loss and metrics on a corpus, with their units")
    evaluate.add_argument("engine", choices=list(engines), help="which engine")
    evaluate.add_argument("--checkpoint", help="checkpoint file or run folder (default: the bundled model)")
    evaluate.add_argument("--data", required=True, help="corpus: a file, a folder or a glob")
    evaluate.add_argument("--split", choices=("all", "validation"), default="all",
                          help="all of the corpus, or only the part the model's run held out of it (its "
                               "val_fraction, 10%% unless the run set it otherwise) (default all)")
    evaluate.add_argument("--device", choices=DEVICES, default="auto", help="where to run the model")

    info = sub.add_parser("info", help="what a checkpoint holds: engine, config, corpus, metrics")
    info.add_argument("checkpoint", help="a .safetensors checkpoint or a run folder")
    return parser


# ----------------------------------------------------------------------------------------------------
# commands


def default_checkpoint(engine) -> Path:
    bundled = engine.bundled_models()
    if not bundled:
        raise StudioError(f"the {engine.name} engine has no bundled model; pass --checkpoint")
    return bundled[0]


def parse_overrides(engine, pairs: list[str]) -> dict[str, dict]:
    """--set values as {stage: {"model": {...}, "train": {...}}}; SECTION.KEY applies to every stage."""
    stages = [s.name for s in engine.stages]
    overrides: dict[str, dict] = {stage: {"model": {}, "train": {}} for stage in stages}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        parts = key.split(".")
        targets = stages if len(parts) == 2 else [parts[0]] if len(parts) == 3 and parts[0] in stages else []
        if not sep or not targets or parts[-2] not in ("model", "train"):
            raise StudioError(f"--set {pair!r}: expected model.KEY=VALUE or train.KEY=VALUE"
                              + (f", optionally after a stage ({', '.join(stages)})" if len(stages) > 1 else ""))
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        for stage in targets:
            overrides[stage][parts[-2]][parts[-1]] = value
    return overrides


def cmd_engines(_args) -> int:
    for engine in available_engines().values():
        print(f"{engine.name:8} {engine.title}")
        if len(engine.stages) > 1:
            print("         stages: " + " -> ".join(f"{s.name} ({s.title})" for s in engine.stages))
        for preset in engine.presets().values():
            mark = "*" if preset.name == engine.default_preset else " "
            print(f"   {mark} preset {preset.name:8} {preset.description}")
        for path in engine.bundled_models():
            print(f"     bundled {path}")
    return 0


def format_evaluation(event) -> str:
    """"loss 1.2345 nats/char (best 1.2000), bits 1.781 bits/char, on 262,144 held-out chars" """
    metrics = "".join(f", {name} {value:.4g} {unit}" for name, (value, unit) in event.metrics.items())
    return (f"loss {event.val_loss:.4f} {event.loss_unit} (best {event.best_val_loss:.4f}){metrics}, "
            f"on {event.units:,} held-out {event.unit}s")


def cmd_train(args) -> int:
    from engines.core import events as events_
    from engines.core import trainer
    from engines.core.budget import fit_preset, has_curves
    from engines.core.device import pick_device

    engine = get_engine(args.engine)
    # everything that can be checked is checked before the corpus is read or anything is written
    if not args.data.strip():
        raise StudioError("--data is empty: name a corpus file, folder or glob")
    if args.steps is not None and args.steps < 1:
        raise StudioError(f"--steps must be at least 1, not {args.steps}")
    if args.minutes is not None and not args.minutes > 0:
        raise StudioError(f"--minutes must be above 0, not {args.minutes}")
    pick_device(args.device)
    if args.stage:
        engine.stage(args.stage)     # a clear error for a stage the engine does not have
    overrides = parse_overrides(engine, args.set)
    start_from = default_checkpoint(engine) if args.start_from == "bundled" else args.start_from
    corpus, recipes, preset = trainer.prepare_run(
        engine, args.data, args.out, args.preset, overrides, args.resume,
        max_steps=events_.STEPS_FROM_THE_CLOCK if args.minutes else args.steps,    # a time budget decides
        device=args.device, start_from=start_from, stage=args.stage)
    quiet = int(os.environ.get("RANK", 0)) != 0
    if not quiet:
        s = corpus.summary
        for line in s["lines"]:
            print(f"corpus: {line}", file=sys.stderr)
        for w in s["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
    # a new run with a time budget and no model named: the preset that should do best in that time, here
    names_a_model = args.preset or start_from or any(o["model"] for o in overrides.values())
    if (args.minutes and not (names_a_model or args.resume) and int(os.environ.get("WORLD_SIZE", 1)) == 1
            and has_curves(engine)):
        print(f"time budget {args.minutes:g} min: timing a training step of each model size here "
              f"({pick_device(args.device).type})", file=sys.stderr)
        chosen, (corpus, recipes, preset) = fit_preset(engine, args.data, args.out, corpus, args.minutes,
                                                       args.device, overrides)
        print_choice(chosen)
        args.minutes = chosen.minutes_left
    events = trainer.train(engine, corpus, args.out, recipes=recipes, stage=args.stage, preset=preset,
                           resume=args.resume, device=args.device, seed=args.seed, minutes=args.minutes,
                           previews=not args.no_preview, extend_to=args.steps if args.resume else None,
                           new_data=args.new_data)
    tty = sys.stderr.isatty()
    # Ctrl-C asks the loop to stop after the current step (which saves a resumable checkpoint); a second
    # Ctrl-C interrupts at once
    interrupted = []

    def on_interrupt(signum, frame):
        if interrupted:
            signal.default_int_handler(signum, frame)
        interrupted.append(True)

    previous_handler = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for event in events:
            if interrupted:
                events.close()
                print(f"\nstopped at step {event.step if hasattr(event, 'step') else '?'}; resume with: studio train "
                      f"{args.engine} --data {args.data} --out {args.out} --resume", file=sys.stderr)
                return 130
            if isinstance(event, events_.StageStarted):
                steps = (f"resuming from step {event.step} of {event.max_steps or '?'}" if event.step else
                         "steps fitted to the time left" if args.minutes else f"{event.max_steps} steps")
                print(f"stage {event.index}/{event.count}: {event.stage} ({event.title}), {steps}, "
                      f"loss in {event.loss_unit}", file=sys.stderr)
            elif isinstance(event, events_.Progress) and (tty or event.logged):
                line = (f"step {event.step}/{event.max_steps or '?'}  loss {event.loss:.4f}  lr {event.lr:.2e}  "
                        f"{event.units_per_second:,.0f} {event.unit}s/s  ETA {format_seconds(event.eta)}")
                print(("\r" + line.ljust(100)) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
            elif isinstance(event, events_.Evaluation):
                print(f"{chr(10) if tty else ''}step {event.step}: validation {format_evaluation(event)}",
                      file=sys.stderr)
            elif isinstance(event, events_.Preview) and event.error:
                print(f"  | no sample at step {event.step} (training goes on): {event.error}", file=sys.stderr)
            elif isinstance(event, events_.Preview) and engine.as_text(event.chunks) is not None:
                print("  | " + engine.as_text(event.chunks).replace("\n", "\n  | "), file=sys.stderr)
            elif isinstance(event, events_.Finished):
                if event.best_val_loss is None:
                    result = "validation loss not measured yet"
                elif event.step == 0:
                    result = f"stopped before its first step (validation loss {event.best_val_loss:.4f} {event.loss_unit})"
                elif Path(event.checkpoint).name == "last.safetensors":     # no validation beat step 0's
                    result = (f"the validation loss never fell below that of the model it started with "
                              f"({event.best_val_loss:.4f} {event.loss_unit}): a lower learning rate may help "
                              f"(--set train.lr=...)")
                else:
                    result = f"best validation loss {event.best_val_loss:.4f} {event.loss_unit}"
                print(f"{event.reason} at step {event.step}; {result}; model: {event.checkpoint}", file=sys.stderr)
    finally:
        # after a Ctrl-C the process is on its way out: one more press during the interpreter's shutdown would
        # print a traceback from inside its exit handlers
        signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else previous_handler)
    return 0


def print_choice(chosen) -> None:
    """The table of a time budget fitted here (an events.PresetChosen)."""
    unit = chosen.unit
    print(f"  {'preset':10} {unit + 's/s':>10} {unit + 's in budget':>16} {'expected loss':>14}", file=sys.stderr)
    for i, c in enumerate(chosen.candidates):
        mark = "  <- chosen" if i == 0 else ""
        print(f"  {c['preset']:10} {c['units_per_second']:10,.0f} {c['units']:16,.0f} {c['expected_loss']:14.3f}{mark}",
              file=sys.stderr)
    print(f"  expected loss: {chosen.loss_unit} on the presets' reference corpus ({chosen.curve_corpus}) after that "
          f"many {unit}s; a bigger corpus favours a bigger model: name one with --preset", file=sys.stderr)


def cmd_sample(args) -> int:
    from engines.core.trainer import load_model, sampling_checkpoint

    engine = get_engine(args.engine)
    if engine.as_text([]) is None and not args.out:
        raise StudioError(f"the {engine.name} engine's samples need a file to go to: add --out FILE "
                          f"({' or '.join(engine.export_formats)})")
    if args.out and Path(args.out).suffix.lower() not in engine.export_formats:    # before, not after, the work
        raise StudioError(f"cannot save {Path(args.out).name}: for a sample of the {engine.name} engine, name a "
                          f"{' or '.join(engine.export_formats)} file")
    if args.out:
        can_write(Path(args.out))
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint(engine)
    controls = engine.controls()
    given = {c.name: getattr(args, c.name) for c in controls if getattr(args, c.name) is not None}
    for c in controls:
        if c.kind == "strokes" and c.name in given:
            try:
                given[c.name] = json.loads(given[c.name])
            except json.JSONDecodeError as e:
                raise StudioError(f"{flag(c)}: not JSON ({e.msg} at character {e.pos}); give the strokes as "
                                  f"[[[x, y], ...], ...]") from None
    settings = resolve_settings(controls, given, called=flag)
    model, meta = load_model(engine, checkpoint, args.device)
    print(f"model: {sampling_checkpoint(engine, checkpoint)} (step {meta['step']}); seed {settings['seed']}",
          file=sys.stderr)
    chunks = []
    printable = engine.as_text([]) is not None and not args.quiet
    stream = printable and settings.get("variations", 1) == 1
    for chunk in engine.generate(model, meta, settings):
        if isinstance(chunk, Notice):
            print(f"note: {chunk.message}", file=sys.stderr)
            continue
        chunks.append(chunk)
        if stream:
            sys.stdout.write(engine.as_text([chunk]))
            sys.stdout.flush()
    if stream:
        print()
    elif printable:
        for i in range(settings["variations"]):
            print(f"--- variation {i + 1}\n" + engine.as_text(chunks, i))
    if args.out:
        from studio.library import sample_record
        try:
            path = engine.export(chunks, sample_record(engine.name, checkpoint, meta, settings), Path(args.out))
        except OSError as e:        # e.g. the disk filled while generating
            raise StudioError(f"could not save {args.out}: {e.strerror or e}; --seed {settings['seed']} makes the "
                              f"same sample again") from None
        print(f"saved {path}", file=sys.stderr)
    return 0


def can_write(path: Path) -> None:
    """Refuse a file that cannot be written before generating, not after (the sample would be lost). Nothing is
    opened or made here: the path may be a link, a pipe, or a file the user keeps."""
    folder = path.parent
    why = ("it is a folder" if path.is_dir() else
           f"the folder {folder} does not exist" if not folder.is_dir() else
           f"the folder {folder} cannot be written to" if not os.access(folder, os.W_OK) else
           "the file cannot be written to" if path.exists() and not os.access(path, os.W_OK) else None)
    if why:
        raise StudioError(f"cannot save to {path}: {why}; name a file in a folder you can write to")


def cmd_eval(args) -> int:
    from engines.core.trainer import load_model, validation

    engine = get_engine(args.engine)
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint(engine)
    model, meta = load_model(engine, checkpoint, args.device)
    first = engine.stages[0]
    first_config = (meta["builds_on"] or {}).get("model_config") if len(engine.stages) > 1 else meta["model_config"]
    config = config_from_dict(first.model_config_class, first_config, "checkpoint model_config")
    held_out = (meta.get("train_config") or {}).get("val_fraction", 0.1)
    corpus = engine.read_corpus(args.data, held_out if args.split == "validation" else 1.0, meta["corpus"], config,
                                skip_unseen=True)
    for warning in corpus.summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    stage = engine.stages[-1]
    for tally in validation(engine, model, corpus, stage, 64, 512, None):
        pass
    metrics = "".join(f"  {value:.4f} {unit}" for value, unit in tally.metrics(stage).values())
    print(f"{tally.loss:.4f} {stage.loss_unit}{metrics}  on {tally.units:,} {stage.unit}s of {args.data}")
    return 0


def cmd_info(args) -> int:
    from engines.core.checkpoint import find_checkpoint, read_meta

    def summary(path: Path) -> dict:
        meta = {"file": str(path), **read_meta(path)}
        meta.pop("optimizer_groups", None)
        meta["history_points"] = len(meta.pop("history", {}).get("steps", []))
        return meta

    folder = Path(args.checkpoint).expanduser()
    has_checkpoint = lambda d: any((d / f"{n}.safetensors").is_file() for n in ("best", "last"))
    if folder.is_dir() and not has_checkpoint(folder):      # a run of an engine with stages: one folder each
        stages = {d.name: summary(find_checkpoint(d)) for d in sorted(folder.iterdir())
                  if d.is_dir() and has_checkpoint(d)}
        if stages:
            print(json.dumps({"stages": stages}, indent=2))
            return 0
    print(json.dumps(summary(find_checkpoint(folder)), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "app"
    if command == "app":
        from studio.app import launch
        return launch()
    handler = {"engines": cmd_engines, "train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "info": cmd_info}
    try:
        return handler[command](args)
    except StudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and "allocate" not in str(e):       # torch's "can't allocate memory"
            raise
        advice = (": choose a smaller preset, or smaller settings with --set (e.g. model sizes, train.batch_size)"
                  if command == "train" else "")
        print(f"error: not enough memory for this model here{advice}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:         # Ctrl-C before training began, or a second one: no traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)        # nor from a third one while the process exits
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:           # `studio info ... | head` closed the pipe: nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Read every bundled ink model's built-in styles once and ship the states they leave the model in, so that a
machine's first line in one of them starts at once instead of after its primer (~500 points) is read.

    .venv/bin/python scripts/ship_ink_styles.py
    .venv/bin/python scripts/ship_ink_styles.py --default jws    # and name the writer Style 'default' writes in

Run it after a model is bundled in assets/ink/ (tests/test_ink_engine.py fails until it is). It writes
assets/ink/primed/ (~7 KB a style) and removes the states of weights no longer bundled. `--default`: the writer
whose lines the bench's recogniser reads best (`bench/ink.py --legibility ... --by-style`), written into each
bundled model's corpus meta (the weights are untouched, so their shipped states still apply).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.core.checkpoint import load_checkpoint, read_meta, save_checkpoint  # noqa: E402
from engines.core.trainer import load_model  # noqa: E402
from engines.ink import InkEngine  # noqa: E402
from engines.ink.data import Alphabet  # noqa: E402
from engines.ink.write import (SHIPPED_PRIMED, choose_primer, primed_tensors, read_primer_points,  # noqa: E402
                               shipped_file)


def check_writer(path: Path, writer: str) -> None:
    styles = read_meta(path, "ink")["corpus"].get("styles") or {}
    if writer not in styles:
        sys.exit(f"{path.name} has no style {writer!r}: {', '.join(sorted(styles)) or 'it has none'}")


def name_default(path: Path, writer: str) -> None:
    check_writer(path, writer)
    tensors, header = load_checkpoint(path, "ink")
    header["corpus"]["default_style"] = writer
    save_checkpoint(path, tensors, {k: v for k, v in header.items() if k not in ("format", "format_version")})
    print(f"{path.name}: Style 'default' writes in {writer}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default", metavar="WRITER", help="the built-in style Style 'default' writes in")
    args = parser.parse_args()
    engine = InkEngine()
    for path in engine.bundled_models() if args.default else []:     # every model has it before any is written
        check_writer(path, args.default)
    shipped = set()
    for path in engine.bundled_models():
        if args.default:
            name_default(path, args.default)
        model, header = load_model(engine, path, "cpu")
        meta = header["corpus"]
        alphabet = Alphabet.from_meta(meta["alphabet"])
        for style in sorted(meta.get("styles") or {}):
            primer, _ = choose_primer(meta, {"style": style}, np.random.default_rng(0))
            file = shipped_file(model, primer)
            save_checkpoint(file, primed_tensors(*read_primer_points(model, alphabet, primer)),
                            {"engine": "ink", "kind": "primed state"})      # unlike the cache's, a failure is an error
            shipped.add(file)
            print(f"{path.name}: {style} ({len(primer.points)} points) -> {file.relative_to(SHIPPED_PRIMED.parent)}")
    for old in set(SHIPPED_PRIMED.glob("*.safetensors")) - shipped:
        old.unlink()
        print(f"removed {old.name} (weights no longer bundled)")


if __name__ == "__main__":
    main()

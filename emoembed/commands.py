"""Verbs that train or run models: ``map`` (stage 1) and ``predict`` (label conversion with a codec)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emoembed.cli import verb
from emoembed.errors import EmoembedError


def _map_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="codec recipe YAML (default: mappings/default.yaml)")
    p.add_argument("--out", help="run directory (default: runs/map-<recipe name>)")
    p.add_argument("--baseline", action="store_true", help="also train the pairwise FFN baseline per direction and print both")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's training_state.pt")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _map_run(args: argparse.Namespace) -> int:
    from emoembed.data.registry import default_data_registry
    from emoembed.mapping import load_recipe, run_map

    recipe = load_recipe(args.recipe)
    if args.seed is not None:
        recipe["seed"] = args.seed
    out = Path(args.out or f"runs/map-{recipe['name']}")
    metrics = run_map(recipe, out, default_data_registry(), baseline=args.baseline, resume=args.resume, progress=not args.quiet)
    print(metrics["table"])
    print(f"\ncodec trained in {metrics['train_seconds']:.1f}s (best dev epoch {metrics['best_epoch']}); "
          f"test mean {metrics['test_mean']:.3f}" + (f", baseline {metrics['baseline_test_mean']:.3f}" if "baseline_test_mean" in metrics else ""))
    print(f"wrote {out}/model.safetensors, config.json, metrics.json, results.md")
    return 0


verb("map", "train the emotion codec on paired datasets and evaluate every direction")((_map_args, _map_run))


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a codec directory written by `emoembed map`")
    p.add_argument("--format", required=True, help="target label format")
    p.add_argument("--source-format", required=True, help="format of the input ratings")
    p.add_argument("--input", required=True, help="csv/tsv whose columns are the source format's variables (or one class column)")
    p.add_argument("--input-scale", help="rating scale of the input, e.g. 1,9 (default: the format's normalised range)")
    p.add_argument("--output-scale", help="scale for regression outputs, e.g. 1,5")
    p.add_argument("--output", help="csv to write (default: stdout)")


def _scale(text: str | None, name: str):
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise EmoembedError(f"--{name} must be two numbers 'low,high', got {text!r}") from None
    if not lo < hi:
        raise EmoembedError(f"--{name}: low must be below high, got {text!r}")
    return lo, hi


def _predict_run(args: argparse.Namespace) -> int:
    from emoembed.codec import EmotionCodec
    from emoembed.tables import read_input_table, write_table

    codec = EmotionCodec.from_pretrained(args.model)
    src = codec.format(args.source_format)
    codec.format(args.format)
    frame = read_input_table(Path(args.input))
    if src.kind == "multiclass" and not set(src.variables) <= set(frame.columns):
        if frame.shape[1] != 1:
            raise EmoembedError(f"{args.input}: for the class format {src.name!r} give one column of class names "
                                f"or one column per class {list(src.variables)}")
    else:
        missing = [v for v in src.variables if v not in frame.columns]
        if missing:
            raise EmoembedError(f"{args.input}: missing column(s) {missing} for format {src.name!r}; columns: {list(frame.columns)}")
    out = codec.convert(frame, args.source_format, args.format, _scale(args.input_scale, "input-scale"), _scale(args.output_scale, "output-scale"))
    extra = [c for c in frame.columns if c not in src.variables]
    for c in reversed(extra):  # keep identifying columns (word, id…) in front
        out.insert(0, c, frame[c].to_numpy())
    write_table(out, Path(args.output) if args.output else None)
    if args.output:
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    return 0


verb("predict", "convert ratings from one label format into another with a trained codec")((_predict_args, _predict_run))

"""``emoembed map`` (stage 1: the codec) and ``emoembed fit-encoder`` (stage 2: a word, text or image encoder)."""
from __future__ import annotations

import argparse
from pathlib import Path

from emoembed.cli.common import test_table, verb
from emoembed.errors import ConfigError, EmoembedError
from emoembed.runlock import run_folder_lock
from emoembed.threads import add_threads_argument


def _map_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="codec recipe YAML (default: mappings/default.yaml)")
    p.add_argument("--out", help="run directory (default: runs/map-<recipe name>)")
    p.add_argument("--baseline", action="store_true", help="also train the pairwise FFN baseline per direction and print both")
    p.add_argument("--extend", metavar="CODEC_DIR", help="add the recipe's new formats to this trained codec; its own "
                   "encoders and heads stay frozen, so models trained on it can predict the new formats zero-shot")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's training_state.pt")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    _recipe_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars and no per-epoch lines")
    add_threads_argument(p)


def _recipe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe key, dotted, value as YAML (repeatable), e.g. --set training.epochs=4")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe as YAML and exit")


def _map_run(args: argparse.Namespace) -> int:
    from emoembed.data.registry import default_data_registry
    from emoembed.recipes import load_codec_recipe, parse_sets, recipe_yaml
    from emoembed.training.codec import run_map

    sets = parse_sets(args.set)
    overrides = ({"seed": args.seed} if args.seed is not None else {}) | sets
    recipe = load_codec_recipe(args.recipe, overrides, labels={} if "seed" in sets else {"seed": "--seed"})
    if args.print_config:
        print(recipe_yaml(recipe), end="")
        return 0
    out = Path(args.out or f"runs/map-{recipe['name']}")
    if args.extend and Path(args.extend).resolve() == out.resolve():
        raise EmoembedError(f"--out {out} is the codec being extended; write the extended codec to a new directory")
    with run_folder_lock(out, "map", log=print):
        metrics = run_map(recipe, out, default_data_registry(), baseline=args.baseline, resume=args.resume,
                          progress=not args.quiet, extend=args.extend)
    print(metrics["table"])
    print(f"\ncodec trained in {metrics['train_seconds']:.1f}s (best dev epoch {metrics['best_epoch']}); "
          f"test mean {metrics['test_mean']:.3f}"
          + (f" (pooled, without domains: {metrics['test_pooled_mean']:.3f})" if "test_pooled_mean" in metrics else "")
          + (f", baseline {metrics['baseline_test_mean']:.3f}" if "baseline_test_mean" in metrics else ""))
    print(f"wrote {out}/model.safetensors, config.json, recipe.json, metrics.json, results.md")
    return 0


verb("map", "train the emotion codec on paired datasets and evaluate every direction")((_map_args, _map_run))


def _fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modality", required=True, choices=["word", "text", "image"], help="kind of content")
    p.add_argument("--codec", help="codec directory written by `emoembed map` (its heads stay frozen); required "
                   "except with --print-config")
    p.add_argument("--data", help="dataset card(s), NAME[:FORMAT][,NAME…] (default: the recipe's data)")
    p.add_argument("--recipe", help="encoder recipe YAML (default: encoders/<modality default>.yaml)")
    p.add_argument("--augment", help="formats to add as codec-made synthetic labels, e.g. be5,nrc10")
    p.add_argument("--heads", choices=["codec", "direct"], help="direct = the no-codec baseline (trainable heads)")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's training_state.pt")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument("--device", help="auto (default), cpu, cuda or mps")
    _recipe_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars and no per-epoch lines")
    add_threads_argument(p)


_FLAG_LABELS = {"data": "--data", "augment": "--augment", "heads": "--heads", "seed": "--seed",
                "training.epochs": "--epochs", "training.device": "--device"}


def _fit_run(args: argparse.Namespace) -> int:
    from emoembed.data.registry import default_data_registry
    from emoembed.recipes import load_encoder_recipe, parse_sets, recipe_yaml
    from emoembed.training.encoder import run_fit_encoder

    flags = {"data": args.data and [s for s in args.data.split(",") if s],
             "augment": None if args.augment is None else [s for s in args.augment.split(",") if s],
             "heads": args.heads, "seed": args.seed, "training.epochs": args.epochs, "training.device": args.device}
    given = {k: v for k, v in flags.items() if v is not None and v != ""}
    sets = parse_sets(args.set)
    labels = {k: _FLAG_LABELS[k] for k in given if k not in sets}  # errors name what the user typed
    recipe = load_encoder_recipe(args.recipe, args.modality, given | sets, labels=labels)
    if args.print_config:
        print(recipe_yaml(recipe), end="")
        return 0
    if not args.codec:
        raise ConfigError("fit-encoder: --codec is required (the codec directory written by `emoembed map`; "
                          "e.g. --codec runs/map-default)")
    out = Path(args.out or f"runs/{recipe['name']}")
    with run_folder_lock(out, "fit-encoder", log=print):
        metrics = run_fit_encoder(recipe, Path(args.codec), default_data_registry(), out, resume=args.resume, progress=not args.quiet)
    print(test_table(metrics["test"]))
    print(f"\ntrained in {metrics['train_seconds']:.1f}s (best dev epoch {metrics['best_epoch']}, dev {metrics['dev_score']:.3f}); "
          + (f"test mean {metrics['test_mean']:.3f}" if metrics["test_mean"] == metrics["test_mean"] else "test mean undefined"))
    print(f"wrote {out}/model.safetensors, config.json, recipe.json, metrics.json")
    return 0


verb("fit-encoder", "train a word, text or image encoder into the frozen codec's emotion space")((_fit_args, _fit_run))

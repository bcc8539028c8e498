"""``emoembed pretrain``: CARL pre-training of a text backbone (:mod:`emoembed.training.pretrain`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from emoembed.cli.common import verb

PRETRAIN_RECIPE = "text-minilm-carl-pretrain.yaml"


def _pretrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codec", required=True, help="codec directory (its heads stay frozen and unused; it makes the "
                   "(valence, arousal) labels of datasets without them)")
    p.add_argument("--recipe", help="encoder recipe with objective carl (default: encoders/text-minilm-carl-pretrain.yaml)")
    p.add_argument("--data", help="dataset card(s), NAME[:FORMAT][,NAME…] (default: the recipe's data)")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's training_state.pt")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument("--no-mccl", action="store_true", help="ablation: PTD only")
    p.add_argument("--no-ptd", action="store_true", help="ablation: MCCL only")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (dotted, value as YAML), e.g. --set training.batch_size=64; repeatable")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe as YAML and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _pretrain_run(args: argparse.Namespace) -> int:
    from emoembed.data.registry import default_data_registry
    from emoembed.recipes import load_encoder_recipe, parse_sets, recipe_yaml
    from emoembed.settings import resource_dir
    from emoembed.training.pretrain import run_pretrain

    flags = {"data": args.data and [s for s in args.data.split(",") if s], "seed": args.seed,
             "training.epochs": args.epochs, "objective.mccl": False if args.no_mccl else None,
             "objective.ptd": False if args.no_ptd else None}
    overrides = {k: v for k, v in flags.items() if v is not None and v != ""} | parse_sets(args.set)
    recipe = load_encoder_recipe(args.recipe or resource_dir("encoders") / PRETRAIN_RECIPE, "text", overrides)
    if args.print_config:
        print(recipe_yaml(recipe), end="")
        return 0
    out = Path(args.out or f"runs/{recipe['name']}")
    metrics = run_pretrain(recipe, Path(args.codec), default_data_registry(), out, resume=args.resume, progress=not args.quiet)
    last = metrics["history"][-1] if metrics["history"] else {}
    print(f"pre-trained {metrics['epochs']} epoch(s) on {metrics['train_items']} in {metrics['train_seconds'] / 60:.1f} min; "
          f"last epoch: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k in ("mccl", "ptd", "ptd_acc", "ptd_auc")))
    print(f"wrote {out}/backbone (use it as encoder.backbone in a recipe, or: emoembed evaluate --probe --model {out}/backbone)")
    return 0


verb("pretrain", "pre-train a text backbone with CARL alone (MCCL + PTD), the CARL paper's setting")((_pretrain_args, _pretrain_run))

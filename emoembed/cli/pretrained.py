"""``emoembed pretrained build NAME``: retrain a packaged model (``emoembed list pretrained``) from its entry in
``pretrained/models.yaml`` on the data catalogue (``EMOEMBED_DATA``), score it with ``emoembed evaluate``'s code on
the test splits its card reports, write its model card, and say whether the weights are bit-identical to the
shipped ones."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emoembed.cli.common import verb


def _pretrained_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["build", "card", "calibrate"], help="build: retrain NAME from its recipe and write its card; "
                   "card: only re-score the built weights and rewrite the card; calibrate: fit a packaged codec's "
                   "multilabel decision rules on its pairs' dev split (as `map` does after training) and write them "
                   "into its config.json and those of the models built on it, or a content model's own rules on its "
                   "outputs for its datasets' dev split (as `fit-encoder` does; --out: a build folder), weights unchanged")
    p.add_argument("name", help="a name of `emoembed list pretrained` (with or without emoembed/)")
    p.add_argument("--out", help="folder to write (default: the packaged model's own folder, pretrained/NAME)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="build only: override a recipe key (dotted, value as YAML; repeatable) for a quick smoke build, "
                   "e.g. --set training.max_train_items=300 --set training.epochs=1; needs --out (the packaged folder "
                   "only ever holds the catalogue's recipe) and skips the comparison with the shipped weights")


def build_and_card(name: str, out: Path, progress: bool = False, log=print, train: bool = True,
                   overrides: dict | None = None) -> dict:
    """Build ``name`` into ``out`` (``train=False``: use the weights already there; ``overrides``: recipe keys of a
    smoke build), evaluate it on its card's test splits and write ``README.md`` + ``card.json``."""
    from emoembed.codec import EmotionCodec
    from emoembed.cli.codec_eval import codec_evaluation
    from emoembed.cli.predict import evaluate_rows
    from emoembed.data.registry import default_data_registry
    from emoembed.model import EmotionModel
    from emoembed.model_cards import training_sources, write_card
    from emoembed.training.pretrained_build import build_pretrained, build_spec, recipe_for

    spec = build_spec(name)
    reg = default_data_registry()
    if train:
        build = build_pretrained(name, out, reg, progress=progress, log=log, overrides=overrides)
    else:
        from emoembed.training.pretrained_build import file_sha256

        old = json.loads((out / "card.json").read_text(encoding="utf-8")) if (out / "card.json").is_file() else {}
        build = {"recipe": recipe_for(spec), "train_seconds": old.get("train_seconds"),
                 "sha256": file_sha256(out / "model.safetensors")}
    data = ",".join(spec.get("evaluate", []))
    codec_sources: list[str] = []
    if spec["kind"] == "codec":
        obj = EmotionCodec.from_pretrained(out)
        scores = codec_evaluation(obj, data, "test")
    else:
        obj = EmotionModel.from_pretrained(out)
        scores = evaluate_rows(obj, data, None, "test")
        codec_sources = training_sources(reg, "codec", recipe_for(build_spec(spec["codec"])))
    return write_card(out, name, spec, obj, reg, scores, build, codec_sources)


def _pretrained_run(args: argparse.Namespace) -> int:
    from emoembed.model_zoo import PREFIX, zoo_dir
    from emoembed.training.pretrained_build import same_weights

    name = args.name[len(PREFIX):] if args.name.startswith(PREFIX) else args.name
    overrides = None
    if args.set:
        from emoembed.errors import ConfigError
        from emoembed.recipes import parse_sets

        if args.action != "build":
            raise ConfigError("--set is for `pretrained build` (a smoke build with a changed recipe)")
        if not args.out or Path(args.out).resolve() == (zoo_dir() / name).resolve():
            raise ConfigError("--set changes the recipe, so the build is not the shipped model: give --out DIR "
                              f"(not the packaged folder {zoo_dir() / name})")
        overrides = parse_sets(args.set)
    if args.action == "calibrate":
        from emoembed.data.registry import default_data_registry
        from emoembed.training.pretrained_build import calibrate_packaged

        rules = calibrate_packaged(name, default_data_registry(), lambda m: print(m, file=sys.stderr),
                                   Path(args.out) if args.out else None)
        for fmt, rule in rules.items():
            print(f"{fmt}: at most {rule['max_labels']} label(s), at least {rule['min_labels']}")
        return 0
    shipped = zoo_dir() / name / "model.safetensors"
    before = None
    if shipped.is_file() and args.action == "build" and overrides is None:  # keep the shipped weights to compare against, also when --out is the packaged folder
        import tempfile

        before = Path(tempfile.mkdtemp(prefix="emoembed-shipped-")) / "model.safetensors"
        before.write_bytes(shipped.read_bytes())
    out = Path(args.out) if args.out else zoo_dir() / name
    card = build_and_card(name, out, args.progress, log=lambda m: print(m, file=sys.stderr), train=args.action == "build",
                          overrides=overrides)
    print(f"wrote {out}/model.safetensors, config.json, card.json, README.md ({card['size_bytes'] / 1e6:.2f} MB)")
    for key, r in card["scores"].items():
        print(f"  test {key}: {r['primary']:.3f}")
    if before is not None and args.action == "build":
        same, how = same_weights(before, out / "model.safetensors")
        print(("bit-identical to" if same else "DIFFERENT from") + f" the shipped weights: {how}")
        before.unlink()
        before.parent.rmdir()
    elif overrides is not None:
        print(f"smoke build with --set {', '.join(args.set)}: not compared with the shipped weights")
    return 0


verb("pretrained", "retrain a packaged pretrained model from its recipe (bit-identical on CPU) and write its model card")(
    (_pretrained_args, _pretrained_run))

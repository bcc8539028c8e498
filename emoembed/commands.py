"""Verbs that train or run models: ``map`` (stage 1), ``fit-encoder`` (stage 2), ``predict`` and ``evaluate``."""
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
    p.add_argument("--extend", metavar="CODEC_DIR", help="add the recipe's new formats to this trained codec; its own "
                   "encoders and heads stay frozen, so models trained on it can predict the new formats zero-shot")
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
    if args.extend and Path(args.extend).resolve() == out.resolve():
        raise EmoembedError(f"--out {out} is the codec being extended; write the extended codec to a new directory")
    metrics = run_map(recipe, out, default_data_registry(), baseline=args.baseline, resume=args.resume,
                      progress=not args.quiet, extend=args.extend)
    print(metrics["table"])
    print(f"\ncodec trained in {metrics['train_seconds']:.1f}s (best dev epoch {metrics['best_epoch']}); "
          f"test mean {metrics['test_mean']:.3f}"
          + (f" (pooled, without domains: {metrics['test_pooled_mean']:.3f})" if "test_pooled_mean" in metrics else "")
          + (f", baseline {metrics['baseline_test_mean']:.3f}" if "baseline_test_mean" in metrics else ""))
    print(f"wrote {out}/model.safetensors, config.json, metrics.json, results.md")
    return 0


verb("map", "train the emotion codec on paired datasets and evaluate every direction")((_map_args, _map_run))


def _fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modality", required=True, choices=["word", "text", "image"], help="kind of content")
    p.add_argument("--codec", required=True, help="codec directory written by `emoembed map` (its heads stay frozen)")
    p.add_argument("--data", help="dataset card(s), NAME[:FORMAT][,NAME…] (default: the recipe's data)")
    p.add_argument("--recipe", help="encoder recipe YAML (default: encoders/<modality default>.yaml)")
    p.add_argument("--augment", help="formats to add as codec-made synthetic labels, e.g. be5,nrc10")
    p.add_argument("--heads", choices=["codec", "direct"], help="direct = the no-codec baseline (trainable heads)")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's training_state.pt")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument("--device", help="auto (default), cpu, cuda or mps")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _fit_run(args: argparse.Namespace) -> int:
    from emoembed.data.registry import default_data_registry
    from emoembed.training import (
        load_encoder_recipe,
        resolve_encoder_recipe,
        run_fit_encoder,
    )

    recipe = load_encoder_recipe(args.recipe, args.modality)
    if args.data:
        recipe["data"] = [s for s in args.data.split(",") if s]
    if args.augment is not None:
        recipe["augment"] = [s for s in args.augment.split(",") if s]
    if args.heads:
        recipe["heads"] = args.heads
    if args.seed is not None:
        recipe["seed"] = args.seed
    if args.epochs is not None:
        recipe["training"]["epochs"] = args.epochs
    if args.device:
        recipe["training"]["device"] = args.device
    recipe = resolve_encoder_recipe({k: v for k, v in recipe.items() if k != "source"}, recipe["source"])
    out = Path(args.out or f"runs/{recipe['name']}")
    metrics = run_fit_encoder(recipe, Path(args.codec), default_data_registry(), out, resume=args.resume, progress=not args.quiet)
    print(test_table(metrics["test"]))
    print(f"\ntrained in {metrics['train_seconds']:.1f}s (best dev epoch {metrics['best_epoch']}, dev {metrics['dev_score']:.3f}); "
          f"test mean {metrics['test_mean']:.3f}")
    print(f"wrote {out}/model.safetensors, config.json, recipe.json, metrics.json")
    return 0


def test_table(rows: dict[str, dict]) -> str:
    lines = ["| dataset | format | n | metric | score | per variable |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        per = " ".join(f"{v[:4]} {m.get('pearson', m.get('f1', float('nan'))):.3f}" for v, m in r.get("per_variable", {}).items())
        zs = " (zero-shot)" if r.get("zero_shot") else ""
        lines.append(f"| {name} | {r.get('format', '')}{zs} | {r['n']} | {r['metric']} | {r['primary']:.3f} | {per} |")
    return "\n".join(lines)


verb("fit-encoder", "train a word, text or image encoder into the frozen codec's emotion space")((_fit_args, _fit_run))


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model directory (fit-encoder) or a codec directory (map)")
    p.add_argument("--format", required=True, help="target label format (any format the codec knows)")
    p.add_argument("items", nargs="*", help="words / texts / image paths to predict (or use --input)")
    p.add_argument("--input", help="csv/tsv/jsonl file: content column (models) or the source format's columns (codecs)")
    p.add_argument("--column", help="column of --input holding the content (default: the only column, or "
                                    "word/text/image/content/path)")
    p.add_argument("--scale", default="normalized", help="models: normalized (default), source, or low,high")
    p.add_argument("--source-format", help="codecs: format of the input ratings")
    p.add_argument("--input-scale", help="codecs: rating scale of the input, e.g. 1,9 (default: the format's normalised range)")
    p.add_argument("--output-scale", help="codecs: scale for regression outputs, e.g. 1,5")
    p.add_argument("--domain", help="codecs trained with domains: convert as the raters of this paired dataset would "
                   "(default: the pooled mapping); an unknown name lists the codec's domains")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", help="csv/tsv to write (default: stdout)")
    p.add_argument("--codec", help="models: decode with this codec instead, one extended from the model's own by "
                   "`map --extend` (its new formats come zero-shot)")


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


CONTENT_COLUMNS = ("content", "word", "text", "image", "path", "sentence")


def content_column(frame, column: str | None, source: str) -> list:
    if column:
        if column not in frame.columns:
            raise EmoembedError(f"{source}: no column {column!r}; columns: {list(frame.columns)}")
        return frame[column].tolist()
    if frame.shape[1] == 1:
        return frame.iloc[:, 0].tolist()
    for c in CONTENT_COLUMNS:
        if c in frame.columns:
            return frame[c].tolist()
    raise EmoembedError(f"{source}: which column holds the content? pass --column (columns: {list(frame.columns)})")


def _predict_run(args: argparse.Namespace) -> int:
    from emoembed.codec import EmotionCodec
    from emoembed.model import load_model
    from emoembed.tables import read_input_table, write_table

    model = load_model(args.model)
    if isinstance(model, EmotionCodec):
        if args.codec:
            raise EmoembedError("--codec is for content models; --model is already a codec")
        return _convert_labels(model, args)
    model = with_codec_option(model, args.codec)
    if args.source_format or args.domain:
        raise EmoembedError("--source-format and --domain are for codec directories; this is a content model (give items or --input)")
    model.format(args.format)
    if args.input and args.items:
        raise EmoembedError("give items on the command line or --input FILE, not both")
    if args.input:
        frame = read_input_table(Path(args.input))
        items = content_column(frame, args.column, args.input)
    elif args.items:
        items = list(args.items)
    else:
        raise EmoembedError("nothing to predict: give items (words, texts, image paths) or --input FILE")
    if model.modality == "image":  # folders and .txt lists of paths → image files
        from emoembed.data.images import expand_image_inputs

        items = expand_image_inputs(items)
    scale = args.scale if args.scale in ("normalized", "normalised", "source") else _scale(args.scale, "scale")
    out = model.predict(items, args.format, scale=scale, batch_size=args.batch_size)
    out = out.reset_index()
    write_table(out, Path(args.output) if args.output else None)
    if args.output:
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    return 0


def with_codec_option(model, codec_dir: str | None):
    """``model`` decoding with the codec in ``codec_dir`` (an extension of its own), or unchanged."""
    if not codec_dir:
        return model
    from emoembed.codec import EmotionCodec

    return model.with_codec(EmotionCodec.from_pretrained(codec_dir))


def _convert_labels(codec, args: argparse.Namespace) -> int:
    from emoembed.tables import read_input_table, write_table

    if not args.source_format or not args.input:
        raise EmoembedError("a codec converts ratings: give --source-format FORMAT and --input FILE")
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
    out = codec.convert(frame, args.source_format, args.format, _scale(args.input_scale, "input-scale"),
                        _scale(args.output_scale, "output-scale"), domain=args.domain)
    extra = [c for c in frame.columns if c not in src.variables]
    for c in reversed(extra):  # keep identifying columns (word, id…) in front
        out.insert(0, c, frame[c].to_numpy())
    write_table(out, Path(args.output) if args.output else None)
    if args.output:
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    return 0


verb("predict", "predict any label format for words/texts/images with a trained model, or convert ratings with a codec")((_predict_args, _predict_run))


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a model directory written by fit-encoder")
    p.add_argument("--data", help="dataset card(s), NAME[:FORMAT][,NAME…]")
    p.add_argument("--format", help="format to evaluate in (default: the dataset's first format the model knows)")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics")
    p.add_argument("--codec", help="decode with this codec, extended from the model's own by `map --extend`")
    suite = p.add_argument_group("paper tables (instead of --model/--data)")
    suite.add_argument("--suite", help="a suite name (paper = suites/paper.yaml) or YAML file: trains the codec and, per "
                       "modality, Bsl/Sng/Aug/Mlt and the zero-shot rows on whatever data is present")
    suite.add_argument("--out", help="suite run directory (default: runs/suite-<name>)")
    suite.add_argument("--modalities", help="comma-separated sections to run (default: all the suite has), e.g. word,text")
    suite.add_argument("--seeds", help="comma-separated seeds (default: the suite's), e.g. 13,14,15")
    suite.add_argument("--quick", action="store_true", help="smoke-test size (the suite's `quick` block)")


def _evaluate_run(args: argparse.Namespace) -> int:
    import json

    from emoembed.data.registry import default_data_registry
    from emoembed.model import EmotionModel
    from emoembed.training import parse_data_spec, task_from_dataset

    if args.suite:
        return _run_suite(args)
    if not args.model or not args.data:
        raise EmoembedError("give --model DIR and --data NAME (or --suite paper for the paper tables)")
    model = with_codec_option(EmotionModel.from_pretrained(args.model), args.codec)
    if args.format:
        model.format(args.format)
    reg = default_data_registry()
    rows = {}
    for name, fmt in parse_data_spec(args.data):
        card = reg.get(name)
        if card.type != "dataset":
            raise EmoembedError(f"{name!r} is a {card.type} card; evaluate needs a dataset card")
        if card.modality and card.modality != model.modality and not (model.modality == "text" and card.modality == "word"):
            raise EmoembedError(f"dataset {name!r} holds {card.modality}s; this model encodes {model.modality}s")
        task = task_from_dataset(reg.dataset(name), fmt or args.format, list(model.formats))
        rows[name] = model.evaluate(task, args.split, batch_size=256)
    if args.json:
        print(json.dumps({"model": args.model, "split": args.split, "results": rows}, indent=1, default=float))
    else:
        print(test_table(rows))
    return 0


def _run_suite(args: argparse.Namespace) -> int:
    from emoembed.data.registry import default_data_registry
    from emoembed.suite import load_suite, run_suite

    if args.model or args.data:
        raise EmoembedError("--suite trains its own models; leave out --model and --data")
    suite = load_suite(args.suite)
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        raise EmoembedError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    out = Path(args.out or f"runs/suite-{suite['name']}")
    results = run_suite(suite, out, default_data_registry(), modalities, seeds, args.quick,
                        log=lambda m: print(m, file=sys.stderr))
    print(results.markdown())
    print(f"wrote {out}/suite.md, suite.csv, suite.json")
    return 0


verb("evaluate", "score a trained model on a dataset split (supervised, or zero-shot in a format it never saw)")((_evaluate_args, _evaluate_run))

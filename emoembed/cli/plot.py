"""``emoembed plot heads | content``: 2-D maps of the emotion space (PNG + CSV), drawn by :mod:`emoembed.plotting`."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: `emoembed --help` does not load pandas
    import pandas as pd

from emoembed.cli.common import verb
from emoembed.errors import ConfigError, DataError, EmoembedError
from emoembed.plotting import (
    DEFAULT_LIMIT,
    METHODS,
    RANDOM_STATE,
    _codec_formats,
    _draw_content,
    _draw_heads,
    _gold_frame,
    _png_target,
    content_coordinates,
    head_coordinates,
    tie_similarity,
    variance_text,
)


def _plot_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="plot_cmd", required=True)
    h = sub.add_parser("heads", help="the codec's head directions (one point per format variable); equivalent "
                                     "variables share a colour")
    h.add_argument("--model", required=True, help="codec directory (map) or model directory (fit-encoder)")
    h.add_argument("--formats", help="comma-separated formats to draw (default: all the codec knows)")
    h.add_argument("--method", default="pca", choices=METHODS, help="pca (default) or umap (needs umap-learn)")
    h.add_argument("--no-labels", action="store_true", help="do not write variable names next to the points")
    h.add_argument("--out", required=True, help="PNG to write; the coordinates go to the same name with .csv")
    c = sub.add_parser("content", help="embeddings of words/texts/images, coloured by a gold label or the model's prediction")
    c.add_argument("--model", required=True, help="model directory written by fit-encoder")
    c.add_argument("items", nargs="*", help="words / texts / image paths (or use --data or --input)")
    c.add_argument("--data", help="dataset card NAME[:FORMAT]: its items, coloured by gold labels when it has --color")
    c.add_argument("--split", default="test", choices=["train", "dev", "test"], help="split of --data (default test)")
    c.add_argument("--input", help="csv/tsv/jsonl file with the content")
    c.add_argument("--column", help="column of --input holding the content")
    c.add_argument("--no-header", action="store_true", help="--input has no header line: every line is an item (without it a one-column .csv/.tsv whose first line reads like an item is an error)")
    c.add_argument("--color", required=True, help="variable to colour by: valence, joy, be5.joy …; top (largest variable, e.g. be5.top); label (class formats)")
    c.add_argument("--format", help="format of --color (default: the dataset's, else the first model format that has it)")
    c.add_argument("--color-source", default="auto", choices=["auto", "gold", "prediction"],
                   help="auto (default): gold labels when --data has the variable, else the model's prediction")
    c.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"at most N items, a fixed random sample (default {DEFAULT_LIMIT}; 0 = all)")
    c.add_argument("--method", default="pca", choices=METHODS, help="pca (default) or umap (needs umap-learn)")
    c.add_argument("--labels", choices=["auto", "yes", "no"], default="auto", help="write items next to points (auto: ≤ 60 items)")
    c.add_argument("--batch-size", type=int, default=64)
    c.add_argument("--out", required=True, help="PNG to write; the coordinates go to the same name with .csv")


def _plot_run(args: argparse.Namespace) -> int:
    from emoembed.model import load_model

    out = _png_target(args.out)
    if not Path(args.model).is_dir():
        raise ConfigError(f"--model {args.model}: no such directory")
    if args.plot_cmd == "content":
        return _plot_content_run(args, out)
    model = load_model(args.model)
    formats = _codec_formats(getattr(model, "codec", model), args.formats)
    coords = head_coordinates(model, args.method, formats)
    path = _draw_heads(coords, out, args.method, not args.no_labels, None, 110)
    sim = tie_similarity(model, formats)
    tied = coords[coords["tied"]]
    print(f"wrote {path} and {path.with_suffix('.csv')} ({len(coords)} head rows of {coords['format'].nunique()} formats; "
          f"{len(tied)} rows in {tied['group'].nunique()} tied equivalence classes)")
    print(variance_text(coords.attrs["explained_variance"], args.method))
    tied_text = f"{sim['tied_mean_cos']:.3f} (n={sim['tied_pairs']})" if sim["tied_pairs"] else "none (no class has two members here)"
    print(f"mean cosine of head rows: tied pairs {tied_text}, "
          f"untied cross-format pairs {sim['untied_mean_cos']:.3f} (n={sim['untied_pairs']})")
    return 0


def _plot_content_run(args: argparse.Namespace, out: Path) -> int:
    from emoembed.codec import EmotionCodec
    from emoembed.tables import content_column
    from emoembed.model import load_model

    sources = [bool(args.data), bool(args.input), bool(args.items)]
    if sum(sources) == 0:
        raise EmoembedError("nothing to plot: give items, --input FILE or --data NAME")
    if sum(sources) > 1:
        raise EmoembedError("give only one of: items on the command line, --input FILE, --data NAME")
    if args.limit < 0:
        raise ConfigError(f"--limit must be 0 (all) or a positive number, got {args.limit}")
    if args.color_source == "gold" and not args.data:
        raise ConfigError("--color-source gold needs --data (items and --input have no gold labels)")
    if args.input and not Path(args.input).is_file():
        raise DataError(f"--input {args.input}: no such file")
    model = load_model(args.model)
    if isinstance(model, EmotionCodec):
        raise ConfigError(f"--model {args.model} is a codec; content plots need a model written by fit-encoder "
                          "(`emoembed plot heads` draws a codec)")
    if args.format:
        model.format(args.format)
    gold, where = None, ""
    if args.data:
        items, gold, where = _dataset_items(model, args)
    elif args.input:
        from emoembed.tables import read_input_table

        items = content_column(read_input_table(Path(args.input), args.no_header, args.column), args.column, args.input)
        where = args.input
    else:
        items = list(args.items)
    if not args.data and model.modality == "image":
        from emoembed.data.images import expand_image_inputs

        items = expand_image_inputs(items)
    if not items:
        raise DataError(f"no items to plot{' in ' + where if where else ''}")
    total = len(items)
    if args.limit and total > args.limit:
        pick = np.sort(np.random.default_rng(RANDOM_STATE).choice(total, args.limit, replace=False))
        items = [items[i] for i in pick]
        if gold is not None:
            gold = _take(gold, pick)
    if gold is not None and args.color_source == "prediction":
        gold = None
    elif gold is not None and args.color_source == "gold":
        var = args.color.split(".", 1)[-1] if "." in args.color and not args.format else args.color
        if var not in gold.columns:
            raise ConfigError(f"--color {args.color}: {where} has no gold variable {var!r} in format "
                              f"{gold.attrs['format']!r}; it has {list(gold.columns)}")
    coords = content_coordinates(model, items, args.color, args.format, args.method, gold, args.batch_size)
    path = _draw_content(coords, out, model.modality, args.method, {"auto": None, "yes": True, "no": False}[args.labels], None, 110)
    a = coords.attrs
    sample = f", a fixed random {len(items)} of {total}" if len(items) < total else ""
    dropped = f", {a['dropped']} without an embedding left out" if a["dropped"] else ""
    print(f"wrote {path} and {path.with_suffix('.csv')} ({len(coords)} {model.modality}s{sample}{dropped})")
    print(f"colour: {a['color_format']}.{a['color_by']} from {a['color_source']}"
          + (f" labels of {where}" if a["color_source"] == "gold" else " of the model"))
    print(variance_text(a["explained_variance"], args.method))
    return 0


def _take(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    out = frame.iloc[rows].reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def _dataset_items(model: Any, args: argparse.Namespace) -> tuple[list, pd.DataFrame, str]:
    from emoembed.data.registry import default_data_registry
    from emoembed.tasks import parse_data_spec, task_from_dataset

    spec = parse_data_spec(args.data)
    if len(spec) != 1:
        raise ConfigError(f"--data: give one dataset NAME[:FORMAT], got {args.data!r}")
    name, data_fmt = spec[0]
    reg = default_data_registry()
    card = reg.get(name)
    if card.type != "dataset":
        raise ConfigError(f"--data {name!r} is a {card.type} card; plot content needs a dataset card")
    if card.modality and card.modality != model.modality and not (model.modality == "text" and card.modality == "word"):
        raise ConfigError(f"--data {name!r} holds {card.modality}s; this model encodes {model.modality}s")
    ds = reg.dataset(name)
    fmt_names = list(ds.formats)
    if data_fmt is None:  # the dataset format to take gold labels from
        head, _, tail = args.color.partition(".")
        var = tail if tail and not args.format else args.color
        having = [f for f in fmt_names if var in ds.formats[f].variables or var == "top" or (var == "label" and ds.formats[f].is_class_format)]
        if args.format in fmt_names:
            data_fmt = args.format
        elif tail and not args.format and head in fmt_names:
            data_fmt = head
        else:
            data_fmt = (having or fmt_names)[0]
    task = task_from_dataset(ds, data_fmt)
    items = list(task.items[args.split])
    if not items:
        raise DataError(f"--data {name}: the {args.split} split has no items with {data_fmt} labels")
    return items, _gold_frame(task.labels[args.split], task.fmt), f"{name} ({args.split}, {data_fmt})"


verb("plot", "2-D maps (PNG + CSV): the codec's head directions, or content embeddings coloured by a label")((_plot_args, _plot_run))

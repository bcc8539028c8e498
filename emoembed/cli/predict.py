"""``emoembed predict`` (labels for words/texts/images, or converted ratings) and ``emoembed evaluate`` (a model on a
dataset split, or the paper's suite of tables)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emoembed.cli.common import parse_scale, test_table, verb, with_codec_option
from emoembed.cli.inference import add_predict_options, check_streaming_options, stream_predict, streamable
from emoembed.errors import EmoembedError, index_row_names
from emoembed.io import check_output_path
from emoembed.runlock import run_folder_lock
from emoembed.threads import add_threads_argument


def _predict_args(p: argparse.ArgumentParser) -> None:
    from emoembed.formats import default_registry
    from emoembed.scales import formats_range_help

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = formats_range_help(default_registry())
    p.add_argument("--model", required=True, help="a model directory (fit-encoder), a codec directory (map) or a "
                   "packaged model emoembed/NAME (`emoembed list pretrained`)")
    p.add_argument("--format", required=True, help="target label format (any format the codec knows)")
    p.add_argument("items", nargs="*", help="words / texts / image paths to predict (or use --input)")
    p.add_argument("--input", help="csv/tsv/jsonl/parquet file: content column (models) or the source format's columns (codecs)")
    p.add_argument("--column", help="models: column of --input holding the content (default: the only column, or "
                                    "word/text/image/content/path); codecs: the column of class names (comma-separated "
                                    "for multilabel) of a class --source-format. Matched case-insensitively")
    p.add_argument("--no-header", action="store_true", help="--input has no header line: every line is an item (one "
                   "column) or a row whose columns are named 1, 2, … by position (several; --column 2, --columns "
                   "valence=2,word=1; outputs name them column_1 … or as --columns says). Without it a one-column "
                   ".csv/.tsv whose first line reads like an item, not a column name, is an error")
    p.add_argument("--columns", help="NAME=COLUMN pairs. Codecs: which --input columns hold the source format's "
                   "variables, e.g. valence=V.Mean.Sum,arousal=A.Mean.Sum,dominance=D.Mean.Sum (default: columns named "
                   "like the variables, case-insensitively). Any other NAME names that input column in the output "
                   "(word=1,id=2 for a headerless file, whose columns are 1, 2, … by position); models: word=1 "
                   "(the model's modality) names the content column, as --column 1 does. Without names, a headerless "
                   "file's columns are written as column_1, column_2 …, and a codec's one column of items as "
                   "word/text/image after what it holds")
    p.add_argument("--scale", default="normalized", help="models: normalized (default), source, or low,high")
    p.add_argument("--source-format", help="codecs: format of the input ratings")
    p.add_argument("--input-scale", help="codecs: rating scale of the input, e.g. 1,9 (default: the format's normalised range)")
    p.add_argument("--output-scale", help="codecs: scale for regression outputs, e.g. 1,5")
    p.add_argument("--domain", help="codecs trained with domains: convert as the raters of this paired dataset would "
                   "(default: the pooled mapping); an unknown name lists the codec's domains")
    p.add_argument("--oov", choices=["vector", "nan", "error"],
                   help="models: unknown words/texts are scored with the learned unknown-word vector and reported "
                        "(vector, default), get empty outputs (nan), or stop the run (error); the output's coverage "
                        "column gives the share of each item the encoder knows")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", help="csv/tsv (or parquet) to write (default: stdout); a csv/tsv/jsonl/parquet --input is "
                   "then read, predicted and written in chunks, resumably (see --chunk-size, --shard)")
    p.add_argument("--keep-columns", metavar="all|none|NAME,…", help="which of --input's other columns (id, "
                   "metadata…) the output carries, in input order before the item and the predictions, so results "
                   "join back by them: all (default), none, or names (matched case-insensitively, as the input or the "
                   "output names them: 1 or column_1 in a headerless file). A kept column named like an output column "
                   "(joy, label, coverage, text…) is an error: rename it (--columns NEWNAME=COLUMN) or leave it out here")
    p.add_argument("--json", action="store_true", help="print the rows as JSON Lines on stdout (one object per row: "
                   "numbers as JSON numbers, missing values null, labels strings) instead of csv; for a file give "
                   "--output FILE.jsonl (or .json for one list)")
    p.add_argument("--on-bad-image", choices=["skip", "error"], help="image models: an unreadable image file is "
                   "reported and predicted as empty cells (skip) or stops with an error naming it (error); "
                   "default: the model recipe's on_bad_image")
    p.add_argument("--codec", help="models: decode with this codec instead, one extended from the model's own by "
                   "`map --extend` (its new formats come zero-shot)")
    add_threads_argument(p)
    add_predict_options(p)


def _predict_run(args: argparse.Namespace) -> int:
    from emoembed.codec import EmotionCodec
    from emoembed.inputs import content_column_name, read_user_table
    from emoembed.model import load_model
    from emoembed.streaming import output_columns
    from emoembed.tables import (TYPED_INPUTS, check_no_clash, content_column, json_rows, keep_input_columns,
                                 kept_columns, output_kind, output_names, parse_keep_columns, typed_text_table,
                                 write_json_rows, write_table)

    check_streaming_options(args)
    if args.json and args.output:
        raise EmoembedError(f"--json prints to stdout; --output {args.output} writes a file, in the format its suffix "
                            "names (.jsonl: one JSON object per row): give one of them")
    if args.output:
        output_kind(Path(args.output))  # before any work: a suffix we cannot write, a folder or an unwritable place
        check_output_path(args.output)
    keep = parse_keep_columns(args.keep_columns)
    if args.keep_columns and not args.input:
        raise EmoembedError("--keep-columns is about the other columns of --input FILE; there is no --input")
    model = load_model(args.model, backend=args.backend)
    if isinstance(model, EmotionCodec):
        if args.codec:
            raise EmoembedError("--codec is for content models; --model is already a codec")
        return _convert_labels(model, args)
    model = with_codec_option(model, args.codec)
    if args.source_format or args.domain or args.input_scale or args.output_scale:
        raise EmoembedError("--source-format, --input-scale, --output-scale and --domain are for codec "
                            "directories; this is a content model (give items or --input, and --scale for outputs)")
    column, given = content_and_named_columns(args, model.modality)
    fmt = model.format(args.format)
    if args.oov and model.modality == "image":
        raise EmoembedError("--oov is for word and text models (unknown words, unknown word pieces); an image model has "
                            "no unknown content: a bad image file is handled by --on-bad-image skip|error")
    if args.scale not in ("normalized", "normalised") and fmt.kind != "regression":
        raise EmoembedError(f"--scale is for rating formats; {args.format} is {fmt.kind} (probabilities per class and a "
                            f"label), so --scale {args.scale} would do nothing: leave it out")
    from emoembed.conversion import model_prediction_note
    from emoembed.notices import note

    if (text := model_prediction_note(model, args.format)):
        note("predict", text)
    if args.input and args.items:
        raise EmoembedError("give items on the command line or --input FILE, not both")
    if args.input and args.output and streamable(args):  # emoembed.streaming: files of any size
        return stream_predict(model, args, column, given)
    rows = None  # where each item came from, for error messages: the --input file's line
    kept = None  # the input's other columns, one row per item
    if args.input:
        frame = read_user_table(args.input, header=False if args.no_header else None,
                                header_names=[column] if column else ())
        items = content_column(frame, column, args.input, list(given))
        rows = [f"{args.input}, {name}" for name in index_row_names(frame.index)]
        col = str(content_column_name(frame, column, args.input, list(given)))
        outputs = output_columns(model, args.format, coverage_column=True)
        given = named_input_columns(frame, given, col, model.modality, args.input)
        others = [str(c) for c in frame.columns if str(c) != col]
        renamed = output_names(frame, others, given, reserved=outputs)  # a headerless file's 2 → column_2; id=2
        names = kept_columns([str(c) for c in frame.columns], col, keep, args.input, renamed)
        check_named_columns_kept(given, names)
        check_no_clash([renamed[c] for c in names], outputs, args.input)
        kept = frame[names].reset_index(drop=True)
        if Path(args.input).suffix.lower() not in TYPED_INPUTS:  # csv/tsv text: plain-number columns as numbers
            kept = typed_text_table(kept)
        kept = kept.rename(columns=renamed)
    elif args.column or args.no_header or args.columns:
        raise EmoembedError("--column, --columns and --no-header are about --input FILE; there is no --input")
    elif args.items:
        items = list(args.items)
        if model.modality != "image":  # errors about unknown content say which argument (image paths name themselves)
            rows = [f"command-line item {k}" for k in range(1, len(items) + 1)]
    else:
        raise EmoembedError("nothing to predict: give items (words, texts, image paths) or --input FILE")
    if args.on_bad_image and model.modality != "image":
        raise EmoembedError(f"--on-bad-image is for image models; this model's modality is {model.modality!r}")
    if model.modality == "image":  # folders and .txt lists of paths → image files; --input paths: relative to it
        from emoembed.data.images import expand_image_rows

        if args.on_bad_image:
            model.encoder.on_bad_image = args.on_bad_image
        given = rows
        items, rows = expand_image_rows(items, rows, args.input, missing_ok=True)  # a missing file is then reported where it is decoded: in file order with the other bad images
        if kept is not None and given is not None:  # a folder or list row gives many images: its columns repeat
            where = {name: i for i, name in enumerate(given)}
            kept = kept.iloc[[where[name] for name in rows]].reset_index(drop=True)
    scale = args.scale if args.scale in ("normalized", "normalised", "source") else parse_scale(args.scale, "scale")
    out = model.predict(items, args.format, scale=scale, batch_size=args.batch_size, oov=args.oov or "vector",
                        coverage_column=True, rows=rows)
    out = keep_input_columns(out.reset_index(), kept)
    exact = list(kept.columns) if kept is not None else []
    if args.json:
        write_json_rows(json_rows(out), sys.stdout)
    else:
        write_table(out, Path(args.output) if args.output else None, exact=exact)
    if args.output:
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    return 0


def content_and_named_columns(args: argparse.Namespace, modality: str) -> tuple[str | None, dict[str, str]]:
    """A content model's ``--column`` and ``--columns NAME=COLUMN`` pairs: (the content column, {input column: output
    name}). A pair named like the model's modality (``word=1`` for a word model) names the content column, as
    ``--column 1`` does (it is the output's ``word`` column anyway); every other pair names one of the input's other
    columns in the output (``id=2``). :class:`EmoembedError` when both name different content columns."""
    from emoembed.inputs import parse_columns_option

    if not args.columns:
        return args.column, {}
    content = None
    given: dict[str, str] = {}
    for name, col in parse_columns_option(args.columns).items():
        if name.casefold() == modality.casefold():
            content = col
        elif col in given:
            raise EmoembedError(f"--columns names column {col!r} twice ({given[col]!r} and {name!r})")
        else:
            given[col] = name
    if content is not None and args.column and args.column.casefold() != content.casefold():
        raise EmoembedError(f"--column {args.column} and --columns {modality}={content} name different content "
                            f"columns; give one")
    return args.column or content, given


def named_input_columns(frame, given: dict[str, str], content: str, modality: str, source) -> dict[str, str]:
    """``given`` ({column: output name}, from ``--columns``) with each column as ``frame`` spells it; the content
    column may not be renamed (the output names it ``modality``)."""
    from emoembed.inputs import require_column

    out = {}
    for col, name in given.items():
        found = str(require_column(frame, col, str(source), f"--columns {name}=…"))
        if found == content:
            raise EmoembedError(f"--columns {name}={col}: column {found!r} holds the content, which the output calls "
                                f"{modality!r}; an output name is for one of the input's other columns (an id …)")
        out[found] = name
    return out


def check_named_columns_kept(given: dict[str, str], kept) -> None:
    dropped = [c for c in given if c not in kept]
    if dropped:
        raise EmoembedError(f"--columns {given[dropped[0]]}={dropped[0]} names a column for the output, but "
                            f"--keep-columns leaves it out: keep it (--keep-columns …,{given[dropped[0]]}) or leave "
                            f"out its name")


def _convert_labels(codec, args: argparse.Namespace) -> int:
    from emoembed.conversion import convert_user_table
    from emoembed.inputs import parse_columns_option
    from emoembed.tables import json_rows, parse_keep_columns, write_json_rows, write_table

    if not args.source_format or not args.input:
        raise EmoembedError("a codec converts ratings: give --source-format FORMAT and --input FILE")
    if args.items:
        raise EmoembedError("a codec converts the ratings in --input FILE; items on the command line are for content models")
    if args.oov or args.on_bad_image or args.scale not in ("normalized", "normalised"):
        raise EmoembedError("--oov, --on-bad-image and --scale are for content models; a codec takes --input-scale "
                            "and --output-scale")
    out = convert_user_table(codec, args.input, args.source_format, args.format, parse_columns_option(args.columns),
                             args.column, parse_scale(args.input_scale, "input-scale"),
                             parse_scale(args.output_scale, "output-scale"), domain=args.domain,
                             header=False if args.no_header else None,
                             keep_columns=parse_keep_columns(args.keep_columns))
    outputs = {*codec.format(args.format).variables, "label"}
    if args.json:
        write_json_rows(json_rows(out), sys.stdout)
    else:
        write_table(out, Path(args.output) if args.output else None, exact=[c for c in out.columns
                                                                             if c not in outputs])
    if args.output:
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    return 0


verb("predict", "predict any label format for words/texts/images with a trained model, or convert ratings with a codec")((_predict_args, _predict_run))


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a model directory written by fit-encoder, a codec directory written by map, or a "
                   "packaged model emoembed/NAME (`emoembed list pretrained`)")
    p.add_argument("--data", help="dataset card(s), NAME[:FORMAT][,NAME…]; for a codec: pair card(s), NAME[,NAME…]")
    p.add_argument("--format", help="format to evaluate in (default: the dataset's first format the model knows)")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics")
    p.add_argument("--codec", help="decode with this codec, extended from the model's own by `map --extend`")
    probe = p.add_argument_group("linear probes on frozen embeddings (the CARL paper's protocol; emoembed.probe)")
    probe.add_argument("--probe", action="store_true", help="EmoBank V/A linear regression (r, ρ, MAE), GoEmotions six-Ekman "
                       "logistic probe (acc, macro P/R/F1), alignment/uniformity; --model is a model directory, a "
                       "backbone folder (e.g. a pretrain run's backbone/) or packaged:all-MiniLM-L6-v2")
    probe.add_argument("--layer", default="pooled", choices=["pooled", "emotion"],
                       help="probe the backbone's pooled sentence embedding (default, as the paper) or the emotion embedding")
    probe.add_argument("--max-ekman-train", type=int, default=8000,
                       help="GoEmotions probe training comments (seeded subsample; 0 = all 26,732)")
    probe.add_argument("--probe-out", help="also write the probe results to this JSON file")
    suite = p.add_argument_group("paper tables (instead of --model/--data)")
    suite.add_argument("--suite", help="a suite name (paper = suites/paper.yaml) or YAML file: trains the codec and, per "
                       "modality, Bsl/Sng/Aug/Mlt and the zero-shot rows on whatever data is present")
    suite.add_argument("--out", help="suite run directory (default: runs/suite-<name>)")
    suite.add_argument("--modalities", help="comma-separated sections to run (default: all the suite has), e.g. word,text")
    suite.add_argument("--seeds", help="comma-separated seeds (default: the suite's), e.g. 13,14,15")
    suite.add_argument("--quick", action="store_true", help="smoke-test size (the suite's `quick` block)")
    add_threads_argument(p)


def evaluate_rows(model, data_spec: str, fmt: str | None = None, split: str = "test") -> dict[str, dict]:
    """``emoembed evaluate``'s metrics of a content model: dataset name → ``EmotionModel.evaluate`` row."""
    from emoembed.data.registry import default_data_registry
    from emoembed.tasks import parse_data_spec, task_from_dataset

    if fmt:
        model.format(fmt)
    reg = default_data_registry()
    rows = {}
    for name, name_fmt in parse_data_spec(data_spec):
        card = reg.get(name)
        if card.type != "dataset":
            raise EmoembedError(f"{name!r} is a {card.type} card; evaluate needs a dataset card (pair cards: give a codec)")
        if card.modality and card.modality != model.modality and not (model.modality == "text" and card.modality == "word"):
            raise EmoembedError(f"dataset {name!r} holds {card.modality}s; this model encodes {model.modality}s")
        task = task_from_dataset(reg.dataset(name), name_fmt or fmt, model.formats)
        rows[name] = model.evaluate(task, split, batch_size=256)
    return rows


def _evaluate_run(args: argparse.Namespace) -> int:
    from emoembed.io import dumps_json
    from emoembed.model import EmotionModel
    from emoembed.pretrained import saved_model_type

    if args.suite:
        return _run_suite(args)
    if args.probe:
        return _probe_run(args)
    if not args.model or not args.data:
        raise EmoembedError("give --model DIR and --data NAME (or --suite paper for the paper tables)")
    if saved_model_type(args.model) == "emotion-codec":
        from emoembed.cli.codec_eval import run_codec_evaluation

        return run_codec_evaluation(args)
    model = with_codec_option(EmotionModel.from_pretrained(args.model), args.codec)
    rows = evaluate_rows(model, args.data, args.format, args.split)
    if args.json:
        print(dumps_json({"model": args.model, "split": args.split, "results": rows}, indent=1))
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
    with run_folder_lock(out, "evaluate --suite", log=lambda m: print(m, file=sys.stderr)):
        results = run_suite(suite, out, default_data_registry(), modalities, seeds, args.quick,
                            log=lambda m: print(m, file=sys.stderr))
    print(results.markdown())
    print(f"wrote {out}/suite.md, suite.csv, suite.json")
    return 0


def _probe_run(args: argparse.Namespace) -> int:
    """``evaluate --probe --model SRC [--layer pooled|emotion] [--max-ekman-train N] [--probe-out F] [--json]``."""
    from emoembed.io import atomic_write_json, dumps_json
    from emoembed.probe import load_probe_data, probe_table, run_probes, text_embedder

    if not args.model:
        raise EmoembedError("--probe needs --model: a model directory, a backbone folder or packaged:all-MiniLM-L6-v2")
    data = load_probe_data(max_ekman_train=args.max_ekman_train or None)
    res = run_probes(text_embedder(args.model, layer=args.layer), data)
    res["source"], res["layer"] = str(args.model), args.layer
    if args.probe_out:
        atomic_write_json(res, Path(args.probe_out))
    if args.json:
        print(dumps_json(res, indent=1))
    else:
        print(probe_table({str(args.model): res}))
        d = res["va"].get("dominance")
        print(f"\nsizes {res['sizes']}" + (f"; dominance r {d['r']:.3f}" if d else ""))
    return 0


verb("evaluate", "score a trained model on a dataset split (supervised, or zero-shot in a format it never saw)")((_evaluate_args, _evaluate_run))

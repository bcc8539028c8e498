"""``emoembed export-onnx``, and the options ``predict`` gains for fast and large-scale inference (``--backend``,
streaming ``--input``/``--output`` in chunks, ``--shard I/N``). The logic lives in :mod:`emoembed.onnx_backend`
and :mod:`emoembed.streaming`; this module only wires arguments."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emoembed.cli.common import verb


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a text or image model directory (fit-encoder)")
    p.add_argument("--out", required=True, help="folder to write the ONNX model to (loads with predict --model OUT)")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: dynamic int8 quantisation (onnxruntime quantize_dynamic; smaller, faster on CPU)")


def _export_run(args: argparse.Namespace) -> int:
    from emoembed.model import EmotionModel

    model = EmotionModel.from_pretrained(args.model, backend="torch")
    out = model.export_onnx(Path(args.out), quantize=None if args.quantize == "none" else args.quantize)
    check = model_check(out)
    print(f"wrote {out}/encoder.onnx ({(out / 'encoder.onnx').stat().st_size / 2**20:.1f} MiB, {args.quantize}); "
          f"max |Δ| vs torch on the probe batch {check['max_abs_diff']:.2g}, min cosine {check['min_cosine']:.5f}",
          file=sys.stderr)
    return 0


def model_check(directory: Path) -> dict:
    from emoembed.io import read_json

    return read_json(directory / "config.json")["backend"]["export_check"]


verb("export-onnx", "export a text or image model to ONNX Runtime (fp32 or int8) for fast CPU inference")((_export_args, _export_run))


def add_predict_options(p: argparse.ArgumentParser) -> None:
    """The options ``predict`` gets for backends and streaming (called from its argument builder)."""
    g = p.add_argument_group("fast and large-scale inference")
    g.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto (default: what the model folder holds), torch, or onnx (a folder from export-onnx)")
    g.add_argument("--chunk-size", type=int, default=None,
                   help="rows read, predicted and written at a time when --input and --output are given (default 10000)")
    g.add_argument("--shard", help="I/N: predict only the I-th of N equal contiguous parts of --input (0-based); "
                                   "concatenating the outputs of 0..N-1 gives the whole")
    g.add_argument("--fresh", action="store_true", help="discard the partial results of an earlier interrupted run "
                                                        "(default: continue it)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def streamable(args: argparse.Namespace) -> bool:
    """Whether ``predict --input --output`` streams: a csv/tsv/jsonl/parquet input to a csv/tsv/parquet output, or
    any input when a streaming option is given (which then names what it reads)."""
    from emoembed.errors import EmoembedError
    from emoembed.streaming import INPUT_SUFFIXES, OUTPUT_SUFFIXES

    if args.shard or args.chunk_size or args.fresh:
        from emoembed.inputs import first_line_is_data

        if getattr(args, "no_header", False) or (Path(args.input).suffix.lower() in (".csv", ".tsv")
                                                 and first_line_is_data(args.input)):
            raise EmoembedError(f"{args.input} has no header line (--no-header, or numbers on line 1): it is read in "
                                "memory; --shard, --chunk-size and --fresh stream a table with a header line: add one "
                                "(e.g. `word`) to the file")
        return True
    if getattr(args, "no_header", False):
        return False
    if Path(args.input).suffix.lower() in (".csv", ".tsv"):
        from emoembed.inputs import first_line_is_data

        if first_line_is_data(args.input):  # headerless (numbers on line 1): read in memory, as without --output
            return False
    return Path(args.input).suffix.lower() in INPUT_SUFFIXES and Path(args.output).suffix.lower() in OUTPUT_SUFFIXES


def stream_predict(model, args: argparse.Namespace, column: str | None = None,
                   names: dict[str, str] | None = None) -> int:
    """``predict --input FILE --output FILE``: chunked, resumable, optionally one shard (see emoembed.streaming).
    ``column``: the content column (``--column``, or ``--columns word=…``); ``names``: {input column: output name}
    of ``--columns``' other pairs."""
    from emoembed.cli.common import parse_scale
    from emoembed.errors import EmoembedError
    from emoembed.streaming import DEFAULT_CHUNK_SIZE, parse_shard, predict_file
    from emoembed.tables import parse_keep_columns

    if args.on_bad_image:
        if model.modality != "image":
            raise EmoembedError(f"--on-bad-image is for image models; this model's modality is {model.modality!r}")
        model.encoder.on_bad_image = args.on_bad_image
    scale = args.scale if args.scale in ("normalized", "normalised", "source") else parse_scale(args.scale, "scale")
    res = predict_file(model, Path(args.input), Path(args.output), args.format, column=column or args.column, scale=scale,
                       batch_size=args.batch_size, chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
                       shard=parse_shard(args.shard), fresh=args.fresh, progress=not args.quiet,
                       predict_kwargs={"oov": args.oov or "vector", "coverage_column": True},
                       keep_columns=parse_keep_columns(getattr(args, "keep_columns", None)), column_names=names)
    resumed = f" ({res.resumed_chunks} of {res.chunks} chunks done by an earlier run)" if res.resumed_chunks else ""
    print(f"wrote {res.rows} rows to {res.output}{resumed} in {res.seconds:.1f}s", file=sys.stderr)
    return 0


def check_streaming_options(args: argparse.Namespace) -> None:
    """--shard/--chunk-size/--fresh only mean something when streaming --input to --output."""
    from emoembed.errors import EmoembedError

    if (args.shard or args.chunk_size or args.fresh) and not (args.input and args.output):
        raise EmoembedError("--shard, --chunk-size and --fresh stream --input FILE to --output FILE; give both")

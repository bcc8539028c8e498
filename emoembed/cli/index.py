"""``emoembed index`` (embed content into a searchable emotion-space index) and ``emoembed search`` (by content or
by an emotion label), on :mod:`emoembed.retrieval`."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from emoembed.cli.common import parse_scale, print_table, short, verb
from emoembed.io import dumps_json
from emoembed.retrieval import (
    MODALITIES,
    EmotionIndex,
    ModalityError,
    RetrievalError,
    _check_model,
    codec_fingerprint,
    emotion_query,
    load_codec,
    resolve_model_reference,
    values_query,
)


# ---------------------------------------------------------------------------------------------- CLI: index
def _index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model directory written by fit-encoder (word, text or image), or "
                   "a packaged model emoembed/NAME (`emoembed list pretrained`); the index records it (a packaged model "
                   "by its name, a directory by its absolute path) for `search`")
    p.add_argument("items", nargs="*", help="words / texts / image paths or image folders (or use --input)")
    p.add_argument("--input", help="csv/tsv/jsonl file (content column) or .txt file (one item per line; for image "
                                   "models a list of paths)")
    p.add_argument("--column", help="column of --input holding the content (default: the only column, or "
                                    "word/text/image/content/path)")
    p.add_argument("--no-header", action="store_true", help="--input has no header line: every line is an item (without it a one-column .csv/.tsv whose first line reads like an item is an error)")
    p.add_argument("--out", required=True, help="index folder to write")
    p.add_argument("--append", action="store_true", help="add to the index at --out (same codec required)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index at --out")
    p.add_argument("--skip-oov", action="store_true", help="word models: leave out words the vectors do not know "
                                                           "(otherwise they all share the learned OOV embedding)")
    p.add_argument("--batch-size", type=int, default=64)


def _read_items(args: argparse.Namespace, modality: str) -> list[Any]:
    from emoembed.tables import content_column
    from emoembed.tables import read_input_table

    items: list[Any] = list(args.items or [])
    if args.input:
        path = Path(args.input)
        if path.suffix.lower() == ".txt" and modality != "image":
            if not path.exists():
                raise RetrievalError(f"{path}: file not found")
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            read = [line for line in lines if line]
            if not read:
                raise RetrievalError(f"{path}: no items (the file is empty)")
            items.extend(read)
        elif path.suffix.lower() == ".txt":  # image list files are expanded below
            items.append(str(path))
        else:
            items.extend(content_column(read_input_table(path, args.no_header, args.column), args.column, args.input))
    if not items:
        raise RetrievalError("nothing to index: give items (words, texts, image paths or folders) or --input FILE")
    if modality == "image":
        from emoembed.data.images import expand_image_inputs

        items = expand_image_inputs(items)
    return items


def _index_run(args: argparse.Namespace) -> int:
    from emoembed.model import EmotionModel

    out = Path(args.out)
    if args.append and args.overwrite:
        raise RetrievalError("--append and --overwrite exclude each other")
    if args.append and out.exists() and any(out.iterdir()):
        index = EmotionIndex.load(out)
    else:
        if out.exists() and any(out.iterdir()) and not args.overwrite:
            raise RetrievalError(f"{out}: already exists; pass --append to add to it or --overwrite to replace it")
        index = EmotionIndex()
    model = EmotionModel.from_pretrained(args.model)
    _check_model(model, args.model)
    index.check_fingerprint(codec_fingerprint(model.codec), f"model {args.model}")  # before encoding anything
    items = _read_items(args, model.modality)
    stats = index.add(model, items, source=args.model, batch_size=args.batch_size, skip_oov=args.skip_oov)
    index.save(out, overwrite=True)
    skipped = stats["skipped_nan"] + stats["skipped_oov"]
    print(f"indexed {stats['added']} {model.modality} item(s) from {args.model}"
          + (f"; left out {skipped} ({stats['skipped_oov']} out of vocabulary, {stats['skipped_nan']} undefined)" if skipped else ""))
    print(f"wrote {out}: {len(index)} items " + ", ".join(f"{m} {n}" for m, n in index.counts().items())
          + f", dim {index.dim}, codec {index.fingerprint[:12]}")
    return 0


verb("index", "embed words/texts/images with a trained model into a searchable emotion-space index")((_index_args, _index_run))


# ---------------------------------------------------------------------------------------------- CLI: search
def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index folder written by `emoembed index`")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", help="query by a text (needs a text model)")
    q.add_argument("--word", help="query by a word (needs a word model)")
    q.add_argument("--image", help="query by an image file (needs an image model)")
    q.add_argument("--emotion", help="query by an emotion label: 'joy=0.9,fear=0.1' or a class name ('joy')")
    q.add_argument("--values", help="query by all variables of --format, in order: '0.8,0.5,0.2'")
    p.add_argument("--format", help="label format of --values / --emotion (default for --emotion: the first codec "
                                    "format that has the named variables)")
    p.add_argument("--input-scale", help="rating scale of --values/--emotion numbers, e.g. 1,9 (default: the format's "
                                         "normalised range)")
    p.add_argument("--model", help="model for content queries (default: the index's model of that modality); its "
                                   "codec serves emotion queries (a codec directory works too); a directory or a "
                                   "packaged model emoembed/NAME")
    p.add_argument("-k", "--k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--modality", choices=list(MODALITIES), help="only return items of this modality")
    p.add_argument("--backend", choices=["auto", "numpy", "faiss"], default="auto", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _recorded(index: EmotionIndex, modality: str | None, index_dir: str) -> list[str]:
    paths = index.models_for(modality) if modality else [m["path"] for m in reversed(index.models)]
    if not paths:
        raise ModalityError(f"{index_dir}: the index records no {modality} model (it has: "
                            f"{', '.join(sorted({m['modality'] for m in index.models})) or 'none'}); pass --model DIR")
    present = [p for p in paths if resolve_model_reference(p) is not None]  # emoembed/NAME: through the model zoo
    if not present:
        raise ModalityError(f"{index_dir}: the recorded {modality or ''} model(s) {', '.join(paths)} no longer exist; "
                            f"pass --model DIR".replace("  ", " "))
    return present


def _search_run(args: argparse.Namespace) -> int:
    index = EmotionIndex.load(args.index)
    if args.values is not None and not args.format:
        raise RetrievalError("--values needs --format (e.g. --format vad --values 0.8,0.5,0.2)")
    if args.format and args.values is None and args.emotion is None:
        raise RetrievalError("--format goes with --values or --emotion")
    input_scale = parse_scale(args.input_scale, "input-scale")
    query: dict[str, Any]
    if args.emotion is not None or args.values is not None:
        codec_dir = args.model or _recorded(index, None, args.index)[0]
        codec = load_codec(codec_dir)
        index.check_fingerprint(codec_fingerprint(codec), str(codec_dir))
        if args.values is not None:
            vec, info = values_query(codec, args.format, args.values, input_scale)
            query = {"type": "values", "input": args.values, **info}
        else:
            vec, info = emotion_query(codec, args.emotion, args.format, input_scale)
            query = {"type": "emotion", "input": args.emotion, **info}
        query["codec_from"] = str(codec_dir)
    else:
        from emoembed.model import EmotionModel

        modality, item = next((m, getattr(args, m)) for m in MODALITIES if getattr(args, m) is not None)
        if input_scale is not None:
            raise RetrievalError("--input-scale goes with --values or --emotion")
        if not str(item).strip():
            raise RetrievalError(f"--{modality}: the query is empty")
        model_dir = args.model or _recorded(index, modality, args.index)[0]
        model = EmotionModel.from_pretrained(model_dir)
        if model.modality != modality:
            raise ModalityError(f"--{modality} needs a {modality} model; {model_dir} encodes {model.modality}s")
        _check_model(model, str(model_dir))
        index.check_fingerprint(codec_fingerprint(model.codec), f"model {model_dir}")
        warn = ""
        if modality == "word" and hasattr(model.encoder, "known_mask"):
            clean = model.encoder.check_items([item], where="--word")
            if not bool(model.encoder.known_mask(clean)[0]):
                warn = f"{item!r} is not in the model's vocabulary: its embedding is the model's OOV embedding"
                print(f"emoembed search: warning: {warn}", file=sys.stderr)
        vec = model.encode([item])[0]
        if not np.isfinite(vec).all():
            raise RetrievalError(f"--{modality} {item!r}: the model gives no embedding for it (out of vocabulary)")
        query = {"type": modality, "input": item, "model": str(model_dir), **({"warning": warn} if warn else {})}
    res = index.search(vec, k=args.k, modality=args.modality, backend=args.backend)
    if args.json:
        print(dumps_json({"index": str(args.index), "query": query, "results": res.to_dict(orient="records")},
                         indent=1, ensure_ascii=False))
        return 0
    print("query: " + _describe(query))
    rows = [{"rank": r.rank, "item": short(r.item, 70), "modality": r.modality, "cosine": f"{r.cosine:.3f}"}
            for r in res.itertuples()]
    print_table(rows, ["rank", "item", "modality", "cosine"])
    return 0


def _describe(query: Mapping[str, Any]) -> str:
    if query["type"] in ("emotion", "values"):
        label = " ".join(f"{v}={x:g}" for v, x in query["label"].items())
        alt = f" (also in: {', '.join(query['alternatives'])})" if query.get("alternatives") else ""
        return f"{query['format']} {label}{alt}  [codec of {query['codec_from']}]"
    return f"{query['type']} {query['input']!r}  [model {query['model']}]"


verb("search", "search an index by a word, text, image or emotion label (cosine in the emotion space)")((_search_args, _search_run))

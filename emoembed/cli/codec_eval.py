"""``emoembed evaluate --model CODEC --data PAIR[,PAIR…]``: a codec's label conversion scored on paired datasets,
both directions of each pair, as ``emoembed map`` scores it on its test split (in the pair's domain when the codec
learned one for it, and pooled, as for ratings of unknown origin)."""
from __future__ import annotations

import argparse
from emoembed.io import dumps_json
from typing import Any

from emoembed.errors import EmoembedError


def codec_evaluation(codec, data_spec: str, split: str = "test") -> dict[str, Any]:
    """``{"rows": [...], "pooled": [...] | None, "mean": float, "pooled_mean": float | None}`` over the pairs of
    ``data_spec`` (pair card names, comma-separated); rows as ``training.codec.evaluate_codec`` gives them."""
    from emoembed.data.registry import default_data_registry
    from emoembed.training.codec import evaluate_codec, mean_primary

    reg = default_data_registry()
    pairs = []
    for name in (s.strip() for s in data_spec.split(",")):
        if not name:
            continue
        card = reg.get(name)
        if card.type != "pair":
            raise EmoembedError(f"{name!r} is a {card.type} card; a codec is evaluated on pair cards (`emoembed list datasets`)")
        pair = reg.pair(name)
        missing = [f.name for f in (pair.format_a, pair.format_b) if f.name not in codec.formats]
        if missing:
            raise EmoembedError(f"pair {name!r} is in format(s) {missing} this codec does not know; it knows: {', '.join(codec.formats)}")
        pairs.append(pair)
    if not pairs:
        raise EmoembedError("--data: give at least one pair card")
    rows = evaluate_codec(codec, pairs, split)
    pooled = evaluate_codec(codec, pairs, split, use_domains=False) if codec.domain_dim else None
    return {"rows": rows, "pooled": pooled, "mean": mean_primary(rows), "pooled_mean": mean_primary(pooled) if pooled else None}


def run_codec_evaluation(args: argparse.Namespace) -> int:
    from emoembed.codec import EmotionCodec
    from emoembed.training.codec import results_table

    if args.codec or args.format:
        raise EmoembedError("--codec and --format are for content models; a codec is scored in both formats of each pair")
    codec = EmotionCodec.from_pretrained(args.model)
    out = codec_evaluation(codec, args.data, args.split)
    if args.json:
        print(dumps_json({"model": args.model, "split": args.split, **out}, indent=1))
    else:
        print(results_table(out["rows"], None, out["pooled"]))
    return 0

"""Model cards of the packaged pretrained models (Hugging Face model-card style: YAML front matter, then intended
use, formats and scales, training data with each dataset's licence, test scores, known limits, the rebuild
command). Written by ``emoembed pretrained build`` from the catalogue entry's prose, the model itself, the data
registry's cards (licences) and the ``emoembed evaluate`` scores measured right after the build — nothing in a
card is typed by hand except the prose of ``pretrained/models.yaml``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emoembed.io import atomic_write_json, atomic_write_text
from emoembed.model_zoo import CARD_JSON, CARD_README, PREFIX, folder_size

# phrases of a licence that restricts how derived weights may be used: non-commercial, research-only, or unknown
RESTRICTIVE_PHRASES = ("non-commercial", "noncommercial", "research use", "research purposes", "research only",
                       "not stated", "kaggle")


def is_restrictive(licence: str) -> bool:
    """True for NC licences (``CC BY-NC…``), research-only terms and unstated licences (treated as restrictive)."""
    text = licence.lower()
    words = text.replace("-", " ").replace("(", " ").replace(")", " ").replace(";", " ").split()
    return "nc" in words or any(p in text for p in RESTRICTIVE_PHRASES)


def training_sources(registry, kind: str, recipe: Mapping[str, Any], codec_sources: Sequence[str] = ()) -> list[str]:
    """Dataset cards whose labels shaped the weights: a codec's pairs (both sides), a model's datasets plus those of
    the codec it sits on."""
    names: list[str] = []
    if kind == "codec":
        for pair in list(recipe.get("pairs", [])) + [p for p in recipe.get("optional_pairs", []) if registry.is_present(p)]:
            card = registry.get(pair)
            names += [card.left["card"], card.right["card"]]
    else:
        names += [n.split(":", 1)[0] for n in recipe.get("data", [])] + list(codec_sources)
    return list(dict.fromkeys(names))


def provenance(kind: str, recipe: Mapping[str, Any], codec: str | None, codec_sources: Sequence[str] = ()
               ) -> dict[str, Any]:
    """Where a model's labels came from, kept apart (``card.json``, ``emoembed list pretrained``): a content model's
    own training data (``model_data``: the fit-encoder ``data``, ``NAME[:FORMAT]`` as given), the formats of its
    codec-made labels (``augmented_formats``), the packaged codec it sits on (``codec``) and that codec's training
    datasets (``codec_data``). A codec has none of these: its ``training_data`` are its paired datasets. Every
    dataset of either kind shaped the weights, so ``training_data`` (and the licences) list them all."""
    if kind == "codec":
        return {}
    return {"model_data": [str(d) for d in recipe.get("data", [])],
            "augmented_formats": [str(f) for f in recipe.get("augment", []) or []],
            "codec": PREFIX + codec if codec else None, "codec_data": list(codec_sources)}


def licences(registry, names: Sequence[str]) -> dict[str, str]:
    return {n: registry.get(n).licence or "not stated" for n in names}


def _fmt(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "–" if math.isnan(v) else f"{v:.3f}"


def scores_table(kind: str, scores: Mapping[str, Any], augmented: Sequence[str] = (), gold: Sequence[str] = ()) -> str:
    """Markdown table of a card's test scores. Model rows say how the format was learnt: gold labels (``gold``: the
    training datasets' formats — a format that is both, like VAD of a multitask text model, counts as gold), codec-made
    labels only (``augmented``: label augmentation), or neither (zero-shot, through the frozen codec head)."""
    if kind == "codec":
        lines = ["| pair | direction | n | metric | in domain | pooled |", "|---|---|---|---|---|---|"]
        pooled = {(r["pair"], r["source"], r["target"]): r for r in scores.get("pooled") or []}
        for r in scores["rows"]:
            p = pooled.get((r["pair"], r["source"], r["target"]))
            lines.append(f"| {r['pair']} | {r['source']} → {r['target']} | {r['n']} | {r['metric']} | {_fmt(r['primary'])} | "
                         f"{_fmt(p['primary']) if p else '–'} |")
        lines.append(f"| **mean** | | | | **{_fmt(scores['mean'])}** | {_fmt(scores.get('pooled_mean'))} |")
        return "\n".join(lines)
    lines = ["| dataset | format | n | metric | score | per variable |", "|---|---|---|---|---|---|"]
    for name, r in scores.items():
        per = ", ".join(f"{v} {_fmt(m.get('pearson', m.get('f1')))}" for v, m in r.get("per_variable", {}).items())
        how = ("" if r["format"] in gold or r.get("zero_shot") is False  # all its variables had gold labels
               else " (codec-made labels)" if r["format"] in augmented else " (zero-shot)" if r.get("zero_shot") else "")
        lines.append(f"| {name} | {r['format']}{how} | {r['n']} | {r['metric']} | {_fmt(r['primary'])} | {per} |")
    return "\n".join(lines)


def summary_scores(kind: str, scores: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What ``emoembed list pretrained`` shows: a codec's mean over directions; a model's primary per dataset."""
    if kind == "codec":
        n = len(scores["rows"])
        out = {f"mean of {n} directions": {"metric": "mixed", "primary": scores["mean"]}}
        if scores.get("pooled_mean") is not None:
            out["pooled"] = {"metric": "mixed", "primary": scores["pooled_mean"]}
        return out
    notes = spec.get("score_notes") or {}
    return {f"{k} {r['format']}": {"metric": r["metric"], "primary": r["primary"]} | ({"note": notes[k]} if k in notes else {})
            for k, r in scores.items()}


def write_card(folder: Path, name: str, spec: Mapping[str, Any], obj, registry, scores: Mapping[str, Any],
               build: Mapping[str, Any], codec_sources: Sequence[str] = ()) -> dict[str, Any]:
    """Write ``card.json`` and ``README.md`` into ``folder``; returns the card dict."""
    kind = spec["kind"]
    recipe = build["recipe"]
    sources = training_sources(registry, kind, recipe, codec_sources)
    lic = licences(registry, sources)
    restrictive = sorted({v for v in lic.values() if is_restrictive(v)})
    modality = "codec" if kind == "codec" else obj.modality
    formats = list(obj.formats)
    eval_cmd = [f"emoembed evaluate --model {PREFIX}{name} --data {','.join(spec.get('evaluate', []))}"]
    card = {"name": PREFIX + name, "kind": kind, "modality": modality, "formats": formats,
            "training_data": sources, **provenance(kind, recipe, spec.get("codec"), codec_sources), "licences": lic,
            "licence_summary": (["non-commercial research use (" + ", ".join(n for n, v in lic.items() if is_restrictive(v)) + ")"]
                                if restrictive else ["permissive"]),
            "scores": summary_scores(kind, scores, spec), "test": scores,
            "weights_sha256": build["sha256"], "train_seconds": build.get("train_seconds"),
            "rebuild": f"EMOEMBED_DATA=/path/to/data emoembed pretrained build {name}", "evaluate": eval_cmd,
            "recipe": recipe.get("source")}
    atomic_write_text(readme(name, spec, obj, card, scores), folder / CARD_README)
    atomic_write_json(card, folder / CARD_JSON)
    card["size_bytes"] = folder_size(folder)  # the folder as shipped (card.json's own few bytes of this field aside)
    atomic_write_json(card, folder / CARD_JSON)
    return card


def readme(name: str, spec: Mapping[str, Any], obj, card: Mapping[str, Any], scores: Mapping[str, Any]) -> str:
    kind, fmts = spec["kind"], obj.formats
    front = ["---", "library_name: emoembed", "license: other",
             f"license_name: {'non-commercial-research' if card['licence_summary'] != ['permissive'] else 'mit'}",
             "language: [" + ", ".join(spec.get("languages", ["en"])) + "]",
             "tags: [emotion, affective-computing, emotion-embeddings, " + card["modality"] + "]",
             "datasets: [" + ", ".join(card["training_data"]) + "]", "---", ""]
    example_format = spec.get("example_format", "be5")
    use_py = (f'from emoembed import EmotionCodec\ncodec = EmotionCodec.from_pretrained("{PREFIX}{name}")\n'
              f'codec.convert([[0.8, 0.5, 0.3]], source="vad", target="be5")' if kind == "codec" else
              f'from emoembed import EmotionModel\nmodel = EmotionModel.from_pretrained("{PREFIX}{name}")\n'
              f'model.predict({spec.get("example", ["happy", "grief"])!r}, format="{example_format}")')
    use_cli = spec.get("example_cli", "")
    fmt_lines = ["| format | kind | variables | normalised range |", "|---|---|---|---|"]
    for f in fmts.values():
        rng = f"[{f.range[0]:g}, {f.range[1]:g}]" if f.kind == "regression" else "probabilities (sum 1)" if f.kind in ("multiclass", "distribution") else "probabilities (each 0–1)"
        fmt_lines.append(f"| {f.name} | {f.kind} | {', '.join(f.variables)} | {rng} |")
    data_lines = ["| dataset | licence |", "|---|---|"] + [f"| {n} | {v} |" for n, v in card["licences"].items()]
    if kind == "model" and card.get("codec"):
        own = {str(d).split(":", 1)[0] for d in card.get("model_data", [])}
        data_lines = ["| dataset | licence | labels |", "|---|---|---|"] + [
            f"| {n} | {v} | {'this model' + (' and the codec' if n in card.get('codec_data', []) else '') if n in own else 'the codec'} |"
            for n, v in card["licences"].items()]
        augmented = card.get("augmented_formats") or []
        data_lines = [f"This model was trained on {', '.join(f'`{d}`' for d in card.get('model_data', []))}"
                      + (f", with {', '.join(augmented)} labels made from them by the codec (label augmentation)" if augmented else "")
                      + f", into the frozen codec `{card['codec']}`; the codec's own training data (its paired datasets) "
                      "shaped the weights too, so the table lists both, marked by whose labels they gave.", "", *data_lines]
    parts = front + [f"# {PREFIX}{name}", "", spec.get("summary", "").strip(), "",
                     "## Intended use", "", spec.get("intended_use", "").strip(), "",
                     "## How to use", "", "```python", use_py, "```", ""]
    if use_cli:
        parts += ["```bash", use_cli.strip(), "```", ""]
    parts += ["## Formats and scales", "",
              "Every format the codec knows can be predicted" + (" (formats outside the training data come zero-shot through the "
              "frozen codec heads)" if kind == "model" else "") + ". Outputs are on the normalised scale below; "
              "`--scale source` / `--output-scale low,high` give a rating scale.", "", *fmt_lines, "",
              "## Training data and licences", "", *data_lines, "",
              spec.get("licence_note", "").strip(), "",
              "## Test scores", "",
              f"Measured right after the build with `{card['evaluate'][0]}` (test splits; the metric column names the score: Pearson r "
              "for ratings, macro F1 for multi-label formats, accuracy for single-label classes).", "",
              scores_table(kind, scores, getattr(obj, "meta", {}).get("augmented_formats", []),
                           getattr(obj, "meta", {}).get("trained_formats", [])), "",
              *[f"**{k}: {v}**\n" for k, v in (spec.get("score_notes") or {}).items()],
              "## Known limits", "", spec.get("limits", "").strip(), "",
              "## Rebuild", "",
              "```bash", card["rebuild"], "```", "",
              f"Recipe: `{card['recipe']}`" + (f" with `{spec['set']}`" if spec.get("set") else "")
              + (f"; data {spec.get('data')}, augmentation {spec.get('augment', [])}, on `{PREFIX}{spec.get('codec')}`" if kind == "model" else "")
              + f". On CPU with one torch thread the rebuilt `model.safetensors` is bit-identical (sha256 "
              f"`{card['weights_sha256']}`); `emoembed pretrained build` says so after each build.", ""]
    return "\n".join(parts)

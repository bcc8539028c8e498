"""Named pretrained models that ship inside the package: ``emoembed/<name>`` (or the bare name where no folder of
that name exists) resolves to ``pretrained/<name>/`` of the checkout, or ``emoembed/resources/pretrained/<name>/``
of an installed wheel. Each folder is an ordinary saved model or codec (``config.json`` + ``model.safetensors``,
loaded by the same :meth:`~emoembed.pretrained.PretrainedModule.from_pretrained` as any run directory), plus its
model card (``README.md``) and ``card.json`` (what ``emoembed list pretrained`` prints: formats, training data and
licences, test scores measured with ``emoembed evaluate``).

How each model is made — recipe, overrides, data, the codec it sits on, the test splits its card reports — is in
``pretrained/models.yaml``; ``emoembed pretrained build NAME`` (:mod:`emoembed.training.pretrained_build`)
retrains it from there, bit for bit on CPU.

    EmotionModel.from_pretrained("emoembed/words-minilm").predict(["happy"], format="be5")
    EmotionCodec.from_pretrained("emoembed/codec-full")
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from emoembed.errors import ConfigError
from emoembed.io import read_json
from emoembed.settings import resource_dir

PREFIX = "emoembed/"
CATALOGUE_NAME = "models.yaml"
CARD_JSON = "card.json"
CARD_README = "README.md"
FILES = ("config.json", "model.safetensors", CARD_JSON, CARD_README)  # everything a packaged model folder holds


def zoo_dir() -> Path:
    """The folder holding the packaged models and ``models.yaml``."""
    return resource_dir("pretrained")


def catalogue() -> dict[str, dict[str, Any]]:
    """``models.yaml``: name → build spec (kind, recipe, overrides, data, codec, evaluation splits, card text)."""
    path = zoo_dir() / CATALOGUE_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: the catalogue of pretrained models is missing (a broken install?)")
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{path}: expected a mapping of model name → build spec")
    return raw


def pretrained_names() -> list[str]:
    """Names of the models in the catalogue whose weights are present."""
    return [n for n in catalogue() if (zoo_dir() / n / "model.safetensors").is_file()]


def is_pretrained_name(spec: Any) -> bool:
    """True for ``emoembed/<name>`` and a bare ``<name>`` of the catalogue, unless a folder (or file) of that name
    exists here — a local path wins, as in Hugging Face's ``from_pretrained``."""
    if not isinstance(spec, (str, Path)):
        return False
    text = str(spec)
    if text.startswith(PREFIX):
        return not Path(text).exists()
    if "/" in text or "\\" in text or Path(text).exists():
        return False
    try:
        return text in catalogue()
    except ConfigError:  # a resource folder without pretrained models (EMOEMBED_HOME): the name is a path
        return False


def pretrained_dir(spec: str | Path) -> Path:
    """The folder of the packaged model ``spec`` (``emoembed/<name>`` or ``<name>``); ConfigError listing the
    known names when it is not in the catalogue or its weights are absent."""
    text = str(spec)
    name = text[len(PREFIX):] if text.startswith(PREFIX) else text
    known = catalogue()
    if name not in known:
        raise ConfigError(f"unknown pretrained model {text!r}; known: {', '.join(PREFIX + n for n in known)} "
                          "(`emoembed list pretrained`)")
    folder = zoo_dir() / name
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(f"pretrained model {PREFIX}{name}: no weights in {folder}; rebuild them with "
                          f"`emoembed pretrained build {name}`")
    return folder


def resolve_model_dir(spec: str | Path) -> Path:
    """``spec`` as a directory: a packaged model's folder for ``emoembed/<name>``, else the path itself."""
    return pretrained_dir(spec) if is_pretrained_name(spec) else Path(spec)


def card(name: str) -> dict[str, Any]:
    """The ``card.json`` of a packaged model (empty when the model has not been built)."""
    path = zoo_dir() / name / CARD_JSON
    return read_json(path) if path.is_file() else {}


def folder_size(folder: Path) -> int:
    """Bytes of the files a packaged model folder ships."""
    return sum((folder / f).stat().st_size for f in FILES if (folder / f).is_file())


def human_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def score_parts(scores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``["warriner vad r 0.797", …]`` — one test score per evaluated split (the primary metric), with its note."""
    parts = []
    for key, r in scores.items():
        metric = {"pearson": "r", "mixed": ""}.get(r.get("metric", ""), r.get("metric", ""))
        parts.append(" ".join(p for p in (key, metric, f"{float(r['primary']):.3f}") if p) + (f" ({r['note']})" if r.get("note") else ""))
    return parts


def score_summary(scores: Mapping[str, Mapping[str, Any]]) -> str:
    """``warriner vad r 0.797; …`` — :func:`score_parts` on one line."""
    return "; ".join(score_parts(scores))


LIST_COLUMNS = ("name", "modality", "formats", "data", "augment", "codec", "licences", "size", "test")


def list_rows() -> list[dict[str, Any]]:
    """One row per catalogue entry (:data:`LIST_COLUMNS`): name, modality, formats; ``data``: the model's own
    training data — a content model's fit-encoder datasets (``NAME[:FORMAT]``), a codec's paired datasets —;
    ``augment``: the formats of a content model's codec-made labels; ``codec``: the packaged codec a content model
    sits on (whose paired data are that codec's ``data``); licences (of every dataset behind the weights, the
    codec's included), size, test scores. A card written before ``model_data`` existed: its entry in
    ``models.yaml`` says the same."""
    rows = []
    for name, spec in catalogue().items():
        info = card(name)
        folder = zoo_dir() / name
        present = (folder / "model.safetensors").is_file()
        model = spec.get("kind", info.get("kind")) == "model"
        data = (info.get("model_data", spec.get("data", [])) if model else info.get("training_data", [])) if info else []
        augment = info.get("augmented_formats", spec.get("augment", [])) if model and info else []
        codec = info.get("codec") or (PREFIX + spec["codec"] if spec.get("codec") else "") if model and info else ""
        rows.append({"name": PREFIX + name, "modality": info.get("modality", spec.get("modality", "codec")),
                     "formats": ",".join(info.get("formats", [])), "data": ",".join(map(str, data)),
                     "augment": ",".join(map(str, augment or [])), "codec": codec or "",
                     "licences": "; ".join(info.get("licence_summary", [])),
                     "size": human_size(folder_size(folder)) if present else "not built",
                     "test": score_summary(info.get("scores", {}))})
    return rows

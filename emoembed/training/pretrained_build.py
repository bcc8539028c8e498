"""Rebuild a packaged pretrained model from its entry in ``pretrained/models.yaml``: the same recipe, overrides and
data through the ordinary trainers (``run_map`` for a codec, ``run_fit_encoder`` for a content model on the
packaged codec it names), on CPU with one thread, so the weights come out bit for bit as shipped.

Only ``config.json`` and ``model.safetensors`` are copied out of the (temporary) run directory; the model card is
written afterwards from ``emoembed evaluate`` scores (:mod:`emoembed.model_cards`). The recipe's ``source`` is
recorded relative to the resource folder, so the config does not name the machine it was built on.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from emoembed.data.registry import DataRegistry
from emoembed.errors import ConfigError
from emoembed.model_zoo import catalogue, pretrained_dir
from emoembed.pretrained import CONFIG_NAME, WEIGHTS_NAME, store_weights_as
from emoembed.recipes import load_codec_recipe, load_encoder_recipe
from emoembed.settings import resource_dir

KINDS = ("codec", "model")


def build_spec(name: str) -> dict[str, Any]:
    """The catalogue entry of ``name``, checked: ``kind`` codec|model, a ``recipe``; a model also ``modality``,
    ``codec`` (a packaged codec's name) and ``data``."""
    entries = catalogue()
    if name not in entries:
        raise ConfigError(f"unknown pretrained model {name!r}; known: {', '.join(entries)}")
    spec = dict(entries[name])
    kind = spec.get("kind")
    need = ["recipe"] + (["modality", "codec", "data"] if kind == "model" else [])
    if kind not in KINDS or any(k not in spec for k in need):
        raise ConfigError(f"pretrained/models.yaml: {name}: needs kind ({'|'.join(KINDS)}) and {', '.join(need)}")
    return spec


def recipe_for(spec: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The resolved recipe of a catalogue entry (its ``set`` overrides, data, augmentation; CPU, one device), with
    ``extra`` overrides (dotted keys, as ``--set``) on top — for smoke builds, never for the shipped weights."""
    folder = "mappings" if spec["kind"] == "codec" else "encoders"
    rel = f"{folder}/{spec['recipe']}.yaml"
    overrides = dict(spec.get("set") or {}) | dict(extra or {})
    if spec["kind"] == "codec":
        recipe = load_codec_recipe(resource_dir(folder) / f"{spec['recipe']}.yaml", overrides)
    else:
        overrides = {"data": list(spec["data"]), "augment": list(spec.get("augment") or []),
                     "training.device": "cpu"} | overrides
        recipe = load_encoder_recipe(resource_dir(folder) / f"{spec['recipe']}.yaml", spec["modality"], overrides)
    recipe["source"] = rel
    return recipe


def build_pretrained(name: str, out_dir: Path, data: DataRegistry, progress: bool = False,
                     log: Callable[[str], None] = print, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train ``name`` from its recipe into ``out_dir`` (``config.json`` + ``model.safetensors``, each replaced
    atomically). Returns ``{"recipe", "train_seconds", "test_mean", "sha256"}``. Runs with one torch thread (and
    restores the previous count) so that reductions happen in one order: the weights are bit-identical run to run.
    ``overrides`` (dotted recipe keys) change the recipe — a smoke build (e.g. ``training.max_train_items``,
    ``training.epochs``), not the shipped model. An entry with ``storage_dtype: float16`` is trained in float32 and
    stored in half precision (its codec tensors stay float32): :func:`emoembed.pretrained.store_weights_as`."""
    spec = build_spec(name)
    recipe = recipe_for(spec, overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix=f"emoembed-build-{name}-") as tmp:
            run_dir = Path(tmp) / "run"
            if spec["kind"] == "codec":
                from emoembed.training.codec import run_map

                metrics = run_map(recipe, run_dir, data, progress=progress, log=log)
            else:
                from emoembed.training.encoder import run_fit_encoder

                metrics = run_fit_encoder(recipe, pretrained_dir(spec["codec"]), data, run_dir, progress=progress, log=log)
            out_dir.mkdir(parents=True, exist_ok=True)
            for fname in (WEIGHTS_NAME, CONFIG_NAME):
                part = out_dir / f".{fname}.part"
                shutil.copyfile(run_dir / fname, part)
                os.replace(part, out_dir / fname)
            if spec.get("storage_dtype"):
                store_weights_as(out_dir, str(spec["storage_dtype"]))
                if spec["kind"] == "model":  # the decision rules describe the weights that ship, not the float32 ones
                    calibrate_packaged_model(name, data, log, out_dir)
    finally:
        torch.set_num_threads(threads)
    return {"recipe": recipe, "train_seconds": metrics.get("train_seconds"), "test_mean": metrics.get("test_mean"),
            "sha256": file_sha256(out_dir / WEIGHTS_NAME)}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def same_weights(a: Path, b: Path) -> tuple[bool, str]:
    """Whether two ``model.safetensors`` hold the same tensors bit for bit: (equal, what differs)."""
    from emoembed.io import load_safetensors

    sa, sb = load_safetensors(a), load_safetensors(b)
    if set(sa) != set(sb):
        return False, f"different tensors: {sorted(set(sa) ^ set(sb))[:5]}"
    diff = [k for k in sa if sa[k].shape != sb[k].shape or sa[k].dtype != sb[k].dtype or not torch.equal(sa[k], sb[k])]
    if diff:
        worst = max((float((sa[k].float() - sb[k].float()).abs().max()) for k in diff if sa[k].shape == sb[k].shape),
                    default=float("nan"))
        return False, f"{len(diff)} of {len(sa)} tensors differ (e.g. {diff[:3]}; largest difference {worst:.3g})"
    return True, f"all {len(sa)} tensors bit-identical"


def calibrate_packaged(name: str, data: DataRegistry, log: Callable[[str], None] = print,
                       folder: Path | None = None) -> dict[str, Any]:
    """A packaged content model: :func:`calibrate_packaged_model` (into ``folder``, default its packaged folder).
    A packaged codec: fit the multilabel calibration of ``name`` (the steps ``emoembed map`` runs after
    training: :func:`emoembed.calibration.calibrate_codec` on the dev split of the pairs of its recipe) and write it,
    with the pairs it was trained on, into ``config.json`` of the codec and of every packaged model built on it.
    Weights are not touched (their digests in the configs stay valid); a rebuild writes the same config. Returns
    the calibration."""
    from emoembed.calibration import calibrate_codec
    from emoembed.codec import EmotionCodec
    from emoembed.io import atomic_write_json, read_json
    from emoembed.training.codec import load_pairs

    spec = build_spec(name)
    if spec["kind"] != "codec":
        return calibrate_packaged_model(name, data, log, folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        codec = EmotionCodec.from_pretrained(pretrained_dir(name))
        codec.calibration, codec.trained_pairs = {}, []
        calibrate_codec(codec, load_pairs(recipe_for(spec), data, log), {}, log)
    finally:
        torch.set_num_threads(threads)
    fields = {"calibration": codec.calibration, "trained_pairs": codec.trained_pairs}
    path = pretrained_dir(name) / CONFIG_NAME
    cfg = read_json(path)
    new = {k: v for k, v in cfg.items() if k not in ("recipe", "weights_sha256", "codec_fingerprint")} | codec.config()
    atomic_write_json(new | {k: cfg[k] for k in ("recipe", "weights_sha256", "codec_fingerprint") if k in cfg}, path)
    log(f"wrote the calibration into {path}")
    for other, entry in catalogue().items():
        if entry.get("kind") == "model" and entry.get("codec") == name and (pretrained_dir(other) / CONFIG_NAME).is_file():
            path = pretrained_dir(other) / CONFIG_NAME
            cfg = read_json(path)
            cfg["codec"] = dict(cfg["codec"]) | fields
            atomic_write_json(cfg, path)
            log(f"wrote the calibration into {path}")
    return codec.calibration


def calibrate_packaged_model(name: str, data: DataRegistry, log: Callable[[str], None] = print,
                             folder: Path | None = None) -> dict[str, Any]:
    """Fit a packaged content model's own multilabel decision rules (the step ``fit-encoder`` runs after training,
    :func:`emoembed.training.encoder.calibrate_model`, on the dev split of the datasets of its catalogue entry) and
    write them into ``config.json`` of ``folder`` (default: the packaged folder) as ``calibration``; weights are
    not touched. Returns the rules (empty: no multilabel format among its training formats)."""
    from emoembed.io import atomic_write_json, read_json
    from emoembed.model import EmotionModel
    from emoembed.tasks import build_tasks
    from emoembed.training.encoder import calibrate_model

    spec = build_spec(name)
    recipe = recipe_for(spec)
    folder = Path(folder) if folder is not None else pretrained_dir(name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = EmotionModel.from_pretrained(folder)
        tasks = build_tasks(data, recipe["data"], model.codec.formats, recipe["modality"])
        rules = calibrate_model(model, tasks, int(recipe["training"]["eval_batch_size"]), log)
    finally:
        torch.set_num_threads(threads)
    path = folder / CONFIG_NAME
    cfg = read_json(path)
    cfg.pop("calibration", None)
    if rules:
        cfg["calibration"] = rules
    atomic_write_json(cfg, path)
    log(f"wrote {len(rules)} decision rule(s) into {path}")
    return rules

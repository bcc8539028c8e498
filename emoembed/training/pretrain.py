"""CARL as the paper trains it: representation learning with MCCL + PTD alone (no codec head touched), then a
saved backbone that ``fit-encoder`` (recipe key ``encoder.backbone: RUN/backbone``) and the probes
(``emoembed evaluate --probe --model RUN/backbone``) start from.

    emoembed pretrain --codec runs/map-full --recipe encoders/text-minilm-carl-pretrain.yaml \\
        --data emobank,affectivetext:be6,goemotions:ekman7 --out runs/carl-pretrain

It is the one stage-2 loop (``emoembed.training.fit``) with every epoch a pure-CARL epoch (``pretrain_epochs`` =
``epochs``: head loss weight 0, so neither the frozen codec heads nor the encoder's projection into the emotion
space receive a gradient; the model is the last epoch's, no dev-score selection). MCCL needs (valence, arousal)
per text: gold for a format that has both (EmoBank's vad), otherwise **codec-made** by the frozen codec from the
dataset's own labels (:func:`codec_va_labels`, equal to ``codec.convert(y, source, target="va")``), so any text
dataset whose format the codec knows (AffectiveText be6, GoEmotions ekman7/goemotions28, …) adds contrastive
pairs. ``training.max_train_items: {dataset: n}`` subsamples a dataset's training split (seeded).

Written to ``--out``: ``backbone/`` (a Hugging Face folder: config, safetensors weights, tokenizer),
``recipe.json`` (resolved), ``metrics.json`` (per-epoch losses, PTD detection accuracy/AUC, wall time, data
sizes) and, while running, ``training_state.pt`` for ``--resume``.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoembed.codec import EmotionCodec
from emoembed.errors import ConfigError
from emoembed.formats import LabelFormat
from emoembed.io import atomic_write_json

BACKBONE_DIR = "backbone"
DEV_ITEMS = 500  # dev items per dataset logged each pre-training epoch


@torch.no_grad()
def codec_va_labels(codec: EmotionCodec, fmt: LabelFormat | str, y: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, 2) (valence, arousal) in [-1, 1] for labels ``y`` (N, k) of format ``fmt``: the gold columns when the
    format has valence and arousal, else the frozen codec's conversion into ``va`` (or ``vad`` when the codec has
    no ``va``) — the same numbers as ``codec.convert(y, fmt, target="va")`` (pooled mapping, clipped to the
    range). Raises ConfigError when the codec knows neither the format nor va/vad."""
    from emoembed.training.encoder import synthetic_labels

    name = fmt if isinstance(fmt, str) else fmt.name
    if name not in codec.formats:
        raise ConfigError(f"codec-made VA labels: the codec does not know format {name!r} (it knows {', '.join(codec.formats)})")
    f = codec.formats[name]
    y = torch.as_tensor(np.asarray(y, dtype=np.float32) if not isinstance(y, torch.Tensor) else y).float()
    vars_ = list(f.variables)
    if "valence" in vars_ and "arousal" in vars_:
        return y[:, [vars_.index("valence"), vars_.index("arousal")]]
    for target in ("va", "vad"):
        if target in codec.formats:
            tv = list(codec.formats[target].variables)
            out = synthetic_labels(codec, f, y.to(next(codec.parameters()).device), target, "soft").cpu()
            return out[:, [tv.index("valence"), tv.index("arousal")]].float()
    raise ConfigError("codec-made VA labels: the codec knows neither va nor vad")


def _cap_dev(task, n: int, seed: int):
    """The task with at most ``n`` dev items (seeded): while pre-training the dev score selects nothing, it is only
    logged, so a large dev split (GoEmotions: 5,426) would only cost time."""
    from dataclasses import replace

    if task.size("dev") <= n:
        return task
    keep = np.sort(np.random.default_rng(seed).choice(task.size("dev"), n, replace=False))
    return replace(task, items={**task.items, "dev": [task.items["dev"][i] for i in keep]},
                   labels={**task.labels, "dev": task.labels["dev"][keep]})


def pretrain_recipe(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe with every epoch a pure-CARL epoch; ConfigError unless its objective is CARL with MCCL or PTD."""
    r = copy.deepcopy(dict(recipe))
    obj = r.get("objective") or {}
    if obj.get("name") != "carl":
        raise ConfigError("pretrain: the recipe's objective must be carl (MCCL + PTD)")
    if not obj.get("mccl", True) and not obj.get("ptd", True):
        raise ConfigError("pretrain: at least one of objective.mccl and objective.ptd must be on")
    if r.get("heads", "codec") != "codec":
        raise ConfigError("pretrain: heads must be codec (they stay frozen and unused)")
    r["training"] = {**r["training"], "pretrain_epochs": int(r["training"]["epochs"])}
    r["augment"] = []
    return r


def save_backbone(encoder, directory: Path) -> Path:
    """The encoder's backbone and tokenizer as a Hugging Face folder (safetensors), atomically (written beside,
    then renamed)."""
    import shutil

    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    encoder.backbone.save_pretrained(str(tmp), safe_serialization=True)
    encoder.tokenizer.save_pretrained(str(tmp))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def run_pretrain(recipe: Mapping[str, Any], codec_dir: Path, data, out_dir: Path, resume: bool = False,
                 progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pure-CARL pre-training of a text encoder; writes ``out_dir`` (see the module doc) and returns the metrics."""
    from emoembed.codec import head_fingerprint
    from emoembed.tasks import build_tasks
    from emoembed.training.encoder import fit

    recipe = pretrain_recipe(recipe)
    if recipe["modality"] != "text":
        raise ConfigError(f"pretrain: CARL pre-trains text encoders, not {recipe['modality']!r}")
    codec = EmotionCodec.from_pretrained(codec_dir)
    fingerprint = head_fingerprint(codec)
    tasks = [_cap_dev(t, DEV_ITEMS, int(recipe["seed"])) for t in build_tasks(data, recipe["data"], codec.formats, "text")]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json({**recipe, "codec": str(codec_dir)}, out_dir / "recipe.json")
    log("pre-training data: " + ", ".join(f"{t.name} ({t.fmt.name}: {t.size('train')} train)" for t in tasks))
    t0 = time.perf_counter()
    result = fit(recipe, codec, tasks, out_dir, resume=resume, progress=progress, log=log)
    if head_fingerprint(codec) != fingerprint:
        raise ConfigError("internal error: pre-training changed the codec")
    save_backbone(result.encoder, out_dir / BACKBONE_DIR)
    cap = recipe["training"].get("max_train_items")
    sizes = {t.name: (min(t.size("train"), int(cap.get(t.name) or t.size("train"))) if isinstance(cap, Mapping)
                      else min(t.size("train"), int(cap or t.size("train")))) for t in tasks}
    metrics = {"recipe": recipe["name"], "mode": "pretrain", "train_items": sizes, "epochs": recipe["training"]["epochs"],
               "batch_size": recipe["training"]["batch_size"], "train_seconds": round(result.seconds, 1),
               "wall_seconds": round(time.perf_counter() - t0, 1), "history": result.history,
               "torch_threads": torch.get_num_threads(), "backbone": str(out_dir / BACKBONE_DIR)}
    atomic_write_json(metrics, out_dir / "metrics.json")
    (out_dir / "training_state.pt").unlink(missing_ok=True)
    log(f"pre-trained in {result.seconds / 60:.1f} min; backbone saved to {out_dir / BACKBONE_DIR}")
    return metrics

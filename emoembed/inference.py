"""Inference pieces shared by :class:`~emoembed.model.EmotionModel`, the trainers and the benchmarks: the
device, batched embedding of raw items with a content encoder, and the metrics of a task split. Nothing here
trains; training imports this module, never the other way round."""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emoembed.encoders.base import ContentEncoder
from emoembed.errors import ConfigError
from emoembed.format_kinds import activate, clip_to_range
from emoembed.formats import LabelFormat
from emoembed.metrics import evaluate_format
from emoembed.tasks import Task


def pick_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto``: cuda if available, else mps, else cpu. ``local_rank`` (a distributed run) picks that CUDA device."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda" and local_rank is not None:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """``batch``'s tensors on ``device`` (other values unchanged)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def embed_items(encoder: ContentEncoder, items: Sequence[Any], batch_size: int, device: torch.device,
                progress: bool = False, desc: str = "encode") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Embeddings (N, dim) on CPU in input order, batched by the encoder's sort key; and the rows whose
    output is undefined (e.g. OOV under skip), or None."""
    was = encoder.training
    encoder.eval()
    keys = np.asarray(encoder.sort_keys(items), dtype=float)
    order = np.argsort(keys, kind="stable") if keys.any() else np.arange(len(items))
    out = torch.empty(len(items), encoder.dim)
    undefined = torch.zeros(len(items), dtype=torch.bool)
    any_undef = False
    try:
        for i in tqdm(range(0, len(items), batch_size), desc=desc, disable=not progress, leave=False):
            sel = order[i:i + batch_size]
            batch = move_batch(encoder.collate([items[j] for j in sel], train=False), device)
            with autocast_for(device):
                z = encoder(batch)
            out[torch.as_tensor(sel)] = z.float().cpu()
            mask_fn = getattr(encoder, "output_mask", None)
            m = mask_fn(batch) if mask_fn else None
            if m is not None:
                undefined[torch.as_tensor(sel)] = m.cpu()
                any_undef = True
    finally:
        encoder.train(was)
    return out, (undefined if any_undef else None)


def autocast_for(device: torch.device, enabled: bool = True):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_task(encoder: ContentEncoder, heads: nn.Module, task: Task, split: str, batch_size: int,
                  device: torch.device, fmt: LabelFormat | None = None, rule: Mapping[str, Any] | None = None,
                  zero_shot_rule: bool = False) -> dict:
    """Metrics of ``task``'s ``split`` in ``fmt`` (default: the task's own format). A multilabel format is scored
    on the labels ``predict`` gives (:func:`emoembed.calibration.decide` with ``rule`` and ``zero_shot_rule``;
    ``decision_rule`` in the result says which) when a rule is given or the zero-shot rule applies, else at
    p > 0.5 (the dev score that selects a training epoch)."""
    fmt = fmt or task.fmt
    items = task.items.get(split, [])
    if not items:
        return {"n": 0, "primary": float("nan"), "metric": fmt.metric, "per_variable": {}}
    z, undefined = embed_items(encoder, items, batch_size, device)
    pred = activate(fmt, heads.decode(fmt.name, z.to(device)).float()).cpu().numpy()
    gold = task.labels[split]
    if undefined is not None and undefined.any():
        keep = ~undefined.numpy()
        pred, gold = pred[keep], gold[keep]
    pred = clip_to_range(fmt, pred)
    labels = None
    if fmt.kind == "multilabel" and (rule is not None or zero_shot_rule):
        from emoembed.calibration import decide

        labels = decide(pred, fmt, rule, zero_shot=zero_shot_rule)
    out = evaluate_format(pred, gold, fmt, labels)
    if fmt.kind == "multilabel":
        out["decision_rule"] = ("zero-shot rule" if zero_shot_rule else
                                (rule.get("fitted_on") or "calibrated") if rule is not None else "p > 0.5")
    out["coverage"] = float(len(gold) / len(items))
    out["format"] = fmt.name
    return out

"""Optimizer parameter groups for fine-tuning a transformer backbone with layer-wise learning-rate decay (LLRD).

LLRD gives the top transformer layer the base rate and each layer below it ``decay`` times the rate of the layer
above; the embeddings get one more factor. Lower layers hold general features that a small labelled set should
move least (Howard & Ruder 2018, "Universal Language Model Fine-tuning", discriminative fine-tuning; Sun et al.
2019, "How to Fine-Tune BERT for Text Classification", §5.3; Clark et al. 2020, ELECTRA, which uses 0.8–0.9).
Parameters outside the backbone (the projection into the emotion space, trainable heads, objective heads) keep the
base rate.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

import torch

from emoembed.errors import ConfigError

_LAYER = re.compile(r"(?:^|\.)(?:encoder\.)?layers?\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")


def layer_index(name: str) -> int | None:
    """Transformer block index of a parameter name (``backbone.encoder.layer.3.attention…`` → 3), -1 for the
    embeddings, None for anything else (projection, pooler, heads)."""
    if "backbone." not in name and not name.startswith("backbone"):
        return None
    m = _LAYER.search(name)
    if m:
        return int(m.group(1))
    if _EMBEDDINGS.search(name):
        return -1
    return None


def layerwise_lr_groups(named_params: Iterable[tuple[str, torch.nn.Parameter]], lr: float, decay: float,
                        weight_decay: float = 0.0) -> list[dict]:
    """Parameter groups for ``torch.optim`` with layer-wise rate decay.

    Args:
        named_params: ``(name, parameter)`` pairs (only those with ``requires_grad`` are used), e.g. a text
            encoder's ``named_parameters()`` whose backbone lives under ``backbone.``.
        lr: the base rate (top layer, projection, heads).
        decay: factor in (0, 1]; layer ``i`` of ``L`` gets ``lr · decay^(L − 1 − i)``, embeddings ``lr · decay^L``.
        weight_decay: copied into every group.

    Returns: one group per distinct rate, each ``{"params", "lr", "weight_decay", "name"}``.

    Raises: ConfigError if ``decay`` is outside (0, 1] or no backbone layer is found (LLRD needs a transformer).
    """
    if not 0 < decay <= 1:
        raise ConfigError(f"training.layer_decay must be in (0, 1], got {decay}")
    items = [(n, p) for n, p in named_params if p.requires_grad]
    indices = {n: layer_index(n) for n, _ in items}
    layers = [i for i in indices.values() if i is not None and i >= 0]
    if not layers:
        raise ConfigError("training.layer_decay needs a transformer backbone with numbered layers "
                          "(…encoder.layer.N…); this encoder has none")
    n_layers = max(layers) + 1
    groups: dict[float, dict] = {}
    for n, p in items:
        i = indices[n]
        depth = 0 if i is None else (n_layers - 1 - i if i >= 0 else n_layers)
        rate = lr * decay ** depth
        g = groups.setdefault(rate, {"params": [], "lr": rate, "weight_decay": weight_decay,
                                     "name": "other" if i is None else f"depth {depth}"})
        g["params"].append(p)
    return sorted(groups.values(), key=lambda g: -g["lr"])

"""LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") on a text encoder's
backbone, through Hugging Face ``peft``: the backbone's weights stay frozen and are **not saved** — a saved model
holds only the low-rank matrices (and the encoder's projection), and loading rebuilds the backbone from its spec
(``packaged:all-MiniLM-L6-v2`` or a local folder) before the adapter is put back on it.

Recipe key (``encoder.lora`` of a text recipe; absent or null = full fine-tuning)::

    encoder:
      lora: {rank: 8, alpha: 16, dropout: 0.1, target_modules: [query, key, value, dense]}

``rank`` r and ``alpha`` give the update ``W + (alpha / r) · B A`` (B: d×r starts at zero, so an untrained adapter
leaves the backbone unchanged); ``target_modules`` are the names of the backbone's ``nn.Linear`` layers that get
one (BERT/MiniLM: ``query``, ``key``, ``value``, ``dense`` — the last matches the attention output and both
feed-forward layers). The checkpoint records a SHA-256 of the frozen backbone's weights, so an adapter is never
silently put on a different backbone.

A fully fine-tuned backbone can also be **saved as** an adapter (recipe key ``export_lora``, same keys as ``lora``):
:func:`extract_lora` fits each target layer's rank-r matrices to its weight change by truncated SVD (the best
rank-r approximation in Frobenius norm, Eckart–Young; the "LoRA extraction" of e.g. kohya-ss's sd-scripts and
mergekit's ``extract_lora``). Only the target layers' weight matrices carry over; biases, LayerNorms and embeddings
return to the base model's.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from emoembed.errors import CheckpointError, ConfigError

LORA_KEYS = {"rank", "alpha", "dropout", "target_modules"}
DEFAULT_TARGETS = ("query", "value")
ADAPTER_NAME = "default"


def lora_settings(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The validated ``lora`` section (None: no adapter); ConfigError naming the key otherwise."""
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"text encoder: lora must be a mapping with {sorted(LORA_KEYS)}, got {cfg!r}")
    unknown = set(cfg) - LORA_KEYS
    if unknown:
        raise ConfigError(f"text encoder: lora: unknown key(s) {sorted(unknown)}; known: {sorted(LORA_KEYS)}")
    rank = cfg.get("rank", 8)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"text encoder: lora.rank must be a positive integer, got {rank!r}")
    alpha = cfg.get("alpha", 2 * rank)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ConfigError(f"text encoder: lora.alpha must be a positive number, got {alpha!r}")
    dropout = cfg.get("dropout", 0.1)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"text encoder: lora.dropout must be in [0, 1), got {dropout!r}")
    targets = cfg.get("target_modules", list(DEFAULT_TARGETS))
    if isinstance(targets, str):
        targets = [t for t in targets.split(",") if t]
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError(f"text encoder: lora.target_modules must be a non-empty list of module names, got {targets!r}")
    return {"rank": rank, "alpha": float(alpha), "dropout": float(dropout), "target_modules": list(targets)}


def add_lora(backbone: nn.Module, settings: Mapping[str, Any]) -> nn.Module:
    """Inject LoRA layers into ``backbone`` in place (``peft.inject_adapter_in_model``) and freeze everything but
    them. Returns the backbone. ConfigError when no module matches ``target_modules``."""
    from emoembed import _torchvision_fix

    _torchvision_fix.ensure_torchvision_importable()  # peft imports transformers' vision utilities
    from peft import LoraConfig, inject_adapter_in_model

    names = {n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)}
    missing = [t for t in settings["target_modules"] if t not in names]
    if missing:
        raise ConfigError(f"text encoder: lora.target_modules {missing} match no linear layer of the backbone; "
                          f"its linear layers are named {sorted(names)}")
    config = LoraConfig(r=int(settings["rank"]), lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                        target_modules=list(settings["target_modules"]), bias="none")
    backbone.requires_grad_(False)
    inject_adapter_in_model(config, backbone, adapter_name=ADAPTER_NAME)
    for name, p in backbone.named_parameters():
        p.requires_grad_(is_adapter_key(name))
    return backbone


def is_adapter_key(key: str) -> bool:
    """True for the parameters LoRA adds (``…lora_A.default.weight``, ``…lora_B.default.weight``)."""
    return ".lora_A." in key or ".lora_B." in key or key.startswith(("lora_A.", "lora_B."))


def frozen_keys(backbone: nn.Module) -> list[str]:
    """State-dict keys of the backbone that an adapter checkpoint leaves out (everything but the adapter)."""
    return [k for k in backbone.state_dict() if not is_adapter_key(k)]


def backbone_fingerprint(backbone: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) over the frozen weights' names, shapes and bytes, in key order."""
    h = hashlib.sha256()
    for key, t in sorted(backbone.state_dict().items()):
        if is_adapter_key(key):
            continue
        key = key.replace(".base_layer.", ".")  # the same number before and after LoRA is injected
        t = t.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def check_fingerprint(expected: str | None, backbone: nn.Module, spec: str) -> None:
    """CheckpointError when the backbone built from ``spec`` is not the one the adapter was trained on."""
    if expected and backbone_fingerprint(backbone) != expected:
        raise CheckpointError(f"this LoRA adapter was trained on a backbone with weights {expected}, but {spec} has "
                              f"{backbone_fingerprint(backbone)}; install the backbone version it was trained with")


def merge_adapters(module: nn.Module) -> int:
    """Merge every LoRA layer inside ``module`` into its base layer's weights (``W ← W + B·A·alpha/r``, peft's
    ``merge``) and put the plain base layer back in its place, in place — what ``PeftModel.merge_and_unload`` does
    for a model that is not a ``PeftModel``. Call it on a copy (e.g. before an ONNX export): the adapter is gone
    afterwards. Returns how many layers were merged (0 without an adapter; peft is then not imported)."""
    if not any(is_adapter_key(k) for k, _ in module.named_parameters()):
        return 0
    from emoembed import _torchvision_fix

    _torchvision_fix.ensure_torchvision_importable()
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, layer in list(module.named_modules()):
        if not isinstance(layer, BaseTunerLayer) or not name:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        if getattr(parent, child, None) is not layer:
            continue  # nested inside a layer replaced already
        layer.merge(safe_merge=True)
        setattr(parent, child, layer.get_base_layer())
        merged += 1
    return merged


def extract_lora(tuned: nn.Module, adapted: nn.Module) -> dict[str, float]:
    """Set the LoRA matrices of ``adapted`` — the base backbone with an adapter injected by :func:`add_lora` — so
    that each adapted layer's update ``(alpha / r) · B A`` is the rank-r truncated SVD of ``W_tuned − W_base``, the
    best rank-r approximation of the weight change (Eckart–Young). ``tuned`` is the same architecture fully
    fine-tuned from that base (module names as in ``adapted`` without peft's wrappers). The SVD runs in float64 on
    the CPU, so the result is deterministic. Only weight matrices are transferred (biases, LayerNorms and embeddings
    of ``tuned`` are dropped). Returns ``{"layers": n, "energy_kept": share of Σ‖ΔW‖²_F kept by the truncation}``.
    CheckpointError when a layer of ``adapted`` has no counterpart of the same shape in ``tuned``."""
    from emoembed import _torchvision_fix

    _torchvision_fix.ensure_torchvision_importable()
    from peft.tuners.lora import LoraLayer

    sources = dict(tuned.named_modules())
    kept = total = 0.0
    layers = 0
    with torch.no_grad():
        for name, layer in adapted.named_modules():
            if not isinstance(layer, LoraLayer) or ADAPTER_NAME not in layer.lora_A:
                continue
            base = layer.get_base_layer()
            source = sources.get(name)
            if source is None or getattr(source, "weight", None) is None or source.weight.shape != base.weight.shape:
                raise CheckpointError(f"LoRA extraction: the fine-tuned model has no layer {name!r} of shape "
                                      f"{tuple(base.weight.shape)}")
            delta = source.weight.detach().cpu().double() - base.weight.detach().cpu().double()
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            rank = layer.r[ADAPTER_NAME]
            root = s[:rank].sqrt() / math.sqrt(layer.scaling[ADAPTER_NAME])
            a = layer.lora_A[ADAPTER_NAME].weight
            b = layer.lora_B[ADAPTER_NAME].weight
            a.copy_((root[:, None] * vh[:rank]).to(a.dtype))
            b.copy_((u[:, :rank] * root[None, :]).to(b.dtype))
            kept += float((s[:rank] ** 2).sum())
            total += float((s ** 2).sum())
            layers += 1
    if not layers:
        raise CheckpointError("LoRA extraction: the adapted model has no LoRA layer")
    return {"layers": layers, "energy_kept": kept / total if total > 0 else 1.0}

"""Per-step learning-rate schedules with linear warm-up: ``linear`` decay to 0, ``cosine`` decay to 0, and
``cosine_restarts`` (SGDR-style cosine annealing with warm restarts after a linear warm-up, as the CARL paper
trains: "cosine annealing learning rate schedule with warm restarts and a 10% warmup period").

Recipe form (``training.scheduler``)::

    scheduler: {type: linear, warmup: 0.1}            # warm-up: a fraction of all optimizer steps (< 1) or a count
    scheduler: {type: cosine, warmup: 0.06}
    scheduler: {type: cosine_restarts, warmup: 0.1, cycles: 2}   # cycles of equal length after the warm-up

The multiplier of the base rate at optimizer step k (0-based, K steps in all, W warm-up steps) is
``(k + 1)/W`` during the warm-up, then ``1 − p`` (linear) or ``(1 + cos πp)/2`` (cosine) with p the fraction of the
post-warm-up steps done (per cycle for ``cosine_restarts``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from emoembed.errors import ConfigError

if TYPE_CHECKING:
    import torch

STEP_SCHEDULES = ("linear", "cosine", "cosine_restarts")


def warmup_steps(warmup: float | int, total_steps: int) -> int:
    w = float(warmup or 0)
    if w < 0:
        raise ConfigError(f"training.scheduler.warmup must be ≥ 0, got {warmup!r}")
    return int(round(w * total_steps)) if w < 1 else int(w)


def lr_multiplier(kind: str, step: int, total_steps: int, warmup: int, cycles: int = 1) -> float:
    """The factor of the base learning rate at optimizer step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    rest = max(1, total_steps - warmup)
    p = min(max(step - warmup, 0), rest) / rest
    if kind == "linear":
        return max(0.0, 1.0 - p)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if kind == "cosine_restarts":
        cycles = max(1, int(cycles))
        q = (p * cycles) % 1.0 if p < 1.0 else 1.0
        return 0.5 * (1.0 + math.cos(math.pi * q))
    raise ConfigError(f"unknown step schedule {kind!r}; known: {list(STEP_SCHEDULES)}")


def is_step_schedule(cfg: Mapping[str, Any] | None) -> bool:
    return bool(cfg) and str(cfg.get("type", "step")) in STEP_SCHEDULES


def build_step_scheduler(opt: "torch.optim.Optimizer", cfg: Mapping[str, Any], total_steps: int) -> "torch.optim.lr_scheduler.LambdaLR":
    """A ``LambdaLR`` to be stepped after every optimizer step (its state is checkpointed with the run)."""
    kind = str(cfg.get("type"))
    if kind not in STEP_SCHEDULES:
        raise ConfigError(f"training.scheduler.type must be one of {['step', *STEP_SCHEDULES]}, got {kind!r}")
    unknown = set(cfg) - {"type", "warmup", "cycles"}
    if unknown:
        raise ConfigError(f"training.scheduler: unknown key(s) {sorted(unknown)} for type {kind}")
    import torch

    w = warmup_steps(cfg.get("warmup", 0), total_steps)
    cycles = int(cfg.get("cycles", 1))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_multiplier(kind, k, total_steps, w, cycles))

"""What a label format's *kind* means, in one place: how raw head outputs become values or probabilities
(:func:`activate`), the training loss against gold labels (:func:`format_loss`), hard targets from soft ones
(:func:`hard_targets`) and the output table (:func:`format_output`). Stage 1 (codec), stage 2 (content encoders),
CARL, the suite and the benchmarks all use these functions.

Kinds (see ``mappings/formats.yaml``):

* ``regression`` — real values in the format's ``range`` (e.g. VAD in [-1, 1]); raw outputs are the values;
  loss MSE (or L1 with ``loss: l1``).
* ``multiclass`` — one class per item; raw outputs are logits, softmax gives probabilities; loss cross-entropy
  against one-hot (or soft) targets.
* ``distribution`` — a probability distribution over the variables; softmax; soft-target cross-entropy, or
  KL divergence with ``loss: kl``.
* ``multilabel`` — any subset of the variables; sigmoid per variable; binary cross-entropy with logits.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from emoembed.formats import LabelFormat

SOFTMAX_KINDS = ("multiclass", "distribution")


def activate(fmt: LabelFormat, raw: torch.Tensor) -> torch.Tensor:
    """Raw head outputs ``(..., k)`` → the format's values: sigmoid (multilabel), softmax over the last axis
    (multiclass, distribution), identity (regression)."""
    if fmt.kind == "multilabel":
        return torch.sigmoid(raw)
    if fmt.kind in SOFTMAX_KINDS:
        return torch.softmax(raw, dim=-1)
    return raw


def format_loss(raw: torch.Tensor, target: torch.Tensor, fmt: LabelFormat) -> torch.Tensor:
    """Mean loss of raw head outputs ``(B, k)`` against targets ``(B, k)`` in the format's normalised scale
    (one-hot or probabilities for class formats)."""
    if fmt.kind == "regression":
        return F.l1_loss(raw, target) if fmt.loss == "l1" else F.mse_loss(raw, target)
    if fmt.kind == "multilabel":
        return F.binary_cross_entropy_with_logits(raw, target)
    if fmt.kind == "distribution" and fmt.loss == "kl":
        return F.kl_div(F.log_softmax(raw, dim=-1), target, reduction="batchmean")
    return F.cross_entropy(raw, target)  # multiclass one-hot / distribution: soft-target cross-entropy


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 − mean CCC`` over the k variables of regression outputs ``pred``/``target`` ``(B, k)`` (any scale).

    Lin's concordance correlation coefficient, ``CCC = 2·cov(x, y) / (var x + var y + (mean x − mean y)²)``, is 1
    only for identical columns; as a loss it rewards correlation *and* matching mean and spread, per variable, so
    a low-variance variable (EmoBank's dominance) counts as much as a high-variance one — unlike MSE, whose
    gradient is dominated by the widest variable. The standard loss of the AVEC challenges for continuous affect
    (Ringeval et al. 2017, "AVEC 2017"; Kollias & Zafeiriou 2019). Batch statistics (population variances); a
    batch of one gives 0 (nothing to correlate). Range [0, 2].
    """
    if pred.shape[0] < 2:
        return pred.sum() * 0.0
    pred, target = pred.float(), target.float()
    mp, mt = pred.mean(0), target.mean(0)
    vp, vt = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean(0)
    ccc = 2 * cov / (vp + vt + (mp - mt) ** 2 + eps)
    return 1.0 - ccc.mean()


def hard_targets(fmt: LabelFormat, probs: torch.Tensor) -> torch.Tensor:
    """Activated outputs → hard labels: argmax one-hot (multiclass, distribution), > 0.5 (multilabel); regression
    values are returned unchanged."""
    if fmt.kind == "multilabel":
        return (probs > 0.5).to(probs.dtype)
    if fmt.kind in SOFTMAX_KINDS:
        return F.one_hot(probs.argmax(-1), fmt.size).to(probs.dtype)
    return probs


def clip_to_range(fmt: LabelFormat, values: np.ndarray) -> np.ndarray:
    """Regression values clipped to the format's normalised range (the linear heads are unbounded); class
    formats unchanged."""
    return np.clip(values, fmt.range[0], fmt.range[1]) if fmt.kind == "regression" else values


FAR_OUT = 0.5  # beyond the range by more than half its width: not the overshoot of a linear head


def warn_far_out_of_range(values: np.ndarray, fmt: LabelFormat) -> int:
    """Warn (:class:`~emoembed.errors.EmoembedWarning`) when raw regression outputs ``values`` ``(N, k)`` lie
    beyond the format's normalised range by more than :data:`FAR_OUT` of its width — values a trained direction
    does not produce, so clipping them would hide a conversion the model cannot make (e.g. a format it never
    linked). Returns how many values are that far out."""
    import warnings

    from emoembed.errors import EmoembedWarning

    values = np.asarray(values, dtype=np.float64)
    lo, hi = fmt.range
    slack = FAR_OUT * (hi - lo)
    far = (values < lo - slack) | (values > hi + slack)
    n = int(far.sum())
    if n:
        cols = [fmt.variables[j] for j in np.flatnonzero(far.any(axis=0))]
        warnings.warn(EmoembedWarning(
            f"{n} of {values.size} {fmt.name} values lie far outside its range [{lo:g}, {hi:g}] (from {values.min():.2f} "
            f"to {values.max():.2f}; columns {', '.join(cols)}) and were clipped to it: this model does not know how to "
            f"produce {fmt.name} for these inputs, so read those values as unreliable"), stacklevel=3)
    return n


def format_output(out: np.ndarray, fmt: LabelFormat, output_scale: Sequence[float] | None = None, clip: bool = True,
                  rule: Mapping[str, Any] | None = None, zero_shot: bool = False) -> pd.DataFrame:
    """Activated outputs ``(N, k)`` → a table, one column per variable. Regression: clipped to the format's range
    (unless ``clip=False``) and mapped linearly to ``output_scale=(low, high)`` if given. Class formats: the
    probabilities plus a ``label`` column (the argmax class; for multilabel the classes the codec's calibration
    ``rule`` turns on, comma-joined — :func:`emoembed.calibration.decide`, whose ``zero_shot`` rule applies when the
    source lies in another island of the codec; without a rule those above 0.5)."""
    if fmt.kind == "regression":
        if clip:
            warn_far_out_of_range(out, fmt)
            out = clip_to_range(fmt, out)
        if output_scale is not None:
            lo, hi = (float(v) for v in output_scale)
            out = lo + (out - fmt.range[0]) * (hi - lo) / (fmt.range[1] - fmt.range[0])
        return pd.DataFrame(out, columns=list(fmt.variables))
    df = pd.DataFrame(out, columns=list(fmt.variables))
    if fmt.kind == "multilabel":
        from emoembed.calibration import decide, label_strings

        df["label"] = label_strings(decide(out, fmt, rule, zero_shot), fmt)
    else:
        df["label"] = [fmt.variables[i] for i in out.argmax(axis=1)] if len(out) else []
    return df

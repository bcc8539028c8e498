"""Metrics per format kind. Regression: Pearson r, Spearman ρ and MAE per variable; multiclass: accuracy and macro-F1;
multilabel: per-class F1 at p > 0.5 and macro-F1; distribution: accuracy of the argmax and Pearson r of the
probabilities. ``primary`` is the format's declared metric, the number model selection uses; where it is undefined
(Pearson r on fewer than 2 items, or on gold values that do not vary) it is NaN and ``undefined`` says why."""
from __future__ import annotations

import numpy as np

from emoembed.formats import LabelFormat

MIN_ITEMS_FOR_R = 2


def min_items(fmt: LabelFormat) -> int:
    """The fewest items on which ``fmt``'s primary metric is defined: 2 for Pearson r, else 1."""
    return MIN_ITEMS_FOR_R if fmt.metric == "pearson" else 1


def mean_defined(values) -> float:
    """Mean of the defined (non-NaN) values; NaN, without a numpy warning, when none is defined."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ (Pearson r of average ranks); NaN when either side is constant."""
    from scipy.stats import rankdata

    return pearson(rankdata(a), rankdata(b))


def f1_binary(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float(np.sum(pred & gold))
    fp = float(np.sum(pred & ~gold))
    fn = float(np.sum(~pred & gold))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def evaluate_format(pred: np.ndarray, gold: np.ndarray, fmt: LabelFormat, labels: np.ndarray | None = None) -> dict:
    """``pred``: activated outputs (values or probabilities), ``gold``: normalised targets, both (N, k).
    ``labels``: a multilabel format's decided labels, (N, k) bool (default: ``pred`` > 0.5); they are scored, and
    their mean count per item is ``labels_per_item`` beside the gold ``gold_labels_per_item``."""
    pred = np.asarray(pred, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    out: dict = {"n": int(len(gold))}
    per_var: dict[str, dict] = {}
    if fmt.kind == "regression":
        for j, v in enumerate(fmt.variables):
            per_var[v] = {"pearson": pearson(pred[:, j], gold[:, j]), "spearman": spearman(pred[:, j], gold[:, j]),
                          "mae": float(np.mean(np.abs(pred[:, j] - gold[:, j])))}
        out["pearson"] = mean_defined(m["pearson"] for m in per_var.values())
        out["mae"] = float(np.mean([m["mae"] for m in per_var.values()]))
    elif fmt.kind == "multilabel":
        p = pred > 0.5 if labels is None else np.asarray(labels, dtype=bool)
        g = gold > 0.5
        for j, v in enumerate(fmt.variables):
            per_var[v] = {"f1": f1_binary(p[:, j], g[:, j]), "support": int(g[:, j].sum())}
        out["macro_f1"] = float(np.mean([m["f1"] for m in per_var.values()]))
        out["accuracy"] = float(np.mean(p == g))
        out["labels_per_item"] = float(p.sum(axis=1).mean()) if len(p) else float("nan")
        out["gold_labels_per_item"] = float(g.sum(axis=1).mean()) if len(g) else float("nan")
    else:
        pi, gi = pred.argmax(axis=1), gold.argmax(axis=1)
        out["accuracy"] = float(np.mean(pi == gi))
        for j, v in enumerate(fmt.variables):
            per_var[v] = {"f1": f1_binary(pi == j, gi == j), "support": int((gi == j).sum())}
        out["macro_f1"] = float(np.mean([m["f1"] for m in per_var.values() if m["support"] > 0]))
        if fmt.kind == "distribution":
            for j, v in enumerate(fmt.variables):
                per_var[v]["pearson"] = pearson(pred[:, j], gold[:, j])
            out["pearson"] = mean_defined(per_var[v]["pearson"] for v in fmt.variables)
    out["per_variable"] = per_var
    out["primary"] = out[fmt.metric]
    if np.isnan(out["primary"]):
        out["undefined"] = ((f"too few items: {fmt.metric} needs at least {min_items(fmt)}, the split has {len(gold)}"
                             + (" (MAE is reported)" if fmt.kind == "regression" and len(gold) else ""))
                            if len(gold) < min_items(fmt) else f"{fmt.metric} is undefined: the gold values do not vary")
    out["metric"] = fmt.metric
    return out

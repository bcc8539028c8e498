"""Calibrated class outputs: decision rules for multilabel formats, fitted on the dev split of the codec's
paired datasets and saved with the codec.

A sigmoid head thresholded at 0.5 says nothing about how many labels an item should get: a codec that converts
VAD ratings to GoEmotions' 28 classes through the shared space gave 12–22 labels per row. For each multilabel
format F of a codec, :func:`fit_calibration` takes every *cross* direction into F on the dev split of the codec's
paired datasets (the pooled mapping, as ``convert`` and ``predict`` use by default) and fits

* ``thresholds``: per variable, the probability threshold (grid 0.02…0.98) with the best F1 against the gold
  labels among those that mark at most 1.25 × as many dev items positive as the gold labels do (F1 alone favours
  recall and would give items far more labels than annotators do); of the thresholds within :data:`PLATEAU` of the
  best F1, the one nearest 0.5 (a direction that separates a class perfectly, where any threshold works, gave .02,
  and a text model's Ekman output then had two labels per sentence); a variable with fewer than
  :data:`MIN_SUPPORT` gold positives in the dev data keeps 0.5;
* ``max_labels``: the largest number of labels that at least 99 % of dev items carry (GoEmotions: 2–3,
  NRC EmoLex: several) — an item whose probabilities pass more thresholds keeps the ``max_labels`` most probable
  of them (ranking by probability beat ranking by probability/threshold on the full codec's test directions);
* ``min_labels``: 1 when the format has a neutral class and at least 99 % of dev items carry a label (GoEmotions
  and Ekman include ``neutral``), else 0 — an item with fewer gets its most probable class. A format without a
  neutral class (NRC EmoLex) says "no emotion" with no label, so it gets 0 even when its dev data (nrclex's EmoLex
  holds only words with an association) never shows that: with 1, `table` got NRC `trust,positive`.

A threshold fitted above 0.5 says that the dev sources could not tell that class apart (from Ekman's ``joy``
GoEmotions' ``joy`` cannot be told from ``amusement`` or ``excitement``: its fitted threshold is the grid's top);
it never hides an item's most probable class once that passes 0.5, since a source that does tell it apart (a
text model, VAD ratings through the anchors of :mod:`emoembed.anchors`) would otherwise lose its best label.

**Stated rule for zero-shot sources** (a source that no chain of paired data links to the format, e.g. VAD
ratings or a VAD-trained text model read as GoEmotions: :func:`decide` with ``zero_shot=True``): the fitted
thresholds are ignored, since they describe sources of the format's own island (a threshold of .08 for
``gratitude``, right for Ekman labels, turned on gratitude, caring and approval for the neutral word "table");
the classes at least half as probable as the item's most probable class are labels (for a format without a
neutral class, such as NRC, only those above 0.5: there no label is the neutral answer), at most
:func:`zero_shot_max_labels` of them — the format's gold label cardinality (the mean number of gold labels per dev
item of its paired data, ``dev_mean_labels``, saved with the rule) rounded to a whole number, at least 1 — and at
least the fitted ``min_labels``. The relative rule alone, capped only by ``max_labels`` (what 99 % of dev items stay
within), gave Warriner's test words 2.55 GoEmotions labels each (gold: 1.18 per comment) through
``emoembed/words-minilm``; a zero-shot source carries no evidence that an item deserves more labels than the format's
items usually have. A rule saved without ``dev_mean_labels`` (none does since calibration exists; a hand-written
one) keeps ``max_labels`` as the cap.

**Stated rule for formats without paired dev data** (a format with no dev items, e.g. one added to a codec without
its own pair): thresholds 0.5, at most 3 labels, no minimum (:data:`FALLBACK`). Multiclass and distribution formats
need no rule: their label is the argmax. Codecs saved before calibration existed load with no calibration and keep
the plain 0.5 rule.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from emoembed.formats import LabelFormat
from emoembed.metrics import f1_binary

GRID = np.round(np.arange(0.02, 0.99, 0.02), 2)
MIN_SUPPORT = 5
RATE_SLACK = 1.25
COVER = 0.99
PLATEAU = 0.005
RELATIVE = 0.5
FALLBACK = {"thresholds": None, "max_labels": 3, "min_labels": 0, "fitted_on": "rule: no paired dev data"}


def has_neutral_class(fmt: LabelFormat) -> bool:
    """Whether ``fmt`` has a variable for "no emotion" (its equivalence class is ``neutral``, or it is so named):
    GoEmotions, Ekman, sentiment and FER do; NRC EmoLex does not (a word with no association has no label)."""
    from emoembed.formats import default_registry

    eq = default_registry().equivalences
    return any(v.lower() == "neutral" or eq.class_of(fmt.name, v) == "neutral" for v in fmt.variables)


def decide(probs: np.ndarray, fmt: LabelFormat, rule: Mapping[str, Any] | None, zero_shot: bool = False) -> np.ndarray:
    """(N, k) bool labels of a multilabel format under ``rule`` (a calibration entry; None = plain p > 0.5).

    ``zero_shot``: the probabilities come from a source in another island of the codec (no chain of paired data
    links it to ``fmt``: VAD ratings or a VAD-trained model read as GoEmotions), for which the fitted thresholds
    say nothing — they were fitted on sources of ``fmt``'s own island. The stated zero-shot rule then marks the
    classes at least :data:`RELATIVE` (half) as probable as the item's most probable class, keeping at most
    :func:`zero_shot_max_labels` (the format's gold label cardinality, rounded) and at least the rule's
    ``min_labels``."""
    probs = np.asarray(probs, dtype=np.float64)
    if rule is None and zero_shot:
        rule = FALLBACK
    if rule is None:
        return probs > 0.5
    thr = rule.get("thresholds")
    t = np.array([float(thr[v]) for v in fmt.variables]) if thr else np.full(fmt.size, 0.5)
    on = probs >= RELATIVE * probs.max(axis=1, keepdims=True) if zero_shot else probs >= t
    if zero_shot and not has_neutral_class(fmt):  # no label is its neutral answer: a zero-shot label must pass 0.5
        on &= probs > 0.5
    top = probs.argmax(axis=1)  # a fitted threshold never hides the most probable class once it passes 0.5
    on[np.arange(len(probs)), top] |= probs[np.arange(len(probs)), top] > 0.5
    k_max = zero_shot_max_labels(rule, fmt) if zero_shot else int(rule.get("max_labels") or fmt.size)
    k_min = int(rule.get("min_labels") or 0)
    rows = np.arange(len(probs))[:, None]
    if (on.sum(axis=1) > k_max).any():  # keep the k_max most probable of the classes that are on
        masked = np.where(on, probs, -np.inf)
        keep = np.argsort(-masked, axis=1)[:, :k_max]
        capped = np.zeros_like(on)
        capped[rows, keep] = True
        on &= capped
    if (on.sum(axis=1) < k_min).any():  # too few: the most probable classes
        top_k = np.argsort(-probs, axis=1)[:, :k_min]
        need = on.sum(axis=1) < k_min
        on[np.flatnonzero(need)[:, None], top_k[need]] = True
    return on


def zero_shot_max_labels(rule: Mapping[str, Any] | None, fmt: LabelFormat) -> int:
    """The most labels the zero-shot rule gives an item of ``fmt``: the format's gold label cardinality — the mean
    number of gold labels per dev item of the paired data the rule was fitted on (``dev_mean_labels``; GoEmotions
    1.18, Ekman 1.09, NRC EmoLex 2.35) — rounded to the nearest whole number, at least 1 and at most the rule's
    ``max_labels``. A rule without ``dev_mean_labels`` (the no-dev-data fallback, a hand-written rule): its
    ``max_labels`` (no rule: :data:`FALLBACK`'s)."""
    rule = FALLBACK if rule is None else rule
    k_max = int(rule.get("max_labels") or fmt.size)
    mean = rule.get("dev_mean_labels")
    if mean is None or not np.isfinite(float(mean)):
        return k_max
    return int(min(k_max, max(1, int(np.floor(float(mean) + 0.5)))))


def zero_shot_rule_text(rule: Mapping[str, Any] | None, fmt: LabelFormat, per: str = "item") -> str:
    """How ``predict``'s note states the zero-shot rule for ``fmt`` (``per``: what a row is called)."""
    k = zero_shot_max_labels(rule, fmt)
    mean = (rule or {}).get("dev_mean_labels")
    usual = f"{fmt.name} items carry {float(mean):.2f} labels on average" if mean is not None else f"at most {k}"
    if k == 1:
        if_above = "" if has_neutral_class(fmt) else f" if above 0.5 (no label is {fmt.name}'s neutral answer)"
        return f"its label is the most probable class{if_above}, one per {per} ({usual}; the zero-shot rule)"
    floor = "" if has_neutral_class(fmt) else f" and above 0.5 (no label is {fmt.name}'s neutral answer)"
    return (f"its labels are the classes at least half as probable as the most probable one{floor}, at most {k} per "
            f"{per} ({usual}; the zero-shot rule)")


def label_strings(on: np.ndarray, fmt: LabelFormat) -> list[str]:
    return [",".join(v for v, x in zip(fmt.variables, row) if x) for row in on]


@torch.no_grad()
def direction_outputs(codec, pairs: Sequence, split: str, target: str) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(pair, source format, probabilities, gold targets (normalised)) of every cross direction into ``target``
    on ``split``, encoded with the pooled mapping (no domain)."""
    was = codec.training
    codec.eval()
    out = []
    try:
        for p in pairs:
            s = p.subset(split)
            if len(s) == 0:
                continue
            for src, tgt, x, y in ((p.format_a, p.format_b, s.labels_a, s.labels_b), (p.format_b, p.format_a, s.labels_b, s.labels_a)):
                if tgt.name != target or src.name == target or src.name not in codec.formats:
                    continue
                emb = codec.encode_labels(src.name, torch.as_tensor(np.asarray(x, dtype=np.float32)), None)
                probs = codec.activate(target, codec.decode(target, emb)).cpu().numpy()
                out.append((p.name, src.name, probs, np.asarray(y, dtype=np.float64)))
    finally:
        codec.train(was)
    return out


def fit_rule(probs: np.ndarray, gold: np.ndarray, fmt: LabelFormat, fitted_on: str) -> dict[str, Any]:
    """Per-variable F1-optimal thresholds and the label-count bounds of ``gold`` (see the module docstring)."""
    thresholds = {}
    for j, v in enumerate(fmt.variables):
        g = gold[:, j]
        if g.sum() < MIN_SUPPORT:
            thresholds[v] = 0.5
            continue
        scores = np.array([f1_binary(probs[:, j] >= t, g) for t in GRID])
        rates = np.array([np.mean(probs[:, j] >= t) for t in GRID])
        allowed = rates <= RATE_SLACK * g.mean()  # no more positives than 1.25 × the gold rate
        if not allowed.any():
            thresholds[v] = float(GRID[-1])
            continue
        # thresholds within PLATEAU of the best F1 are equally good on dev: take the one nearest 0.5, so a direction
        # that separates the class perfectly (any threshold works) does not leave a threshold of .02 behind
        near_best = allowed & (scores >= scores[allowed].max() - PLATEAU)
        thresholds[v] = float(GRID[near_best][np.argmin(np.abs(GRID[near_best] - 0.5))])
    counts = gold.sum(axis=1)
    max_labels = int(max(1, np.quantile(counts, COVER, method="higher")))
    # "at least one label" only where the format names its no-emotion state (a neutral class): in a format without
    # one (NRC EmoLex) no label IS the neutral answer, even when the dev data, like nrclex's EmoLex (only words
    # with an association), never shows it
    min_labels = 1 if has_neutral_class(fmt) and np.mean(counts >= 1) >= COVER else 0
    return {"thresholds": thresholds, "max_labels": max_labels, "min_labels": min_labels, "fitted_on": fitted_on,
            "dev_items": int(len(gold)), "dev_mean_labels": float(counts.mean())}


def fit_calibration(codec, pairs: Sequence, split: str = "dev") -> dict[str, dict[str, Any]]:
    """A calibration entry per multilabel format of ``codec`` (see the module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    for name, fmt in codec.formats.items():
        if fmt.kind != "multilabel":
            continue
        dirs = direction_outputs(codec, pairs, split, name)
        if not dirs:
            out[name] = dict(FALLBACK)
            continue
        probs = np.concatenate([d[2] for d in dirs])
        gold = np.concatenate([d[3] for d in dirs]) > 0.5
        where = ", ".join(f"{pair} ({src}→{name})" for pair, src, _, _ in dirs)
        out[name] = fit_rule(probs, gold, fmt, f"{split} split of {where}")
    return out


def calibration_report(codec, pairs: Sequence, calibration: Mapping[str, Any], split: str = "test") -> list[dict]:
    """Per class direction of ``pairs`` on ``split``: gold labels per item, predicted labels per item and macro-F1
    under the plain 0.5 rule (``before``) and under ``calibration`` (``after``). Multiclass and distribution
    targets (argmax: one label) are listed with both rules equal."""
    rows = []
    for fmt_name, fmt in codec.formats.items():
        if not fmt.is_class_format:
            continue
        for pair, src, probs, gold in direction_outputs(codec, pairs, split, fmt_name):
            if fmt.kind != "multilabel":
                gi, pi = gold.argmax(1), probs.argmax(1)
                f1 = float(np.mean([f1_binary(pi == j, gi == j) for j in range(fmt.size) if (gi == j).any()]))
                rows.append({"pair": pair, "direction": f"{src}→{fmt_name}", "kind": fmt.kind, "n": int(len(probs)),
                             "gold_labels": 1.0, "labels_before": 1.0, "labels_after": 1.0,
                             "macro_f1_before": f1, "macro_f1_after": f1})
                continue
            gold = gold > 0.5
            before = decide(probs, fmt, None)
            after = decide(probs, fmt, calibration.get(fmt_name))
            present = [j for j in range(fmt.size) if gold[:, j].any()]

            def macro(on):
                return float(np.mean([f1_binary(on[:, j], gold[:, j]) for j in present])) if present else float("nan")

            rows.append({"pair": pair, "direction": f"{src}→{fmt_name}", "kind": fmt.kind, "n": int(len(probs)),
                         "gold_labels": float(gold.sum(1).mean()), "labels_before": float(before.sum(1).mean()),
                         "labels_after": float(after.sum(1).mean()), "macro_f1_before": macro(before),
                         "macro_f1_after": macro(after)})
    return rows


def report_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| pair | direction | n | gold labels/item | labels/item 0.5 → calibrated | macro-F1 0.5 → calibrated |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['direction']} | {r['n']} | {r['gold_labels']:.2f} | "
                     f"{r['labels_before']:.2f} → {r['labels_after']:.2f} | {r['macro_f1_before']:.3f} → {r['macro_f1_after']:.3f} |")
    return "\n".join(lines)


def calibrate_codec(codec, pairs: Sequence, metrics: dict | None = None, log=print) -> dict[str, dict[str, Any]]:
    """Fit and attach the calibration of ``codec`` on the dev split of ``pairs`` (kept for formats no pair
    covers, e.g. the frozen formats of an extended codec), record the pairs it was trained on, and put the test
    report into ``metrics['calibration_test']``."""
    fitted = fit_calibration(codec, pairs, "dev")
    for name, rule in fitted.items():
        if rule is FALLBACK or rule.get("fitted_on") == FALLBACK["fitted_on"]:
            fitted[name] = codec.calibration.get(name, rule)
    codec.calibration = fitted
    known = {tuple(p) for p in codec.trained_pairs}
    codec.trained_pairs = [list(p) for p in known] + [[p.name, p.format_a.name, p.format_b.name] for p in pairs
                                                        if (p.name, p.format_a.name, p.format_b.name) not in known]
    if fitted and metrics is not None:
        metrics["calibration"] = fitted
        metrics["calibration_test"] = calibration_report(codec, pairs, fitted, "test")
        for name, rule in fitted.items():
            log(f"calibrated {name}: at most {rule['max_labels']} label(s), at least {rule['min_labels']}; {rule['fitted_on']}")
    return fitted

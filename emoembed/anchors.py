"""Equivalence anchors: one emotion space for formats that no paired dataset joins.

A codec learns where a format's labels sit from its paired datasets. The pairs of ``mappings/full.yaml`` form
three *islands* that no pair links — {vad, va, valence, be5, be6, nrc10}, {goemotions28, ekman7, sentiment4} and
{fer7, ferplus8} — and the soft tie of equivalent head rows alone does not place them in one space: a FER "sad"
face decoded as BE5 gave joy, anger and sadness all 1.0, and VAD ratings decoded as GoEmotions turned on 20 of
28 classes, because each island's embeddings lie where the other islands' bias-free heads were never trained.

An *anchor* is the label that states one equivalence class (``mappings/equivalences.yaml``) and nothing else, in
each format that can state it, at two intensities (:data:`LEVELS`: the class alone, and half way from "no emotion"):

* intensity formats (regression formats whose normalised range starts at 0, e.g. be5, be6, plutchik8): the
  variable at that level of the range, the others at the bottom (sadness 1, the rest 0; sadness .5);
* class formats (multiclass, distribution, multilabel): probability ``level`` on the class and the rest on the
  format's neutral class (FER ``sad``; Ekman ``sadness`` .5 + ``neutral`` .5); a multilabel format without a
  neutral class (NRC EmoLex) puts the level on the class alone.

The ``neutral`` class also gets the "no emotion" label of formats that have no neutral variable: all intensities
at the bottom (be5), no label at all (NRC EmoLex's words with no association). Bipolar rating formats (VAD) state
no single class and get no anchor; they reach the other islands through the intensity formats they are paired with.

The anchor loss (``loss_weights.anchor``, :func:`anchor_loss`) pulls, for every class and level, the embeddings of
anchors in *different* islands together (MSE) and asks each one's embedding to decode as the other's anchor label
(the format's own loss), on the variables the source format can speak about. Anchors inside one island are left
alone: there the paired data already says how formats relate, and a one-hot rule would contradict it (an NRC "joy"
word is usually "positive" too). With one island the loss is absent and training is unchanged bit for bit. The
idea is the pivot-label alignment of multi-schema emotion work (Bostan & Klinger 2018, "An Analysis of Annotated
Corpora for Emotion Classification in Text", map every corpus onto Ekman-style classes); here it is a soft
constraint of the shared space rather than a relabelling.

Measured on ``mappings/full.yaml`` (docs/codec.md, "Islands and anchors"): a FER ``sad`` face decoded as BE5 went
from joy 1.0, anger 1.0, sadness 1.0 (raw 1.09, 1.13, 3.40) to sadness .5 and the rest ≤ .1, while the test mean
of the paired directions stayed at .735 → .737.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from emoembed.formats import EquivalenceClasses, LabelFormat

NEUTRAL = "neutral"


@dataclass(frozen=True)
class Anchor:
    """One format's label for one equivalence class at intensity ``level`` (1: the class alone; 0.5: half way
    between "no emotion" and the class): ``vector`` (k,) in the format's normalised scale."""

    cls: str
    level: float
    format: str
    vector: tuple[float, ...]
    island: int


LEVELS = (0.5, 1.0)


def is_intensity_format(fmt: LabelFormat) -> bool:
    """Regression formats on a unipolar scale (normalised range starting at 0): emotion intensities such as be5."""
    return fmt.kind == "regression" and fmt.range[0] >= 0.0


def pair_islands(links: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Connected components of the graph whose edges are the paired datasets' (format a, format b)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[root(a)] = root(b)
    groups: dict[str, set[str]] = {}
    for x in list(parent):
        groups.setdefault(root(x), set()).add(x)
    return sorted(groups.values(), key=lambda s: sorted(s))


def anchor_vector(fmt: LabelFormat, j: int | None, level: float, neutral: int | None) -> tuple[float, ...] | None:
    """The label of format ``fmt`` that says "variable ``j`` at intensity ``level``, nothing else" (``j`` None:
    no emotion). Intensity formats: that variable at ``level`` of the range, the rest at its bottom. Class formats:
    probability ``level`` on ``j`` and ``1 − level`` on the format's neutral variable (index ``neutral``); a
    multilabel format without one puts ``level`` on ``j`` alone; a multiclass or distribution format without one
    has no label for levels below 1 (None)."""
    if is_intensity_format(fmt):
        lo, hi = fmt.range
        return tuple(lo + level * (hi - lo) if i == j else lo for i in range(fmt.size))
    v = [0.0] * fmt.size
    if j is not None:
        v[j] = level
    rest = 1.0 - (level if j is not None else 0.0)
    if neutral is not None and neutral != j:
        v[neutral] += rest
    elif rest > 1e-9 and fmt.kind != "multilabel":
        return None
    return tuple(v)


def build_anchors(formats: Mapping[str, LabelFormat], equivalences: EquivalenceClasses,
                  islands: Sequence[set[str]], levels: Sequence[float] = LEVELS) -> list[Anchor]:
    """The anchors of every equivalence class with members in at least two islands, at each of ``levels`` (see
    the module docstring). Formats in no island (not in any pair) get none."""
    island_of = {f: i for i, s in enumerate(islands) for f in s}
    usable = {f: fmt for f, fmt in formats.items() if f in island_of and (fmt.is_class_format or is_intensity_format(fmt))}
    neutral_of = {f: next((j for j, v in enumerate(fmt.variables) if equivalences.class_of(f, v) == NEUTRAL), None)
                  for f, fmt in usable.items()}
    out: list[Anchor] = []

    def keep(found: list[Anchor]) -> None:
        if len({a.island for a in found}) >= 2:
            out.extend(found)

    for c in equivalences.classes.values():
        members = [(f, usable[f].index(v)) for f, v in c.members if f in usable]
        if c.name == NEUTRAL:
            has = {f for f, _ in members}
            found = [Anchor(c.name, 1.0, f, _hot(usable[f], j), island_of[f]) for f, j in members]
            found += [Anchor(c.name, 1.0, f, anchor_vector(fmt, None, 0.0, None), island_of[f])
                      for f, fmt in usable.items() if f not in has and (is_intensity_format(fmt) or fmt.kind == "multilabel")]
            keep(found)
            continue
        for level in levels:
            found = []
            for f, j in members:
                vec = anchor_vector(usable[f], j, level, neutral_of[f])
                if vec is not None:
                    found.append(Anchor(c.name, float(level), f, vec, island_of[f]))
            keep(found)
    return out


def _hot(fmt: LabelFormat, j: int) -> tuple[float, ...]:
    return tuple(1.0 if i == j else 0.0 for i in range(fmt.size))


def stated_classes(fmt: LabelFormat, equivalences: EquivalenceClasses) -> set[str]:
    """The equivalence classes a label of ``fmt`` can speak about: its variables' classes, plus ``neutral`` for
    formats whose all-bottom label means "no emotion" (intensity formats, multilabel formats without a neutral
    class)."""
    out = {c for c in (equivalences.class_of(fmt.name, v) for v in fmt.variables) if c}
    if is_intensity_format(fmt) or (fmt.kind == "multilabel" and NEUTRAL not in out):
        out.add(NEUTRAL)
    return out


def _masked_loss(raw: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, fmt: LabelFormat) -> torch.Tensor:
    """Per-row loss of ``raw`` against ``target`` over the variables ``mask`` keeps (softmax formats: all)."""
    if fmt.kind == "regression":
        err = F.l1_loss(raw, target, reduction="none") if fmt.loss == "l1" else F.mse_loss(raw, target, reduction="none")
    elif fmt.kind == "multilabel":
        err = F.binary_cross_entropy_with_logits(raw, target, reduction="none")
    else:  # softmax kinds: soft-target cross-entropy per row (KL for `loss: kl`), as format_loss
        logp = F.log_softmax(raw, dim=-1)
        if fmt.kind == "distribution" and fmt.loss == "kl":
            return (torch.xlogy(target, target) - target * logp).sum(dim=1)
        return -(target * logp).sum(dim=1)
    return (err * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


@dataclass
class AnchorPlan:
    """What :func:`anchor_loss` computes, worked out once: the anchors' labels per format, the ordered pairs
    (src, dst) across islands, and per target format the pairs' rows, targets and variable masks."""

    anchors: list[Anchor]
    labels: dict[str, tuple[list[int], torch.Tensor]]
    order: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    per_target: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    weight: torch.Tensor | None = None  # per pair; None: all 1 (no profile anchors, or profile_weight 1)


def anchor_plan(formats: Mapping[str, LabelFormat], equivalences: EquivalenceClasses, anchors: Sequence[Anchor],
                profile_weight: float = 1.0) -> AnchorPlan | None:
    """The :class:`AnchorPlan` of ``anchors`` (None when no two anchors of one class and level lie in different
    islands); pairs of profile anchors (level :data:`PROFILE`) count ``profile_weight`` times."""
    anchors = list(anchors)
    pairs = [(i, j) for i, a in enumerate(anchors) for j, b in enumerate(anchors)
             if (a.cls, a.level) == (b.cls, b.level) and a.island != b.island]
    if not pairs:
        return None
    labels: dict[str, tuple[list[int], torch.Tensor]] = {}
    for i, a in enumerate(anchors):
        labels.setdefault(a.format, ([], None))[0].append(i)  # type: ignore[arg-type]
    labels = {f: (idx, torch.tensor([anchors[i].vector for i in idx], dtype=torch.float32)) for f, (idx, _) in labels.items()}
    order = torch.argsort(torch.tensor([i for idx, _ in labels.values() for i in idx]))
    stated = {f: stated_classes(formats[f], equivalences) for f in labels}
    classes = {f: [equivalences.class_of(f, v) for v in formats[f].variables] for f in labels}
    per_target = {}
    for f in labels:
        sel = [k for k, (_, j) in enumerate(pairs) if anchors[j].format == f]
        if sel:
            target = torch.tensor([anchors[pairs[k][1]].vector for k in sel], dtype=torch.float32)
            # profile anchors (level PROFILE) are mean labels: they state every variable of the target format
            mask = torch.tensor([[1.0 if anchors[pairs[k][0]].level == PROFILE or c in stated[anchors[pairs[k][0]].format] else 0.0
                                  for c in classes[f]] for k in sel])
            per_target[f] = (torch.tensor(sel), target, mask)
    weight = None
    if profile_weight != 1.0 and any(anchors[i].level == PROFILE for i, _ in pairs):
        weight = torch.tensor([profile_weight if anchors[i].level == PROFILE else 1.0 for i, _ in pairs], dtype=torch.float32)
    return AnchorPlan(anchors, labels, order, torch.tensor([i for i, _ in pairs]), torch.tensor([j for _, j in pairs]), per_target,
                      weight)


def anchor_loss(codec, anchors: Sequence[Anchor] | AnchorPlan | None) -> torch.Tensor | None:
    """Mean over ordered pairs (i, j) of anchors of one class and level in different islands of
    ``MSE(e_i, e_j) + loss_fj(D_fj(e_i), y_j)`` (embeddings with the pooled mapping, no domain); ``None`` when
    there are no such pairs. The decoding loss counts only the variables of format j whose class format i can
    speak about (:func:`stated_classes`): an Ekman "sadness" says nothing about NRC's "negative" or GoEmotions'
    "grief", so those stay free. Frozen formats (``map --extend``) take part without being updated. Pass an
    :class:`AnchorPlan` (:func:`anchor_plan`) to skip the bookkeeping in a training loop."""
    plan = anchors if isinstance(anchors, AnchorPlan) or anchors is None else anchor_plan(codec.formats, codec.equivalences, anchors)
    if plan is None:
        return None
    emb = torch.cat([codec.encode_labels(f, y, None) for f, (_, y) in plan.labels.items()])[plan.order]
    src_emb = emb[plan.src]
    w = plan.weight  # per pair (codec.anchor_profile_weight); None: every pair counts once

    def weighted(per_pair: torch.Tensor, sel: torch.Tensor | None = None) -> torch.Tensor:
        return per_pair if w is None else per_pair * (w if sel is None else w[sel])

    total = weighted(F.mse_loss(src_emb, emb[plan.dst], reduction="none").mean(dim=1)).sum()
    for f, (sel, target, mask) in plan.per_target.items():
        total = total + weighted(_masked_loss(codec.decode(f, src_emb[sel]), target, mask, codec.formats[f]), sel).sum()
    return total / len(plan.src)


def describe(anchors: Sequence[Anchor]) -> str:
    """One line per class: ``sadness: be5, ekman7, fer7, …``."""
    by_cls: dict[str, list[str]] = {}
    for a in anchors:
        if a.format not in by_cls.setdefault(a.cls, []):
            by_cls[a.cls].append(a.format)
    return "; ".join(f"{c}: {', '.join(fs)}" for c, fs in by_cls.items())


# ---------------------------------------------------------------------------------------------- profile anchors
# Data-driven anchors (recipe ``codec.anchor_profiles``; ``codec.anchor_bipolar`` adds rating formats). A one-hot
# anchor says "sadness and nothing else", a label no real item has: EmoMap's silver BE5 of *grief* is joy .04,
# anger .40, sadness .48, fear .44, disgust .38. A *profile* anchor is the mean training label of the items of one
# format whose clear top class is that class (:func:`item_classes`), so the anchor loss pulls together the
# *typical* sadness items of each island. They form their own level, :data:`PROFILE`, and are paired only with
# each other (never with the one-hot anchors); their decoding loss covers every variable of the target format
# (a mean label states all of them). Bipolar rating formats (VAD, VA, valence), which state no class, get profiles
# through the formats they are paired with: the mean VAD of the items whose partner label has that top class
# (``neutral``: partner intensities all below ``neutral_below``, or the partner's neutral class on top).

PROFILE = -1.0
POLARITY = frozenset({"positive", "negative"})
RATING_CLASSES = frozenset({"valence", "arousal", "dominance"})


def is_bipolar_format(fmt: LabelFormat) -> bool:
    """Regression formats on a bipolar scale (normalised range below 0): valence, VA, VAD ratings."""
    return fmt.kind == "regression" and fmt.range[0] < 0.0


def item_classes(fmt: LabelFormat, y, equivalences: EquivalenceClasses, classes: Iterable[str] | None = None,
                 neutral_below: float = 0.25) -> list[set[str]]:
    """Per item (rows of ``y``, the format's normalised scale) the equivalence classes it clearly states: ``{neutral}``
    when the format's neutral variable is the unique top, or (no neutral variable; intensity or multilabel formats)
    when every variable stays below ``neutral_below`` of the range; otherwise, separately among the polarity classes
    (positive, negative) and among the other emotion classes, the class of the unique top variable if it reaches
    ``neutral_below`` (so an NRC word with sadness and negative states both). ``classes`` restricts the candidates."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != fmt.size:
        raise ValueError(f"{fmt.name}: labels must be (n, {fmt.size}), got {y.shape}")
    lo, hi = fmt.range
    yn = (y - lo) / (hi - lo) if hi > lo else y - lo
    var_cls = [equivalences.class_of(fmt.name, v) for v in fmt.variables]
    allowed = None if classes is None else set(classes) | {NEUTRAL}
    neutral = [j for j, c in enumerate(var_cls) if c == NEUTRAL]
    groups = []
    for group in (lambda c: c in POLARITY, lambda c: c not in POLARITY):
        cols = [j for j, c in enumerate(var_cls) if c and c != NEUTRAL and c not in RATING_CLASSES and group(c)
                and (allowed is None or c in allowed)]
        if cols:
            groups.append(cols)
    out: list[set[str]] = []
    for row in yn:
        if neutral:
            order = np.argsort(-row, kind="stable")
            is_neutral = order[0] in neutral and (len(row) == 1 or row[order[0]] > row[order[1]] + 1e-9)
        else:
            is_neutral = (is_intensity_format(fmt) or fmt.kind == "multilabel") and bool(row.max() < neutral_below)
        if is_neutral:
            out.append({NEUTRAL} if allowed is None or NEUTRAL in allowed else set())
            continue
        found = set()
        for cols in groups:
            v = row[cols]
            k = int(np.argmax(v))
            if v[k] >= neutral_below and (len(cols) == 1 or np.sum(v >= v[k] - 1e-9) == 1):
                found.add(var_cls[cols[k]])
        out.append(found)
    return out


def build_profile_anchors(labelled: Iterable[tuple[str, object, str | None, object]], formats: Mapping[str, LabelFormat],
                          equivalences: EquivalenceClasses, islands: Sequence[set[str]], min_items: int = 20,
                          bipolar: bool = False, neutral_below: float = 0.25,
                          bipolar_exclude: Iterable[str] = ()) -> list[Anchor]:
    """Profile anchors (level :data:`PROFILE`) from training labels. ``labelled`` yields ``(format, labels,
    partner_format, partner_labels)`` per paired dataset side (partner None: no partner). Class and intensity
    formats: per class, the mean label of the items of that format stating the class (:func:`item_classes`),
    once ``min_items`` items do. With ``bipolar``, bipolar rating formats get the mean of their labels grouped by
    the class their partner's label states, except the classes ``bipolar_exclude`` names (``surprise``: its words
    average to the very centre of the VAD scale, [-.01, .01, .00], and that anchor turned a mid-scale 5, 5, 5 into
    a confident surprise). Classes whose profiles lie in fewer than two islands are dropped."""
    island_of = {f: i for i, s in enumerate(islands) for f in s}
    usable = {f for f, fmt in formats.items() if f in island_of and (fmt.is_class_format or is_intensity_format(fmt))}
    sums: dict[tuple[str, str], list] = {}
    seen: set[tuple[str, int]] = set()
    for f, y, g, yg in labelled:
        fmt = formats.get(f)
        if fmt is None or f not in island_of:
            continue
        y = np.asarray(y, dtype=np.float64)
        if f in usable:
            key = (f, hash(y.tobytes()))
            if key in seen:  # one dataset's labels met twice (a format in two pairs of the same items)
                continue
            seen.add(key)
            stated = item_classes(fmt, y, equivalences, neutral_below=neutral_below)
        elif bipolar and is_bipolar_format(fmt) and g in usable:  # grouped by the class the partner label states
            stated = [cs - set(bipolar_exclude) for cs in item_classes(formats[g], yg, equivalences, neutral_below=neutral_below)]
        else:
            continue
        for row, cs in zip(y, stated):
            for c in cs:
                acc = sums.setdefault((f, c), [np.zeros(fmt.size), 0])
                acc[0] += row
                acc[1] += 1
    found = [Anchor(c, PROFILE, f, tuple(float(x) for x in s / n), island_of[f])
             for (f, c), (s, n) in sorted(sums.items()) if n >= min_items]
    spread = {}
    for a in found:
        spread.setdefault(a.cls, set()).add(a.island)
    return [a for a in found if len(spread[a.cls]) >= 2]


def profile_counts(anchors: Sequence[Anchor]) -> str:
    """``sadness: be5, vad, ekman7, …`` for the profile anchors only."""
    return describe([a for a in anchors if a.level == PROFILE])

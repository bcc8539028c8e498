"""Formats a dataset *has* without naming them: a format whose variables are a subset of one of the dataset's own
formats' variables (AffectiveText's be6 = anger, disgust, fear, joy, sadness, surprise ⊇ be5's five basic
emotions; EmoBank's vad ⊇ va). Used by data specs (``--data affectivetext:be5``) for training and ``evaluate``.

Only formats of the same kind qualify, and only kinds whose labels stay valid when columns are dropped:
regression (dimensions or intensities) and multilabel (independent yes/no labels). A multiclass or distribution
subset would need rows dropped or renormalised, so it is refused with a message saying why.
"""
from __future__ import annotations

from collections.abc import Mapping

from emoembed.errors import ConfigError
from emoembed.formats import LabelFormat

SUBSET_KINDS = ("regression", "multilabel")


def source_format_for(dataset_formats: Mapping[str, LabelFormat], target: LabelFormat) -> tuple[str, list[int]] | None:
    """(name of the dataset's format that holds every variable of ``target``, column indices of target's variables
    in it, in target's order), or None when no format of the dataset has them all. Raises ConfigError when one
    does but the kinds make a column subset invalid."""
    for name, fmt in dataset_formats.items():
        if not set(target.variables) <= set(fmt.variables):
            continue
        if fmt.kind != target.kind:
            continue
        if target.kind not in SUBSET_KINDS:
            raise ConfigError(f"format {target.name!r} ({target.kind}) is a subset of the dataset's {name!r}, but a "
                              f"{target.kind} label cannot be cut to fewer classes without dropping or renormalising rows")
        if tuple(target.range) != tuple(fmt.range):
            continue
        return name, [list(fmt.variables).index(v) for v in target.variables]
    return None

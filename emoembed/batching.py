"""Batch orders for the stage-2 loop: plain shuffled batches and length-grouped batches.

Length grouping follows ``transformers``' ``LengthGroupedSampler`` (``group_by_length``): the items are shuffled,
cut into *mega-batches* of ``mega_factor × batch_size`` items, each mega-batch is sorted by length (longest
first) and cut into batches, and the order of all batches is shuffled again. Texts of similar length share a
batch, so dynamic padding pads less, while every item is still seen exactly once per epoch and the batch order
stays random. Everything is deterministic in the numpy generator passed in.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def shuffled_batches(index: np.ndarray, batch_size: int, rng: np.random.Generator, drop_last: bool = False) -> list[np.ndarray]:
    """``index`` permuted and cut into batches of ``batch_size`` (the last one smaller unless ``drop_last``)."""
    idx = rng.permutation(np.asarray(index))
    stop = len(idx) - (len(idx) % batch_size if drop_last else 0)
    return [idx[i:i + batch_size] for i in range(0, stop, batch_size) if len(idx[i:i + batch_size])]


def length_grouped_batches(index: np.ndarray, lengths: Sequence[float] | np.ndarray, batch_size: int,
                           rng: np.random.Generator, mega_factor: int = 50, drop_last: bool = False) -> list[np.ndarray]:
    """Batches of items of similar ``lengths`` (one length per entry of ``index``, same order).

    Returns batches of entries of ``index``; every entry appears exactly once (``drop_last`` drops the smallest
    remainder batch of each mega-batch only when it is shorter than ``batch_size``). The caller shuffles the
    batch order (``epoch_batches`` does, together with other datasets' batches). Raises ValueError when
    ``lengths`` and ``index`` differ in size or ``batch_size``/``mega_factor`` < 1."""
    index = np.asarray(index)
    lengths = np.asarray(lengths, dtype=float)
    if len(lengths) != len(index):
        raise ValueError(f"length_grouped_batches: {len(index)} items but {len(lengths)} lengths")
    if batch_size < 1 or mega_factor < 1:
        raise ValueError("length_grouped_batches: batch_size and mega_factor must be ≥ 1")
    perm = rng.permutation(len(index))
    mega = batch_size * mega_factor
    out: list[np.ndarray] = []
    for start in range(0, len(perm), mega):
        chunk = perm[start:start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        for i in range(0, len(chunk), batch_size):
            b = chunk[i:i + batch_size]
            if drop_last and len(b) < batch_size:
                continue
            out.append(index[b])
    return out


def padded_tokens(batches: Sequence[np.ndarray], lengths: np.ndarray) -> int:
    """Token slots a dynamic-padding collate fills for these batches: Σ_batch len(batch) × max length in it
    (``lengths`` indexed by the batches' entries). The cost measure that length grouping lowers."""
    return int(sum(len(b) * lengths[b].max() for b in batches if len(b)))

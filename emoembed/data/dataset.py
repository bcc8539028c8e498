"""In-memory datasets: a table of items with their content, split and normalised labels in one or more
formats, and paired datasets (the same items in two formats) for the codec."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from emoembed.data.card import DatasetCard
from emoembed.formats import LabelFormat


@dataclass
class Dataset:
    """``frame`` has the columns ``item`` (normalised key), ``id`` (raw id), ``content`` (the word, text or
    image path), ``split``, ``_file``/``_row`` (provenance) and one ``format:variable`` column per label.
    Class formats are stored as one-hot (multiclass), 0/1 (multilabel) or probabilities (distribution)."""

    card: DatasetCard
    frame: pd.DataFrame
    formats: dict[str, LabelFormat]
    report: dict

    @property
    def name(self) -> str:
        return self.card.name

    def __len__(self) -> int:
        return len(self.frame)

    def labels(self, fmt: str) -> np.ndarray:
        f = self.formats[fmt]
        return self.frame[[f"{fmt}:{v}" for v in f.variables]].to_numpy(dtype=np.float32)

    def split(self, *names: str) -> "Dataset":
        sub = self.frame[self.frame["split"].isin(names)].reset_index(drop=True)
        return Dataset(self.card, sub, self.formats, self.report)

    def split_sizes(self) -> dict[str, int]:
        counts = self.frame["split"].value_counts()
        return {s: int(counts.get(s, 0)) for s in ("train", "dev", "test")}

    def row(self, item: str) -> pd.Series:
        hits = self.frame[self.frame["item"] == item]
        if hits.empty:
            raise KeyError(f"{self.name}: no item {item!r}")
        return hits.iloc[0]

    @property
    def content(self) -> list:
        return self.frame["content"].tolist()


@dataclass
class PairedDataset:
    """The same items labelled in two formats (``a`` and ``b``); the codec's training unit."""

    name: str
    format_a: LabelFormat
    format_b: LabelFormat
    items: np.ndarray
    split: np.ndarray
    labels_a: np.ndarray
    labels_b: np.ndarray
    sources: tuple[str, str]
    card: DatasetCard | None = None

    def __len__(self) -> int:
        return len(self.items)

    def select(self, index: np.ndarray) -> "PairedDataset":
        """The rows at ``index`` (integer positions or a boolean mask), in that order."""
        return PairedDataset(self.name, self.format_a, self.format_b, self.items[index], self.split[index],
                             self.labels_a[index], self.labels_b[index], self.sources, self.card)

    def subset(self, split: str | Iterable[str]) -> "PairedDataset":
        names = {split} if isinstance(split, str) else set(split)
        return self.select(np.isin(self.split, list(names)))

    def split_sizes(self) -> dict[str, int]:
        return {s: int((self.split == s).sum()) for s in ("train", "dev", "test")}

    def take(self, n: int, seed: int = 0) -> "PairedDataset":
        """A random subset of n items (all if n ≥ len); used by tests and quick runs."""
        if n >= len(self):
            return self
        return self.select(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))

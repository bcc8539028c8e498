"""Datasets as training and evaluation tasks: one dataset in one label format, its items and normalised labels per
split (the adapter between :mod:`emoembed.data` and the models/trainers), and the ``NAME[:FORMAT],…`` specs of
``--data``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoembed.data.dataset import Dataset
from emoembed.data.registry import DataRegistry
from emoembed.errors import ConfigError
from emoembed.formats import LabelFormat


@dataclass
class Task:
    """One dataset in one label format: its items and normalised labels per split, and its source scales."""

    name: str
    fmt: LabelFormat
    items: dict[str, list]
    labels: dict[str, np.ndarray]
    scales: dict[str, list[float]] = field(default_factory=dict)
    modality: str | None = None
    rows: dict[str, list[str]] = field(default_factory=dict)  # per split, where each item came from (file, line)

    def size(self, split: str) -> int:
        return len(self.items.get(split, []))


def parse_data_spec(spec: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """``"warriner,goemotions:ekman7"`` → [("warriner", None), ("goemotions", "ekman7")]."""
    parts = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not parts:
        raise ConfigError("no dataset given (use --data NAME[,NAME] or the recipe's 'data')")
    out = []
    for p in parts:
        name, _, fmt = p.partition(":")
        out.append((name.strip(), fmt.strip() or None))
    return out


def task_from_dataset(ds: Dataset, fmt_name: str | None,
                      known_formats: Sequence[str] | Mapping[str, LabelFormat] | None = None) -> Task:
    """Dataset ``ds`` in format ``fmt_name`` (None: its first format in ``known_formats``). A format the dataset does
    not name but whose variables one of its formats holds (``affectivetext:be5`` from be6) is cut from that one's
    columns (``emoembed.subformats``). Raises ConfigError naming the dataset's formats when neither applies."""
    fmts = list(ds.formats)
    if fmt_name is None:
        usable = [f for f in fmts if known_formats is None or f in known_formats]
        if not usable:
            raise ConfigError(f"dataset {ds.name!r} has format(s) {fmts}, none of which the codec knows "
                              f"({', '.join(known_formats or [])})")
        fmt_name = usable[0]
    cols = None  # a format whose variables the dataset has inside one of its own (be5 from be6): column subset
    source_name = fmt_name
    if fmt_name not in ds.formats:
        from emoembed.subformats import source_format_for

        target = _lookup_format(fmt_name, known_formats)
        found = source_format_for(ds.formats, target) if target is not None else None
        if found is None:
            raise ConfigError(f"dataset {ds.name!r} has no format {fmt_name!r} (nor one holding all its variables); it has {fmts}")
        source_name, cols = found
        fmt = target
    else:
        fmt = ds.formats[fmt_name]
    items, labels, rows = {}, {}, {}
    for split in ("train", "dev", "test"):
        sub = ds.split(split)
        y = sub.labels(source_name)
        y = y[:, cols] if cols is not None else y
        keep = ~np.isnan(y).any(axis=1)
        items[split] = [c for c, k in zip(sub.content, keep) if k]
        labels[split] = y[keep]
        rows[split] = [r for r, k in zip(source_rows(sub.frame), keep) if k]
    scales = {}
    spec = ds.card.formats.get(source_name, {})
    if fmt.kind == "regression" and isinstance(spec, Mapping):
        for var in fmt.variables:
            if isinstance(spec.get(var), Mapping) and "scale" in spec[var]:
                scales[var] = [float(x) for x in spec[var]["scale"]]
    return Task(ds.name, fmt, items, labels, scales, ds.card.modality, rows)


TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".psv", ".dat")


def source_rows(frame) -> list[str]:
    """Per item of a dataset frame, where it came from in words an editor uses: ``ratings.csv, line 7`` (the
    file's line, header = line 1) for rows of a delimited file; '' where no line applies (arrays, image folders)."""
    if "_file" not in frame or "_row" not in frame:
        return [""] * len(frame)
    return [f"{f}, line {int(r)}" if Path(str(f)).suffix.lower() in TABLE_SUFFIXES else ""
            for f, r in zip(frame["_file"], frame["_row"])]


def _lookup_format(name: str, known_formats: Sequence[str] | Mapping[str, LabelFormat] | None) -> LabelFormat | None:
    """The LabelFormat called ``name``: from ``known_formats`` when it maps names to formats (a codec's or model's
    ``formats``), else from the format registry (mappings/formats.yaml); None when unknown."""
    if isinstance(known_formats, Mapping) and name in known_formats:
        return known_formats[name]
    from emoembed.formats import default_registry

    try:
        return default_registry().get(name)
    except ConfigError:
        return None


def build_tasks(data: DataRegistry, spec: str | Sequence[str], known_formats: Sequence[str] | Mapping[str, LabelFormat] | None = None,
                modality: str | None = None) -> list[Task]:
    tasks = []
    for name, fmt in parse_data_spec(spec):
        card = data.get(name)
        if card.type != "dataset":
            raise ConfigError(f"{name!r} is a {card.type} card; stage 2 trains on dataset cards")
        if modality and card.modality and card.modality != modality and not (modality == "text" and card.modality == "word"):
            raise ConfigError(f"dataset {name!r} holds {card.modality}s, not {modality}s")
        tasks.append(task_from_dataset(data.dataset(name), fmt, known_formats))
    return tasks

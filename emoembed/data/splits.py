"""Train/dev/test assignment. Published splits are used where they exist (word lists, a split column, the
reference JSON id lists); otherwise a deterministic seeded 8:1:1 split that hashes the item key, so the same
word lands in the same split in every dataset that uses a random split, and adding items never moves others.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from emoembed.errors import ConfigError, DataError

SPLITS = ("train", "dev", "test")
DEFAULT_SEED = 13
DEFAULT_RATIOS = (0.8, 0.1, 0.1)

SplitFn = Callable[[pd.DataFrame, Mapping[str, Any], Mapping[str, Path], Callable[[str], str], str], np.ndarray]
SPLITTERS: dict[str, SplitFn] = {}


def _splitter(name: str):
    def deco(fn: SplitFn) -> SplitFn:
        SPLITTERS[name] = fn
        return fn

    return deco


def hash_split(keys: list[str], seed: int = DEFAULT_SEED, ratios=DEFAULT_RATIOS) -> np.ndarray:
    if len(ratios) != 3 or abs(sum(ratios) - 1) > 1e-6 or min(ratios) < 0:
        raise ConfigError(f"split ratios must be three non-negative numbers summing to 1, got {list(ratios)}")
    cut1, cut2 = ratios[0], ratios[0] + ratios[1]
    out = np.empty(len(keys), dtype=object)
    for i, k in enumerate(keys):
        u = int.from_bytes(hashlib.sha1(f"{seed}\x00{k}".encode()).digest()[:8], "big") / 2**64
        out[i] = "train" if u < cut1 else ("dev" if u < cut2 else "test")
    return out


def assign_splits(df: pd.DataFrame, spec: Mapping[str, Any], paths: Mapping[str, Path], normalize: Callable[[str], str], where: str) -> np.ndarray:
    kind = spec.get("type", "random")
    if kind not in SPLITTERS:
        raise ConfigError(f"{where}: unknown split type {kind!r}; known: {sorted(SPLITTERS)}")
    return SPLITTERS[kind](df, spec, paths, normalize, where)


def _fill_unassigned(df: pd.DataFrame, split: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    policy = spec.get("unassigned", "random")
    todo = pd.isna(pd.Series(split)).to_numpy()
    if not todo.any():
        return split
    if policy == "random":
        split[todo] = hash_split(df["item"].to_numpy()[todo].tolist(), int(spec.get("seed", DEFAULT_SEED)))
    elif policy in SPLITS:
        split[todo] = policy
    elif policy == "drop":
        split[todo] = None
    else:
        raise ConfigError(f"unassigned must be 'random', 'drop' or one of {SPLITS}, got {policy!r}")
    return split


@_splitter("random")
def _random(df, spec, paths, normalize, where):
    return hash_split(df["item"].tolist(), int(spec.get("seed", DEFAULT_SEED)), tuple(spec.get("ratios", DEFAULT_RATIOS)))


@_splitter("column")
def _column(df, spec, paths, normalize, where):
    col = spec.get("column", "split")
    if col not in df.columns:
        raise DataError(f"{where}: split column {col!r} not found")
    values = spec.get("values") or {s: s for s in SPLITS}
    out = np.empty(len(df), dtype=object)
    for i, v in enumerate(df[col].astype(str).tolist()):
        if v not in values:
            raise DataError(f"{df['_file'].iat[i]}: row {df['_row'].iat[i]}, column {col!r}: unknown split {v!r}; expected one of {sorted(values)}")
        out[i] = values[v]
    return out


@_splitter("lists")
def _lists(df, spec, paths, normalize, where):
    """One file per split, one item per line."""
    assignment: dict[str, str] = {}
    for split in SPLITS:
        key = spec.get(split)
        if key is None:
            continue
        if key not in paths:
            raise ConfigError(f"{where}: split file key {key!r} is not among the card's files")
        for line in paths[key].read_text(encoding="utf-8").splitlines():
            if line.strip():
                assignment.setdefault(normalize(line.strip()), split)
    out = np.array([assignment.get(k) for k in df["item"]], dtype=object)
    return _fill_unassigned(df, out, spec)


@_splitter("json")
def _json(df, spec, paths, normalize, where):
    """``{"train": [...], "dev": [...], "test": [...]}`` of ids; ``match: id`` looks them up in the raw id
    column, ``match: item`` (default) in the normalised item key; ``template`` formats each entry first."""
    key = spec.get("file")
    if key not in paths:
        raise ConfigError(f"{where}: split file key {key!r} is not among the card's files")
    try:
        data = json.loads(paths[key].read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{paths[key]}: invalid JSON: {exc}") from None
    template = spec.get("template", "{}")
    match = spec.get("match", "item")
    assignment: dict[str, str] = {}
    for split_name, ids in data.items():
        target = {"val": "dev"}.get(split_name, split_name)
        if target not in SPLITS:
            continue
        for x in ids:
            k = template.format(x)
            assignment.setdefault(normalize(k) if match == "item" else k, target)
    col = "item" if match == "item" else "id"
    out = np.array([assignment.get(str(k)) for k in df[col]], dtype=object)
    return _fill_unassigned(df, out, spec)


@_splitter("source")
def _source(df, spec, paths, normalize, where):
    """The split is the file a row came from (``reader.files`` tags), e.g. GoEmotions' train/dev/test tsv."""
    values = spec.get("values") or {s: s for s in SPLITS}
    return _column(df, {"column": "source", "values": values}, paths, normalize, where)

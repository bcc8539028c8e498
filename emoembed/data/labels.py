"""Turn a raw table's columns into normalised label columns for one label format, as a card declares.

Regression variables map a column (or an expression, or the mean of several columns) from its *theoretical*
source scale to the format's range. Class formats decode an index, a class name, a list of ids or names,
presence markers, 0/1 columns or vote counts. Every bad value raises :class:`DataError` naming the file, the
row and the column.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from emoembed.errors import ConfigError, DataError
from emoembed.formats import LabelFormat

ENCODINGS: dict[str, Callable[..., np.ndarray]] = {}


def _encoding(name: str):
    def deco(fn):
        ENCODINGS[name] = fn
        return fn

    return deco


def label_columns(fmt: LabelFormat) -> list[str]:
    return [f"{fmt.name}:{v}" for v in fmt.variables]


def where_row(df: pd.DataFrame, i: int, column: str) -> str:
    return f"{df['_file'].iat[i]}: row {df['_row'].iat[i]}, column {column!r}"


def _numeric(df: pd.DataFrame, column: str, where: str) -> np.ndarray:
    if column not in df.columns:
        raise DataError(f"{df['_file'].iat[0] if len(df) else where}: column {column!r} not found (card {where}); "
                        f"columns present: {', '.join(map(str, [c for c in df.columns if not str(c).startswith('_')]))}")
    values = pd.to_numeric(df[column].astype(str).str.strip().str.replace(",", ".", regex=False).replace({"": np.nan, "nan": np.nan, "None": np.nan}), errors="coerce")
    raw = df[column]
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where_row(df, i, column)}: {raw.iat[i]!r} is not a number")
    return values.to_numpy(dtype=np.float64)


def regression_targets(df: pd.DataFrame, fmt: LabelFormat, spec: Mapping[str, Any], where: str, ranges: Mapping[str, tuple] | None = None) -> np.ndarray:
    """(N, k) array in the format's range; NaN where a value is missing."""
    clip = bool(spec.get("clip", False))  # declared per format: clip values outside the source scale
    spec = {k: v for k, v in spec.items() if k != "clip"}
    missing_vars = [v for v in fmt.variables if v not in spec]
    extra = [v for v in spec if v not in fmt.variables]
    if missing_vars or extra:
        raise ConfigError(f"{where}: format {fmt.name!r} needs exactly the variables {list(fmt.variables)}; "
                          f"missing {missing_vars}, unknown {extra}")
    lo_t, hi_t = fmt.range
    out = np.empty((len(df), fmt.size), dtype=np.float64)
    for j, var in enumerate(fmt.variables):
        vspec = spec[var]
        if not isinstance(vspec, Mapping) or "scale" not in vspec:
            raise ConfigError(f"{where}: {fmt.name}.{var} needs 'scale: [low, high]' and a 'column', 'mean_of' or 'expr'")
        lo, hi = (float(x) for x in vspec["scale"])
        if "column" in vspec:
            col = str(vspec["column"])
            values = _numeric(df, col, where)
            if ranges and col in ranges and tuple(ranges[col]) != (lo, hi):
                raise ConfigError(f"{where}: {fmt.name}.{var}: scale {[lo, hi]} disagrees with the dataset metadata's "
                                  f"range {list(ranges[col])} for column {col!r}")
            label = col
        elif "mean_of" in vspec:
            cols = [str(c) for c in vspec["mean_of"]]
            stacked = np.stack([_numeric(df, c, where) for c in cols], axis=1)
            values = np.nanmean(np.where(np.isnan(stacked).all(axis=1, keepdims=True), 0.0, stacked), axis=1)
            values[np.isnan(stacked).all(axis=1)] = np.nan
            label = "+".join(cols)
        elif "expr" in vspec:
            names = {c: _numeric(df, c, where) for c in vspec.get("columns", [])}
            try:
                values = np.asarray(eval(str(vspec["expr"]), {"__builtins__": {}, "np": np}, names), dtype=np.float64)  # noqa: S307 (card-controlled, no builtins)
            except Exception as exc:  # noqa: BLE001 — report any expression failure as a config error
                raise ConfigError(f"{where}: {fmt.name}.{var}: cannot evaluate expr {vspec['expr']!r}: {exc}") from None
            label = str(vspec["expr"])
        else:
            raise ConfigError(f"{where}: {fmt.name}.{var} needs a 'column', 'mean_of' or 'expr'")
        tol = 1e-9 * max(1.0, abs(hi - lo))
        bad = (~np.isnan(values)) & ((values < lo - tol) | (values > hi + tol))
        if clip:
            values = np.clip(values, lo, hi)
        elif bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where_row(df, i, label)}: value {values[i]:g} is outside the declared source scale "
                            f"[{lo:g}, {hi:g}] of {fmt.name}.{var}")
        out[:, j] = lo_t + (values - lo) * (hi_t - lo_t) / (hi - lo)
    return out


def class_targets(df: pd.DataFrame, fmt: LabelFormat, spec: Mapping[str, Any], where: str) -> np.ndarray:
    if not isinstance(spec, Mapping) or "encoding" not in spec:
        raise ConfigError(f"{where}: format {fmt.name!r} needs 'encoding' (one of {sorted(ENCODINGS)})")
    enc = spec["encoding"]
    if enc not in ENCODINGS:
        raise ConfigError(f"{where}: {fmt.name}: unknown encoding {enc!r}; known: {sorted(ENCODINGS)}")
    out = ENCODINGS[enc](df, fmt, spec, where)
    if fmt.kind == "multiclass":
        ok = ~np.isnan(out).any(axis=1)
        if (out[ok].sum(axis=1) != 1).any():
            i = int(np.flatnonzero(ok)[np.flatnonzero(out[ok].sum(axis=1) != 1)[0]])
            raise DataError(f"{where_row(df, i, str(spec.get('column', fmt.name)))}: a multiclass label needs exactly one class")
    return out


def _column(df: pd.DataFrame, spec: Mapping[str, Any], where: str) -> str:
    col = spec.get("column")
    if col is None:
        raise ConfigError(f"{where}: encoding {spec['encoding']!r} needs a 'column'")
    if col not in df.columns:
        raise DataError(f"{df['_file'].iat[0] if len(df) else where}: column {col!r} not found (card {where})")
    return str(col)


@_encoding("index")
def _enc_index(df, fmt, spec, where):
    col = _column(df, spec, where)
    values = _numeric(df, col, where)
    out = np.full((len(df), fmt.size), np.nan)
    for i, v in enumerate(values):
        if np.isnan(v):
            continue
        if v != int(v) or not 0 <= v < fmt.size:
            raise DataError(f"{where_row(df, i, col)}: class index {v:g} is outside 0..{fmt.size - 1} of {fmt.name}")
        out[i] = 0.0
        out[i, int(v)] = 1.0
    return out


def _name_lookup(fmt: LabelFormat, spec: Mapping[str, Any]) -> dict[str, list[int]]:
    """Source label name → indices of the format variables it counts for. ``groups`` ({variable: [source
    names]}) maps many source labels onto one variable (GoEmotions → Ekman); otherwise each variable counts
    under its own name, and ``names`` ({source name: variable}) adds renamings."""
    groups = spec.get("groups")
    if groups:
        lookup: dict[str, list[int]] = {}
        for var, sources in groups.items():
            for src in sources:
                lookup.setdefault(str(src), []).append(fmt.index(var))
        return lookup
    lookup = {v: [i] for i, v in enumerate(fmt.variables)}
    for src, var in (spec.get("names") or {}).items():
        lookup[str(src)] = [fmt.index(var)]
    return lookup


@_encoding("name")
def _enc_name(df, fmt, spec, where):
    col = _column(df, spec, where)
    lookup = _name_lookup(fmt, spec)
    out = np.full((len(df), fmt.size), np.nan)
    for i, raw in enumerate(df[col].tolist()):
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            continue
        name = str(raw).strip()
        if name not in lookup:
            raise DataError(f"{where_row(df, i, col)}: unknown class {name!r} for {fmt.name}; expected one of {sorted(lookup)}")
        out[i] = 0.0
        out[i, lookup[name]] = 1.0
    return out


def _enc_list(df, fmt, spec, where, by_id: bool):
    col = _column(df, spec, where)
    sep = spec.get("sep", ",")
    id_names = list(spec.get("id_names") or fmt.variables)
    lookup = _name_lookup(fmt, spec)
    empty_ok = bool(spec.get("allow_empty", True))
    out = np.zeros((len(df), fmt.size))
    for i, raw in enumerate(df[col].tolist()):
        text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip()
        tokens = [t.strip() for t in text.split(sep) if t.strip()] if text else []
        if not tokens and not empty_ok:
            raise DataError(f"{where_row(df, i, col)}: empty label list")
        for tok in tokens:
            if by_id:
                if not tok.isdigit() or int(tok) >= len(id_names):
                    raise DataError(f"{where_row(df, i, col)}: label id {tok!r} is outside 0..{len(id_names) - 1}")
                tok = id_names[int(tok)]
            if tok in lookup:
                out[i, lookup[tok]] = 1.0
            elif not spec.get("ignore_unknown", False):
                raise DataError(f"{where_row(df, i, col)}: unknown label {tok!r} for {fmt.name}")
    return out


@_encoding("id_list")
def _enc_id_list(df, fmt, spec, where):
    return _enc_list(df, fmt, spec, where, by_id=True)


@_encoding("name_list")
def _enc_name_list(df, fmt, spec, where):
    return _enc_list(df, fmt, spec, where, by_id=False)


def _per_variable_columns(df, fmt, spec, where) -> dict[str, str]:
    cols = spec.get("columns")
    if not isinstance(cols, Mapping) or set(cols) != set(fmt.variables):
        raise ConfigError(f"{where}: {fmt.name}: 'columns' must map each of {list(fmt.variables)} to a column")
    for c in cols.values():
        if str(c) not in df.columns:
            raise DataError(f"{df['_file'].iat[0] if len(df) else where}: column {c!r} not found (card {where})")
    return {v: str(c) for v, c in cols.items()}


@_encoding("presence")
def _enc_presence(df, fmt, spec, where):
    """A cell holding the variable's name (or anything but the ``absent`` marker) means present (SSEC)."""
    cols = _per_variable_columns(df, fmt, spec, where)
    absent = str(spec.get("absent", "---"))
    out = np.zeros((len(df), fmt.size))
    for j, var in enumerate(fmt.variables):
        cells = df[cols[var]].fillna(absent).astype(str).str.strip()
        expected = spec.get("present_value", "name")
        for i, cell in enumerate(cells):
            if cell == absent:
                continue
            if expected == "name" and cell.lower() != var.lower():
                raise DataError(f"{where_row(df, i, cols[var])}: expected {var!r} or {absent!r}, found {cell!r}")
            out[i, j] = 1.0
    return out


@_encoding("binary")
def _enc_binary(df, fmt, spec, where):
    cols = _per_variable_columns(df, fmt, spec, where)
    out = np.empty((len(df), fmt.size))
    for j, var in enumerate(fmt.variables):
        values = _numeric(df, cols[var], where)
        bad = ~np.isnan(values) & ~np.isin(values, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where_row(df, i, cols[var])}: expected 0 or 1, found {values[i]:g}")
        out[:, j] = values
    return out


@_encoding("counts")
def _enc_counts(df, fmt, spec, where):
    """Vote counts → a distribution; rows with no vote for any variable become missing."""
    cols = _per_variable_columns(df, fmt, spec, where)
    counts = np.stack([_numeric(df, cols[v], where) for v in fmt.variables], axis=1)
    invalid = spec.get("invalid_below")
    if invalid is not None:
        counts[(counts < float(invalid)).any(axis=1)] = np.nan
    neg = ~np.isnan(counts) & (counts < 0)
    if neg.any():
        i, j = (int(x[0]) for x in np.nonzero(neg))
        raise DataError(f"{where_row(df, i, cols[fmt.variables[j]])}: negative vote count {counts[i, j]:g}")
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = counts / total
    out[(total[:, 0] <= 0) | np.isnan(total[:, 0])] = np.nan
    return out

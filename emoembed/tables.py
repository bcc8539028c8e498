"""Reading user tables (csv/tsv/txt/jsonl; the rules are in :mod:`emoembed.inputs`) with clear errors, and writing
results atomically: ``.csv``/``.tsv`` (predictions to 6 significant digits, the input's own columns exactly as read),
``.parquet``, ``.jsonl`` (one JSON object per row) or ``.json`` (one JSON list of objects).

Output tables of ``predict`` carry the input's other columns (an ``id``, metadata…) first, in input order, then
the item and the predictions (:func:`keep_input_columns`), so results join back to the input by those columns."""
from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from emoembed.errors import DataError, EmoembedError
from emoembed.io import atomic_write, dumps_json, json_ready

TABLE_OUTPUTS = (".csv", ".tsv", ".parquet", ".jsonl", ".json")
JSON_LINES = (".jsonl", ".ndjson")
TYPED_INPUTS = (".jsonl", ".ndjson", ".json", ".parquet")  # inputs whose values have types (csv/tsv cells are text)


def read_input_table(path: Path, no_header: bool = False, column: str | None = None) -> pd.DataFrame:
    """The user's table at ``path``, cells as text, index = file line numbers (see :mod:`emoembed.inputs`);
    ``no_header``: ``--no-header`` (every line is data); ``column``: ``--column``, which confirms a one-column
    file's first line as its header."""
    from emoembed.inputs import read_user_table

    return read_user_table(path, header=False if no_header else None, header_names=[column] if column else ())


def output_kind(path: Path) -> str:
    """``.csv``, ``.tsv``, ``.parquet``, ``.jsonl`` (also for ``.ndjson``) or ``.json``; no suffix or ``.txt``:
    csv. Anything else is an :class:`EmoembedError` naming the path (nothing is written in a format the name
    does not say)."""
    suffix = path.suffix.lower()
    if suffix in JSON_LINES:
        return ".jsonl"
    if suffix in TABLE_OUTPUTS:
        return suffix
    if suffix in ("", ".txt"):
        return ".csv"
    raise EmoembedError(f"{path}: --output must be one of .csv, .tsv, .parquet, .jsonl (one JSON object per line), "
                        f".json (one JSON list of objects); got {path.suffix!r}")


def write_table(df: pd.DataFrame, path: Path | None, exact: Sequence[str] = ()) -> None:
    """Write ``df`` to ``path`` atomically, in the format its suffix names (:func:`output_kind`), or as csv to
    stdout (4 decimals) when ``path`` is None. ``exact``: columns copied from the user's input, written as they
    were read (no rounding of their numbers)."""
    if path is None:
        write_csv(df, sys.stdout, exact=exact, float_format="%.4f")
        return
    kind = output_kind(path)
    if kind == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    elif kind in (".jsonl", ".json"):
        def dump(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("" if kind == ".jsonl" else "[\n")
                write_json_rows(json_rows(df), f, lines=kind == ".jsonl")
                f.write("" if kind == ".jsonl" else "\n]\n")

        atomic_write(path, dump)
    else:
        def csv(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                write_csv(df, f, sep="\t" if kind == ".tsv" else ",", exact=exact)

        atomic_write(path, csv)


def write_csv(df: pd.DataFrame, f: TextIO, sep: str = ",", header: bool = True, exact: Sequence[str] = (),
              float_format: str = "%.6g") -> None:
    """``df`` as delimited text: float columns with ``float_format`` except those in ``exact`` (the input's own
    columns: their numbers are written in full, the shortest digits that read back exactly; missing cells empty)."""
    floats = [c for c in exact if c in df.columns and pd.api.types.is_float_dtype(df[c])]
    if floats:
        import numpy as np

        df = df.copy()
        for c in floats:  # shortest digits that read back to the same number, never in exponent notation
            df[c] = pd.Series([None if pd.isna(v) else np.format_float_positional(float(v), trim="-") for v in df[c]],
                              index=df.index, dtype=object)
    df.to_csv(f, sep=sep, index=False, header=header, float_format=float_format)


def json_rows(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The rows of ``df`` as JSON-ready dicts (:func:`emoembed.io.json_ready`): numbers as numbers, missing values
    (NaN, None, an empty ``label``) as None, text as strings."""
    columns = [str(c) for c in df.columns]
    singles = [c for c in df.columns if df[c].dtype == "float32"]
    if singles:  # float32 outputs: the shortest digits that read back to the same float32 (0.27895004, not 0.2789500355…)
        import numpy as np

        df = df.copy()
        for c in singles:
            df[c] = pd.Series([None if np.isnan(v) else float(np.format_float_positional(v, unique=True))
                               for v in df[c].to_numpy()], index=df.index, dtype=object)
    for values in df.itertuples(index=False, name=None):
        row = json_ready(dict(zip(columns, values)))
        if row.get("label") == "":
            row["label"] = None  # no class is on (or the item had no output): a missing label
        yield row


def write_json_rows(rows: Iterable[dict[str, Any]], f: TextIO, lines: bool = True, first: bool = True) -> None:
    """``rows`` as JSON Lines (``lines``) or as the items of one JSON list (the caller writes ``[``/``]``;
    ``first``: no comma before the first row)."""
    for row in rows:
        text = dumps_json(row, ensure_ascii=False)
        if lines:
            f.write(text + "\n")
        else:
            f.write(("  " if first else ",\n  ") + text)
            first = False


def content_column(frame: pd.DataFrame, column: str | None, source: str, others: Sequence[str] = ()) -> list:
    """The items of ``frame``: column ``column`` (matched case-insensitively), else its only column, else the first
    usual content column it has (:func:`emoembed.inputs.content_items`); an error naming ``source`` (the file),
    the line of an empty cell, or the columns otherwise."""
    from emoembed.inputs import content_items

    return content_items(frame, column, source, others)


# ------------------------------------------------------------------------- the input's other columns in the output
def parse_keep_columns(text: str | None) -> str | list[str]:
    """``--keep-columns``: None/``all`` → "all", ``none`` → "none", ``id,lang`` → ["id", "lang"]."""
    if text is None or text.strip().casefold() == "all":
        return "all"
    if text.strip().casefold() == "none":
        return "none"
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise EmoembedError(f"--keep-columns takes all, none or comma-separated column names; got {text!r}")
    return names


def kept_columns(columns: Sequence[str], content: str | None, keep: str | Sequence[str], source: Any,
                 names: Mapping[str, str] | None = None) -> list[str]:
    """Which input ``columns`` an output keeps: every one but the ``content`` column (``keep="all"``, the default),
    none (``"none"``), or the names given (matched case-insensitively, as the input names a column or as the output
    will, ``names``: input column → output name, :func:`output_names`; the content column may not be one); always
    in input order. Raises :class:`DataError` naming ``source`` for a name the input lacks."""
    others = [c for c in columns if c != content]
    if keep == "all":
        return others
    if keep == "none":
        return []
    folded = {str(c).strip().casefold(): c for c in others}
    for c, name in (names or {}).items():
        if c in others:
            folded.setdefault(str(name).strip().casefold(), c)
    unknown = [n for n in keep if n.strip().casefold() not in folded]
    if unknown:
        shown = [f"{c} ({names[c]})" if names and c in names and names[c] != c else c for c in others]
        raise DataError(f"{source}: --keep-columns names {unknown}, which are not among its other columns "
                        f"{shown}" + (f" (the content column {content!r} is always in the output)" if content else ""))
    wanted = {folded[n.strip().casefold()] for n in keep}
    return [c for c in others if c in wanted]


def content_kind(cells: Sequence[Any]) -> str | None:
    """What a column of items holds, as the item column of a content model's output is named: ``image`` (every
    cell an image file name), ``word`` (no cell has a space), ``text`` (some do); None when a cell is empty or every
    cell is a number (not an item column)."""
    from emoembed.data.images import IMAGE_EXTENSIONS

    texts = [str(v).strip() for v in cells if v is not None and not (isinstance(v, float) and v != v)]
    if not texts or len(texts) < len(cells) or any(not t for t in texts):
        return None
    if all(_is_number_text(t) for t in texts):
        return None
    if all(Path(t).suffix.lower() in IMAGE_EXTENSIONS for t in texts):
        return "image"
    return "text" if any(any(ch.isspace() for ch in t) for t in texts) else "word"


def _is_number_text(t: str) -> bool:
    try:
        float(t.replace(",", ".") if re.fullmatch(r"[+-]?\d+,\d+", t) else t)
    except ValueError:
        return False
    return True


def output_names(frame: pd.DataFrame, others: Sequence[str], given: Mapping[str, str] | None = None,
                 reserved: Sequence[str] = (), name_items: bool = False) -> dict[str, str]:
    """Output names of the input columns ``others`` of ``frame`` (those an output may keep): input column → name.

    * ``given`` (``--columns NAME=COLUMN`` pairs that are not variables: input column → name) wins;
    * a headerless file's columns (named ``1``, ``2`` … by position, :func:`emoembed.inputs.positional`) are not
      written as a header of bare numbers, which reads as a line of data: with ``name_items`` (codec conversions,
      whose rows have no item column of their own) the one column of items — the only one that is neither empty
      nor all numbers, leaving out identifier columns (:func:`emoembed.inputs.identifier_like`: ``t1``, ``S17``)
      and, among several, preferring the one column of sentences — is named by what it holds (:func:`content_kind`:
      ``word``, ``text``, ``image``), and every other positional column ``column_N``;
    * other columns keep their names.

    ``reserved``: names the output already uses (its predictions, the item column): never given to a column."""
    from emoembed.inputs import identifier_like, positional

    out = {c: c for c in others}
    given = dict(given or {})
    taken = {str(n).casefold() for n in reserved} | {str(n).casefold() for n in given.values()}
    if positional(frame):
        rest = [c for c in others if c not in given]
        items = [(c, kind) for c in rest if (kind := content_kind(frame[c].tolist())) is not None] if name_items else []
        if len(items) > 1:  # an identifier column beside the items (t1, S17: a digit in every cell) is not one
            items = [(c, k) for c, k in items if not identifier_like(frame[c].tolist())] or items
        if len(items) > 1:  # several: the one column of sentences, if there is one
            items = [(c, k) for c, k in items if k == "text"] if sum(k == "text" for _, k in items) == 1 else items
        for c in rest:
            out[c] = f"column_{c}"
        if len(items) == 1 and items[0][1] not in taken:
            out[items[0][0]] = items[0][1]
    for c, name in given.items():
        if c in out:
            out[c] = name
    return out


def check_no_clash(kept: Sequence[str], outputs: Sequence[str], source: Any) -> None:
    """An input column kept in the output may not share its name with an output column (``joy``, ``label``,
    ``coverage``, the item column ``text``…), compared case-insensitively as every column option matches names:
    :class:`DataError` naming the column(s), what to do instead."""
    names = {str(o).casefold(): o for o in outputs}
    clash = [c for c in kept if str(c).casefold() in names]
    if clash:
        raise DataError(f"{source}: input column(s) {', '.join(repr(c) for c in clash)} would clash with the output "
                        f"column(s) {', '.join(repr(names[str(c).casefold()]) for c in clash)} (outputs: "
                        f"{list(outputs)}); the input's other columns are kept beside the predictions, so rename "
                        f"{'it' if len(clash) == 1 else 'them'} in the input or with --columns NEWNAME=COLUMN, or choose the kept "
                        f"columns with --keep-columns NAME,… (or none)")


def keep_input_columns(out: pd.DataFrame, inputs: pd.DataFrame | None) -> pd.DataFrame:
    """``inputs``' columns (row-aligned with ``out``: row i of one is row i of the other) inserted before ``out``'s
    columns, in their order. ``out`` is returned unchanged when ``inputs`` is None or has no columns."""
    if inputs is None or inputs.shape[1] == 0:
        return out
    if len(inputs) != len(out):
        raise ValueError(f"{len(inputs)} input rows for {len(out)} output rows")
    left = inputs.reset_index(drop=True)
    return pd.concat([left, out.reset_index(drop=True)], axis=1)


# ------------------------------------------------------------------ the types of a csv/tsv's kept columns
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")  # no leading zero ("007" is an identifier): text round-trips
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]*[1-9]")  # no trailing zero, no exponent
_ORDER = {"empty": 0, "int": 1, "float": 2, "text": 3}


def text_column_kind(cells: Iterable[Any], seen: str = "empty") -> str:
    """How a csv/tsv column of text ``cells`` is written to typed outputs (parquet, JSON): ``"int"`` when every
    non-empty cell is a plain integer (``-12``, not ``007`` or ``+3``), ``"float"`` when every one is a plain
    integer or decimal (``0.25``; not ``0.50``, ``1e3``; at most 15 significant digits), so that each number reads
    back to exactly the text it came from; else ``"text"`` (cells kept as written); ``"empty"`` if all are empty.
    ``seen``: the kind of the cells before these (chunked reading)."""
    kind = seen
    for cell in cells:
        if kind == "text":
            break
        if cell is None or cell == "" or (isinstance(cell, float) and cell != cell):
            continue
        text = str(cell)
        if _INTEGER.fullmatch(text):
            now = "int"
        elif _DECIMAL.fullmatch(text) and len(text.lstrip("-").replace(".", "").lstrip("0")) <= 15:
            now = "float"
        else:
            now = "text"
        kind = max(kind, now, key=_ORDER.__getitem__)
    return kind


def typed_text_columns(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """``frame`` with each column named in ``kinds`` (:func:`text_column_kind`) typed: ``int`` → nullable ``Int64``,
    ``float`` → ``float64``, ``text``/``empty`` → text; an empty cell is missing (None: null in JSON and parquet,
    an empty cell in csv again). Columns not in ``kinds`` are unchanged."""
    typed = [c for c in kinds if c in frame.columns]
    if not typed:
        return frame
    frame = frame.copy()
    for c in typed:
        kind = kinds[c]
        values = [None if v is None or v == "" or (isinstance(v, float) and v != v) else v for v in frame[c]]
        if kind == "int":
            frame[c] = pd.array([None if v is None else int(v) for v in values], dtype="Int64")
        elif kind == "float":
            frame[c] = pd.Series([float("nan") if v is None else float(v) for v in values], index=frame.index,
                                 dtype="float64")
        else:
            frame[c] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def typed_text_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`typed_text_columns` of every column of a whole csv/tsv table read as text."""
    return typed_text_columns(frame, {str(c): text_column_kind(frame[c]) for c in frame.columns})

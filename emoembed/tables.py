"""Reading user tables (csv/tsv/jsonl) with clear errors, and writing results atomically."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from emoembed.errors import DataError, EmoembedError
from emoembed.io import atomic_write_text


def read_input_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            df = pd.read_json(path, lines=path.suffix.lower() == ".jsonl")
        else:
            df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse: {exc}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    if df.empty:
        raise DataError(f"{path}: no rows")
    return df


def write_table(df: pd.DataFrame, path: Path | None) -> None:
    if path is None:
        df.to_csv(sys.stdout, index=False, float_format="%.4f")
        return
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    atomic_write_text(df.to_csv(index=False, sep=sep, float_format="%.6g"), path)


CONTENT_COLUMNS = ("content", "word", "text", "image", "path", "sentence")


def content_column(frame: pd.DataFrame, column: str | None, source: str) -> list:
    """The items of ``frame``: column ``column``, else its only column, else the first of :data:`CONTENT_COLUMNS`
    it has; an error naming ``source`` (the file) and the columns otherwise."""
    if column:
        if column not in frame.columns:
            raise EmoembedError(f"{source}: no column {column!r}; columns: {list(frame.columns)}")
        return frame[column].tolist()
    if frame.shape[1] == 1:
        return frame.iloc[:, 0].tolist()
    for c in CONTENT_COLUMNS:
        if c in frame.columns:
            return frame[c].tolist()
    raise EmoembedError(f"{source}: which column holds the content? pass --column (columns: {list(frame.columns)})")

"""Reading user tables (csv/tsv/txt/jsonl; the rules are in :mod:`emoembed.inputs`) with clear errors, and writing
results atomically."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from emoembed.io import atomic_write_text


def read_input_table(path: Path, no_header: bool = False, column: str | None = None) -> pd.DataFrame:
    """The user's table at ``path``, cells as text, index = file line numbers (see :mod:`emoembed.inputs`);
    ``no_header``: ``--no-header`` (every line is data); ``column``: ``--column``, which confirms a one-column
    file's first line as its header."""
    from emoembed.inputs import read_user_table

    return read_user_table(path, header=False if no_header else None, header_names=[column] if column else ())


def write_table(df: pd.DataFrame, path: Path | None) -> None:
    if path is None:
        df.to_csv(sys.stdout, index=False, float_format="%.4f")
        return
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    atomic_write_text(df.to_csv(index=False, sep=sep, float_format="%.6g"), path)


def content_column(frame: pd.DataFrame, column: str | None, source: str) -> list:
    """The items of ``frame``: column ``column`` (matched case-insensitively), else its only column, else the first
    usual content column it has (:func:`emoembed.inputs.content_items`); an error naming ``source`` (the file),
    the line of an empty cell, or the columns otherwise."""
    from emoembed.inputs import content_items

    return content_items(frame, column, source)

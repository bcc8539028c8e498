"""Reading the user's own tables: content lists for ``predict``/``search``/``plot`` and label tables for codec
conversion.

What a user can rely on (see ``docs/formats.md``, "Your own tables"):

* **Cells stay text.** Every cell is read as the string in the file; no token (``NA``, ``None``, ``null``,
  ``nan``, ``n/a``…) is ever turned into a missing value. Label columns are converted to numbers afterwards, and a
  cell that is not a number is an error naming its line, column and text.
* **Rows are named by the file's line numbers** (the header is line 1): the frame's index is named ``line`` and
  holds them, so every error message can say ``line 7, column 'valence'``. JSON Lines files are numbered the same
  way; a JSON array is numbered by ``row`` (1 = its first record).
* **Delimiters are sniffed.** ``.tsv``/``.tab`` are tab-separated; ``.csv`` is split at whichever of tab, comma,
  semicolon and ``|`` gives every line the same number (≥ 2) of fields (else comma). A ``.txt`` (or other) file is
  one item per line unless it is clearly a table: the same number of tabs on every line (NRC's tab-separated
  ``.txt`` lexicons), or the same number of ``,``/``;``/``|`` fields under a header of names with a column of
  numbers below — so sentences with commas (``Well, I am happy``) stay whole.
* **Headers.** A ``.csv``/``.tsv`` file has a header line (the CSV convention); a one-column one whose first line is
  not a usual column name and reads like the items below it (``happy`` over ``sad``) is an error asking for
  ``header=False`` (``--no-header``) or ``--column NAME``, never a silently lost item. A ``.txt`` (or other) file
  with one column has a header only when its first line is a usual content-column name (``word``, ``text``,
  ``content`` …), so a plain word list keeps its first word. A file with several columns has a header unless its
  first line holds numbers where the rest of the file does (then columns are named ``1``, ``2`` … by position,
  :func:`positional`; outputs do not write such a header: :func:`emoembed.tables.output_names`).
* **Blank lines.** In a one-column table every line is an item: a blank or whitespace-only line between items is an
  error naming its line (as an empty cell is), not dropped — that would shift every output row after it.
* **Columns match case-insensitively** (``Word``, ``VALENCE``); ``--columns valence=V.Mean.Sum,arousal=…`` names
  them for any layout, and an unknown name there is an error.
"""
from __future__ import annotations

import csv
import shlex
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
from pathlib import Path

import numpy as np
import pandas as pd

from emoembed.errors import DataError, EmoembedError
from emoembed.columns import find_column

CONTENT_COLUMNS = ("content", "word", "text", "image", "path", "sentence", "words", "texts", "term", "lemma",
                   "token", "item", "items", "emoji", "file", "filename", "image_path", "headline", "tweet",
                   "file_name", "filepath", "file_path", "image_file", "image_name", "img", "img_path")  # file_name:
# the image column of Hugging Face imagefolder's metadata.csv
NAME_COLUMNS = ("label", "labels", "emotion", "emotions", "class", "classes", "category", "categories",
                "class_name", "class_names", "label_name", "label_names", "emotion_label", "emotion_labels",
                "emotion_name", "emotion_names", "emotion_class", "emotion_category", "emotion_categories",
                "gold", "gold_label", "gold_labels", "target", "targets", "annotation", "annotations", "tag", "tags",
                "expression", "mood", "feeling", "feelings", "affect")  # headers of a class-name column (normalised)
DELIMITERS = ("\t", ",", ";", "|")
SAMPLE_LINES = 500
DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
SPREADSHEETS = (".xlsx", ".xls", ".xlsm", ".ods", ".numbers")


class InputError(DataError):
    """The user's input table cannot be read as asked."""


# ---------------------------------------------------------------------------------------------- reading
def read_user_table(path: str | Path, header: bool | None = None, header_names: Sequence[str] = ()) -> pd.DataFrame:
    """The table at ``path`` as a DataFrame of strings (object dtype), index = the file's line numbers (``line``).

    ``header``: None (default) decides by the rules of the module docstring; False reads every line as data
    (``--no-header``: one column is named ``content``, several ``1``, ``2`` … by position); True: line 1 is the
    header. ``header_names``: more names that make a one-column file's first line a header (``--column``'s name,
    the source format's variables).

    Raises :class:`InputError` naming the file (and line) for a missing, empty, undecodable or ragged file, a
    blank line inside a one-column table (every line is an item there), and a one-column ``.csv``/``.tsv`` whose
    first line reads like an item rather than a header (pass ``header=False`` / ``--no-header``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in SPREADSHEETS:
        raise InputError(f"{path}: spreadsheet files are not read; save the sheet as CSV (or tab-separated text) "
                         "and pass that")
    if suffix in (".jsonl", ".json", ".ndjson"):
        if header is False:
            raise InputError(f"{path}: --no-header (header=False) is for delimited text tables; JSON records name "
                             "their fields")
        return _read_json(path, lines=suffix != ".json")
    if suffix == ".parquet":
        if header is False:
            raise InputError(f"{path}: --no-header (header=False) is for delimited text tables; a parquet file names "
                             "its columns")
        return _read_parquet(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    lines = text.splitlines()
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not numbered:
        raise InputError(f"{path}: file is empty")
    delimiter = sniff_delimiter([ln for _, ln in numbered[:SAMPLE_LINES]], suffix)
    if delimiter is None:
        _check_no_blank_lines(path, [i + 1 for i, ln in enumerate(lines) if not ln.strip()], [n for n, _ in numbered])
        return _one_column(path, numbered, header, header_names)
    blank: list[int] = []
    rows = _split_rows(text, delimiter, blank)
    if not rows:
        raise InputError(f"{path}: file is empty")
    if all(len(cells) == 1 for _, cells in rows):
        _check_no_blank_lines(path, blank, [line for line, _ in rows])
        return _one_column(path, [(line, cells[0]) for line, cells in rows], header, header_names)
    first_line, first = rows[0]
    if header is False or (header is None and _looks_headerless(rows)):
        header = [str(i + 1) for i in range(len(first))]
        body = rows
    else:
        header = [h.strip() or f"unnamed_{j + 1}" for j, h in enumerate(first)]  # e.g. pandas' index column
        body = rows[1:]
        _check_header(path, header)
    width = len(header)
    for line, cells in body:
        if len(cells) != width:
            hint = ""
            if len(cells) > width:  # a text with the delimiter in it, not quoted
                hint = (f"; a field that contains the delimiter must be quoted (\"Great job, team\"), or give one item per "
                        f"line in a .txt file")
            raise InputError(f"{path}, line {line}: {len(cells)} field(s) where the header has {width} "
                             f"(delimiter {_delim_name(delimiter)}){hint}")
    if not body:
        raise InputError(f"{path}: no rows below the header")
    frame = pd.DataFrame([cells for _, cells in body], columns=header, dtype=object,
                         index=pd.Index([line for line, _ in body], name="line"))
    if body is rows:
        frame.attrs[POSITIONAL] = True  # columns named 1, 2, … by position: outputs name them (output_names)
    return frame


POSITIONAL = "positional_columns"  # DataFrame.attrs key: the columns are named 1, 2, … by position (no header)


def positional(frame: pd.DataFrame) -> bool:
    """Whether ``frame``'s columns are named ``1``, ``2`` … by position (a headerless several-column file:
    ``--no-header``, or a first line of numbers where the rest of the file has them)."""
    return bool(frame.attrs.get(POSITIONAL))


def head_lines(path: str | Path, n: int) -> list[str]:
    """The first ``n`` non-blank lines of the text file ``path`` (UTF-8, a BOM dropped), without line endings.
    Raises OSError / UnicodeDecodeError as ``open`` and decoding do: callers decide what they mean."""
    sample: list[str] = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            if line.strip():
                sample.append(line.rstrip("\r\n"))
                if len(sample) >= n:
                    break
    return sample


def first_line_is_data(path: str | Path) -> bool:
    """Whether :func:`read_user_table` reads the csv/tsv/txt table at ``path`` as headerless (several columns, its
    first line holds numbers where the rest of the file does): from its first lines only, for the streaming reader,
    which takes line 1 as the header."""
    path = Path(path)
    try:
        sample = head_lines(path, SAMPLE_LINES)
    except (OSError, UnicodeDecodeError):
        return False  # the reader reports it
    delimiter = sniff_delimiter(sample, path.suffix.lower())
    if delimiter is None:
        return False
    rows = [(i + 1, cells) for i, cells in enumerate(csv.reader(sample, delimiter=delimiter))]
    return len({len(c) for _, c in rows}) == 1 and len(rows[0][1]) > 1 and _looks_headerless(rows)


def _read_json(path: Path, lines: bool) -> pd.DataFrame:
    try:
        frame = pd.read_json(path, lines=lines, dtype=False)
    except ValueError as exc:
        raise InputError(f"{path}: cannot parse: {exc}") from None
    if frame.empty:
        raise InputError(f"{path}: no rows")
    if lines:
        numbers = [i + 1 for i, ln in enumerate(path.read_text(encoding="utf-8-sig").splitlines()) if ln.strip()]
        frame.index = pd.Index(numbers[: len(frame)], name="line")
    else:
        frame.index = pd.Index(range(1, len(frame) + 1), name="row")
    return frame.astype(object).where(frame.notna(), None)


def _read_parquet(path: Path) -> pd.DataFrame:
    """A parquet table with its own types (missing values None), index = 0-based rows named ``row`` (as the
    streaming reader names them)."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as parquet: {exc}") from None
    if frame.empty:
        raise InputError(f"{path}: no rows")
    frame.index = pd.Index(range(len(frame)), name="row")
    frame.columns = [str(c) for c in frame.columns]
    return frame.astype(object).where(frame.notna(), None)


def sniff_delimiter(sample: Sequence[str], suffix: str = "") -> str | None:
    """The delimiter of a file whose first non-blank lines are ``sample``, or None (one column).

    ``.tsv``/``.tab``: tab. Otherwise the first of tab, comma, semicolon, ``|`` that splits every sample line
    (quotes respected) into the same number ≥ 2 of fields; for ``.csv`` a comma when none does (ragged rows are
    then reported by line, and a one-column file is still unquoted as CSV)."""
    if suffix in (".tsv", ".tab"):
        return "\t"
    for d in DELIMITERS:
        if not any(d in ln for ln in sample):
            continue
        rows = list(csv.reader(sample, delimiter=d))
        counts = {len(r) for r in rows}
        if len(counts) == 1 and counts.pop() >= 2 and (suffix == ".csv" or d == "\t" or _clear_table(rows)):
            return d
    if suffix == ".csv":  # a one-column .csv is still CSV: quotes are unquoted
        return ","
    return None


def _clear_table(rows: Sequence[Sequence[str]]) -> bool:
    """For a ``.txt`` (or other non-CSV) file split evenly by a comma, semicolon or ``|``: whether it is clearly a
    table rather than lines of text that happen to hold one (``Well, I am happy``): its first line is a header —
    every field a name (not empty, not a number, no space around it) — and either every field is a usual column
    name (``word,label``) or some column below it holds only numbers (``Term;V.Mean.Sum;…`` over ``vacation;8.53;…``)."""
    if len(rows) < 2:
        return False
    head = rows[0]
    if any(not h or h != h.strip() or _is_number(h) for h in head):
        return False
    if all(h.casefold() in CONTENT_COLUMNS or _header_key(h) in NAME_COLUMNS or h.casefold() == "id" for h in head):
        return True  # word,label over happy,joy: every header is a usual column name
    return any(all(_is_number(r[j].strip()) for r in rows[1:]) for j in range(len(head)))


def _split_rows(text: str, delimiter: str, blank: list[int] | None = None) -> list[tuple[int, list[str]]]:
    """(line, cells) per row with text; the lines of blank rows go to ``blank`` when given."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows, prev = [], 0
    for cells in reader:
        start = prev + 1
        prev = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            if blank is not None:
                blank.append(start)
            continue
        rows.append((start, cells))
    return rows


def _check_no_blank_lines(path: Path, blank: Sequence[int], filled: Sequence[int]) -> None:
    """In a one-column table every line is an item: a blank (or whitespace-only) line between items is an empty
    cell — an error naming its line, as an empty cell is in any table — not a line to drop, which would shift every
    output row after it. Blank lines before the first and after the last item are ignored. ``blank``/``filled``:
    the line numbers of blank rows and of rows with text."""
    if not filled:
        return
    inside = [n for n in blank if filled[0] < n < filled[-1]]
    if inside:
        raise InputError(f"{path}, line {inside[0]}: empty line in a one-column table, where every line is an item "
                         f"(dropping it would shift the output rows after it); remove the line or fill it")


def looks_like_a_header(first: str, body: Sequence[str]) -> bool:
    """Whether the first line of a one-column table whose name is not a usual column name still reads as a header
    rather than as one more item like those below it: it has an ``_`` the items lack (``words_en``), ends in ``:``,
    is capitalised or all capitals where the items mostly are not (``Adjective`` over ``happy``), or the items are
    mostly file paths and it is not (``photo`` over ``a.png``). ``happy`` over ``sad``, ``angry`` reads as an item."""
    first = first.strip()
    sample = [b.strip() for b in body[:SAMPLE_LINES] if b.strip()]
    if not first or not sample:
        return True

    def share(test) -> float:
        return sum(1 for b in sample if test(b)) / len(sample)

    if first.endswith(":") or ("_" in first and share(lambda b: "_" in b) == 0):
        return True
    if first[:1].isupper() and share(lambda b: b[:1].isupper()) < 0.5:
        return True
    if len(first) > 1 and first.isupper() and share(lambda b: b.isupper()) < 0.5:
        return True
    pathlike = re.compile(r".*([/\\]|\.[A-Za-z0-9]{2,5})$")
    return share(lambda b: bool(pathlike.match(b))) >= 0.8 and not pathlike.match(first)


def check_one_column_file(path: str | Path, header_names: Sequence[str] = ()) -> None:
    """The checks :func:`read_user_table` makes of a one-column ``.csv``/``.tsv`` (its first line must read as a
    header; no blank line between items), by one pass over the file with one line in memory — for the streaming
    reader (:mod:`emoembed.streaming`). Raises :class:`InputError` as :func:`read_user_table` does."""
    path = Path(path)
    first: str | None = None
    sample: list[str] = []
    pending_blank: int | None = None  # first blank line since the last item
    with open(path, encoding="utf-8-sig", newline="") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if first is not None and pending_blank is None:
                    pending_blank = n
                continue
            if pending_blank is not None:
                raise InputError(f"{path}, line {pending_blank}: empty line in a one-column table, where every line is "
                                 f"an item (dropping it would shift the output rows after it); remove the line or fill it")
            if first is None:
                first = line
            elif len(sample) < SAMPLE_LINES:
                sample.append(line)
    if first is not None:
        _one_column(path, [(1, first)] + [(i + 2, ln) for i, ln in enumerate(sample)], None, header_names)


def _one_column(path: Path, numbered: list[tuple[int, str]], header: bool | None = None,
                header_names: Sequence[str] = ()) -> pd.DataFrame:
    first_line, first = numbered[0]
    name = first.strip()
    csv_like = path.suffix.lower() in (".csv", ".tsv", ".tab")  # CSV files carry a header by convention
    known = (name.casefold() in CONTENT_COLUMNS or _header_key(name) in NAME_COLUMNS
             or name.casefold() in {str(h).strip().casefold() for h in header_names})
    if header is None and csv_like and not known and not looks_like_a_header(name, [ln for _, ln in numbered[1:]]):
        raise InputError(f"{path}: is line 1 ({name!r}) a header or the first item? A one-column {path.suffix} file has "
                         f"a header line, but {name!r} is not a usual column name (word, text, content, label …) and "
                         f"reads like the lines below it. Pass --no-header to read every line as an item "
                         f"(header=False), or --column {shlex.quote(name)} to use it as the header")
    if header is True or (header is None and (csv_like or known)):
        body = numbered[1:]
    else:
        name, body = "content", numbered  # a plain list: its first line is an item, not a header
    if not body:
        raise InputError(f"{path}: no rows below the header {name!r}")
    return pd.DataFrame({name: [ln.strip() for _, ln in body]}, dtype=object,
                        index=pd.Index([n for n, _ in body], name="line"))


def identifier_like(cells: Sequence[Any]) -> bool:
    """Whether a column of text reads as identifiers rather than items: every cell has a digit and no space
    (``t1``, ``S17``, ``eew5j0j``). Words and sentences rarely all do."""
    texts = [str(v).strip() for v in cells if v is not None]
    return bool(texts) and all(any(ch.isdigit() for ch in t) and not any(ch.isspace() for ch in t) for t in texts)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _looks_headerless(rows: list[tuple[int, list[str]]]) -> bool:
    """True when the first row holds numbers in every column that is numeric in the rest of the file."""
    first = rows[0][1]
    rest = [cells for _, cells in rows[1:SAMPLE_LINES]]
    if not rest:
        return False
    numeric_cols = [j for j in range(len(first)) if all(j < len(r) and _is_number(r[j]) for r in rest)]
    return bool(numeric_cols) and all(_is_number(first[j]) for j in numeric_cols)


def _check_header(path: Path, header: list[str]) -> None:
    seen: dict[str, str] = {}
    for h in header:
        key = h.casefold()
        if key in seen:
            raise InputError(f"{path}, line 1: columns {seen[key]!r} and {h!r} have the same name (names are matched "
                             f"case-insensitively)")
        seen[key] = h


def _delim_name(d: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "'|'"}.get(d, repr(d))


# ---------------------------------------------------------------------------------------------- columns
def parse_columns_option(text: str | None) -> dict[str, str]:
    """``valence=V.Mean.Sum,arousal=A.Mean.Sum`` → {name: file column}. A name is a variable of the source format
    (codecs) or the name an output gives another input column (``word=1``, ``id=2``: :func:`split_columns_option`).
    Raises EmoembedError on bad syntax."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        var, sep, col = part.partition("=")
        if not sep or not var.strip() or not col.strip():
            raise EmoembedError(f"--columns: expected VARIABLE=COLUMN pairs separated by commas, got {part.strip()!r}")
        if var.strip() in out:
            raise EmoembedError(f"--columns: {var.strip()!r} is given twice")
        out[var.strip()] = col.strip()
    return out


def split_columns_option(columns: Mapping[str, str] | None, variables: Sequence[str] = ()
                         ) -> tuple[dict[str, str], dict[str, str]]:
    """``--columns`` pairs split into {variable: file column} (names among ``variables``, the source format's) and
    {file column: output name} (every other name: what the output calls that input column, e.g. ``word=1`` for a
    headerless file's first column). A name that is not a variable but nearly spells one (``valance``) is an
    :class:`InputError` asking which was meant; so is one file column given two output names."""
    import difflib

    values: dict[str, str] = {}
    names: dict[str, str] = {}
    folded = {v.casefold(): v for v in variables}
    for name, col in (columns or {}).items():
        if name in variables or name.casefold() in folded:
            values[folded[name.casefold()]] = col
            continue
        close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.75)
        if close:
            raise InputError(f"--columns {name}={col}: {name!r} is not a variable of the source format; did you mean "
                             f"{folded[close[0]]!r}? (its variables: {', '.join(variables)}; any other name, e.g. "
                             f"word={col}, names that input column in the output)")
        if col in names:
            raise InputError(f"--columns names column {col!r} twice ({names[col]!r} and {name!r})")
        names[col] = name
    return values, names


def require_column(frame: pd.DataFrame, name: str, source: str, option: str) -> str:
    col = find_column(frame, name)
    if col is None:
        raise InputError(f"{source}: no column {name!r} (named by {option}; matched case-insensitively); columns: "
                         f"{list(frame.columns)}")
    return col


def content_column_name(frame: pd.DataFrame, column: str | None, source: str, others: Sequence[str] = ()) -> str:
    """The column of ``frame`` holding the content: ``column`` (matched case-insensitively), the only column, or the
    first usual content-column name (:data:`CONTENT_COLUMNS`); in a headerless file (columns ``1``, ``2`` … by
    position) the one column that is not all numbers, leaving out ``others`` (columns ``--columns`` names for the
    output, e.g. ``id=1``). :class:`InputError` naming ``source`` otherwise."""
    if column:
        return require_column(frame, column, source, "--column")
    if frame.shape[1] == 1:
        return frame.columns[0]
    if positional(frame):  # no header: the content is the one column that is not all numbers (word, 7.5, 3.2)
        skip = {find_column(frame, str(o)) for o in others}
        texts = [c for c in frame.columns if c not in skip
                 and not all(_is_number(str(v).strip()) for v in frame[c] if v is not None)]
        if len(texts) > 1:  # an identifier column beside the items (t1, S17, 001a: a digit in every cell)
            texts = [c for c in texts if not identifier_like(frame[c].tolist())] or texts
        if len(texts) == 1:
            return texts[0]
        raise InputError(f"{source}: which column holds the content? The file has no header line, so its columns are "
                         f"named {', '.join(map(str, frame.columns))} by position; pass --column N (e.g. --column "
                         f"{texts[0] if texts else frame.columns[0]})")
    col = next((c for name in CONTENT_COLUMNS if (c := find_column(frame, name)) is not None), None)
    if col is None:
        raise InputError(f"{source}: which column holds the content? pass --column (columns: {list(frame.columns)})")
    return col


def content_items(frame: pd.DataFrame, column: str | None, source: str, others: Sequence[str] = ()) -> list[str]:
    """The content column's cells as strings: ``column`` (matched case-insensitively), the only column, or the
    first usual content-column name (:func:`content_column_name`). An empty cell is an error naming its line."""
    col = content_column_name(frame, column, source, others)
    items = []
    for line, v in frame[col].items():
        if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip():
            raise InputError(f"{source}, {frame.index.name or 'row'} {line}, column {col!r}: empty cell")
        items.append(str(v) if not isinstance(v, str) else v)
    return items


def _to_float(v) -> float:
    if not isinstance(v, str):
        return float(v)
    t = v.strip()
    if DECIMAL_COMMA.fullmatch(t):  # 4,2 in a semicolon- or tab-separated European table
        t = t.replace(",", ".")
    return float(t)


def numeric_column(frame: pd.DataFrame, col: str, source: str) -> np.ndarray:
    """Column ``col`` as float64 (a decimal comma, ``4,2``, is read as 4.2); a cell that is not a number (empty,
    ``NA``, text) is an error naming it."""
    out = np.empty(len(frame), dtype=np.float64)
    for i, (line, v) in enumerate(frame[col].items()):
        try:
            out[i] = _to_float(v)
        except (TypeError, ValueError):
            raise InputError(f"{source}, {frame.index.name or 'row'} {line}, column {col!r}: {v!r} is not a number") from None
        if not math.isfinite(out[i]):
            raise InputError(f"{source}, {frame.index.name or 'row'} {line}, column {col!r}: {v!r} is not a finite number")
    return out


def label_table(frame: pd.DataFrame, fmt, source: str, columns: Mapping[str, str] | None = None,
                name_column: str | None = None) -> tuple[pd.DataFrame | pd.Series, list[str]]:
    """The labels of ``fmt`` in the user's table, ready for ``EmotionCodec.convert``, and the file columns used.

    * Value columns, one per variable of ``fmt``: named by ``columns`` (``--columns``), else matched by name
      (case-insensitively). Returned as a float DataFrame indexed like ``frame``.
    * For class formats, instead, one column of class names (comma-separated for multilabel): ``name_column``
      (``--column``), else a column called label/emotion/class…, else the one column whose every cell is made of
      the format's class names. Returned as a Series of strings indexed like ``frame``.

    Raises :class:`InputError` saying exactly what is needed when neither is there."""
    columns = dict(columns or {})
    unknown = [v for v in columns if v not in fmt.variables]
    if unknown:
        raise InputError(f"--columns names {unknown}, which format {fmt.name!r} does not have; its variables: "
                         f"{', '.join(fmt.variables)}")
    if name_column and not fmt.is_class_format:
        raise InputError(f"--column names a column of class names, for class formats; {fmt.name!r} is {fmt.kind}: "
                         f"map its columns with --columns {','.join(f'{v}=COLUMN' for v in fmt.variables)}")
    if name_column and columns:
        raise InputError("give either --column (one column of class names) or --columns (one column per class), not both")
    if name_column:
        col = require_column(frame, name_column, source, "--column")
        return _names(frame, col, source), [col]
    found: dict[str, str] = {}
    for v in fmt.variables:
        if v in columns:
            found[v] = require_column(frame, columns[v], source, f"--columns {v}=…")
        elif (c := find_column(frame, v)) is not None:
            found[v] = c
    if len(found) == fmt.size:
        data = {v: numeric_column(frame, found[v], source) for v in fmt.variables}
        return pd.DataFrame(data, index=frame.index), list(found.values())
    if fmt.is_class_format and not columns:
        col = _name_column(frame, fmt, source)
        if col is not None:
            return _names(frame, col, source), [col]
    missing = [v for v in fmt.variables if v not in found]
    need = (f"one column per class ({', '.join(fmt.variables)}) holding 0/1 or probabilities, or one column of class "
            f"names{' (several comma-separated per row, e.g. joy,love)' if fmt.kind == 'multilabel' else ''}: name it "
            f"with --column COLUMN, or head it {'/'.join(NAME_COLUMNS[:5])} (found without --column){_name_hint(frame, fmt)}"
            if fmt.is_class_format else f"one column per variable ({', '.join(fmt.variables)})")
    raise InputError(f"{source}: missing column(s) {missing} for format {fmt.name!r}; columns: {list(frame.columns)}. "
                     f"Format {fmt.name!r} needs {need}; name other columns with --columns "
                     f"{','.join(f'{v}=COLUMN' for v in missing[:3])}{',…' if len(missing) > 3 else ''} "
                     f"(matching is case-insensitive)")


def _split_names(cell) -> list[str]:
    from emoembed.codec import split_class_names

    return split_class_names(cell)


def _header_key(name: Any) -> str:
    """A header as :data:`NAME_COLUMNS` holds it: case-folded, spaces and hyphens as ``_`` (``Emotion Label`` →
    ``emotion_label``)."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().casefold())


def _name_share(frame: pd.DataFrame, col: str, fmt) -> float:
    """The share of the names in column ``col`` that are classes of ``fmt`` (or their aliases, or class indices);
    0 for a column without names."""
    from emoembed.codec import class_index

    parts = [p for v in frame[col].tolist() for p in _split_names(v)]
    if not parts:
        return 0.0
    ok = sum(1 for p in parts if class_index(p, fmt) is not None or (p.isdigit() and int(p) < fmt.size))
    return ok / len(parts)


def _name_column(frame: pd.DataFrame, fmt, source: str) -> str | None:
    """The column of class names: the one whose header is a usual name for it (:data:`NAME_COLUMNS`, whatever its
    cells hold — a cell that is not a class is then an error naming its line), else the one column whose every cell
    is made of the format's class names. Several headed columns: the one holding only class names, else an error
    asking for --column."""
    headed = [c for c in frame.columns if _header_key(c) in NAME_COLUMNS]
    if len(headed) == 1:
        return headed[0]
    if len(headed) > 1:
        full = [c for c in headed if _name_share(frame, c, fmt) == 1.0]
        if len(full) == 1:
            return full[0]
        raise InputError(f"{source}: several columns could hold the {fmt.name} class names ({', '.join(map(repr, headed))}); "
                         f"name the one to read with --column")
    fitting = [c for c in frame.columns if _name_share(frame, c, fmt) == 1.0]
    return fitting[0] if len(fitting) == 1 else None


def _name_hint(frame: pd.DataFrame, fmt) -> str:
    """A pointer to the column that most looks like class names (at least half of its names are classes)."""
    shares = {c: _name_share(frame, c, fmt) for c in frame.columns}
    best = max(shares, key=shares.get) if shares else None
    if best is None or shares[best] < 0.5:
        return ""
    from emoembed.codec import class_index

    bad = next((p for v in frame[best].tolist() for p in _split_names(v) if class_index(p, fmt) is None
                and not (p.isdigit() and int(p) < fmt.size)), None)
    return (f"; column {best!r} looks like {fmt.name} class names" + (f" except {bad!r}" if bad else "")
            + f": --column {best}")


def _names(frame: pd.DataFrame, col: str, source: str) -> pd.Series:
    out = []
    for v in frame[col].tolist():  # an empty cell, JSON null or [] is no label: its row gets empty outputs
        out.append(",".join(_split_names(v)))
    return pd.Series(out, index=frame.index, dtype=object)

"""Streaming prediction over files larger than memory: read a chunk of rows, predict it, write it, repeat.

    predict_file(model, "big.csv", "out.parquet", format="vad", column="text", chunk_size=10_000, shard=(0, 4))

* **Inputs**: ``.csv``, ``.tsv``, ``.jsonl`` (one JSON object per line) and ``.parquet``; one column holds the
  content (``column``, else the only column, else the first of :data:`CONTENT_COLUMNS`). Memory holds one chunk.
* **Outputs**: ``.parquet``, ``.csv``, ``.tsv``, ``.jsonl`` or ``.json`` (:mod:`emoembed.tables`); the same columns
  and rows as the in-memory ``predict``: the input's other columns (``keep_columns``: all by default) in input order,
  then the content (named by the modality), one column per variable, ``label`` for class formats, ``coverage``;
  rows in input order. A kept column named like an output column is an error naming it. csv/tsv columns whose
  every cell is a plain number are typed over the whole file (one pass before the first chunk), as in memory.
* **Resumable**: every finished chunk is written atomically as ``OUTPUT.partial/part-NNNNNNNN.parquet`` next to a
  ``manifest.json`` naming the input (path, size, mtime), the model (config and weights fingerprint), the format,
  scale, column, kept columns, chunk size and shard. A run that is killed leaves only whole parts; the next run with the same
  settings skips them (no duplicate or missing rows) and a run with other settings refuses to mix them unless told
  ``fresh=True`` (``--fresh``). A run stopped by bad input (a :class:`~emoembed.errors.DataError`: an empty cell,
  an unknown word under ``oov="error"``…) is no interruption: it removes the ``.partial`` folder it made (or, resuming,
  the parts it added), so the corrected rerun starts clean. When all chunks are done the parts are concatenated into a temporary file that is renamed to
  ``OUTPUT`` (atomic finalisation), then the ``.partial`` folder is removed.
* **Shards**: ``shard=(i, n)`` predicts rows ``[⌊i·R/n⌋, ⌊(i+1)·R/n⌋)`` of the R input rows, so the outputs of shards
  0…n−1 concatenated in order equal the unsharded output (array jobs on any scheduler).
* **Bad input**: a missing/empty item raises :class:`~emoembed.errors.DataError` naming the file and its line
  (csv/tsv: the header is line 1, assuming no quoted line breaks; jsonl: line = row + 1; parquet: the row).
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from emoembed.coverage import UnknownContentError
from emoembed.errors import DataError, EmoembedError, OutputError
from emoembed.inputs import CONTENT_COLUMNS, head_lines, sniff_delimiter
from emoembed.io import atomic_write, atomic_write_json

INPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
OUTPUT_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".json")
DEFAULT_CHUNK_SIZE = 10_000
PARTIAL_SUFFIX = ".partial"
MANIFEST = "manifest.json"


@dataclass
class StreamResult:
    output: Path
    rows: int            # rows of this shard written to ``output``
    chunks: int          # chunks of this shard
    resumed_chunks: int  # chunks found done by an earlier run and not predicted again
    seconds: float


# ---------------------------------------------------------------------------------------------- input
def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 ≤ I < N; None → (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise EmoembedError(f"--shard must be I/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise EmoembedError(f"--shard {text}: need 0 ≤ I < N")
    return i, n


def _kind(path: Path, allowed: Sequence[str], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        suffix = ".jsonl"
    if suffix not in allowed:
        raise DataError(f"{path}: {what} must be one of {', '.join(allowed)} (got {path.suffix or 'no suffix'!r})")
    return suffix


def input_columns(path: Path) -> list[str]:
    """The column names of a csv/tsv/jsonl/parquet file (reads the header or the first line only)."""
    kind = _kind(path, INPUT_SUFFIXES, "--input")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if kind == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        if kind == ".jsonl":
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        if not isinstance(row, dict):
                            raise DataError(f"{path}, line 1: expected one JSON object per line")
                        return list(row)
            raise DataError(f"{path}: no rows")
        return [str(c).strip() for c in pd.read_csv(path, sep=csv_delimiter(path), nrows=0, encoding="utf-8-sig").columns]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (json.JSONDecodeError, pd.errors.ParserError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse: {exc}") from None


def _find(columns: Sequence[str], name: str) -> str | None:
    if name in columns:
        return name
    folded = {str(c).strip().casefold(): c for c in columns}
    return folded.get(name.strip().casefold())


def pick_column(columns: Sequence[str], column: str | None, source: Path | str) -> str:
    """The content column, by the rules of the in-memory ``predict`` (:mod:`emoembed.inputs`): ``column`` (matched
    case-insensitively), else the only column, else the first usual content-column name present."""
    if column:
        found = _find(columns, column)
        if found is None:
            raise DataError(f"{source}: no column {column!r} (named by --column; matched case-insensitively); "
                            f"columns: {list(columns)}")
        return found
    if len(columns) == 1:
        return columns[0]
    for name in CONTENT_COLUMNS:
        if (found := _find(columns, name)) is not None:
            return found
    raise DataError(f"{source}: which column holds the content? pass --column (columns: {list(columns)})")


def csv_delimiter(path: Path, sample_lines: int = 50) -> str:
    """The delimiter the in-memory reader would sniff (:func:`emoembed.inputs.sniff_delimiter`) from the first
    non-blank lines; ``.csv`` falls back to a comma."""
    suffix = path.suffix.lower()
    try:
        sample = head_lines(path, sample_lines)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    return sniff_delimiter(sample, suffix) or ("\t" if suffix == ".tsv" else ",")


def _raw_frames(path: Path, column: str, size: int, keep: Sequence[str] = ()) -> Iterator[pd.DataFrame]:
    """Consecutive blocks of at most ``size`` rows (one block in memory at a time): the content ``column`` first,
    then the ``keep`` columns, read as the in-memory ``predict`` reads them (csv/tsv cells as text, only an empty
    content cell missing; jsonl/parquet values with their types; a jsonl key absent on a line is None)."""
    kind = _kind(path, INPUT_SUFFIXES, "--input")
    wanted = [column, *keep]
    try:
        if kind == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=size, columns=wanted):
                yield batch.to_pandas(integer_object_nulls=True)
        elif kind == ".jsonl":
            with pd.read_json(path, lines=True, chunksize=size, dtype=False) as reader:
                for frame in reader:
                    if column not in frame.columns:
                        raise DataError(f"{path}: a line lacks the column {column!r}")
                    frame = frame.reindex(columns=wanted).astype(object)
                    yield frame.where(frame.notna(), None).reset_index(drop=True)
        else:
            # cells stay text: only an empty cell of the content column is missing ("None", "NA", "null"… are texts
            # like any other; an empty cell of another column stays an empty text, as in memory)
            raw = {str(c).strip(): c for c in pd.read_csv(path, sep=csv_delimiter(path), nrows=0,
                                                           encoding="utf-8-sig").columns}
            with pd.read_csv(path, sep=csv_delimiter(path), usecols=lambda c: str(c).strip() in wanted, dtype=str,
                             keep_default_na=False, na_values={raw.get(column, column): [""]}, chunksize=size,
                             encoding="utf-8-sig") as reader:
                for frame in reader:
                    frame.columns = [str(c).strip() for c in frame.columns]
                    yield frame[wanted].reset_index(drop=True)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse: {exc}") from None


def _raw_chunks(path: Path, column: str, size: int) -> Iterator[list[Any]]:
    """The values of ``column`` in consecutive lists of at most ``size`` rows (one list in memory at a time)."""
    for frame in _raw_frames(path, column, size):
        yield frame[column].tolist()


def count_rows(path: Path, column: str, size: int = 100_000) -> int:
    """Rows in the input (parquet: from the footer; csv/jsonl: one pass over the content column)."""
    if _kind(path, INPUT_SUFFIXES, "--input") == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return sum(len(c) for c in _raw_chunks(path, column, size))


def count_rows_and_kinds(path: Path, column: str, keep: Sequence[str], size: int = 100_000
                         ) -> tuple[int, dict[str, str]]:
    """:func:`count_rows`, and for a csv/tsv the kind of each ``keep`` column over the whole file
    (:func:`emoembed.tables.text_column_kind`: plain-number columns are written as numbers, as in memory) in the same
    pass; typed inputs (jsonl, parquet) keep their own types (no kinds)."""
    from emoembed.tables import text_column_kind

    if not keep or _kind(path, INPUT_SUFFIXES, "--input") not in (".csv", ".tsv"):
        return count_rows(path, column, size), {}
    rows, kinds = 0, {c: "empty" for c in keep}
    for frame in _raw_frames(path, column, size, keep):
        rows += len(frame)
        for c in keep:
            kinds[c] = text_column_kind(frame[c], kinds[c])
    return rows, kinds


def jsonl_columns(path: Path, size: int = 100_000) -> list[str]:
    """Every key of a JSON Lines file, in order of first appearance (one pass; the in-memory reader's columns)."""
    seen: dict[str, None] = {}
    try:
        with pd.read_json(path, lines=True, chunksize=size, dtype=False) as reader:
            for frame in reader:
                seen.update(dict.fromkeys(str(c) for c in frame.columns))
    except ValueError as exc:
        raise DataError(f"{path}: cannot parse: {exc}") from None
    return list(seen)


def iter_frames(path: Path, column: str, chunk_size: int, start: int = 0, stop: int | None = None,
                keep: Sequence[str] = ()) -> Iterator[tuple[int, int, pd.DataFrame]]:
    """(chunk index, first row, block) for rows ``[start, stop)`` in blocks of ``chunk_size`` rows (columns:
    ``column``, then ``keep``); chunk 0 starts at ``start`` whatever the reader's own block boundaries are."""
    buf: list[pd.DataFrame] = []
    held = 0  # rows in buf
    buf_start = start  # input row of buf's first row
    row = 0  # input row of the next value read
    index = 0
    for frame in _raw_frames(path, column, chunk_size, keep):
        lo, hi = row, row + len(frame)
        row = hi
        if hi <= start:
            continue
        if stop is not None and lo >= stop:
            break
        a = max(start - lo, 0)
        b = len(frame) if stop is None else min(len(frame), stop - lo)
        buf.append(frame.iloc[a:b])
        held += b - a
        while held >= chunk_size:
            block = pd.concat(buf, ignore_index=True) if len(buf) > 1 else buf[0].reset_index(drop=True)
            yield index, buf_start, block.iloc[:chunk_size].reset_index(drop=True)
            buf, held = [block.iloc[chunk_size:]], held - chunk_size
            buf_start += chunk_size
            index += 1
    if held:
        yield index, buf_start, pd.concat(buf, ignore_index=True)


def iter_chunks(path: Path, column: str, chunk_size: int, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, int, list[Any]]]:
    """(chunk index, first row, items) for rows ``[start, stop)`` in chunks of ``chunk_size`` rows (the content
    column of :func:`iter_frames`)."""
    for index, first, block in iter_frames(path, column, chunk_size, start, stop):
        yield index, first, block[column].tolist()


def line_of(path: Path, row: int) -> str:
    """Where input row ``row`` (0-based) is, in the words an editor uses."""
    kind = _kind(path, INPUT_SUFFIXES, "--input")
    if kind == ".parquet":
        return f"row {row}"
    return f"line {row + (2 if kind in ('.csv', '.tsv') else 1)}"


def chunk_rows(path: Path, first_row: int, n: int) -> list[str]:
    """How errors name the ``n`` input rows from ``first_row`` (0-based) on: ``in.csv, line 7``."""
    return [f"{path}, {line_of(path, first_row + i)}" for i in range(n)]




# ---------------------------------------------------------------------------------------------- output
def _model_fingerprint(model: Any) -> str:
    from emoembed.codec import tensors_fingerprint

    cfg = json.dumps(model.config(), sort_keys=True, default=str)
    backend = json.dumps(getattr(model, "backend_info", None), sort_keys=True, default=str)
    h = hashlib.sha256((cfg + backend).encode())
    h.update(tensors_fingerprint(model.state_dict()).encode())
    return h.hexdigest()


def _manifest(model: Any, path: Path, column: str, fmt: str, scale: Any, chunk_size: int, shard: tuple[int, int],
              start: int, stop: int, total: int, keep: Sequence[str]) -> dict[str, Any]:
    st = path.stat()
    return {"input": str(path.resolve()), "input_size": st.st_size, "input_mtime_ns": st.st_mtime_ns,
            "column": column, "keep_columns": list(keep), "model": _model_fingerprint(model), "format": fmt,
            "scale": list(scale) if isinstance(scale, (tuple, list)) else scale, "chunk_size": chunk_size,
            "shard": list(shard), "rows": [start, stop], "input_rows": total}


def _part_path(parts: Path, index: int) -> Path:
    return parts / f"part-{index:08d}.parquet"


def _write_part(frame: pd.DataFrame, path: Path, source: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # e.g. a jsonl field holding numbers and texts
        raise DataError(f"{source}: a kept column cannot be written as one table column ({exc}); make its values one "
                        f"type, or leave it out with --keep-columns") from None
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _common_schema(parts: Path, n_chunks: int, source: Path) -> Any:
    """One schema for all parts: a column that is all-missing in one chunk (null type) takes its type from the
    others; integers and floats meet as floats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(_part_path(parts, i)) for i in range(n_chunks)]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{source}: a kept column holds values of different types in different rows ({exc}); make "
                        f"them one type, or leave the column out with --keep-columns") from None


def _finalise(parts: Path, n_chunks: int, output: Path, kept: Sequence[str] = (), source: Path | None = None) -> int:
    """Concatenate the parts into ``output`` through a temporary file (renamed into place); returns the rows."""
    import pyarrow.parquet as pq

    from emoembed.tables import json_rows, output_kind, write_csv, write_json_rows

    kind = output_kind(output)
    schema = _common_schema(parts, n_chunks, source or output)
    rows = 0

    def tables():
        for i in range(n_chunks):
            yield pq.read_table(_part_path(parts, i)).select(schema.names).cast(schema)

    def frames():
        for table in tables():
            yield table.to_pandas(integer_object_nulls=True)

    def write(tmp: Path) -> None:
        nonlocal rows
        if kind == ".parquet":
            with pq.ParquetWriter(tmp, schema) as writer:
                for table in tables():
                    writer.write_table(table)
                    rows += table.num_rows
        elif kind in (".jsonl", ".json"):
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("" if kind == ".jsonl" else "[\n")
                for frame in frames():
                    write_json_rows(json_rows(frame), f, lines=kind == ".jsonl", first=rows == 0)
                    rows += len(frame)
                f.write("" if kind == ".jsonl" else "\n]\n")
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                for frame in frames():
                    write_csv(frame, f, sep="\t" if kind == ".tsv" else ",", header=rows == 0, exact=kept)
                    rows += len(frame)

    atomic_write(output, write)
    return rows


def output_columns(model: Any, fmt: str, coverage_column: bool = True) -> list[str]:
    """The columns ``predict`` writes for ``model`` in ``fmt``: the item (named by the modality), one per variable,
    ``label`` for class formats, ``coverage`` when asked for and the encoder has the notion."""
    f = model.format(fmt)
    cov = coverage_column and getattr(model.encoder, "coverage", None) is not None
    return [model.modality, *f.variables, *(["label"] if f.kind != "regression" else []), *(["coverage"] if cov else [])]


# ---------------------------------------------------------------------------------------------- the loop
def predict_file(model: Any, input: str | Path, output: str | Path, format: str, column: str | None = None,
                 scale: str | Sequence[float] = "normalized", batch_size: int = 64, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 shard: tuple[int, int] = (0, 1), fresh: bool = False, progress: bool = True,
                 predict_kwargs: dict[str, Any] | None = None, keep_columns: str | Sequence[str] = "all",
                 column_names: dict[str, str] | None = None) -> StreamResult:
    """Predict ``format`` for every row of ``input`` and write ``output`` chunk by chunk (see the module doc).

    ``model``: an :class:`~emoembed.model.EmotionModel` (torch or ONNX backend); ``predict_kwargs`` go to its
    ``predict`` (e.g. ``oov``, ``coverage_column``) and into the manifest. ``keep_columns``: which of the input's
    other columns the output carries before the item and predictions: ``"all"`` (default), ``"none"`` or names
    (:func:`emoembed.tables.kept_columns`); ``column_names``: {input column: output name} (``--columns id=2``;
    matched case-insensitively; the content column is always named by the modality). Returns a :class:`StreamResult`.
    Raises :class:`DataError` for unreadable input, a bad row (file and line named), a kept input column named like
    an output column, or partial results of a run with other settings (unless ``fresh``), :class:`EmoembedError`
    for a bad shard or chunk size. After an input error (a :class:`DataError` or other :class:`EmoembedError`
    that is not an :class:`OutputError`) no ``output`` and no new ``.partial`` folder is left behind (the parts of
    an earlier interrupted run with the same settings stay); an interruption (KeyboardInterrupt, a kill) keeps the
    finished parts for the rerun to resume."""
    from emoembed.tables import check_no_clash, kept_columns, output_kind

    t0 = time.perf_counter()
    input, output = Path(input), Path(output)
    output_kind(output)
    if chunk_size < 1:
        raise EmoembedError(f"--chunk-size must be ≥ 1, got {chunk_size}")
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise EmoembedError(f"shard {i}/{n}: need 0 ≤ I < N")
    if output.resolve() == input.resolve():
        raise EmoembedError(f"--output {output} is the input file")
    model.format(format)
    columns = input_columns(input)
    if len(columns) == 1 and _kind(input, INPUT_SUFFIXES, "--input") in (".csv", ".tsv"):
        from emoembed.inputs import check_one_column_file  # a headerless list or a blank line: as predict in memory

        check_one_column_file(input, [column] if column else ())
    col = pick_column(columns, column, input)
    extra = dict(predict_kwargs or {})
    if _kind(input, INPUT_SUFFIXES, "--input") == ".jsonl" and len(columns) > 1:
        columns = jsonl_columns(input)  # a key first seen after line 1 is a column too
    renamed = {}
    for given, name in (column_names or {}).items():
        found = _find(columns, given)
        if found is None:
            raise DataError(f"{input}: no column {given!r} (named by --columns {name}=…; matched case-insensitively); "
                            f"columns: {list(columns)}")
        if found == col:
            raise DataError(f"--columns {name}={given}: column {found!r} holds the content, which the output calls "
                            f"{model.modality!r}; an output name is for one of the input's other columns (an id …)")
        renamed[found] = name
    keep = kept_columns(columns, col, keep_columns, input, renamed)
    dropped = [c for c in renamed if c not in keep]
    if dropped:
        raise DataError(f"--columns {renamed[dropped[0]]}={dropped[0]} names a column for the output, but --keep-columns "
                        f"leaves it out: keep it (--keep-columns …,{renamed[dropped[0]]}) or leave out its name")
    outputs = output_columns(model, format, bool(extra.get("coverage_column")))
    check_no_clash([renamed.get(c, c) for c in keep], outputs, input)
    total, kinds = count_rows_and_kinds(input, col, keep)
    if total == 0:
        raise DataError(f"{input}: no rows")
    start, stop = (i * total) // n, ((i + 1) * total) // n
    n_chunks = math.ceil((stop - start) / chunk_size) if stop > start else 0
    parts = output.with_name(output.name + PARTIAL_SUFFIX)
    manifest = _manifest(model, input, col, format, scale, chunk_size, (i, n), start, stop, total, keep)
    if renamed:
        manifest["column_names"] = renamed
    manifest["predict_kwargs"] = json.loads(json.dumps(extra, sort_keys=True, default=str))
    if parts.exists():
        old = _read_manifest(parts)
        if fresh or old is None:
            shutil.rmtree(parts)
        elif old != manifest:
            changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise DataError(f"{parts} holds the finished chunks of an earlier interrupted run writing {output.name}, "
                            f"but with other settings ({', '.join(changed)} differ), so they cannot be resumed here: "
                            f"rerun exactly that command to resume it, or add --fresh (fresh=True) to this command to "
                            f"discard the folder and start over")
    created = not parts.exists()  # a folder this run makes is removed again if the input turns out to be bad
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_json(manifest, parts / MANIFEST)
    done = {k for k in range(n_chunks) if _part_path(parts, k).exists()}
    resumed = len(done)
    try:
        rows = _predict_chunks(model, input, output, parts, format, col, keep, kinds, renamed, outputs, scale,
                               batch_size, chunk_size, (i, n), start, stop, n_chunks, done, extra, progress)
    except EmoembedError as exc:
        if not isinstance(exc, OutputError):  # bad input, not an interruption: leave nothing half-written
            _discard_new_parts(parts, created, done)
        raise
    shutil.rmtree(parts, ignore_errors=True)
    return StreamResult(output, rows, n_chunks, resumed, time.perf_counter() - t0)


def _discard_new_parts(parts: Path, created: bool, done: set[int]) -> None:
    """After an input error: remove ``parts`` if this run made it, else only the parts this run added (the parts
    of the earlier interrupted run with the same settings stay, to resume once the input is fixed)."""
    if created:
        shutil.rmtree(parts, ignore_errors=True)
        return
    for part in parts.glob("part-*.parquet"):
        try:
            index = int(part.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        if index not in done:
            part.unlink(missing_ok=True)


def _predict_chunks(model: Any, input: Path, output: Path, parts: Path, format: str, col: str, keep: Sequence[str],
                    kinds: dict[str, str], renamed: dict[str, str], outputs: Sequence[str], scale: Any,
                    batch_size: int, chunk_size: int, shard: tuple[int, int], start: int, stop: int, n_chunks: int,
                    done: set[int], extra: dict[str, Any], progress: bool) -> int:
    """Predict and write every chunk not in ``done`` as a part in ``parts``, then finalise ``output``; the rows."""
    from tqdm.auto import tqdm

    from emoembed.tables import keep_input_columns, typed_text_columns

    i, n = shard
    bar = tqdm(total=stop - start, unit="row", desc=f"predict {input.name}" + (f" [shard {i}/{n}]" if n > 1 else ""),
               disable=not progress, file=sys.stderr, smoothing=0.1, dynamic_ncols=True)
    try:
        bar.update(sum(min(chunk_size, stop - start - k * chunk_size) for k in done))
        for index, first, block in iter_frames(input, col, chunk_size, start, stop, keep):
            if index in done:
                continue
            items = block[col].tolist()
            for k, v in enumerate(items):  # as the in-memory reader (emoembed.inputs.content_items) says it
                if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
                    raise DataError(f"{input}, {line_of(input, first + k)}, column {col!r}: empty cell")
            if model.modality == "image":  # relative paths: relative to the input file's folder
                from emoembed.data.images import resolve_table_image

                items = [resolve_table_image(x, input) for x in items]
            try:
                frame = model.predict(items, format, scale=scale, batch_size=batch_size,  # errors name the file line
                                      rows=chunk_rows(input, first, len(items)), **extra).reset_index()
            except UnknownContentError as exc:  # oov="error": the count covers the rest of the file (of this shard)
                raise _unknown_in_rest(exc, model, input, col, chunk_size, index, start, stop) from None
            _write_part(keep_input_columns(frame, typed_text_columns(block[keep], kinds).rename(columns=renamed)),
                        _part_path(parts, index), input)
            bar.update(len(items))
    finally:
        bar.close()
    missing = [k for k in range(n_chunks) if not _part_path(parts, k).exists()]
    if missing:  # the input shrank while we read it
        raise DataError(f"{input}: changed while being read (chunks {missing[:3]} missing); rerun with --fresh")
    named = [renamed.get(c, c) for c in keep]
    return (_finalise(parts, n_chunks, output, named, input) if n_chunks
            else _write_empty(output, named, outputs, model.modality))


def _unknown_in_rest(exc: UnknownContentError, model: Any, input: Path, col: str, chunk_size: int, index: int,
                     start: int, stop: int) -> UnknownContentError:
    """``exc`` (the first chunk with unknown items, ``index``) with the unknown items of the later chunks added, so
    that the error says how many of the rows ``[start, stop)`` are unknown, as the in-memory ``predict`` does."""
    from emoembed.coverage import item_coverage, unknown_rows

    more: list[tuple[str, str]] = []
    for later, first, block in iter_frames(input, col, chunk_size, start, stop, []):
        if later <= index:
            continue
        rows = chunk_rows(input, first, len(block))
        cells = [(str(v).strip(), r) for v, r in zip(block[col].tolist(), rows)  # an empty cell is another error
                 if not (v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip())]
        cov = item_coverage(model.encoder, [v for v, _ in cells]) if cells else None
        if cov is not None:
            more += unknown_rows([v for v, _ in cells], cov <= 0.0, [r for _, r in cells])
    return exc.with_more(more, stop - start)


def _write_empty(output: Path, keep: Sequence[str], outputs: Sequence[str], modality: str) -> int:
    """An empty shard (more shards than rows) still writes its (empty) output with the right columns."""
    from emoembed.tables import write_table

    text = {*keep, modality, "label"}
    frame = pd.DataFrame({c: pd.Series([], dtype="object" if c in text else "float32") for c in [*keep, *outputs]})
    write_table(frame, output)
    return 0


def _read_manifest(parts: Path) -> dict[str, Any] | None:
    try:
        return json.loads((parts / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None

"""Errors that reach the user. Each names the file, row or field at fault; the CLI prints them without a
traceback and exits with status 2."""
from __future__ import annotations


class EmoembedError(Exception):
    """Base class of every error emoembed raises on bad input."""


class ConfigError(EmoembedError):
    """A YAML file (format, equivalence, dataset card, recipe) is invalid."""


class DataError(EmoembedError):
    """A dataset file is missing, corrupt, or holds values outside its declared schema."""


class MissingDataError(DataError):
    """A dataset is not present; the message says where to get it and where to put it."""


class CheckpointError(EmoembedError):
    """A model directory is missing files, comes from another version, or does not match its config."""


class OutputError(EmoembedError):
    """An output file or run folder cannot be written (unwritable folder, a folder where a file is expected,
    a run folder another run holds)."""


class EmoembedWarning(UserWarning):
    """Something about the input the user should know (an assumed scale, unknown words…); the CLI prints each
    as one ``warning:`` line on stderr."""


def row_ref(position: int, where: str = "input", rows=None) -> str:
    """How an error names the item at ``position`` (0-based) of a list: ``rows[position]`` when the caller knows
    where it came from (``ratings.csv, line 7``: the file's line, header = line 1; ``index label 'b'`` for a pandas
    Series), else ``WHERE, row index 4 (0-based)`` — never a bare ``row 4``, which reads as a line number."""
    if rows is not None and position < len(rows) and rows[position]:
        return str(rows[position])
    return f"{where + ', ' if where else ''}row index {position} (0-based)"


def index_row_names(index) -> list[str]:
    """Row names for the items of a pandas Series/DataFrame with ``index``: ``line N`` / ``row N`` for the tables
    emoembed reads itself (an index named ``line`` or ``row``), else ``index label L`` (the user's own index)."""
    name = getattr(index, "name", None)
    if name in ("line", "row"):
        return [f"{name} {label}" for label in index]
    return [f"index label {label!r}" for label in index]

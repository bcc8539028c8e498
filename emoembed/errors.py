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

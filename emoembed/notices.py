"""How the command line shows :class:`~emoembed.errors.EmoembedWarning` s and notes: one line each on stderr,
``emoembed VERB: warning: …`` / ``emoembed VERB: note: …``, never on stdout (which may hold a table)."""
from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

from emoembed.errors import EmoembedWarning


def note(verb: str, text: str) -> None:
    """One ``note:`` line on stderr (facts the user should see, e.g. the scale assumed for the input)."""
    print(f"emoembed {verb}: note: {text}", file=sys.stderr)


@contextlib.contextmanager
def user_warnings_on_stderr(verb: str) -> Iterator[None]:
    """Within the block, every EmoembedWarning is printed (each time it is raised) as one line on stderr."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 — warnings' signature
        if isinstance(category, type) and issubclass(category, EmoembedWarning):
            print(f"emoembed {verb}: warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", EmoembedWarning)
        warnings.showwarning = show
        yield

"""The ``emoembed`` command: ``main`` parses the verb and runs it. One module per verb group registers its verbs
(:mod:`.data`, :mod:`.train`, :mod:`.pretrain`, :mod:`.predict`, :mod:`.plot`, :mod:`.index`, :mod:`.listing`); shared helpers are in
:mod:`.common`. Errors from bad input are printed as one line (no traceback) and exit with status 2.
Library modules never import from here."""
from __future__ import annotations

import argparse
import os
import re
import sys

from emoembed.cli.common import VERBS
from emoembed.errors import EmoembedError
from emoembed.threads import threads_for
from emoembed.notices import user_warnings_on_stderr


def build_parser() -> argparse.ArgumentParser:
    from emoembed import __version__

    _register_verbs()  # idempotent: the verb modules register on first import
    parser = argparse.ArgumentParser(prog="emoembed", description="Emotion embeddings: one vector space for every emotion label format.")
    parser.add_argument("--version", action="version", version=f"emoembed {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (add_args, _run, help_text) in VERBS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


NUMBER_LIST_OPTIONS = ("--values", "--input-scale", "--output-scale", "--scale")


def _attach_negative_lists(argv: list[str]) -> list[str]:
    """``--values -0.8,0.5`` → ``--values=-0.8,0.5``: argparse would read a value starting with '-' as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in NUMBER_LIST_OPTIONS and i + 1 < len(argv) and re.match(r"-\.?\d", argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    _register_verbs()
    args = build_parser().parse_args(_attach_negative_lists(list(sys.argv[1:] if argv is None else argv)))
    try:
        with user_warnings_on_stderr(args.verb):
            threads_for(args)  # verbs with --threads: torch's thread count (see emoembed.threads)
            status = VERBS[args.verb][1](args)
            sys.stdout.flush()  # a closed pipe shows up here, inside the handler, not at interpreter exit
            return status
    except BrokenPipeError:
        return _stdout_closed()
    except EmoembedError as exc:
        print(f"emoembed {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


SIGPIPE_STATUS = 128 + 13  # what a shell reports for a process ended by SIGPIPE (`yes | head -1`)


def _stdout_closed() -> int:
    """The reader of our stdout went away (``emoembed predict … | head -1``): stop quietly, as Unix tools do.
    The Python docs' recipe (signal module, "Note on SIGPIPE"): point stdout at devnull so the interpreter's final
    flush of the unwritten buffer does not raise again, and exit 141 (128 + SIGPIPE) without a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to redirect
        pass
    return SIGPIPE_STATUS


def _register_verbs() -> None:
    """Each verb module registers its verbs in :data:`~emoembed.cli.common.VERBS` on import (in this order on
    ``--help``); the modules import their heavy dependencies only when a verb runs."""
    from emoembed.cli import data, train, pretrain, predict, inference, plot, index, listing, pretrained  # noqa: F401  (this order on --help)

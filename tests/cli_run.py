"""Helper of the CLI tests: run ``emoembed predict`` in-process and return what a shell would see."""
from __future__ import annotations

from emoembed.cli import main


def predict(args, capsys) -> tuple[int, str, str]:
    """``emoembed predict ARGS`` → (exit status, stdout, stderr); ``args`` may hold paths (converted with str)."""
    rc = main(["predict", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err

"""What the verb modules share: the verb registry (each module registers its verbs on import), table printing,
option parsing helpers, and the loading steps several verbs take."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from emoembed.errors import EmoembedError

AddArgs = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
VERBS: dict[str, tuple[AddArgs, Run, str]] = {}


def verb(name: str, help: str):
    """Register ``(add_args, run)`` as the verb ``name``: ``emoembed NAME …`` parses with ``add_args`` and calls
    ``run(args)`` (its return value is the exit status)."""
    def deco(pair):
        add_args, run = pair
        VERBS[name] = (add_args, run, help)
        return pair

    return deco


def short(text: str, n: int) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def print_table(rows: list[dict], cols: list[str]) -> None:
    """``rows`` as a plain-text table with a header and aligned columns."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def terminal_width(default: int = 80) -> int:
    """Columns of the terminal (``COLUMNS`` wins; ``default`` when the output is not a terminal)."""
    import shutil

    return max(40, shutil.get_terminal_size((default, 24)).columns)


def print_records(records: list[tuple[str, list[tuple[str, list[str]]]]], width: int | None = None) -> None:
    """One block per record, readable at any terminal width: a title line, then ``label  value`` lines whose values
    wrap (at ``width``, default the terminal's) under themselves; a field with several values (a list) puts each on
    a line of its own. ``records``: ``[(title, [(label, [value, …]), …]), …]``. Nothing is cut off."""
    import textwrap

    width = width or terminal_width()
    for i, (title, fields) in enumerate(records):
        if i:
            print()
        print(title)
        pad = max((len(label) for label, _ in fields), default=0) + 4
        for label, values in fields:
            first = True
            for value in [v for v in values if str(v).strip()] or ["-"]:
                lines = textwrap.wrap(str(value), max(20, width - pad), break_on_hyphens=False) or [""]
                for line in lines:
                    print(("  " + label.ljust(pad - 2) if first else " " * pad) + line)
                    first = False


def parse_scale(text: str | None, name: str) -> tuple[float, float] | None:
    """``"1,9"`` → (1.0, 9.0); None stays None; an error naming ``--name`` otherwise."""
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise EmoembedError(f"--{name} must be two numbers 'low,high', got {text!r}") from None
    if not lo < hi:
        raise EmoembedError(f"--{name}: low must be below high, got {text!r}")
    return lo, hi


def with_codec_option(model, codec_dir: str | None):
    """``model`` decoding with the codec in ``codec_dir`` (an extension of its own), or unchanged."""
    if not codec_dir:
        return model
    from emoembed.codec import EmotionCodec

    return model.with_codec(EmotionCodec.from_pretrained(codec_dir))


def test_table(rows: dict[str, dict]) -> str:
    """Markdown: one line per dataset of an evaluation (``EmotionModel.evaluate`` rows)."""
    lines = ["| dataset | format | n | metric | score | per variable |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        per = " ".join(_per_variable_cell(v, m) for v, m in r.get("per_variable", {}).items())
        zs = (" (partly zero-shot)" if "is partly zero-shot" in (r.get("zero_shot_note") or "")
              else " (zero-shot)" if r.get("zero_shot") else "")
        score = r["undefined"] if r.get("undefined") else f"{r['primary']:.3f}"
        lines.append(f"| {name} | {r.get('format', '')}{zs} | {r['n']} | {r['metric']} | {score} | {per} |")
    return "\n".join(lines)


def _per_variable_cell(name: str, m: dict) -> str:
    value = m.get("pearson", m.get("f1", float("nan")))
    if value != value and "mae" in m:  # Pearson r undefined (too few items): the mean absolute error still is
        return f"{name[:4]} MAE {m['mae']:.3f}"
    return f"{name[:4]} {value:.3f}"

"""Rating scales of label inputs: a scale is never assumed silently.

Label values given to the codec (``EmotionCodec.convert``, ``emoembed predict --source-format``) are read on the
source format's *normalised* range (``[-1, 1]`` for bipolar dimensions such as VAD, ``[0, 1]`` for intensities and
class indicators) unless ``input_scale=(low, high)`` names the scale they were rated on. This module

* rescales values from a rating scale to the normalised range (:func:`to_normalised`),
* refuses values outside the scale in use with an :class:`InputScaleError` naming the row, the column and the
  value, and — when a few cells are off while the rest fit — those cells as likely typos, or — when the values fit
  another common rating scale — the ``--input-scale`` that would read them (:func:`check_scale`),
* warns (:class:`ScaleWarning`, via :mod:`warnings`) when every value sits inside a smaller common scale that lies
  within the one in use, e.g. NRC-VAD's 0–1 values read as the [−1, 1] VAD range, or a 1–5 table given
  ``--input-scale 1,9`` (:func:`suspicious_scale`);
* says which scale it assumed when none was given (:func:`assumed_scale_text`): ``emoembed predict`` prints it as a
  ``note:`` on stderr, :meth:`EmotionCodec.convert` issues it as an :class:`AssumedScaleWarning` (Python's
  default filter shows it once per calling line; ``input_scale=`` — the normalised range itself included, e.g.
  ``input_scale=(-1, 1)`` for VAD — or ``warnings.filterwarnings("ignore", category=AssumedScaleWarning)`` silences
  it).

The common scales are those of the affective norms and annotation schemes emoembed reads (:data:`COMMON_SCALES`):
−1..1, 0..1, 1–5, 0–4, 1–7, −3..3, 1–9, 0–10, 1–10, 0–100 and −100..100.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from emoembed.errors import DataError, EmoembedWarning, row_ref

COMMON_SCALES: tuple[tuple[float, float], ...] = (
    (-1.0, 1.0), (0.0, 1.0), (1.0, 5.0), (0.0, 4.0), (1.0, 7.0), (-3.0, 3.0), (1.0, 9.0), (0.0, 10.0), (1.0, 10.0),
    (0.0, 100.0), (-100.0, 100.0),
)


class InputScaleError(DataError):
    """A label value lies outside the rating scale it is read on."""


class ScaleWarning(EmoembedWarning):
    """Label values sit suspiciously inside another common rating scale."""


class AssumedScaleWarning(EmoembedWarning):
    """Rating values were converted with no ``input_scale`` given, so they were read on the source format's
    normalised range (the Python counterpart of ``emoembed predict``'s ``note: no --input-scale given: …``). Pass
    ``input_scale=(low, high)`` to name the scale — ``input_scale=fmt.range`` when the values really are normalised."""


def assumed_scale_text(fmt_name: str, fmt_range: Sequence[float], cli: bool) -> str:
    """What is said when rating values are read with no input scale given: on ``fmt_name``'s normalised range
    ``fmt_range``. ``cli``: in the command line's words (``--input-scale LOW,HIGH``), else the Python API's
    (``input_scale=(low, high)``)."""
    lo, hi = (float(v) for v in fmt_range)
    read = f"reading {fmt_name} values on its normalised range [{lo:g}, {hi:g}]"
    if cli:
        return f"no --input-scale given: {read}; pass --input-scale LOW,HIGH if they are ratings on another scale"
    return (f"no input_scale given: {read}; pass input_scale=(low, high) if they are ratings on another scale, or "
            f"input_scale=({lo:g}, {hi:g}) to say they are normalised")


def scale_text(scale: Sequence[float]) -> str:
    lo, hi = (float(v) for v in scale)
    return f"{lo:g},{hi:g}"


def fitting_scale(values: np.ndarray, exclude: Sequence[float] | None = None) -> tuple[float, float] | None:
    """The narrowest common scale holding every finite value of ``values`` (ties: the one listed first), other
    than ``exclude``; None when none does."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    best = None
    for s in COMMON_SCALES:
        if exclude is not None and tuple(map(float, exclude)) == s:
            continue
        if s[0] <= lo and hi <= s[1] and (best is None or s[1] - s[0] < best[1] - best[0]):
            best = s
    return best


TYPO_SHARE = 0.1  # outside cells are typos when at most this share of the values (and at least one) lie outside
SHOWN_CELLS = 5    # how many of them an error lists


def few_outside(outside: np.ndarray) -> bool:
    """Whether the cells marked in ``outside`` (N, k) are *a few entries off* rather than a table on another scale:
    at most :data:`TYPO_SHARE` of the values (at least one of them) and fewer than those inside. One cell of 55 in a
    VAD table on [−1, 1], a 0 or a 10 in a 1–9 table: typos. A 1–5 table read on [−1, 1] has (nearly) every value
    outside; a 1–9 table given ``--input-scale 1,5`` a third or more."""
    n_out, n = int(outside.sum()), int(outside.size)
    return 0 < n_out <= max(1, int(TYPO_SHARE * n)) and n_out < n - n_out


def _cell_refs(x: np.ndarray, cells: np.ndarray, variables: Sequence[str], rows: Sequence[str] | None) -> str:
    """``line 4, column 'dominance' = 55; …`` for the first :data:`SHOWN_CELLS` of ``cells`` (row-major), and how
    many more there are. A file name that every row reference starts with (``ratings.csv, line 4``) is said once by
    the error already, and left out here."""
    refs = [(row_ref(int(r), "", rows), variables[int(c)], x[int(r), int(c)]) for r, c in cells[:SHOWN_CELLS]]
    heads = {ref.rsplit(", ", 1)[0] for ref, _, _ in refs if ", " in ref}
    if len(heads) == 1 and all(", " in ref for ref, _, _ in refs):
        refs = [(ref.rsplit(", ", 1)[1], var, v) for ref, var, v in refs]
    text = "; ".join(f"{ref}, column {var!r} = {v:g}" for ref, var, v in refs)
    return text + (f"; and {len(cells) - SHOWN_CELLS} more" if len(cells) > SHOWN_CELLS else "")


def check_scale(x: np.ndarray, variables: Sequence[str], scale: Sequence[float], fmt_name: str,
                given: bool, rows: Sequence[str] | None = None) -> None:
    """Raise :class:`InputScaleError` for the first value of ``x`` (N, k) outside ``scale``, naming its row, column
    and value, then saying what the values outside suggest:

    * **a few cells off** (:func:`few_outside`: at most a tenth of the values, the rest inside the scale): they look
      like typos or out-of-range entries; up to :data:`SHOWN_CELLS` are listed (``line 4, column 'dominance' =
      55``). No scale is proposed — one inferred from an outlier (a VAD table with one 55 "fits −100..100") would
      misread every other value;
    * **a table on another scale** (more are off): the narrowest common scale (:data:`COMMON_SCALES`) that holds the
      values outside the scale in use — ``--input-scale 1,9`` for Warriner-style ratings read on [−1, 1] — and any
      cell that lies outside that scale too (a 0 in a 1–9 table), as a likely typo, naming the wider scale that
      would hold it too (0–10); when a scale starting at 0 holds every value and is at most one point wider (0–4
      against 1–5, 0–10 against 1–10), the table's zeros are ratings and that scale is proposed;
    * **columns on different scales** (some columns wholly inside the scale in use, others mostly outside): which
      are which — one ``--input-scale`` cannot read both.

    ``given``: whether the user named the scale (``--input-scale``) or it is the format's normalised range. ``rows``
    name the rows (``line 7`` for a file's line, ``index label 'b'`` for a DataFrame's index, see
    :func:`emoembed.errors.index_row_names`); without them a row is named by its 0-based position,
    ``row index 4 (0-based)``."""
    lo, hi = (float(v) for v in scale)
    outside = (x < lo) | (x > hi)
    if not outside.any():
        return
    cells = np.argwhere(outside)
    r, c = (int(v) for v in cells[0])
    where = f"{row_ref(r, '', rows)}, column {variables[c]!r}: {x[r, c]:g}"
    what = (f"the input scale [{lo:g}, {hi:g}]" if given else f"{fmt_name}'s normalised range [{lo:g}, {hi:g}], which "
            f"is what values are read on when no --input-scale is given")
    if few_outside(outside):
        n_out = len(cells)
        hint = (f"{n_out} of {outside.size} values lie{'s' if n_out == 1 else ''} outside it while the others fit it, "
                f"so {'it looks like a typo or an out-of-range entry' if n_out == 1 else 'they look like typos or out-of-range entries'}: "
                f"{_cell_refs(x, cells, variables, rows)}. Correct or remove {'it' if n_out == 1 else 'them'}"
                + (" (if the table was rated on a wider scale, pass that as --input-scale LOW,HIGH)" if given else
                   " (if the whole table was rated on another scale, pass it as --input-scale LOW,HIGH)"))
        raise InputScaleError(f"{where} is outside {what}; {hint}")
    fit = fitting_scale(x[outside])
    off_mask = ((x < fit[0]) | (x > fit[1])) if fit is not None else outside
    whole = fitting_scale(x)  # the narrowest common scale holding every value, the in-range ones too
    alternative = None
    if fit is not None and whole is not None and whole != fit and off_mask.any():
        if whole[1] - whole[0] <= fit[1] - fit[0] + 1:  # 0–4 vs 1–5, 0–10 vs 1–10: the table's low values decide
            fit, off_mask = whole, np.zeros_like(outside)
        elif whole[1] - whole[0] <= 1.5 * (fit[1] - fit[0]):  # 0–10 vs 1–9 with a 0: a typo, or the wider scale
            alternative = whole
    if off_mask.any() and not few_outside(off_mask):  # no one scale holds them: columns on different scales?
        cols_out = [j for j in range(x.shape[1]) if outside[:, j].mean() > 0.5]
        cols_in = [j for j in range(x.shape[1]) if not outside[:, j].any()]
        if cols_out and cols_in:
            vals = x[:, cols_out]
            own = fitting_scale(vals)
            raise InputScaleError(
                f"{where} is outside {what}; column(s) {', '.join(repr(variables[j]) for j in cols_out)} hold values "
                f"on another scale ({float(vals.min()):g} to {float(vals.max()):g}"
                + (f", a {own[0]:g}–{own[1]:g} rating scale?" if own else "")
                + f") while {', '.join(repr(variables[j]) for j in cols_in)} fit [{lo:g}, {hi:g}]: --input-scale applies "
                f"to every column, so put the columns on one scale first")
    if fit is None:
        hint = "pass the scale the values were rated on as --input-scale LOW,HIGH"
    else:
        off = np.argwhere(off_mask)
        held = x[(x >= fit[0]) & (x <= fit[1])]
        hint = (f"the values ({float(held.min()):g} to {float(held.max()):g}) fit a {fit[0]:g}–{fit[1]:g} rating scale: "
                f"if that is the scale, pass --input-scale {scale_text(fit)} (input_scale=({fit[0]:g}, {fit[1]:g}))")
        if len(off) and few_outside(off_mask):
            hint += (f"; and {'one value lies' if len(off) == 1 else f'{len(off)} values lie'} outside even "
                     f"{fit[0]:g}–{fit[1]:g} and look{'s' if len(off) == 1 else ''} like {'a typo' if len(off) == 1 else 'typos'}: "
                     f"{_cell_refs(x, off, variables, rows)}")
            if alternative is not None:
                hint += (f" — or, if the table was rated on a {alternative[0]:g}–{alternative[1]:g} scale, pass "
                         f"--input-scale {scale_text(alternative)}")
        elif len(off):
            hint += (f"; but {len(off)} of {x.size} values lie outside {fit[0]:g}–{fit[1]:g} (e.g. "
                     f"{_cell_refs(x, off[:1], variables, rows)}): the table may mix scales")
    raise InputScaleError(f"{where} is outside {what}; {hint}")


def suspicious_scale(x: np.ndarray, scale: Sequence[float]) -> tuple[float, float] | None:
    """A smaller common scale lying inside ``scale`` that holds every value of ``x`` — a sign that the values
    were rated on it — or None. Needs at least 2 rows (one rated item proves nothing); the scale in use must be at
    least twice as wide."""
    v = np.asarray(x, dtype=np.float64)
    if v.ndim < 2 or v.shape[0] < 2:
        return None
    v = v[np.isfinite(v)]
    lo, hi = (float(s) for s in scale)
    inner = [s for s in COMMON_SCALES if lo <= s[0] and s[1] <= hi and (s[1] - s[0]) * 2 <= (hi - lo)
             and s[0] <= v.min() and v.max() <= s[1]]
    if not inner:
        return None
    return min(inner, key=lambda s: s[1] - s[0])


def warn_if_suspicious(x: np.ndarray, scale: Sequence[float], fmt_name: str, given: bool) -> str | None:
    """Issue a :class:`ScaleWarning` (and return its text) when :func:`suspicious_scale` finds one."""
    inner = suspicious_scale(x, scale)
    if inner is None:
        return None
    lo, hi = (float(s) for s in scale)
    what = f"the input scale [{lo:g}, {hi:g}]" if given else f"{fmt_name}'s normalised range [{lo:g}, {hi:g}]"
    msg = (f"every {fmt_name} value lies within {inner[0]:g}–{inner[1]:g}, a smaller common rating scale inside "
           f"{what}; if the values were rated on {inner[0]:g}–{inner[1]:g}, pass --input-scale {scale_text(inner)} "
           f"(input_scale=({inner[0]:g}, {inner[1]:g})), otherwise ignore this warning")
    warnings.warn(msg, ScaleWarning, stacklevel=3)
    return msg


def to_normalised(x: np.ndarray, scale: Sequence[float], target: Sequence[float]) -> np.ndarray:
    """Map ``x`` linearly from ``scale`` (low, high) onto ``target`` (the format's normalised range)."""
    lo, hi = (float(v) for v in scale)
    t0, t1 = (float(v) for v in target)
    return t0 + (x - lo) * (t1 - t0) / (hi - lo)


def formats_range_help(formats) -> str:
    """One line per format: kind and the normalised range its values are read and written on (for ``--help``)."""
    lines = ["label formats and their normalised ranges (inputs are read on these unless --input-scale is given;",
             "class formats take 0/1 indicators or probabilities per class, or class names):"]
    for f in formats:
        rng = f"[{f.range[0]:g}, {f.range[1]:g}]" if f.kind == "regression" else "probabilities in [0, 1]"
        shown = ", ".join(f.variables) if len(f.variables) <= 8 else ", ".join(f.variables[:7]) + f", … ({f.size})"
        lines.append(f"  {f.name:<13} {f.kind:<12} {rng:<24} {shown}")
    return "\n".join(lines)

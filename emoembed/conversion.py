"""Label conversion of a user's table with a codec (``emoembed predict --model CODEC --source-format F``):
read the table (:mod:`emoembed.inputs`), find the source format's columns or class names, say on stderr which
scale the values are read on, convert, and keep the table's identifying columns in front of the output."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from emoembed.errors import EmoembedError
from emoembed.inputs import label_table, read_user_table, require_column, split_columns_option
from emoembed.notices import note
from emoembed.scales import AssumedScaleWarning, assumed_scale_text


def convert_user_table(codec, path: str | Path, source: str, target: str, columns: Mapping[str, str] | None = None,
                       name_column: str | None = None, input_scale: Sequence[float] | None = None,
                       output_scale: Sequence[float] | None = None, domain: str | None = None,
                       verb: str = "predict", header: bool | None = None, keep_columns: str | Sequence[str] = "all"
                       ) -> pd.DataFrame:
    """The converted table: the input's other columns (word, id…) first, in input order, then ``target``'s columns.
    ``keep_columns``: which other columns, ``"all"`` (default), ``"none"`` or names
    (:func:`emoembed.tables.kept_columns`); one named like an output column is a :class:`DataError` naming it.

    Raises :class:`~emoembed.errors.EmoembedError` (naming file, line, column, value) for unreadable tables, missing
    columns, non-numbers and values outside the scale they are read on."""
    src = codec.format(source)
    tgt = codec.format(target)
    if input_scale is not None and src.kind != "regression":
        raise EmoembedError(f"--input-scale is for rating formats; {source} is {src.kind} (0/1 or probabilities per "
                            "class, or class names)")
    if output_scale is not None and tgt.kind != "regression":
        raise EmoembedError(f"--output-scale is for rating formats; {target} is {tgt.kind} (its outputs are probabilities)")
    columns, given = split_columns_option(columns, src.variables)  # valence=2 | word=1 (names an output column)
    names = [*(src.variables if src.kind == "regression" else ()),  # a class name atop one column is more likely an item
             *(columns or {}).values(), *([name_column] if name_column else [])]
    frame = read_user_table(path, header=header, header_names=names)  # header: None decides, False = --no-header
    values, used = label_table(frame, src, str(path), columns, name_column)
    given = {require_column(frame, col, str(path), f"--columns {name}=…"): name for col, name in given.items()}
    twice = [c for c in given if c in used]
    if twice:
        raise EmoembedError(f"--columns {given[twice[0]]}={twice[0]}: column {twice[0]!r} holds the {source} values "
                            f"read; an output name is for one of the input's other columns (an id, the items)")
    check_table_values(values, used, src, str(path), input_scale)
    if isinstance(values, pd.DataFrame) and src.kind == "regression":
        if input_scale is None:
            note(verb, assumed_scale_text(source, src.range, cli=True))
        else:
            note(verb, f"reading {source} values on the scale [{input_scale[0]:g}, {input_scale[1]:g}] "
                       f"(mapped to its normalised range [{src.range[0]:g}, {src.range[1]:g}])")
    text = conversion_zero_shot_note(codec, source, target)
    if text:
        note(verb, text)
    with warnings.catch_warnings():  # check_table_values said it, naming the file; the note above, the scale
        warnings.filterwarnings("ignore", message=r"\d+ of \d+ rows have no .* class name")
        warnings.filterwarnings("ignore", category=AssumedScaleWarning)
        out = codec.convert(values, source, target, input_scale, output_scale, domain=domain)
    from emoembed.tables import (TYPED_INPUTS, check_no_clash, keep_input_columns, kept_columns, output_names,
                                 typed_text_table)

    others = [str(c) for c in frame.columns if c not in used]
    renamed = output_names(frame, others, given, reserved=[str(c) for c in out.columns], name_items=True)
    extra = kept_columns(others, None, keep_columns, path, renamed)
    dropped = [c for c in given if c not in extra]
    if dropped:
        raise EmoembedError(f"--columns {given[dropped[0]]}={dropped[0]} names a column for the output, but "
                            f"--keep-columns leaves it out: keep it (--keep-columns …,{given[dropped[0]]}) or leave "
                            f"out its name")
    check_no_clash([renamed[c] for c in extra], [str(c) for c in out.columns], path)
    kept = frame[extra].reset_index(drop=True)
    if Path(path).suffix.lower() not in TYPED_INPUTS:  # csv/tsv text: plain-number columns as numbers
        kept = typed_text_table(kept)
    kept = kept.rename(columns=renamed)  # a headerless file's 1, 2 … → word, column_2 …; --columns word=1
    return keep_input_columns(out, kept)  # identifying columns (word, id…) in front


def check_table_values(values: pd.DataFrame | pd.Series, used: Sequence[str], src, source: str,
                       input_scale: Sequence[float] | None) -> None:
    """Check the label values read from a user's table before conversion, so that errors name the file, the line
    and the file's own column (``ratings.csv, line 2, column 'VALENCE': 4.2 is outside …``; ``names.csv, line 3,
    column 'label': unknown class 'glee' …``) — :meth:`EmotionCodec.convert` checks the same but only knows the rows.

    ``values``/``used`` as :func:`emoembed.inputs.label_table` returns them. Raises
    :class:`~emoembed.scales.InputScaleError` or :class:`~emoembed.errors.EmoembedError`."""
    from emoembed.codec import class_indicators
    from emoembed.errors import index_row_names
    from emoembed.scales import check_scale

    rows = [f"{source}, {name}" for name in index_row_names(values.index)]
    if isinstance(values, pd.Series):
        x = class_indicators(values.tolist(), src, [f"{r}, column {used[0]!r}" for r in rows])
        empty = [name for name, hot in zip(index_row_names(values.index), x.sum(axis=1)) if hot == 0]
        if empty:
            from emoembed.errors import EmoembedWarning

            warnings.warn(f"{source}: {len(empty)} of {len(values)} rows have no {src.name} class name in column "
                          f"{used[0]!r} (an empty cell is no label): {', '.join(empty[:5])}"
                          f"{f' and {len(empty) - 5} more' if len(empty) > 5 else ''}; their outputs are left empty",
                          EmoembedWarning, stacklevel=3)
        return
    given = input_scale is not None and src.kind == "regression"
    scale = tuple(float(v) for v in input_scale) if given else src.range
    check_scale(values[list(src.variables)].to_numpy(dtype=float), list(used), scale, src.name, given, rows)


def conversion_zero_shot_note(codec, source: str, target: str) -> str | None:
    """A note when no paired dataset the codec was trained on links ``source`` and ``target``
    (:meth:`emoembed.codec.EmotionCodec.zero_shot_note`)."""
    return codec.zero_shot_note(source, target)


def model_zero_shot_note(model, fmt: str) -> str | None:
    """A note when ``model`` had no gold training labels for (some of) the variables of ``fmt``: zero-shot through
    the codec, or (a format of the recipe's ``augment``) learnt from codec-made labels only.

    Variables are compared, not format names: a variable of ``fmt`` was trained when a format the model was
    trained on with gold labels has the same variable (after the equivalence classes' aliases) and is of the same
    sort — a rating (regression) or a class (multilabel/multiclass/distribution). So ``valence`` and ``va`` are not
    zero-shot for a model trained on ``vad``; ``be6`` is partly zero-shot for one trained on ``be5`` (its
    ``surprise``); and ``be5`` — a sub-format of ``be6`` (:mod:`emoembed.subformats`) — is not zero-shot for one
    trained on ``be6``, even when the recipe also augmented it with codec-made ``be5`` labels: gold labels of every
    variable come first, the augmentation note only applies when some variable had none. None when every variable
    was trained on gold labels. This one rule decides ``predict``'s note, ``evaluate``'s ``zero_shot`` flag and the
    zero-shot decision rule of multilabel outputs (:meth:`emoembed.model.EmotionModel._uses_zero_shot_rule`)."""
    from emoembed.formats import default_registry

    trained = list(getattr(model, "trained_formats", []) or [])
    if not trained or fmt in trained:
        return None
    formats = getattr(getattr(model, "codec", None), "formats", {}) or {}
    target = formats.get(fmt)
    if target is None:
        target = model.format(fmt)
    canonical = default_registry().equivalences.canonical

    def sort(f) -> str:
        return "rating" if f.kind == "regression" else "class"

    seen: dict[tuple[str, str], str] = {}
    for name in trained:
        f = formats.get(name)
        for var in (f.variables if f is not None else ()):
            seen.setdefault((sort(f), canonical(var).lower()), f"{name} {var}")
    found = {v: seen.get((sort(target), canonical(v).lower())) for v in target.variables}
    known = [v for v in target.variables if found[v]]
    if len(known) == len(target.variables):
        return None  # every variable had gold labels (be5 for a be6-trained model), augmented or not
    if fmt in (getattr(model, "meta", {}) or {}).get("augmented_formats", []):
        return (f"{fmt} has no gold labels in this model's training data: it was trained on {', '.join(trained)} data "
                f"with {fmt} labels made from them by the codec (label augmentation), so its {fmt} outputs are as good "
                "as the codec's conversion")
    missing = [v for v in target.variables if not found[v]]
    if known:
        return (f"{fmt} is partly zero-shot for this model: {', '.join(known)} had training labels (as "
                f"{', '.join(dict.fromkeys(found[v] for v in known))}), {', '.join(missing)} had none and "
                f"{'is' if len(missing) == 1 else 'are'} predicted through the codec's shared space only")
    return (f"{fmt} is zero-shot for this model: it was trained on {', '.join(trained)} data and predicts {fmt} "
            f"through the codec's shared space, with no {fmt} training labels")


def model_prediction_note(model, fmt: str) -> str | None:
    """What ``predict`` says when ``fmt`` is (partly) zero-shot for ``model``: :func:`model_zero_shot_note`, plus the
    zero-shot decision rule when the format is multilabel and that rule labels it (the CLI prints this note on
    stderr; ``EmotionModel.predict`` returns it in ``df.attrs["zero_shot_note"]``). None when not zero-shot."""
    text = model_zero_shot_note(model, fmt)
    if not text:
        return None
    uses_rule = getattr(model, "_uses_zero_shot_rule", None)
    target = model.format(fmt)
    if target.kind == "multilabel" and uses_rule is not None and uses_rule(fmt):
        from emoembed.calibration import zero_shot_rule_text

        text += "; " + zero_shot_rule_text(model.codec.calibration.get(fmt), target)
    return text

"""2-D maps of the emotion space, written as PNG plus a CSV of the coordinates.

* :func:`head_coordinates` / :func:`plot_heads`: every head row of a codec (one per format variable), unit
  length, reduced to 2-D. Variables of one equivalence class (``vad.valence`` and ``va.valence``; ``be5.joy``,
  ``fer7.happy`` and ``ferplus8.happiness``…) share a colour, so one sees whether the soft-sharing tie pulled
  them together; :func:`tie_similarity` gives the same answer as numbers (mean cosine of tied vs. untied rows).
* :func:`content_coordinates` / :func:`plot_content`: the emotion-space embeddings of words, texts or images,
  reduced to 2-D and coloured by a gold label (items from a dataset card) or by the model's own prediction.

matplotlib is used through its object API on an Agg canvas inside the functions: importing emoembed never
selects a backend, and plotting never changes the backend of a running notebook.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where frames are built: `emoembed --help` does not load it
    import pandas as pd

from emoembed.errors import ConfigError, DataError
from emoembed.io import atomic_write

METHODS = ("pca", "umap")
RANDOM_STATE = 0
DEFAULT_LIMIT = 2000
MAX_CATEGORIES = 12  # legend entries of a categorical colouring; rarer values are drawn grey as one entry
CLASS_COLOURS = ("label", "top")  # categorical: a class format's label set (multilabel: every class above 0.5); any
# format's top variable (the most probable class, or the largest intensity, e.g. be5.top)


# ---------------------------------------------------------------------------------------------- reduction
def reduce_2d(x: np.ndarray, method: str = "pca", random_state: int = RANDOM_STATE) -> tuple[np.ndarray, list[float] | None]:
    """(N, d) → (N, 2) and the explained variance ratio of the two axes (PCA; None for UMAP)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise DataError(f"a 2-D map needs at least 3 points with an embedding, got {len(x)}")
    if method == "umap":
        try:
            import umap  # type: ignore[import-not-found]
        except ImportError:
            raise ConfigError("--method umap needs the optional package umap-learn (pip install umap-learn); "
                              "use --method pca without it") from None
        reducer = umap.UMAP(n_components=2, metric="cosine", random_state=random_state,
                            n_neighbors=max(2, min(15, len(x) - 1)))
        return np.asarray(reducer.fit_transform(x), dtype=np.float64), None
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=random_state, svd_solver="full")
    xy = pca.fit_transform(x)
    return xy, [float(v) for v in pca.explained_variance_ratio_]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def variance_text(ratio: Sequence[float] | None, method: str = "pca") -> str:
    if ratio is None:
        return f"{method.upper()} (no explained variance)"
    return f"PCA explained variance: PC1 {ratio[0]:.1%}, PC2 {ratio[1]:.1%} (total {sum(ratio):.1%})"


# ---------------------------------------------------------------------------------------------- heads
def _codec_formats(codec: Any, formats: Sequence[str] | str | None) -> list[str]:
    if formats is None:
        return list(codec.formats)
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = list(dict.fromkeys(formats))
    if not formats:
        raise ConfigError("--formats: no format given")
    unknown = [f for f in formats if f not in codec.formats]
    if unknown:
        raise ConfigError(f"--formats: this codec does not know {', '.join(map(repr, unknown))}; it knows: {', '.join(codec.formats)}")
    return formats


def head_coordinates(codec: Any, method: str = "pca", formats: Sequence[str] | str | None = None) -> pd.DataFrame:
    """One row per head row (``format.variable``) of ``codec`` (an :class:`EmotionCodec`, or a model: its codec),
    unit-normalised and reduced to 2-D.

    Columns: ``format``, ``variable``, ``group`` (the equivalence class, '' for none), ``tied`` (the class has
    another member among the plotted formats, i.e. the tie loss acted on this row), ``x``, ``y``. The explained
    variance ratio is in ``.attrs["explained_variance"]`` (None for UMAP), the method in ``.attrs["method"]``."""
    import pandas as pd

    codec = getattr(codec, "codec", codec)
    fmts = _codec_formats(codec, formats)
    heads = codec.head_vectors()
    keep = [i for i in heads.index if i.split(".", 1)[0] in fmts]
    vectors = _unit_rows(heads.loc[keep].to_numpy(dtype=np.float64))
    xy, ratio = reduce_2d(vectors, method)
    fmt_col = [i.split(".", 1)[0] for i in keep]
    var_col = [i.split(".", 1)[1] for i in keep]
    groups = [codec.equivalences.class_of(f, v) or "" for f, v in zip(fmt_col, var_col)]
    sizes = pd.Series([g for g in groups if g]).value_counts().to_dict()
    out = pd.DataFrame({"format": fmt_col, "variable": var_col, "group": groups,
                        "tied": [bool(g) and sizes.get(g, 0) > 1 for g in groups], "x": xy[:, 0], "y": xy[:, 1]},
                       index=pd.Index(keep, name="row"))
    out.attrs.update(method=method, explained_variance=ratio)
    return out


def tie_similarity(codec: Any, formats: Sequence[str] | str | None = None) -> dict[str, float | int]:
    """Mean cosine between head rows of tied pairs (same equivalence class, different formats) and of untied
    cross-format pairs, in the full embedding space."""
    codec = getattr(codec, "codec", codec)
    fmts = set(_codec_formats(codec, formats))
    heads = codec.head_vectors()
    keep = [i for i in heads.index if i.split(".", 1)[0] in fmts]
    v = _unit_rows(heads.loc[keep].to_numpy(dtype=np.float64))
    cos = v @ v.T
    fmt = np.array([i.split(".", 1)[0] for i in keep])
    grp = np.array([codec.equivalences.class_of(*i.split(".", 1)) or f"\0{i}" for i in keep])
    upper = np.triu(np.ones_like(cos, dtype=bool), k=1)
    cross = upper & (fmt[:, None] != fmt[None, :])
    tied = cross & (grp[:, None] == grp[None, :])
    untied = cross & ~tied
    return {"tied_mean_cos": float(cos[tied].mean()) if tied.any() else float("nan"), "tied_pairs": int(tied.sum()),
            "untied_mean_cos": float(cos[untied].mean()) if untied.any() else float("nan"), "untied_pairs": int(untied.sum())}


# ---------------------------------------------------------------------------------------------- content
def _resolve_color(model: Any, color_by: str, format: str | None, gold: pd.DataFrame | None) -> tuple[str, str | None]:
    """→ (variable, prediction format or None when the gold frame holds it)."""
    if not color_by or not str(color_by).strip():
        raise ConfigError("--color: give a variable to colour by (e.g. valence, joy, or label for a class format)")
    var = str(color_by).strip()
    if "." in var and format is None:  # "be5.joy"
        format, var = var.split(".", 1)
    if gold is not None and var in gold.columns and (format is None or format == gold.attrs.get("format")):
        return var, None
    if format is not None:
        fmt = model.format(format)
        if var == "label":
            if not fmt.is_class_format:
                raise ConfigError(f"--color label: format {fmt.name!r} is a regression format; colour by one of "
                                  f"{list(fmt.variables)} or top (its largest variable)")
        elif var != "top" and var not in fmt.variables:
            raise ConfigError(f"--color: format {fmt.name!r} has no variable {var!r}; it has {list(fmt.variables)}"
                              + (", label or top" if fmt.is_class_format else " or top"))
        return var, fmt.name
    if var in CLASS_COLOURS:
        raise ConfigError(f"--color {var}: say which format with --format (e.g. --format ekman7) or as ekman7.{var}")
    fmts = model.formats
    order = [f for f in model.trained_formats if f in fmts] + [f for f in fmts if f not in model.trained_formats]
    for name in order:
        if var in fmts[name].variables:
            return var, name
    eq = getattr(getattr(model, "codec", model), "equivalences", None)
    cls = eq.canonical(var) if eq is not None else var
    for name in order:  # an alias of an equivalence class: happy → be5.joy, fer7.happy …
        for v in fmts[name].variables:
            if cls != var and eq.class_of(name, v) == cls:
                return v, name
    known = sorted({v for f in fmts.values() for v in f.variables})
    raise ConfigError(f"--color: no format of this model has a variable {var!r}; variables: {', '.join(known)}")


def _gold_frame(labels: np.ndarray, fmt: Any) -> pd.DataFrame:
    """Gold labels (N, k) of a format as a frame: the variables, ``top`` and, for class formats, ``label``.
    A multilabel ``top`` is the one positive class, ``(several)`` or ``(none)``; gold has no probabilities to rank."""
    import pandas as pd

    y = np.asarray(labels, dtype=np.float64).reshape(-1, fmt.size)
    frame = pd.DataFrame(y, columns=list(fmt.variables))
    top = [fmt.variables[i] for i in y.argmax(axis=1)] if len(y) else []
    if fmt.kind == "multilabel":
        frame["label"] = [",".join(v for v, p in zip(fmt.variables, row) if p > 0.5) or "(none)" for row in y]
        frame["top"] = [("(several)" if (row == row.max()).sum() > 1 else t) if row.max() > 0.5 else "(none)"
                        for t, row in zip(top, y)]
    elif fmt.is_class_format:
        frame["label"] = frame["top"] = top
    else:
        frame["top"] = top
    frame.attrs["format"] = fmt.name
    return frame


def content_coordinates(model: Any, items: Sequence[Any], color_by: str, format: str | None = None, method: str = "pca",
                        gold: pd.DataFrame | None = None, batch_size: int = 64) -> pd.DataFrame:
    """Embeddings of ``items`` (``model.encode``) reduced to 2-D, with the colour value of each item.

    ``color_by`` is a variable (``valence``, ``joy``; ``be5.joy`` picks the format), ``top`` (the format's
    largest variable: the most probable class, or the strongest intensity as in ``be5.top``) or, for a class
    format, ``label`` (its label set: multilabel formats join every class above 0.5). It is taken from ``gold`` (one row per item, a column per variable; ``gold.attrs["format"]``
    names its format) when that has the variable and ``format`` is unset or the gold format, else from
    ``model.predict(items, format)``. Items without an embedding (e.g. OOV words) are dropped.

    Columns: ``item``, ``x``, ``y`` and the colour variable. ``.attrs``: ``color_by``, ``color_format``,
    ``color_source`` (gold | prediction), ``categorical``, ``method``, ``explained_variance``, ``dropped``."""
    if isinstance(items, (str, bytes)):
        items = [items]
    items = list(items)
    if not items:
        raise DataError("no input: the list of items is empty")
    if gold is not None and len(gold) != len(items):
        raise DataError(f"gold labels have {len(gold)} rows for {len(items)} items")
    var, pred_fmt = _resolve_color(model, color_by, format, gold)
    emb = model.encode(items, batch_size=batch_size)
    ok = ~np.isnan(emb).any(axis=1)
    if ok.sum() < 3:
        raise DataError(f"only {int(ok.sum())} of {len(items)} items have an embedding (the rest are out of vocabulary "
                        "or undefined); a 2-D map needs at least 3")
    kept = [x for x, k in zip(items, ok) if k]
    xy, ratio = reduce_2d(emb[ok], method)
    if pred_fmt is None:
        values = gold[var].to_numpy()[ok]
        source, cfmt = "gold", gold.attrs.get("format")
    else:
        pred = model.predict(kept, pred_fmt, batch_size=batch_size)
        if var == "top":
            classes = list(model.format(pred_fmt).variables)
            values = np.asarray(classes, dtype=object)[pred[classes].to_numpy().argmax(axis=1)]
        else:
            values = pred[var].to_numpy()
        source, cfmt = "prediction", pred_fmt
    categorical = var in CLASS_COLOURS
    if categorical:
        values = np.asarray([str(v) if str(v) else "(none)" for v in values], dtype=object)
    import pandas as pd

    out = pd.DataFrame({"item": [str(x) for x in kept], "x": xy[:, 0], "y": xy[:, 1], var: values})
    out.attrs.update(color_by=var, color_format=cfmt, color_source=source, categorical=categorical, method=method,
                     explained_variance=ratio, dropped=int((~ok).sum()))
    return out


# ---------------------------------------------------------------------------------------------- drawing
def _png_target(out: str | Path) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--out {str(out)!r}: the plot is written as PNG; give a path ending in .png")
    return path


def _save_png(fig: Any, path: Path, dpi: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # the Agg canvas for this figure only; the global (pyplot) backend is untouched
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))


def _save_csv(frame: pd.DataFrame, path: Path) -> Path:
    text = frame.to_csv(index=False, float_format="%.6g")
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "8", "d", "H")


def plot_heads(codec: Any, out: str | Path, method: str = "pca", formats: Sequence[str] | str | None = None,
               annotate: bool = True, title: str | None = None, dpi: int = 110) -> Path:
    """Draw :func:`head_coordinates` to ``out`` (PNG) and the coordinates to ``out`` with ``.csv``; returns the PNG path.

    Marker = format; colour = equivalence class (grey when the variable is tied to nothing); a thin line joins
    the members of each class to their centroid, which carries the class name."""
    path = _png_target(out)
    return _draw_heads(head_coordinates(codec, method, formats), path, method, annotate, title, dpi)


def _draw_heads(coords: pd.DataFrame, path: Path, method: str, annotate: bool, title: str | None, dpi: int) -> Path:
    from matplotlib.figure import Figure

    fmts = list(dict.fromkeys(coords["format"]))
    groups = sorted({g for g, t in zip(coords["group"], coords["tied"]) if t})
    palette = _palette(len(groups))
    colour = {g: palette[i] for i, g in enumerate(groups)}
    fig = Figure(figsize=(11, 8.5))
    ax = fig.add_subplot(1, 1, 1)
    for g in groups:
        sub = coords[(coords["group"] == g) & coords["tied"]]
        cx, cy = sub["x"].mean(), sub["y"].mean()
        for x, y in zip(sub["x"], sub["y"]):
            ax.plot([cx, x], [cy, y], color=colour[g], lw=0.7, alpha=0.5, zorder=1)
        if annotate:
            ax.annotate(f"{g} ({len(sub)})", (cx, cy), fontsize=9, fontweight="bold", color=colour[g], ha="center", va="bottom",
                        xytext=(0, 4), textcoords="offset points", zorder=4)
    for k, f in enumerate(fmts):
        sub = coords[coords["format"] == f]
        cols = [colour[g] if t else (0.6, 0.6, 0.6, 1.0) for g, t in zip(sub["group"], sub["tied"])]
        ax.scatter(sub["x"], sub["y"], c=cols, marker=_MARKERS[k % len(_MARKERS)], s=46, edgecolors="black",
                   linewidths=0.4, zorder=3)
        if annotate:  # tied rows are named by their class label (they overlap)
            for x, y, v, t in zip(sub["x"], sub["y"], sub["variable"], sub["tied"]):
                if not t:
                    ax.annotate(v, (x, y), fontsize=6.5, xytext=(3, -3), textcoords="offset points", zorder=4)
    from matplotlib.lines import Line2D

    fmt_handles = [Line2D([], [], ls="", marker=_MARKERS[k % len(_MARKERS)], color="0.3", label=f) for k, f in enumerate(fmts)]
    leg = ax.legend(handles=fmt_handles, title="format", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title_fontsize=9)
    ax.add_artist(leg)
    if groups:
        grp_handles = [Line2D([], [], ls="", marker="o", color=colour[g], label=g) for g in groups]
        ax.legend(handles=grp_handles, title="equivalence class", loc="lower left", bbox_to_anchor=(1.01, 0.0),
                  fontsize=8, title_fontsize=9)
    ratio = coords.attrs["explained_variance"]
    axis = ("PC1", "PC2") if ratio is not None else ("UMAP 1", "UMAP 2")
    ax.set_xlabel(axis[0] + (f" ({ratio[0]:.1%})" if ratio else ""))
    ax.set_ylabel(axis[1] + (f" ({ratio[1]:.1%})" if ratio else ""))
    ax.axhline(0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    ax.set_title(title or f"codec head directions ({len(coords)} variables, {len(fmts)} formats) — {variance_text(ratio, method)}",
                 fontsize=10)
    _save_png(fig, path, dpi)
    _save_csv(coords.reset_index(), path.with_suffix(".csv"))
    return path


def plot_content(model: Any, items: Sequence[Any], out: str | Path, color_by: str, format: str | None = None,
                 method: str = "pca", gold: pd.DataFrame | None = None, annotate: bool | None = None,
                 title: str | None = None, dpi: int = 110, batch_size: int = 64) -> Path:
    """Draw :func:`content_coordinates` to ``out`` (PNG; coordinates to ``.csv`` beside it); returns the PNG path.
    Regression variables and class probabilities use a continuous colormap with a colour bar; ``label`` a legend.
    ``annotate`` (default: when there are at most 60 items) writes each item next to its point."""
    path = _png_target(out)
    coords = content_coordinates(model, items, color_by, format, method, gold, batch_size)
    return _draw_content(coords, path, model.modality, method, annotate, title, dpi)


def _draw_content(coords: pd.DataFrame, path: Path, modality: str, method: str, annotate: bool | None,
                  title: str | None, dpi: int) -> Path:
    from matplotlib.figure import Figure

    a = coords.attrs
    var = a["color_by"]
    fig = Figure(figsize=(9.5, 7.5))
    ax = fig.add_subplot(1, 1, 1)
    size = 36 if len(coords) <= 200 else max(4, 36 * (200 / len(coords)) ** 0.5)
    if a["categorical"]:
        counts = coords[var].value_counts()
        cats = list(counts.index)
        if len(cats) > MAX_CATEGORIES:  # the rarest categories share one grey entry (the CSV keeps them all)
            rest = cats[MAX_CATEGORIES - 1:]
            other = coords[coords[var].isin(rest)]
            ax.scatter(other["x"], other["y"], s=size, color="0.75", edgecolors="none", alpha=0.6, zorder=1,
                       label=f"{len(rest)} other values ({len(other)})")
            cats = cats[:MAX_CATEGORIES - 1]
        palette = _palette(len(cats))
        for i, c in enumerate(cats):
            sub = coords[coords[var] == c]
            ax.scatter(sub["x"], sub["y"], s=size, color=palette[i], label=f"{c} ({counts[c]})", edgecolors="none", alpha=0.8,
                       zorder=2)
        ax.legend(title=f"{a['color_format']}.{var} ({a['color_source']})", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize=8, title_fontsize=9)
    else:
        vals = coords[var].to_numpy(dtype=np.float64)
        lo, hi = np.nanmin(vals), np.nanmax(vals)
        cmap = "coolwarm" if lo < 0 < hi else "viridis"
        if cmap == "coolwarm":  # centre the diverging map on 0
            m = max(abs(lo), abs(hi))
            lo, hi = -m, m
        sc = ax.scatter(coords["x"], coords["y"], c=vals, cmap=cmap, vmin=lo, vmax=hi, s=size, edgecolors="none", alpha=0.85)
        cb = fig.colorbar(sc, ax=ax)
        cb.set_label(f"{a['color_format']}.{var} ({a['color_source']})")
    if annotate is None:
        annotate = len(coords) <= 60
    if annotate:
        for x, y, t in zip(coords["x"], coords["y"], coords["item"]):
            ax.annotate(_short_item(t), (x, y), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ratio = a["explained_variance"]
    axis = ("PC1", "PC2") if ratio is not None else ("UMAP 1", "UMAP 2")
    ax.set_xlabel(axis[0] + (f" ({ratio[0]:.1%})" if ratio else ""))
    ax.set_ylabel(axis[1] + (f" ({ratio[1]:.1%})" if ratio else ""))
    ax.set_title(title or f"{len(coords)} {modality}s in the emotion space, colour: {a['color_format']}.{var} "
                 f"({a['color_source']})\n{variance_text(ratio, method)}", fontsize=10)
    _save_png(fig, path, dpi)
    _save_csv(coords, path.with_suffix(".csv"))
    return path


def _palette(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["gist_ncar"](i / n) for i in range(n)]


def _short_item(text: str, n: int = 30) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"

"""EmotionCodec: per label format a label encoder (MLP → emotion embedding) and a bias-free linear head
(embedding → the format's variables). Heads of equivalent variables are tied softly by a (1 − cos) loss.

Saved as ``model.safetensors`` + ``config.json`` (formats, variables, equivalences, dimensions): everything
needed to rebuild it without the YAML files.
"""
from __future__ import annotations

import re

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from emoembed.errors import CheckpointError, ConfigError, EmoembedError, index_row_names, row_ref
from emoembed.format_kinds import activate, format_output
from emoembed.formats import EquivalenceClasses, FormatRegistry, LabelFormat
from emoembed.pretrained import PretrainedModule
from emoembed.scales import AssumedScaleWarning, assumed_scale_text, check_scale, to_normalised, warn_if_suspicious



class LabelEncoder(nn.Sequential):
    """k → hidden… → d, LeakyReLU(0.01) and dropout after each hidden layer, no output activation."""

    def __init__(self, k: int, dim: int, hidden: Sequence[int], dropout: float):
        layers: list[nn.Module] = []
        prev = k
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.LeakyReLU(0.01), nn.Dropout(dropout)]
            prev = h
        layers.append(nn.Linear(prev, dim))
        super().__init__(*layers)


class EmotionCodec(PretrainedModule):
    model_type = "emotion-codec"

    def __init__(self, formats: Mapping[str, LabelFormat], dim: int = 100, hidden: Sequence[int] = (128, 128),
                 dropout: float = 0.2, equivalences: EquivalenceClasses | None = None,
                 domains: Sequence[str] = (), domain_dim: int = 0):
        super().__init__()
        if not formats:
            raise ConfigError("a codec needs at least one label format")
        self.formats: dict[str, LabelFormat] = dict(formats)
        self.dim = int(dim)
        self.hidden = [int(h) for h in hidden]
        self.dropout = float(dropout)
        self.equivalences = equivalences or EquivalenceClasses()
        self.domain_dim = int(domain_dim)
        if self.domain_dim < 0 or (domains and not self.domain_dim):
            raise ConfigError(f"domain_dim must be > 0 when the codec has domains (got {domain_dim} with {len(domains)} domains)")
        self.domains = nn.ParameterDict()
        self.add_domains(domains)
        self.encoders = nn.ModuleDict({n: LabelEncoder(f.size + self.domain_dim, self.dim, self.hidden, self.dropout)
                                       for n, f in self.formats.items()})
        self.heads = nn.ModuleDict({n: nn.Linear(self.dim, f.size, bias=False) for n, f in self.formats.items()})
        self._tie_index = self._build_tie_index()
        self.frozen_formats: set[str] = set()
        # multilabel decision rules fitted on paired dev data (emoembed.calibration); empty: plain p > 0.5
        self.calibration: dict[str, dict[str, Any]] = {}
        # [pair name, format a, format b] of the paired datasets the codec was trained on ([] when unknown)
        self.trained_pairs: list[list[str]] = []

    # ------------------------------------------------------------------ structure
    def _build_tie_index(self) -> list[tuple[str, int, str, int]]:
        pairs = []
        for (fa, va), (fb, vb), _cls in self.equivalences.tied_pairs(self.formats):
            pairs.append((fa, self.formats[fa].index(va), fb, self.formats[fb].index(vb)))
        return pairs

    def add_domains(self, names: Iterable[str]) -> None:
        """Learned domain vectors (one per paired dataset): appended to every label encoder's input, so that one
        codec can follow each dataset's rating habits. Encoding without a domain uses the zero vector, the
        pooled mapping that training keeps alive by dropping the domain on a share of its batches."""
        for name in names:
            if not name or "." in name:
                raise ConfigError(f"domain name {name!r} (a paired dataset's card name) must be non-empty and contain no '.'")
            if name not in self.domains:
                self.domains[name] = nn.Parameter(torch.zeros(self.domain_dim))

    def domain_vector(self, domain: str | None) -> torch.Tensor | None:
        if not self.domain_dim:
            if domain is not None:
                raise ConfigError(f"this codec was trained without domains, so domain {domain!r} cannot be used")
            return None
        if domain is None:
            return next(iter(self.encoders.values()))[0].weight.new_zeros(self.domain_dim)
        if domain not in self.domains:
            raise ConfigError(f"this codec has no domain {domain!r}; it has: {', '.join(self.domains) or '(none)'}")
        return self.domains[domain]

    @property
    def tied_rows(self) -> list[tuple[str, int, str, int]]:
        return list(self._tie_index)

    def freeze_formats(self, names: Iterable[str]) -> None:
        """Freeze the label encoders and heads of ``names``: no gradients, and they stay in eval mode (no
        dropout) even when the codec is put in training mode — what ``map --extend`` does to the old formats."""
        for name in names:
            self.format(name)
            for module in (self.encoders[name], self.heads[name]):
                module.requires_grad_(False)
                module.eval()
            self.frozen_formats.add(name)

    def freeze_domains(self, names: Iterable[str]) -> None:
        for name in names:
            self.domain_vector(name)
            self.domains[name].requires_grad_(False)

    def train(self, mode: bool = True) -> EmotionCodec:
        super().train(mode)
        for name in self.frozen_formats:
            self.encoders[name].eval()
            self.heads[name].eval()
        return self

    def format_fingerprints(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """SHA-256 over each format's label-encoder and head tensors: equal fingerprints, identical weights."""
        return {name: tensors_fingerprint({f"{i}.{k}": t for i, m in enumerate((self.encoders[name], self.heads[name]))
                               for k, t in m.state_dict().items()})
                for name in names or self.formats}

    def domain_fingerprints(self) -> dict[str, str]:
        """SHA-256 of each domain vector (see :meth:`format_fingerprints`)."""
        return {name: tensors_fingerprint({"": v}) for name, v in self.domains.items()}

    def changed_formats(self, reference: Mapping[str, str]) -> list[str]:
        """Formats of ``reference`` (name → :meth:`format_fingerprints` value) whose weights here differ or are absent."""
        now = self.format_fingerprints([n for n in reference if n in self.formats])
        return [n for n, fp in reference.items() if now.get(n) != fp]

    def format(self, name: str) -> LabelFormat:
        if name not in self.formats:
            raise ConfigError(f"this codec does not know the format {name!r}; it knows: {', '.join(self.formats)}")
        return self.formats[name]

    # ------------------------------------------------------------------ forward pieces
    def encode_labels(self, fmt: str, y: torch.Tensor, domain: str | None = None) -> torch.Tensor:
        """Emotion embeddings of labels ``y`` in format ``fmt``; ``domain`` (a paired dataset the codec was trained
        on) selects that dataset's rating habits, None the pooled mapping."""
        c = self.domain_vector(domain)
        if c is not None:
            y = torch.cat([y, c.expand(*y.shape[:-1], self.domain_dim)], dim=-1)
        return self.encoders[fmt](y)

    def decode(self, fmt: str, emb: torch.Tensor) -> torch.Tensor:
        """Raw head outputs: values for regression, logits for class formats."""
        return self.heads[fmt](emb)

    def activate(self, fmt: str, raw: torch.Tensor) -> torch.Tensor:
        """Raw outputs of format ``fmt`` → values/probabilities (:func:`emoembed.format_kinds.activate`)."""
        return activate(self.formats[fmt], raw)

    def tie_loss(self) -> torch.Tensor:
        """Mean (1 − cos) over all tied head-row pairs (0 when nothing is tied)."""
        if not self._tie_index:
            return self.heads[next(iter(self.heads))].weight.sum() * 0.0
        a = torch.stack([self.heads[fa].weight[ia] for fa, ia, _, _ in self._tie_index])
        b = torch.stack([self.heads[fb].weight[ib] for _, _, fb, ib in self._tie_index])
        return (1.0 - F.cosine_similarity(a, b, dim=-1)).mean()

    def head_vectors(self) -> pd.DataFrame:
        """One row per (format, variable): its head weight row (the variable's direction in the space)."""
        rows, index = [], []
        for name, head in self.heads.items():
            w = head.weight.detach().cpu().numpy()
            for i, var in enumerate(self.formats[name].variables):
                rows.append(w[i])
                index.append(f"{name}.{var}")
        return pd.DataFrame(np.stack(rows), index=index)

    # ------------------------------------------------------------------ label conversion
    @torch.no_grad()
    def convert(self, values: Any, source: str, target: str, input_scale: Sequence[float] | None = None,
                output_scale: Sequence[float] | None = None, clip: bool = True, batch_size: int = 1024,
                domain: str | None = None) -> pd.DataFrame:
        """Turn labels in ``source`` format into ``target`` format.

        ``values``: a DataFrame with the source variables as columns (matched case-insensitively, as the CLI does), an (N, k) array / nested list, one row,
        or — for a multiclass source — class names or indices. Regression inputs are in the source format's
        normalised range unless ``input_scale=(low, high)`` gives their rating scale; with no ``input_scale`` the
        scale is never assumed silently: an :class:`~emoembed.scales.AssumedScaleWarning` says which range the values
        were read on (as ``emoembed predict``'s ``note: no --input-scale given: …``; give
        ``input_scale=self.format(source).range`` to say they are normalised), and a
        :class:`~emoembed.scales.ScaleWarning` when they all sit inside a smaller common rating scale. Regression outputs can be
        mapped to ``output_scale``; the linear heads are unbounded, so regression outputs are clipped to the
        format's range unless ``clip=False``. ``domain`` (one of :attr:`domains`, the paired datasets of training)
        converts as that dataset's raters would; the default is the pooled mapping. Class targets give one probability column per class and a ``label`` column
        (argmax for multiclass/distribution, the classes above 0.5 for multilabel). ``df.attrs["zero_shot_note"]``
        says when no paired training dataset links ``source`` and ``target`` (the conversion rests on the shared
        space alone; :meth:`zero_shot_note`, the note ``emoembed predict`` prints),
        None otherwise.

        Raises :class:`~emoembed.scales.InputScaleError` for a value outside the scale it is read on, and
        EmoembedError for a missing value or an unknown class name, naming the row: for an array or list by its
        0-based position (``row index 4 (0-based), column 'valence': 4.2 is outside …``), for a DataFrame or Series
        by its index label (``index label 'b'``; ``line 7`` for a table read by emoembed, whose index holds the
        file's line numbers). A scale that does nothing is refused (ConfigError): ``input_scale`` for a class
        source format (its values are 0/1 or probabilities), ``output_scale`` for a class target (probabilities), and
        a scale whose low end is not below its high end (``(5, 1)``)."""
        src, tgt = self.format(source), self.format(target)
        check_convert_scales(src, tgt, input_scale, output_scale)
        self.domain_vector(domain)  # unknown domains fail before any work
        x = self._input_matrix(values, src, input_scale, say_assumed_scale=True)
        unlabelled = _unlabelled_rows(values, src)
        if unlabelled.any():
            import warnings

            from emoembed.errors import EmoembedWarning

            rows = index_row_names(values.index) if isinstance(values, (pd.Series, pd.DataFrame)) else None
            shown = [row_ref(int(i), "", rows) for i in np.flatnonzero(unlabelled)[:5]]
            more = int(unlabelled.sum()) - len(shown)
            warnings.warn(f"{int(unlabelled.sum())} of {len(x)} rows have no {src.name} class name (an empty cell is no "
                          f"label): {', '.join(shown)}{f' and {more} more' if more > 0 else ''}; their outputs are left "
                          "empty", EmoembedWarning, stacklevel=2)
        was_training = self.training
        self.eval()
        try:
            outs = []
            for i in range(0, len(x), batch_size):
                xb = torch.as_tensor(x[i:i + batch_size], dtype=torch.float32, device=self._device())
                outs.append(self.activate(target, self.decode(target, self.encode_labels(source, xb, domain))).cpu().numpy())
        finally:
            self.train(was_training)
        out = np.concatenate(outs) if outs else np.zeros((0, tgt.size), dtype=np.float32)
        df = format_output(out, tgt, output_scale, clip, self.calibration.get(target),
                           zero_shot=self.same_island(source, target) is False)
        if unlabelled.any():
            df.loc[unlabelled, list(tgt.variables)] = np.nan
            if "label" in df:
                df.loc[unlabelled, "label"] = ""
        df.attrs["zero_shot_note"] = self.zero_shot_note(source, target)  # as `emoembed predict` prints it
        return df

    def zero_shot_note(self, source: str, target: str) -> str | None:
        """A note when no paired dataset the codec was trained on links ``source`` and ``target`` (the conversion
        goes through the shared space only; ``emoembed predict`` prints it, ``convert`` returns it in ``attrs``);
        None when a pair links them, when they are one format, or when the codec does not record its pairs."""
        if source == target or self.paired_directly(source, target) is not False:
            return None
        multilabel = self.formats[target].kind == "multilabel"
        if self.same_island(source, target) is False:
            how = "it rests on the equivalence anchors that join the codec's unlinked groups of formats (docs/codec.md)"
            if multilabel:
                from emoembed.calibration import zero_shot_rule_text

                how += "; " + zero_shot_rule_text(self.calibration.get(target), self.formats[target], "row")
        else:
            how = ("its labels use decision thresholds fitted on the other directions into it"
                   if multilabel and target in self.calibration else "")
        return (f"{source} → {target} is zero-shot for this codec: no paired dataset it was trained on links the two "
                f"formats, so the conversion goes through the shared space only" + (f"; {how}" if how else ""))

    def paired_directly(self, a: str, b: str) -> bool | None:
        """Whether a paired training dataset links formats ``a`` and ``b`` (None: the codec does not record it)."""
        if not self.trained_pairs:
            return None
        return any({a, b} == {fa, fb} for _, fa, fb in self.trained_pairs)

    def same_island(self, a: str, b: str) -> bool | None:
        """Whether a chain of paired training datasets links formats ``a`` and ``b`` (one *island* of the codec's
        pair graph, :mod:`emoembed.anchors`); None when the codec does not record its pairs. Across islands a
        conversion rests on the equivalence anchors alone, and multilabel decisions use the zero-shot rule of
        :func:`emoembed.calibration.decide`."""
        if not self.trained_pairs:
            return None
        if a == b:
            return True
        from emoembed.anchors import pair_islands

        return any({a, b} <= island for island in pair_islands([(fa, fb) for _, fa, fb in self.trained_pairs]))

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @staticmethod
    def _input_matrix(values: Any, fmt: LabelFormat, input_scale: Sequence[float] | None,
                      say_assumed_scale: bool = False) -> np.ndarray:
        """``values`` as an (N, k) float32 matrix on ``fmt``'s normalised range, checked (see :meth:`convert`).
        ``say_assumed_scale``: issue an :class:`~emoembed.scales.AssumedScaleWarning` when rating values pass the
        check with no ``input_scale`` given (pointing at :meth:`convert`'s caller)."""
        rows = None  # how errors name a row: by its 0-based position, or a pandas index label (a file's line)
        if isinstance(values, (pd.Series, pd.DataFrame)):
            rows = index_row_names(values.index)
        if isinstance(values, pd.DataFrame):
            from emoembed.columns import find_column

            found = {v: find_column(values, v) for v in fmt.variables}  # matched as the CLI does: case-insensitively
            missing = [v for v, col in found.items() if col is None]
            if fmt.is_class_format and missing and values.shape[1] == 1:
                values = values.iloc[:, 0].tolist()
            elif missing:
                raise EmoembedError(f"input for format {fmt.name!r} lacks column(s) {missing}; it has {list(values.columns)} "
                                    "(names are matched case-insensitively; rename the others, e.g. "
                                    "frame.rename(columns={'V.Mean.Sum': 'valence'}))")
            else:
                values = values[[found[v] for v in fmt.variables]].to_numpy()
        if fmt.is_class_format and _is_label_list(values):
            labels = list(values) if not isinstance(values, (str, int, np.integer)) else [values]
            return class_indicators(labels, fmt, rows)
        try:
            x = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise EmoembedError(f"input for format {fmt.name!r} must be numbers with {fmt.size} columns {list(fmt.variables)}") from None
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != fmt.size:
            raise EmoembedError(f"input for format {fmt.name!r} must have {fmt.size} columns {list(fmt.variables)}, got shape {x.shape}")
        bad = ~np.isfinite(x)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            raise EmoembedError(f"{row_ref(r, '', rows)}, column {fmt.variables[c]!r}: value is missing or not finite")
        given = input_scale is not None and fmt.kind == "regression"
        scale = tuple(float(v) for v in input_scale) if given else fmt.range  # type: ignore[union-attr]
        check_scale(x, fmt.variables, scale, fmt.name, given, rows)
        if fmt.kind == "regression":
            if say_assumed_scale and not given:  # as predict's note: the scale is never assumed silently
                import warnings

                # the caller of convert: ← torch.no_grad's wrapper ← convert ← here
                warnings.warn(assumed_scale_text(fmt.name, fmt.range, cli=False), AssumedScaleWarning, stacklevel=4)
            warn_if_suspicious(x, scale, fmt.name, given)
        if given:
            x = to_normalised(x, scale, fmt.range)
        return x.astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "domain_dim": self.domain_dim,
            "domains": list(self.domains),
            "formats": {n: f.to_dict() for n, f in self.formats.items()},
            "equivalences": self.equivalences.to_dict(),
            "calibration": self.calibration,
            "trained_pairs": self.trained_pairs,
        }

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EmotionCodec:
        formats = {n: LabelFormat.from_dict(n, {k: v for k, v in f.items() if k != "name"}, "config.json") for n, f in cfg["formats"].items()}
        codec = cls(formats, cfg["dim"], cfg["hidden"], cfg["dropout"], EquivalenceClasses.from_members(cfg.get("equivalences", {})),
                    cfg.get("domains", []), cfg.get("domain_dim", 0))
        codec.calibration = {k: v for k, v in (cfg.get("calibration") or {}).items() if k in formats}  # absent in older codecs
        codec.trained_pairs = [list(p) for p in cfg.get("trained_pairs") or []]
        return codec

    @classmethod
    def validate_saved_config(cls, cfg: Mapping[str, Any], source: Path) -> None:
        from emoembed.integrity import validate_codec_config

        validate_codec_config(cfg, source)

    @classmethod
    def from_saved_config(cls, cfg: Mapping[str, Any], source: Path) -> EmotionCodec:
        try:
            return cls.from_config(cfg)
        except (KeyError, TypeError, AttributeError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"{source}: invalid codec config: {exc}") from None


_NAME_SEPARATORS = re.compile(r"[,;|]")


def check_convert_scales(src: LabelFormat, tgt: LabelFormat, input_scale: Sequence[float] | None,
                         output_scale: Sequence[float] | None) -> None:
    """Refuse (:class:`ConfigError`) the scales of :meth:`EmotionCodec.convert` that would do nothing or turn the
    values over: ``input_scale`` on a class source, ``output_scale`` on a class target, low ≥ high."""
    for name, scale, fmt, role in (("input_scale", input_scale, src, "source"), ("output_scale", output_scale, tgt, "target")):
        if scale is None:
            continue
        if fmt.kind != "regression":
            what = ("0/1 indicators or probabilities per class, or class names" if role == "source"
                    else "probabilities per class and a label")
            raise ConfigError(f"{name} is for rating formats; the {role} format {fmt.name} is {fmt.kind} ({what}), so "
                              f"{name}={tuple(scale)!r} would do nothing: leave it out")
        try:
            lo, hi = (float(v) for v in scale)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be (low, high), got {scale!r}") from None
        if not lo < hi:
            raise ConfigError(f"{name}: low must be below high, got {tuple(scale)!r} (a reversed scale is not read as "
                              f"a flipped one; flip the values instead)")


def split_class_names(cell: Any) -> list[str]:
    """The class names in one cell: separated by commas, semicolons or ``|`` (``joy,love``, ``joy; love``), also as
    a list literal as pandas writes a column of lists (``['joy', 'love']``, ``[3, 17]``); quotes and spaces around
    each name are dropped. None or an empty cell: no names."""
    if cell is None:
        return []
    text = str(cell).strip()
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        text = text[1:-1]
    return [p.strip().strip("'\"`").strip() for p in _NAME_SEPARATORS.split(text) if p.strip().strip("'\"`").strip()]


def class_index(name: str, fmt: LabelFormat) -> int | None:
    """The position of class ``name`` in ``fmt``: matched case-insensitively, then through the equivalence
    classes' aliases (``happiness`` → fer7's ``happy``); None when ``fmt`` has no such class."""
    from emoembed.formats import default_registry

    key = str(name).strip().lower()
    lookup = {v.lower(): j for j, v in enumerate(fmt.variables)}
    if key in lookup:
        return lookup[key]
    equiv = default_registry().equivalences
    by_class = {equiv.canonical(v).lower(): j for j, v in enumerate(fmt.variables)}  # happy → fer7's "happy" via joy
    return by_class.get(equiv.canonical(key).lower())


def class_indicators(labels: Sequence[Any], fmt: LabelFormat, rows: Sequence[str] | None = None) -> np.ndarray:
    """(N, k) 0/1 indicators of class names or indices, one entry per row. Names match the format's classes
    case-insensitively, then through the equivalence classes' aliases (``happiness`` → fer7's ``happy``); a
    multilabel row may hold several comma-separated names; a multiclass or distribution row at most one. An empty
    entry (``""``, None) is *no label*: its row is all zeros (:meth:`EmotionCodec.convert` gives it empty outputs). Raises :class:`EmoembedError` naming the row:
    ``rows[i]`` when given (``line 7``), else its 0-based position (``row index 4 (0-based)``)."""
    x = np.zeros((len(labels), fmt.size), dtype=np.float32)
    for i, lab in enumerate(labels):
        where = row_ref(i, "", rows)
        parts = [lab] if isinstance(lab, (int, np.integer)) else split_class_names(lab)
        if fmt.kind != "multilabel" and len(parts) > 1:
            raise EmoembedError(f"{where}: {fmt.name} is {fmt.kind}: give exactly one class name, got {lab!r}")
        for part in parts:
            if isinstance(part, (int, np.integer)) or part.isdigit():
                j = int(part)
                if not 0 <= j < fmt.size:
                    raise EmoembedError(f"{where}: class index {j} is outside 0..{fmt.size - 1} of {fmt.name}")
            elif (found := class_index(part, fmt)) is not None:
                j = found
            else:
                raise EmoembedError(f"{where}: unknown class {part!r} for {fmt.name}; classes: {', '.join(fmt.variables)}")
            x[i, j] = 1.0
    return x


def tensors_fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over named tensors (names and bytes, in name order): equal fingerprints, identical tensors."""
    import hashlib

    h = hashlib.sha256()
    for key, t in sorted(tensors.items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def head_fingerprint(codec: EmotionCodec) -> str:
    """SHA-256 of all of a codec's tensors: content models trained on codecs with equal fingerprints share one
    emotion space (their embeddings are comparable)."""
    return tensors_fingerprint(codec.state_dict())


def _unlabelled_rows(values: Any, fmt: LabelFormat) -> np.ndarray:
    """Rows of class-name input (a list/Series of names, or a one-column frame of them) with no name in them: an
    empty cell is *no label*, so those rows get empty outputs instead of what the codec makes of all zeros."""
    if isinstance(values, pd.DataFrame):
        if not (fmt.is_class_format and values.shape[1] == 1 and values.columns[0] not in fmt.variables):
            return np.zeros(len(values), dtype=bool)
        values = values.iloc[:, 0]
    if not fmt.is_class_format or isinstance(values, (str, int, np.integer)) or not _is_label_list(values):
        return np.zeros(0, dtype=bool)  # numbers, or one label: nothing is unlabelled
    return np.array([not isinstance(v, (int, np.integer)) and not split_class_names(v) for v in values], dtype=bool)


def _is_label_list(values: Any) -> bool:
    if isinstance(values, (str, int, np.integer)):
        return True
    if isinstance(values, (list, tuple, pd.Series, np.ndarray)):
        seq = list(values)
        return bool(seq) and all(isinstance(v, (str, int, np.integer)) for v in seq)
    return False


def codec_for(formats: Iterable[str], registry: FormatRegistry, dim: int = 100, hidden: Sequence[int] = (128, 128),
              dropout: float = 0.2, domains: Sequence[str] = (), domain_dim: int = 0) -> EmotionCodec:
    fmts = {n: registry.get(n) for n in formats}
    return EmotionCodec(fmts, dim, hidden, dropout, registry.equivalences, domains, domain_dim)

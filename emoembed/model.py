"""EmotionModel: a trained content encoder on top of a frozen codec — predicts any label format the codec
knows (zero-shot for formats its training data never had) and encodes content into the emotion space.

    model = EmotionModel.from_pretrained("runs/words")
    model.predict(["happy", "grief"], format="be5")      # DataFrame, one column per variable
    model.encode(["happy", "grief"])                      # (2, d) numpy array

Saved (:class:`~emoembed.pretrained.PretrainedModule`) as ``model.safetensors`` (encoder + codec weights) and ``config.json`` (encoder config, codec config,
training formats and source scales): no YAML file or dataset is needed to load it.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from emoembed.codec import EmotionCodec
from emoembed.coverage import check_content
from emoembed.encoders.base import ContentEncoder, encoder_class
from emoembed.errors import CheckpointError, ConfigError, EmoembedError, index_row_names
from emoembed.formats import LabelFormat
from emoembed.format_kinds import activate, format_output
from emoembed.inference import embed_items, evaluate_task
from emoembed.integrity import INTEGRITY_KEYS, WEIGHTS_DIGEST_KEY, validate_model_config
from emoembed.pretrained import PretrainedModule, saved_model_type
from emoembed.tasks import Task

Items = Sequence[Any] | str


BACKENDS = ("auto", "torch", "onnx")


def _onnx_backend():
    """:mod:`emoembed.onnx_backend`, imported on first use (it builds on this module; onnxruntime loads only then)."""
    import importlib

    return importlib.import_module("emoembed.onnx_backend")


class DirectHeads(nn.Module):
    """The no-codec baseline: one trainable linear layer (with bias) per format on the encoder output."""

    def __init__(self, formats: Mapping[str, LabelFormat], dim: int):
        super().__init__()
        self.formats = dict(formats)
        self.layers = nn.ModuleDict({n: nn.Linear(dim, f.size) for n, f in self.formats.items()})

    def decode(self, fmt: str, z: torch.Tensor) -> torch.Tensor:
        if fmt not in self.layers:
            raise ConfigError(f"this baseline model was trained for {sorted(self.layers)}; it cannot predict {fmt!r} "
                              "(zero-shot needs codec heads)")
        return self.layers[fmt](z)


class EmotionModel(PretrainedModule):
    model_type = "emotion-model"
    codec_prefix = "codec."

    def __init__(self, encoder: ContentEncoder, codec: EmotionCodec, direct_heads: DirectHeads | None = None,
                 meta: Mapping[str, Any] | None = None):
        super().__init__()
        self.encoder = encoder
        self.codec = codec
        self.codec.requires_grad_(False)
        self.direct_heads = direct_heads
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ properties
    @property
    def modality(self) -> str:
        return self.encoder.modality

    @property
    def heads(self) -> nn.Module:
        return self.direct_heads if self.direct_heads is not None else self.codec

    @property
    def trained_formats(self) -> list[str]:
        return list(self.meta.get("trained_formats", []))

    @property
    def formats(self) -> dict[str, LabelFormat]:
        """Every format this model can predict: all of the codec's (direct baselines: only their own)."""
        return dict(self.direct_heads.formats) if self.direct_heads is not None else dict(self.codec.formats)

    def format(self, name: str) -> LabelFormat:
        fmts = self.formats
        if name not in fmts:
            raise ConfigError(f"this model cannot predict format {name!r}; it knows: {', '.join(fmts)}"
                              + (" (a direct baseline predicts only its training formats)" if self.direct_heads is not None else ""))
        return fmts[name]

    def _device(self) -> torch.device:
        param = next(self.encoder.parameters(), None)  # an ONNX-backed encoder has none: it runs on CPU
        return param.device if param is not None else torch.device("cpu")

    # ------------------------------------------------------------------ inference
    def _items(self, items: Items, rows: Sequence[str] | None = None) -> list[Any]:
        if isinstance(items, (str, Path)):
            items = [items]
        elif isinstance(items, pd.Series):
            rows = rows if rows is not None else index_row_names(items.index)
            items = items.tolist()
        elif items is None:
            raise EmoembedError("no input: give a list of items")
        items = list(items)
        if not items:
            raise EmoembedError("no input: the list of items is empty")
        if rows is not None and len(rows) != len(items):
            raise EmoembedError(f"rows names {len(rows)} rows for {len(items)} items")
        return self.encoder.check_items(items, where="input", rows=rows)

    def encode(self, items: Items, batch_size: int = 64, normalize: bool = False, show_progress: bool = False) -> np.ndarray:
        """Emotion-space embeddings (N, d), in input order (sentence-transformers' ``encode``)."""
        clean = self._items(items)
        z, undefined = embed_items(self.encoder, clean, batch_size, self._device(), show_progress)
        if normalize:
            z = torch.nn.functional.normalize(z, dim=-1)
        out = z.numpy()
        if undefined is not None:
            out[undefined.numpy()] = np.nan
        return out

    @torch.no_grad()
    def predict(self, items: Items, format: str, scale: str | Sequence[float] = "normalized", batch_size: int = 64,
                clip: bool = True, show_progress: bool = False, oov: str = "vector",
                coverage_column: bool = False, on_bad_image: str | None = None,
                rows: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per item, one column per variable of ``format`` (class formats: probabilities + ``label``).
        ``df.attrs["zero_shot_note"]`` says when the model had no gold training labels for (some of) the format's
        variables — the note ``emoembed predict`` prints (:func:`emoembed.conversion.model_zero_shot_note`) — and is
        None otherwise.

        ``scale``: ``"normalized"`` (the format's range, e.g. [-1, 1] for VAD), ``"source"`` (the rating scale of
        the training dataset in that format, e.g. Warriner's 1–9) or ``(low, high)``. Unknown items (words
        without a vector, texts of unknown tokens only) are reported as an ``UnknownContentWarning`` and handled by
        ``oov``: ``vector`` (scored with the learned unknown-word vector), ``nan`` (empty outputs) or ``error``
        (DataError); ``coverage_column`` adds ``coverage``, the share of each item the encoder knows (see
        :mod:`emoembed.coverage`).

        Image models: ``on_bad_image`` — ``"error"`` (a missing or undecodable image raises a DataError naming it) or
        ``"skip"`` (it is reported on stderr and its outputs are left empty, NaN); None keeps the model's own setting
        (its recipe's ``on_bad_image``), as ``predict --on-bad-image`` does. ``rows`` name the items in error messages
        (e.g. ``["in.csv, line 2", …]``); by default a list's items are named by their 0-based position (``input,
        row index 4 (0-based)``) and a Series' by its index labels. Raises DataError for a missing/empty item or a bad
        image, ConfigError for an unknown format, ``on_bad_image`` on a model that is not an image model, ``oov`` other than
        ``vector`` on an image model, or a ``(low, high)`` scale for a class format."""
        fmt = self.format(format)
        if fmt.kind != "regression" and not isinstance(scale, str):
            raise ConfigError(f"scale is for rating formats; {fmt.name} is {fmt.kind} (probabilities per class and a "
                              f"label), so scale={tuple(scale)!r} would do nothing: leave it out")
        if oov != "vector" and self.modality == "image":
            raise ConfigError(f"oov={oov!r} is for word and text models: an image model has no unknown content (a bad "
                              "image file is handled by on_bad_image)")
        with self._bad_image_policy(on_bad_image):
            df = self._predict(items, fmt, scale, batch_size, clip, show_progress, oov, coverage_column, rows)
        from emoembed.conversion import model_prediction_note

        df.attrs["zero_shot_note"] = model_prediction_note(self, fmt.name)  # the note `emoembed predict` prints
        return df

    @contextlib.contextmanager
    def _bad_image_policy(self, on_bad_image: str | None):
        """The encoder's ``on_bad_image`` set to ``on_bad_image`` for one call (None: unchanged)."""
        if on_bad_image is None:
            yield
            return
        if self.modality != "image":
            raise ConfigError(f"on_bad_image is for image models; this model's modality is {self.modality!r}")
        if on_bad_image not in ("skip", "error"):
            raise ConfigError(f"on_bad_image must be 'skip' or 'error', got {on_bad_image!r}")
        target = getattr(self.encoder, "data_side", self.encoder)  # an ONNX-backed encoder: its torch data side
        before = target.on_bad_image
        target.on_bad_image = on_bad_image
        try:
            yield
        finally:
            target.on_bad_image = before

    @property
    def calibration(self) -> dict[str, dict[str, Any]]:
        """The model's own multilabel decision rules (``config.json`` ``calibration``;
        :func:`emoembed.training.encoder.fit_model_calibration`), by format; empty for models saved without them."""
        return dict(self.meta.get("calibration") or {})

    def decision_rule(self, fmt: str) -> dict[str, Any] | None:
        """The multilabel decision rule ``predict`` and ``evaluate`` apply to ``fmt``: the model's own (fitted on
        its outputs, for the formats it was trained in), else the codec's; None (plain p > 0.5) for direct heads."""
        if self.direct_heads is not None:
            return None
        return self.calibration.get(fmt) or self.codec.calibration.get(fmt)

    def _uses_zero_shot_rule(self, fmt: str) -> bool:
        """Whether ``fmt``'s multilabel decisions follow the zero-shot rule of :func:`emoembed.calibration.decide`
        (the classes at least half as probable as the top one) instead of the codec's fitted thresholds. The
        thresholds were fitted on label sources of ``fmt``'s own island of the codec; they do not fit this model's
        outputs when some variable of ``fmt`` had no labels in its training (gold or codec-made, e.g. GoEmotions'
        fine classes for a model trained on Ekman's seven: a threshold of .08 for ``gratitude`` labelled neutral
        facts), nor when no format it was trained on shares an island with ``fmt``
        (:meth:`emoembed.codec.EmotionCodec.same_island`)."""
        from emoembed.conversion import model_zero_shot_note

        augmented = set(self.meta.get("augmented_formats", []) or [])
        trained = set(self.trained_formats) | augmented
        if self.direct_heads is not None or not trained or fmt in trained:
            return False
        links = [self.codec.same_island(t, fmt) for t in trained if t in self.codec.formats]
        if links and all(x is False for x in links):
            return True
        return model_zero_shot_note(self, fmt) is not None

    def _predict(self, items: Items, fmt: LabelFormat, scale, batch_size: int, clip: bool, show_progress: bool,
                 oov: str, coverage_column: bool, rows: Sequence[str] | None) -> pd.DataFrame:
        if rows is None and isinstance(items, pd.Series):  # as _items names them: by the Series' index labels
            rows = index_row_names(items.index)
        clean = self._items(items, rows)
        coverage = check_content(self.encoder, clean, oov, rows)
        z, undefined = embed_items(self.encoder, clean, batch_size, self._device(), show_progress)
        if undefined is not None and undefined.any() and hasattr(self.encoder, "report_undecodable"):
            self.encoder.report_undecodable(clean, undefined.numpy(), rows=rows)
        raw = self.heads.decode(fmt.name, z.to(self._device()))
        out = activate(fmt, raw.float()).cpu().numpy()
        rule = self.decision_rule(fmt.name)
        df = format_output(out, fmt, self._output_scale(fmt, scale), clip, rule, zero_shot=self._uses_zero_shot_rule(fmt.name))
        if undefined is not None:
            df.loc[undefined.numpy(), [c for c in df.columns if c != "label"]] = np.nan
            if "label" in df:
                df.loc[undefined.numpy(), "label"] = ""
        if coverage is not None and oov == "nan" and (coverage <= 0).any():
            df.loc[coverage <= 0, [c for c in df.columns if c != "label"]] = np.nan
            if "label" in df:
                df.loc[coverage <= 0, "label"] = ""
        if coverage_column and coverage is not None:
            df["coverage"] = coverage
        df.index = pd.Index([str(x) for x in clean], name=self.modality)
        return df

    def _output_scale(self, fmt: LabelFormat, scale: str | Sequence[float]) -> tuple[float, float] | None:
        if isinstance(scale, str):
            if scale in ("normalized", "normalised"):
                return None
            if scale != "source":
                raise ConfigError(f"scale must be 'normalized', 'source' or (low, high), got {scale!r}")
            if fmt.kind != "regression":
                return None
            scales = self.meta.get("source_scales", {}).get(fmt.name)
            if not scales:
                raise ConfigError(f"no source scale is known for format {fmt.name!r} (the model was not trained on a "
                                  f"dataset in it); pass scale=(low, high)")
            lows = {tuple(v) for v in scales.values()}
            if len(lows) != 1:
                raise ConfigError(f"format {fmt.name!r} has per-variable source scales {scales}; pass scale=(low, high)")
            return tuple(next(iter(lows)))  # type: ignore[return-value]
        lo, hi = (float(v) for v in scale)
        if not lo < hi:
            raise ConfigError(f"scale: low must be below high, got {scale!r}")
        return lo, hi

    def evaluate(self, task: Task, split: str = "test", format: str | None = None, batch_size: int = 256) -> dict:
        """Metrics of a dataset split; ``zero_shot`` is true when some variable of the format had no gold training
        labels (the rule of ``predict``'s note, :func:`emoembed.conversion.model_zero_shot_note`, which is also
        returned as ``zero_shot_note``: ``valence`` is not zero-shot for a ``vad`` model, ``be6`` is partly zero-shot
        for a ``be5`` one)."""
        fmt = self.format(format or task.fmt.name)
        if fmt.name != task.fmt.name:
            raise ConfigError(f"dataset {task.name!r} has gold labels in {task.fmt.name!r}, not {fmt.name!r}")
        if not task.items.get(split):
            raise EmoembedError(f"dataset {task.name!r} has no {split!r} items")
        rows = task.rows.get(split) if task.rows else None
        task = Task(task.name, task.fmt, {split: self.encoder.check_items(task.items[split], f"{task.name} ({split})", rows)},
                    {split: task.labels[split]}, task.scales, task.modality)
        out = evaluate_task(self.encoder, self.heads, task, split, batch_size, self._device(), fmt,
                            rule=self.decision_rule(fmt.name), zero_shot_rule=self._uses_zero_shot_rule(fmt.name))
        from emoembed.conversion import model_zero_shot_note

        note = model_zero_shot_note(self, fmt.name)  # variables, not format names: valence is known to a vad model
        out.update({"dataset": task.name, "format": fmt.name, "split": split, "zero_shot": note is not None,
                    "zero_shot_note": note})
        return out

    def with_codec(self, codec: EmotionCodec) -> EmotionModel:
        """This model's encoder on ``codec`` — a codec extended from this model's own by ``map --extend``: every
        format of the old codec must be there with bit-identical label encoder and head, so the encoder's
        embeddings mean the same; the new formats then come zero-shot. Returns a new model sharing the encoder."""
        if self.direct_heads is not None:
            raise ConfigError("a direct baseline has no codec heads to extend; train it with --heads codec")
        missing = [n for n in self.codec.formats if n not in codec.formats]
        if missing:
            raise ConfigError(f"the new codec lacks format(s) {missing} of this model's codec; it is not an extension of it")
        if codec.dim != self.codec.dim:
            raise ConfigError(f"the new codec's space has {codec.dim} dimensions, this model's {self.codec.dim}")
        moved = codec.changed_formats(self.codec.format_fingerprints())
        if moved:
            raise ConfigError(f"the new codec's weights for {moved} differ from this model's codec: it was not made by "
                              "`emoembed map --extend` from this model's codec, so the encoder's embeddings would be misread")
        added = [n for n in codec.formats if n not in self.codec.formats]
        meta = dict(self.meta) | {"extended_formats": list(self.meta.get("extended_formats", [])) + added}
        out = type(self)(self.encoder, copy.deepcopy(codec).to(self._device()), None, meta)
        out.eval()
        return out

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_training(cls, result: Any, codec: EmotionCodec, tasks: Sequence[Task], recipe: Mapping[str, Any]) -> EmotionModel:
        scales: dict[str, dict[str, list[float]]] = {}
        for t in tasks:
            if t.scales and t.fmt.name not in scales:
                scales[t.fmt.name] = dict(t.scales)
        meta = {"trained_formats": sorted({t.fmt.name for t in tasks}), "augmented_formats": list(recipe.get("augment", [])),
                "datasets": [t.name for t in tasks], "source_scales": scales, "recipe": dict(recipe)}
        direct = result.heads if isinstance(result.heads, DirectHeads) else None
        return cls(result.encoder, codec, direct, meta)

    def config(self) -> dict[str, Any]:
        return {"modality": self.modality, "encoder": self.encoder.config(), "codec": self.codec.config(),
                "heads": "direct" if self.direct_heads is not None else "codec",
                "direct_formats": {n: f.to_dict() for n, f in self.direct_heads.formats.items()} if self.direct_heads is not None else None,
                **self.meta}

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu", backend: str = "auto",
                        threads: int | None = None) -> EmotionModel:
        """Load a saved model. ``backend``: ``"auto"`` (what the folder holds), ``"torch"`` or ``"onnx"`` (a folder
        written by :meth:`export_onnx`, run by onnxruntime on CPU with ``threads`` threads, default torch's; see
        :mod:`emoembed.onnx_backend`). CheckpointError when the folder holds the other kind."""
        from emoembed.model_zoo import resolve_model_dir
        from emoembed.pretrained import read_config

        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        directory = resolve_model_dir(directory)  # emoembed/<name>: a model shipped with the package
        cfg = read_config(directory, cls.model_type)
        onnx_folder = isinstance(cfg.get("backend"), Mapping) and cfg["backend"].get("name") == "onnx"
        if backend == "onnx" or (backend == "auto" and onnx_folder):
            return _onnx_backend().load_onnx_model(directory, threads)
        if onnx_folder:
            raise CheckpointError(f"{directory} holds an ONNX export; load it with backend='onnx' (predict --backend onnx)")
        return super().from_pretrained(directory, device)

    def export_onnx(self, directory: str | Path, quantize: str | None = None) -> Path:
        """Write this model as an ONNX Runtime model folder (``quantize``: None or ``"int8"``); see
        :mod:`emoembed.onnx_backend`. Load it with ``from_pretrained(directory)``."""
        return _onnx_backend().export_onnx(self, directory, quantize)

    @classmethod
    def validate_saved_config(cls, cfg: Mapping[str, Any], source: Path) -> None:
        validate_model_config(cfg, source)
        try:
            enc_cls = encoder_class(cfg["modality"])
        except ConfigError as exc:
            raise CheckpointError(f"{source}: field 'modality': {exc}") from None
        enc_cls.validate_saved_config(cfg["encoder"], source)

    @classmethod
    def from_saved_config(cls, cfg: Mapping[str, Any], source: Path) -> EmotionModel:
        try:
            enc_cls = encoder_class(cfg["modality"])
            legacy = None if WEIGHTS_DIGEST_KEY in cfg else Path.cwd()  # saved before paths were model-relative
            encoder = enc_cls.from_config(enc_cls.config_relative_to(cfg["encoder"], source.parent, legacy))
            codec = EmotionCodec.from_config(cfg["codec"])
            direct = None
            if cfg.get("heads") == "direct":
                fmts = {n: LabelFormat.from_dict(n, {k: v for k, v in f.items() if k != "name"}, "config.json")
                        for n, f in cfg["direct_formats"].items()}
                direct = DirectHeads(fmts, encoder.dim)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CheckpointError(f"{source}: invalid model config: missing or bad field {exc}") from None
        meta = {k: v for k, v in cfg.items() if k not in ("model_type", "emoembed_version", "checkpoint_format", "modality",
                                                         "encoder", "codec", "heads", "direct_formats", "backend", *INTEGRITY_KEYS)}
        return cls(encoder, codec, direct, meta)


def load_model(directory: str | Path, backend: str = "auto") -> EmotionModel | EmotionCodec:
    """Whatever ``directory`` holds: a content model (on ``backend``) or a codec."""
    if saved_model_type(directory) == EmotionCodec.model_type:
        if backend == "onnx":
            raise ConfigError(f"{directory} is a codec; --backend onnx is for text and image models")
        return EmotionCodec.from_pretrained(directory)
    return EmotionModel.from_pretrained(directory, backend=backend)

"""The contract between content encoders (word, text, image) and the one stage-2 training loop.

A :class:`ContentEncoder` turns raw items (words, texts, image paths…) into d-dimensional emotion embeddings:

* ``check_items(items, where)`` validates raw items *before* any training or prediction and raises
  :class:`~emoembed.errors.DataError` naming the row (``None``, empty strings, unreadable files…). It returns
  the cleaned items (e.g. stripped strings).
* ``collate(items, train)`` turns a list of items into a dict of CPU tensors (token ids, vectors, pixels…); the loop
  moves them to the device. It runs on the data side, so expensive lookups (vectors, image decoding) go here.
* ``forward(batch)`` maps that dict to a ``(B, dim)`` float tensor: the embedding the frozen codec heads decode.
* ``config()`` / ``from_config(cfg)``: a JSON-serialisable description (architecture and where the backbone's
  pretrained weights come from) that rebuilds the module; the weights themselves are saved by the model that
  owns the encoder (``model.safetensors``).
* ``input_report(items)`` (optional): counts worth printing before training, e.g. OOV rate or truncated texts.

An :class:`AuxiliaryObjective` adds loss terms to the same loop (e.g. CARL's MCCL + PTD). It is an
``nn.Module`` whose trainable parameters join the optimizer, whose state is checkpointed with the run, and
which is dropped from the saved model.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from emoembed.errors import ConfigError

from emoembed.encoders import names

ENCODERS: dict[str, type[ContentEncoder]] = {}
OBJECTIVES: dict[str, type[AuxiliaryObjective]] = {}
# name -> module that registers it on import (kept lazy: text pulls in transformers, image pulls in timm); the
# names and descriptions live in emoembed.encoders.names, which imports no torch
_LAZY_ENCODERS = {n: module for n, (module, _) in names.ENCODERS.items()}
_LAZY_OBJECTIVES = {n: module for n, (module, _) in names.OBJECTIVES.items()}

def register_encoder(cls: type[ContentEncoder]) -> type[ContentEncoder]:
    ENCODERS[cls.modality] = cls
    return cls


def register_objective(cls: type[AuxiliaryObjective]) -> type[AuxiliaryObjective]:
    OBJECTIVES[cls.name] = cls
    return cls


def _registered(table: dict, lazy: dict[str, str], name: str, kind: str):
    """``table[name]``, importing the module that registers it on first use; a clear error for unknown names."""
    if name not in table and name in lazy:
        import importlib

        importlib.import_module(lazy[name])
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; known: {sorted(set(table) | set(lazy))}")
    return table[name]


def known_encoders() -> list[str]:
    """Every content-encoder modality (registered or lazily importable)."""
    return sorted(set(ENCODERS) | set(_LAZY_ENCODERS))


def known_objectives() -> list[str]:
    """Every auxiliary objective name (registered or lazily importable)."""
    return sorted(set(OBJECTIVES) | set(_LAZY_OBJECTIVES))


def encoder_class(modality: str) -> type[ContentEncoder]:
    return _registered(ENCODERS, _LAZY_ENCODERS, modality, "modality")


def objective_class(name: str) -> type[AuxiliaryObjective]:
    return _registered(OBJECTIVES, _LAZY_OBJECTIVES, name, "objective")


class ContentEncoder(nn.Module):
    modality: ClassVar[str] = ""
    # config fields naming files or folders → the prefix their value carries ("" = a plain path, "file:" …);
    # relative paths in a saved model's config.json are taken relative to the model folder
    path_fields: ClassVar[dict[str, str]] = {}

    # False: every path field must be a string (a word encoder always reads vectors); True: null is allowed too
    nullable_paths: ClassVar[bool] = True

    @classmethod
    def validate_saved_config(cls, cfg: Mapping[str, Any], source: str | Path, prefix: str = "encoder.") -> None:
        """Refuse (CheckpointError naming ``source`` and the field, e.g. ``encoder.hidden``) a saved encoder
        config whose common fields have the wrong type or range, before anything is built from it: ``dim``,
        ``max_length``, ``image_size`` positive integers, ``hidden`` a list of positive integers, ``dropout``
        and ``input_dropout`` numbers in [0, 1), each of :attr:`path_fields` a string (or null where allowed)."""
        from emoembed.integrity import bad_field

        def pos_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v > 0

        def prob(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1

        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "dim": (pos_int, "a positive integer"), "max_length": (pos_int, "a positive integer"),
            "image_size": (pos_int, "a positive integer"),
            "hidden": (lambda v: isinstance(v, list) and all(pos_int(h) for h in v), "a list of positive integers"),
            "dropout": (prob, "a number in [0, 1)"), "input_dropout": (prob, "a number in [0, 1)")}
        for name in cls.path_fields:
            checks[name] = ((lambda v: isinstance(v, str) or v is None) if cls.nullable_paths else
                            (lambda v: isinstance(v, str)), "a path or spec (a string)")
        for key, (check, want) in checks.items():
            if key in cfg and not check(cfg[key]):
                raise bad_field(source, f"{prefix}{key}", want, cfg[key])

    @classmethod
    def config_relative_to(cls, cfg: Mapping[str, Any], base_dir: str | Path,
                           legacy_base: str | Path | None = None) -> dict[str, Any]:
        """``cfg`` with the relative paths of :attr:`path_fields` made absolute against ``base_dir`` (``packaged:``
        specs, absolute paths and other values unchanged). ``legacy_base``: for models saved before paths were
        model-relative, where a path missing from ``base_dir`` is looked up instead (with a warning)."""
        out = dict(cfg)
        for name, prefix in cls.path_fields.items():
            value = out.get(name)
            if not isinstance(value, str) or not value.startswith(prefix) or value.startswith("packaged:"):
                continue
            raw = value[len(prefix):]
            path = Path(raw).expanduser()
            if raw and not path.is_absolute():
                resolved = Path(os.path.abspath(Path(base_dir) / path))
                if not resolved.exists() and legacy_base is not None and (Path(legacy_base) / path).exists():
                    import warnings

                    resolved = Path(os.path.abspath(Path(legacy_base) / path))
                    warnings.warn(f"{base_dir}: {name} {raw!r} is not in the model folder; using {resolved} (a model "
                                  "saved by an older emoembed, whose paths were relative to the working directory)",
                                  stacklevel=2)
                out[name] = prefix + str(resolved)
        return out

    def __init__(self, dim: int):
        super().__init__()
        self.dim = int(dim)

    # -- data side -------------------------------------------------------------------------------
    def check_items(self, items: Sequence[Any], where: str = "input", rows: Sequence[str] | None = None) -> list[Any]:
        """The items, cleaned (stripped strings…); a DataError naming the bad item's row: ``rows[i]`` when given
        (``ratings.csv, line 7``), else ``WHERE, row index i (0-based)`` (:func:`emoembed.errors.row_ref`)."""
        raise NotImplementedError

    def collate(self, items: Sequence[Any], train: bool = False) -> dict[str, torch.Tensor]:
        """``train`` selects training-time input augmentation (random crops for images); off for eval/predict."""
        raise NotImplementedError

    def input_report(self, items: Sequence[Any]) -> dict[str, Any]:
        return {}

    def sort_key(self, item: Any) -> float:
        """Items of similar key are batched together by ``encode`` (e.g. text length); 0 = keep order."""
        return 0.0

    def sort_keys(self, items: Sequence[Any]) -> Sequence[float]:
        """:meth:`sort_key` of many items at once (what ``encode``/``predict`` batch by); encoders override it when
        a batched computation is cheaper or more exact (texts: token counts from one tokenizer call)."""
        return [self.sort_key(x) for x in items]

    # -- model side ------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:  # (B, dim)
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ContentEncoder:
        raise NotImplementedError

    @classmethod
    def from_recipe(cls, encoder_cfg: Mapping[str, Any], dim: int) -> ContentEncoder:
        """Build from the ``encoder:`` section of a recipe in ``encoders/`` (pretrained backbone loaded)."""
        return cls.from_config({**encoder_cfg, "dim": dim})


@dataclass
class StepContext:
    """What the loop hands an auxiliary objective for one batch (already on the device).

    ``encoder`` is the (possibly DDP-wrapped) online encoder; ``module`` the bare encoder. ``z`` the embeddings
    of this batch (graph attached), ``labels`` the gold labels of ``fmt`` (normalised), ``codec`` the frozen
    codec (``codec.convert``-style synthetic labels: ``synthetic(target_format)``)."""

    encoder: nn.Module
    module: ContentEncoder
    batch: Mapping[str, torch.Tensor]
    z: torch.Tensor
    fmt: str
    labels: torch.Tensor
    codec: nn.Module
    synthetic: Callable[[str], torch.Tensor]
    step: int
    total_steps: int
    extras: dict[str, Any] = field(default_factory=dict)


class AuxiliaryObjective(nn.Module):
    """Extra loss terms of the stage-2 loop. ``loss`` returns the weighted extra loss and named float parts
    for the log; ``after_step`` runs after each optimizer step (e.g. an EMA update of a target network)."""

    name: ClassVar[str] = ""

    def setup(self, encoder: ContentEncoder) -> None:
        """Called once with the bare encoder before the optimizer is built (e.g. to copy a target network)."""

    def loss(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def deferred_loss(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]] | None:
        """Loss terms built only after the loop has run the backward of (main loss + :meth:`loss`) for ``ctx``
        and so freed the training forward's graph — e.g. a second forward on perturbed inputs — which the loop then
        backpropagates on its own; None (the default) when there are none. The loop asks for them only when
        ``ctx.extras["split_backward"]`` is true (one process: a DistributedDataParallel backward must see every
        gradient at once), and an objective defers terms only then."""
        return None

    def after_step(self, encoder: ContentEncoder, step: int, total_steps: int) -> None:
        """After each optimizer step."""

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

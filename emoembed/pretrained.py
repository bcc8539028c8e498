"""The one persistence convention (Hugging Face's ``save_pretrained``/``from_pretrained``; sentence-transformers'
``Module`` is the model): a directory with a JSON config naming its type and the checkpoint format, and the
weights as safetensors — never pickle.

:class:`PretrainedModule` implements both methods for the torch modules (:class:`~emoembed.codec.EmotionCodec`,
:class:`~emoembed.model.EmotionModel`): a subclass gives ``model_type``, :meth:`~PretrainedModule.config` (its own
fields) and :meth:`~PretrainedModule.from_saved_config` (the module, built from those fields, without weights).
:class:`~emoembed.retrieval.EmotionIndex` follows the same two-method contract (:class:`Pretrained`) with its own
files (embeddings, item rows, index.json), written as one folder atomically.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from emoembed import CHECKPOINT_FORMAT_VERSION, __version__
from emoembed.errors import CheckpointError
from emoembed.integrity import integrity_record, verify_weights
from emoembed.io import atomic_write_json, load_safetensors, read_json, save_safetensors_atomic

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
T = TypeVar("T", bound="PretrainedModule")


@runtime_checkable
class Pretrained(Protocol):
    """What every saved emoembed object offers: ``obj.save_pretrained(directory)`` and
    ``type(obj).from_pretrained(directory)``."""

    def save_pretrained(self, directory: str | Path) -> Path: ...

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Any: ...


class PretrainedModule(nn.Module):
    """An ``nn.Module`` saved as ``config.json`` (``model_type``, ``emoembed_version``, ``checkpoint_format``, then
    :meth:`config`) and ``model.safetensors`` (its whole state dict, on CPU)."""

    model_type: ClassVar[str] = ""
    codec_prefix: ClassVar[str] = ""  # where the codec's tensors are in the state dict ("codec." in a content model)

    def config(self) -> dict[str, Any]:
        """The JSON-serialisable fields that rebuild this module (without weights)."""
        raise NotImplementedError

    @classmethod
    def from_saved_config(cls: type[T], cfg: Mapping[str, Any], source: Path) -> T:
        """The module described by ``cfg`` (a config read from ``source``), with freshly initialised weights;
        CheckpointError naming ``source`` when a field is missing or bad."""
        raise NotImplementedError

    @classmethod
    def validate_saved_config(cls, cfg: Mapping[str, Any], source: Path) -> None:
        """CheckpointError naming the field when ``cfg`` (valid JSON) is not of the shape this class saves."""

    def header(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "emoembed_version": __version__, "checkpoint_format": CHECKPOINT_FORMAT_VERSION}

    def save_pretrained(self, directory: str | Path, extra_config: Mapping[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` and ``config.json`` (each atomically) into ``directory``; ``extra_config`` is
        added to the config (e.g. the recipe a codec was trained with)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        cfg = self.header() | self.config() | dict(extra_config or {}) | integrity_record(state, self.codec_prefix)
        save_safetensors_atomic(state, directory / WEIGHTS_NAME)
        atomic_write_json(cfg, directory / CONFIG_NAME)
        return directory

    @classmethod
    def from_pretrained(cls: type[T], directory: str | Path, device: str | torch.device = "cpu") -> T:
        """The module saved in ``directory``, on ``device`` (``auto``: CUDA, else MPS, else CPU), in eval mode.
        CheckpointError (naming the file) for a missing/invalid config, another model type or checkpoint format,
        or weights that do not match the config. ``emoembed/<name>`` loads a model shipped with the package
        (:mod:`emoembed.model_zoo`; `emoembed list pretrained`)."""
        from emoembed.model_zoo import resolve_model_dir

        directory = resolve_model_dir(directory)
        cfg = read_config(directory, cls.model_type)
        cls.validate_saved_config(cfg, directory / CONFIG_NAME)
        model = cls.from_saved_config(cfg, directory / CONFIG_NAME)
        state = load_safetensors(directory / WEIGHTS_NAME)
        load_state_strict(model, state, directory / WEIGHTS_NAME)
        verify_weights(cfg, state, directory, cls.codec_prefix)  # digests in config.json, no NaN/Inf
        if str(device) == "auto":
            from emoembed.inference import pick_device

            device = pick_device("auto")
        model.to(torch.device(device))
        model.eval()
        return model


STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def store_weights_as(directory: str | Path, dtype: str, keep_prefix: str = "codec.") -> dict[str, int]:
    """Rewrite ``directory``'s ``model.safetensors`` with its floating-point tensors stored as ``dtype``
    (``float16``: half the bytes; ``float32``: as trained) and update the weights digest in ``config.json`` (key
    ``storage_dtype`` records the choice). Tensors whose names start with ``keep_prefix`` — a model's frozen codec —
    keep their dtype, so the codec fingerprint (and every check that a model sits on a given codec) is unchanged.
    Loading needs nothing special: ``from_pretrained`` copies each stored tensor into the module's float32
    parameters. Both files are replaced atomically. Returns ``{"before": bytes, "after": bytes}`` of the weights
    file. Raises :class:`CheckpointError` for an unknown ``dtype`` or a folder without weights/config."""
    from emoembed.integrity import WEIGHTS_DIGEST_KEY, weights_digest

    if dtype not in STORAGE_DTYPES:
        raise CheckpointError(f"storage dtype {dtype!r}: use one of {', '.join(STORAGE_DTYPES)}")
    directory = Path(directory)
    weights, config = directory / WEIGHTS_NAME, directory / CONFIG_NAME
    cfg = read_json(config, missing=f"{directory}: no {CONFIG_NAME}")
    before = weights.stat().st_size if weights.exists() else 0
    state = load_safetensors(weights)
    target = STORAGE_DTYPES[dtype]
    state = {k: (v.to(target) if v.is_floating_point() and not k.startswith(keep_prefix) else v).contiguous()
             for k, v in state.items()}
    cfg[WEIGHTS_DIGEST_KEY] = weights_digest(state)
    cfg["storage_dtype"] = dtype
    save_safetensors_atomic(state, weights)
    atomic_write_json(cfg, config)
    return {"before": before, "after": weights.stat().st_size}


def read_config(directory: Path, model_type: str) -> dict[str, Any]:
    """``directory``'s config.json, checked to be of ``model_type`` and this emoembed's checkpoint format."""
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a model directory")
    cfg = read_json(path, missing=f"{directory}: no {CONFIG_NAME}; is this a model saved by emoembed?")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected a JSON object (model_type, formats…), got {type(cfg).__name__}")
    if cfg.get("model_type") != model_type:
        raise CheckpointError(f"{path}: model_type is {cfg.get('model_type')!r}, expected {model_type!r}")
    if cfg.get("checkpoint_format") != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {cfg.get('checkpoint_format')!r} was written by emoembed "
                              f"{cfg.get('emoembed_version', '?')}; this emoembed {__version__} reads format {CHECKPOINT_FORMAT_VERSION}")
    return cfg


def saved_model_type(directory: str | Path) -> str | None:
    """``model_type`` of a saved codec or model directory (``emotion-codec`` / ``emotion-model``), or of a packaged
    model ``emoembed/<name>``."""
    from emoembed.model_zoo import resolve_model_dir

    directory = resolve_model_dir(directory)
    cfg = read_json(Path(directory) / CONFIG_NAME,
                    missing=f"{directory}: no {CONFIG_NAME}; is this a model or codec saved by emoembed?")
    return cfg.get("model_type") if isinstance(cfg, dict) else None


def state_mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """What keeps ``state`` from loading strictly into a model whose state dict is ``own`` (None: nothing)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    if shape:
        parts.append("shape mismatch " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shape[:3]))
    return "; ".join(parts) or None


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into ``model`` with every key and shape matching; CheckpointError naming ``source`` otherwise."""
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointError(f"{source}: weights do not match the config: {problem}")
    model.load_state_dict(state, strict=True)

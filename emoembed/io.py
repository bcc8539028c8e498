"""Atomic writes: a file is written under a temporary name in its folder and renamed into place, so a crash
never leaves a half-written checkpoint, config or table behind."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emoembed.errors import CheckpointError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` into a temporary file in ``path``'s folder, then rename it over ``path``."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the mode a plain open() would
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(text: str, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(obj: Any, path: str | Path) -> Path:
    return atomic_write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n", path)


def _json_default(o: Any):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_safetensors_atomic(tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    return atomic_write(path, lambda tmp: save_file(dict(tensors), str(tmp), metadata=dict(metadata) if metadata else None))


def read_json(path: str | Path, error: type[Exception] = CheckpointError, missing: str | None = None) -> Any:
    """The JSON document at ``path``; ``error`` (naming the file) when it is missing or invalid."""
    path = Path(path)
    if not path.exists():
        raise error(missing or f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON: {exc}") from None


def load_safetensors(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors weights: {exc}") from None


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """For training state (optimizer moments, counters, RNG states): tensors and plain containers only, read
    back with ``torch.load(weights_only=True)``."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_training_state(path: str | Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable state is reported the same way
        raise CheckpointError(f"{path}: cannot read training state: {exc}") from None

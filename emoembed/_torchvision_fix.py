"""Make ``import torchvision`` (and therefore ``timm`` and ``transformers``' vision utilities) work with the
CPU build of torch.

PyPI's torchvision wheels are CUDA builds. With the CPU torch wheel their C extension cannot load, and
torchvision's import then fails inside ``torch.library.register_fake("torchvision::nms")`` because the
operator was never defined. Importing torchvision through transformers or timm fails the same way.

:func:`ensure_torchvision_importable` runs before anything imports torchvision: ``import emoembed`` only
installs :class:`TorchvisionImportHook` (no torch import), a ``sys.meta_path`` finder that runs it the first
time anyone — emoembed, timm, transformers, peft, user code — looks torchvision up. It first tries to load the
real extension; when that fails it defines the schemas of the few operators torchvision registers fake
kernels for, so the Python package imports. Models, transforms and datasets then work; only the C kernels
(``ops.nms``, ``roi_pool``, ``deform_conv2d``, ``io.decode_image``) stay unavailable — emoembed decodes
images with PIL and never calls them. On machines where the extension loads nothing is patched.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_FRAGMENT = None  # keeps the torch.library fragment alive for the whole process
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
state = {"patched": False, "extension_loaded": False}


def ensure_torchvision_importable() -> dict:
    """Idempotent; returns ``{"patched": bool, "extension_loaded": bool}``."""
    global _FRAGMENT
    if "torchvision" in sys.modules or _FRAGMENT is not None or state["extension_loaded"]:
        return state
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return state
    import torch

    for so in sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd")):
        try:
            torch.ops.load_library(str(so))
            state["extension_loaded"] = True
            return state
        except (OSError, RuntimeError):
            continue
    fragment = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        try:
            fragment.define(schema)
        except RuntimeError:  # already defined by a partial load of the extension
            continue
    _FRAGMENT = fragment
    state["patched"] = True
    return state


class TorchvisionImportHook(importlib.abc.MetaPathFinder):
    """Runs :func:`ensure_torchvision_importable` when ``torchvision`` is first looked up, then steps aside
    (returns None, so the ordinary finders import it)."""

    _busy = False

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201 — importlib's signature
        if fullname != "torchvision" or TorchvisionImportHook._busy:
            return None
        TorchvisionImportHook._busy = True  # ensure_… looks torchvision up itself
        try:
            ensure_torchvision_importable()
        finally:
            TorchvisionImportHook._busy = False
        return None


def install_import_hook() -> None:
    """Idempotent; cheap (imports nothing): put :class:`TorchvisionImportHook` first on ``sys.meta_path``."""
    if not any(isinstance(f, TorchvisionImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, TorchvisionImportHook())

"""Content encoders (word, text, image) and auxiliary objectives, looked up by name in a registry.

The names and descriptions are in :mod:`emoembed.encoders.names` (no torch); the classes and the registry functions
below come from :mod:`emoembed.encoders.base`, imported on first access, so that importing a submodule such as
``emoembed.encoders.names`` does not load torch."""
from __future__ import annotations

from typing import Any

__all__ = ["AuxiliaryObjective", "ContentEncoder", "StepContext", "encoder_class", "objective_class",
           "register_encoder", "register_objective"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from emoembed.encoders import base

        return getattr(base, name)
    raise AttributeError(f"module 'emoembed.encoders' has no attribute {name!r}")

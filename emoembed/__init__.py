"""emoembed: emotion embeddings — one vector space for every emotion label format and every kind of content."""
from emoembed._torchvision_fix import ensure_torchvision_importable

ensure_torchvision_importable()

from emoembed.errors import EmoembedError  # noqa: E402

__version__ = "0.1.0"
CHECKPOINT_FORMAT_VERSION = 1

__all__ = ["EmoembedError", "__version__", "CHECKPOINT_FORMAT_VERSION"]


def __getattr__(name: str):  # lazy imports keep `import emoembed` light
    if name == "EmotionCodec":
        from emoembed.codec import EmotionCodec

        return EmotionCodec
    if name == "FormatRegistry":
        from emoembed.formats import FormatRegistry

        return FormatRegistry
    if name == "DataRegistry":
        from emoembed.data.registry import DataRegistry

        return DataRegistry
    raise AttributeError(name)

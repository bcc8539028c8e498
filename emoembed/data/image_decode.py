"""Decoding an image the way an image viewer shows it: any PIL mode, bit depth, orientation tag or transparency
→ one 8-bit sRGB ``RGB`` PIL image.

PIL's plain ``Image.convert("RGB")`` is not that: it clips 16-bit greyscale (``I;16``: 0..65535) to 0..255, so a
16-bit photo becomes almost white; it drops the alpha channel, so a transparent background shows whatever colour
the invisible pixels happen to hold (often black); it ignores the EXIF orientation tag, so a phone photo taken
upright arrives lying on its side; and it ignores an embedded ICC profile (CMYK print files, wide-gamut photos).
:func:`viewer_rgb` fixes each kind:

* **orientation** — the EXIF ``Orientation`` tag is applied (``PIL.ImageOps.exif_transpose``), as viewers do;
* **bit depth** — 16-bit integer images (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``, and ``I`` read from a
  16-bit PNG) are scaled by 255/65535, the full 16-bit range onto the full 8-bit range (what a viewer shows);
  other 32-bit integer (``I``) and float (``F``) images are mapped by the value range they use: 0..1 floats ×255,
  values already within 0..255 kept, 16-bit-range integers ×255/65535, anything else (negative values, larger
  ranges) stretched from its minimum to its maximum (how scientific viewers display such data); NaN → black;
* **transparency** — an alpha channel (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``) or a transparent palette/colour
  key (``P``/``L``/``RGB`` with ``transparency``) is composited over white, so transparent parts look as on a
  white page;
* **colour** — an embedded ICC profile is applied (→ sRGB) when littlecms can read it; ``CMYK``, ``YCbCr``,
  ``LAB``, ``HSV``, ``1``, ``L`` and ``P`` are converted with PIL's conversions otherwise.

Arrays (:func:`array_to_image`) follow the same rules by dtype: ``uint8`` as is, ``uint16`` ×255/65535, ``bool``
×255, other integers and floats by their value range as above; N×H×W×4 is RGBA (composited over white).
"""
from __future__ import annotations

import functools
import hashlib
import io
from typing import Any

import numpy as np

BACKGROUND = (255, 255, 255)  # transparent pixels are shown over white
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;16BS", "I;16LS")
_WIDE_MODES = SIXTEEN_BIT_MODES + ("I", "F", "I;32", "I;32B", "I;32L", "I;32S", "F;32", "F;32B")


def scale_to_uint8(values: np.ndarray, sixteen_bit: bool = False) -> np.ndarray:
    """Numeric pixel values → uint8 0..255 as a viewer displays them.

    ``sixteen_bit``: the values are a 16-bit image (0..65535 → 0..255, ×255/65535, rounded). Otherwise by the range
    the finite values use: bool → 0/255; min ≥ 0 and max ≤ 1 for floats → ×255; within 0..255 → as is; integers
    within 0..65535 → ×255/65535; anything else → linear stretch of min..max onto 0..255. NaN/inf → 0."""
    a = np.asarray(values)
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16 or sixteen_bit:
        return np.rint(a.astype(np.float64) * (255.0 / 65535.0)).clip(0, 255).astype(np.uint8)
    f = a.astype(np.float64)
    finite = np.isfinite(f)
    f = np.where(finite, f, 0.0)
    if not finite.any():
        return np.zeros(a.shape, dtype=np.uint8)
    lo, hi = float(f[finite].min()), float(f[finite].max())
    if np.issubdtype(a.dtype, np.floating) and lo >= 0 and hi <= 1.0:
        out = f * 255.0
    elif lo >= 0 and hi <= 255:
        out = f
    elif np.issubdtype(a.dtype, np.integer) and lo >= 0 and hi <= 65535:
        out = f * (255.0 / 65535.0)
    else:
        out = (f - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(f)
    return np.rint(out).clip(0, 255).astype(np.uint8)


def _wide_to_l(im: Any, file_format: str | None) -> Any:
    """A single-channel image of more than 8 bits (``I;16*``, ``I``, ``F``) → ``L`` scaled as a viewer shows it."""
    from PIL import Image

    arr = np.asarray(im)
    sixteen = im.mode in SIXTEEN_BIT_MODES or (im.mode == "I" and file_format == "PNG")  # PNG has no 32-bit grey
    return Image.fromarray(scale_to_uint8(arr, sixteen_bit=sixteen), "L")


@functools.lru_cache(maxsize=32)
def _icc_transform(profile_digest: str, profile: bytes, mode: str):
    from PIL import ImageCms

    src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    dst = ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(src, dst, mode, "RGB")


def _apply_icc(im: Any) -> Any | None:
    """The image converted to sRGB through its embedded ICC profile, or None (no profile, or littlecms cannot use it)."""
    profile = im.info.get("icc_profile")
    if not profile or im.mode not in ("RGB", "CMYK", "L"):
        return None
    try:
        from PIL import ImageCms

        transform = _icc_transform(hashlib.sha1(profile).hexdigest(), bytes(profile), im.mode)
        return ImageCms.applyTransform(im, transform)
    except Exception:  # an unusable profile: show the pixels as they are, like a viewer without colour management
        return None


def _has_transparency(im: Any) -> bool:
    return im.mode in ALPHA_MODES or (im.mode in ("P", "L", "RGB", "1", "I", "I;16") and "transparency" in im.info)


def _composite(rgba: Any) -> Any:
    from PIL import Image

    background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def viewer_rgb(im: Any, exif: bool = True) -> Any:
    """``im`` (a PIL image, any mode) → an 8-bit ``RGB`` PIL image as an image viewer shows it (module docstring).

    ``exif``: apply the EXIF orientation tag (True for files; images built in memory rarely carry one). The input
    is not modified. Raises ``ValueError`` (from PIL) only for a mode PIL cannot convert at all."""
    from PIL import Image, ImageOps

    file_format = getattr(im, "format", None)
    if exif:
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # a malformed EXIF block: keep the pixels as stored
            pass
    if im.mode == "RGB" and "icc_profile" not in im.info and "transparency" not in im.info:
        return im
    if im.mode in _WIDE_MODES:
        alpha_key = im.info.get("transparency")
        grey = _wide_to_l(im, file_format)
        if alpha_key is not None and isinstance(alpha_key, int):
            mask = Image.fromarray(np.where(np.asarray(im) == alpha_key, 0, 255).astype(np.uint8), "L")
            rgba = grey.convert("RGBA")
            rgba.putalpha(mask)
            return _composite(rgba)
        return grey.convert("RGB")
    if _has_transparency(im):
        if im.mode == "La":
            im = im.convert("RGBa")
        return _composite(im.convert("RGBA"))
    converted = _apply_icc(im)
    if converted is not None:
        return converted if converted.mode == "RGB" else converted.convert("RGB")
    return im.convert("RGB")


def array_to_image(arr: np.ndarray, rgb: bool = True) -> Any:
    """A pixel array → an ``RGB`` PIL image as a viewer shows it. Shapes: H×W (grey), H×W×1, H×W×3 (RGB),
    H×W×4 (RGBA, composited over white); dtypes as in :func:`scale_to_uint8`. ``rgb=False`` keeps the channels
    (``L``, ``RGB`` or ``RGBA``, 8-bit). Raises ``ValueError`` for any other shape."""
    from PIL import Image

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        raise ValueError(f"expected H×W, H×W×1, H×W×3 or H×W×4 pixels, got shape {a.shape}")
    a = np.ascontiguousarray(scale_to_uint8(a))
    if not rgb:
        return Image.fromarray(a, "L" if a.ndim == 2 else ("RGB" if a.shape[-1] == 3 else "RGBA"))
    if a.ndim == 2:
        return Image.fromarray(a, "L").convert("RGB")
    if a.shape[-1] == 4:
        return _composite(Image.fromarray(a, "RGBA"))
    return Image.fromarray(a, "RGB")

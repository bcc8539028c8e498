"""Images reach the model as an image viewer shows them, whatever the file's mode, bit depth, orientation tag or
transparency (issue 16, section 2). Each kind is checked against the picture a viewer would display: the same
test picture is written in every storage form and must decode to the same 8-bit RGB pixels."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from emoembed.data.image_decode import array_to_image, scale_to_uint8, viewer_rgb
from emoembed.data.images import open_image
from emoembed.encoders.image import ImageEncoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")
Image = pytest.importorskip("PIL.Image")


def picture(size: int = 32) -> np.ndarray:
    """An 8-bit RGB test picture with structure in every channel: gradients plus a dark top-left quadrant."""
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // (size - 1), y * 255 // (size - 1), (x + y) * 255 // (2 * size - 2)], axis=-1)
    rgb[: size // 2, : size // 2] //= 4
    return rgb.astype(np.uint8)


def grey_picture(size: int = 32) -> np.ndarray:
    return np.asarray(Image.fromarray(picture(size)).convert("L"))


def saved(img, tmp_path: Path, name: str, **kw) -> Path:
    path = tmp_path / name
    img.save(path, **kw)
    return path


def decoded(path_or_image) -> np.ndarray:
    img = open_image(str(path_or_image) if isinstance(path_or_image, Path) else path_or_image)
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def assert_close(got: np.ndarray, want: np.ndarray, tol: float) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got.astype(int) - want.astype(int))
    assert err.mean() <= tol, f"mean abs error {err.mean():.2f} > {tol}"


# ---------------------------------------------------------------------------------------------- bit depth
def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    """gray16.png (the issue's case): a 16-bit grey PNG decodes like the 8-bit version of the same picture, not white."""
    grey8 = grey_picture()
    grey16 = grey8.astype(np.uint16) * 257  # the same picture at 16 bits (255 → 65535)
    path = saved(Image.fromarray(grey16), tmp_path, "gray16.png")
    assert Image.open(path).mode.startswith("I")  # PIL reads it as a 16/32-bit integer image
    got = decoded(path)
    np.testing.assert_array_equal(got[..., 0], grey8)
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    assert got.mean() < 200  # PIL's plain convert("RGB") gives ≈ 253 (clipped to white)
    assert np.asarray(Image.open(path).convert("RGB")).mean() > 240  # ... which is the bug being fixed


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_in_memory_16_bit_modes(mode):
    grey8 = grey_picture()
    im = Image.fromarray(grey8.astype(np.uint16) * 257).convert("I")
    if mode != "I":
        im = Image.frombytes(mode, im.size, (grey8.astype("<u2" if mode == "I;16" else ">u2") * 257).tobytes())
    else:  # a 32-bit integer image with 16-bit values: the 0..65535 range is recognised
        pass
    np.testing.assert_array_equal(np.asarray(viewer_rgb(im))[..., 0], grey8)


def test_float_and_wide_integer_images_by_their_range():
    grey8 = grey_picture().astype(np.float64)
    unit = Image.fromarray((grey8 / 255).astype(np.float32), "F")  # 0..1 floats
    assert_close(np.asarray(viewer_rgb(unit))[..., 0], grey8, 0.6)
    same = Image.fromarray(grey8.astype(np.float32), "F")  # 0..255 floats
    assert_close(np.asarray(viewer_rgb(same))[..., 0], grey8, 0.01)
    signed = Image.fromarray((grey8 * 100 - 5000).astype(np.int32), "I")  # an arbitrary range: stretched min..max
    got = np.asarray(viewer_rgb(signed))[..., 0]
    assert got.min() == 0 and got.max() == 255
    assert np.corrcoef(got.ravel(), grey8.ravel())[0, 1] > 0.999


def test_16_bit_tiff_and_float_tiff_files(tmp_path):
    grey8 = grey_picture()
    p16 = saved(Image.fromarray(grey8.astype(np.uint16) * 257), tmp_path, "g16.tif")
    np.testing.assert_array_equal(decoded(p16)[..., 0], grey8)
    pf = saved(Image.fromarray((grey8 / 255).astype(np.float32), "F"), tmp_path, "gf.tif")
    assert_close(decoded(pf)[..., 0], grey8, 0.6)


# ---------------------------------------------------------------------------------------------- modes
@pytest.mark.parametrize("mode,fmt,tol", [
    ("RGB", "PNG", 0), ("L", "PNG", 0), ("P", "PNG", 8), ("CMYK", "TIFF", 1), ("CMYK", "JPEG", 6),
    ("YCbCr", None, 2), ("RGB", "BMP", 0), ("RGB", "WEBP", 0), ("LAB", "TIFF", 3), ("HSV", None, 2),
])
def test_every_mode_decodes_to_the_same_picture(tmp_path, mode, fmt, tol):
    rgb = picture()
    src = Image.fromarray(rgb)
    im = src.convert(mode) if mode not in ("P",) else src.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    want = np.asarray(src.convert("L").convert("RGB")) if mode == "L" else rgb
    kw = {"lossless": True} if fmt == "WEBP" else ({"quality": 100} if fmt == "JPEG" else {})
    source = saved(im, tmp_path, f"x.{fmt.lower()}", format=fmt, **kw) if fmt else im
    if fmt:
        assert Image.open(source).mode == mode
    assert_close(decoded(source), want, tol)


def test_bilevel_image(tmp_path):
    bits = (grey_picture() > 128)
    path = saved(Image.fromarray(bits), tmp_path, "bits.png")
    assert Image.open(path).mode == "1"
    np.testing.assert_array_equal(decoded(path)[..., 0], bits * 255)


# ---------------------------------------------------------------------------------------------- transparency
def test_transparent_background_is_white_not_black(tmp_path):
    """rgba_transparent.png (the issue's case): a shape on a fully transparent black background."""
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[8:24, 8:24] = (255, 200, 150, 255)
    path = saved(Image.fromarray(rgba, "RGBA"), tmp_path, "rgba_transparent.png")
    got = decoded(path)
    assert (got[0, 0] == 255).all() and (got[:8] == 255).all()  # background: white, as a viewer shows it
    np.testing.assert_array_equal(got[16, 16], (255, 200, 150))  # opaque pixels unchanged
    half = rgba.copy()
    half[..., 3] = np.where(rgba[..., 3] == 255, 128, 0)
    got = decoded(saved(Image.fromarray(half, "RGBA"), tmp_path, "half.png"))
    np.testing.assert_array_equal(got[16, 16], (255, 227, 202))  # 50 % over white: 255 - (255 - c) · 128/255


def test_palette_and_grey_transparency_and_grey_alpha(tmp_path):
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    p.paste(1, (0, 0, 4, 8))
    path = saved(p, tmp_path, "p.png", transparency=0)
    got = decoded(path)
    assert (got[:, 4:] == 255).all() and (got[:, :4] == (200, 0, 0)).all()
    gif = decoded(saved(p, tmp_path, "p.gif", transparency=0))
    assert (gif[:, 4:] == 255).all()
    la = np.zeros((8, 8, 2), dtype=np.uint8)
    la[:, :4] = (60, 255)
    got = decoded(saved(Image.fromarray(la, "LA"), tmp_path, "la.png"))
    assert (got[:, 4:] == 255).all() and (got[:, :4] == 60).all()
    key = Image.fromarray(np.where(np.arange(8)[None, :] < 4, 60, 0).repeat(8, 0).astype(np.uint8), "L")
    got = decoded(saved(key, tmp_path, "lkey.png", transparency=0))  # a tRNS colour key on a grey PNG
    assert (got[:, 4:] == 255).all() and (got[:, :4] == 60).all()


def test_opaque_rgba_is_unchanged(tmp_path):
    rgba = np.dstack([picture(), np.full((32, 32), 255, np.uint8)])
    np.testing.assert_array_equal(decoded(saved(Image.fromarray(rgba, "RGBA"), tmp_path, "o.png")), picture())


# ---------------------------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation,transpose", [(3, "ROTATE_180"), (6, "ROTATE_90"), (8, "ROTATE_270"), (2, "FLIP_LEFT_RIGHT")])
def test_exif_orientation_is_applied(tmp_path, orientation, transpose):
    """A camera stores the sensor's pixels plus an Orientation tag; a viewer shows them turned upright."""
    upright = Image.fromarray(picture(40)[:, :28])  # not square, so a rotation shows in the size too
    stored = upright.transpose(getattr(Image.Transpose, transpose))  # what the camera wrote ...
    exif = Image.Exif()
    exif[0x0112] = orientation  # ... and the tag that undoes it
    path = saved(stored, tmp_path, "photo.jpg", exif=exif, quality=100)
    got = decoded(path)
    assert got.shape == (40, 28, 3)
    assert_close(got, np.asarray(upright), 4)


# ---------------------------------------------------------------------------------------------- arrays
def test_arrays_follow_the_same_rules():
    grey8 = grey_picture()
    for arr, tol in [(grey8, 0), (grey8.astype(np.uint16) * 257, 0), (grey8 / 255.0, 0.6), (grey8.astype(np.int64), 0),
                     (grey8[..., None], 0), (grey8.astype(np.float32), 0.01)]:
        assert_close(np.asarray(array_to_image(arr))[..., 0], grey8, tol)
    assert_close(np.asarray(open_image(grey8.astype(np.uint16) * 257))[..., 0], grey8, 0)
    rgba = np.zeros((4, 4, 4), np.uint8)
    np.testing.assert_array_equal(np.asarray(array_to_image(rgba)), np.full((4, 4, 3), 255))
    np.testing.assert_array_equal(scale_to_uint8(np.array([True, False])), [255, 0])
    np.testing.assert_array_equal(scale_to_uint8(np.array([np.nan, 0.5, 1.0])), [0, 128, 255])
    with pytest.raises(ValueError, match="shape"):
        array_to_image(np.zeros((4, 4, 2)))


# ---------------------------------------------------------------------------------------------- through the encoder
def test_encoder_sees_16_bit_and_transparent_images_as_their_8_bit_versions(tmp_path):
    """The model's input (and so its prediction) is the same for a picture stored at 8 or 16 bits, and for a
    transparent image and its white-background version; neither equals a white (or black-background) image."""
    torch.manual_seed(0)
    enc = ImageEncoder.from_config({"dim": 6, "backbone": "resnet10t", "weights": None, "dropout": 0.0, "image_size": 32,
                                    "eval_transform": [{"type": "Resize", "size": [32, 32]}]}).eval()
    grey8 = grey_picture()
    p8 = saved(Image.fromarray(grey8), tmp_path, "g8.png")
    p16 = saved(Image.fromarray(grey8.astype(np.uint16) * 257), tmp_path, "g16.png")
    white = saved(Image.fromarray(np.full_like(grey8, 255)), tmp_path, "white.png")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (255, 200, 150, 255)
    on_white = rgba[..., :3].copy()
    on_white[rgba[..., 3] == 0] = 255
    pt = saved(Image.fromarray(rgba, "RGBA"), tmp_path, "t.png")
    pw = saved(Image.fromarray(on_white), tmp_path, "w.png")
    with torch.no_grad():
        z = enc(enc.collate([str(p) for p in (p8, p16, white, pt, pw)]))
    torch.testing.assert_close(z[0], z[1])
    assert (z[1] - z[2]).abs().max() > 1e-3
    torch.testing.assert_close(z[3], z[4])

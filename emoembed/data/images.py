"""Image sources: how an item's ``content`` string names an image, and how it is decoded (always with PIL).

A content string is self-describing, so an encoder can load the image from the item alone:

* ``path/to/photo.jpg`` — an image file (any format PIL reads);
* ``path/to/arrays.npz#123`` — row 123 of the array ``images`` in a NumPy ``.npz`` (FER2013);
  ``arrays.npz#faces:123`` names another array;
* ``path/to/images.npy#123`` — row 123 of a ``.npy`` array (memory-mapped);
* ``path/to/fer2013.csv#123`` — data row 123 (0-based) of a FER2013-style csv whose ``pixels`` column holds
  space-separated grey values of a square image; ``fer2013.csv#col:123`` names another column.

Arrays are read once per process and file (a 35,887-row FER2013 npz decompresses in about a second) and shared
by later lookups; DataLoader workers forked after the first lookup share the copy.

Relative paths in a table (a ``predict --input`` csv, a dataset card's csv) are read relative to that table's
folder — the convention of Hugging Face ``imagefolder``'s ``metadata.csv`` — by :func:`resolve_table_image`; when
the file is not there either, the error names every path tried.

Folders: :func:`list_images` lists the image files under a folder, :func:`expand_image_inputs` turns a mix of
files, folders and list files into image references (``emoembed predict`` on paths/folders), and
:func:`scan_class_folders` reads the class-folder layout (``root/[split/]class/*.jpg``) the ``image_folders``
reader of :mod:`emoembed.data.readers` uses.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emoembed.data.image_decode import array_to_image, viewer_rgb
from emoembed.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
ARRAY_SUFFIXES = (".npz", ".npy", ".csv")
DEFAULT_NPZ_ARRAY = "images"
DEFAULT_CSV_COLUMN = "pixels"

_ARRAYS: dict[tuple[str, str], np.ndarray] = {}
_LOCK = threading.Lock()
_TRIED: dict[str, tuple[str, ...]] = {}  # a resolved relative path that was missing → every path tried for it


@dataclass(frozen=True)
class ImageRef:
    """A parsed content string: a file, and for array sources the array/column name and the row."""

    path: Path
    array: str | None = None
    row: int | None = None

    @property
    def is_array(self) -> bool:
        return self.row is not None

    def __str__(self) -> str:
        if self.row is None:
            return str(self.path)
        default = DEFAULT_CSV_COLUMN if self.path.suffix.lower() == ".csv" else DEFAULT_NPZ_ARRAY
        key = f"{self.array}:{self.row}" if self.array not in (None, default) else str(self.row)
        return f"{self.path}#{key}"


def parse_ref(content: Any) -> ImageRef:
    """``content`` (a str or Path) → :class:`ImageRef`. A ``#`` splits off an array row only for ``.npz``,
    ``.npy`` and ``.csv`` files, so image file names may contain ``#``."""
    if isinstance(content, Path):
        return ImageRef(content)
    if not isinstance(content, str):
        raise DataError(f"an image reference must be a path string, got {type(content).__name__}")
    text = content.strip()
    if not text:
        raise DataError("empty image reference")
    head, sep, key = text.rpartition("#")
    if sep and Path(head).suffix.lower() in ARRAY_SUFFIXES:
        array, colon, row = key.rpartition(":")
        try:
            index = int(row)
        except ValueError:
            raise DataError(f"{text}: the part after '#' must be a row number (or NAME:ROW), got {key!r}") from None
        suffix = Path(head).suffix.lower()
        default = DEFAULT_CSV_COLUMN if suffix == ".csv" else (None if suffix == ".npy" else DEFAULT_NPZ_ARRAY)
        return ImageRef(Path(head), array if colon else default, index)
    return ImageRef(Path(text))


# ---------------------------------------------------------------------------------------------- arrays
def _load_npz(path: Path, name: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if name not in npz.files:
                raise DataError(f"{path}: array {name!r} not found; the file has {npz.files}")
            return npz[name]
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as .npz: {exc}") from None


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as .npy: {exc}") from None


def _load_pixel_csv(path: Path, column: str) -> np.ndarray:
    """A FER2013-style csv: one square grey image per row, its values space-separated in ``column``."""
    try:
        frame = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False)
    except ValueError as exc:
        raise DataError(f"{path}: no column {column!r} with pixel values ({exc})") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as csv: {exc}") from None
    values = frame[column].tolist()
    if not values:
        raise DataError(f"{path}: no rows")
    first = len(values[0].split())
    side = round(first ** 0.5)
    if side * side != first or side == 0:
        raise DataError(f"{path}: row 0, column {column!r}: {first} pixel values do not make a square image")
    out = np.empty((len(values), side, side), dtype=np.uint8)
    for i, text in enumerate(values):
        try:
            pixels = np.asarray(text.split(), dtype=np.int64)
        except ValueError:
            raise DataError(f"{path}: data row {i}, column {column!r}: pixel values must be integers") from None
        if pixels.size != first or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
            raise DataError(f"{path}: data row {i}, column {column!r}: expected {first} values in 0..255, "
                            f"got {pixels.size} in {pixels.min(initial=0)}..{pixels.max(initial=0)}")
        out[i] = pixels.reshape(side, side)
    return out


def load_array(path: Path, name: str | None) -> np.ndarray:
    """The whole image array behind an array source, read once per process (thread-safe)."""
    key = (str(Path(path).resolve()), name or "")
    with _LOCK:
        if key in _ARRAYS:
            return _ARRAYS[key]
        if not Path(path).is_file():
            raise DataError(f"{path}: image array file not found")
        suffix = Path(path).suffix.lower()
        if suffix == ".npz":
            arr = _load_npz(Path(path), name or DEFAULT_NPZ_ARRAY)
        elif suffix == ".npy":
            arr = _load_npy(Path(path))
        else:
            arr = _load_pixel_csv(Path(path), name or DEFAULT_CSV_COLUMN)
        if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4)):
            raise DataError(f"{path}: array {name!r} has shape {arr.shape}; expected N×H×W (grey) or N×H×W×C")
        _ARRAYS[key] = arr
        return arr


def clear_array_cache() -> None:
    with _LOCK:
        _ARRAYS.clear()


def _array_to_pil(arr: np.ndarray, ref: ImageRef, rgb: bool = True):
    """An array row → an RGB PIL image as a viewer shows it (uint16 scaled, not clipped; RGBA over white);
    ``rgb=False``: its channels kept (L, RGB or RGBA)."""
    try:
        return array_to_image(arr, rgb)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{ref}: cannot make an image from an array of shape {np.shape(arr)}: {exc}") from None


# ---------------------------------------------------------------------------------------------- decoding
def check_ref(content: Any, decode: bool = True) -> ImageRef:
    """Raise :class:`DataError` naming the file if the image cannot be read; ``decode=False`` only checks
    that the file exists (and, for arrays, that the row is in range)."""
    ref = parse_ref(content)
    if ref.is_array:
        arr = load_array(ref.path, ref.array)
        if not 0 <= ref.row < len(arr):  # type: ignore[operator]
            raise DataError(f"{ref}: row {ref.row} is outside 0..{len(arr) - 1} of {ref.path}")
        return ref
    if decode:
        open_image(ref)
    else:
        _check_file(ref.path)
    return ref


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an image file")
    if not path.exists():
        raise DataError(_not_found(path, "image file not found"))


def _not_found(path: Path, what: str) -> str:
    tried = _TRIED.get(str(path))
    if tried:
        return (f"{path}: {what} (a relative path in a table is read relative to the table's folder; tried "
                f"{' and '.join(tried)})")
    return f"{path}: {what}"


def resolve_table_image(content: Any, table: str | Path, cwd_fallback: bool = True) -> Any:
    """An image reference read from the table file ``table``, with a relative path made absolute against the
    table's folder (``images/a.jpg`` in ``data/meta.csv`` → ``data/images/a.jpg``, as Hugging Face imagefolder's
    ``metadata.csv``). ``cwd_fallback``: when the file is not there but is relative to the working directory (what
    older emoembed read), that one is used. When neither exists the table-relative path is returned and its
    not-found error (:func:`check_ref`) names both paths tried. Absolute paths, empty cells and non-strings are
    returned unchanged; ``x.npz#3`` keeps its row."""
    if not isinstance(content, (str, Path)):
        return content
    text = str(content).strip()
    if not text:
        return content
    ref = parse_ref(text) if isinstance(content, str) else ImageRef(Path(content))
    raw = ref.path.expanduser()
    if raw.is_absolute():
        return content
    suffix = "#" + text.rpartition("#")[2] if ref.is_array else ""
    base = Path(os.path.abspath(Path(table).parent / raw))
    if base.exists():
        return str(base) + suffix
    cwd = Path(os.path.abspath(raw))
    if cwd_fallback and cwd.exists():
        return str(cwd) + suffix
    tried = (str(base),) + ((str(cwd),) if cwd_fallback and cwd != base else ())
    how = (f"relative to {Path(table).name}'s folder", "relative to the working directory")
    _TRIED[str(base)] = tuple(f"{t} ({how[i]})" for i, t in enumerate(tried))
    return str(base) + suffix


def open_image(content: Any, mode: str | None = "RGB"):
    """The image as a decoded PIL image. ``mode="RGB"`` (the default, what encoders use) gives it as an image
    viewer shows it (:func:`emoembed.data.image_decode.viewer_rgb`: EXIF orientation applied, 16-bit and float
    pixels scaled rather than clipped, transparency composited over white, ICC profile applied); another mode
    converts that RGB image further; ``None`` returns the file's pixels as stored. Raises :class:`DataError`
    naming the file for a missing, unreadable, truncated or non-image file."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(content, Image.Image):
        return _as_mode(content, mode, exif=False)
    if isinstance(content, np.ndarray):
        return _as_mode(_array_to_pil(content, ImageRef(Path("<array>")), rgb=mode is not None), mode, exif=False)
    ref = content if isinstance(content, ImageRef) else parse_ref(content)
    if ref.is_array:
        arr = load_array(ref.path, ref.array)
        if not 0 <= ref.row < len(arr):  # type: ignore[operator]
            raise DataError(f"{ref}: row {ref.row} is outside 0..{len(arr) - 1} of {ref.path}")
        return _as_mode(_array_to_pil(arr[ref.row], ref, rgb=mode is not None), mode, exif=False)
    _check_file(ref.path)
    try:
        with Image.open(ref.path) as im:
            im.load()
            img = _as_mode(im, mode, exif=True) if mode else im.copy()
    except PermissionError:
        raise DataError(f"{ref.path}: cannot read the image file (permission denied)") from None
    except UnidentifiedImageError:
        raise DataError(f"{ref.path}: not an image file PIL can read") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{ref.path}: image is too large to decode safely: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise DataError(f"{ref.path}: cannot decode the image (truncated or corrupt file): {exc}") from None
    return img


def _as_mode(img, mode: str | None, exif: bool):
    if mode is None:
        return img
    rgb = viewer_rgb(img, exif=exif)
    if rgb is img:
        rgb = img.copy() if exif else img
    return rgb if mode == "RGB" else rgb.convert(mode)


# ---------------------------------------------------------------------------------------------- folders
def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension), sorted, hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and is_image_file(p))


def expand_image_inputs(inputs: Iterable[str | Path], recursive: bool = True, missing_ok: bool = False) -> list[str]:
    """Files, folders and ``.txt`` list files (one reference per line) → image references, in order.
    Array references (``x.npz#3``) pass through. A folder without images is an error, and so is a missing path
    unless ``missing_ok`` (then it passes through, to be reported and skipped under ``on_bad_image: skip``)."""
    out: list[str] = []
    for raw in inputs:
        text = str(raw)
        ref = parse_ref(text)
        if ref.is_array:
            out.append(text)
            continue
        path = ref.path
        if path.is_dir():
            found = list_images(path, recursive)
            if not found:
                raise DataError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
            out.extend(str(p) for p in found)
        elif path.suffix.lower() == ".txt" and path.is_file():
            base = path.parent
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    p = Path(line)
                    out.append(str(p if p.is_absolute() else base / p))
        elif not path.exists() and not missing_ok:
            raise DataError(_not_found(path, "no such image file or folder"))
        else:
            out.append(text)
    return out


def expand_image_rows(inputs: Sequence[Any], rows: Sequence[str] | None, table: str | Path | None = None,
                      recursive: bool = True, missing_ok: bool = False) -> tuple[list[Any], list[str] | None]:
    """:func:`expand_image_inputs` item by item, keeping where each came from: ``rows[i]`` names input ``i``
    (``in.csv, line 3``) and is repeated for every image a folder or list file expands to; errors are prefixed
    with it. ``table``: the file the inputs were read from — their relative paths are read relative to its
    folder (:func:`resolve_table_image`)."""
    out: list[Any] = []
    names: list[str] = []
    for i, raw in enumerate(inputs):
        item = resolve_table_image(raw, table) if table is not None else raw
        if not isinstance(item, (str, Path)):
            out.append(item)
            names.append(rows[i] if rows else "")
            continue
        try:
            found = expand_image_inputs([item], recursive, missing_ok)
        except DataError as exc:
            raise DataError(f"{rows[i]}: {exc}" if rows else str(exc)) from None
        out.extend(found)
        names.extend([rows[i] if rows else ""] * len(found))
    return out, (names if rows else None)


def scan_class_folders(root: Path, classes: Sequence[str] | None = None, split_folders: Sequence[str] | None = None,
                       recursive: bool = True) -> pd.DataFrame:
    """The class-folder layout: ``root/<class>/<image>`` or, with ``split_folders``,
    ``root/<split>/<class>/<image>``. Columns: ``path`` (absolute), ``relpath`` (from root, the item id),
    ``class``, ``split_folder`` (or ''), ``name`` (file name), ``prefix`` (file name up to the first ``_``,
    e.g. FER2013's ``PublicTest``). ``classes`` restricts (and validates) the class folders read."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    tops = [root / s for s in split_folders] if split_folders else [root]
    rows = []
    for top in tops:
        if not top.is_dir():
            raise DataError(f"{top}: split folder not found (the card's reader lists it)")
        present = sorted(p.name for p in top.iterdir() if p.is_dir() and not p.name.startswith("."))
        wanted = list(classes) if classes else present
        missing = [c for c in wanted if c not in present]
        if missing:
            raise DataError(f"{top}: class folder(s) {missing} not found; folders present: {present}")
        for cls in wanted:
            for path in list_images(top / cls, recursive):
                rows.append({"path": str(path.resolve()), "relpath": path.relative_to(root).as_posix(), "class": cls,
                             "split_folder": top.name if split_folders else "", "name": path.name,
                             "prefix": path.name.split("_", 1)[0] if "_" in path.name else ""})
    if not rows:
        raise DataError(f"{root}: no image files in the class folders")
    return pd.DataFrame(rows)

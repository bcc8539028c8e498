"""freeze_backbone: true — backbone features computed once per dataset, cached on disk (.npy + JSON, atomic),
keyed by backbone, weights, resolution and preprocessing; the projection trains on them (tiny timm model)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from emoembed.codec import codec_for
from emoembed.encoders.feature_cache import cache_paths, cached_features, compute_features, feature_key, items_digest
from emoembed.encoders.image import ImageEncoder
from emoembed.formats import FormatRegistry
from emoembed.inference import embed_items
from emoembed.recipes import load_encoder_recipe
from emoembed.tasks import Task
from emoembed.training.encoder import fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parent.parent
TINY = {"backbone": "resnet10t", "weights": None, "dropout": 0.0, "image_size": 32, "freeze_backbone": True,
        "eval_transform": [{"type": "Resize", "size": [32, 32]}]}


@pytest.fixture
def cache_root(monkeypatch, tmp_path):
    root = tmp_path / "cache"
    monkeypatch.setenv("EMOEMBED_CACHE", str(root))
    return root


def images(tmp_path: Path, n: int = 24) -> tuple[list[str], np.ndarray]:
    """Bright images are 'happy', dark ones 'sad' (one-hot fer7)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir(exist_ok=True)
    paths, y = [], []
    for i in range(n):
        bright = i % 2 == 0
        arr = rng.integers(150, 256, (36, 36, 3)) if bright else rng.integers(0, 100, (36, 36, 3))
        path = tmp_path / "img" / f"{i}.png"
        Image.fromarray(arr.astype(np.uint8)).save(path)
        paths.append(str(path))
        y.append(np.eye(7, dtype=np.float32)[3 if bright else 4])
    return paths, np.stack(y)


def tiny(**kw) -> ImageEncoder:
    torch.manual_seed(0)
    return ImageEncoder.from_config({**TINY, "dim": 16, **kw})


def test_cache_is_written_once_atomically_and_read_back(cache_root, tmp_path):
    paths, _ = images(tmp_path, 6)
    enc = tiny()
    logs: list[str] = []
    feats = cached_features(enc, paths, batch_size=4, log=logs.append)
    data, meta = cache_paths(enc, paths)
    assert data.is_file() and meta.is_file() and data.parent.parent == cache_root / "image-features"
    assert not list(data.parent.glob("*.tmp"))  # no temporary files left behind
    info = json.loads(meta.read_text())
    assert info["items"] == paths and info["n"] == 6 and info["backbone"] == "resnet10t" and info["image_size"] == 32
    assert np.load(data, allow_pickle=False).shape == (6, enc.num_features)
    with torch.no_grad():  # the same numbers as running the backbone on the eval-transformed pixels
        direct = enc.backbone(enc.eval().collate(paths, use_cache=False)["pixels"]).numpy()
    np.testing.assert_allclose(feats, direct, atol=1e-5)
    again = cached_features(enc, paths, batch_size=4, log=logs.append)
    np.testing.assert_array_equal(again, feats)
    assert "computed" in logs[0] and "read from the cache" in logs[1]


def test_key_follows_backbone_weights_resolution_and_preprocessing(tmp_path):
    base = feature_key(tiny())
    assert feature_key(tiny()) == base
    assert feature_key(tiny(image_size=48, eval_transform=[{"type": "Resize", "size": [48, 48]}])) != base
    assert feature_key(tiny(eval_transform=[{"type": "Resize", "size": 36}, {"type": "CenterCrop", "size": 32}])) != base
    assert feature_key(tiny(mean=[0.4, 0.4, 0.4])) != base
    assert feature_key(tiny(backbone="mobilenetv3_small_050")) != base
    from safetensors.torch import save_file

    w = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tiny().backbone.state_dict().items()}, str(w))
    with_file = feature_key(tiny(weights=f"file:{w}"))
    assert with_file != base
    save_file({k: v.contiguous() + 1 for k, v in tiny().backbone.state_dict().items()}, str(w))
    assert feature_key(tiny(weights=f"file:{w}")) != with_file  # other weights in the same file: another key
    paths, _ = images(tmp_path, 3)
    digest = items_digest(paths)
    assert items_digest(paths[::-1]) != digest
    time.sleep(0.01)
    Path(paths[0]).write_bytes(Path(paths[1]).read_bytes())  # an edited image invalidates the dataset's entry
    assert items_digest(paths) != digest


def test_frozen_fit_trains_the_projection_on_cached_features(cache_root, tmp_path):
    paths, y = images(tmp_path)
    fmts = FormatRegistry.load(REPO / "mappings" / "formats.yaml", REPO / "mappings" / "equivalences.yaml")
    codec = codec_for(["fer7", "va"], fmts, dim=16)
    task = Task("bright", fmts["fer7"], {"train": paths[:16], "dev": paths[16:20], "test": paths[20:]},
                {"train": y[:16], "dev": y[16:20], "test": y[20:]}, {}, "image")
    recipe = load_encoder_recipe(REPO / "encoders" / "image-tiny-test.yaml", "image")
    recipe["encoder"].update({"freeze_backbone": True, "eval_transform": [{"type": "Resize", "size": [32, 32]}]})
    recipe["training"].update({"epochs": 30, "lr": 0.03, "batch_size": 8, "device": "cpu", "patience": 30})
    logs: list[str] = []
    result = fit(recipe, codec, [task], progress=False, log=logs.append)
    assert any("computed in" in m for m in logs)
    enc = result.encoder
    assert len(enc._feature_rows) == 24
    torch.manual_seed(int(recipe["seed"]))  # fit's seed: the same random-init backbone
    before = {k: v.clone() for k, v in ImageEncoder.from_recipe(recipe["encoder"], codec.dim).backbone.state_dict().items()}
    for k, v in enc.backbone.state_dict().items():  # the backbone did not move (BN statistics included)
        torch.testing.assert_close(v, before[k])
    assert result.dev_score == 1.0  # bright vs dark is linearly separable in the features
    z_cached, _ = embed_items(enc, paths, 8, torch.device("cpu"))
    enc.forget_features()
    z_pixels, _ = embed_items(enc, paths, 8, torch.device("cpu"))  # the saved model's path: backbone on pixels
    torch.testing.assert_close(z_cached, z_pixels, atol=1e-4, rtol=1e-4)
    logs.clear()
    fit(recipe, codec, [task], progress=False, log=logs.append)  # the second run reads the features back
    assert any("read from the cache" in m for m in logs) and not any("computed in" in m for m in logs)


def test_unreadable_images_under_skip_have_nan_features_and_stay_masked(cache_root, tmp_path):
    paths, _ = images(tmp_path, 3)
    bad = tmp_path / "img" / "bad.png"
    bad.write_bytes(b"not an image")
    enc = tiny(on_bad_image="skip")
    items = enc.check_items(paths + [str(bad)])
    feats = compute_features(enc, items)
    assert np.isnan(feats[3]).all() and np.isfinite(feats[:3]).all()
    assert enc.prepare_items(items)
    batch = enc.collate(items)
    assert "features" in batch and batch["ok"].tolist() == [True, True, True, False]
    assert enc.output_mask(batch).tolist() == [False, False, False, True]
    assert not tiny(freeze_backbone=False).prepare_items(items)  # a trainable backbone is never cached
    assert not tiny(cache_features=False).prepare_items(items)

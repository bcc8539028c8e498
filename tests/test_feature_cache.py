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
from emoembed.errors import ConfigError
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


# ---------------------------------------------------------------------------------------------- feature options
MULTI = {"feature_layers": ["layer3", "layer4"], "feature_norm": "l2", "flip_average": True}


def test_feature_layers_give_pooled_blocks_with_unit_norm(tmp_path):
    """resnet10t: layer3 (256 ch), layer4 (512 ch), then the final pooled 512 — each block unit length under l2."""
    paths, _ = images(tmp_path, 4)
    enc = tiny(**MULTI).eval()
    assert enc.block_sizes == [256, 512, 512] and enc.num_features == 1280 and enc.proj.in_features == 1280
    blocks = dict(enc.feature_blocks())
    assert list(blocks) == ["layer3", "layer4", "final"] and blocks["layer4"] == slice(256, 768)
    pixels = enc.collate(paths, use_cache=False)["pixels"]
    with torch.no_grad():
        feats = enc.pooled_features(pixels)
        assert feats.shape == (4, 1280)
        one_view = tiny(**{**MULTI, "flip_average": False}).eval()
        one_view.backbone.load_state_dict(enc.backbone.state_dict())
        single = one_view.pooled_features(pixels)
        for name, cols in blocks.items():
            torch.testing.assert_close(single[:, cols].norm(dim=1), torch.ones(4))
            assert (feats[:, cols].norm(dim=1) <= 1 + 1e-6).all()  # the mean of two unit vectors
        final = enc.backbone(pixels)  # the last block is the plain pooled output, scaled; flip-averaged
        mirrored = enc.backbone(pixels.flip(3))
        expected = 0.5 * (final / final.norm(dim=1, keepdim=True) + mirrored / mirrored.norm(dim=1, keepdim=True))
        torch.testing.assert_close(feats[:, blocks["final"]], expected, atol=1e-5, rtol=1e-5)
        # flip averaging makes an image and its mirror image the same input
        torch.testing.assert_close(enc.pooled_features(pixels.flip(3)), feats, atol=1e-5, rtol=1e-5)
        # a narrower setting's features are exactly the widest's columns (blocks pooled and scaled one by one)
        narrow = tiny(feature_layers=["layer4"], feature_norm="l2", flip_average=True).eval()
        narrow.backbone.load_state_dict(enc.backbone.state_dict())
        torch.testing.assert_close(narrow.pooled_features(pixels), feats[:, 256:], atol=1e-5, rtol=1e-5)
        plain = tiny().eval()  # without options: the backbone's pooled output, unchanged
        plain.backbone.load_state_dict(enc.backbone.state_dict())
        torch.testing.assert_close(plain.pooled_features(pixels), final)


def test_feature_options_are_checked():
    with pytest.raises(ConfigError, match="no sub-module 'blocks.9'.*layer4"):
        tiny(feature_layers=["blocks.9"])
    with pytest.raises(ConfigError, match="feature_norm must be one of"):
        tiny(feature_norm="zscore")
    with pytest.raises(ConfigError, match="does not give a"):
        tiny(feature_layers=["fc"])  # the classifier (an Identity here) gives (batch, features), no feature map


def test_feature_options_key_the_cache_and_round_trip(cache_root, tmp_path):
    """Each option changes the cache key (plain features keep theirs); the cached table equals the encoder's own
    pooled features; a frozen fit on them saves, loads and predicts image files with the same numbers."""
    from emoembed.model import EmotionModel

    plain_key = feature_key(tiny())
    keys = {feature_key(tiny(**{**MULTI, **kw})) for kw in
            ({}, {"flip_average": False}, {"feature_norm": "none"}, {"feature_layers": ["layer4"]})}
    assert len(keys) == 4 and plain_key not in keys
    paths, y = images(tmp_path)
    enc = tiny(**MULTI)
    logs: list[str] = []
    feats = cached_features(enc, paths, batch_size=8, log=logs.append)
    assert feats.shape == (24, 1280)
    with torch.no_grad():
        direct = enc.eval().pooled_features(enc.collate(paths, use_cache=False)["pixels"]).numpy()
    np.testing.assert_allclose(feats, direct, atol=1e-5)

    fmts = FormatRegistry.load(REPO / "mappings" / "formats.yaml", REPO / "mappings" / "equivalences.yaml")
    codec = codec_for(["fer7", "va"], fmts, dim=16)
    task = Task("bright", fmts["fer7"], {"train": paths[:16], "dev": paths[16:20], "test": paths[20:]},
                {"train": y[:16], "dev": y[16:20], "test": y[20:]}, {}, "image")
    recipe = load_encoder_recipe(REPO / "encoders" / "image-tiny-test.yaml", "image")
    recipe["encoder"].update({"freeze_backbone": True, "eval_transform": [{"type": "Resize", "size": [32, 32]}], **MULTI})
    recipe["training"].update({"epochs": 20, "lr": 0.03, "batch_size": 8, "device": "cpu", "patience": 20})
    logs.clear()
    result = fit(recipe, codec, [task], progress=False, log=logs.append)
    assert any("computed in" in m for m in logs)  # the fit's items are another dataset entry
    assert result.dev_score == 1.0
    model = EmotionModel.from_training(result, codec, [task], recipe)
    model.save_pretrained(tmp_path / "model")
    loaded = EmotionModel.from_pretrained(tmp_path / "model")
    cfg = loaded.encoder.config()
    assert cfg["feature_layers"] == ["layer3", "layer4"] and cfg["feature_norm"] == "l2" and cfg["flip_average"] is True
    assert loaded.encoder.num_features == 1280
    a = model.predict(paths[:6], "fer7")
    b = loaded.predict(paths[:6], "fer7")  # the loaded model runs the backbone on the files' pixels
    cols = list(fmts["fer7"].variables)
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-4)
    assert (b["happy"].to_numpy()[0::2] > b["sad"].to_numpy()[0::2]).all()  # bright images read happy
    logs.clear()
    fit(recipe, codec, [task], progress=False, log=logs.append)  # a second fit reads its features back
    assert any("read from the cache" in m for m in logs) and not any("computed in" in m for m in logs)


def test_class_ratings_block_is_the_expected_word_rating(shared_data, cache_root, tmp_path):
    """class_ratings: softmax(ImageNet logits / T) @ a table of Warriner valence/arousal per ImageNet class; the
    table is filled when the model is made and saved with it (predict needs no data)."""
    from emoembed.encoders.image import class_rating_table, imagenet_class_names

    spec = {"dataset": "warriner", "format": "vad", "variables": ["valence", "arousal"], "temperature": 2}
    names = imagenet_class_names()
    assert len(names) == 1000 and names[292][0] == "tiger"
    table, report = class_rating_table(spec)
    assert table.shape == (1000, 2) and np.isfinite(table).all() and (np.abs(table) <= 1).all()
    assert report["classes_by_name"] + report["classes_by_words"] + report["classes_unrated"] == 1000
    assert report["classes_by_name"] > 300
    cockroach = next(i for i, n in enumerate(names) if "cockroach" in n)
    assert table[cockroach, 0] < table[292, 0]  # a cockroach is less pleasant than a tiger, by the word norms
    torch.manual_seed(0)
    enc = ImageEncoder.from_recipe({**TINY, "class_ratings": {**spec, "scale": 3}, "feature_norm": "l2"}, 16).eval()
    assert enc.block_sizes == [512, 2] and [n for n, _ in enc.feature_blocks()] == ["final", "class_ratings"]
    torch.testing.assert_close(enc.class_table, torch.as_tensor(table))
    paths, _ = images(tmp_path, 4)
    pixels = enc.collate(paths, use_cache=False)["pixels"]
    with torch.no_grad():
        feats = enc.pooled_features(pixels)
        probs = torch.softmax(enc.class_head(enc.backbone(pixels)) / 2, dim=1)
    torch.testing.assert_close(feats[:, 512:], 3 * (probs @ enc.class_table))
    assert feature_key(enc) != feature_key(tiny(feature_norm="l2"))
    # the table travels in the state dict: a model rebuilt from its config (no data read) gives the same features
    clone = ImageEncoder.from_config(enc.config())
    assert float(clone.class_table.abs().sum()) == 0.0
    clone.load_state_dict(enc.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone.eval().pooled_features(pixels), feats)
    with pytest.raises(ConfigError, match="no format 'va'"):
        ImageEncoder.from_recipe({**TINY, "class_ratings": {**spec, "format": "va"}}, 16)
    with pytest.raises(ConfigError, match="unknown key"):
        tiny(class_ratings={**spec, "lexicon": "x"})
    with pytest.raises(ConfigError, match="scale must be > 0"):
        tiny(class_ratings={**spec, "scale": 0})


def test_feature_sizes_append_the_blocks_of_the_resized_image(cache_root, tmp_path):
    """feature_sizes: [48] — the same blocks (layer4, final) of the image bilinearly resized to 48 px, appended
    after the native size's and before class_ratings; each l2-scaled; the option keys the cache, is checked and
    round-trips through the config."""
    import torch.nn.functional as F

    paths, _ = images(tmp_path, 3)
    enc = tiny(feature_layers=["layer4"], feature_norm="l2", feature_sizes=[48]).eval()
    assert enc.block_sizes == [512, 512, 512, 512] and enc.num_features == 2048
    blocks = dict(enc.feature_blocks())
    assert list(blocks) == ["layer4", "final", "layer4@48", "final@48"] and blocks["final@48"] == slice(1536, 2048)
    pixels = enc.collate(paths, use_cache=False)["pixels"]
    with torch.no_grad():
        feats = enc.pooled_features(pixels)
        big = F.interpolate(pixels, size=(48, 48), mode="bilinear", align_corners=False)
        final = enc.backbone(big)
        torch.testing.assert_close(feats[:, blocks["final@48"]], final / final.norm(dim=1, keepdim=True))
        native = tiny(feature_layers=["layer4"], feature_norm="l2").eval()
        native.backbone.load_state_dict(enc.backbone.state_dict())
        torch.testing.assert_close(feats[:, :1024], native.pooled_features(pixels))  # the narrower setting's columns
    assert feature_key(enc) != feature_key(native)
    assert ImageEncoder.from_config(enc.config()).feature_sizes == [48]
    wide = tiny(feature_sizes=[48], eval_transform=[{"type": "Resize", "size": [32, 40]}]).eval()
    with torch.no_grad():  # not square: the shorter side becomes the size, the aspect ratio is kept
        resized = F.interpolate(torch.zeros(1, 3, 32, 40), size=(48, 60), mode="bilinear", align_corners=False)
        torch.testing.assert_close(wide.pooled_features(torch.zeros(1, 3, 32, 40))[:, 512:], wide.backbone(resized))
    for bad, message in (([8], "whole number of px ≥ 16"), ([48, 48], "listed twice"), ("48", "list of input sizes"),
                         ([40.5], "whole number")):
        with pytest.raises(ConfigError, match=message):
            tiny(feature_sizes=bad)

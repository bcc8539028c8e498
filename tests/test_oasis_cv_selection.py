"""benchmarks/images.py's OASIS CV: theme-grouped outer folds; the feature setting and the ridge penalty are chosen
by an inner theme-grouped CV on the training rows only (the test fold can be anything, even NaN)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_images", REPO / "benchmarks" / "images.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_images"] = module
    spec.loader.exec_module(module)
    return module


class _Codec:
    dim = 16


def test_theme_folds_keep_themes_together(bench):
    names = [f"{t} {i}" for t in ("Beach", "War", "Cat", "Snow", "Yarn", "Tornado") for i in range(1, 5)]
    folds = bench.theme_folds(names, 3, seed=13)
    themes = bench.theme_of(names)
    assert sorted(np.concatenate(folds).tolist()) == list(range(24))
    for f in folds:
        for g in folds:
            if f is not g:
                assert not set(themes[f]) & set(themes[g])


def test_candidates_are_column_subsets_and_inner_cv_never_sees_the_test_rows(bench):
    cfg = {"backbone": "resnet10t", "weights": None, "image_size": 32, "feature_layers": ["layer3", "layer4"],
           "feature_norm": "l2", "flip_average": True, "eval_transform": [{"type": "Resize", "size": [32, 32]}]}
    cands = bench.feature_candidates(cfg, _Codec())
    assert [(c["flip_average"], c["feature_layers"]) for c in cands] == [
        (False, []), (False, ["layer4"]), (False, ["layer3", "layer4"]),
        (True, []), (True, ["layer4"]), (True, ["layer3", "layer4"])]
    assert cands[0]["columns"].tolist() == list(range(768, 1280))  # final block only
    assert cands[1]["columns"].tolist() == list(range(256, 1280))
    rng = np.random.default_rng(0)
    n, themes = 60, np.repeat(np.arange(12), 5).astype(str)
    signal = rng.normal(size=(n, 1))
    feats = {flip: torch.from_numpy(rng.normal(size=(n, 1280)).astype(np.float32)) for flip in (False, True)}
    feats[True][:, 300:301] = torch.from_numpy(signal.astype(np.float32))  # only layer4+final with flip carry y
    y = np.hstack([signal, -signal]) + 0.05 * rng.normal(size=(n, 2))
    test = np.arange(50, 60)
    train = np.arange(50)
    y_poisoned = y.copy()
    y_poisoned[test] = np.nan  # the inner CV must not read the test fold's labels …
    for flip in feats:
        feats[flip][test] = float("nan")  # … nor its features
    best = bench.inner_select(feats, cands, y_poisoned, train, themes, np.logspace(-2, 2, 5))
    assert best["flip_average"] is True and best["feature_layers"] in (["layer4"], ["layer3", "layer4"])
    assert np.isfinite(best["inner_score"]) and best["alpha"] in np.logspace(-2, 2, 5)

"""benchmarks/images.py's OASIS CV: theme-grouped outer folds; the feature setting and the ridge penalty are chosen
by an inner theme-grouped CV on the training rows only (the test fold can be anything, even NaN)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_module import load_benchmark
import torch

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("images", "bench_images")


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


def test_ridge_path_is_sklearns_ridge_and_inner_score_is_gridsearchs(bench):
    """The dual-form ridge path gives sklearn Ridge(alpha)'s predictions (intercept unpenalised) for every penalty,
    and inner_select's score of a candidate is GridSearchCV(Ridge, GroupKFold)'s best mean negative MSE."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 70)), rng.normal(size=(40, 2))
    alphas = np.logspace(-2, 2, 5)
    path = bench.ridge_path(x[:30] @ x[:30].T, x[30:] @ x[:30].T, y[:30], alphas)
    for a, pred in zip(alphas, path):
        np.testing.assert_allclose(pred, Ridge(alpha=a).fit(x[:30], y[:30]).predict(x[30:]), atol=1e-8)
    cfg = {"backbone": "resnet10t", "weights": None, "image_size": 32, "feature_layers": ["layer4"],
           "feature_norm": "l2", "eval_transform": [{"type": "Resize", "size": [32, 32]}]}
    cand = bench.feature_candidates(cfg, _Codec())[1]  # layer4 + final
    assert cand["blocks"] == {"layer4": 1.0, "final": 1.0}
    n, themes = 50, np.repeat(np.arange(10), 5).astype(str)
    feats = {False: torch.from_numpy(rng.normal(size=(n, 1024)).astype(np.float32))}
    y = rng.normal(size=(n, 2))
    train = np.arange(45)
    best = bench.inner_select(feats, [cand], y, train, themes, alphas)
    gs = GridSearchCV(Ridge(), {"alpha": alphas}, cv=GroupKFold(5), scoring="neg_mean_squared_error")
    gs.fit(feats[False][train].numpy().astype(np.float64), y[train], groups=themes[train])
    assert best["alpha"] == gs.best_params_["alpha"]
    assert best["inner_score"] == pytest.approx(gs.best_score_, rel=1e-9)


def test_extra_feature_sizes_are_candidate_blocks_and_the_projection_reads_unweighted_features(bench):
    """A recipe with feature_sizes: the inner CV may leave the extra-size blocks out or weight them; a chosen weight
    is folded into the fold encoder's projection, whose decoded output is the weighted ridge prediction."""
    from sklearn.linear_model import Ridge

    from emoembed.encoders.image import ImageEncoder

    cfg = {"backbone": "resnet10t", "weights": None, "image_size": 32, "feature_layers": ["layer4"],
           "feature_norm": "l2", "feature_sizes": [48], "eval_transform": [{"type": "Resize", "size": [32, 32]}]}
    cands = bench.feature_candidates(cfg, _Codec())
    assert [(c["feature_layers"], c["feature_sizes"], c["size_weight"]) for c in cands] == [
        ([], [], 0.0), (["layer4"], [], 0.0), ([], [48], 0.5), (["layer4"], [48], 0.5), ([], [48], 1.0),
        (["layer4"], [48], 1.0)]
    cand = cands[3]
    assert list(cand["blocks"]) == ["layer4", "final", "layer4@48", "final@48"]
    assert cand["columns"].tolist() == list(range(2048))
    assert cand["weight"].tolist() == [1.0] * 1024 + [0.5] * 1024
    assert cands[2]["columns"].tolist() == list(range(512, 1024)) + list(range(1536, 2048))  # final, final@48

    class Codec:
        dim = 4
        heads = {"va": torch.nn.Linear(4, 2, bias=False)}

    torch.manual_seed(0)
    enc = ImageEncoder.from_config({**cfg, "dim": 4})
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=(30, 2048)).astype(np.float32))
    y = rng.normal(size=(30, 2))
    bench.ridge_projection(enc, Codec, x, y, np.arange(25), 1.0, cand["weight"])
    with torch.no_grad():
        decoded = Codec.heads["va"](enc.proj(x[25:])).numpy()
    weighted = x.numpy().astype(np.float64) * cand["weight"]
    expected = Ridge(alpha=1.0).fit(weighted[:25], y[:25]).predict(weighted[25:])
    np.testing.assert_allclose(decoded, expected, atol=1e-4)

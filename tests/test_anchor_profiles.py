"""Anchor profiles (recipe ``codec.anchor_profiles`` / ``codec.anchor_bipolar``, emoembed.anchors): data-driven
anchors, the mean training label per format and clear top class, computed here on tiny synthetic formats."""
from __future__ import annotations

import numpy as np
import pytest

from emoembed.anchors import PROFILE, anchor_plan, build_anchors, build_profile_anchors, item_classes
from emoembed.formats import default_registry


@pytest.fixture(scope="module")
def reg():
    return default_registry()


def test_item_classes_per_kind_of_format(reg):
    be5, ekman7, nrc10 = reg.get("be5"), reg.get("ekman7"), reg.get("nrc10")
    eq = reg.equivalences
    y = np.array([[.04, .40, .48, .44, .38],   # EmoMap's grief: sadness on top
                  [.1, .2, .1, .2, .05],       # nothing reaches .25: neutral
                  [.1, .5, .1, .5, .1]])       # a tie: no class
    assert item_classes(be5, y, eq) == [{"sadness"}, {"neutral"}, set()]
    e = np.zeros((2, 7)); e[0, ekman7.index("sadness")] = 1; e[1, ekman7.index("neutral")] = 1
    assert item_classes(ekman7, e, eq) == [{"sadness"}, {"neutral"}]
    n = np.zeros((3, 10)); n[0, [nrc10.index("sadness"), nrc10.index("negative")]] = 1
    n[1, [nrc10.index("joy"), nrc10.index("trust")]] = 1  # two emotions: no emotion class
    assert item_classes(nrc10, n, eq) == [{"sadness", "negative"}, set(), {"neutral"}]


def test_profiles_are_mean_labels_per_class_with_a_minimum_count(reg):
    eq = reg.equivalences
    formats = {n: reg.get(n) for n in ("vad", "be5", "ekman7", "goemotions28")}
    islands = [{"vad", "be5"}, {"ekman7", "goemotions28"}]
    sad = np.tile([.1, .3, .6, .3, .2], (20, 1)); sad[:10, 2] = .8           # mean sadness .7
    flat = np.tile([.1, .1, .1, .1, .1], (25, 1))                           # neutral
    fear = np.tile([.0, .0, .2, .5, .0], (5, 1))                            # too few for a profile
    be5 = np.vstack([sad, flat, fear])
    vad = np.vstack([np.tile([-.5, -.2, -.3], (20, 1)), np.tile([0., -.3, .1], (25, 1)), np.tile([-.3, .4, -.4], (5, 1))])
    ek = np.zeros((60, 7)); ek[:30, formats["ekman7"].index("sadness")] = 1; ek[30:, formats["ekman7"].index("neutral")] = 1
    ek[:3, formats["ekman7"].index("neutral")] = .2
    sides = [("vad", vad, "be5", be5), ("be5", be5, "vad", vad), ("ekman7", ek, "goemotions28", np.zeros((60, 28)))]
    got = {(a.format, a.cls): a for a in build_profile_anchors(sides, formats, eq, islands, min_items=20)}
    assert set(got) == {("be5", "sadness"), ("be5", "neutral"), ("ekman7", "sadness"), ("ekman7", "neutral")}
    assert np.allclose(got["be5", "sadness"].vector, [.1, .3, .7, .3, .2])
    assert np.allclose(got["be5", "neutral"].vector, [.1] * 5)
    assert np.allclose(got["ekman7", "sadness"].vector[formats["ekman7"].index("neutral")], .02)
    assert all(a.level == PROFILE for a in got.values()) and got["be5", "sadness"].island != got["ekman7", "sadness"].island
    # bipolar: VAD grouped by its partner's class
    got = {(a.format, a.cls): a for a in build_profile_anchors(sides, formats, eq, islands, min_items=20, bipolar=True)}
    assert np.allclose(got["vad", "sadness"].vector, [-.5, -.2, -.3]) and np.allclose(got["vad", "neutral"].vector, [0, -.3, .1])
    assert ("vad", "fear") not in got
    kept = build_profile_anchors(sides, formats, eq, islands, min_items=20, bipolar=True, bipolar_exclude=["sadness"])
    assert {(a.format, a.cls) for a in kept} == set(got) - {("vad", "sadness")}
    # a class found in one island only is dropped
    assert build_profile_anchors(sides[:2], formats, eq, islands, min_items=20, bipolar=True) == []
    # profile anchors pair only with profiles (their own level) and decode on every variable of the target
    one_hot = build_anchors(formats, eq, islands)
    plan = anchor_plan(formats, eq, one_hot + list(got.values()))
    levels = {(plan.anchors[i].level, plan.anchors[j].level) for i, j in zip(plan.src.tolist(), plan.dst.tolist())}
    assert (PROFILE, PROFILE) in levels and not any((a == PROFILE) != (b == PROFILE) for a, b in levels)
    sel, _, mask = plan.per_target["vad"]
    assert mask.min() == 1.0


def test_profile_weight_scales_only_the_profile_pairs(reg):
    """``codec.anchor_profile_weight``: weight 1 gives the unweighted loss; weight 0 leaves the one-hot pairs' loss
    alone (the same sum over the one-hot pairs, averaged over all pairs)."""
    import torch

    from emoembed.anchors import anchor_loss
    from emoembed.codec import codec_for

    eq = reg.equivalences
    formats = {n: reg.get(n) for n in ("be5", "ekman7")}
    islands = [{"be5"}, {"ekman7"}]
    one_hot = build_anchors(formats, eq, islands)
    sad_be5 = [(.1, .3, .7, .3, .2)] * 20
    sad_ek = np.zeros((20, 7)); sad_ek[:, formats["ekman7"].index("sadness")] = 1
    profiles = build_profile_anchors([("be5", sad_be5, None, None), ("ekman7", sad_ek, None, None)], formats, eq,
                                     islands, min_items=20)
    assert len(profiles) == 2
    torch.manual_seed(0)
    codec = codec_for(["be5", "ekman7"], reg, 8, [16], 0.0).eval()
    plain = anchor_plan(formats, eq, one_hot + profiles)
    assert plain.weight is None
    with torch.no_grad():
        full = anchor_loss(codec, plain)
        assert torch.equal(anchor_loss(codec, anchor_plan(formats, eq, one_hot + profiles, 1.0)), full)
        zero = anchor_loss(codec, anchor_plan(formats, eq, one_hot + profiles, 0.0))
        only_one_hot = anchor_loss(codec, anchor_plan(formats, eq, one_hot))
    n_all, n_hot = len(plain.src), len(anchor_plan(formats, eq, one_hot).src)
    assert zero < full
    assert torch.allclose(zero * n_all, only_one_hot * n_hot, rtol=1e-5)

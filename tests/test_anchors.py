"""Issue 14 (class outputs from ratings) / 17: equivalence anchors place formats that no paired dataset joins in one
emotion space (emoembed.anchors). Bundled data only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emoembed.anchors import anchor_loss, anchor_vector, build_anchors, pair_islands
from emoembed.data.registry import DataRegistry
from emoembed.formats import default_registry
from emoembed.recipes import resolve_codec_recipe
from emoembed.training.codec import load_pairs, train_codec


@pytest.fixture(scope="module")
def registry():
    from emoembed.settings import bundled_data_dir

    return DataRegistry.load(roots=[bundled_data_dir()])


def test_islands_are_the_connected_components_of_the_pairs():
    islands = pair_islands([("vad", "be5"), ("goemotions28", "ekman7"), ("be5", "nrc10"), ("fer7", "ferplus8"),
                            ("goemotions28", "sentiment4")])
    assert islands == [{"be5", "nrc10", "vad"}, {"ekman7", "goemotions28", "sentiment4"}, {"fer7", "ferplus8"}]
    assert pair_islands([("vad", "be5"), ("be5", "ekman7")]) == [{"be5", "ekman7", "vad"}]


def test_anchor_labels_per_kind_of_format():
    reg = default_registry()
    be5, ekman7, fer7, nrc10 = (reg.get(n) for n in ("be5", "ekman7", "fer7", "nrc10"))
    assert anchor_vector(be5, be5.index("sadness"), 1.0, None) == (0, 0, 1, 0, 0)
    assert anchor_vector(be5, be5.index("sadness"), 0.5, None) == (0, 0, 0.5, 0, 0)
    assert anchor_vector(be5, None, 0.0, None) == (0, 0, 0, 0, 0)  # "no emotion"
    # class formats: the level on the class, the rest on neutral
    assert anchor_vector(ekman7, ekman7.index("sadness"), 0.5, ekman7.index("neutral")) == (0, 0, 0, 0, 0.5, 0, 0.5)
    assert anchor_vector(fer7, fer7.index("sad"), 1.0, fer7.index("neutral")) == (0, 0, 0, 0, 1, 0, 0)
    # multilabel without a neutral class: the level alone; a single-label format without one: no half-way label
    assert anchor_vector(nrc10, nrc10.index("joy"), 0.5, None) == (0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0)
    assert anchor_vector(reg.get("isear7"), 0, 0.5, None) is None


def test_anchors_link_only_classes_found_in_two_islands():
    reg = default_registry()
    formats = {n: reg.get(n) for n in ("vad", "be5", "nrc10", "goemotions28", "ekman7")}
    anchors = build_anchors(formats, reg.equivalences, [{"vad", "be5", "nrc10"}, {"goemotions28", "ekman7"}])
    classes = {a.cls for a in anchors}
    assert {"joy", "anger", "sadness", "fear", "disgust", "surprise", "neutral"} <= classes
    assert "positive" not in classes  # nrc10 only: sentiment4 is absent
    assert not any(a.format == "vad" for a in anchors)  # a bipolar rating format states no single class
    neutral = {a.format: a.vector for a in anchors if a.cls == "neutral"}
    assert neutral["be5"] == (0,) * 5 and neutral["nrc10"] == (0,) * 10 and neutral["ekman7"][-1] == 1
    assert build_anchors(formats, reg.equivalences, [set(formats)]) == []  # one island: nothing to link


def _codec(registry, pairs, anchor, epochs=6):
    r = resolve_codec_recipe({"name": "t", "seed": 3, "pairs": pairs, "codec": {"dim": 16, "hidden": [32], "dropout": 0.0},
                              "loss_weights": {"anchor": anchor},
                              "training": {"epochs": epochs, "steps_per_epoch": 60, "batch_size": 64, "lr": 0.005, "patience": 100}})
    return train_codec(r, load_pairs(r, registry, log=lambda *_: None), registry.formats, progress=False,
                       log=lambda *_: None).codec


def test_one_island_trains_bit_identically_with_or_without_the_anchor_weight(registry, one_torch_thread):
    a = _codec(registry, ["warriner_emomap", "warriner_emolex"], 1.0, epochs=2)
    b = _codec(registry, ["warriner_emomap", "warriner_emolex"], 0.0, epochs=2)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


@torch.no_grad()
def _be5_from_ekman7(codec):
    ek, be5 = codec.formats["ekman7"], codec.formats["be5"]
    emotions = ["joy", "anger", "sadness", "fear", "disgust"]
    x = torch.zeros(len(emotions), ek.size)
    for i, e in enumerate(emotions):
        x[i, ek.index(e)] = 1.0
    out = codec.decode("be5", codec.encode_labels("ekman7", x)).numpy()
    return out, [be5.index(e) for e in emotions]


def test_anchors_make_a_class_from_another_island_decode_as_its_emotion(registry, one_torch_thread):
    """GoEmotions' Ekman classes and Warriner's VAD/BE5 share no pair: without anchors an Ekman 'sadness' label
    decodes to arbitrary BE5 values; with them every Ekman emotion decodes with its own BE5 intensity on top,
    inside the BE5 range, and the anchor loss has fallen."""
    pairs = ["warriner_emomap", "goemotions_ekman"]
    anchored = _codec(registry, pairs, 1.0)
    out, diag = _be5_from_ekman7(anchored)
    assert out.argmax(1).tolist() == diag, out.round(2)
    assert out.min() > -0.3 and out.max() < 1.3, out.round(2)
    plain = _codec(registry, pairs, 0.0)
    out0, _ = _be5_from_ekman7(plain)
    assert np.abs(out0 - np.eye(5)[:, :]).mean() > 2 * np.abs(out - np.eye(5)).mean()
    islands = pair_islands([("vad", "be5"), ("goemotions28", "ekman7")])
    anchors = build_anchors(anchored.formats, anchored.equivalences, islands)
    with torch.no_grad():
        assert float(anchor_loss(anchored, anchors)) < 0.5 * float(anchor_loss(plain, anchors))


def test_far_out_of_range_outputs_are_clipped_with_a_warning_naming_them():
    from emoembed.errors import EmoembedWarning
    from emoembed.format_kinds import format_output

    be5 = default_registry().get("be5")
    raw = np.array([[4.26, 0.04, -0.07, 0.05, -0.59], [0.5, 0.5, 1.1, 0.5, 0.5]])  # the old codec's FER "sad" → be5
    with pytest.warns(EmoembedWarning, match=r"2 of 10 be5 values lie far outside its range \[0, 1\].*columns joy, disgust"):
        out = format_output(raw, be5)
    assert out.to_numpy().max() == 1.0 and out.to_numpy().min() == 0.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        format_output(np.array([[1.3, -0.4, 0.5, 0.5, 0.5]]), be5)  # a linear head's overshoot: no warning


def test_bipolar_profiles_come_only_from_the_pairs_named(registry, one_torch_thread):
    """``codec.anchor_bipolar_pairs`` restricts which pairs' ratings make the VAD profiles (the others' ratings
    still train the codec); an unknown pair name is refused before anything trains."""
    from emoembed.errors import ConfigError

    def profiles_logged(bipolar_pairs):
        lines = []
        shape = {"dim": 16, "hidden": [32], "dropout": 0.0, "anchor_profiles": True, "anchor_bipolar": True,
                 "anchor_bipolar_pairs": bipolar_pairs}
        r = resolve_codec_recipe({"name": "t", "seed": 3, "pairs": ["warriner_emomap", "goemotions_ekman"], "codec": shape,
                                  "training": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 16, "patience": 5}})
        train_codec(r, load_pairs(r, registry, log=lambda *_: None), registry.formats, progress=False, log=lines.append)
        return next(line for line in lines if "profiles:" in line).split("profiles:")[1]

    with_vad = profiles_logged(None)
    assert "sadness: be5, ekman7, goemotions28, vad" in with_vad
    without = profiles_logged(["goemotions_ekman"])  # EmoMap's VAD gets no partner classes
    assert "vad" not in without and "sadness: be5, ekman7, goemotions28" in without
    with pytest.raises(ConfigError, match=r"codec.anchor_bipolar_pairs: nosuch_pair not among the recipe's pairs "
                                          r"\(warriner_emomap, goemotions_ekman\)"):
        profiles_logged(["nosuch_pair"])

"""The format registry (mappings/formats.yaml) and the equivalence classes (mappings/equivalences.yaml)."""
from __future__ import annotations

from math import comb
from pathlib import Path

import pytest
import yaml

from emoembed import formats as formats_module
from emoembed.errors import ConfigError
from emoembed.formats import EquivalenceClasses, FormatRegistry, LabelFormat, default_registry

MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"

# name: (kind, size, range, loss, metric)
EXPECTED = {
    "vad": ("regression", 3, (-1.0, 1.0), "mse", "pearson"),
    "va": ("regression", 2, (-1.0, 1.0), "mse", "pearson"),
    "valence": ("regression", 1, (-1.0, 1.0), "mse", "pearson"),
    "be5": ("regression", 5, (0.0, 1.0), "mse", "pearson"),
    "be6": ("regression", 6, (0.0, 1.0), "mse", "pearson"),
    "plutchik8": ("regression", 8, (0.0, 1.0), "mse", "pearson"),
    "nrc10": ("multilabel", 10, (0.0, 1.0), "bce", "macro_f1"),
    "ekman7": ("multilabel", 7, (0.0, 1.0), "bce", "macro_f1"),
    "goemotions28": ("multilabel", 28, (0.0, 1.0), "bce", "macro_f1"),
    "sentiment4": ("multilabel", 4, (0.0, 1.0), "bce", "macro_f1"),
    "fer7": ("multiclass", 7, (0.0, 1.0), "cross_entropy", "accuracy"),
    "ferplus8": ("distribution", 8, (0.0, 1.0), "soft_cross_entropy", "accuracy"),
    "isear7": ("multiclass", 7, (0.0, 1.0), "cross_entropy", "accuracy"),
    "ssec8": ("multilabel", 8, (0.0, 1.0), "bce", "macro_f1"),
}


@pytest.fixture(scope="module")
def reg() -> FormatRegistry:
    return FormatRegistry.load(MAPPINGS / "formats.yaml", MAPPINGS / "equivalences.yaml")


# ---------------------------------------------------------------------------------------- the real registry
def test_real_registry_has_exactly_the_formats_of_the_yaml(reg):
    raw = yaml.safe_load((MAPPINGS / "formats.yaml").read_text(encoding="utf-8"))
    assert reg.names() == list(raw["formats"])  # file order kept
    assert set(reg.names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_format_properties(reg, name):
    kind, size, rng, loss, metric = EXPECTED[name]
    f = reg[name]
    assert isinstance(f, LabelFormat)
    assert (f.name, f.kind, f.size, f.range, f.loss, f.metric) == (name, kind, size, rng, loss, metric)
    assert len(f.variables) == len(set(f.variables)) == size
    assert f.is_class_format == (kind != "regression")


def test_real_variable_order(reg):
    assert reg["vad"].variables == ("valence", "arousal", "dominance")
    assert reg["be5"].variables == ("joy", "anger", "sadness", "fear", "disgust")
    assert reg["be6"].variables == ("joy", "anger", "sadness", "fear", "disgust", "surprise")
    # FER2013's index order: 0 angry … 6 neutral
    assert reg["fer7"].variables == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert reg["ferplus8"].variables[:2] == ("neutral", "happiness") and reg["ferplus8"].variables[-1] == "contempt"
    g = reg["goemotions28"].variables
    assert g[0] == "admiration" and g[17] == "joy" and g[27] == "neutral"
    assert reg["fer7"].index("happy") == 3
    assert reg["be5"].index("disgust") == 4


def test_registry_lookup_errors(reg):
    assert "vad" in reg and "vad4" not in reg
    with pytest.raises(ConfigError, match=r"some/card.yaml: formats: unknown label format 'vad4'; known formats: .*be5"):
        reg.get("vad4", context="some/card.yaml: formats")
    with pytest.raises(ConfigError, match=r"format 'be5' has no variable 'happy'"):
        reg["be5"].index("happy")


def test_format_dict_roundtrip(reg):
    for f in reg:
        d = f.to_dict()
        assert LabelFormat.from_dict(d["name"], d) == f


def test_default_registry_is_cached_and_matches_the_files(monkeypatch, reg):
    monkeypatch.delenv("EMOEMBED_HOME", raising=False)
    monkeypatch.setattr(formats_module, "_DEFAULT", None)
    a = default_registry()
    assert a is default_registry()
    assert a.names() == reg.names()
    assert a.equivalences.to_dict() == reg.equivalences.to_dict()


# ---------------------------------------------------------------------------------------- equivalences
def test_equivalence_classes_in_the_real_files(reg):
    eq = reg.equivalences
    raw = yaml.safe_load((MAPPINGS / "equivalences.yaml").read_text(encoding="utf-8"))
    assert list(eq.classes) == list(raw["classes"])
    joy = set(eq.classes["joy"].members)
    assert {("be5", "joy"), ("fer7", "happy"), ("ferplus8", "happiness"), ("goemotions28", "joy"), ("isear7", "joy")} <= joy
    assert ("goemotions28", "love") not in joy
    assert set(eq.classes["valence"].members) == {("vad", "valence"), ("va", "valence"), ("valence", "valence")}
    assert set(eq.classes["anger"].members) >= {("be5", "anger"), ("fer7", "angry"), ("ferplus8", "anger")}
    assert set(eq.classes["sadness"].members) >= {("fer7", "sad"), ("be6", "sadness")}
    assert eq.classes["dominance"].members == (("vad", "dominance"),)
    # contempt, shame, guilt, admiration … have no class
    assert eq.class_of("ferplus8", "contempt") is None
    assert eq.class_of("isear7", "shame") is None
    assert eq.class_of("fer7", "happy") == "joy"
    assert eq.class_of("ferplus8", "happiness") == "joy"
    assert eq.class_of("va", "arousal") == "arousal"
    # every member really is a variable of its format, and no member is in two classes
    members = [m for c in eq.classes.values() for m in c.members]
    assert len(members) == len(set(members))
    for fmt, var in members:
        assert var in reg[fmt].variables


def test_canonical_names(reg):
    eq = reg.equivalences
    assert eq.canonical("happy") == "joy"
    assert eq.canonical("happiness") == "joy"
    assert eq.canonical("angry") == "anger"
    assert eq.canonical("sad") == "sadness"
    assert eq.canonical("polarity") == "valence"
    assert eq.canonical("control") == "dominance"
    assert eq.canonical("joy") == "joy"
    assert eq.canonical("contempt") == "contempt"  # unknown names come back unchanged


def test_tied_pairs(reg):
    eq = reg.equivalences
    assert eq.tied_pairs(["vad", "va"]) == [
        (("vad", "valence"), ("va", "valence"), "valence"),
        (("vad", "arousal"), ("va", "arousal"), "arousal"),
    ]
    assert eq.tied_pairs(["be5", "fer7"]) == [
        (("be5", "joy"), ("fer7", "happy"), "joy"),
        (("be5", "anger"), ("fer7", "angry"), "anger"),
        (("be5", "sadness"), ("fer7", "sad"), "sadness"),
        (("be5", "fear"), ("fer7", "fear"), "fear"),
        (("be5", "disgust"), ("fer7", "disgust"), "disgust"),
    ]
    assert eq.tied_pairs(["vad"]) == []
    assert eq.tied_pairs(["be5", "isear7"])[0] == (("be5", "joy"), ("isear7", "joy"), "joy")
    # all formats: one pair per two members of a class
    expected = sum(comb(len(c.members), 2) for c in eq.classes.values())
    assert len(eq.tied_pairs(reg.names())) == expected == 275


def test_equivalences_roundtrip(reg):
    eq = reg.equivalences
    again = EquivalenceClasses.from_members(eq.to_dict())
    assert again.to_dict() == eq.to_dict()
    assert again.tied_pairs(reg.names()) == eq.tied_pairs(reg.names())
    assert eq.to_dict()["joy"]["names"] == ["joy", "happy", "happiness", "joyful"]
    assert "fer7.happy" in eq.to_dict()["joy"]["members"]


def test_no_equivalences_file_means_no_classes(tmp_path):
    r = FormatRegistry.load(MAPPINGS / "formats.yaml", tmp_path / "absent.yaml")
    assert r.equivalences.classes == {}
    assert r.equivalences.tied_pairs(r.names()) == []


def test_include_and_exclude(tmp_path):
    fpath = tmp_path / "formats.yaml"
    epath = tmp_path / "equivalences.yaml"
    fpath.write_text("formats:\n  a: {kind: regression, variables: [joy, calm]}\n  b: {kind: multiclass, variables: [glad, joy]}\n")
    epath.write_text("classes:\n  joy: {names: [joy], include: [b.glad], exclude: [b.joy]}\n")
    r = FormatRegistry.load(fpath, epath)
    assert r.equivalences.classes["joy"].members == (("a", "joy"), ("b", "glad"))
    assert r.equivalences.tied_pairs(["a", "b"]) == [(("a", "joy"), ("b", "glad"), "joy")]
    # defaults per kind when range/loss/metric are left out
    assert r["a"].range == (-1.0, 1.0) and r["a"].loss == "mse" and r["a"].metric == "pearson"
    assert r["b"].range == (0.0, 1.0) and r["b"].loss == "cross_entropy" and r["b"].metric == "accuracy"


# ---------------------------------------------------------------------------------------- errors
GOOD_FORMATS = "formats:\n  vad: {kind: regression, variables: [valence, arousal, dominance], range: [-1, 1]}\n  be5: {kind: regression, variables: [joy, anger, sadness, fear, disgust], range: [0, 1]}\n"


def _load(tmp_path: Path, formats_text: str = GOOD_FORMATS, equivalences_text: str | None = None) -> FormatRegistry:
    fpath = tmp_path / "formats.yaml"
    epath = tmp_path / "equivalences.yaml"
    fpath.write_text(formats_text, encoding="utf-8")
    if equivalences_text is not None:
        epath.write_text(equivalences_text, encoding="utf-8")
    return FormatRegistry.load(fpath, epath)


def test_good_tmp_files_load(tmp_path):
    r = _load(tmp_path, equivalences_text="classes:\n  joy: {names: [joy]}\n")
    assert r.names() == ["vad", "be5"]
    assert r.equivalences.classes["joy"].members == (("be5", "joy"),)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("{kind: ordinal, variables: [a, b]}",
         r"format 'x': field 'kind' must be one of \['regression', 'multiclass', 'multilabel', 'distribution'\], got 'ordinal'"),
        ("{kind: multilabel, variables: [a, b, a]}", r"format 'x': duplicate variable 'a'"),
        ("{kind: regression, variables: [a], range: [1, -1]}", r"format 'x': field 'range' must be \[low, high\] with low < high, got \[1, -1\]"),
        ("{kind: regression, variables: [a], range: [0, 1, 2]}", r"field 'range' must be \[low, high\]"),
        ("{kind: regression, variables: [a], range: [low, high]}", r"field 'range' must be \[low, high\]"),
        ("{kind: regression, variables: [a], loss: bce}", r"format 'x': loss 'bce' does not fit kind 'regression'; choose from \['mse', 'l1'\]"),
        ("{kind: multiclass, variables: [a, b], loss: mse}", r"loss 'mse' does not fit kind 'multiclass'"),
        ("{kind: multilabel, variables: [a, b], metric: pearson}", r"metric 'pearson' does not fit kind 'multilabel'"),
        ("{kind: multiclass, variables: [a]}", r"a multiclass format needs at least two classes"),
        ("{kind: regression, variables: []}", r"field 'variables' must be a non-empty list of names"),
        ("{kind: regression, variables: [a], colour: red}", r"unknown field\(s\) \['colour'\]"),
        ("[regression, a]", r"format 'x': expected a mapping, got list"),
    ],
)
def test_bad_format(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message) as exc:
        _load(tmp_path, GOOD_FORMATS + f"  x: {spec}\n")
    assert str(exc.value).startswith(f"{tmp_path / 'formats.yaml'}: format 'x'")


@pytest.mark.parametrize(
    "classes, message",
    [
        ("  hope: {names: [hope]}\n", r"class 'hope': no format has a variable named hope"),
        ("  joy: {names: [joy], include: [nope.joy]}\n", r"class 'joy': include names unknown format 'nope' in 'nope.joy'"),
        ("  joy: {names: [joy], include: [vad.joy]}\n", r"class 'joy': include names variable 'joy', which format 'vad' does not have"),
        ("  joy: {names: [joy], exclude: [be5.happy]}\n", r"class 'joy': exclude names variable 'happy', which format 'be5' does not have"),
        ("  valence: {names: [valence]}\n  positive: {names: [positive], include: [vad.valence]}\n",
         r"class 'positive': vad.valence is already in class 'valence'"),
        ("  joy: {names: [joy], exclude: [be5.joy]}\n", r"class 'joy': no format has a variable named joy"),
        ("  joy: {names: joy}\n", r"class 'joy': 'names' must be a list of variable names"),
        ("  joy: {names: [joy], alias: [happy]}\n", r"class 'joy': unknown field\(s\) \['alias'\]"),
        ("  joy: [joy]\n", r"class 'joy': expected a mapping"),
    ],
)
def test_bad_equivalence(tmp_path, classes, message):
    with pytest.raises(ConfigError, match=message) as exc:
        _load(tmp_path, equivalences_text="classes:\n" + classes)
    assert str(exc.value).startswith(f"{tmp_path / 'equivalences.yaml'}: class ")


def test_invalid_yaml_formats(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid YAML") as exc:
        _load(tmp_path, "formats:\n  vad: {kind: regression, variables: [valence\n")
    assert str(exc.value).startswith(f"{tmp_path / 'formats.yaml'}: invalid YAML")


def test_invalid_yaml_equivalences(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid YAML") as exc:
        _load(tmp_path, equivalences_text="classes:\n  joy: {names: [joy]\n   - x\n")
    assert str(exc.value).startswith(f"{tmp_path / 'equivalences.yaml'}: invalid YAML")


def test_top_level_shape_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"formats.yaml: expected a top-level mapping 'formats:'"):
        _load(tmp_path, "vad: {kind: regression, variables: [valence]}\n")
    with pytest.raises(ConfigError, match=r"equivalences.yaml: expected a top-level mapping 'classes:'"):
        _load(tmp_path, equivalences_text="- joy\n")
    with pytest.raises(ConfigError, match=r"nothing.yaml: file not found"):
        FormatRegistry.load(tmp_path / "nothing.yaml")

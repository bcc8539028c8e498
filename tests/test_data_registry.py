"""The data registry: dataset cards, readers, label normalisation, splits, pairs, checks and bad input.

Three groups:
* bundled/package data (``EMOEMBED_DATA`` unset): Warriner, EmoBank, GoEmotions, FER+ labels, EmoMap silver
  and the pip lexicons (EmoLex via nrclex, VADER, AFINN);
* ``@pytest.mark.realdata``: every card against the shared catalogue (skipped without ``EMOEMBED_DATA``);
* bad input over a tmp registry (``make_registry``): each error names the file and the row/column/field.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from emoembed.data import registry as registry_module
from emoembed.data.registry import sha256_of
from emoembed.data.splits import hash_split
from emoembed.errors import ConfigError, DataError, EmoembedError, MissingDataError

REPO_ROOT = Path(__file__).resolve().parent.parent
CARDS_DIR = REPO_ROOT / "data_registry"
BUNDLED = CARDS_DIR / "bundled"

SPLITS = ("train", "dev", "test")
WARRINER_CSV = BUNDLED / "warriner_xanew" / "Ratings_Warriner_et_al.csv"


def _labels_by_item(ds, fmt: str) -> pd.DataFrame:
    return pd.DataFrame(ds.labels(fmt), index=ds.frame["item"].to_numpy(), columns=list(ds.formats[fmt].variables))


def _bipolar(x, lo, hi):
    return (np.asarray(x, dtype=float) - lo) / (hi - lo) * 2 - 1


def _package_file(package: str, *parts: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    return Path(list(spec.submodule_search_locations)[0], *parts)


# ============================================================================ bundled and package data
def test_bundled_registry_roots_and_presence(bundled_registry):
    assert bundled_registry.roots == [BUNDLED]
    for name in ("warriner", "emobank", "goemotions", "ferplus_labels", "emomap_warriner_be5", "emolex", "vader", "afinn",
                 "emotion_embeddings_splits", "warriner_emolex", "goemotions_ekman"):
        assert bundled_registry.is_present(name), name
    for name in ("isear", "ssec", "affectivetext", "fer2013", "oasis", "norare_kapucu", "emobank_affectivetext", "kapucu"):
        assert not bundled_registry.is_present(name), name


def test_warriner_counts_and_splits(bundled_registry):
    ds = bundled_registry.dataset("warriner")
    assert len(ds) == 13915
    assert ds.split_sizes() == {"train": 11587, "dev": 1296, "test": 1032}
    assert ds.frame["item"].is_unique
    assert list(ds.formats) == ["vad"] and ds.labels("vad").shape == (13915, 3)
    # the published XANEW lists decide dev and test exactly; the 124 unlisted words go to train
    lists = {s: {w.strip() for w in (BUNDLED / "warriner_xanew" / "splits" / f"{s}.txt").read_text(encoding="utf-8").splitlines() if w.strip()}
             for s in SPLITS}
    assert {s: len(v) for s, v in lists.items()} == {"train": 11463, "dev": 1296, "test": 1032}
    for s in SPLITS:
        got = set(ds.frame.loc[ds.frame["split"] == s, "item"])
        if s == "train":
            assert lists["train"] <= got and len(got - lists["train"]) == 13915 - 11463 - 1296 - 1032 == 124
        else:
            assert got == lists[s]


def test_warriner_known_values(bundled_registry):
    ds = bundled_registry.dataset("warriner")
    lab = _labels_by_item(ds, "vad")
    # aardvark: V 6.26, A 2.41, D 4.27 on 1..9 → [-1, 1]
    assert lab.loc["aardvark", "valence"] == pytest.approx((6.26 - 1) / 8 * 2 - 1, abs=1e-6)
    assert lab.loc["aardvark", "valence"] == pytest.approx(0.315, abs=1e-6)
    assert lab.loc["aardvark", "arousal"] == pytest.approx(-0.6475, abs=1e-6)
    assert lab.loc["aardvark", "dominance"] == pytest.approx(-0.1825, abs=1e-6)
    # zucchini (last row): V 6.3, A 4.18, D 6.19
    assert lab.loc["zucchini"].to_numpy() == pytest.approx([0.325, -0.205, 0.2975], abs=1e-6)
    row = ds.row("aardvark")
    assert row["content"] == "aardvark" and row["_row"] == 2 and row["_file"].endswith("Ratings_Warriner_et_al.csv")


def test_warriner_all_values_match_the_raw_csv(bundled_registry):
    raw = pd.read_csv(WARRINER_CSV, keep_default_na=False, usecols=["Word", "V.Mean.Sum", "A.Mean.Sum", "D.Mean.Sum"])
    ds = bundled_registry.dataset("warriner")
    assert ds.frame["item"].tolist() == raw["Word"].str.strip().tolist()
    # the word 'null' is a word, not a missing value (pandas' default NA strings would lose it)
    assert ds.row("null")["_row"] == 8291 and _labels_by_item(ds, "vad").loc["null", "valence"] == pytest.approx((4.32 - 1) / 4 - 1)
    expected = np.stack([_bipolar(raw[c], 1, 9) for c in ("V.Mean.Sum", "A.Mean.Sum", "D.Mean.Sum")], axis=1)
    np.testing.assert_allclose(ds.labels("vad"), expected, atol=1e-6)
    assert ds.labels("vad").min() >= -1 and ds.labels("vad").max() <= 1


def test_emobank_counts_and_values(bundled_registry):
    ds = bundled_registry.dataset("emobank")
    assert len(ds) == 10062
    assert ds.split_sizes() == {"train": 8062, "dev": 1000, "test": 1000}
    raw = pd.read_csv(BUNDLED / "emobank" / "emobank.csv", keep_default_na=False)
    assert ds.frame["item"].tolist() == raw["id"].tolist()
    assert ds.frame["split"].tolist() == raw["split"].tolist()
    np.testing.assert_allclose(ds.labels("vad"), np.stack([_bipolar(raw[c], 1, 5) for c in "VAD"], axis=1), atol=1e-6)
    lab = _labels_by_item(ds, "vad")
    assert lab.loc["110CYL068_1036_1079"].to_numpy() == pytest.approx([0.0, 0.0, 0.1], abs=1e-6)  # 3.0, 3.0, 3.2
    assert lab.loc["110CYL068_1079_1110"].to_numpy() == pytest.approx([-0.1, 0.05, -0.1], abs=1e-6)  # 2.8, 3.1, 2.8
    # content keeps the text verbatim (strip: false)
    assert ds.row("110CYL068_1079_1110")["content"] == "If I wasn't working here."


def test_emolex_from_nrclex(bundled_registry):
    ds = bundled_registry.dataset("emolex")
    path = _package_file("nrclex", "data", "nrc_en.json")
    assert Path(ds.frame["_file"].iat[0]) == path
    lex = json.loads(path.read_text(encoding="utf-8"))
    assert len(ds) == len(lex) == 6468
    assert sum(ds.split_sizes().values()) == 6468
    variables = list(ds.formats["nrc10"].variables)
    expected = np.zeros((len(lex), len(variables)))
    for i, labels in enumerate(lex.values()):
        for lab in labels:
            expected[i, variables.index(lab)] = 1
    np.testing.assert_array_equal(ds.labels("nrc10"), expected)
    assert ds.labels("nrc10").sum(axis=0)[variables.index("negative")] == 3324
    assert ds.labels("nrc10").sum(axis=0)[variables.index("joy")] == 689


def test_vader_from_the_package(bundled_registry):
    ds = bundled_registry.dataset("vader")
    path = _package_file("vaderSentiment", "vader_lexicon.txt")
    assert Path(ds.frame["_file"].iat[0]) == path
    lines = path.read_text(encoding="utf-8").splitlines()
    # 7,520 lines; 14 tokens appear twice (lol, ok, xd …); the card keeps the first (duplicates: first)
    assert len(lines) == 7520 and ds.report["rows_read"] == 7520 and ds.report["duplicate_items"] == 14
    assert len(ds) == 7506
    first: dict[str, float] = {}
    for line in lines:
        tok, mean = line.split("\t")[:2]
        first.setdefault(tok.strip(), float(mean))
    lab = _labels_by_item(ds, "valence")["valence"]
    assert set(lab.index) == set(first)
    np.testing.assert_allclose(lab.loc[list(first)].to_numpy(), np.array(list(first.values())) / 4, atol=1e-6)


def test_afinn_from_the_package(bundled_registry):
    ds = bundled_registry.dataset("afinn")
    assert len(ds) == 3382
    raw = pd.read_csv(_package_file("afinn", "data", "AFINN-en-165.txt"), sep="\t", header=None, names=["w", "s"],
                      quoting=csv.QUOTE_NONE, keep_default_na=False)
    assert len(raw) == 3382
    np.testing.assert_allclose(ds.labels("valence")[:, 0], raw["s"].to_numpy() / 5, atol=1e-6)
    assert _labels_by_item(ds, "valence").loc["abandon", "valence"] == pytest.approx(-0.4)
    assert ds.row("abandon")["_row"] == 1  # header: null → the first line is row 1


def _goemotions_reference(root: Path) -> pd.DataFrame:
    frames = []
    for s in SPLITS:
        d = pd.read_csv(root / f"{s}.tsv", sep="\t", header=None, names=["text", "labels", "comment_id"], dtype=str,
                        quoting=csv.QUOTE_NONE, keep_default_na=False)
        d["split"] = s
        frames.append(d)
    return pd.concat(frames, ignore_index=True)


def _multi_hot(label_ids: pd.Series, id_names: list[str], variables: list[str], mapping: dict[str, str] | None = None) -> np.ndarray:
    out = np.zeros((len(label_ids), len(variables)))
    for i, ids in enumerate(label_ids):
        for t in ids.split(","):
            name = id_names[int(t)]
            out[i, variables.index(mapping[name] if mapping else name)] = 1
    return out


def test_goemotions_bundled(bundled_registry):
    ds = bundled_registry.dataset("goemotions")
    assert len(ds) == 54263
    assert ds.split_sizes() == {"train": 43410, "dev": 5426, "test": 5427}
    assert set(ds.formats) == {"goemotions28", "ekman7", "sentiment4"}
    root = BUNDLED / "goemotions"
    ref = _goemotions_reference(root / "original")
    assert ds.frame["item"].tolist() == ref["comment_id"].tolist()
    assert ds.frame["split"].tolist() == ref["split"].tolist()
    assert ds.frame["content"].tolist() == ref["text"].tolist()
    names = (root / "original" / "labels.txt").read_text(encoding="utf-8").split()
    assert len(names) == 28
    np.testing.assert_array_equal(ds.labels("goemotions28"), _multi_hot(ref["labels"], names, names))
    # ekman7 is derived with the repository's ekman_mapping.json (+ neutral → neutral)
    groups = json.loads((root / "ekman_mapping.json").read_text(encoding="utf-8"))
    to_ekman = {src: ek for ek, srcs in groups.items() for src in srcs} | {"neutral": "neutral"}
    assert set(to_ekman) == set(names)
    ekman = list(ds.formats["ekman7"].variables)
    np.testing.assert_array_equal(ds.labels("ekman7"), _multi_hot(ref["labels"], names, ekman, to_ekman))
    # every comment has at least one label in every format
    for fmt in ("goemotions28", "ekman7", "sentiment4"):
        assert (ds.labels(fmt).sum(axis=1) >= 1).all()


def test_ferplus_labels_bundled(bundled_registry):
    ds = bundled_registry.dataset("ferplus_labels")
    # 35,887 rows; 176 have no vote for any of the eight expressions (all 'unknown'/'NF') → missing: drop
    assert ds.report == {"rows_read": 35887, "dropped_missing": 176}
    assert len(ds) == 35711
    assert ds.split_sizes() == {"train": 28559, "dev": 3579, "test": 3573}
    # first row: votes 4,0,0,1,3,2,0,0 (+0 unknown, 0 NF)
    assert ds.labels("ferplus8")[0] == pytest.approx([0.4, 0, 0, 0.1, 0.3, 0.2, 0, 0])
    assert ds.frame["content"].iat[0] == "fer0000000.png"
    np.testing.assert_allclose(ds.labels("ferplus8").sum(axis=1), 1.0, atol=1e-5)


def test_emomap_silver_is_clipped_to_its_scale(bundled_registry):
    ds = bundled_registry.dataset("emomap_warriner_be5")
    assert len(ds) == 13915
    lab = ds.labels("be5")
    assert lab.min() >= 0 and lab.max() <= 1
    raw = pd.read_csv(BUNDLED / "emomap_silver" / "coling18" / "Warriner_BE.tsv", sep="\t")
    outside = ((raw[["Joy", "Anger", "Sadness", "Fear", "Disgust"]] < 1) | (raw[["Joy", "Anger", "Sadness", "Fear", "Disgust"]] > 5)).to_numpy()
    assert outside.any()  # the card's clip: true is needed: the silver predictions leave 1..5
    expected = (np.clip(raw[["Joy", "Anger", "Sadness", "Fear", "Disgust"]].to_numpy(dtype=float), 1, 5) - 1) / 4
    np.testing.assert_allclose(lab, expected, atol=1e-6)


def test_bundled_pairs(bundled_registry):
    warriner = bundled_registry.dataset("warriner")
    emolex = bundled_registry.dataset("emolex")
    p = bundled_registry.pair("warriner_emolex")
    assert len(p) == 4438 == len(set(warriner.frame["item"]) & set(emolex.frame["item"]))
    assert p.split_sizes() == {"train": 2681, "dev": 856, "test": 901}
    assert (p.format_a.name, p.format_b.name) == ("vad", "nrc10") and p.sources == ("warriner", "emolex")
    np.testing.assert_allclose(p.labels_a, _labels_by_item(warriner, "vad").loc[p.items].to_numpy())
    np.testing.assert_array_equal(p.labels_b, _labels_by_item(emolex, "nrc10").loc[p.items].to_numpy())
    # its split is the reference XANEW-NRC split file (every joined word is listed in it)
    ref = json.loads((BUNDLED / "emotion_embeddings_splits" / "XANEW-NRC_splits.json").read_text(encoding="utf-8"))
    where = {w: s for s, words in ref.items() for w in words}
    assert [where[w] for w in p.items] == p.split.tolist()

    p = bundled_registry.pair("warriner_emomap")
    assert len(p) == 13915
    assert p.split_sizes() == warriner.split_sizes() == {"train": 11587, "dev": 1296, "test": 1032}  # from_left

    p = bundled_registry.pair("goemotions_ekman")
    ge = bundled_registry.dataset("goemotions")
    assert len(p) == 54263 and p.split_sizes() == {"train": 43410, "dev": 5426, "test": 5427}
    np.testing.assert_array_equal(p.labels_a, ge.labels("goemotions28"))
    np.testing.assert_array_equal(p.labels_b, ge.labels("ekman7"))
    assert p.labels_a.shape == (54263, 28) and p.labels_b.shape == (54263, 7)

    assert len(bundled_registry.pair("goemotions_sentiment")) == 54263
    assert len(bundled_registry.pair("vader_emolex")) == 1535
    assert len(bundled_registry.pair("afinn_emolex")) == 1360

    sub = bundled_registry.pair("warriner_emolex").subset("test")
    assert len(sub) == 901 and set(sub.split) == {"test"}
    assert len(bundled_registry.pair("warriner_emolex").take(100, seed=1)) == 100


def test_pair_and_dataset_type_errors(bundled_registry):
    with pytest.raises(ConfigError, match=r"'warriner' is a dataset card; the codec trains on pair cards: .*warriner_emolex"):
        bundled_registry.pair("warriner")
    with pytest.raises(ConfigError, match=r"'warriner_emolex' is a pair card, not a dataset"):
        bundled_registry.dataset("warriner_emolex")
    with pytest.raises(ConfigError, match=r"unknown dataset 'nonexistent'; known: .*warriner"):
        bundled_registry.get("nonexistent")


def test_default_data_registry_without_env(monkeypatch):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    monkeypatch.delenv("EMOEMBED_HOME", raising=False)
    monkeypatch.setattr(registry_module, "_DEFAULT", None)
    reg = registry_module.default_data_registry()
    assert reg is registry_module.default_data_registry()
    assert reg.roots == [BUNDLED]
    assert set(reg.cards) == {_card_name(p) for p in CARDS_DIR.glob("*.yaml")}
    assert len(reg.dataset("warriner")) == 13915
    with pytest.raises(MissingDataError, match=r"dataset 'isear' is missing: file isear/isear.csv"):
        reg.dataset("isear")


def _card_name(path: Path) -> str:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["name"]


# ============================================================================ checks
def test_check_present_cards_ok(bundled_registry):
    res = bundled_registry.check("warriner")
    assert (res.card, res.status, res.detail) == ("warriner", "ok", "13915 items")
    assert bundled_registry.check("emobank").status == "ok"
    res = bundled_registry.check("emotion_embeddings_splits")
    assert (res.status, res.detail) == ("ok", "15 files")
    res = bundled_registry.check("warriner_emolex")
    assert (res.status, res.detail) == ("ok", "4438 joined items")
    res = bundled_registry.check("isear")
    assert res.status == "missing" and res.detail == "isear/isear.csv"
    assert bundled_registry.check("kapucu").status == "missing"


def test_checksums_of_bundled_files_match_the_cards(bundled_registry):
    for name in ("warriner", "emobank", "goemotions", "ferplus_labels", "emomap_warriner_be5", "emotion_embeddings_splits"):
        card = bundled_registry.get(name)
        for spec in card.files.values():
            assert spec.sha256, f"{name}: {spec.key} has no checksum"
            assert sha256_of(bundled_registry.locate(card, spec)) == spec.sha256, f"{name}: {spec.path}"


def _warriner_copy_card(sha: str, name: str = "w") -> dict:
    return {
        "name": name, "modality": "word", "language": "en", "dir": "wx",
        "files": {"ratings": {"path": "Ratings_Warriner_et_al.csv", "sha256": sha}},
        "reader": {"type": "delimited", "file": "ratings"},
        "item": {"column": "Word", "normalize": "strip"},
        "formats": {"vad": {"valence": {"column": "V.Mean.Sum", "scale": [1, 9]},
                            "arousal": {"column": "A.Mean.Sum", "scale": [1, 9]},
                            "dominance": {"column": "D.Mean.Sum", "scale": [1, 9]}}},
        "splits": {"type": "random"},
        "licence": "CC BY-NC-ND 3.0", "citation": "Warriner et al. (2013)", "obtain": "https://github.com/JULIELab/XANEW",
    }


def test_check_wrong_checksum_is_a_mismatch(make_registry, tmp_path):
    good = sha256_of(WARRINER_CSV)
    wrong = "0" * 64
    reg = make_registry({"w.yaml": _warriner_copy_card(wrong), "g.yaml": _warriner_copy_card(good, "g")},
                        {"wx/Ratings_Warriner_et_al.csv": WARRINER_CSV.read_bytes()})
    res = reg.check("w")
    assert res.status == "mismatch"
    assert f"{tmp_path / 'data' / 'wx' / 'Ratings_Warriner_et_al.csv'}: sha256 mismatch (expected 000000000000…, found {good[:12]}…)" == res.detail
    res = reg.check("g")
    assert (res.status, res.detail) == ("ok", "13915 items")
    # loading does not verify checksums (only `check` does): the data itself is fine
    assert len(reg.dataset("w")) == 13915


def test_check_reports_schema_errors(make_registry):
    card = _warriner_copy_card(None)  # type: ignore[arg-type]
    card["files"]["ratings"].pop("sha256")
    card["formats"]["vad"]["valence"]["scale"] = [1, 5]
    reg = make_registry({"w.yaml": card}, {"wx/Ratings_Warriner_et_al.csv": WARRINER_CSV.read_bytes()})
    res = reg.check("w")
    assert res.status == "error"
    assert "is outside the declared source scale [1, 5] of vad.valence" in res.detail
    res = reg.check("w", schema=False)
    assert (res.status, res.detail) == ("ok", "1 files")


# ============================================================================ real data (EMOEMBED_DATA)
# name: (items, train, dev, test). The catalogue is $EMOEMBED_DATA/README.md; where the card's number differs
# from it, the comment says why.
REAL_DATASETS = {
    "warriner": (13915, 11587, 1296, 1032),
    "emomap_warriner_be5": (13915, 11104, 1390, 1421),
    "stadthagen2017_va": (14031, 11222, 1399, 1410),
    # catalogue: 7,519 (= `wc -l`: the last line has no newline; SOURCE.txt says 7,520 tokens). 14 tokens occur
    # twice (lol, ok, xd …) and the card keeps the first (duplicates: first) → 7,506 items.
    "vader": (7506, 5988, 790, 728),
    "afinn": (3382, 2676, 358, 348),
    "emolex": (6468, 5172, 637, 659),  # not in the catalogue: NRC EmoLex through pip nrclex
    "emobank": (10062, 8062, 1000, 1000),
    # the 1,192 headlines of AffTextEB_splits.json keep their split (956/118/118); the other 58 go to train
    "affectivetext": (1250, 1014, 118, 118),
    "goemotions": (54263, 43410, 5426, 5427),
    # 7,451 ids in ISEAR_splits.json (5,960/745/746); the 215 non-answers it leaves out go to train
    "isear": (7666, 6175, 745, 746),
    # catalogue: 2,914 train + 1,956 test = 4,870 rows; two train lines are only the marker
    # 'XXXXXXXXXXXX EMPTY ANNOTATION' and the card filters them out; the test file is halved into dev/test
    "ssec": (4868, 2912, 978, 978),
    # catalogue: 35,887 rows; the card drops 178 rows without a usable FER+ distribution (175 rows whose FER+
    # votes are unknown, -1, plus 3 whose votes are all 'unknown'/'not a face'); fer2013_fer7 keeps all rows
    "fer2013": (35709, 28558, 3579, 3572),
    "fer2013_fer7": (35887, 28709, 3589, 3589),
    # catalogue: 35,887 rows; 176 rows have no vote for any of the eight expressions (missing: drop)
    "ferplus_labels": (35711, 28559, 3579, 3573),
    "oasis": (900, 716, 93, 91),
    # NoRaRe subsets (catalogue: 52–2,733 per file)
    "norare_binder": (289, 231, 34, 24),
    "norare_briesemeister": (560, 330, 126, 104),
    "norare_coso": (1104, 892, 99, 113),
    "norare_ferre": (642, 527, 53, 62),
    "norare_guasch": (336, 274, 27, 35),
    "norare_imbir": (768, 480, 143, 145),
    "norare_kapucu": (268, 165, 50, 53),
    "norare_ljubesic": (204, 170, 17, 17),
    "norare_martinez2025": (2733, 2165, 303, 265),
    "norare_martineztomas": (52, 37, 7, 8),
    "norare_montefinese": (564, 437, 66, 61),
    "norare_moors": (575, 328, 121, 126),
    "norare_redondo": (353, 284, 34, 35),
    "norare_riegel": (489, 288, 97, 104),
    # 326 rows: 'Essen' (noun) and 'essen' (verb) are one item after lower-casing (duplicates: mean)
    "norare_schmidtke": (325, 251, 36, 38),
    "norare_soares": (223, 173, 20, 30),
    "norare_song": (747, 591, 75, 81),
    "norare_speed": (792, 635, 74, 83),
    "norare_stadthagen2017": (1387, 1112, 137, 138),
    "norare_stadthagen2018": (688, 551, 70, 67),
    "norare_wang2022": (233, 183, 19, 31),
    "norare_warriner": (2298, 1821, 248, 229),
    "norare_wierzba": (489, 293, 102, 94),
    "norare_yi": (991, 794, 89, 108),
}
REAL_PAIRS = {
    "warriner_emolex": (4438, 2681, 856, 901),  # catalogue "~6.5k words" is EmoLex's size; 4,438 are also in Warriner
    "warriner_emomap": (13915, 11587, 1296, 1032),
    "vader_emolex": (1535, 1231, 156, 148),
    "afinn_emolex": (1360, 1093, 136, 131),
    "binder": (289, 231, 34, 24),
    "affectivetext_be6_valence": (1250, 1014, 118, 118),
    "emobank_affectivetext": (1192, 956, 118, 118),
    "goemotions_ekman": (54263, 43410, 5426, 5427),
    "goemotions_sentiment": (54263, 43410, 5426, 5427),
    "fer2013_ferplus": (35709, 28558, 3579, 3572),
    "kapucu": (268, 165, 50, 53),
    "speed": (792, 635, 74, 83),
    "riegel_wierzba": (489, 288, 97, 104),
    # The catalogue counts shared CONCEPTICON_IDs (688, 627, 400, 568, 148, 478); the pair cards join on the
    # lower-cased word ("joined on the lower-cased word"), and translations of one concept differ in form, so
    # fewer items join:
    "stadthagen_va_be5": (639, 500, 70, 69),
    "stadthagen_va_ferre": (604, 491, 59, 54),
    "imbir_wierzba": (383, 249, 70, 64),
    "moors_speed": (551, 314, 118, 119),
    "schmidtke_briesemeister": (145, 120, 11, 14),
    "yi_song": (459, 364, 42, 53),
}


@pytest.mark.realdata
def test_real_tables_cover_every_card(real_registry):
    assert set(real_registry.names("dataset")) == set(REAL_DATASETS)
    assert set(real_registry.names("pair")) == set(REAL_PAIRS)
    assert real_registry.names("resource") == ["emotion_embeddings_splits"]
    for name in real_registry.cards:
        assert real_registry.is_present(name), name


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL_DATASETS))
def test_real_dataset_counts(real_registry, name):
    ds = real_registry.dataset(name)
    n, *splits = REAL_DATASETS[name]
    assert len(ds) == n
    assert ds.split_sizes() == dict(zip(SPLITS, splits))
    assert ds.frame["item"].is_unique
    for fname, fmt in ds.formats.items():
        lab = ds.labels(fname)
        assert lab.shape == (n, fmt.size)
        assert not np.isnan(lab).any()
        assert lab.min() >= fmt.range[0] - 1e-6 and lab.max() <= fmt.range[1] + 1e-6, fname
    if name.startswith("norare_"):
        assert 52 <= n <= 2733


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL_PAIRS))
def test_real_pair_counts(real_registry, name):
    p = real_registry.pair(name)
    n, *splits = REAL_PAIRS[name]
    assert len(p) == n
    assert p.split_sizes() == dict(zip(SPLITS, splits))
    assert len(set(p.items)) == n
    assert p.labels_a.shape == (n, p.format_a.size) and p.labels_b.shape == (n, p.format_b.size)


@pytest.mark.realdata
def test_real_check_all_ok(real_registry):
    results = {name: real_registry.check(name) for name in real_registry.cards}
    assert {n: r.status for n, r in results.items() if r.status != "ok"} == {}
    assert results["isear"].detail == "7666 items"
    assert results["emobank_affectivetext"].detail == "1192 joined items"


@pytest.mark.realdata
def test_shared_data_fixture_sets_an_absolute_env(shared_data):
    assert shared_data.is_absolute() and shared_data.is_dir()
    assert (shared_data / "README.md").is_file()
    assert os.environ["EMOEMBED_DATA"].split(os.pathsep)[0] == str(shared_data)


def test_shared_data_fixture_resolves_a_repo_relative_path(monkeypatch, tmp_path, request):
    """CI sets EMOEMBED_DATA=../shared/data relative to the repository; the fixture must not depend on the cwd."""
    real = (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not real.is_dir():
        pytest.skip(f"no shared data at {real}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMOEMBED_DATA", os.path.join("..", "shared", "data"))
    path = request.getfixturevalue("shared_data")
    assert path == real
    assert os.environ["EMOEMBED_DATA"] == str(real)


@pytest.mark.realdata
def test_real_default_registry_uses_env(shared_data, monkeypatch):
    monkeypatch.delenv("EMOEMBED_HOME", raising=False)
    monkeypatch.setattr(registry_module, "_DEFAULT", None)
    reg = registry_module.default_data_registry()
    assert reg.roots[0] == shared_data and reg.roots[-1] == BUNDLED
    card = reg.get("warriner")
    assert reg.locate(card, card.files["ratings"]) == shared_data / "warriner_xanew" / "Ratings_Warriner_et_al.csv"
    assert reg.is_present("isear") and reg.is_present("fer2013")


@pytest.mark.realdata
@pytest.mark.parametrize("folder, fmt", [("ekman", "ekman7"), ("group", "sentiment4")])
def test_real_goemotions_derived_labels_match_the_shipped_files(real_registry, shared_data, folder, fmt):
    """The ekman/ and group/ tsv files of GoEmotions hold the same comments relabelled; the card derives them
    from the original labels. Every row must agree."""
    ds = real_registry.dataset("goemotions")
    root = shared_data / "goemotions" / folder
    ref = _goemotions_reference(root)
    assert len(ref) == len(ds) == 54263
    assert ds.frame["item"].tolist() == ref["comment_id"].tolist()
    assert ds.frame["split"].tolist() == ref["split"].tolist()
    assert ds.frame["content"].tolist() == ref["text"].tolist()
    names = (root / "labels.txt").read_text(encoding="utf-8").split()
    variables = list(ds.formats[fmt].variables)
    assert sorted(names) == sorted(variables)
    expected = _multi_hot(ref["labels"], names, variables)
    got = ds.labels(fmt)
    bad = np.flatnonzero((got != expected).any(axis=1))
    assert bad.size == 0, f"{bad.size} rows differ, e.g. {ref['comment_id'].iat[bad[0]]}"


@pytest.mark.realdata
def test_real_affectivetext_values(real_registry, shared_data):
    ds = real_registry.dataset("affectivetext")
    row = ds.row("500")
    assert row["content"] == "Test to predict breast cancer relapse is approved"
    # 500: anger 0, disgust 0, fear 15, joy 38, sadness 9, surprise 11; valence 32
    be6 = _labels_by_item(ds, "be6").loc["500"]
    assert be6["joy"] == pytest.approx(38 / 100)
    assert be6.to_numpy() == pytest.approx([0.38, 0.0, 0.09, 0.15, 0.0, 0.11], abs=1e-6)
    assert _labels_by_item(ds, "valence").loc["500", "valence"] == pytest.approx((32 + 100) / 200 * 2 - 1, abs=1e-6)
    assert _labels_by_item(ds, "valence").loc["500", "valence"] == pytest.approx(0.32, abs=1e-6)
    # the split file's ids are AffectiveText ids
    ref = json.loads((shared_data / "emotion_embeddings_splits" / "AffTextEB_splits.json").read_text(encoding="utf-8"))
    for s in ("dev", "test"):
        assert set(ds.frame.loc[ds.frame["split"] == s, "item"]) == {str(i) for i in ref[s]}


@pytest.mark.realdata
def test_real_emobank_affectivetext_pair(real_registry):
    p = real_registry.pair("emobank_affectivetext")
    assert len(p) == 1192 and p.split_sizes() == {"train": 956, "dev": 118, "test": 118}
    at = _labels_by_item(real_registry.dataset("affectivetext"), "be6")
    eb = _labels_by_item(real_registry.dataset("emobank"), "vad")
    i = list(p.items).index("500")
    np.testing.assert_allclose(p.labels_b[i], at.loc["500"].to_numpy())
    np.testing.assert_allclose(p.labels_a[i], eb.loc["SemEval_500"].to_numpy())


@pytest.mark.realdata
def test_real_isear(real_registry, shared_data):
    ds = real_registry.dataset("isear")
    assert len(ds) == 7666
    assert ds.split_sizes()["test"] == 746
    ref = json.loads((shared_data / "emotion_embeddings_splits" / "ISEAR_splits.json").read_text(encoding="utf-8"))
    for s in SPLITS:
        got = set(ds.frame.loc[ds.frame["split"] == s, "item"])
        assert {str(i) for i in ref[s]} <= got
        if s != "train":
            assert got == {str(i) for i in ref[s]}
    counts = dict(zip(ds.formats["isear7"].variables, ds.labels("isear7").sum(axis=0).astype(int)))
    assert sum(counts.values()) == 7666 and set(counts) == {"joy", "fear", "anger", "sadness", "disgust", "shame", "guilt"}
    assert (ds.labels("isear7").sum(axis=1) == 1).all()
    row = ds.row("110011")  # MYKEY 0110011, normalised as an integer
    assert row["content"].startswith("During the period of falling in love")
    assert _labels_by_item(ds, "isear7").loc["110011", "joy"] == 1


@pytest.mark.realdata
def test_real_ssec(real_registry, shared_data):
    ds = real_registry.dataset("ssec")
    assert len(ds) == 4868
    assert ds.split_sizes() == {"train": 2912, "dev": 978, "test": 978}
    assert ds.report == {"rows_read": 4870, "rows_after_filter": 4868}
    ref = json.loads((shared_data / "emotion_embeddings_splits" / "SSEC_splits.json").read_text(encoding="utf-8"))
    for s in ("dev", "test"):
        assert set(ds.frame.loc[ds.frame["split"] == s, "item"]) == {f"test:{i}" for i in ref[s]}
    assert set(ds.frame.loc[ds.frame["split"] == "train", "item"].str.split(":").str[0]) == {"train"}
    assert ds.labels("ssec8").shape == (4868, 8) and set(np.unique(ds.labels("ssec8"))) == {0.0, 1.0}


@pytest.mark.realdata
def test_real_fer2013(real_registry, shared_data):
    ds = real_registry.dataset("fer2013")
    assert ds.report == {"rows_read": 35887, "dropped_missing": 178}
    with np.load(shared_data / "fer2013" / "fer2013.npz") as z:
        labels, known, votes = z["labels"], z["row_known"], z["ferplus_votes"]
    assert (~known).sum() == 175
    keep = known & (votes[:, :8].sum(axis=1) > 0)
    assert keep.sum() == 35709
    np.testing.assert_array_equal(ds.frame["item"].astype(int).to_numpy(), np.flatnonzero(keep))
    np.testing.assert_array_equal(ds.labels("fer7").argmax(axis=1), labels[keep])
    np.testing.assert_allclose(ds.labels("ferplus8"), votes[keep, :8] / votes[keep, :8].sum(axis=1, keepdims=True), atol=1e-6)
    full = real_registry.dataset("fer2013_fer7")
    np.testing.assert_array_equal(full.labels("fer7").argmax(axis=1), labels)


@pytest.mark.realdata
def test_real_norare_kapucu_turkish_keys(real_registry):
    ds = real_registry.dataset("norare_kapucu")
    assert len(ds) == 268
    items = set(ds.frame["item"])
    assert "inek" in items and "yastık" in items  # İNEK, YASTIK lower-cased the Turkish way
    assert not any("I" in w or "İ" in w for w in items)


# ============================================================================ splits
def test_hash_split_is_deterministic_and_stable():
    keys = [f"word{i}" for i in range(10_000)]
    a = hash_split(keys)
    assert a.tolist() == hash_split(keys).tolist()
    assert hash_split(keys[:5000]).tolist() == a[:5000].tolist()  # adding items never moves others
    assert hash_split(list(reversed(keys))).tolist() == a[::-1].tolist()  # independent of order
    assert hash_split(["love"]).tolist() == hash_split(["hate", "love"]).tolist()[1:]
    counts = {s: int((a == s).sum()) for s in SPLITS}
    assert sum(counts.values()) == 10_000
    assert abs(counts["train"] - 8000) < 200 and abs(counts["dev"] - 1000) < 150 and abs(counts["test"] - 1000) < 150
    other = hash_split(keys, seed=14)
    assert (other != a).mean() > 0.2  # another seed, another split
    b = hash_split(keys, ratios=(0.5, 0.25, 0.25))
    assert abs((b == "train").sum() - 5000) < 200
    with pytest.raises(ConfigError, match=r"split ratios must be three non-negative numbers summing to 1, got \[0.8, 0.1\]"):
        hash_split(keys, ratios=(0.8, 0.1))
    with pytest.raises(ConfigError, match=r"summing to 1"):
        hash_split(keys, ratios=(0.8, 0.3, 0.1))


def test_hash_split_is_shared_across_datasets(bundled_registry):
    """Random-split datasets hash the item key with the same seed: a word is in the same split everywhere."""
    frames = {n: bundled_registry.dataset(n).frame.set_index("item")["split"] for n in ("emolex", "afinn", "emomap_warriner_be5")}
    common = sorted(set(frames["emolex"].index) & set(frames["afinn"].index))
    assert len(common) > 1000
    assert frames["emolex"].loc[common].tolist() == frames["afinn"].loc[common].tolist()
    assert frames["emolex"].loc[common].tolist() == hash_split(common).tolist()
    common = sorted(set(frames["emolex"].index) & set(frames["emomap_warriner_be5"].index))
    assert len(common) > 1000
    assert frames["emolex"].loc[common].tolist() == frames["emomap_warriner_be5"].loc[common].tolist()


# ============================================================================ bad input (tmp registry)
def word_card(name: str = "w", **over) -> dict:
    card = {
        "name": name, "modality": "word", "language": "en", "dir": "w",
        "files": {"ratings": {"path": "r.csv"}},
        "reader": {"type": "delimited", "file": "ratings"},
        "item": {"column": "Word"},
        "formats": {"vad": {"valence": {"column": "V", "scale": [1, 9]},
                            "arousal": {"column": "A", "scale": [1, 9]},
                            "dominance": {"column": "D", "scale": [1, 9]}}},
        "licence": "test", "citation": "test", "obtain": "https://example.org/w (r.csv)",
    }
    card.update(over)
    return card


GOOD_CSV = "Word,V,A,D\nfoo,1,2,3\nbar,4,5,6\nbaz,9,8,7\n"


def _load_w(make_registry, csv_text: str | bytes, **over):
    return make_registry({"w.yaml": word_card(**over)}, {"w/r.csv": csv_text}).dataset("w")


def test_tmp_registry_good_card(make_registry, tmp_path):
    ds = _load_w(make_registry, GOOD_CSV)
    assert ds.frame["item"].tolist() == ["foo", "bar", "baz"]
    np.testing.assert_allclose(ds.labels("vad"), [[-1, -0.75, -0.5], [-0.25, 0, 0.25], [1, 0.75, 0.5]])
    assert ds.frame["_row"].tolist() == [2, 3, 4]
    assert ds.frame["_file"].iat[0] == str(tmp_path / "data" / "w" / "r.csv")


def test_renamed_column(make_registry, tmp_path):
    with pytest.raises(DataError) as exc:
        _load_w(make_registry, "Word,Valence,A,D\nfoo,1,2,3\n")
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / 'data' / 'w' / 'r.csv'}: column 'V' not found")
    assert f"(card {tmp_path / 'cards' / 'w.yaml'} (formats.vad))" in msg
    assert msg.endswith("columns present: Word, Valence, A, D")


def test_renamed_item_column(make_registry, tmp_path):
    with pytest.raises(DataError, match=r"r.csv: column 'Word' not found \(card .*w.yaml\); columns present: word, V, A, D"):
        _load_w(make_registry, "word,V,A,D\nfoo,1,2,3\n")


def test_missing_value(make_registry, tmp_path):
    with pytest.raises(DataError) as exc:
        _load_w(make_registry, "Word,V,A,D\nfoo,1,2,3\nbar,,5,6\n")
    assert str(exc.value) == (f"{tmp_path / 'data' / 'w' / 'r.csv'}: row 3: missing value for vad:valence "
                              "(the card says missing: error; use missing: drop to skip such rows)")


def test_missing_value_dropped_when_the_card_says_so(make_registry):
    ds = _load_w(make_registry, "Word,V,A,D\nfoo,1,2,3\nbar,,5,6\nbaz,9,8,7\n", missing="drop")
    assert ds.frame["item"].tolist() == ["foo", "baz"]
    assert ds.report["dropped_missing"] == 1
    assert ds.frame["_row"].tolist() == [2, 4]


@pytest.mark.parametrize("lines, row", [(["foo,12,2,3"], 2), (["foo,1,2,3", "bar,4,5,6", "baz,9,8,0.5"], 4)])
def test_out_of_range_value(make_registry, tmp_path, lines, row):
    with pytest.raises(DataError) as exc:
        _load_w(make_registry, "Word,V,A,D\n" + "\n".join(lines) + "\n")
    value, column, var = ("12", "V", "valence") if row == 2 else ("0.5", "D", "dominance")
    assert str(exc.value) == (f"{tmp_path / 'data' / 'w' / 'r.csv'}: row {row}, column {column!r}: value {value} is outside "
                              f"the declared source scale [1, 9] of vad.{var}")


def test_out_of_range_headerless_rows_start_at_1(make_registry):
    with pytest.raises(DataError, match=r"r.csv: row 1, column 'V': value 12 is outside the declared source scale"):
        _load_w(make_registry, "foo\t12\t2\t3\n", reader={"type": "delimited", "file": "ratings", "sep": "\t",
                                                          "header": None, "names": ["Word", "V", "A", "D"]})


def test_clip_accepts_values_outside_the_scale(make_registry):
    card = word_card()
    card["formats"]["vad"]["clip"] = True
    ds = make_registry({"w.yaml": card}, {"w/r.csv": "Word,V,A,D\nfoo,12,2,0\n"}).dataset("w")
    np.testing.assert_allclose(ds.labels("vad"), [[1, -0.75, -1]])


def test_not_a_number(make_registry):
    with pytest.raises(DataError, match=r"r.csv: row 3, column 'A': 'high' is not a number"):
        _load_w(make_registry, "Word,V,A,D\nfoo,1,2,3\nbar,4,high,6\n")


def test_truncated_delimited_file(make_registry, tmp_path):
    # the last line lost its final field: the delimited reader pads it, and the empty cell is a missing value
    with pytest.raises(DataError) as exc:
        _load_w(make_registry, "Word,V,A,D\nfoo,1,2,3\nbar,4,5")
    assert str(exc.value).startswith(f"{tmp_path / 'data' / 'w' / 'r.csv'}: row 3: missing value for vad:dominance")
    # a line with too many fields cannot be parsed at all
    with pytest.raises(DataError, match=r"r.csv: cannot parse as delimited text: .*Expected 4 fields in line 3, saw 5"):
        _load_w(make_registry, "Word,V,A,D\nfoo,1,2,3\nbar,4,5,6,7\n")


def test_truncated_free_text_file(make_registry, tmp_path):
    reader = {"type": "delimited_free_text", "file": "ratings", "sep": "|", "free_column": "Word"}
    ds = _load_w(make_registry, "Word|V|A|D\nfoo|1|2|3\nb|a|r|4|5|6\n", reader=reader)
    assert ds.frame["item"].tolist() == ["foo", "b|a|r"]  # surplus separators go back into the free column
    with pytest.raises(DataError) as exc:
        _load_w(make_registry, "Word|V|A|D\nfoo|1|2|3\nbar|4|5\n", reader=reader)
    assert str(exc.value) == f"{tmp_path / 'data' / 'w' / 'r.csv'}: line 3: expected 4 fields, found 3 (truncated line?)"


def test_undecodable_bytes(make_registry, tmp_path):
    with pytest.raises(DataError) as exc:
        _load_w(make_registry, b"Word,V,A,D\nfoo,1,2,3\nb\xe9r,4,5,6\n")
    assert str(exc.value).startswith(f"{tmp_path / 'data' / 'w' / 'r.csv'}: cannot decode as utf-8 (byte ")
    # the same bytes are fine when the card declares the file's encoding
    ds = _load_w(make_registry, b"Word,V,A,D\nfoo,1,2,3\nb\xe9r,4,5,6\n", reader={"type": "delimited", "file": "ratings", "encoding": "cp1252"})
    assert ds.frame["item"].tolist() == ["foo", "bér"]
    with pytest.raises(DataError, match=r"r.csv: cannot decode as utf-8 \(byte 12\): invalid start byte"):
        _load_w(make_registry, b"Word|V|A|D\nf\xffo|1|2|3\n",
                reader={"type": "delimited_free_text", "file": "ratings", "sep": "|", "free_column": "Word"})


def test_empty_file(make_registry):
    with pytest.raises(DataError, match=r"r.csv: file is empty"):
        _load_w(make_registry, "")


def test_wrong_checksum_format(make_registry, tmp_path):
    card = word_card(files={"ratings": {"path": "r.csv", "sha256": "abc123"}})
    with pytest.raises(ConfigError) as exc:
        make_registry({"w.yaml": card}, {"w/r.csv": GOOD_CSV})
    assert str(exc.value) == f"{tmp_path / 'cards' / 'w.yaml'}: files.ratings.sha256 must be 64 hex digits"


def test_wrong_checksum(make_registry, tmp_path):
    card = word_card(files={"ratings": {"path": "r.csv", "sha256": "f" * 64}})
    reg = make_registry({"w.yaml": card}, {"w/r.csv": GOOD_CSV})
    res = reg.check("w")
    assert res.status == "mismatch"
    assert res.detail.startswith(f"{tmp_path / 'data' / 'w' / 'r.csv'}: sha256 mismatch (expected ffffffffffff…")
    card["files"]["ratings"]["sha256"] = sha256_of(tmp_path / "data" / "w" / "r.csv")
    assert make_registry({"w.yaml": card}, {"w/r.csv": GOOD_CSV}).check("w").status == "ok"


def test_unknown_format_in_card(make_registry, tmp_path):
    card = word_card(formats={"vad4": {"valence": {"column": "V", "scale": [1, 9]}}})
    with pytest.raises(ConfigError) as exc:
        make_registry({"w.yaml": card}, {"w/r.csv": GOOD_CSV})
    assert str(exc.value).startswith(f"{tmp_path / 'cards' / 'w.yaml'}: formats: unknown label format 'vad4'; known formats: ")


def test_format_variables_must_match(make_registry):
    card = word_card()
    del card["formats"]["vad"]["dominance"]
    card["formats"]["vad"]["power"] = {"column": "D", "scale": [1, 9]}
    with pytest.raises(ConfigError, match=r"w.yaml \(formats.vad\): format 'vad' needs exactly the variables "
                                          r"\['valence', 'arousal', 'dominance'\]; missing \['dominance'\], unknown \['power'\]"):
        make_registry({"w.yaml": card}, {"w/r.csv": GOOD_CSV}).dataset("w")


def test_invalid_yaml_card(make_registry, tmp_path):
    with pytest.raises(ConfigError) as exc:
        make_registry({"w.yaml": "name: w\nformats: {vad: [valence\n"})
    assert str(exc.value).startswith(f"{tmp_path / 'cards' / 'w.yaml'}: invalid YAML")


def test_card_field_errors(make_registry, tmp_path):
    where = str(tmp_path / "cards" / "w.yaml")
    card = word_card()
    del card["licence"]
    with pytest.raises(ConfigError, match=r"field 'licence' is required for a dataset card") as exc:
        make_registry({"w.yaml": card})
    assert str(exc.value).startswith(where)
    with pytest.raises(ConfigError, match=r"w.yaml: unknown field\(s\) \['colour'\] for a dataset card"):
        make_registry({"w.yaml": word_card(colour="red")})
    with pytest.raises(ConfigError, match=r"w.yaml: field 'modality' must be one of \['word', 'text', 'image'\], got 'sound'"):
        make_registry({"w.yaml": word_card(modality="sound")})
    with pytest.raises(ConfigError, match=r"w.yaml: field 'missing' must be 'error' or 'drop'"):
        make_registry({"w.yaml": word_card(missing="ignore")})
    with pytest.raises(ConfigError, match=r"w.yaml: a dataset card must be a YAML mapping"):
        make_registry({"w.yaml": "- just\n- a list\n"})


def test_unknown_reader_type(make_registry, tmp_path):
    reg = make_registry({"w.yaml": word_card(reader={"type": "excel", "file": "ratings"})}, {"w/r.csv": GOOD_CSV})
    with pytest.raises(ConfigError) as exc:
        reg.dataset("w")
    assert str(exc.value) == (f"{tmp_path / 'cards' / 'w.yaml'}: unknown reader type 'excel'; known: "
                              "affectivetext, delimited, delimited_free_text, image_folders, json_lexicon, norare, npz")
    assert reg.check("w").status == "error"


def test_reader_names_an_undeclared_file(make_registry):
    reg = make_registry({"w.yaml": word_card(reader={"type": "delimited", "file": "table"})}, {"w/r.csv": GOOD_CSV})
    with pytest.raises(ConfigError, match=r"w.yaml: reader names file key 'table', which the card's 'files' does not declare"):
        reg.dataset("w")


def test_missing_dataset(make_registry, tmp_path):
    reg = make_registry({"w.yaml": word_card()})
    assert not reg.is_present("w")
    with pytest.raises(MissingDataError) as exc:
        reg.dataset("w")
    msg = str(exc.value)
    assert isinstance(exc.value, DataError) and isinstance(exc.value, EmoembedError)
    assert msg.startswith(f"dataset 'w' is missing: file w/r.csv was not found under any data root ({tmp_path / 'data'})")
    assert "Get it from: https://example.org/w (r.csv)." in msg
    assert "Put it at $EMOEMBED_DATA/w/r.csv (set EMOEMBED_DATA to the folder holding 'w/')" in msg
    res = reg.check("w")
    assert (res.status, res.detail) == ("missing", "w/r.csv")


def test_missing_real_card_message(bundled_registry):
    with pytest.raises(MissingDataError) as exc:
        bundled_registry.dataset("isear")
    msg = str(exc.value)
    assert "Get it from: https://github.com/sinmaniphel/py_isear_dataset (isear.csv)" in msg
    assert "Put it at $EMOEMBED_DATA/isear/isear.csv" in msg


def _class_card(fmt: str, encoding: str) -> dict:
    return word_card(modality="text", item={"column": "id"}, formats={fmt: {"column": "label", "encoding": encoding}})


def test_multiclass_by_name(make_registry, tmp_path):
    card = _class_card("isear7", "name")
    ds = make_registry({"w.yaml": card}, {"w/r.csv": "id,label\n1,joy\n2,guilt\n"}).dataset("w")
    np.testing.assert_array_equal(ds.labels("isear7"), [[1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1]])
    with pytest.raises(DataError) as exc:
        make_registry({"w.yaml": card}, {"w/r.csv": "id,label\n1,joy\n2,happiness\n"}).dataset("w")
    assert str(exc.value).startswith(f"{tmp_path / 'data' / 'w' / 'r.csv'}: row 3, column 'label': unknown class "
                                     "'happiness' for isear7; expected one of ['anger', 'disgust', 'fear', 'guilt', 'joy', 'sadness', 'shame']")


def test_multiclass_by_index(make_registry, tmp_path):
    card = _class_card("fer7", "index")
    ds = make_registry({"w.yaml": card}, {"w/r.csv": "id,label\n1,0\n2,6\n3,3\n"}).dataset("w")
    assert ds.labels("fer7").argmax(axis=1).tolist() == [0, 6, 3]
    where = f"{tmp_path / 'data' / 'w' / 'r.csv'}"
    with pytest.raises(DataError) as exc:
        make_registry({"w.yaml": card}, {"w/r.csv": "id,label\n1,0\n2,7\n"}).dataset("w")
    assert str(exc.value) == f"{where}: row 3, column 'label': class index 7 is outside 0..6 of fer7"
    with pytest.raises(DataError, match=r"row 2, column 'label': class index -1 is outside 0..6 of fer7"):
        make_registry({"w.yaml": card}, {"w/r.csv": "id,label\n1,-1\n"}).dataset("w")
    with pytest.raises(DataError, match=r"row 2, column 'label': class index 2.5 is outside 0..6 of fer7"):
        make_registry({"w.yaml": card}, {"w/r.csv": "id,label\n1,2.5\n"}).dataset("w")


def test_multilabel_id_out_of_range(make_registry):
    card = word_card(modality="text", item={"column": "id"}, formats={"ekman7": {"column": "label", "encoding": "id_list"}})
    with pytest.raises(DataError, match=r"r.csv: row 2, column 'label': label id '7' is outside 0..6"):
        make_registry({"w.yaml": card}, {"w/r.csv": 'id,label\n1,"0,7"\n'}).dataset("w")


def test_duplicate_items(make_registry, tmp_path):
    text = "Word,V,A,D\nfoo,1,2,3\nbar,4,5,6\nfoo,9,8,7\n"
    ds = _load_w(make_registry, text)  # duplicates: first (the default)
    assert len(ds) == 2 and ds.report["duplicate_items"] == 1
    np.testing.assert_allclose(ds.labels("vad")[0], [-1, -0.75, -0.5])
    ds = _load_w(make_registry, text, duplicates="mean")
    np.testing.assert_allclose(ds.labels("vad")[0], [0, 0, 0])
    with pytest.raises(DataError, match=r"r.csv: row 2: duplicate item 'foo'"):
        _load_w(make_registry, text, duplicates="error")


def test_empty_item_key(make_registry):
    with pytest.raises(DataError, match=r"r.csv: row 3: empty item key \(field 'Word'\)"):
        _load_w(make_registry, "Word,V,A,D\nfoo,1,2,3\n,4,5,6\n")


def test_duplicate_card_names(make_registry, tmp_path):
    with pytest.raises(ConfigError) as exc:
        make_registry({"a.yaml": word_card(), "b.yaml": word_card()}, {"w/r.csv": GOOD_CSV})
    assert str(exc.value) == f"{tmp_path / 'cards' / 'b.yaml'}: card name 'w' is already used by {tmp_path / 'cards' / 'a.yaml'}"


def test_pair_card_errors(make_registry, tmp_path):
    pair = {"name": "p", "type": "pair", "left": {"card": "w", "format": "vad"}, "right": {"card": "nope", "format": "be5"}}
    with pytest.raises(ConfigError) as exc:
        make_registry({"w.yaml": word_card(), "p.yaml": pair})
    assert str(exc.value) == f"{tmp_path / 'cards' / 'p.yaml'}: pair side names unknown card 'nope'"
    pair["right"] = {"card": "w", "format": "be5"}
    with pytest.raises(ConfigError, match=r"p.yaml: card 'w' has no format 'be5' \(it has \['vad'\]\)"):
        make_registry({"w.yaml": word_card(), "p.yaml": pair})
    pair["right"] = {"card": "w"}
    with pytest.raises(ConfigError, match=r"p.yaml: field 'right' must be a mapping with 'card' and 'format'"):
        make_registry({"w.yaml": word_card(), "p.yaml": pair})


def test_tmp_pair_joins_two_cards(make_registry):
    be5 = word_card("e", dir="e", files={"ratings": {"path": "e.csv"}},
                    formats={"be5": {v: {"column": v, "scale": [1, 5]} for v in ("joy", "anger", "sadness", "fear", "disgust")}})
    pair = {"name": "p", "type": "pair", "left": {"card": "w", "format": "vad"}, "right": {"card": "e", "format": "be5"}}
    reg = make_registry({"w.yaml": word_card(), "e.yaml": be5, "p.yaml": pair},
                        {"w/r.csv": GOOD_CSV, "e/e.csv": "Word,joy,anger,sadness,fear,disgust\nbaz,5,1,1,1,1\nqux,1,1,1,1,1\nfoo,3,3,3,3,3\n"})
    p = reg.pair("p")
    assert p.items.tolist() == ["foo", "baz"]  # inner join, in the left card's order
    np.testing.assert_allclose(p.labels_a, [[-1, -0.75, -0.5], [1, 0.75, 0.5]])
    np.testing.assert_allclose(p.labels_b, [[0.5] * 5, [1, 0, 0, 0, 0]])
    w = reg.dataset("w").frame.set_index("item")["split"]
    assert p.split.tolist() == [w["foo"], w["baz"]]  # from_left


def test_the_default_registry_follows_the_environment(tmp_path, monkeypatch):
    """Built once per process, again when EMOEMBED_DATA changes: a test (or a long-lived process) that unsets the
    variable no longer sees the datasets found under it."""
    from emoembed.data.registry import default_data_registry

    monkeypatch.setenv("EMOEMBED_DATA", str(tmp_path))
    first = default_data_registry()
    assert default_data_registry() is first and tmp_path in first.roots
    monkeypatch.delenv("EMOEMBED_DATA")
    second = default_data_registry()
    assert second is not first and tmp_path not in second.roots

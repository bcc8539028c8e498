"""``emoembed evaluate --suite``: paper-style tables over seeds, on the data that is present."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from emoembed.cli import main
from emoembed.errors import ConfigError
from emoembed.suite import SuiteResults, load_suite, mapping_section, mean_sd, resolve_suite


def _write_suite(tmp_path: Path) -> Path:
    codec = tmp_path / "codec.yaml"
    codec.write_text(yaml.safe_dump({
        "name": "tiny", "pairs": ["warriner_emomap", "vader_emolex"], "codec": {"dim": 16, "hidden": [32], "dropout": 0.0},
        "training": {"epochs": 2, "steps_per_epoch": 40, "batch_size": 64, "lr": 0.005},
        "baseline": {"epochs": 2, "steps_per_epoch": 40, "hidden": [32]}}))
    words = tmp_path / "words.yaml"
    words.write_text(yaml.safe_dump({"name": "w", "modality": "word", "encoder": {"hidden": [32]},
                                     "training": {"epochs": 2, "batch_size": 128, "lr": 0.005, "max_train_items": 1500,
                                                  "device": "cpu"}}))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "tiny", "seeds": [1, 2], "mapping": {"recipe": str(codec), "fallback": None},
        "modalities": {"word": {"recipe": str(words), "train": "warriner:vad", "multitask": ["vader:valence"],
                                "zero_shot": [{"data": "emomap_warriner_be5:be5", "mapper": "warriner_emomap",
                                               "splits": ["train", "dev", "test"]},
                                              {"data": "norare_binder:be6", "mapper": "binder"}]}}}))
    return suite


def test_suite_tables_on_embedded_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)  # bundled data only: Binder is absent and must be skipped
    out = tmp_path / "run"
    assert main(["evaluate", "--suite", str(_write_suite(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "### mapping" in printed and "### words" in printed and " ± " in printed
    assert "'norare_binder:be6' absent" in printed
    df = pd.read_csv(out / "suite.csv")
    maps = df[df.table == "mapping"]
    assert set(maps.test_set) == {"warriner_emomap: vad → be5", "warriner_emomap: be5 → vad",
                                  "vader_emolex: valence → nrc10", "vader_emolex: nrc10 → valence"}
    assert set(maps.column) == {"codec", "baseline"} and (maps.seeds == 2).all()
    for _, r in df.iterrows():  # mean and sd are those of the per-seed values
        vals = np.array([float(v) for v in r["values"].split()])
        assert r["mean"] == pytest.approx(vals.mean(), abs=1e-4) and r["sd"] == pytest.approx(vals.std(ddof=1), abs=1e-4)
    words = df[df.table == "words"].set_index(["test_set", "column"])
    assert {"Bsl", "Sng", "Aug", "Mlt"} <= {c for t, c in words.index if t == "warriner (vad)"}
    assert words.loc[("warriner (vad)", "Sng"), "mean"] > 0.3  # the packaged GloVe learns VAD even at this size
    assert words.loc[("vader (valence)", "Mlt"), "mean"] > 0.3  # the multitask model also learned VADER valence
    zs = words.loc["emomap_warriner_be5 (be5, zero-shot)"]
    assert set(zs.index) == {"BsZ", "SnZ", "AuZ"}
    # zero-shot words are those no training set contained: at most Warriner's test words
    assert zs["n"].iloc[0] <= 1032
    meta = json.loads((out / "suite.json").read_text())
    assert meta["run"]["seeds"] == [1, 2] and "seed1/word" in meta["seconds"]
    assert (out / "seed2" / "codec" / "model.safetensors").exists()
    # a rerun resumes: every (seed, section) is read back from its cache, and the tables are the same
    before = (out / "suite.csv").read_text()
    assert main(["evaluate", "--suite", str(_write_suite(tmp_path)), "--out", str(out)]) == 0
    assert capsys.readouterr().err.count("reusing") == 4 and (out / "suite.csv").read_text() == before


def test_results_formatting():
    res = SuiteResults()
    for v in (0.5, 0.7):
        res.add("words", "x (vad)", "Sng", v, 10, "pearson")
    res.add("words", "x (vad)", "Bsl", 0.4, 10, "pearson")
    md = res.markdown()
    assert "| x (vad) | 10 | pearson | 0.400 | 0.600 ± 0.141 |" in md
    assert mean_sd([0.25]) == "0.250" and mean_sd(None) == ""


def test_mapping_section_shows_the_pooled_codec_beside_the_domain_codec():
    def row(pair: str, value: float) -> dict:
        return {"pair": pair, "source": "va", "target": "be5", "primary": value, "n": 50, "metric": "pearson"}

    def table(metrics: dict) -> str:
        res = SuiteResults()
        for cells in mapping_section(metrics).rows:
            res.add(*cells)
        return res.markdown()

    md = table({"test": [row("kapucu", 0.8)], "test_pooled": [row("kapucu", 0.7)], "baseline_test": [row("kapucu", 0.75)]})
    assert "| test set | n | metric | codec | pooled | baseline |" in md
    assert "| kapucu: va → be5 | 50 | pearson | 0.800 | 0.700 | 0.750 |" in md
    plain = table({"test": [row("kapucu", 0.8)], "baseline_test": [row("kapucu", 0.75)]})
    assert "| test set | n | metric | codec | baseline |" in plain  # codecs without domains: no pooled column


def test_suite_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['zero-shot'\]"):
        resolve_suite({"modalities": {"word": {"train": "warriner", "zero-shot": []}}})
    with pytest.raises(ConfigError, match="must be NAME:FORMAT"):
        resolve_suite({"modalities": {"word": {"train": "warriner", "zero_shot": [{"data": "emolex"}]}}})
    with pytest.raises(ConfigError, match="seeds must be"):
        resolve_suite({"seeds": []})
    assert load_suite("paper")["modalities"]["word"]["train"] == "warriner:vad"
    assert main(["evaluate", "--suite", "paper", "--modalities", "audio", "--out", str(tmp_path / "x")]) == 2
    assert "no section for ['audio']" in capsys.readouterr().err
    assert main(["evaluate", "--suite", "paper", "--model", "m"]) == 2
    assert main(["evaluate", "--data", "warriner"]) == 2
    assert "give --model DIR and --data NAME" in capsys.readouterr().err

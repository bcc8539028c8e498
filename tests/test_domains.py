"""Codec domains: one learned vector per paired dataset, appended to the label encoders' input, lets one codec
follow datasets whose raters relate two formats differently; without a domain the codec uses the pooled mapping."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from emoembed.cli import main
from emoembed.codec import EmotionCodec, codec_for
from emoembed.data.dataset import PairedDataset
from emoembed.errors import ConfigError
from emoembed.formats import default_registry
from emoembed.recipes import resolve_codec_recipe as resolve_recipe
from emoembed.training.codec import evaluate_codec, results_table, train_codec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def conflicting_pairs() -> list[PairedDataset]:
    """Two synthetic valence × be5 pairs whose raters disagree: in ``east`` joy rises with valence, in ``west``
    it falls (sadness does the opposite). No single mapping fits both."""
    fmts = default_registry()
    rng = np.random.default_rng(0)
    out = []
    for name, sign in (("east", 1.0), ("west", -1.0)):
        n = 400
        v = rng.uniform(-1, 1, n).astype(np.float32)
        joy = 0.5 + 0.45 * sign * v
        be5 = np.stack([joy, 1 - joy, 1 - joy, np.full(n, 0.3), np.full(n, 0.2)], axis=1).astype(np.float32)
        split = np.array(["train"] * 300 + ["dev"] * 50 + ["test"] * 50, dtype=object)
        out.append(PairedDataset(name, fmts.get("valence"), fmts.get("be5"), np.array([f"{name}{i}" for i in range(n)], dtype=object),
                                 split, v[:, None], be5, (name, name)))
    return out


def _train(domain_dim: int, dropout: float = 0.25):
    r = resolve_recipe({"name": "dom", "seed": 5, "pairs": ["east", "west"],
                        "codec": {"dim": 8, "hidden": [32], "dropout": 0.0, "domain_dim": domain_dim},
                        "training": {"epochs": 6, "steps_per_epoch": 80, "batch_size": 64, "lr": 0.01, "patience": 100,
                                     "domain_dropout": dropout}})
    pairs = conflicting_pairs()
    return train_codec(r, pairs, default_registry(), progress=False, log=lambda *a: None).codec, pairs


@pytest.fixture(scope="module")
def domain_codec():
    return _train(domain_dim=4)


def _joy_r(rows: list[dict], pair: str) -> float:
    row = next(r for r in rows if r["pair"] == pair and r["target"] == "be5")
    return row["per_variable"]["joy"]["pearson"]


def test_domains_fit_datasets_that_disagree_and_the_pooled_codec_cannot(domain_codec):
    codec, pairs = domain_codec
    assert list(codec.domains) == ["east", "west"]
    rows = evaluate_codec(codec, pairs, "test")
    assert _joy_r(rows, "east") > 0.95 and _joy_r(rows, "west") > 0.95  # r with each dataset's gold joy
    plain, _ = _train(domain_dim=0)
    assert not plain.domains
    plain_rows = evaluate_codec(plain, pairs, "test")
    assert min(_joy_r(plain_rows, "east"), _joy_r(plain_rows, "west")) < 0.5  # one mapping cannot serve both
    # the pooled path of the domain codec (labels of unknown origin) is one mapping too
    pooled = evaluate_codec(codec, pairs, "test", use_domains=False)
    assert min(_joy_r(pooled, "east"), _joy_r(pooled, "west")) < 0.5
    table = results_table(rows, None, pooled)
    assert table.splitlines()[0].startswith("| pair | direction | n | metric | codec | pooled |")


def test_convert_in_a_domain_and_round_trip(domain_codec, tmp_path):
    codec, _ = domain_codec
    east = codec.convert([[0.9]], "valence", "be5", domain="east")
    west = codec.convert([[0.9]], "valence", "be5", domain="west")
    assert east.loc[0, "joy"] > 0.75 and west.loc[0, "joy"] < 0.25
    codec.save_pretrained(tmp_path / "c")
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["domain_dim"] == 4 and cfg["domains"] == ["east", "west"]
    back = EmotionCodec.from_pretrained(tmp_path / "c")
    for d in ("east", "west", None):
        a = codec.convert([[0.9], [-0.3]], "valence", "be5", domain=d)
        b = back.convert([[0.9], [-0.3]], "valence", "be5", domain=d)
        assert a.equals(b), d
    assert back.domain_fingerprints() == codec.domain_fingerprints()


def test_domain_errors_are_clear(domain_codec):
    codec, _ = domain_codec
    with pytest.raises(ConfigError, match=r"no domain 'north'; it has: east, west"):
        codec.convert([[0.1]], "valence", "be5", domain="north")
    plain = codec_for(["valence", "be5"], default_registry(), dim=8, hidden=[8])
    with pytest.raises(ConfigError, match="trained without domains"):
        plain.convert([[0.1]], "valence", "be5", domain="east")
    with pytest.raises(ConfigError, match=r"domain name 'a\.b' .* contain no '\.'"):
        codec_for(["valence"], default_registry(), dim=8, hidden=[8], domains=["a.b"], domain_dim=2)
    assert list(codec_for(["valence"], default_registry(), dim=8, hidden=[8], domains=["my-pair"], domain_dim=2).domains) == ["my-pair"]
    with pytest.raises(ConfigError, match="domain_dim must be > 0"):
        codec_for(["valence"], default_registry(), dim=8, hidden=[8], domains=["a"], domain_dim=0)


def test_domain_dropout_one_trains_only_the_pooled_mapping():
    codec, _ = _train(domain_dim=4, dropout=1.0)
    # no batch ever used a domain: the vectors never received a gradient and stay at their zero start
    assert all(torch.count_nonzero(v) == 0 for v in codec.domains.values())


def test_predict_cli_converts_in_a_domain(domain_codec, tmp_path, capsys):
    codec, _ = domain_codec
    codec.save_pretrained(tmp_path / "c")
    pd.DataFrame({"word": ["a", "b"], "valence": [0.9, -0.8]}).to_csv(tmp_path / "in.csv", index=False)
    outs = {}
    for d in ("east", "west"):
        assert main(["predict", "--model", str(tmp_path / "c"), "--source-format", "valence", "--format", "be5",
                     "--input", str(tmp_path / "in.csv"), "--domain", d, "--output", str(tmp_path / f"{d}.csv")]) == 0
        outs[d] = pd.read_csv(tmp_path / f"{d}.csv")
    assert list(outs["east"]["word"]) == ["a", "b"]
    assert outs["east"].loc[0, "joy"] > outs["east"].loc[1, "joy"]
    assert outs["west"].loc[0, "joy"] < outs["west"].loc[1, "joy"]
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path / "c"), "--source-format", "valence", "--format", "be5",
                 "--input", str(tmp_path / "in.csv"), "--domain", "north"]) != 0
    err = capsys.readouterr().err
    assert "no domain 'north'" in err and "east, west" in err
    assert not (tmp_path / "north.csv").exists()

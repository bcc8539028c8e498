"""``emoembed data list | info | check`` through :func:`emoembed.cli.main`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from emoembed import formats as formats_module
from emoembed.cli import main
from emoembed.data import registry as registry_module
from emoembed.data.registry import sha256_of

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED = REPO_ROOT / "data_registry" / "bundled"
WARRINER_CSV = BUNDLED / "warriner_xanew" / "Ratings_Warriner_et_al.csv"


@pytest.fixture
def fresh(monkeypatch):
    """Forget the cached default registries, so the env vars a test sets take effect (and are undone)."""
    monkeypatch.setattr(registry_module, "_DEFAULT", None)
    monkeypatch.setattr(formats_module, "_DEFAULT", None)
    monkeypatch.delenv("EMOEMBED_HOME", raising=False)
    return monkeypatch


@pytest.fixture
def no_shared_data(fresh, tmp_path):
    """EMOEMBED_DATA names an empty folder: only the bundled copies and pip lexicons are present."""
    empty = tmp_path / "empty_root"
    empty.mkdir()
    fresh.setenv("EMOEMBED_DATA", str(empty))
    return empty


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _table(out: str) -> dict[str, dict[str, str]]:
    """Parse the fixed-width table `_print_table` prints (header, dashes, rows) into {name: {column: value}}."""
    lines = out.splitlines()
    header, dashes = lines[0], lines[1]
    spans, pos = [], 0
    for chunk in dashes.split("  "):
        spans.append((pos, pos + len(chunk)))
        pos += len(chunk) + 2
    cols = [header[a:b].strip() for a, b in spans]
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        values = [line[a:b].strip() for a, b in spans]
        rows[values[0]] = dict(zip(cols, values))
    return rows


def test_data_list_without_shared_data(capsys, no_shared_data):
    code, out, err = _run(capsys, "data", "list", "--no-count")
    assert code == 0 and err == ""
    rows = _table(out)
    assert rows["warriner"]["present"] == "present"
    assert rows["warriner"]["formats"] == "vad" and rows["warriner"]["bundle"] == "verbatim"
    assert rows["goemotions"]["formats"] == "goemotions28,ekman7,sentiment4"
    assert rows["isear"]["present"] == "missing"
    assert rows["fer2013"]["present"] == "missing"
    assert rows["emobank_affectivetext"]["present"] == "missing"  # a side (affectivetext) is missing
    assert rows["warriner_emolex"]["present"] == "present" and rows["warriner_emolex"]["type"] == "pair"
    assert rows["warriner_emolex"]["formats"] == "vad × nrc10"
    assert rows["warriner"]["items"] == ""  # --no-count
    n_present = sum(r["present"] == "present" for r in rows.values())
    assert f"\n{n_present} of {len(rows)} cards present; data roots: {no_shared_data}, {BUNDLED}\n" in out


def test_data_list_json_counts(capsys, no_shared_data):
    code, out, err = _run(capsys, "data", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    # counts are JSON numbers; a card that is not counted (missing data, a resource) has null
    assert rows["warriner"]["items"] == 13915 and rows["warriner"]["present"] == "present"
    assert rows["emobank"]["items"] == 10062
    assert rows["goemotions_ekman"]["items"] == 54263
    assert rows["warriner_emolex"]["items"] == 4438
    assert rows["isear"] == {**rows["isear"], "items": None, "present": "missing", "modality": "text", "language": "en"}
    assert rows["emotion_embeddings_splits"]["type"] == "resource" and rows["emotion_embeddings_splits"]["items"] is None


@pytest.mark.realdata
def test_data_list_with_shared_data(capsys, fresh, shared_data):
    code, out, _ = _run(capsys, "data", "list", "--no-count")
    assert code == 0
    rows = _table(out)
    assert {r["present"] for r in rows.values()} == {"present"}
    assert f"{len(rows)} of {len(rows)} cards present; data roots: {shared_data}, {BUNDLED}" in out


def test_data_info_warriner(capsys, no_shared_data):
    code, out, err = _run(capsys, "data", "info", "warriner")
    assert code == 0 and err == ""
    assert out.startswith("warriner  (dataset)  Warriner, Kuperman & Brysbaert (2013)")
    assert "items: 13915  splits: {'train': 11587, 'dev': 1296, 'test': 1032}" in out
    assert f"-> {WARRINER_CSV}" in out
    assert "format vad: regression ['valence', 'arousal', 'dominance'] range [-1.0, 1.0]" in out


def test_data_info_missing_and_pair(capsys, no_shared_data):
    code, out, _ = _run(capsys, "data", "info", "isear")
    assert code == 0
    assert "-> MISSING" in out
    assert "status: missing — dataset 'isear' is missing" in out and "Put it at $EMOEMBED_DATA/isear/isear.csv" in out
    code, out, _ = _run(capsys, "data", "info", "warriner_emolex")
    assert code == 0
    assert "warriner_emolex  (pair)" in out and "items: 4438  splits: {'train': 2681, 'dev': 856, 'test': 901}" in out


@pytest.mark.realdata
def test_data_info_real(capsys, fresh, shared_data):
    code, out, _ = _run(capsys, "data", "info", "isear")
    assert code == 0
    assert f"-> {shared_data / 'isear' / 'isear.csv'}" in out
    assert "items: 7666  splits: {'train': 6175, 'dev': 745, 'test': 746}" in out


def test_data_info_unknown(capsys, no_shared_data):
    code, out, err = _run(capsys, "data", "info", "nonexistent")
    assert code == 2
    assert out == ""
    assert err.startswith("emoembed data: error: unknown dataset 'nonexistent'; known: ")
    assert "Traceback" not in err


def test_data_check_ok(capsys, no_shared_data):
    code, out, err = _run(capsys, "data", "check", "warriner", "emobank")
    assert code == 0
    rows = _table(out)
    assert rows["warriner"]["status"] == "ok" and rows["warriner"]["detail"] == "13915 items"
    assert rows["emobank"]["status"] == "ok" and rows["emobank"]["detail"] == "10062 items"
    assert out.rstrip().endswith("2 ok, 0 missing, 0 failed")


def test_data_check_missing_is_not_a_failure(capsys, no_shared_data):
    code, out, _ = _run(capsys, "data", "check", "isear", "warriner")
    assert code == 0
    assert _table(out)["isear"]["status"] == "missing"
    assert out.rstrip().endswith("1 ok, 1 missing, 0 failed")


def test_data_check_unknown_name(capsys, no_shared_data):
    code, _, err = _run(capsys, "data", "check", "nonexistent")
    assert code == 2 and "unknown dataset 'nonexistent'" in err


@pytest.fixture
def tmp_home(fresh, tmp_path):
    """EMOEMBED_HOME with the real mappings/ and a data_registry/ holding two copies of the Warriner card, one
    with a wrong checksum; EMOEMBED_DATA holds the data."""
    home = tmp_path / "home"
    shutil.copytree(REPO_ROOT / "mappings", home / "mappings")
    cards = home / "data_registry"
    cards.mkdir()
    data = tmp_path / "data"
    (data / "wx").mkdir(parents=True)
    shutil.copyfile(WARRINER_CSV, data / "wx" / "r.csv")
    for name, sha in (("good", sha256_of(WARRINER_CSV)), ("bad", "0" * 64)):
        card = {
            "name": name, "modality": "word", "language": "en", "dir": "wx",
            "files": {"ratings": {"path": "r.csv", "sha256": sha}},
            "reader": {"type": "delimited", "file": "ratings"},
            "item": {"column": "Word", "normalize": "strip"},
            "formats": {"vad": {v: {"column": f"{v[0].upper()}.Mean.Sum", "scale": [1, 9]} for v in ("valence", "arousal", "dominance")}},
            "licence": "CC BY-NC-ND 3.0", "citation": "Warriner et al. (2013)", "obtain": "https://github.com/JULIELab/XANEW",
        }
        (cards / f"{name}.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    fresh.setenv("EMOEMBED_HOME", str(home))
    fresh.setenv("EMOEMBED_DATA", str(data))
    return home, data


def test_data_check_wrong_checksum_exits_1(capsys, tmp_home):
    home, data = tmp_home
    code, out, err = _run(capsys, "data", "check", "bad")
    assert code == 1 and err == ""
    row = _table(out)["bad"]
    assert row["status"] == "mismatch"
    assert row["detail"].startswith(str(data / "wx" / "r.csv"))  # the detail (cut at 110 characters) names the file
    assert out.rstrip().endswith("0 ok, 0 missing, 1 failed")

    code, out, _ = _run(capsys, "data", "check", "good")
    assert code == 0 and _table(out)["good"]["status"] == "ok"

    code, out, _ = _run(capsys, "data", "check")  # every card of the tmp home
    assert code == 1
    assert set(_table(out)) == {"bad", "good"}
    assert out.rstrip().endswith("1 ok, 0 missing, 1 failed")


def test_data_list_uses_emoembed_home(capsys, tmp_home):
    home, data = tmp_home
    code, out, _ = _run(capsys, "data", "list")
    assert code == 0
    rows = _table(out)
    assert set(rows) == {"bad", "good"}
    assert rows["good"]["items"] == rows["bad"]["items"] == "13915"  # list does not verify checksums
    assert f"data roots: {data}, {home / 'data_registry' / 'bundled'}" in out


def test_data_check_invalid_card_exits_2(capsys, tmp_home):
    home, _ = tmp_home
    (home / "data_registry" / "broken.yaml").write_text("name: broken\nformats: [vad\n", encoding="utf-8")
    code, out, err = _run(capsys, "data", "check")
    assert code == 2 and out == ""
    assert err.startswith(f"emoembed data: error: {home / 'data_registry' / 'broken.yaml'}: invalid YAML")


def test_negative_number_lists_are_values_not_options():
    from emoembed.cli import _attach_negative_lists

    argv = ["search", "--index", "i", "--values", "-0.8,0.8,-.5", "--input-scale", "1,9", "-k", "3"]
    assert _attach_negative_lists(argv) == ["search", "--index", "i", "--values=-0.8,0.8,-.5", "--input-scale", "1,9", "-k", "3"]
    assert _attach_negative_lists(["predict", "--scale", "-1,1", "x"]) == ["predict", "--scale=-1,1", "x"]
    assert _attach_negative_lists(["search", "--values", "--json"]) == ["search", "--values", "--json"]

"""Shared fixtures.

* ``shared_data``: the real data catalogue named by ``EMOEMBED_DATA``. Tests marked ``@pytest.mark.realdata``
  use it automatically and are skipped (with the reason) when the variable is unset or names no existing folder.
  A relative value (CI sets ``EMOEMBED_DATA=../shared/data``) is resolved against the working directory and,
  failing that, against the repository root; the variable is then monkeypatched to the absolute path(s).
* ``real_registry`` (session): a DataRegistry over the shared data plus the bundled copies; datasets it loads
  are cached for the whole session, so each real dataset is read once.
* ``bundled_registry`` (session): a DataRegistry with ``EMOEMBED_DATA`` unset (bundled copies and pip packages).
* ``make_registry``: builds a DataRegistry over a tmp folder from given cards and data files (bad-input tests).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from emoembed.data.registry import DataRegistry
from emoembed.formats import FormatRegistry
from emoembed.settings import DATA_ENV, bundled_data_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = REPO_ROOT / "mappings"
CARDS_DIR = REPO_ROOT / "data_registry"
BUNDLED = CARDS_DIR / "bundled"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "realdata: needs EMOEMBED_DATA (skipped when the shared data is absent)")


def resolve_data_env() -> tuple[list[Path] | None, str]:
    """The absolute folders named by ``EMOEMBED_DATA``, or (None, why not)."""
    value = os.environ.get(DATA_ENV, "")
    entries = [e for e in value.split(os.pathsep) if e.strip()]
    if not entries:
        return None, f"{DATA_ENV} is not set; the real-data tests need the shared data catalogue"
    roots = []
    for entry in entries:
        p = Path(entry).expanduser()
        tried = [p]
        if not p.is_absolute() and not p.is_dir():
            p = REPO_ROOT / p  # CI: EMOEMBED_DATA=../shared/data, relative to the repository
            tried.append(p)
        if not p.is_dir():
            return None, f"{DATA_ENV}={value!r}: no folder {' or '.join(map(str, tried))}"
        roots.append(p.resolve())
    return roots, ""


@pytest.fixture
def shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The (first) shared data folder; ``EMOEMBED_DATA`` is set to the absolute path(s) for the test."""
    roots, why = resolve_data_env()
    if roots is None:
        pytest.skip(why)
    monkeypatch.setenv(DATA_ENV, os.pathsep.join(str(r) for r in roots))
    return roots[0]


@pytest.fixture(autouse=True)
def _realdata_guard(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("realdata") is not None:
        request.getfixturevalue("shared_data")


@pytest.fixture(scope="session")
def format_registry() -> FormatRegistry:
    return FormatRegistry.load(MAPPINGS / "formats.yaml", MAPPINGS / "equivalences.yaml")


@pytest.fixture(scope="session")
def real_registry(format_registry: FormatRegistry) -> DataRegistry:
    roots, why = resolve_data_env()
    if roots is None:
        pytest.skip(why)
    return DataRegistry.load(CARDS_DIR, format_registry, roots=[*roots, BUNDLED])


@pytest.fixture(scope="session")
def bundled_registry(format_registry: FormatRegistry) -> DataRegistry:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DATA_ENV, raising=False)
        mp.delenv("EMOEMBED_HOME", raising=False)
        reg = DataRegistry.load(CARDS_DIR, format_registry)  # roots from settings.data_roots(): bundled only
    assert reg.roots == [bundled_data_dir()] == [BUNDLED]
    return reg


def card_text(card: Mapping[str, Any] | str) -> str:
    return card if isinstance(card, str) else yaml.safe_dump(dict(card), sort_keys=False, allow_unicode=True)


@pytest.fixture
def make_registry(tmp_path: Path, format_registry: FormatRegistry) -> Callable[..., DataRegistry]:
    """``make_registry(cards={'file.yaml': card dict or YAML text}, files={'<dir>/<path>': bytes or str})``
    writes the cards to ``tmp_path/cards`` and the files to ``tmp_path/data`` and loads a DataRegistry over them
    (the only data root is ``tmp_path/data``)."""

    def build(cards: Mapping[str, Mapping[str, Any] | str], files: Mapping[str, bytes | str] | None = None) -> DataRegistry:
        cards_dir = tmp_path / "cards"
        data_dir = tmp_path / "data"
        cards_dir.mkdir(exist_ok=True)
        data_dir.mkdir(exist_ok=True)
        for old in cards_dir.glob("*.yaml"):
            old.unlink()
        for fname, card in cards.items():
            (cards_dir / fname).write_text(card_text(card), encoding="utf-8")
        for rel, content in (files or {}).items():
            path = data_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                content = content.encode("utf-8")
            path.write_bytes(content)
        return DataRegistry.load(cards_dir, format_registry, roots=[data_dir])

    return build


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models gain nothing from a second thread, and on a shared CPU two threads can be 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def _small_codec_master():
    """vad, be5, nrc10 (dim 16) trained for ~2 s on the bundled Warriner × EmoMap and Warriner × EmoLex pairs."""
    from emoembed.data.registry import DataRegistry
    from emoembed.recipes import resolve_codec_recipe as resolve_recipe
    from emoembed.training.codec import load_pairs, train_codec
    from emoembed.settings import bundled_data_dir

    reg = DataRegistry.load(roots=[bundled_data_dir()])
    r = resolve_recipe({"pairs": ["warriner_emomap", "warriner_emolex"], "codec": {"dim": 16, "hidden": [32], "dropout": 0.0},
                        "training": {"epochs": 4, "steps_per_epoch": 80, "batch_size": 64, "lr": 0.005}})
    pairs = load_pairs(r, reg, log=lambda *_: None)
    return train_codec(r, pairs, reg.formats, progress=False, log=lambda *_: None).codec


@pytest.fixture(scope="module")
def small_trained_codec(_small_codec_master):
    """A private copy per test module of the small codec trained once per session."""
    import copy

    return copy.deepcopy(_small_codec_master)

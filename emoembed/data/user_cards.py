"""A user's own dataset cards live in the user's folders, not in the installed project.

* Wherever a card name is accepted (``--data``, ``evaluate --data``, ``data info``), a path to a card file
  (``path/to/my_norms.yaml``, ending in ``.yaml``/``.yml``) is accepted too; the card is registered under its
  ``name`` and under the path.
* ``EMOEMBED_CARDS``: folders (separated by ``os.pathsep``) whose ``*.yaml`` cards are loaded beside the project's
  ``data_registry/``.

The files a user's card names are looked up relative to the card's folder first (``files: {lexicon: {path:
norms.csv}}`` next to the card, or under its ``dir``), then in the data roots as for any card. A user's card whose
name is already taken by another card is an error naming both files.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from emoembed.data.card import DatasetCard, parse_card
from emoembed.errors import ConfigError

CARDS_ENV = "EMOEMBED_CARDS"
CARD_SUFFIXES = (".yaml", ".yml")


def is_card_path(name: str) -> bool:
    return str(name).lower().endswith(CARD_SUFFIXES)


def user_card_files(dirs: list[Path] | None = None) -> list[Path]:
    """The card files of ``dirs`` (default: the folders of ``EMOEMBED_CARDS``), each folder sorted by name."""
    if dirs is None:
        dirs = [Path(p).expanduser() for p in os.environ.get(CARDS_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for d in dirs:
        if not Path(d).is_dir():
            raise ConfigError(f"{CARDS_ENV}: {d} is not a folder of dataset cards")
        out += sorted(p for p in Path(d).iterdir() if p.suffix.lower() in CARD_SUFFIXES)
    return out


def read_user_card(path: Path) -> DatasetCard:
    """The card in ``path``, its files to be found relative to its folder."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: card file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    card = parse_card(raw, path)
    card.home = path.resolve().parent
    return card

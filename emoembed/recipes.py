"""Recipes (codec and encoder YAML): read a file, merge it over the defaults, reject unknown fields."""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from emoembed.errors import ConfigError


def read_recipe_file(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path}: recipe not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def merge_over_defaults(raw: Any, defaults: Mapping[str, Any], source: str, sections: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``defaults`` updated by ``raw``; the keys in ``sections`` are mappings merged one level
    deep, with their own unknown-field check. Every weight in ``loss_weights`` must be a number ≥ 0."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: a recipe must be a YAML mapping")
    unknown = set(raw) - set(defaults)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {sorted(unknown)}; known: {sorted(defaults)}")
    recipe = copy.deepcopy(dict(defaults))
    sections = set(sections)
    for key, value in raw.items():
        if key in sections:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key} must be a mapping")
            bad = set(value) - set(defaults[key])
            if bad:
                raise ConfigError(f"{source}: {key}: unknown field(s) {sorted(bad)}; known: {sorted(defaults[key])}")
            recipe[key].update(value)
        else:
            recipe[key] = value
    for key, w in recipe.get("loss_weights", {}).items():
        if not isinstance(w, (int, float)) or w < 0:
            raise ConfigError(f"{source}: loss_weights.{key} must be a non-negative number, got {w!r}")
    recipe["source"] = source
    return recipe

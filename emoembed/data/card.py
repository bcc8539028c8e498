"""Dataset cards: the YAML files in ``data_registry/``.

A *dataset* card says where a dataset's files are (a folder under a data root, or inside an installed
package), how to read them, which column is the item key, which columns hold which variable of which label
format and on which source scale, how to split it, and its licence, citation and source.

A *pair* card joins two (card, format) sides on their item keys, or pairs two formats of one card; the codec
trains on pairs. A *resource* card lists files that other cards use (e.g. split files), so that
``emoembed data check`` verifies them too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from emoembed.errors import ConfigError

MODALITIES = ("word", "text", "image")
BUNDLE_VALUES = ("yes", "verbatim", "no")
CARD_TYPES = ("dataset", "pair", "resource")
_DATASET_FIELDS = {
    "name", "type", "title", "modality", "language", "dir", "files", "package", "reader", "item", "content",
    "formats", "splits", "missing", "duplicates", "licence", "citation", "obtain", "bundle", "notes", "filter",
}
_PAIR_FIELDS = {"name", "type", "title", "left", "right", "splits", "notes", "citation"}
_RESOURCE_FIELDS = {"name", "type", "title", "dir", "files", "licence", "citation", "obtain", "bundle", "notes"}


@dataclass(frozen=True)
class FileSpec:
    key: str
    path: str
    sha256: str | None
    dir: str | None = None  # folder under a data root; defaults to the card's dir


@dataclass
class DatasetCard:
    name: str
    source: Path
    type: str = "dataset"
    title: str = ""
    modality: str | None = None
    language: str | None = None
    dir: str | None = None
    files: dict[str, FileSpec] = field(default_factory=dict)
    package: dict[str, Any] | None = None
    reader: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] | None = None
    formats: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, Any] = field(default_factory=lambda: {"type": "random"})
    missing: str = "error"
    duplicates: str = "first"
    filter: dict[str, Any] | None = None
    licence: str = ""
    citation: str = ""
    obtain: str = ""
    bundle: str = "no"
    notes: str = ""
    left: dict[str, Any] | None = None
    right: dict[str, Any] | None = None
    home: Path | None = None  # a user's card (a file path or EMOEMBED_CARDS): its files are found relative to it

    @property
    def format_names(self) -> list[str]:
        if self.type == "pair":
            return [self.left["format"], self.right["format"]]  # type: ignore[index]
        return list(self.formats)

    def where(self, fieldname: str = "") -> str:
        return f"{self.source}: {fieldname}" if fieldname else str(self.source)


def parse_card(raw: Any, source: Path) -> DatasetCard:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: a dataset card must be a YAML mapping")
    ctype = raw.get("type", "dataset")
    if ctype not in CARD_TYPES:
        raise ConfigError(f"{source}: field 'type' must be one of {list(CARD_TYPES)}, got {ctype!r}")
    allowed = {"dataset": _DATASET_FIELDS, "pair": _PAIR_FIELDS, "resource": _RESOURCE_FIELDS}[ctype]
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {sorted(unknown)} for a {ctype} card")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: field 'name' is required")
    card = DatasetCard(name=name, source=source, type=ctype, title=str(raw.get("title", "")), notes=str(raw.get("notes", "")))
    card.citation = str(raw.get("citation", ""))
    if ctype == "pair":
        for side in ("left", "right"):
            spec = raw.get(side)
            if not isinstance(spec, Mapping) or "card" not in spec or "format" not in spec:
                raise ConfigError(f"{source}: field '{side}' must be a mapping with 'card' and 'format'")
            unknown = set(spec) - {"card", "format", "key_regex"}
            if unknown:
                raise ConfigError(f"{source}: {side}: unknown field(s) {sorted(unknown)}")
            setattr(card, side, dict(spec))
        card.splits = dict(raw.get("splits") or {"type": "from_left"})
        return card

    card.dir = raw.get("dir")
    card.licence = str(raw.get("licence", ""))
    card.obtain = str(raw.get("obtain", ""))
    card.bundle = str(raw.get("bundle", "no")).lower() if raw.get("bundle") is not True else "yes"
    if raw.get("bundle") is False:
        card.bundle = "no"
    if card.bundle not in BUNDLE_VALUES:
        raise ConfigError(f"{source}: field 'bundle' must be one of {list(BUNDLE_VALUES)}, got {raw.get('bundle')!r}")
    files = raw.get("files") or {}
    if not isinstance(files, Mapping):
        raise ConfigError(f"{source}: field 'files' must map keys to {{path, sha256}}")
    for key, spec in files.items():
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, Mapping) or "path" not in spec:
            raise ConfigError(f"{source}: files.{key} needs a 'path'")
        sha = spec.get("sha256")
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
            raise ConfigError(f"{source}: files.{key}.sha256 must be 64 hex digits")
        card.files[str(key)] = FileSpec(str(key), str(spec["path"]), sha, spec.get("dir"))
    if ctype == "resource":
        return card

    card.modality = raw.get("modality")
    if card.modality not in MODALITIES:
        raise ConfigError(f"{source}: field 'modality' must be one of {list(MODALITIES)}, got {card.modality!r}")
    card.language = raw.get("language")
    card.package = raw.get("package")
    reader = raw.get("reader")
    if not isinstance(reader, Mapping) or "type" not in reader:
        raise ConfigError(f"{source}: field 'reader' must be a mapping with a 'type'")
    card.reader = dict(reader)
    item = raw.get("item")
    if not isinstance(item, Mapping) or ("column" not in item and "template" not in item):
        raise ConfigError(f"{source}: field 'item' must be a mapping with a 'column'")
    card.item = dict(item)
    card.content = dict(raw["content"]) if raw.get("content") else None
    formats = raw.get("formats")
    if not isinstance(formats, Mapping) or not formats:
        raise ConfigError(f"{source}: field 'formats' must map at least one format name to its columns")
    card.formats = {str(k): v for k, v in formats.items()}
    card.splits = dict(raw.get("splits") or {"type": "random"})
    card.missing = str(raw.get("missing", "error"))
    if card.missing not in ("error", "drop"):
        raise ConfigError(f"{source}: field 'missing' must be 'error' or 'drop'")
    card.duplicates = str(raw.get("duplicates", "first"))
    if card.duplicates not in ("first", "mean", "error"):
        raise ConfigError(f"{source}: field 'duplicates' must be 'first', 'mean' or 'error'")
    card.filter = raw.get("filter")
    for fkey in ("licence", "citation", "obtain"):
        if not getattr(card, fkey):
            raise ConfigError(f"{source}: field {fkey!r} is required for a dataset card")
    return card


def card_file_dir(card: DatasetCard, spec: FileSpec) -> str:
    return spec.dir or card.dir or card.name

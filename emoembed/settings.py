"""Where emoembed finds its declarative files and datasets. Nothing here names a machine path: datasets are
found through ``EMOEMBED_DATA`` (a list of folders separated by ``os.pathsep``) and the bundled copies that
ship with the project."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_ENV = "EMOEMBED_DATA"
HOME_ENV = "EMOEMBED_HOME"  # optional override of the folder that holds mappings/, encoders/, data_registry/
RESOURCE_DIRS = ("mappings", "encoders", "suites", "data_registry", "pretrained")
INSTALLED_RESOURCES = PACKAGE_DIR / "resources"  # where a wheel / `pip install .` puts them (package data)


def project_root() -> Path:
    """The folder holding ``mappings/``, ``encoders/``, ``suites/`` and ``data_registry/`` (with the bundled
    datasets): ``EMOEMBED_HOME`` if set, else the source checkout this package runs from (``pip install -e .``,
    ``PYTHONPATH``), else ``emoembed/resources`` of an installed package."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser().resolve()
    checkout = PACKAGE_DIR.parent
    if (checkout / "mappings").is_dir() and (checkout / "data_registry").is_dir():
        return checkout
    return INSTALLED_RESOURCES


def resource_dir(name: str) -> Path:
    return project_root() / name


def bundled_data_dir() -> Path:
    return resource_dir("data_registry") / "bundled"


def data_roots() -> list[Path]:
    """Folders searched for dataset files, in order: each entry of ``EMOEMBED_DATA``, then the bundled copies."""
    roots = [Path(p).expanduser() for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p.strip()]
    roots.append(bundled_data_dir())
    return roots


CACHE_ENV = "EMOEMBED_CACHE"


def cache_dir() -> Path:
    """Where converted artefacts (e.g. word vectors in gensim's native, memory-mappable format) are kept:
    ``EMOEMBED_CACHE``, else ``~/.cache/emoembed``."""
    override = os.environ.get(CACHE_ENV)
    path = Path(override).expanduser() if override else Path.home() / ".cache" / "emoembed"
    path.mkdir(parents=True, exist_ok=True)
    return path

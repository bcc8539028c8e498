"""Label formats and equivalence classes, loaded from ``mappings/formats.yaml`` and
``mappings/equivalences.yaml``.

A :class:`LabelFormat` is a named, ordered list of variables with a kind (regression, multiclass,
multilabel, distribution), the range its targets are normalised to, a loss and a metric.
:class:`EquivalenceClasses` groups variables of different formats that mean the same thing (valence in
``vad`` and ``va``; joy/happy/happiness in ``be5``, ``fer7``, ``ferplus8`` …); the codec ties their head rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from emoembed.errors import ConfigError
from emoembed.settings import resource_dir

KINDS = ("regression", "multiclass", "multilabel", "distribution")
LOSSES = {
    "regression": ("mse", "l1"),
    "multiclass": ("cross_entropy",),
    "multilabel": ("bce",),
    "distribution": ("soft_cross_entropy", "kl"),
}
METRICS = {
    "regression": ("pearson", "mae"),
    "multiclass": ("accuracy", "macro_f1"),
    "multilabel": ("macro_f1", "accuracy"),
    "distribution": ("accuracy", "pearson"),
}
DEFAULT_RANGE = {"regression": (-1.0, 1.0), "multiclass": (0.0, 1.0), "multilabel": (0.0, 1.0), "distribution": (0.0, 1.0)}


@dataclass(frozen=True)
class LabelFormat:
    name: str
    kind: str
    variables: tuple[str, ...]
    range: tuple[float, float]
    loss: str
    metric: str
    description: str = ""

    @property
    def size(self) -> int:
        return len(self.variables)

    @property
    def is_class_format(self) -> bool:
        """Classes (multiclass, multilabel, distribution): heads emit logits."""
        return self.kind != "regression"

    def index(self, variable: str) -> int:
        try:
            return self.variables.index(variable)
        except ValueError:
            raise ConfigError(f"format {self.name!r} has no variable {variable!r}; it has {list(self.variables)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "variables": list(self.variables),
            "range": list(self.range),
            "loss": self.loss,
            "metric": self.metric,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any], source: str = "<dict>") -> "LabelFormat":
        where = f"{source}: format {name!r}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(spec).__name__}")
        unknown = set(spec) - {"kind", "variables", "range", "loss", "metric", "description", "name"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"{where}: field 'kind' must be one of {list(KINDS)}, got {kind!r}")
        variables = spec.get("variables")
        if not isinstance(variables, list) or not variables or not all(isinstance(v, str) and v for v in variables):
            raise ConfigError(f"{where}: field 'variables' must be a non-empty list of names")
        seen: set[str] = set()
        for v in variables:
            if v in seen:
                raise ConfigError(f"{where}: duplicate variable {v!r}")
            seen.add(v)
        if kind == "multiclass" and len(variables) < 2:
            raise ConfigError(f"{where}: a multiclass format needs at least two classes")
        rng = spec.get("range", DEFAULT_RANGE[kind])
        if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(isinstance(x, (int, float)) for x in rng) and rng[0] < rng[1]):
            raise ConfigError(f"{where}: field 'range' must be [low, high] with low < high, got {rng!r}")
        loss = spec.get("loss", LOSSES[kind][0])
        if loss not in LOSSES[kind]:
            raise ConfigError(f"{where}: loss {loss!r} does not fit kind {kind!r}; choose from {list(LOSSES[kind])}")
        metric = spec.get("metric", METRICS[kind][0])
        if metric not in METRICS[kind]:
            raise ConfigError(f"{where}: metric {metric!r} does not fit kind {kind!r}; choose from {list(METRICS[kind])}")
        return cls(
            name=name,
            kind=kind,
            variables=tuple(variables),
            range=(float(rng[0]), float(rng[1])),
            loss=loss,
            metric=metric,
            description=str(spec.get("description", "")),
        )


@dataclass(frozen=True)
class EquivalenceClass:
    name: str
    names: tuple[str, ...]
    members: tuple[tuple[str, str], ...]  # (format, variable)


@dataclass
class EquivalenceClasses:
    classes: dict[str, EquivalenceClass] = field(default_factory=dict)

    def class_of(self, fmt: str, variable: str) -> str | None:
        for c in self.classes.values():
            if (fmt, variable) in c.members:
                return c.name
        return None

    def canonical(self, variable: str) -> str:
        """The canonical name of a variable name or alias (``happy`` → ``joy``); unknown names unchanged."""
        for c in self.classes.values():
            if variable in c.names:
                return c.name
        return variable

    def tied_pairs(self, formats: Iterable[str]) -> list[tuple[tuple[str, int], tuple[str, int], str]]:
        """All pairs of variables to tie among the given formats: ((fmt_a, var_a), (fmt_b, var_b), class)."""
        fmts = set(formats)
        pairs = []
        for c in self.classes.values():
            members = [(f, v) for f, v in c.members if f in fmts]
            for i in range(len(members)):
                for j in range(i + 1, len(members)):
                    pairs.append((members[i], members[j], c.name))
        return pairs

    def to_dict(self) -> dict[str, Any]:
        return {c.name: {"names": list(c.names), "members": [f"{f}.{v}" for f, v in c.members]} for c in self.classes.values()}

    @classmethod
    def from_members(cls, spec: Mapping[str, Any]) -> "EquivalenceClasses":
        """Rebuild from :meth:`to_dict` output (as saved in a checkpoint's config)."""
        classes = {}
        for name, c in spec.items():
            members = tuple(tuple(m.split(".", 1)) for m in c["members"])
            classes[name] = EquivalenceClass(name, tuple(c["names"]), members)  # type: ignore[arg-type]
        return cls(classes)


class FormatRegistry:
    """The label formats known to emoembed, plus their equivalence classes."""

    def __init__(self, formats: Mapping[str, LabelFormat], equivalences: EquivalenceClasses | None = None):
        self.formats: dict[str, LabelFormat] = dict(formats)
        self.equivalences = equivalences or EquivalenceClasses()

    def __contains__(self, name: str) -> bool:
        return name in self.formats

    def __getitem__(self, name: str) -> LabelFormat:
        return self.get(name)

    def __iter__(self):
        return iter(self.formats.values())

    def names(self) -> list[str]:
        return list(self.formats)

    def get(self, name: str, context: str = "") -> LabelFormat:
        if name not in self.formats:
            where = f"{context}: " if context else ""
            raise ConfigError(f"{where}unknown label format {name!r}; known formats: {', '.join(sorted(self.formats))}")
        return self.formats[name]

    @classmethod
    def load(cls, formats_path: Path | None = None, equivalences_path: Path | None = None) -> "FormatRegistry":
        formats_path = Path(formats_path or resource_dir("mappings") / "formats.yaml")
        equivalences_path = Path(equivalences_path or resource_dir("mappings") / "equivalences.yaml")
        raw = _read_yaml(formats_path)
        if not isinstance(raw, Mapping) or not isinstance(raw.get("formats"), Mapping):
            raise ConfigError(f"{formats_path}: expected a top-level mapping 'formats:'")
        formats = {name: LabelFormat.from_dict(str(name), spec, str(formats_path)) for name, spec in raw["formats"].items()}
        registry = cls(formats)
        if equivalences_path.exists():
            registry.equivalences = parse_equivalences(_read_yaml(equivalences_path), formats, str(equivalences_path))
        return registry


def parse_equivalences(raw: Any, formats: Mapping[str, LabelFormat], source: str) -> EquivalenceClasses:
    if raw is None:
        return EquivalenceClasses()
    if not isinstance(raw, Mapping) or not isinstance(raw.get("classes"), Mapping):
        raise ConfigError(f"{source}: expected a top-level mapping 'classes:'")
    classes: dict[str, EquivalenceClass] = {}
    owner: dict[tuple[str, str], str] = {}
    for cname, spec in raw["classes"].items():
        where = f"{source}: class {cname!r}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping with 'names' (and optional 'include'/'exclude')")
        unknown = set(spec) - {"names", "include", "exclude"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        names = spec.get("names", [cname])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}: 'names' must be a list of variable names")
        members = [(f.name, v) for f in formats.values() for v in f.variables if v in names]
        for key in ("include", "exclude"):
            for ref in spec.get(key, []) or []:
                fmt, _, var = str(ref).partition(".")
                if fmt not in formats:
                    raise ConfigError(f"{where}: {key} names unknown format {fmt!r} in {ref!r}")
                if var not in formats[fmt].variables:
                    raise ConfigError(f"{where}: {key} names variable {var!r}, which format {fmt!r} does not have")
                if key == "include" and (fmt, var) not in members:
                    members.append((fmt, var))
                if key == "exclude" and (fmt, var) in members:
                    members.remove((fmt, var))
        if not members:
            raise ConfigError(f"{where}: no format has a variable named {' / '.join(names)}")
        for m in members:
            if m in owner:
                raise ConfigError(f"{where}: {m[0]}.{m[1]} is already in class {owner[m]!r}")
            owner[m] = str(cname)
        classes[str(cname)] = EquivalenceClass(str(cname), tuple(names), tuple(members))
    return EquivalenceClasses(classes)


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


_DEFAULT: FormatRegistry | None = None


def default_registry() -> FormatRegistry:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FormatRegistry.load()
    return _DEFAULT

"""``emoembed evaluate --suite paper``: the paper-style tables on whatever data is present, over several seeds.

A suite (YAML, ``suites/paper.yaml``) names a codec recipe and, per modality, the dataset to train on, the
datasets trained on jointly for the multitask column, and the zero-shot test sets (with the pair card whose
pairwise mapper makes the zero-shot *baseline*). For every seed the suite trains the codec (with the pairwise
baseline beside it) and, per modality, these stage-2 models with the one training loop:

    Bsl  direct regression/classification, no codec (``heads: direct``)
    Sng  the encoder into the frozen codec heads of the training format
    Aug  Sng + label augmentation into the zero-shot formats (codec-made synthetic labels)
    Mlt  one encoder trained on the training dataset and the multitask datasets together
    BsZ  zero-shot baseline: Bsl's predictions through the pairwise FFN mapper into the target format
    SnZ  zero-shot: Sng through the target format's frozen head;  AuZ: the same for Aug

Cells are mean ± sd over the seeds. Entries whose data is absent are skipped and listed.
"""
from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from emoembed.data.registry import DataRegistry
from emoembed.errors import ConfigError
from emoembed.io import atomic_write_json, atomic_write_text
from emoembed.format_kinds import activate
from emoembed.training.baseline import train_baseline_direction
from emoembed.training.codec import run_map
from emoembed.metrics import evaluate_format
from emoembed.recipes import load_codec_recipe, read_recipe_file
from emoembed.settings import resource_dir

SUITE_DEFAULTS: dict[str, Any] = {"name": "suite", "seeds": [13], "mapping": {}, "modalities": {}, "quick": {}}
MAPPING_DEFAULTS: dict[str, Any] = {"recipe": "full", "fallback": "default", "baseline": True, "overrides": {}}
MODALITY_DEFAULTS: dict[str, Any] = {"recipe": None, "overrides": {}, "train": None, "multitask": [], "augment": None,
                                     "zero_shot": []}
ZERO_SHOT_DEFAULTS: dict[str, Any] = {"data": None, "mapper": None, "splits": ["test"], "unseen_only": True}
COLUMNS = {"mapping": ["codec", "pooled", "baseline"], "modality": ["Bsl", "Sng", "Aug", "Mlt", "BsZ", "SnZ", "AuZ"]}


# ---------------------------------------------------------------------------------------------- suite file
def _checked(raw: Any, defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    unknown = set(raw) - set(defaults)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(defaults)}")
    return copy.deepcopy(dict(defaults)) | copy.deepcopy(dict(raw))


def load_suite(name_or_path: str | Path) -> dict[str, Any]:
    """A suite by name (``paper`` → ``suites/paper.yaml``) or path, checked field by field."""
    path = Path(name_or_path)
    if not path.suffix:
        path = resource_dir("suites") / f"{name_or_path}.yaml"
    return resolve_suite(read_recipe_file(path), str(path))


def resolve_suite(raw: Any, source: str = "<suite>") -> dict[str, Any]:
    suite = _checked(raw, SUITE_DEFAULTS, source)
    seeds = suite["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{source}: seeds must be a non-empty list of integers, got {seeds!r}")
    suite["mapping"] = _checked(suite["mapping"], MAPPING_DEFAULTS, f"{source}: mapping")
    mods = {}
    for modality, spec in (suite["modalities"] or {}).items():
        if modality not in ("word", "text", "image"):
            raise ConfigError(f"{source}: modalities: unknown modality {modality!r} (word, text or image)")
        m = _checked(spec, MODALITY_DEFAULTS, f"{source}: modalities.{modality}")
        if not m["train"]:
            raise ConfigError(f"{source}: modalities.{modality}.train must name a dataset (NAME[:FORMAT])")
        m["zero_shot"] = [_checked(z, ZERO_SHOT_DEFAULTS, f"{source}: modalities.{modality}.zero_shot[{i}]")
                          for i, z in enumerate(m["zero_shot"])]
        for i, z in enumerate(m["zero_shot"]):
            if not z["data"] or ":" not in z["data"]:
                raise ConfigError(f"{source}: modalities.{modality}.zero_shot[{i}].data must be NAME:FORMAT")
        mods[modality] = m
    suite["modalities"] = mods
    suite["source"] = source
    return suite


def deep_update(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


# ---------------------------------------------------------------------------------------------- results
@dataclass
class SuiteResults:
    """cells[(table, row)][column] = one value per seed; meta[(table, row)] = n and metric."""

    cells: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)
    meta: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, table: str, row: str, column: str, value: float, n: int, metric: str) -> None:
        self.cells.setdefault((table, row), {}).setdefault(column, []).append(float(value))
        self.meta[(table, row)] = {"n": int(n), "metric": metric}

    def frame(self) -> pd.DataFrame:
        rows = []
        for (table, row), cols in self.cells.items():
            for col, vals in cols.items():
                arr = np.asarray(vals, dtype=float)
                rows.append({"table": table, "test_set": row, "n": self.meta[(table, row)]["n"],
                             "metric": self.meta[(table, row)]["metric"], "column": col, "mean": float(arr.mean()),
                             "sd": float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"), "seeds": len(arr),
                             "values": " ".join(f"{v:.4f}" for v in arr)})
        return pd.DataFrame(rows, columns=["table", "test_set", "n", "metric", "column", "mean", "sd", "seeds", "values"])

    def markdown(self) -> str:
        out = []
        for table in dict.fromkeys(t for t, _ in self.cells):
            cols = [c for c in COLUMNS["mapping" if table == "mapping" else "modality"]
                    if any(c in v for (t, _), v in self.cells.items() if t == table)]
            out += [f"### {table}", "", "| test set | n | metric | " + " | ".join(cols) + " |",
                    "|---|---|---|" + "---|" * len(cols)]
            for (t, row), vals in self.cells.items():
                if t == table:
                    m = self.meta[(t, row)]
                    out.append(f"| {row} | {m['n']} | {m['metric']} | " + " | ".join(mean_sd(vals.get(c)) for c in cols) + " |")
            means = {c: [float(np.mean(v[c])) for (t, _), v in self.cells.items() if t == table and c in v] for c in cols}
            out += ["| **mean** | | | " + " | ".join(f"**{np.mean(means[c]):.3f}**" if means[c] else "" for c in cols) + " |", ""]
        if self.skipped:
            out += ["Skipped (data not present or not applicable): " + "; ".join(self.skipped), ""]
        return "\n".join(out)


@dataclass
class Section:
    """What one section (the codec, or one modality) gave for one seed: cells and notes; cached as JSON in the
    seed's folder together with the spec that made it, so an interrupted suite resumes where it stopped."""

    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, table: str, row: str, column: str, value: float, n: int, metric: str) -> None:
        self.rows.append([table, row, column, float(value), int(n), metric])

    def note(self, msg: str) -> None:
        self.notes.append(msg)


def cached_section(path: Path, key: Mapping[str, Any], compute: Callable[[], Section], log: Callable[[str], None]) -> Section:
    """``compute()``'s section, or the one stored at ``path`` when it was made from the same ``key``."""
    key = json.loads(json.dumps(key, default=str))
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            log(f"reusing {path}")
            return Section(stored["rows"], stored["notes"], stored["seconds"])
    t0 = time.perf_counter()
    section = compute()
    section.seconds = round(time.perf_counter() - t0, 1)
    atomic_write_json({"key": key, "rows": section.rows, "notes": section.notes, "seconds": section.seconds}, path)
    return section


def mean_sd(values: Sequence[float] | None) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


# ---------------------------------------------------------------------------------------------- runs
def mapping_recipe(spec: Mapping[str, Any], data: DataRegistry, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The suite's codec recipe, or its fallback when a required pair of it is absent."""
    recipe = load_codec_recipe(_recipe_path(spec["recipe"]))
    missing = [p for p in recipe["pairs"] if not data.is_present(p)]
    if missing and spec.get("fallback"):
        log(f"codec recipe {spec['recipe']!r} needs absent pair(s) {missing}; using {spec['fallback']!r}")
        recipe = load_codec_recipe(_recipe_path(spec["fallback"]))
    deep_update(recipe, spec["overrides"])
    recipe["seed"] = seed
    return recipe


def _recipe_path(name: str) -> Path:
    path = Path(name)
    return path if path.suffix else resource_dir("mappings") / f"{name}.yaml"


def run_suite(suite: Mapping[str, Any], out_dir: Path, data: DataRegistry, modalities: Sequence[str] | None = None,
              seeds: Sequence[int] | None = None, quick: bool = False, progress: bool = False,
              log: Callable[[str], None] = print) -> SuiteResults:
    """Run every section of the suite for every seed; writes ``suite.md``, ``suite.csv`` and ``suite.json``."""
    from emoembed.codec import EmotionCodec

    suite = copy.deepcopy(dict(suite))
    if quick:
        deep_update(suite["mapping"].setdefault("overrides", {}), suite["quick"].get("mapping", {}))
        for m in suite["modalities"].values():
            deep_update(m["overrides"], suite["quick"].get("encoder", {}))
    chosen = list(modalities) if modalities is not None else list(suite["modalities"])
    unknown = [m for m in chosen if m != "mapping" and m not in suite["modalities"]]
    if unknown:
        raise ConfigError(f"the suite has no section for {unknown}; it has mapping, {', '.join(suite['modalities'])}")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(suite | {"run": {"modalities": chosen, "seeds": list(seeds or suite["seeds"]), "quick": quick}},
                      out_dir / "suite.json")
    results = SuiteResults()
    seed_list = list(seeds or suite["seeds"])
    for seed in seed_list:
        seed_dir = out_dir / f"seed{seed}"
        codec_dir = seed_dir / "codec"
        recipe = mapping_recipe(suite["mapping"], data, seed, log)
        log(f"[seed {seed}] codec: recipe {recipe['name']}")
        key = {"recipe": {k: v for k, v in recipe.items() if k != "source"}, "baseline": suite["mapping"]["baseline"]}
        if not (codec_dir / "model.safetensors").exists():
            (seed_dir / "mapping.json").unlink(missing_ok=True)
        sections = {"codec": cached_section(seed_dir / "mapping.json", key, partial(
            codec_section, recipe, codec_dir, data, bool(suite["mapping"]["baseline"]), progress), log)}
        codec = EmotionCodec.from_pretrained(codec_dir)
        for modality in chosen:
            if modality != "mapping":
                spec = suite["modalities"][modality]
                sections[modality] = cached_section(
                    seed_dir / f"{modality}.json", {"spec": spec, "codec": key},
                    partial(run_modality, modality, spec, codec, data, seed, log, recipe["baseline"]), log)
        for name, section in sections.items():
            for row in section.rows:
                results.add(*row)
            if seed == seed_list[0]:
                results.skipped += section.notes
            results.seconds[f"seed{seed}/{name}"] = section.seconds
    frame = results.frame()
    atomic_write_text(frame.to_csv(index=False, float_format="%.4f"), out_dir / "suite.csv")
    atomic_write_text(results.markdown() + "\n", out_dir / "suite.md")
    atomic_write_json(suite | {"run": {"modalities": chosen, "seeds": seed_list, "quick": quick},
                               "seconds": results.seconds, "skipped": results.skipped}, out_dir / "suite.json")
    return results


def codec_section(recipe: Mapping[str, Any], codec_dir: Path, data: DataRegistry, baseline: bool, progress: bool) -> Section:
    """Train the codec (and the pairwise baseline) for one seed; one mapping row per direction."""
    return mapping_section(run_map(recipe, codec_dir, data, baseline=baseline, progress=progress, log=lambda m: None))


def mapping_section(metrics: Mapping[str, Any]) -> Section:
    """Mapping rows from the metrics ``emoembed map`` writes (``metrics.json``)."""
    section = Section()
    base = {(r["pair"], r["source"], r["target"]): r for r in metrics.get("baseline_test", [])}
    pooled = {(r["pair"], r["source"], r["target"]): r for r in metrics.get("test_pooled", [])}
    for r in metrics["test"]:
        key = (r["pair"], r["source"], r["target"])
        row = f"{r['pair']}: {r['source']} → {r['target']}"
        section.add("mapping", row, "codec", r["primary"], r["n"], r["metric"])
        if key in pooled:  # codecs with domains: the same codec without the pair's domain
            section.add("mapping", row, "pooled", pooled[key]["primary"], r["n"], r["metric"])
        if key in base:
            section.add("mapping", row, "baseline", base[key]["primary"], r["n"], r["metric"])
    return section


def run_modality(modality: str, spec: Mapping[str, Any], codec, data: DataRegistry, seed: int,
                 log: Callable[[str], None], mapper_cfg: Mapping[str, Any] | None = None) -> Section:
    """The Bsl / Sng / Aug / Mlt models of one modality for one seed, scored on the supervised and zero-shot sets."""
    from emoembed.model import EmotionModel
    from emoembed.recipes import load_encoder_recipe, resolve_encoder_recipe
    from emoembed.tasks import build_tasks, parse_data_spec
    from emoembed.training.encoder import fit

    results = Section()
    note = results.note
    train_name = parse_data_spec(spec["train"])[0][0]
    if not data.is_present(train_name):
        note(f"{modality}: training set {train_name!r} absent")
        return results
    formats = list(codec.formats)
    train = build_tasks(data, [spec["train"]], formats, modality)
    extra = []
    for s in spec["multitask"]:
        if data.is_present(parse_data_spec(s)[0][0]):
            extra += build_tasks(data, [s], formats, modality)
        else:
            note(f"{modality} multitask: {s!r} absent")
    trained_formats = {t.fmt.name for t in train}
    targets = []
    for z in spec["zero_shot"]:
        name, fmt = parse_data_spec(z["data"])[0]
        if not data.is_present(name):
            note(f"{modality} zero-shot: {z['data']!r} absent")
        elif fmt not in codec.formats or fmt in trained_formats:
            note(f"{modality} zero-shot: {z['data']!r} not applicable (format {fmt!r} unknown to the codec or trained on)")
        else:
            targets.append((z, build_tasks(data, [z["data"]], formats, modality)[0]))
    augment = spec["augment"] if spec["augment"] is not None else list(dict.fromkeys(t.fmt.name for _, t in targets))
    base = load_encoder_recipe(spec["recipe"], modality)
    base.pop("source", None)
    # the table's columns decide augmentation (Sng: none, Aug: the zero-shot formats), not the recipe's default
    base = resolve_encoder_recipe(deep_update(base, spec["overrides"]) | {"seed": seed, "modality": modality, "augment": []},
                                  f"suite {modality} recipe")

    def train_model(name: str, tasks, **over) -> EmotionModel:
        r = copy.deepcopy(base) | {"name": name, **over}
        log(f"[seed {seed}] {modality} {name}: {', '.join(t.name for t in tasks)}" + (f" + augment {r['augment']}" if r.get("augment") else ""))
        res = fit(r, codec, tasks, state_dir=None, progress=False, log=lambda m: None)
        return EmotionModel.from_training(res, codec, tasks, r)

    models = {"Bsl": train_model("Bsl", train, heads="direct"), "Sng": train_model("Sng", train)}
    if augment:
        models["Aug"] = train_model("Aug", train, augment=augment)
    if extra:
        models["Mlt"] = train_model("Mlt", train + extra)
    table = f"{modality}s"
    probe = models["Sng"]
    for task in train + extra:
        test, _ = covered(task, probe, ("test",))
        for col, model in models.items():
            if col == "Mlt" or any(task is t for t in train):
                r = model.evaluate(test, "test")
                results.add(table, f"{task.name} ({task.fmt.name})", col, r["primary"], r["n"], r["metric"])
    seen = {str(x).lower() for t in train for s in ("train", "dev") for x in t.items[s]}  # what Sng/Aug saw
    for z, task in targets:
        test, _ = covered(task, probe, tuple(z["splits"]), seen if z["unseen_only"] else None)
        if not test.items["test"]:
            note(f"{modality} zero-shot: {z['data']!r} has no unseen covered items")
            continue
        row = f"{task.name} ({task.fmt.name}, zero-shot)"
        for col, src in (("SnZ", "Sng"), ("AuZ", "Aug")):
            if src in models:
                r = models[src].evaluate(test, "test")
                results.add(table, row, col, r["primary"], r["n"], r["metric"])
        if z["mapper"]:
            if data.is_present(z["mapper"]):
                score = pipeline_score(models["Bsl"], data.pair(z["mapper"]), test, seed, mapper_cfg)
                results.add(table, row, "BsZ", score, len(test.items["test"]), task.fmt.metric)
            else:
                note(f"{modality} zero-shot baseline: mapper pair {z['mapper']!r} absent")
    return results


def covered(task, model, splits: Sequence[str], exclude: set[str] | None = None):
    """The items of ``splits`` the encoder covers (e.g. words with a vector) and that are not in ``exclude``, as
    one ``test`` split — every column is scored on the same items; and the covered share of the non-excluded items."""
    from emoembed.tasks import Task

    items = [x for s in splits for x in task.items[s]]
    labels = np.concatenate([task.labels[s] for s in splits]) if items else np.zeros((0, task.fmt.size), np.float32)
    fresh = np.ones(len(items), dtype=bool)
    if exclude:
        fresh &= np.array([str(x).lower() not in exclude for x in items], dtype=bool)
    keep = fresh.copy()
    known = getattr(model.encoder, "known_mask", None)
    if known is not None and items:
        keep &= np.asarray(known(items), dtype=bool)
    share = float(keep.sum() / fresh.sum()) if fresh.any() else 0.0
    return Task(task.name, task.fmt, {"test": [x for x, k in zip(items, keep) if k]}, {"test": labels[keep]},
                task.scales, task.modality), share


def pipeline_score(direct_model, pair, target, seed: int, mapper_cfg: Mapping[str, Any] | None = None) -> float:
    """Zero-shot baseline: the direct model predicts its own format; the pairwise FFN mapper (trained on ``pair``)
    maps the variables it reads from those predictions into the target format."""
    fmt_names = (pair.format_a.name, pair.format_b.name)
    if target.fmt.name not in fmt_names:
        raise ConfigError(f"mapper pair {pair.name!r} ({' × '.join(fmt_names)}) does not produce {target.fmt.name!r}")
    reverse = pair.format_a.name == target.fmt.name
    source = pair.format_b if reverse else pair.format_a
    own_fmt = next(iter(direct_model.formats.values()))
    pred = direct_model.predict(target.items["test"], own_fmt.name)
    missing = [v for v in source.variables if v not in pred.columns]
    if missing:
        raise ConfigError(f"mapper pair {pair.name!r} reads {source.name} variables {missing}, which the baseline's "
                          f"format {own_fmt.name!r} does not predict")
    mapper, _ = train_baseline_direction(pair, reverse, mapper_cfg or load_codec_recipe(None)["baseline"], seed)
    with torch.no_grad():
        x = torch.tensor(pred[list(source.variables)].to_numpy(dtype=np.float32))
        out = activate(target.fmt, mapper(x)).numpy()
    score = evaluate_format(out, target.labels["test"], target.fmt)["primary"]
    return float("nan") if score is None or (isinstance(score, float) and math.isnan(score)) else float(score)

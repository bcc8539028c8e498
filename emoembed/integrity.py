"""Checks that what is loaded is what was saved, and that a resume continues the run it claims to continue.

* **Resume.** ``training_state.pt`` records the resolved recipe and the fingerprint of the codec the run trains
  against (``map --extend``: the base codec; ``fit-encoder``: the frozen codec). :func:`check_resume` refuses a
  resume whose recipe differs (any field but those in :data:`RESUME_FREE_FIELDS`, e.g. ``--seed``,
  ``--heads``, ``--epochs``, another recipe) or whose codec differs, naming the fields; :func:`restoring`
  turns the shape errors of a state that does not fit the model into one line. States written before these
  records existed still resume (unverified, with a note in the log).
* **Model folders.** ``config.json`` records ``weights_sha256`` (names, dtypes, shapes and bytes of every tensor
  in ``model.safetensors``) and ``codec_fingerprint`` (the codec's tensors). :func:`verify_weights` refuses a
  folder whose weights changed after saving, whose ``codec.*`` tensors are another codec's, or that holds NaN/Inf
  weights. Folders saved before these fields existed still load (only the NaN/Inf check applies).
* **Config shape.** :func:`validate_codec_config` / :func:`validate_model_config` check that a ``config.json``
  that parses as JSON also has the expected shape, and name the field that does not.
* **Pickle-free torch files.** :func:`safe_torch_load` reads ``.pt`` files with ``weights_only=True`` and reports
  a refusal without torch's advice to retry with ``weights_only=False`` (which would run code from the file).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from emoembed.errors import CheckpointError, EmoembedError

WEIGHTS_DIGEST_KEY = "weights_sha256"
CODEC_FINGERPRINT_KEY = "codec_fingerprint"
INTEGRITY_KEYS = (WEIGHTS_DIGEST_KEY, CODEC_FINGERPRINT_KEY)
# recipe fields a resume may change: where the run computes, not what it computes
# (and training.epochs: a resume may run longer than the interrupted run was going to)
RESUME_FREE_FIELDS = frozenset({"source", "training.device", "training.num_workers", "training.eval_batch_size",
                                "training.epochs"})


# ---------------------------------------------------------------------------------------------- digests
def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        h.update(f"{key}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}|".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def codec_fingerprint(state: Mapping[str, torch.Tensor], prefix: str = "") -> str:
    """The fingerprint :func:`emoembed.codec.tensors_fingerprint` gives (SHA-256 over names and bytes, in name
    order) the codec whose tensors are the keys of ``state`` starting with ``prefix`` (prefix removed)."""
    h = hashlib.sha256()
    for key, t in sorted((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix)):
        h.update(key.encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def integrity_record(state: Mapping[str, torch.Tensor], codec_prefix: str = "") -> dict[str, str]:
    """The fields :func:`verify_weights` checks, for a ``config.json`` next to weights ``state``."""
    return {WEIGHTS_DIGEST_KEY: weights_digest(state), CODEC_FINGERPRINT_KEY: codec_fingerprint(state, codec_prefix)}


def check_finite(state: Mapping[str, torch.Tensor], source: Path | str) -> None:
    """:class:`CheckpointError` naming the first tensor holding NaN or ±Inf."""
    for key in sorted(state):
        t = state[key]
        if t.is_floating_point() or t.is_complex():
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise CheckpointError(f"{source}: tensor {key!r} holds {bad} NaN/Inf value(s) of {t.numel()}; "
                                      "the weights are damaged (or training diverged before they were saved)")


def verify_weights(cfg: Mapping[str, Any], state: Mapping[str, torch.Tensor], directory: Path,
                   codec_prefix: str = "", whole: bool = True) -> None:
    """Check loaded weights against the digests in their ``config.json`` (absent in older folders: skipped)
    and for NaN/Inf. ``codec_prefix``: where the codec's tensors are in ``state`` (``"codec."`` in a model);
    ``whole=False`` when ``state`` is only part of the file (the weights digest is then not checked). Raises
    :class:`CheckpointError` naming the folder and what differs."""
    weights = directory / "model.safetensors"
    check_finite(state, weights)
    want_codec = cfg.get(CODEC_FINGERPRINT_KEY)
    if isinstance(want_codec, str):
        have = codec_fingerprint(state, codec_prefix)
        if have != want_codec:
            what = f"the {codec_prefix.rstrip('.') or 'codec'} tensors" if codec_prefix else "the codec's tensors"
            raise CheckpointError(f"{directory}: {what} in model.safetensors are not those the model was saved with "
                                  f"(codec fingerprint {have[:12]}…, config.json says {want_codec[:12]}…); the folder "
                                  "was altered after saving — re-save it from the run that made it")
    want = cfg.get(WEIGHTS_DIGEST_KEY)
    if whole and isinstance(want, str):
        have = weights_digest(state)
        if have != want:
            raise CheckpointError(f"{directory}: model.safetensors does not match config.json (weights digest "
                                  f"{have[:12]}…, config.json says {want[:12]}…); the folder was altered after saving")


# ---------------------------------------------------------------------------------------------- config shape
def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "true/false", type(None): "null"}.get(type(value), type(value).__name__)


def _bad(path: Path | str, field: str, want: str, value: Any) -> CheckpointError:
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CheckpointError(f"{path}: field {field!r} must be {want}, got {_type_name(value)} ({shown})")


bad_field = _bad  # for the encoders' own field checks


def _need(cfg: Mapping[str, Any], key: str, path: Path | str, prefix: str, check: Callable[[Any], bool], want: str,
          required: bool = True) -> None:
    field = f"{prefix}{key}"
    if key not in cfg:
        if required:
            raise CheckpointError(f"{path}: field {field!r} is missing")
        return
    if not check(cfg[key]):
        raise _bad(path, field, want, cfg[key])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_codec_config(cfg: Any, path: Path | str, prefix: str = "") -> None:
    """The shape of a codec's ``config.json`` (or a model's ``codec`` section: ``prefix="codec."``)."""
    if not isinstance(cfg, dict):
        raise _bad(path, prefix.rstrip(".") or "(top level)", "an object", cfg)
    _need(cfg, "formats", path, prefix, lambda v: isinstance(v, dict) and bool(v), "a non-empty object")
    for name, spec in cfg["formats"].items():
        if not isinstance(spec, dict):
            raise _bad(path, f"{prefix}formats.{name}", "an object (kind, variables, range…)", spec)
    _need(cfg, "dim", path, prefix, lambda v: _is_int(v) and v > 0, "a positive integer")
    _need(cfg, "hidden", path, prefix, lambda v: isinstance(v, list) and all(_is_int(h) and h > 0 for h in v),
          "a list of positive integers")
    _need(cfg, "dropout", path, prefix, lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)")
    _need(cfg, "domain_dim", path, prefix, lambda v: _is_int(v) and v >= 0, "an integer ≥ 0", required=False)
    _need(cfg, "domains", path, prefix, lambda v: isinstance(v, list) and all(isinstance(d, str) for d in v),
          "a list of names", required=False)
    _need(cfg, "equivalences", path, prefix, lambda v: isinstance(v, dict) and all(
        isinstance(c, dict) and isinstance(c.get("members"), list) and isinstance(c.get("names"), list)
        for c in v.values()), "an object of classes with 'names' and 'members' lists", required=False)


def validate_model_config(cfg: Any, path: Path | str) -> None:
    """The shape of a content model's ``config.json``."""
    if not isinstance(cfg, dict):
        raise _bad(path, "(top level)", "an object", cfg)
    _need(cfg, "modality", path, "", lambda v: isinstance(v, str) and bool(v), "a modality name (word, text, image)")
    _need(cfg, "encoder", path, "", lambda v: isinstance(v, dict), "an object")
    _need(cfg, "heads", path, "", lambda v: v in ("codec", "direct"), "'codec' or 'direct'", required=False)
    if cfg.get("heads") == "direct":
        _need(cfg, "direct_formats", path, "", lambda v: isinstance(v, dict) and bool(v)
              and all(isinstance(f, dict) for f in v.values()), "an object of format objects")
    for key, want, check in (("trained_formats", "a list of format names", lambda v: isinstance(v, list)),
                             ("source_scales", "an object", lambda v: isinstance(v, dict)),
                             ("datasets", "a list", lambda v: isinstance(v, list))):
        _need(cfg, key, path, "", check, want, required=False)
    if "codec" not in cfg:
        raise CheckpointError(f"{path}: field 'codec' is missing")
    validate_codec_config(cfg["codec"], path, "codec.")


# ---------------------------------------------------------------------------------------------- resume
def recipe_record(recipe: Mapping[str, Any]) -> str:
    """The resolved recipe as canonical JSON, as a training state stores it."""
    return json.dumps(dict(recipe), sort_keys=True, default=str)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def recipe_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``field: saved → now`` for every field that differs, outside :data:`RESUME_FREE_FIELDS`."""
    a, b = _flatten(json.loads(json.dumps(dict(saved), default=str))), _flatten(json.loads(json.dumps(dict(now), default=str)))
    out = []
    for key in sorted(set(a) | set(b)):
        if key in RESUME_FREE_FIELDS or any(key.startswith(f + ".") for f in RESUME_FREE_FIELDS):
            continue
        if a.get(key, "(absent)") != b.get(key, "(absent)"):
            out.append(f"{key}: {json.dumps(a.get(key, '(absent)'))} in the run, {json.dumps(b.get(key, '(absent)'))} now")
    return out


def resume_record(recipe: Mapping[str, Any], codec_fp: str | None) -> dict[str, Any]:
    """The fields a training state stores so that :func:`check_resume` can verify a resume."""
    return {"recipe_json": recipe_record(recipe), "codec_fingerprint": codec_fp}


def check_resume(state: Mapping[str, Any], path: Path, recipe: Mapping[str, Any], codec_fp: str | None,
                 codec_what: str = "codec", log: Callable[[str], None] | None = None) -> None:
    """Refuse (:class:`CheckpointError`) a resume whose recipe or codec is not the run's."""
    advice = f"resume with the options the run was started with, or start afresh (another --out, or delete {path.name})"
    saved_json = state.get("recipe_json")
    if not isinstance(saved_json, str):
        if log is not None:
            log(f"note: {path} was written by an older emoembed and records no recipe; the resume is not verified")
        return
    diffs = recipe_differences(json.loads(saved_json), json.loads(recipe_record(recipe)))
    if diffs:
        raise CheckpointError(f"cannot resume {path}: the run was started with another recipe ("
                              + "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
                              + f"); {advice}")
    saved_fp = state.get("codec_fingerprint")
    if saved_fp != codec_fp:
        def short(fp: Any) -> str:
            return f"{fp[:12]}…" if isinstance(fp, str) else "none"
        raise CheckpointError(f"cannot resume {path}: the run trains against another {codec_what} (fingerprint "
                              f"{short(saved_fp)} in the run, {short(codec_fp)} now); {advice}")


@contextlib.contextmanager
def restoring(path: Path) -> Iterator[None]:
    """Turn the errors of restoring a training state that does not fit the model (missing keys, other shapes,
    another optimizer layout) into one :class:`CheckpointError` line naming ``path``."""
    try:
        yield
    except EmoembedError:
        raise
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "Missing key" in line
                      or "Unexpected key" in line), str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        raise CheckpointError(f"cannot resume {path}: the saved state does not fit this model ({first[:300]}); "
                              f"start afresh (another --out, or delete {path.name})") from None


# ---------------------------------------------------------------------------------------------- torch files
def safe_torch_load(path: str | Path, what: str = "file", error: type[EmoembedError] = CheckpointError) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never code. A refusal is
    reported as one line naming ``path`` — without torch's advice to retry with ``weights_only=False``."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's note on a file's pickle protocol: noise next to our own error
            warnings.filterwarnings("ignore", message=r"Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except Exception as exc:  # noqa: BLE001 — every unreadable file is reported the same way
        raise error(f"{path}: cannot read {what}: {_torch_load_reason(exc)}") from None


def _torch_load_reason(exc: Exception) -> str:
    text = str(exc)
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if "Unsupported global" in line or "Unsupported operand" in line or "WeightsUnpickler error" in line:
            reason = line.split("WeightsUnpickler error:", 1)[-1].split(". Please", 1)[0].strip()
            if not reason:  # torch puts the detail on a later line ("Unsupported operand 149")
                reason = next((ln for ln in lines[i + 1:] if ln and not ln.startswith("Check the documentation")), "")
            detail = f" ({reason[:160]})" if reason else ""
            return (f"it holds Python objects, not only tensors{detail}; emoembed never unpickles them "
                    "because unpickling can run code. Save a plain state dict (or safetensors) instead")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln), type(exc).__name__)
    return first[:300]


__all__ = ["check_finite", "check_resume", "codec_fingerprint", "integrity_record", "recipe_differences",
           "resume_record", "restoring", "safe_torch_load", "validate_codec_config", "validate_model_config",
           "verify_weights", "weights_digest"]

"""What every training loop here shares (codec, pairwise baseline, content encoder): seeding, keeping the best
state under early stopping with patience, and the atomic save/resume of the training state.

A loop calls :func:`seed_everything` first; after each epoch's dev evaluation ``keeper.update(score, epoch,
snapshot)`` (True when the score improved by more than ``min_delta``), then :func:`save_training_state` (its
own tensors plus the keeper, history and RNG states, written atomically) and stops when ``keeper.should_stop``.
``resume`` reads the file back with :func:`load_training_state`, which also restores the torch and Python RNGs,
so a resumed run continues bit-identically.
"""
from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoembed.errors import CheckpointError
from emoembed.integrity import check_resume, restoring, resume_record
from emoembed.io import atomic_torch_save
from emoembed.io import load_training_state as _read_state

STATE_NAME = "training_state.pt"
MIN_DELTA = 1e-6


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, NumPy's global and torch's RNGs with ``seed``; returns a fresh NumPy Generator on it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def snapshot(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module``'s state dict, keys prefixed by ``prefix``."""
    return {f"{prefix}{k}": v.detach().cpu().clone() for k, v in module.state_dict().items()}


@dataclass
class BestKeeper:
    """Model selection on a dev score (higher is better) with early stopping after ``patience`` epochs without
    an improvement of more than ``min_delta``."""

    patience: int
    min_delta: float = MIN_DELTA
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def update(self, score: float, epoch: int, state: Callable[[], dict[str, torch.Tensor]]) -> bool:
        """Record epoch ``epoch`` (1-based) with dev ``score``; on an improvement keep ``state()``."""
        if score > self.best_score + self.min_delta:
            self.best_score, self.best_epoch, self.bad_epochs = float(score), int(epoch), 0
            self.best_state = state()
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= int(self.patience)

    def state_dict(self) -> dict[str, Any]:
        return {"best_state": self.best_state, "best_score": self.best_score, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, st: Mapping[str, Any]) -> None:
        # codec states written before the shared scaffold named the best weights "best_model"
        self.best_state = st["best_state"] if "best_state" in st else st["best_model"]
        self.best_score = st["best_score"]
        self.best_epoch, self.bad_epochs = st["best_epoch"], st["bad_epochs"]


def save_training_state(path: str | Path, epoch: int, keeper: BestKeeper, history: list[dict], **parts: Any) -> Path:
    """Atomically write the loop's state after ``epoch`` (0-based): ``parts`` (state dicts of the model, optimizer…,
    counters), the keeper, the history and the torch and Python RNG states."""
    return atomic_torch_save({**parts, **keeper.state_dict(), "epoch": epoch, "history": history,
                              "torch_rng": torch.get_rng_state(), "py_rng": _py_state_to(random.getstate())}, path)


def load_training_state(path: str | Path, keeper: BestKeeper | None = None, recipe: Mapping[str, Any] | None = None,
                        codec_fp: str | None = None, codec_what: str = "codec",
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state` (tensors only, ``weights_only``), restore the RNGs and
    ``keeper``; returns the dict (``epoch`` is the last finished one, 0-based). With ``recipe``, first refuse
    (CheckpointError) a state written for another recipe or another codec (``codec_fp``), see
    :func:`emoembed.integrity.check_resume`; the state's own fields come from :func:`resume_fields`."""
    path = Path(path)
    st = _read_state(path)
    if recipe is not None:
        check_resume(st, path, recipe, codec_fp, codec_what, log)
    with restoring(path):
        torch.set_rng_state(st["torch_rng"])
        if st.get("py_rng") is not None:
            random.setstate(_py_state_from(st["py_rng"]))
        if keeper is not None:
            keeper.load_state_dict(st)
    return st


def check_resume_target(out_dir: str | Path, resume: bool, verb: str) -> None:
    """Before a run touches ``out_dir``: with ``resume`` and no ``training_state.pt`` there, refuse
    (CheckpointError) a finished run folder (its model is saved; retraining would overwrite it) and say on stderr
    that an empty or new folder starts a new run."""
    if not resume:
        return
    out_dir = Path(out_dir)
    if (out_dir / STATE_NAME).exists():
        return
    if (out_dir / "model.safetensors").exists() or (out_dir / "config.json").exists():
        raise CheckpointError(f"cannot resume {out_dir}: the run is complete (its model is saved and it has no "
                              f"{STATE_NAME}); nothing to resume — choose another --out, or drop --resume to "
                              "train it again")
    print(f"note: nothing to resume in {out_dir} (no {STATE_NAME}); starting a new run", file=sys.stderr)


def resume_fields(recipe: Mapping[str, Any], codec_fp: str | None) -> dict[str, Any]:
    """What a training state records so that a resume can be verified: the resolved recipe and the fingerprint
    of the codec the run trains against (None when there is none)."""
    return resume_record(recipe, codec_fp)


def _py_state_to(state: tuple) -> dict:
    version, internal, gauss = state
    return {"version": version, "internal": torch.as_tensor(internal, dtype=torch.int64), "gauss": gauss}


def _py_state_from(d: Mapping[str, Any]) -> tuple:
    return (d["version"], tuple(int(x) for x in d["internal"].tolist()), d["gauss"])

"""Linear probes on frozen text embeddings: the evaluation protocol of the CARL paper (Son, Saurez & Har,
*Continuous Adversarial Text Representation Learning for Affective Recognition*, §IV).

* **Valence / arousal (Table I).** Ordinary least-squares linear regression (``sklearn.linear_model.
  LinearRegression``) from the sentence embedding to each of valence and arousal (and dominance, reported
  beside), fitted on EmoBank *train*, scored on EmoBank *test*: Pearson r, Spearman ρ and MAE. MAE is on the
  paper's min-max scale [0, 1] (EmoBank's 1–5 ratings mapped to [0, 1]), i.e. half the MAE on emoembed's
  normalised [-1, 1] scale.
* **Six-Ekman emotions (Table III).** GoEmotions comments whose only label is one of anger, disgust, fear, joy,
  sadness, surprise (Ekman grouping of the 28 categories; neutral and multi-label comments left out):
  ``StandardScaler`` + multinomial ``LogisticRegression`` fitted on the train split, scored on the test split:
  accuracy and macro precision / recall / F1.
* **Alignment / uniformity (Table IV).** Wang & Isola (2020) on the L2-normalised test-comment embeddings of the
  six-Ekman probe. *Positive-pair rule:* every unordered pair of two different comments with the same (single)
  Ekman label is a positive pair; alignment = mean ‖f(a) − f(b)‖² over all positive pairs (α = 2); uniformity =
  log mean exp(−2‖f(a) − f(b)‖²) over all unordered pairs of different comments (t = 2). Both exact (no pair
  sampling), lower is better for both.

An *embedder* is any callable ``texts -> (N, H) float array``. :func:`text_embedder` builds one from a bare
backbone (``packaged:all-MiniLM-L6-v2``, a Hugging Face folder, or a backbone saved by ``emoembed pretrain``)
or from a model directory written by ``fit-encoder`` (``layer: pooled`` = the backbone's pooled sentence
embedding, as the paper probes; ``layer: emotion`` = the d-dimensional emotion embedding).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoembed.errors import ConfigError

EKMAN6 = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
VA_VARIABLES = ("valence", "arousal", "dominance")
Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass
class ProbeData:
    """The probe's texts and labels. ``va_*_y``: (N, k) on emoembed's [-1, 1] scale, columns ``va_variables``;
    ``ekman_*_y``: (N,) class ids into ``EKMAN6``."""

    va_train: list[str]
    va_train_y: np.ndarray
    va_test: list[str]
    va_test_y: np.ndarray
    va_variables: list[str]
    ekman_train: list[str]
    ekman_train_y: np.ndarray
    ekman_test: list[str]
    ekman_test_y: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"va_train": len(self.va_train), "va_test": len(self.va_test),
                "ekman_train": len(self.ekman_train), "ekman_test": len(self.ekman_test)}


def _subsample(n_total: int, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, int(n), replace=False))


def ekman_single_label(texts: Sequence[str], ekman7: np.ndarray, variables: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The comments whose only label (of all seven, neutral included) is one of the six Ekman emotions."""
    cols = [list(variables).index(e) for e in EKMAN6]
    y = np.nan_to_num(np.asarray(ekman7, dtype=float))
    y6 = y[:, cols]
    keep = np.flatnonzero((y6.sum(1) == 1) & (y.sum(1) == 1))
    return [str(texts[i]) for i in keep], y6[keep].argmax(1)


def load_probe_data(registry=None, va_dataset: str = "emobank", ekman_dataset: str = "goemotions",
                    max_ekman_train: int | None = None, max_ekman_test: int | None = None,
                    max_va_train: int | None = None, max_va_test: int | None = None, seed: int = 13) -> ProbeData:
    """EmoBank (train/test, vad) and GoEmotions (train/test, single-label six Ekman) from the data registry
    (``EMOEMBED_DATA``). ``max_*`` subsample (seeded) for smoke runs; None = all. Raises ConfigError when a
    dataset lacks the needed format."""
    from emoembed.data.registry import default_data_registry

    reg = registry or default_data_registry()
    eb = reg.dataset(va_dataset)
    if "vad" in eb.formats:
        va_fmt = "vad"
    elif "va" in eb.formats:
        va_fmt = "va"
    else:
        raise ConfigError(f"probe: dataset {va_dataset!r} has no vad or va format; it has {list(eb.formats)}")
    variables = [v for v in eb.formats[va_fmt].variables if v in VA_VARIABLES]
    cols = [list(eb.formats[va_fmt].variables).index(v) for v in variables]
    va: dict[str, tuple[list[str], np.ndarray]] = {}
    for split, cap in (("train", max_va_train), ("test", max_va_test)):
        sub = eb.split(split)
        y = sub.labels(va_fmt)[:, cols]
        ok = np.flatnonzero(~np.isnan(y).any(1))
        ok = ok[_subsample(len(ok), cap, seed)]
        va[split] = ([str(sub.content[i]) for i in ok], y[ok])
    ge = reg.dataset(ekman_dataset)
    if "ekman7" not in ge.formats:
        raise ConfigError(f"probe: dataset {ekman_dataset!r} has no ekman7 format; it has {list(ge.formats)}")
    ek: dict[str, tuple[list[str], np.ndarray]] = {}
    for split, cap in (("train", max_ekman_train), ("test", max_ekman_test)):
        sub = ge.split(split)
        texts, y = ekman_single_label(sub.content, sub.labels("ekman7"), ge.formats["ekman7"].variables)
        keep = _subsample(len(texts), cap, seed)
        ek[split] = ([texts[i] for i in keep], y[keep])
    return ProbeData(va["train"][0], va["train"][1], va["test"][0], va["test"][1], variables,
                     ek["train"][0], ek["train"][1], ek["test"][0], ek["test"][1])


# ---------------------------------------------------------------------------------------------- the three probes
def regression_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                     variables: Sequence[str], label_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, dict[str, float]]:
    """One least-squares linear regression per variable (column of y). Returns per variable ``r`` (Pearson),
    ``rho`` (Spearman), ``mae`` on the [0, 1] min-max scale of ``label_range``, and ``n`` (test items)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.linear_model import LinearRegression

    lo, hi = label_range
    out = {}
    for j, var in enumerate(variables):
        pred = LinearRegression().fit(x_train, y_train[:, j]).predict(x_test)
        gold = y_test[:, j]
        out[var] = {"r": float(pearsonr(pred, gold)[0]), "rho": float(spearmanr(pred, gold)[0]),
                    "mae": float(np.mean(np.abs(pred - gold)) / (hi - lo)), "n": int(len(gold))}
    return out


def classification_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                         max_iter: int = 2000) -> dict[str, float]:
    """Standardised features → multinomial logistic regression (L2, C = 1). Accuracy and macro P / R / F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(max_iter=max_iter).fit(scaler.transform(x_train), y_train)
    pred = clf.predict(scaler.transform(x_test))
    p, r, f, _ = precision_recall_fscore_support(y_test, pred, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_test, pred)), "precision": float(p), "recall": float(r), "f1": float(f),
            "n": int(len(y_test))}


def alignment_uniformity(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Wang & Isola on L2-normalised rows of ``x`` (N, H) with class ids ``y`` (N,). Positive pairs: all unordered
    pairs of different rows with the same class. Exact means over pairs (float64). Raises ConfigError when there
    are fewer than two rows or no positive pair."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if len(x) < 2:
        raise ConfigError("alignment/uniformity needs at least two embeddings")
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    sq = np.clip(2.0 - 2.0 * (x @ x.T), 0.0, None)
    iu = np.triu_indices(len(x), k=1)
    same = (y[:, None] == y[None, :])[iu]
    if not same.any():
        raise ConfigError("alignment needs at least one positive pair (two items of the same class)")
    d = sq[iu]
    return {"alignment": float(d[same].mean()), "uniformity": float(np.log(np.mean(np.exp(-2.0 * d)))),
            "positive_pairs": int(same.sum())}


def run_probes(embed: Embedder, data: ProbeData, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """All three probes for one embedder. Returns ``{"va": {var: {r, rho, mae, n}}, "ekman": {accuracy, precision,
    recall, f1, n}, "geometry": {alignment, uniformity, positive_pairs}, "dim", "sizes", "seconds"}``."""
    t0 = time.perf_counter()
    log(f"probe: embedding {len(data.va_train) + len(data.va_test)} EmoBank sentences")
    va_tr, va_te = embed(data.va_train), embed(data.va_test)
    log(f"probe: embedding {len(data.ekman_train) + len(data.ekman_test)} GoEmotions comments")
    ek_tr, ek_te = embed(data.ekman_train), embed(data.ekman_test)
    t_embed = time.perf_counter() - t0
    out = {"va": regression_probe(va_tr, data.va_train_y, va_te, data.va_test_y, data.va_variables),
           "ekman": classification_probe(ek_tr, data.ekman_train_y, ek_te, data.ekman_test_y),
           "geometry": alignment_uniformity(ek_te, data.ekman_test_y),
           "dim": int(va_tr.shape[1]), "sizes": data.sizes(),
           "embed_seconds": round(t_embed, 1), "seconds": round(time.perf_counter() - t0, 1)}
    return out


# ---------------------------------------------------------------------------------------------- embedders
def text_embedder(source: str | Path, layer: str = "pooled", pooling: str | None = None, max_length: int = 128,
                  batch_size: int = 128, device: str = "cpu") -> Embedder:
    """An embedder for a model directory (``fit-encoder`` output: ``config.json`` of an emotion model), a backbone
    saved by ``emoembed pretrain`` / any Hugging Face folder, or ``packaged:all-MiniLM-L6-v2``.

    ``layer``: ``pooled`` (the backbone's pooled sentence embedding, (N, hidden)) or ``emotion`` (the model's
    d-dimensional emotion embedding; model directories only). ``pooling`` overrides the model's (mean | cls;
    bare backbones default to mean). Texts are batched by length and returned in input order. Raises
    ConfigError for an unknown layer or a source that is neither."""
    import torch

    from emoembed.encoders.text import TextEncoder
    from emoembed.inference import pick_device

    if layer not in ("pooled", "emotion"):
        raise ConfigError(f"probe: layer must be 'pooled' or 'emotion', got {layer!r}")
    src = str(source)
    path = Path(src)
    dev = pick_device(device)
    if (path / "config.json").is_file() and _is_emotion_model(path):
        from emoembed.model import EmotionModel

        model = EmotionModel.from_pretrained(path)
        if model.modality != "text":
            raise ConfigError(f"probe: {path} is a {model.modality} model; the probes need a text model")
        enc = model.encoder
        if pooling:
            enc.pooling = pooling
    else:
        if layer == "emotion":
            raise ConfigError(f"probe: {src} is a bare backbone; layer 'emotion' needs a model directory")
        # a bare backbone is probed on the raw texts, as the CARL paper does (emoji as given)
        enc = TextEncoder.from_recipe({"backbone": src, "pooling": pooling or "mean", "max_length": max_length,
                                       "emoji": "keep"}, 8)
    enc = enc.to(dev).eval()

    @torch.inference_mode()
    def embed(texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        order = np.argsort([len(t) for t in texts], kind="stable")
        dim = enc.hidden_size if layer == "pooled" else enc.dim
        out = np.empty((len(texts), dim), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            sel = order[i:i + batch_size]
            batch = {k: v.to(dev) for k, v in enc.collate([texts[j] for j in sel]).items()}
            res = enc.forward_tokens(batch)
            out[sel] = res["pooled" if layer == "pooled" else "z"].float().cpu().numpy()
        return out

    return embed


def _is_emotion_model(path: Path) -> bool:
    import json

    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and cfg.get("model_type") == "emotion-model"


def probe_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown rows in the paper's layout: per model V r/ρ/MAE, A r/ρ/MAE, six-Ekman acc/P/R/F1, align/unif."""
    head = ("| model | V r | V ρ | V MAE | A r | A ρ | A MAE | Ekman acc | P | R | F1 | align | unif |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [head]
    for name, r in results.items():
        v, a, e, g = r["va"]["valence"], r["va"]["arousal"], r["ekman"], r["geometry"]
        rows.append(f"| {name} | {v['r']:.3f} | {v['rho']:.3f} | {v['mae']:.3f} | {a['r']:.3f} | {a['rho']:.3f} | "
                    f"{a['mae']:.3f} | {e['accuracy']:.3f} | {e['precision']:.3f} | {e['recall']:.3f} | {e['f1']:.3f} | "
                    f"{g['alignment']:.3f} | {g['uniformity']:.3f} |")
    return "\n".join(rows)

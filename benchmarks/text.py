"""Text encoders and CARL at full size on the CPU (issue 13), plus the quick smoke profile (issue 5).

    EMOEMBED_DATA=../shared/data HF_HUB_OFFLINE=1 python benchmarks/text.py --codec runs/map-full --out runs \
        [--threads 1] [--only eb-default-s13,probe-minilm-base] [--quick | --smoke | --gpu]

**Full profile (default)** — every step is a resumable run stored under ``--out/NAME`` (a rerun reuses finished
runs and continues interrupted ones from their ``training_state.pt``), made by the same functions as the CLI:

* stage 2 (``emoembed fit-encoder``, whole training splits): ``eb-default-s13`` (the default text recipe
  ``encoders/text-minilm.yaml`` on EmoBank, augmentation be5), ``at-default-s13`` (AffectiveText be6 +
  augmentation vad), ``eb-carlinit-s13`` (the default recipe starting from the ``carl-pretrain-s13`` backbone),
  ``multitask-s13`` (EmoBank + AffectiveText be6 + GoEmotions ekman7, 8,000 GoEmotions comments),
  ``eb-nogroup-s13`` (the default recipe without length-grouped batches). Scored on their test splits and
  zero-shot in the formats they never saw (AffectiveText be5/be6, EmoBank vad).
* CARL pre-training (``emoembed pretrain``, ``encoders/text-minilm-carl-pretrain.yaml``): seeds 13/14/15,
  EmoBank-only (what the codec-labelled data adds), w/o PTD, w/o MCCL.
* Probes (``emoembed evaluate --probe``): the untouched MiniLM and every pre-trained backbone.
* Step time of length-grouped vs random batches on the same EmoBank items, side by side in one process.

``--quick`` is the former CPU size (1,440 EmoBank sentences, 2 × 45 steps; minutes per run) with its table;
``--smoke`` a seconds-long pass through the quick code; ``--gpu`` the quick table at the GPU recipes' size.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from emoembed.codec import EmotionCodec  # noqa: E402
from emoembed.data.registry import default_data_registry  # noqa: E402
from emoembed.encoders.base import StepContext, objective_class  # noqa: E402
from emoembed.errors import ConfigError  # noqa: E402
from emoembed.io import atomic_write_json, atomic_write_text  # noqa: E402
from emoembed.format_kinds import format_loss  # noqa: E402
from emoembed.metrics import pearson  # noqa: E402
from emoembed.format_kinds import activate  # noqa: E402
from emoembed.recipes import load_encoder_recipe, resolve_encoder_recipe  # noqa: E402
from emoembed.tasks import Task, task_from_dataset  # noqa: E402
from emoembed.training.encoder import fit, synthetic_labels  # noqa: E402

SIZES: dict[str, dict[str, Any]] = {
    "quick": {"max_length": 64, "batch_size": 16, "epochs": 2, "steps": 45, "train_items": 1440, "dev_items": 300,
            "lr": 1e-4, "at_epochs": 2, "at_steps": 40, "eval_batch_size": 64, "probe_train": 1500,
            "probe_test": 800, "pairs": 2000, "speed_steps": 4, "speed_texts": 512, "device": "cpu",
            "study_steps": 16},
    "gpu": {"max_length": 128, "batch_size": 32, "epochs": 10, "steps": None, "train_items": None, "dev_items": None,
            "lr": 5e-5, "at_epochs": 20, "at_steps": None, "eval_batch_size": 256, "probe_train": 10000,
            "probe_test": 3000, "pairs": 10000, "speed_steps": 20, "speed_texts": 4096, "device": "cuda",
            "study_steps": 200},
    "smoke": {"max_length": 24, "batch_size": 8, "epochs": 1, "steps": 2, "train_items": 64, "dev_items": 32,
              "lr": 1e-4, "at_epochs": 1, "at_steps": 2, "eval_batch_size": 64, "probe_train": 120,
              "probe_test": 60, "pairs": 100, "speed_steps": 1, "speed_texts": 64, "device": "cpu",
              "study_steps": 2},
}
RUNS: list[dict[str, Any]] = [
    {"name": "eb-plain", "label": "plain fine-tune", "recipe": "text-minilm.yaml", "data": "emobank"},
    {"name": "eb-carl", "label": "CARL", "recipe": "text-minilm-carl.yaml", "data": "emobank"},
    {"name": "eb-carl-noptd", "label": "CARL w/o PTD", "recipe": "text-minilm-carl.yaml", "data": "emobank",
     "objective": {"ptd": False}},
    {"name": "eb-carl-nomccl", "label": "CARL w/o MCCL", "recipe": "text-minilm-carl.yaml", "data": "emobank",
     "objective": {"mccl": False}},
    {"name": "eb-plain-aug", "label": "plain + aug (be5, be6)", "recipe": "text-minilm.yaml", "data": "emobank",
     "augment": ["be5", "be6"]},
    {"name": "at-plain", "label": "plain fine-tune", "recipe": "text-minilm.yaml", "data": "affectivetext:be6"},
    {"name": "at-plain-aug", "label": "plain + aug (vad)", "recipe": "text-minilm.yaml", "data": "affectivetext:be6",
     "augment": ["vad"]},
]
EKMAN6 = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
NEEDED_FORMATS = ("vad", "be5", "be6")


# ---------------------------------------------------------------------------------------------- data
class Data:
    """The benchmark's tasks, loaded once: EmoBank (vad), AffectiveText (be6 and its be5 columns), GoEmotions."""

    def __init__(self, size: dict[str, Any], seed: int = 13):
        reg = default_data_registry()
        self.size, self.seed = size, seed
        self.emobank = task_from_dataset(reg.dataset("emobank"), "vad")
        self.afftext = task_from_dataset(reg.dataset("affectivetext"), "be6")
        be5 = reg.formats.get("be5")
        self.afftext_be5 = Task("affectivetext", be5, self.afftext.items,
                                {k: v[:, :5] for k, v in self.afftext.labels.items()}, {}, "text")
        assert list(be5.variables) == list(self.afftext.fmt.variables[:5])
        self.goemotions = reg.dataset("goemotions")

    def training_task(self, spec: str) -> Task:
        task = {"emobank": self.emobank, "affectivetext:be6": self.afftext}[spec]
        task = copy.deepcopy(task)
        n = self.size["dev_items"]
        if n and task.size("dev") > n:
            keep = np.sort(np.random.default_rng(self.seed).choice(task.size("dev"), n, replace=False))
            task.items["dev"] = [task.items["dev"][i] for i in keep]
            task.labels["dev"] = task.labels["dev"][keep]
        return task

    def ekman_probe(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """Single-label GoEmotions comments of the six Ekman emotions: train and test subsets (texts, class ids)."""
        out = {}
        for split, n in (("train", self.size["probe_train"]), ("test", self.size["probe_test"])):
            sub = self.goemotions.split(split)
            y = sub.labels("ekman7")
            cols = [list(sub.formats["ekman7"].variables).index(e) for e in EKMAN6]
            y6 = y[:, cols]
            single = (y6.sum(1) == 1) & (y.sum(1) == 1)
            idx = np.flatnonzero(single)
            idx = np.sort(np.random.default_rng(self.seed).choice(idx, min(n, len(idx)), replace=False))
            texts = [sub.content[i] for i in idx]
            out[split] = (texts, y6[idx].argmax(1))
        return out


# ---------------------------------------------------------------------------------------------- runs
def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lambda_mccl=0.005", "ptd=false"]`` → {"lambda_mccl": 0.005, "ptd": False} (values read as YAML)."""
    import yaml

    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep:
            raise ConfigError(f"--carl expects KEY=VALUE, got {p!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run_recipe(run: dict[str, Any], size: dict[str, Any], carl: dict[str, Any] | None = None) -> dict[str, Any]:
    recipe = load_encoder_recipe(REPO / "encoders" / run["recipe"], "text")
    raw = {k: v for k, v in recipe.items() if k != "source"}
    raw["name"] = run["name"]
    raw["encoder"] = {**raw["encoder"], "max_length": size["max_length"]}
    at = run["data"].startswith("affectivetext")
    raw["training"] = {**raw["training"], "batch_size": size["batch_size"], "lr": size["lr"],
                       "epochs": size["at_epochs"] if at else size["epochs"],
                       "max_steps_per_epoch": size["at_steps"] if at else size["steps"],
                       "max_train_items": None if at else size["train_items"],
                       "eval_batch_size": size["eval_batch_size"], "patience": 100, "device": size["device"]}
    raw["data"] = [run["data"]]
    raw["augment"] = list(run.get("augment", []))
    if raw.get("objective") is not None:
        raw["objective"] = {**raw["objective"], **(carl or {}), **run.get("objective", {})}
    return resolve_encoder_recipe(raw, f"benchmark:{run['name']}")


def regression_scores(pred: np.ndarray, gold: np.ndarray, variables: list[str]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    per = {}
    for j, v in enumerate(variables):
        rho = spearmanr(pred[:, j], gold[:, j]).statistic if np.std(pred[:, j]) > 0 else float("nan")
        per[v] = {"r": pearson(pred[:, j], gold[:, j]), "rho": float(rho), "mae": float(np.mean(np.abs(pred[:, j] - gold[:, j])))}
    return {"per_variable": per, "mean_r": float(np.nanmean([m["r"] for m in per.values()])),
            "mean_rho": float(np.nanmean([m["rho"] for m in per.values()])),
            "mean_mae": float(np.mean([m["mae"] for m in per.values()]))}


def score(model, task: Task, batch_size: int) -> dict[str, Any]:
    """Test-split scores of ``task`` in its format through the model's (codec) head."""
    z = torch.as_tensor(model.encode(task.items["test"], batch_size=batch_size))
    fmt = model.format(task.fmt.name)
    with torch.no_grad():
        pred = activate(fmt, model.heads.decode(fmt.name, z.to(next(model.encoder.parameters()).device)).float()).cpu().numpy()
    pred = np.clip(pred, fmt.range[0], fmt.range[1])
    return {**regression_scores(pred, task.labels["test"], list(fmt.variables)), "n": len(pred),
            "zero_shot": fmt.name not in model.trained_formats}


def train_run(run: dict[str, Any], codec: EmotionCodec, data: Data, size: dict[str, Any], log,
              carl: dict[str, Any] | None = None) -> tuple[Any, dict]:
    from emoembed.model import EmotionModel

    recipe = run_recipe(run, size, carl)
    task = data.training_task(run["data"])
    result = fit(recipe, codec, [task], progress=False, log=lambda m: log(f"  [{run['name']}] {m}"))
    model = EmotionModel.from_training(result, codec, [task], recipe).eval()
    bs = size["eval_batch_size"]
    out: dict[str, Any] = {"name": run["name"], "label": run["label"], "data": run["data"],
                           "augment": run.get("augment", []), "objective": recipe["objective"],
                           "train_seconds": round(result.seconds, 1), "best_epoch": result.best_epoch,
                           "history": result.history, "scores": {}}
    if run["data"] == "emobank":
        out["scores"]["emobank"] = score(model, data.emobank, bs)
        out["scores"]["afftext_be5"] = score(model, data.afftext_be5, bs)
        out["scores"]["afftext_be6"] = score(model, data.afftext, bs)
    else:
        out["scores"]["afftext_be6"] = score(model, data.afftext, bs)
        out["scores"]["emobank"] = score(model, data.emobank, bs)
    return model, out


# ---------------------------------------------------------------------------------------------- probe, geometry
def probe_scores(embed, probe: dict[str, tuple[list[str], np.ndarray]], pairs: int, seed: int) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.preprocessing import StandardScaler

    (xtr_t, ytr), (xte_t, yte) = probe["train"], probe["test"]
    xtr, xte = embed(xtr_t), embed(xte_t)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(xtr), ytr)
    pred = clf.predict(scaler.transform(xte))
    p, r, f, _ = precision_recall_fscore_support(yte, pred, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(yte, pred)), "precision": float(p), "recall": float(r), "f1": float(f),
            **alignment_uniformity(xte, yte, pairs, seed)}


def alignment_uniformity(x: np.ndarray, y: np.ndarray, pairs: int, seed: int) -> dict[str, float]:
    """Wang & Isola on L2-normalised embeddings: alignment = E‖f(a) − f(b)‖² over same-emotion pairs,
    uniformity = log E exp(−2‖f(a) − f(b)‖²) over all pairs."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    rng = np.random.default_rng(seed)
    a_idx, b_idx = [], []
    classes = [np.flatnonzero(y == c) for c in np.unique(y) if (y == c).sum() > 1]
    weights = np.array([len(c) for c in classes], dtype=float)
    for c in rng.choice(len(classes), pairs, p=weights / weights.sum()):
        a, b = rng.choice(classes[c], 2, replace=False)
        a_idx.append(a)
        b_idx.append(b)
    align = float(np.mean(np.sum((x[a_idx] - x[b_idx]) ** 2, axis=1)))
    sq = np.clip(2.0 - 2.0 * x @ x.T, 0.0, None)[np.triu_indices(len(x), k=1)]
    return {"alignment": align, "uniformity": float(np.log(np.mean(np.exp(-2.0 * sq))))}


def model_embedder(model, size: dict[str, Any]):
    return lambda texts: model.encode(texts, batch_size=size["eval_batch_size"])


def fresh_model(codec: EmotionCodec, size: dict[str, Any]):
    """An untrained MiniLM model (encode speed does not depend on training)."""
    from emoembed.encoders.text import TextEncoder
    from emoembed.model import EmotionModel

    enc = TextEncoder.from_recipe({"max_length": size["max_length"]}, codec.dim)
    return EmotionModel(enc, copy.deepcopy(codec)).to(size["device"]).eval()


def raw_minilm_embed(size: dict[str, Any]):
    from emoembed.encoders.text import TextEncoder

    enc = TextEncoder.from_recipe({"max_length": size["max_length"]}, 8).to(size["device"]).eval()

    @torch.inference_mode()
    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), size["eval_batch_size"]):
            batch = {k: v.to(size["device"]) for k, v in enc.collate(texts[i:i + size["eval_batch_size"]]).items()}
            out.append(enc.forward_tokens(batch)["pooled"].float().cpu().numpy())
        return np.concatenate(out)

    return embed


# ---------------------------------------------------------------------------------------------- speed
def step_times(codec: EmotionCodec, data: Data, size: dict[str, Any], objective_cfg: dict | None, seed: int = 13) -> float:
    """Median seconds of a training step (forward, frozen-head loss, objective, backward, AdamW, EMA) at the
    benchmark's batch size and length, on the same EmoBank batches for every configuration."""
    from emoembed.encoders.text import TextEncoder

    device = torch.device(size["device"])
    torch.manual_seed(seed)
    enc = TextEncoder.from_recipe({"max_length": size["max_length"]}, codec.dim).to(device).train()
    obj = None
    params = list(enc.parameters())
    if objective_cfg is not None:
        cfg = {k: v for k, v in objective_cfg.items() if k != "name"}
        obj = objective_class("carl")(**cfg).to(device)
        obj.setup(enc)
        params += obj.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=1e-5)
    fmt = codec.formats["vad"]
    bs, n = size["batch_size"], size["speed_steps"] + 1
    texts, labels = data.emobank.items["train"], data.emobank.labels["train"]
    times = []
    for i in range(n):
        batch = {k: v.to(device) for k, v in enc.collate(texts[i * bs:(i + 1) * bs], train=True).items()}
        y = torch.as_tensor(labels[i * bs:(i + 1) * bs], device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            z = enc(batch)
            loss = format_loss(codec.decode("vad", z.float()), y, fmt)
            if obj is not None:
                ctx = StepContext(enc, enc, batch, z, "vad", y, codec,
                                  lambda f, _y=y: synthetic_labels(codec, fmt, _y, f), i, n, {})
                aux, _ = obj.loss(ctx)
                loss = loss + aux
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if obj is not None:
            obj.after_step(enc, i + 1, n)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def encode_vs_backbone(model, data: Data, size: dict[str, Any]) -> dict[str, float]:
    """Seconds for ``model.encode`` (tokenise, length-sort, forward, pool, project, return in order) and for the
    raw backbone forward on the same pre-tokenised length-sorted batches; best of two."""
    enc = model.encoder
    device = next(model.encoder.parameters()).device
    texts = data.emobank.items["test"][: size["speed_texts"]]
    bs = size["eval_batch_size"]
    order = np.argsort([enc.sort_key(t) for t in texts], kind="stable")
    batches = [{k: v.to(device) for k, v in enc.collate([texts[j] for j in order[i:i + bs]]).items()}
               for i in range(0, len(texts), bs)]

    def raw() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for b in batches:
                enc.backbone(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                             token_type_ids=b.get("token_type_ids"))
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    t_raw = timed(raw)
    t_enc = timed(lambda: model.encode(texts, batch_size=bs))
    return {"texts": len(texts), "encode_s": t_enc, "backbone_s": t_raw, "throughput_ratio": t_raw / t_enc}


# ---------------------------------------------------------------------------------------------- ε study
def epsilon_study(codec: EmotionCodec, data: Data, size: dict[str, Any], log) -> list[dict[str, Any]]:
    """PTD alone (no MCCL) for a few steps per ε setting: how much of the perturbation survives float rounding
    (share of changed components, applied ‖δ‖/‖e‖) and how well the detector separates perturbed from clean
    tokens (AUC over the last half of the steps)."""
    from emoembed.encoders.text import TextEncoder

    settings = [("paper: ε = 5e-9 absolute, α = 5", {"epsilon": 5e-9, "epsilon_mode": "absolute", "alpha": 5.0}),
                ("ε = 0.05·‖e‖ (relative)", {"epsilon": 0.05, "epsilon_mode": "relative"}),
                ("ε = 0.5·‖e‖ (relative)", {"epsilon": 0.5, "epsilon_mode": "relative"}),
                ("ε = 2·‖e‖ (relative)", {"epsilon": 2.0, "epsilon_mode": "relative"})]
    device = torch.device(size["device"])
    fmt = codec.formats["vad"]
    bs, n = size["batch_size"], size["study_steps"]
    texts, labels = data.emobank.items["train"], data.emobank.labels["train"]
    rows = []
    for label, cfg in settings:
        torch.manual_seed(13)
        enc = TextEncoder.from_recipe({"max_length": size["max_length"]}, codec.dim).to(device).train()
        obj = objective_class("carl")(mccl=False, **cfg).to(device)
        obj.setup(enc)
        opt = torch.optim.AdamW([*enc.parameters(), *obj.trainable_parameters()], lr=size["lr"])
        hist = []
        for i in range(n):
            batch = {k: v.to(device) for k, v in enc.collate(texts[i * bs:(i + 1) * bs], train=True).items()}
            y = torch.as_tensor(labels[i * bs:(i + 1) * bs], device=device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                z = enc(batch)
                loss = format_loss(codec.decode("vad", z.float()), y, fmt)
                aux, parts = obj.loss(StepContext(enc, enc, batch, z, "vad", y, codec, None, i, n, {}))
            (loss + aux).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            hist.append(parts)
        late = hist[n // 2:]
        row = {"setting": label, **{k: float(np.mean([h[k] for h in late])) for k in ("ptd", "ptd_auc", "ptd_changed", "ptd_delta_rel")}}
        log(f"  ε study: {row}")
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- table
def f3(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}".replace("0.", ".", 1) if abs(x) < 1 else f"{x:.3f}"


def build_table(results: dict[str, dict], probes: dict[str, dict]) -> str:
    head = ["model", "trained on", "EB V r/ρ/MAE", "EB A r/ρ/MAE", "EB D r/ρ/MAE", "EB mean r", "AT BE6 mean r",
            "ZS→AT be5", "ZS→AT be6", "ZS→EB vad", "GE acc", "GE P", "GE R", "GE F1", "align", "unif"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        s = res["scores"]
        eb, at6, at5 = s.get("emobank", {}), s.get("afftext_be6", {}), s.get("afftext_be5", {})
        eb_trained = res["data"] == "emobank"
        dims = []
        for v in ("valence", "arousal", "dominance"):
            m = eb.get("per_variable", {}).get(v)
            dims.append(f"{f3(m['r'])} / {f3(m['rho'])} / {f3(m['mae'])}" if (m and eb_trained) else "–")
        pr = probes.get(name, {})
        lines.append("| " + " | ".join([
            f"{name} ({res['label']})", res["data"] + (f" + aug {','.join(res['augment'])}" if res["augment"] else ""),
            *dims, f3(eb.get("mean_r")) if eb_trained else "–",
            "–" if eb_trained else f3(at6.get("mean_r")),
            f3(at5.get("mean_r")) if eb_trained else "–", f3(at6.get("mean_r")) if eb_trained else "–",
            "–" if eb_trained else f3(eb.get("mean_r")),
            f3(pr.get("accuracy")), f3(pr.get("precision")), f3(pr.get("recall")), f3(pr.get("f1")),
            f3(pr.get("alignment")), f3(pr.get("uniformity"))]) + " |")
    if "minilm-raw" in probes:
        pr = probes["minilm-raw"]
        lines.append("| MiniLM, no fine-tune (384-d pooled) | – | – | – | – | – | – | – | – | – | " + " | ".join(
            f3(pr[k]) for k in ("accuracy", "precision", "recall", "f1", "alignment", "uniformity")) + " |")
    lines.append("| *reference (Buechel & Hahn, BERT-base)* | | | | | *.625 (Bsl)* | *.747 (BE5)* | *AuZ .572* | | *AuZ .395* | | | | | | |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", required=True, help="codec directory (emoembed map); must know vad, be5, be6")
    ap.add_argument("--out", default="runs", help="where runs, results and tables go (full profile: one folder per run)")
    ap.add_argument("--gpu", action="store_true", help="the quick table at the GPU recipes' size, on CUDA")
    ap.add_argument("--quick", action="store_true", help="the former CPU size (1,440 EmoBank sentences per run; minutes)")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long pass through everything (no meaningful numbers)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (1 is faster on a busy 2-core machine)")
    ap.add_argument("--only", help="comma-separated run names (default: all)")
    ap.add_argument("--fresh", action="store_true", help="retrain runs already stored in --out")
    ap.add_argument("--epsilon-study", action="store_true", help="also compare PTD ε-ball settings")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed ratios")
    ap.add_argument("--carl", action="append", default=[], metavar="KEY=VALUE",
                    help="override a CARL objective constant of every CARL run (repeatable), e.g. lambda_mccl=0.005")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.quick or args.smoke or args.gpu):
        return run_full(args)
    size = dict(SIZES["gpu" if args.gpu else "smoke" if args.smoke else "quick"])
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu: no CUDA device")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    codec = EmotionCodec.from_pretrained(args.codec)
    missing = [f for f in NEEDED_FORMATS if f not in codec.formats]
    if missing:
        raise ConfigError(f"{args.codec}: the codec lacks format(s) {missing} (it knows {list(codec.formats)}); "
                          "train one with mappings/full.yaml")
    carl = parse_overrides(args.carl)
    data = Data(size)
    probe = data.ekman_probe()
    wanted = set(args.only.split(",")) if args.only else None
    results: dict[str, dict] = {}
    probes: dict[str, dict] = {}
    speed: dict[str, Any] = {}
    for run in RUNS:
        if wanted and run["name"] not in wanted:
            continue
        path = out / f"{run['name']}.json"
        if path.exists() and not args.fresh:
            stored = json.loads(path.read_text())
            results[run["name"]], probe_row = stored["result"], stored.get("probe")
            if probe_row:
                probes[run["name"]] = probe_row
            log(f"{run['name']}: reused {path}")
            continue
        log(f"{run['name']}: training")
        model, res = train_run(run, codec, data, size, log, carl)
        results[run["name"]] = res
        probe_row = None
        if run["data"] == "emobank":
            probe_row = probe_scores(model_embedder(model, size), probe, size["pairs"], 13)
            probes[run["name"]] = probe_row
        atomic_write_json({"result": res, "probe": probe_row}, path)
        log(f"{run['name']}: done in {res['train_seconds']}s; scores " + json.dumps(
            {k: round(v["mean_r"], 3) for k, v in res["scores"].items()}))
        del model
        gc.collect()
    raw_path = out / "minilm-raw.json"
    if raw_path.exists() and not args.fresh:
        probes["minilm-raw"] = json.loads(raw_path.read_text())
    elif not wanted or "minilm-raw" in wanted:
        probes["minilm-raw"] = probe_scores(raw_minilm_embed(size), probe, size["pairs"], 13)
        atomic_write_json(probes["minilm-raw"], raw_path)
    if not args.no_speed:
        speed["encode"] = encode_vs_backbone(fresh_model(codec, size), data, size)
        carl_cfg = run_recipe(RUNS[1], size, carl)["objective"]
        plain = step_times(codec, data, size, None)
        speed["plain_step_s"] = plain
        for name, over in (("carl", {}), ("carl_noptd", {"ptd": False}), ("carl_nomccl", {"mccl": False}),
                           ("carl_nomomentum", {"momentum": False})):
            t = step_times(codec, data, size, {**carl_cfg, **over})
            speed[f"{name}_step_s"], speed[f"{name}_ratio"] = t, t / plain
            log(f"speed: {name} step {t:.2f}s = {t / plain:.2f}× plain ({plain:.2f}s)")
    study = epsilon_study(codec, data, size, log) if args.epsilon_study else None

    table = build_table(results, probes)
    lines = [table, ""]
    if speed:
        lines.append(f"Speed ({'GPU' if args.gpu else f'CPU, {torch.get_num_threads()} thread(s)'}; batch {size['batch_size']}, "
                     f"{size['max_length']} tokens): plain step {speed['plain_step_s']:.2f}s; CARL step "
                     f"{speed['carl_ratio']:.2f}× (w/o PTD {speed['carl_noptd_ratio']:.2f}×, w/o MCCL "
                     f"{speed['carl_nomccl_ratio']:.2f}×, w/o momentum {speed['carl_nomomentum_ratio']:.2f}×) — goal ≤ 2.5×.")
        if "encode" in speed:
            e = speed["encode"]
            lines.append(f"encode(): {e['texts']} texts in {e['encode_s']:.2f}s vs raw backbone {e['backbone_s']:.2f}s on the "
                         f"same batches: throughput ratio {e['throughput_ratio']:.2f} — goal ≥ 0.9.")
    if study:
        lines += ["", "| PTD ε setting | components changed | applied ‖δ‖/‖e‖ | detector AUC | focal loss |", "|---|---|---|---|---|"]
        lines += [f"| {r['setting']} | {r['ptd_changed']:.0%} | {r['ptd_delta_rel']:.2g} | {r['ptd_auc']:.3f} | {r['ptd']:.4f} |"
                  for r in study]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(text + "\n", out / "table.md")
    atomic_write_json({"size": size, "codec": args.codec, "carl_overrides": carl, "results": results, "probes": probes, "speed": speed,
                       "epsilon_study": study, "seconds": time.perf_counter() - t_start}, out / "results.json")
    log(f"wrote {out / 'table.md'} and {out / 'results.json'}")
    return 0


# ---------------------------------------------------------------------------------------------- full profile
FULL_STAGE2: list[dict[str, Any]] = [
    {"name": "eb-default-s13", "label": "default recipe (+ aug be5)", "data": ["emobank"]},
    {"name": "at-default-s13", "label": "default recipe (+ aug vad)", "data": ["affectivetext:be6"], "augment": ["vad"]},
    {"name": "eb-carlinit-s13", "label": "default recipe from the CARL backbone", "data": ["emobank"],
     "backbone_from": "carl-pretrain-s13"},
    {"name": "multitask-s13", "label": "multitask (+ aug be5, vad)", "augment": ["be5", "vad"],
     "data": ["emobank", "affectivetext:be6", "goemotions:ekman7"], "training": {"max_train_items": {"goemotions": 8000}}},
    {"name": "eb-nogroup-s13", "label": "default recipe, random batches", "data": ["emobank"],
     "training": {"group_by_length": False}},
]
FULL_PRETRAIN: list[dict[str, Any]] = [
    {"name": "carl-pretrain-s13", "label": "CARL (seed 13)", "seed": 13},
    {"name": "carl-pretrain-s14", "label": "CARL (seed 14)", "seed": 14},
    {"name": "carl-pretrain-s15", "label": "CARL (seed 15)", "seed": 15},
    {"name": "carl-pretrain-eb-s13", "label": "CARL, EmoBank only", "seed": 13, "data": ["emobank"]},
    {"name": "carl-pretrain-noptd-s13", "label": "CARL w/o PTD", "seed": 13, "objective": {"ptd": False}},
    {"name": "carl-pretrain-nomccl-s13", "label": "CARL w/o MCCL", "seed": 13, "objective": {"mccl": False}},
]
ZERO_SHOT_SPECS = ("affectivetext:be5", "affectivetext:be6", "emobank:vad")
# the CARL paper (BERT-base, its Tables I, III, IV): V r/ρ/MAE, A r/ρ/MAE, acc (%), P, R, F1, align, unif
PAPER_PROBE = {"BERT (paper)": (.673, .665, .098, .582, .640, .106, 64.44, .660, .660, .648, .3633, -.7383),
               "CARL BERT (paper)": (.721, .714, .087, .629, .684, .101, 72.73, .719, .701, .705, .5027, -1.1224)}


def full_stage2_recipe(run: dict[str, Any], out: Path) -> dict[str, Any]:
    """The default text recipe with the run's data, augmentation, training overrides and backbone."""
    recipe = load_encoder_recipe(REPO / "encoders" / "text-minilm.yaml", "text")
    raw = {k: v for k, v in recipe.items() if k != "source"}
    raw["name"], raw["data"] = run["name"], list(run["data"])
    if "augment" in run:
        raw["augment"] = list(run["augment"])
    raw["training"] = {**raw["training"], **run.get("training", {})}
    if run.get("backbone_from"):
        raw["encoder"] = {**raw["encoder"], "backbone": str(out / run["backbone_from"] / "backbone")}
    return resolve_encoder_recipe(raw, f"benchmark:{run['name']}")


def full_pretrain_recipe(run: dict[str, Any]) -> dict[str, Any]:
    recipe = load_encoder_recipe(REPO / "encoders" / "text-minilm-carl-pretrain.yaml", "text")
    raw = {k: v for k, v in recipe.items() if k != "source"}
    raw["name"], raw["seed"] = run["name"], run["seed"]
    if "data" in run:
        raw["data"] = list(run["data"])
    raw["objective"] = {**raw["objective"], **run.get("objective", {})}
    return resolve_encoder_recipe(raw, f"benchmark:{run['name']}")


def zero_shot_scores(run_dir: Path) -> dict[str, Any]:
    """Test scores of a saved model on every ZERO_SHOT_SPECS dataset (cached in RUN/zero_shot.json)."""
    from emoembed.data.registry import default_data_registry
    from emoembed.model import EmotionModel

    cache = run_dir / "zero_shot.json"
    if cache.exists():
        return json.loads(cache.read_text())
    model = EmotionModel.from_pretrained(run_dir)
    reg = default_data_registry()
    out = {}
    for spec in ZERO_SHOT_SPECS:
        name, fmt = spec.split(":")
        out[spec] = model.evaluate(task_from_dataset(reg.dataset(name), fmt, model.formats), "test", batch_size=128)
    atomic_write_json(out, cache)
    return out


def probe_of(source: str, path: Path, log, max_ekman_train: int = 8000) -> dict[str, Any]:
    from emoembed.probe import load_probe_data, run_probes, text_embedder

    if path.exists():
        return json.loads(path.read_text())
    log(f"probe {source}")
    res = run_probes(text_embedder(source), load_probe_data(max_ekman_train=max_ekman_train), log)
    res["source"] = source
    atomic_write_json(res, path)
    return res


def grouped_step_times(codec: EmotionCodec, steps: int = 12, batch_size: int = 32, max_length: int = 96,
                       seed: int = 13) -> dict[str, Any]:
    """Seconds per training step (forward, loss, backward, AdamW) of the default recipe's encoder on EmoBank batches
    drawn with and without length grouping, alternating in one process; and the padded tokens per epoch of each."""
    from emoembed.batching import length_grouped_batches, padded_tokens, shuffled_batches
    from emoembed.encoders.text import TextEncoder

    reg = default_data_registry()
    task = task_from_dataset(reg.dataset("emobank"), "vad")
    torch.manual_seed(seed)
    enc = TextEncoder.from_recipe({"max_length": max_length}, codec.dim).train()
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-6)
    texts, labels = task.items["train"], task.labels["train"]
    lengths = np.minimum(enc.token_lengths(texts), enc.max_length).astype(float)
    idx = np.arange(len(texts))
    orders = {"grouped": length_grouped_batches(idx, lengths, batch_size, np.random.default_rng(seed)),
              "random": shuffled_batches(idx, batch_size, np.random.default_rng(seed))}
    times: dict[str, list[float]] = {k: [] for k in orders}
    for i in range(steps):
        for kind, batches in orders.items():
            b = batches[i]
            batch = enc.collate([texts[j] for j in b], train=True)
            y = torch.as_tensor(labels[b])
            t0 = time.perf_counter()
            loss = format_loss(codec.decode("vad", enc(batch).float()), y, codec.formats["vad"])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times[kind].append(time.perf_counter() - t0)
    out = {"steps": steps, "batch_size": batch_size, "max_length": max_length, "threads": torch.get_num_threads()}
    for kind, batches in orders.items():
        out[f"{kind}_step_s"] = statistics.mean(times[kind])
        out[f"{kind}_padded_tokens_per_epoch"] = padded_tokens(batches, lengths)
    out["real_tokens_per_epoch"] = int(lengths.sum())
    out["step_time_ratio"] = out["grouped_step_s"] / out["random_step_s"]
    return out


def _mean_sd(values: list[float]) -> str:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f3(vals[0])
    return f"{f3(statistics.mean(vals))} ± {statistics.stdev(vals):.3f}"


def probe_row(label: str, probes: list[dict[str, Any]]) -> str:
    def col(fn) -> str:
        return _mean_sd([fn(p) for p in probes])

    cols = [col(lambda p, v=v, m=m: p["va"][v][m]) for v in ("valence", "arousal") for m in ("r", "rho", "mae")]
    accs = [100 * p["ekman"]["accuracy"] for p in probes]
    cols += [f"{statistics.mean(accs):.2f}" + (f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else "")]
    cols += [col(lambda p, m=m: p["ekman"][m]) for m in ("precision", "recall", "f1")]
    cols += [col(lambda p: p["geometry"]["alignment"]), col(lambda p: p["geometry"]["uniformity"])]
    n = f" (n = {len(probes)})" if len(probes) > 1 else ""
    return f"| {label}{n} | " + " | ".join(cols) + " |"


def full_tables(out: Path, stage2: dict[str, dict], probes: dict[str, dict], speed: dict | None) -> str:
    lines = ["### Stage 2 at full size", "",
             "| run | trained on | EB V r/ρ/MAE | EB A r/ρ/MAE | EB D r/ρ/MAE | EB mean r | AT be6 mean r | ZS→AT be5 | "
             "ZS→AT be6 | ZS→EB vad | best epoch | train min |", "|" + "---|" * 12]
    for name, r in stage2.items():
        m, zs = r["metrics"], r["zero_shot"]
        eb = zs.get("emobank:vad", {})
        trained = [t for t in m["test"]]
        dims = []
        for v in ("valence", "arousal", "dominance"):
            pv = eb.get("per_variable", {}).get(v, {})
            dims.append(f"{f3(pv.get('pearson'))} / {f3(pv.get('spearman'))} / {f3(pv.get('mae'))}" if pv else "–")
        def z(spec: str) -> str:
            row = zs.get(spec, {})
            return (f3(row.get("primary")) + ("" if row.get("zero_shot") else " (trained)")) if row else "–"
        lines.append(f"| {name} ({r['label']}) | {', '.join(trained)} | " + " | ".join(dims) + f" | {f3(eb.get('primary'))} | "
                     f"{f3(zs.get('affectivetext:be6', {}).get('primary'))} | {z('affectivetext:be5')} | {z('affectivetext:be6')} | "
                     f"{z('emobank:vad')} | {m['best_epoch']} | {m['train_seconds'] / 60:.1f} |")
    lines.append("| *reference (Buechel & Hahn, BERT-base)* | | | | | *.625* | *.747 (BE5)* | *AuZ .572* | | *AuZ .395* | | |")
    lines += ["", "### Linear probes on frozen embeddings (the CARL paper's Tables I, III, IV, V)", "",
              "| model | V r | V ρ | V MAE | A r | A ρ | A MAE | Ekman acc % | P | R | F1 | align | unif |", "|" + "---|" * 13]
    for label, vals in PAPER_PROBE.items():
        lines.append(f"| *{label}* | " + " | ".join(f"*{v:.3f}*" if i != 6 else f"*{v:.2f}*" for i, v in enumerate(vals)) + " |")
    if "probe-minilm-base" in probes:
        lines.append(probe_row("MiniLM, untouched (base)", [probes["probe-minilm-base"]]))
    seeds = [probes[f"probe-carl-pretrain-s{s}"] for s in (13, 14, 15) if f"probe-carl-pretrain-s{s}" in probes]
    if seeds:
        lines.append(probe_row("CARL MiniLM (EmoBank + codec-labelled)", seeds))
    for run in FULL_PRETRAIN[3:]:
        key = f"probe-{run['name']}"
        if key in probes:
            lines.append(probe_row(run["label"], [probes[key]]))
    if speed:
        lines += ["", f"Length-grouped vs random batches (EmoBank, batch {speed['batch_size']}, {speed['max_length']} tokens, "
                  f"{speed['threads']} thread(s), {speed['steps']} steps each, alternating): "
                  f"{speed['grouped_step_s']:.2f} s vs {speed['random_step_s']:.2f} s per step "
                  f"(×{speed['step_time_ratio']:.2f}); padded tokens per epoch {speed['grouped_padded_tokens_per_epoch']:,} vs "
                  f"{speed['random_padded_tokens_per_epoch']:,} (real tokens {speed['real_tokens_per_epoch']:,})."]
    return "\n".join(lines)


def run_full(args) -> int:
    """The full-size CPU profile: pre-training, stage 2, probes, speed — each cached under ``--out``."""
    from emoembed.data.registry import default_data_registry
    from emoembed.training.encoder import run_fit_encoder
    from emoembed.training.pretrain import run_pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    codec_dir = Path(args.codec)
    codec = EmotionCodec.from_pretrained(codec_dir)
    missing = [f for f in NEEDED_FORMATS if f not in codec.formats]
    if missing:
        raise ConfigError(f"{codec_dir}: the codec lacks format(s) {missing}; train one with mappings/full.yaml")
    wanted = set(args.only.split(",")) if args.only else None
    reg = default_data_registry()
    probes: dict[str, dict] = {}
    stage2: dict[str, dict] = {}
    probes["probe-minilm-base"] = probe_of("packaged:all-MiniLM-L6-v2", out / "probe-minilm-base.json", log) \
        if not wanted or "probe-minilm-base" in wanted or (out / "probe-minilm-base.json").exists() else None
    for run in FULL_PRETRAIN:
        rdir = out / run["name"]
        if (wanted and run["name"] not in wanted) and not (rdir / "metrics.json").exists():
            continue
        if not (rdir / "metrics.json").exists():
            log(f"{run['name']}: pre-training")
            run_pretrain(full_pretrain_recipe(run), codec_dir, reg, rdir, resume=True, progress=False, log=log)
        probes[f"probe-{run['name']}"] = probe_of(str(rdir / "backbone"), out / f"probe-{run['name']}.json", log)
    for run in FULL_STAGE2:
        rdir = out / run["name"]
        if (wanted and run["name"] not in wanted) and not (rdir / "metrics.json").exists():
            continue
        if run.get("backbone_from") and not (out / run["backbone_from"] / "backbone").exists():
            log(f"{run['name']}: skipped, {run['backbone_from']} has not been pre-trained")
            continue
        if not (rdir / "metrics.json").exists():
            log(f"{run['name']}: training")
            run_fit_encoder(full_stage2_recipe(run, out), codec_dir, reg, rdir, resume=True, progress=False, log=log)
        stage2[run["name"]] = {"label": run["label"], "metrics": json.loads((rdir / "metrics.json").read_text()),
                               "zero_shot": zero_shot_scores(rdir)}
    speed = None
    if not args.no_speed:
        spath = out / "length-grouping-speed.json"
        speed = json.loads(spath.read_text()) if spath.exists() else grouped_step_times(codec)
        atomic_write_json(speed, spath)
    text = full_tables(out, stage2, {k: v for k, v in probes.items() if v}, speed)
    print(text)
    atomic_write_text(text + "\n", out / "text-full-tables.md")
    log(f"wrote {out / 'text-full-tables.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

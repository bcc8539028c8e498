"""Benchmark: is EmoBank's ceiling the recipe or the backbone? Prediction ensembles and a uniform weight soup of
text models fine-tuned from the same MiniLM into the same codec (docs/text.md, "Ensembles and weight averaging").

    EMOEMBED_DATA=../shared/data python benchmarks/text_ensemble.py RUN [RUN ...] [--zero-shot affectivetext:be5]

Per model and for the mean of their predictions: EmoBank dev and test mean Pearson r (V/A/D). Then the uniform soup
(Wortsman et al. 2022, "Model soups"): the element-wise mean of the runs' weights — valid only for runs from one
start and one codec, which is checked (their frozen codec tensors must be equal) — scored the same way.
``--zero-shot SPEC``: also the test score of each model and of the prediction mean on that dataset spec (e.g.
``affectivetext:be5`` for EmoBank-trained runs). One torch thread.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from emoembed.data.registry import default_data_registry
from emoembed.errors import ConfigError
from emoembed.metrics import pearson
from emoembed.model import EmotionModel
from emoembed.tasks import build_tasks


def mean_r(pred: np.ndarray, gold: np.ndarray) -> tuple[float, list[float]]:
    rs = [pearson(pred[:, j], gold[:, j]) for j in range(gold.shape[1])]
    return float(np.mean(rs)), rs


def soup(runs: list[str]) -> EmotionModel:
    """The first run's model with every floating tensor replaced by the mean over ``runs``."""
    model = EmotionModel.from_pretrained(runs[0])
    states = [load_file(str(Path(r) / "model.safetensors")) for r in runs]
    for k in (k for k in states[0] if k.startswith("codec.")):
        if any(not torch.equal(states[0][k], s[k]) for s in states[1:]):
            raise ConfigError(f"the runs sit on different codecs ({k} differs): a weight soup needs one codec")
    own = model.state_dict()
    avg = {k: (sum(s[k].float() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
           for k, v in own.items()}
    model.load_state_dict(avg)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="fit-encoder run directories (text models)")
    ap.add_argument("--zero-shot", default=None, help="a dataset spec scored on test too, e.g. affectivetext:be5")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = default_data_registry()
    task = build_tasks(data, "emobank")[0]
    zs = build_tasks(data, args.zero_shot)[0] if args.zero_shot else None
    preds: dict[str, list[np.ndarray]] = {"dev": [], "test": [], "zs": []}
    out: dict = {"runs": {}}

    def score(model: EmotionModel) -> dict:
        row = {}
        for split in ("dev", "test"):
            p = np.asarray(model.predict(task.items[split], "vad"), dtype=float)
            preds[split].append(p)
            row[split] = mean_r(p, np.asarray(task.labels[split], dtype=float))
        if zs is not None:
            p = np.asarray(model.predict(zs.items["test"], zs.fmt.name), dtype=float)
            preds["zs"].append(p)
            row["zero_shot"] = mean_r(p, np.asarray(zs.labels["test"], dtype=float))
        return row

    for r in args.runs:
        out["runs"][r] = score(EmotionModel.from_pretrained(r))
    out["ensemble"] = {s: mean_r(np.mean(preds[s], 0), np.asarray(task.labels[s], dtype=float)) for s in ("dev", "test")}
    if zs is not None:
        out["ensemble"]["zero_shot"] = mean_r(np.mean(preds["zs"], 0), np.asarray(zs.labels["test"], dtype=float))
    for key in preds:
        preds[key] = []
    out["soup"] = score(soup(args.runs))
    print("| model | EmoBank dev r | EmoBank test r (V / A / D) |" + (f" {args.zero_shot} test r |" if zs else ""))
    print("|---|---|---|" + ("---|" if zs else ""))
    for name, row in [*out["runs"].items(), ("prediction mean", out["ensemble"]), ("uniform weight soup", out["soup"])]:
        t = row["test"]
        print(f"| {name} | {row['dev'][0]:.3f} | {t[0]:.3f} ({' / '.join(f'{x:.3f}' for x in t[1])}) |"
              + (f" {row['zero_shot'][0]:.3f} |" if zs else ""))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark: word encoders into the emotion space — supervised Warriner VAD and zero-shot into formats the
encoder never saw (EmoLex nrc10, EmoMap silver BE5, Binder BE6), beside the baselines.

    EMOEMBED_DATA=../shared/data python benchmarks/words.py --codec runs/map-full [--out runs/bench-words]

Rows (the reference's experiment classes):
  Bsl  direct regression: vectors → MLP → VAD, no codec (``heads: direct``)
  Sng  the encoder into the frozen codec's VAD head
  Aug  Sng + label augmentation (codec-made be5 / be6 / nrc10 targets)
  BsZ  zero-shot pipeline baseline: the Bsl VAD model, then the pairwise FFN mapper VAD→target
  AugH Aug with hard synthetic labels (argmax / p > .5) instead of soft ones
  SnZ / AuZ / AuZH  zero-shot: the Sng / Aug / AugH encoder through the target format's frozen head
Every test set is restricted to the words the vectors cover (coverage printed); the zero-shot sets use all of
their words that are not among Warriner's train/dev words (so the encoder never saw them). Wall times are measured in the
same run. Without --codec a codec is trained on the full recipe first (several minutes).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from emoembed.codec import EmotionCodec
from emoembed.data.registry import default_data_registry
from emoembed.recipes import load_codec_recipe
from emoembed.training.codec import run_map
from emoembed.model import EmotionModel
from emoembed.suite import covered, pipeline_score
from emoembed.recipes import load_encoder_recipe
from emoembed.tasks import build_tasks
from emoembed.training.encoder import fit

ZERO_SHOT = [  # (dataset card, format, pair card of the pipeline mapper, which reads Bsl's VAD by variable name)
    ("emolex", "nrc10", "warriner_emolex"),
    ("emomap_warriner_be5", "be5", "warriner_emomap"),
    ("norare_binder", "be6", "binder"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", help="codec directory (default: train mappings/full.yaml into OUT/codec)")
    ap.add_argument("--recipe", default="word-glove50", help="word encoder recipe: a file or a name in encoders/ "
                    "(default: word-glove50, the reference FFN on GloVe 6B 50-d; the numbers in docs/encoders.md)")
    ap.add_argument("--out", default="runs/bench-words")
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (quick runs)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny MLPs run fastest on one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = default_data_registry()
    codec_dir = Path(args.codec) if args.codec else out / "codec"
    if not (codec_dir / "model.safetensors").exists():
        print(f"training the full-recipe codec into {codec_dir} …", file=sys.stderr)
        run_map(load_codec_recipe(Path(__file__).resolve().parents[1] / "mappings" / "full.yaml"), codec_dir, data, progress=False)
    codec = EmotionCodec.from_pretrained(codec_dir)
    base = load_encoder_recipe(args.recipe, "word")
    if args.epochs:
        base["training"]["epochs"] = args.epochs
    seed = int(base["seed"])
    targets = [(d, f, p) for d, f, p in ZERO_SHOT if f in codec.formats and data.is_present(d) and data.is_present(p)]
    augment = [f for _d, f, *_ in targets]

    def train(name: str, **over) -> tuple[EmotionModel, float]:
        r = copy.deepcopy(base)
        r.update({k: v for k, v in over.items()})
        r["name"] = name
        tasks = build_tasks(data, ["warriner"], list(codec.formats), "word")
        t0 = time.perf_counter()
        res = fit(r, codec, tasks, state_dir=None, progress=False, log=lambda m: print(f"  [{name}] {m}", file=sys.stderr))
        secs = time.perf_counter() - t0
        model = EmotionModel.from_training(res, codec, tasks, r)
        model.save_pretrained(out / name)
        return model, secs

    bsl, t_bsl = train("Bsl", heads="direct")
    sng, t_sng = train("Sng")
    aug, t_aug = train("Aug", augment=augment)
    augh, _ = train("AugH", augment=augment, augment_targets="hard")
    warriner = build_tasks(data, ["warriner"], list(codec.formats), "word")[0]
    seen = {w.lower() for s in ("train", "dev") for w in warriner.items[s]}  # zero-shot sets: only unseen words
    rows = []
    wt, cov = covered(warriner, sng, ("test",))
    per = {}
    for name, model in (("Bsl", bsl), ("Sng", sng), ("Aug", aug), ("AugH", augh)):
        r = model.evaluate(wt, "test")
        per[name] = r
    rows.append(("warriner (VAD, supervised)", len(wt.items["test"]), cov, "pearson",
                 {k: v["primary"] for k, v in per.items()},
                 {k: " ".join(f"{m['pearson']:.3f}" for m in v["per_variable"].values()) for k, v in per.items()}))
    cfg = load_codec_recipe(None)["baseline"]
    for ds, fmt, pair_name in targets:
        task = build_tasks(data, [f"{ds}:{fmt}"], list(codec.formats), "word")[0]
        t, cov = covered(task, sng, ("train", "dev", "test"), seen)  # zero-shot: only unseen words
        scores = {"BsZ": pipeline_score(bsl, data.pair(pair_name), t, seed, cfg),
                  "SnZ": sng.evaluate(t, "test")["primary"], "AuZ": aug.evaluate(t, "test")["primary"],
                  "AuZH": augh.evaluate(t, "test")["primary"]}
        rows.append((f"{ds} ({fmt}, zero-shot)", len(t.items["test"]), cov, t.fmt.metric, scores, {}))
    cols = ["Bsl", "Sng", "Aug", "AugH", "BsZ", "SnZ", "AuZ", "AuZH"]
    lines = ["| test set | n | coverage | metric | " + " | ".join(cols) + " |", "|---|---|---|---|" + "---|" * len(cols)]
    for name, n, cov, metric, scores, _ in rows:
        lines.append(f"| {name} | {n} | {cov:.1%} | {metric} | " + " | ".join(f"{scores[c]:.3f}" if c in scores else "" for c in cols) + " |")
    table = "\n".join(lines)
    print(table)
    vad = rows[0][5]
    print(f"\nWarriner test per variable (V A D): Bsl {vad['Bsl']}, Sng {vad['Sng']}, Aug {vad['Aug']}, AugH {vad['AugH']} "
          "(fastText-300d reference: .87 .68 .76)")
    print(f"training wall time on {args.threads} threads: Bsl {t_bsl:.1f}s, Sng {t_sng:.1f}s, Aug {t_aug:.1f}s "
          f"(augmentation costs {t_aug / t_sng:.2f}x)")
    (out / "benchmark.md").write_text(table + "\n", encoding="utf-8")
    (out / "benchmark.json").write_text(json.dumps({"rows": rows, "seconds": {"Bsl": t_bsl, "Sng": t_sng, "Aug": t_aug}},
                                                   indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()

"""Why a codec-routed image encoder reads FER+ (ferplus8) zero-shot worse than the pipeline, and what fixes it.

    EMOEMBED_DATA=../shared/data python benchmarks/ferplus_zero_shot.py --codec runs/map-full [--out runs/ferplus-zs.json]

All variants train only the projection on the same frozen EfficientNet-Lite0 features (112 px, all of FER2013
train, grey; computed once and cached, see ``emoembed.encoders.feature_cache``). First the oracle: FER+ accuracy
from the gold fer7 labels through the codec's fer7 → ferplus8 conversion and through the pipeline's mapper, and
the share of the ferplus8 head's weight outside the fer7 head's row space. Then the variants, each trained
through the codec's frozen fer7 head for 20 epochs of AdamW 1e-3 (``benchmarks/images.py``'s frozen profile). For each it reports FER2013 test
accuracy, FER+ majority accuracy read through the ferplus8 head (zero-shot), the same encoder read through the
codec's relay (its fer7 probabilities encoded as labels by the codec, decoded as ferplus8), and the geometry: the
mean norm of the part of z that the fer7 head cannot see (the orthogonal complement of its rows) next to the
same part of the codec's label embeddings of the gold fer7 labels, and the share of the ferplus8 logits' variance
that comes from there. Variants: ``sng``; ``aug_vad`` (+ codec-made vad labels, the benchmark's Aug);
``sng_zero_init`` (projection initialised at zero); ``aug_vad_ferplus8`` (+ codec-made vad and ferplus8 labels);
``sng_agreement1`` (+ the agreement loss, z ≈ the codec's embedding of the gold label, weight 1).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images as bench  # noqa: E402  (benchmarks/images.py: the recipe and helpers)

from emoembed.codec import EmotionCodec  # noqa: E402
from emoembed.data.registry import default_data_registry  # noqa: E402
from emoembed.encoders.image import ImageEncoder  # noqa: E402
from emoembed.inference import embed_items  # noqa: E402
from emoembed.metrics import evaluate_format  # noqa: E402
from emoembed.tasks import task_from_dataset  # noqa: E402
from emoembed.training.encoder import fit  # noqa: E402

VARIANTS = {"sng": {}, "aug_vad": {"augment": ["vad"]}, "sng_zero_init": {"zero_init": True},
            "aug_vad_ferplus8": {"augment": ["vad", "ferplus8"]}, "sng_agreement1": {"agreement": 1.0}}


def oracle(codec: EmotionCodec, reg, seed: int) -> dict:
    """FER+ majority accuracy from the gold fer7 labels of the FER2013 × FER+ test faces: the codec's own
    fer7 → ferplus8 conversion and the pipeline's mapper (trained on the gold pair, as in benchmarks/images.py)."""
    pair = reg.pair("fer2013_ferplus")
    test = pair.split == "test"
    x = torch.as_tensor(pair.labels_a[test], dtype=torch.float32)
    gold = pair.labels_b[test]
    fp = codec.formats["ferplus8"]
    with torch.no_grad():
        relay = bench.decode(codec, fp, codec.encode_labels("fer7", x), torch.device("cpu"))
    mapper, _ = bench.train_baseline_direction(pair, False, bench.load_codec_recipe(bench.ROOT / "mappings" / "full.yaml")["baseline"], seed)
    pipe = bench.map_with(mapper, x.numpy(), fp)
    return {"codec": evaluate_format(relay, gold, fp)["accuracy"], "pipeline_mapper": evaluate_format(pipe, gold, fp)["accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", default="runs/map-full")
    ap.add_argument("--out", default="runs/ferplus-zero-shot.json")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    torch.set_num_threads(1)
    codec = EmotionCodec.from_pretrained(args.codec).eval()
    reg = default_data_registry()
    fer = task_from_dataset(reg.dataset("fer2013_fer7"), "fer7")
    plus = reg.dataset("fer2013").split("test")
    pos = {c: i for i, c in enumerate(fer.items["test"])}
    pidx = np.array([pos[c] for c in plus.content])
    pgold = plus.labels("ferplus8")
    fm = codec.formats
    # benchmarks/images.py's frozen profile (112 px, cached features, AdamW 1e-3, batch 256, StepLR 15), args.epochs
    profile = bench.parse_args(["--profile", "frozen", "--epochs", str(args.epochs), "--agreement", "0", "--device", "cpu",
                                "--seed", str(args.seed)])
    basis, _ = torch.linalg.qr(codec.heads["fer7"].weight.detach().T)  # orthonormal basis of the fer7 head's rows
    h8 = codec.heads["ferplus8"].weight.detach()
    cpu = torch.device("cpu")
    results: dict = {"oracle": oracle(codec, reg, args.seed),
                     "ferplus8_head_weight_outside_fer7_rows": float(1 - ((h8 @ basis).norm() ** 2 / h8.norm() ** 2))}
    print("oracle", json.dumps(results), flush=True)
    for name in [v for v in args.variants.split(",") if v]:
        kw = VARIANTS[name]
        recipe = bench.condition_recipe(profile, "sng")
        recipe["augment"] = list(kw.get("augment", []))
        recipe["loss_weights"]["agreement"] = kw.get("agreement", 0.0)
        torch.manual_seed(args.seed)
        enc = ImageEncoder.from_recipe(recipe["encoder"], codec.dim)
        if kw.get("zero_init"):
            torch.nn.init.zeros_(enc.proj.weight)
            torch.nn.init.zeros_(enc.proj.bias)
        t0 = time.time()
        res = fit(recipe, codec, [fer], progress=False, log=lambda m: None, encoder=enc)
        z, _ = embed_items(res.encoder, fer.items["test"], 512, cpu)
        p7 = bench.decode(codec, fm["fer7"], z, cpu)
        p8 = bench.decode(codec, fm["ferplus8"], z[pidx], cpu)
        with torch.no_grad():
            relay = bench.decode(codec, fm["ferplus8"], codec.encode_labels("fer7", torch.as_tensor(p7[pidx])), cpu)
            e_gold = codec.encode_labels("fer7", torch.as_tensor(fer.labels["test"]))
            z_blind = z - (z @ basis) @ basis.T
            e_blind = e_gold - (e_gold @ basis) @ basis.T
            share = float((z_blind[pidx] @ h8.T).var(0).sum() / (z[pidx] @ h8.T).var(0).sum())
        head = evaluate_format(p8, pgold, fm["ferplus8"])
        results[name] = {
            "fer7_acc": evaluate_format(p7, fer.labels["test"], fm["fer7"])["accuracy"],
            "ferplus_head_acc": head["accuracy"], "ferplus_head_r": head["pearson"],
            "ferplus_relay_acc": evaluate_format(relay, pgold, fm["ferplus8"])["accuracy"],
            "ferplus8_logit_var_from_fer7_blind_dirs": share, "z_norm": float(z.norm(dim=1).mean()),
            "label_emb_norm": float(e_gold.norm(dim=1).mean()), "z_blind_norm": float(z_blind.norm(dim=1).mean()),
            "label_emb_blind_norm": float(e_blind.norm(dim=1).mean()), "best_epoch": res.best_epoch,
            "seconds": round(time.time() - t0)}
        print(name, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results[name].items()}), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

"""Benchmark: how many labels the zero-shot decision rule gives per item, against the format's gold label
cardinality (docs/codec.md, "Calibrated multilabel decisions").

    EMOEMBED_DATA=../shared/data python benchmarks/zero_shot_cardinality.py [--text-items 1000]

Rows, each under the rule before (classes ≥ .5 × the top one, capped at the fitted ``max_labels``) and after (capped
at the gold cardinality, :func:`emoembed.calibration.zero_shot_max_labels`):

* ``emoembed/words-minilm`` on Warriner's 1,032 test words → goemotions28 and ekman7 (zero-shot: a VAD/BE5 model);
* ``emoembed/codec-full``: Warriner's test VAD ratings → goemotions28 and ekman7 (zero-shot across the islands);
* ``emoembed/text-minilm`` on GoEmotions test comments → goemotions28 (partly zero-shot: trained on Ekman's seven
  classes), with macro-F1 against the gold labels (a seeded subsample of ``--text-items`` comments; 0 = all 5,427).

The gold cardinality is the calibration's ``dev_mean_labels`` (mean gold labels per dev item of the format's paired
data), saved with every codec; nothing here is tuned on a test split.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from emoembed.calibration import decide, zero_shot_max_labels
from emoembed.codec import EmotionCodec
from emoembed.data.registry import default_data_registry
from emoembed.metrics import f1_binary
from emoembed.model import EmotionModel
from emoembed.tasks import task_from_dataset


def before_rule(rule: dict) -> dict:
    """The rule as the zero-shot decision read it before the cardinality cap: capped at ``max_labels`` only."""
    return {k: v for k, v in rule.items() if k != "dev_mean_labels"}


def counts(probs: np.ndarray, fmt, rule: dict) -> tuple[float, float]:
    return (float(decide(probs, fmt, before_rule(rule), zero_shot=True).sum(1).mean()),
            float(decide(probs, fmt, rule, zero_shot=True).sum(1).mean()))


def model_probs(model: EmotionModel, items, fmt: str) -> np.ndarray:
    out = model.predict(items, fmt, batch_size=256)
    return out[list(model.format(fmt).variables)].to_numpy(dtype=np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text-items", type=int, default=1000, help="GoEmotions test comments for the text model (0 = all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    reg = default_data_registry()
    print("| source | items | target | gold labels/item | labels/item before → after | macro-F1 before → after |")
    print("|---|---|---|---|---|---|")
    words = EmotionModel.from_pretrained("emoembed/words-minilm")
    test = task_from_dataset(reg.dataset("warriner"), "vad", words.formats)
    for fmt in ("goemotions28", "ekman7"):
        assert words._uses_zero_shot_rule(fmt)
        rule = words.codec.calibration[fmt]
        b, a = counts(model_probs(words, test.items["test"], fmt), words.format(fmt), rule)
        print(f"| words-minilm, Warriner test words | {len(test.items['test'])} | {fmt} | {rule['dev_mean_labels']:.2f} "
              f"| {b:.2f} → {a:.2f} (cap {zero_shot_max_labels(rule, words.format(fmt))}) | no gold |")
    codec = EmotionCodec.from_pretrained("emoembed/codec-full").eval()
    vad = test.labels["test"]
    for fmt in ("goemotions28", "ekman7"):
        rule = codec.calibration[fmt]
        probs = codec.convert(vad, "vad", fmt)[list(codec.formats[fmt].variables)].to_numpy(dtype=np.float64)
        b, a = counts(probs, codec.formats[fmt], rule)
        print(f"| codec-full, Warriner test VAD | {len(vad)} | {fmt} | {rule['dev_mean_labels']:.2f} | {b:.2f} → {a:.2f} | no gold |")
    text = EmotionModel.from_pretrained("emoembed/text-minilm")
    goemo = task_from_dataset(reg.dataset("goemotions"), "goemotions28", text.formats)
    items, gold = goemo.items["test"], goemo.labels["test"] > 0.5
    if args.text_items and args.text_items < len(items):
        pick = np.sort(np.random.default_rng(0).choice(len(items), args.text_items, replace=False))
        items, gold = [items[i] for i in pick], gold[pick]
    fmt = text.format("goemotions28")
    assert text._uses_zero_shot_rule("goemotions28")
    rule = text.codec.calibration["goemotions28"]
    probs = model_probs(text, items, "goemotions28")
    present = [j for j in range(fmt.size) if gold[:, j].any()]

    def macro(on: np.ndarray) -> float:
        return float(np.mean([f1_binary(on[:, j], gold[:, j]) for j in present]))

    before = decide(probs, fmt, before_rule(rule), zero_shot=True)
    after = decide(probs, fmt, rule, zero_shot=True)
    print(f"| text-minilm, GoEmotions test comments | {len(items)} | goemotions28 | {gold.sum(1).mean():.2f} | "
          f"{before.sum(1).mean():.2f} → {after.sum(1).mean():.2f} | {macro(before):.3f} → {macro(after):.3f} |")


if __name__ == "__main__":
    main()

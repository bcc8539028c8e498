"""Benchmark: how codecs read formats across the islands of their pair graph (docs/codec.md, "Islands and anchors").

    EMOEMBED_DATA=../shared/data python benchmarks/codec_islands.py CODEC [CODEC ...]

CODEC is a run directory or a packaged name (``emoembed/codec-full``). Prints one Markdown table with a column per
codec: FER and Ekman one-hot labels decoded as BE5 (raw values, before clipping), Warriner's test VAD read as
GoEmotions and Ekman (classes above .5 and calibrated labels per word), the ``tests/cases/vad4.csv`` rows read as
GoEmotions; then the calibration report of the last codec on every class direction of the full recipe's pairs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emoembed.calibration import calibration_report, decide, report_table
from emoembed.codec import EmotionCodec
from emoembed.data.registry import default_data_registry

VAD4 = Path(__file__).resolve().parents[1] / "tests" / "cases" / "vad4.csv"
EMOTIONS = {"fer7": ["happy", "angry", "sad", "fear", "disgust"], "ekman7": ["joy", "anger", "sadness", "fear", "disgust"]}
CLASS_PAIRS = ("warriner_emolex", "vader_emolex", "afinn_emolex", "goemotions_ekman", "goemotions_sentiment", "fer2013_ferplus")


@torch.no_grad()
def raw_outputs(codec: EmotionCodec, source: str, labels: np.ndarray, target: str) -> np.ndarray:
    return codec.decode(target, codec.encode_labels(source, torch.as_tensor(labels, dtype=torch.float32), None)).numpy()


def island_rows(codec: EmotionCodec, data) -> dict[str, str]:
    row: dict[str, str] = {}
    for src, names in EMOTIONS.items():
        fmt = codec.formats[src]
        onehot = np.eye(fmt.size)
        be5 = raw_outputs(codec, src, onehot, "be5")
        sad = be5[fmt.index(names[2])]
        row[f"{src} `{names[2]}` one-hot → be5 (raw joy, anger, sadness, fear, disgust)"] = ", ".join(f"{v:.2f}" for v in sad)
        row[f"{src} one-hot ({fmt.size} classes) → be5 raw range"] = f"{be5.min():.2f} … {be5.max():.2f}"
    test = data.pair("warriner_emomap").subset("test")
    for target in ("goemotions28", "ekman7"):
        fmt = codec.formats[target]
        probs = codec.activate(target, torch.as_tensor(raw_outputs(codec, "vad", test.labels_a, target))).numpy()
        zero_shot = codec.same_island("vad", target) is False
        row[f"Warriner test VAD ({len(probs)} words) → {target}: classes > .5 per word"] = f"{(probs > 0.5).sum(1).mean():.2f}"
        row[f"… {target}: calibrated labels per word{' (zero-shot rule)' if zero_shot else ''}"] = \
            f"{decide(probs, fmt, codec.calibration.get(target), zero_shot).sum(1).mean():.2f}"
    cases = pd.read_csv(VAD4)
    conv = codec.convert(cases[["valence", "arousal", "dominance"]].to_numpy(), "vad", "goemotions28", input_scale=(1, 9))
    for word, (_, out) in zip(cases["word"], conv.iterrows()):
        probs = out.drop("label").astype(float)
        row[f"vad4.csv `{word}` → goemotions28: top 3 / labels"] = f"{', '.join(probs.nlargest(3).index)} / {out['label']}"
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("codecs", nargs="+", help="run directories or packaged names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = default_data_registry()
    codecs = {name: EmotionCodec.from_pretrained(name).eval() for name in args.codecs}
    table = pd.DataFrame({name: island_rows(c, data) for name, c in codecs.items()})
    print("| | " + " | ".join(table.columns) + " |")
    print("|---" * (len(table.columns) + 1) + "|")
    for key, values in table.iterrows():
        print(f"| {key} | " + " | ".join(str(v) for v in values) + " |")
    last = codecs[args.codecs[-1]]
    pairs = [data.pair(p) for p in CLASS_PAIRS if data.is_present(p)]
    print(f"\nMultilabel decisions of {args.codecs[-1]} (test split, rule fitted on dev):")
    print(report_table(calibration_report(last, pairs, last.calibration, "test")))


if __name__ == "__main__":
    main()

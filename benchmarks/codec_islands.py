"""Benchmark: how codecs read formats across the islands of their pair graph (docs/codec.md, "Islands and anchors").

    EMOEMBED_DATA=../shared/data python benchmarks/codec_islands.py CODEC [CODEC ...]

CODEC is a run directory or a packaged name (``emoembed/codec-full``). Prints one Markdown table with a column per
codec: FER and Ekman one-hot labels decoded as BE5 (raw values, before clipping), Warriner's test VAD read as
GoEmotions and Ekman (classes above .5 and calibrated labels per word), the ``tests/cases/vad4.csv`` rows read as
GoEmotions; then the calibration report of the last codec on every class direction of the full recipe's pairs.

``--agreement SPLIT`` prints instead, on SPLIT (dev to choose, test to report), how the codecs read labels across
islands by top class (docs/codec.md, "Profile anchors"): gold BE5 / VAD of EmoMap's words read as Ekman and
GoEmotions (agreement of the top emotion with EmoMap's; words with no clear emotion — every BE5 intensity below .25 —
read as ``neutral``; VAD of the words whose BE5 top is sadness read as sadness), single-label Ekman comments read as
BE5, FER+ faces read as BE5 and Ekman.
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
from emoembed.formats import LabelFormat

VAD4 = Path(__file__).resolve().parents[1] / "tests" / "cases" / "vad4.csv"
EMOTIONS = {"fer7": ["happy", "angry", "sad", "fear", "disgust"], "ekman7": ["joy", "anger", "sadness", "fear", "disgust"]}
EMO = EMOTIONS["ekman7"]  # the five basic emotions, in be5's order
FERP = {"joy": "happiness", "anger": "anger", "sadness": "sadness", "fear": "fear", "disgust": "disgust"}
CLASS_PAIRS = ("warriner_emolex", "vader_emolex", "afinn_emolex", "goemotions_ekman", "goemotions_sentiment", "fer2013_ferplus")


@torch.no_grad()
def raw_outputs(codec: EmotionCodec, source: str, labels: np.ndarray, target: str) -> np.ndarray:
    return codec.decode(target, codec.encode_labels(source, torch.as_tensor(labels, dtype=torch.float32), None)).numpy()


def conv(c: EmotionCodec, src: str, y: np.ndarray, tgt: str) -> np.ndarray:
    """(N, k_tgt) activated outputs of ``tgt`` for labels ``y`` of ``src`` (pooled mapping, no domain)."""
    return c.activate(tgt, torch.as_tensor(raw_outputs(c, src, y, tgt))).numpy()


def _share(x) -> float:
    return float(np.mean(x))


def idx(fmt: LabelFormat, names: list[str]) -> list[int]:
    return [fmt.index(n) for n in names]


def agreement_rows(c: EmotionCodec, data, split: str) -> dict[str, float | int]:
    """The table's rows for one codec (shares, and the counts they are shares of)."""
    out = {}
    be5 = c.formats["be5"]; ek = c.formats["ekman7"]
    p = data.pair("warriner_emomap").subset(split)
    y = p.labels_b; top = y[:, idx(be5, EMO)]
    clear = (top.max(1) >= 0.3) & (np.argmax(top, 1) != 0)
    pr = conv(c, "be5", y[clear], "ekman7")[:, idx(ek, EMO)]
    out["be5 gold (neg top) -> ekman7 top agree"] = _share(pr.argmax(1) == top[clear].argmax(1))
    out["  n"] = int(clear.sum())
    sad = clear & (top.argmax(1) == 2)
    pr = conv(c, "be5", y[sad], "ekman7")[:, idx(ek, EMO)]
    out["  be5 sadness-top -> ekman7 sadness share"] = _share(pr.argmax(1) == 2)
    pv = conv(c, "vad", p.labels_a[clear], "ekman7")[:, idx(ek, EMO)]
    out["vad gold (neg top be5) -> ekman7 agree w/ emomap top"] = _share(pv.argmax(1) == top[clear].argmax(1))
    pb = conv(c, "vad", p.labels_a[clear], "be5")[:, idx(be5, EMO)]
    out["  (in-island vad->be5 agree)"] = _share(pb.argmax(1) == top[clear].argmax(1))
    lowe = top.max(1) < 0.25
    pn = conv(c, "be5", y[lowe], "ekman7")
    out["be5 low-emotion words -> ekman7 neutral top"] = _share(pn.argmax(1) == ek.index("neutral"))
    pn = conv(c, "vad", p.labels_a[lowe], "ekman7")
    out["vad low-emotion words -> ekman7 neutral top"] = _share(pn.argmax(1) == ek.index("neutral"))
    # (a) words with no clear emotion (gold EmoMap BE5 all < .25): VAD -> sentiment4 / goemotions28 neutral;
    # (b) words whose clear gold BE5 top is sadness: VAD -> goemotions28 / ekman7 sadness
    for key, rows_, tgt, names in (("(a) vad low-emotion words", lowe, "sentiment4", ["neutral", "negative"]),
                                   ("(a) vad low-emotion words", lowe, "goemotions28", ["neutral"]),
                                   ("(b) vad of be5-sadness words", sad, "goemotions28", ["sadness", "disgust"]),
                                   ("(b) vad of be5-sadness words", sad, "ekman7", ["sadness"])):
        pred = conv(c, "vad", p.labels_a[rows_], tgt).argmax(1)
        for name in names:
            out[f"{key} -> {tgt} {name} top"] = _share(pred == c.formats[tgt].index(name))
    out["  n low-emotion"] = int(lowe.sum())
    out["  n sadness"] = int(sad.sum())
    g28 = c.formats["goemotions28"]
    # the five-way VAD -> goemotions28 agreement with the gold BE5 top (clear words)
    pg = conv(c, "vad", p.labels_a[clear], "goemotions28")[:, idx(g28, EMO)]
    out["vad gold (neg top be5) -> goemotions28 agree"] = _share(pg.argmax(1) == top[clear].argmax(1))
    g = data.pair("goemotions_ekman").subset(split)
    ye = g.labels_b; single = ye.sum(1) == 1
    e5 = ye[:, idx(ek, EMO)]; m = single & (e5.sum(1) == 1)
    pr = conv(c, "ekman7", ye[m], "be5")[:, idx(be5, EMO)]
    out["ekman7 single gold -> be5 top agree"] = _share(pr.argmax(1) == e5[m].argmax(1))
    f = data.pair("fer2013_ferplus").subset(split)
    fp = c.formats["ferplus8"]; yf = f.labels_b
    t5 = yf[:, idx(fp, [FERP[k] for k in EMO])]
    m = t5.max(1) >= 0.5
    pr = conv(c, "ferplus8", yf[m], "be5")[:, idx(be5, EMO)]
    out["ferplus8 (emotion >= .5) -> be5 top agree"] = _share(pr.argmax(1) == t5[m].argmax(1))
    pr = conv(c, "ferplus8", yf[m], "ekman7")[:, idx(ek, EMO)]
    out["ferplus8 (emotion >= .5) -> ekman7 top agree"] = _share(pr.argmax(1) == t5[m].argmax(1))
    return out

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
    ap.add_argument("--agreement", choices=["dev", "test"], help="print the top-class agreement table on this split")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = default_data_registry()
    codecs = {name: EmotionCodec.from_pretrained(name).eval() for name in args.codecs}
    if args.agreement:
        res = {n: agreement_rows(c, data, args.agreement) for n, c in codecs.items()}
        for k in next(iter(res.values())):
            print(f"{k:55s}" + "".join(f"{res[n][k]:>10.3f}" if isinstance(res[n][k], float) else f"{res[n][k]:>10}"
                                       for n in res))
        return
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

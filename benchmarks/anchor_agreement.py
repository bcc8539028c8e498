"""Benchmark: how codecs read labels across the islands of their pair graph, by top class (docs/codec.md, "Profile
anchors"). On a split (dev to choose, test to report) of the paired data: gold BE5 / VAD of EmoMap's words read as
Ekman and GoEmotions (agreement of the top emotion with EmoMap's; words with no clear emotion — every BE5 intensity
below .25 — read as ``neutral``; VAD of the words whose BE5 top is sadness read as sadness), single-label Ekman
comments read as BE5, FER+ faces read as BE5 and Ekman. One column per codec.

    EMOEMBED_DATA=../shared/data python benchmarks/anchor_agreement.py dev CODEC_DIR [CODEC_DIR ...]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from emoembed.codec import EmotionCodec
from emoembed.data.registry import default_data_registry
from emoembed.formats import LabelFormat

EMO = ["joy", "anger", "sadness", "fear", "disgust"]
FERP = {"joy": "happiness", "anger": "anger", "sadness": "sadness", "fear": "fear", "disgust": "disgust"}


@torch.no_grad()
def conv(c: EmotionCodec, src: str, y: np.ndarray, tgt: str) -> np.ndarray:
    """(N, k_tgt) activated outputs of ``tgt`` for labels ``y`` of ``src`` (pooled mapping, no domain)."""
    e = c.encode_labels(src, torch.as_tensor(y, dtype=torch.float32), None)
    return c.activate(tgt, c.decode(tgt, e)).numpy()


def idx(fmt: LabelFormat, names: list[str]) -> list[int]:
    return [fmt.index(n) for n in names]

def _share(x) -> float:
    return float(np.mean(x))


def rows(c: EmotionCodec, data, split: str) -> dict[str, float | int]:
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

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split", choices=["dev", "test"])
    ap.add_argument("codecs", nargs="+", help="run directories or packaged names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = default_data_registry()
    res = {n: rows(EmotionCodec.from_pretrained(n).eval(), data, args.split) for n in args.codecs}
    for k in next(iter(res.values())):
        print(f"{k:55s}" + "".join(f"{res[n][k]:>10.3f}" if isinstance(res[n][k], float) else f"{res[n][k]:>10}"
                                   for n in res))


if __name__ == "__main__":
    main()

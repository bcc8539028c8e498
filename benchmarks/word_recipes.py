"""Benchmark: word recipes side by side — trained word models (``emoembed fit-encoder --modality word``) compared
on what a user of ``predict`` sees.

    EMOEMBED_DATA=../shared/data python benchmarks/word_recipes.py runs/words-glove runs/words-minilm [--out runs/bench-word-recipes]

Per model:
  * Warriner test r (valence/arousal/dominance), ``model.evaluate`` on the warriner test split;
  * compression: per variable the slope of the gold rating on the prediction (least squares, Warriner test, both
    on the normalised scale). 1 = calibrated spread; > 1 = predictions squeezed toward the middle (a slope of 1.5
    means the gold ratings spread 1.5× as far as the predictions);
  * OOV rate on the word cases in tests/cases (items none of whose forms has a vector; the multi-word phrases of
    negation_phrases.csv are left out — they are the text models' job);
  * time per 10,000 words: ``predict`` on 10,000 distinct Warriner words with empty caches (vectors looked up or
    computed, MLP, heads), one torch thread: wall-clock and this process's CPU time (the CPU time is the number to
    compare on a shared machine, where wall-clock grows with the other jobs' load);
  * BE5 on EmoMap's silver lexicon of Warriner's words (``emomap_warriner_be5``): mean r, the compression slope per
    basic emotion, and top-emotion agreement (the basic emotion rated highest is the one EmoMap rates highest), on
    all words and on the low-joy words (EmoMap joy < .2), where anger, sadness, fear and disgust must be told apart;
  * class formats no word training label reaches (ekman7, goemotions28: zero-shot through the codec): the share of
    EmoMap's words with no clear emotion (all five BE5 intensities < .25) that ``predict`` labels ``neutral``, and
    of the words whose EmoMap top is a negative emotion (≥ .3) whose most probable basic-emotion class is that one;
  * the demo's words (happy grief furious spider vacation) in BE5: the top basic emotion of each.
``--split dev`` measures on the dev splits (what a recipe choice may look at); the default is test.
Prints a Markdown table; writes it and every number to OUT/results.md and OUT/metrics.json.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from emoembed.coverage import item_coverage
from emoembed.data.registry import default_data_registry
from emoembed.inputs import content_items, read_user_table
from emoembed.lexical import is_multiword
from emoembed.model import EmotionModel
from emoembed.tasks import task_from_dataset

CASES = Path(__file__).resolve().parents[1] / "tests" / "cases"
CASE_FILES = ("oov_punct_words.csv", "emoji_words.csv", "words_na_tokens.csv", "negation_phrases.csv")
DEMO_WORDS = ["happy", "grief", "furious", "spider", "vacation"]


def slope(gold: np.ndarray, pred: np.ndarray) -> float:
    """Least-squares slope of ``gold`` on ``pred``."""
    p = pred - pred.mean()
    return float((p * (gold - gold.mean())).sum() / (p * p).sum())


def case_words() -> list[str]:
    words = []
    for name in CASE_FILES:
        words += [w for w in content_items(read_user_table(CASES / name), None, name) if not is_multiword(w)]
    return words


def be5_profile(model: EmotionModel, split: str) -> dict:
    """EmoMap BE5 on ``split``: mean r, slope of gold on prediction per basic emotion, top-emotion agreement."""
    task = task_from_dataset(default_data_registry().dataset("emomap_warriner_be5"), "be5", list(model.formats))
    pred = model.predict(task.items[split], "be5")[list(task.fmt.variables)].to_numpy(dtype=float)
    gold = task.labels[split]
    agree = pred.argmax(1) == gold.argmax(1)
    low_joy = gold[:, task.fmt.variables.index("joy")] < 0.2
    return {"r": float(np.mean([np.corrcoef(gold[:, j], pred[:, j])[0, 1] for j in range(gold.shape[1])])),
            "slope": {v: slope(gold[:, j], pred[:, j]) for j, v in enumerate(task.fmt.variables)},
            "top_agreement": float(agree.mean()), "top_agreement_low_joy": float(agree[low_joy].mean()),
            "n": len(gold), "n_low_joy": int(low_joy.sum())}


CLASS_FORMATS = ("ekman7", "goemotions28")
NO_EMOTION = 0.25  # EmoMap words whose five BE5 intensities all stay below this have no clear emotion


CLEAR = 0.3  # EmoMap words whose largest BE5 intensity reaches this, on a negative emotion, have a clear negative top
BASIC = ("joy", "anger", "sadness", "fear", "disgust")  # be5's variables; ekman7 and goemotions28 have classes so named


def neutral_share(model: EmotionModel, split: str) -> dict:
    """Per class format of :data:`CLASS_FORMATS`: the share of EmoMap's ``split`` words with no clear emotion (every
    BE5 intensity < :data:`NO_EMOTION`) whose ``predict`` label is ``neutral``, and how many words that is; and
    (``negative_top``) the share of the words whose EmoMap top is a negative emotion reaching :data:`CLEAR` whose
    most probable of the five basic-emotion classes in that format is EmoMap's top (``n_negative`` words)."""
    task = task_from_dataset(default_data_registry().dataset("emomap_warriner_be5"), "be5", list(model.formats))
    gold = task.labels[split]
    calm = gold.max(axis=1) < NO_EMOTION
    negative = (gold.max(axis=1) >= CLEAR) & (gold.argmax(axis=1) != list(task.fmt.variables).index("joy"))
    words = [w for w, keep in zip(task.items[split], calm) if keep]
    neg_words = [w for w, keep in zip(task.items[split], negative) if keep]
    neg_top = gold[negative][:, [list(task.fmt.variables).index(v) for v in BASIC]].argmax(axis=1)
    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in CLASS_FORMATS:
            if f not in model.formats:
                continue
            out[f] = float((model.predict(words, f)["label"] == "neutral").mean())
            probs = model.predict(neg_words, f)[list(BASIC)].to_numpy(dtype=float)
            out.setdefault("negative_top", {})[f] = float(np.mean(probs.argmax(axis=1) == neg_top))
    return {**out, "n": len(words), "n_negative": len(neg_words)}


def measure(model_dir: Path, words_10k: list[str], split: str = "test") -> dict:
    model = EmotionModel.from_pretrained(model_dir)
    task = task_from_dataset(default_data_registry().dataset("warriner"), "vad", list(model.formats))
    res = model.evaluate(task, split)
    pred = model.predict(task.items[split], "vad").to_numpy()
    gold = task.labels[split]
    slopes = {v: slope(gold[:, j], pred[:, j]) for j, v in enumerate(task.fmt.variables)}
    cases = case_words()
    cov = item_coverage(model.encoder, cases)
    oov = [w for w, c in zip(cases, cov) if c <= 0]
    fresh = EmotionModel.from_pretrained(model_dir)  # empty lookup caches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.predict(["warm-up"], "vad")
        t0, c0 = time.perf_counter(), time.process_time()
        fresh.predict(words_10k, "vad", batch_size=256)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        demo = model.predict(DEMO_WORDS, "be5")
    return {"model": str(model_dir), "split": split, "vectors": model.encoder.config().get("vectors"),
            "warriner_r": {v: m["pearson"] for v, m in res["per_variable"].items()},
            "compression_slope": slopes, "emomap_be5": be5_profile(model, split), "neutral_share": neutral_share(model, split), "case_words": len(cases), "case_oov": oov, "case_oov_rate": len(oov) / len(cases),
            "seconds_per_10k_words": seconds * 10_000 / len(words_10k),
            "cpu_seconds_per_10k_words": cpu * 10_000 / len(words_10k),
            "demo_be5_top": {w: demo.loc[w].idxmax() for w in DEMO_WORDS},
            "demo_be5": demo.round(3).to_dict(orient="index")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="word model directories")
    ap.add_argument("--out", default="runs/bench-word-recipes")
    ap.add_argument("--split", choices=["dev", "test"], default="test", help="split to score (default test)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    words = default_data_registry().dataset("warriner").content
    words_10k = list(dict.fromkeys(str(w) for w in words))[:10_000]
    rows = [measure(Path(m), words_10k, args.split) for m in args.models]
    lines = [f"| model | vectors | Warriner {args.split} r V/A/D | slope gold~pred V/A/D | EmoMap BE5 r | BE5 slope J/A/S/F/D | "
             "BE5 top-emotion agreement (all / low joy) | no-emotion words labelled neutral: ekman7 / goemotions28 | "
             "negative-top words, EmoMap's top class: ekman7 / goemotions28 | OOV on cases | s per 10k words (wall / CPU) | demo BE5 top |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rr, sl, be, ns = r["warriner_r"], r["compression_slope"], r["emomap_be5"], r["neutral_share"]
        neg = ns.get("negative_top", {})
        lines.append(f"| {r['model']} | {r['vectors']} | {rr['valence']:.3f}/{rr['arousal']:.3f}/{rr['dominance']:.3f} | "
                     f"{sl['valence']:.2f}/{sl['arousal']:.2f}/{sl['dominance']:.2f} | {be['r']:.3f} | "
                     f"{'/'.join(f'{v:.2f}' for v in be['slope'].values())} | "
                     f"{be['top_agreement']:.3f} / {be['top_agreement_low_joy']:.3f} | "
                     f"{' / '.join(f'{ns[f]:.3f}' if f in ns else '-' for f in CLASS_FORMATS)} (n {ns['n']}) | "
                     f"{' / '.join(f'{neg[f]:.3f}' if f in neg else '-' for f in CLASS_FORMATS)} (n {ns['n_negative']}) | "
                     f"{len(r['case_oov'])}/{r['case_words']} ({', '.join(r['case_oov']) or '-'}) | "
                     f"{r['seconds_per_10k_words']:.1f} / {r['cpu_seconds_per_10k_words']:.1f} | {', '.join(f'{w} {t}' for w, t in r['demo_be5_top'].items())} |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table + "\n")
    (out / "metrics.json").write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()

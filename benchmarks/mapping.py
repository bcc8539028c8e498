"""Benchmark: the codec against the pairwise FFN baseline on every pair of a recipe (default: the full one).

    EMOEMBED_DATA=../shared/data python benchmarks/mapping.py [--recipe mappings/full.yaml] [--out runs/bench-mapping]

Prints one Markdown table (codec vs baseline per direction, test split) and the wall time of codec and
baseline training, measured in the same run; writes the table to OUT/results.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from emoembed.data.registry import default_data_registry
from emoembed.recipes import load_codec_recipe
from emoembed.training.baseline import evaluate_baseline
from emoembed.training.codec import load_pairs, mean_primary, results_table, run_map


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "mappings" / "full.yaml"))
    ap.add_argument("--out", default="runs/bench-mapping")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny MLPs run fastest on one)")
    ap.add_argument("--reuse", action="store_true", help="reuse OUT/metrics.json of an earlier codec run of the same recipe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = load_codec_recipe(args.recipe)
    data = default_data_registry()
    t0 = time.perf_counter()
    prev = Path(args.out) / "metrics.json"
    if args.reuse and prev.exists():
        metrics = json.loads(prev.read_text(encoding="utf-8"))
        print(f"reusing the codec run in {args.out} (trained in {metrics['train_seconds']:.1f}s)")
    else:
        metrics = run_map(recipe, Path(args.out), data, baseline=False, progress=False)
    codec_wall = time.perf_counter() - t0
    pairs = load_pairs(recipe, data, log=lambda *a: None)
    t1 = time.perf_counter()
    base_rows = evaluate_baseline(pairs, recipe["baseline"], int(recipe["seed"]), "test", progress=False)
    base_wall = time.perf_counter() - t1
    table = results_table(metrics["test"], base_rows, metrics.get("test_pooled"))
    print(table)
    n_dir = len(metrics["test"])
    base = {(r["pair"], r["source"], r["target"]): r["primary"] for r in base_rows}
    close = sum(r["primary"] >= base[(r["pair"], r["source"], r["target"])] - 0.01 for r in metrics["test"])
    pooled = f" (pooled, without domains: {metrics['test_pooled_mean']:.3f})" if "test_pooled_mean" in metrics else ""
    print(f"\n{len(pairs)} pairs, {n_dir} directions; codec {mean_primary(metrics['test']):.3f}{pooled} vs baseline "
          f"{mean_primary(base_rows):.3f}; codec within .01 of or above the baseline on {close}/{n_dir} directions")
    print(f"wall time on {args.threads} threads: codec training {metrics['train_seconds']:.1f}s (run incl. data and eval {codec_wall:.1f}s), "
          f"baseline ({n_dir} separate mappers) {base_wall:.1f}s; ratio baseline/codec {base_wall / max(metrics['train_seconds'], 1e-9):.2f}")
    (Path(args.out) / "benchmark.md").write_text(table + "\n", encoding="utf-8")
    (Path(args.out) / "baseline.json").write_text(json.dumps(base_rows, indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()

"""Resident memory (RSS) of ``emoembed pretrain`` per optimizer step: the real recipe on the real data, a small
seeded subsample, one torch thread (docs/text.md, "Memory").

    EMOEMBED_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/pretrain_memory.py --codec pretrained/codec-full \\
        --steps 30 --out runs/pretrain-memory.tsv \\
        --set 'training.max_train_items={emobank: 1280, affectivetext: 640, goemotions: 1920}'

Writes one row per optimizer step: the batch's padded length, ``VmRSS`` and ``VmHWM`` (peak RSS so far) from
/proc/self/status in GiB, wall and CPU seconds since the start; it stops after ``--steps`` steps (no backbone
written). ``--no-trim`` leaves glibc's freed heap in place (no ``emoembed.memory.release_freed_memory``), to
separate the allocator's share from the step's live memory; ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment
makes RSS follow the live tensors (every large block mmap'ed and unmapped when freed). ``--max-gib`` aborts the run
(exit 3) when RSS passes it, so a measurement cannot push a shared machine out of memory. Linux only.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch


def proc_status() -> dict[str, float]:
    """VmRSS and VmHWM of this process in GiB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", required=True)
    p.add_argument("--recipe", default="encoders/text-minilm-carl-pretrain.yaml")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", required=True, help="TSV to write")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-trim", action="store_true")
    p.add_argument("--max-gib", type=float, default=12.0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    import emoembed.training.encoder as loop
    from emoembed.data.registry import default_data_registry
    from emoembed.encoders.carl import CARLObjective
    from emoembed.recipes import load_encoder_recipe, parse_sets
    from emoembed.training.pretrain import run_pretrain

    if args.no_trim:
        loop.release_freed_memory = lambda *a, **k: False
    out = open(args.out, "w", encoding="utf-8")
    out.write("step\tseq_len\tvmrss_gib\tvmhwm_gib\tseconds\tcpu_seconds\n")
    t0 = time.perf_counter()
    seq_len = [0]
    loss, after_step = CARLObjective.loss, CARLObjective.after_step

    def spy_loss(self, ctx):
        seq_len[0] = int(ctx.batch["input_ids"].shape[1])
        return loss(self, ctx)

    def spy_after_step(self, encoder, step, total_steps):
        after_step(self, encoder, step, total_steps)
        s = proc_status()
        out.write(f"{step}\t{seq_len[0]}\t{s['VmRSS']:.3f}\t{s['VmHWM']:.3f}\t{time.perf_counter() - t0:.1f}\t"
                  f"{sum(os.times()[:2]):.1f}\n")
        out.flush()
        if step >= args.steps:
            print(f"{step} steps: peak RSS {s['VmHWM']:.2f} GiB, RSS now {s['VmRSS']:.2f} GiB ({args.out})")
            os._exit(0)

    CARLObjective.loss, CARLObjective.after_step = spy_loss, spy_after_step

    def guard():
        while True:
            rss = proc_status()["VmRSS"]
            if rss > args.max_gib:
                out.write(f"aborted: RSS {rss:.2f} GiB > --max-gib {args.max_gib}\n")
                out.flush()
                os._exit(3)
            time.sleep(0.2)

    threading.Thread(target=guard, daemon=True).start()
    recipe = load_encoder_recipe(Path(args.recipe), "text", parse_sets(args.set))
    with tempfile.TemporaryDirectory() as tmp:
        run_pretrain(recipe, Path(args.codec), default_data_registry(), Path(tmp), progress=False, log=lambda *_: None)
    print("the run ended before --steps steps", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

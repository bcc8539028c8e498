"""fp32 ONNX on onnxruntime's OpenVINO execution provider vs our torch ``encode`` and onnxruntime's CPU provider
(issue 18: is OpenVINO the way to the fp32 target, ≥ 1.2× our torch ``encode``?). A measurement, not a product
path: the result (1.10–1.13×, short of 1.2×) is in ``docs/inference.md``.

Needs ``onnxruntime-openvino`` *instead of* ``onnxruntime`` (both install the ``onnxruntime`` module, so they cannot
share an environment) — run it in a separate venv:

    python -m venv /tmp/ovenv && /tmp/ovenv/bin/pip install torch==2.13.0 -c constraints-cpu.txt \
        <install_requires of setup.cfg except onnxruntime> onnxruntime-openvino==1.24.1 [openvino==2025.4.1]
    EMOEMBED_DATA=../shared/data HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /tmp/ovenv/bin/python benchmarks/openvino_ep.py \
        --model runs/text-bench --export runs/ov/onnx-fp32 [--texts 2000] [--batch-size 64] [--rounds 3]
    … benchmarks/openvino_ep.py --model runs/text-bench --export runs/ov/onnx-fp32 --native    # openvino runtime

Engines (1 intra-op thread each; the same texts, batches of ``--batch-size`` cut by ``encode``'s token-count sort):

* ``torch encode`` — ``EmotionModel.encode`` of the torch model;
* ``onnx fp32, CPU EP`` — the fp32 export as ``from_pretrained(..., backend="onnx")`` loads it;
* ``onnx fp32, OpenVINO EP`` — the same model and ``encode`` with the session replaced by one on the
  ``OpenVINOExecutionProvider`` (``device_type=CPU``, ``precision=FP32``, ``num_of_threads=1``; dynamic shapes);
* ``onnx fp32, OpenVINO EP, static`` — ``disable_dynamic_shapes=True`` (a compiled model per input shape, cached in
  ``cache_dir``), the token axis padded to a multiple of 8 (padding has attention mask 0) to bound the shapes.

Speed: ``--rounds`` interleaved rounds (each round runs every engine once, the order rotating), each engine's CPU
time (``time.process_time``) and wall time per round; the table gives the best round's texts per CPU-second and
texts/s and the median over rounds of the ratio to torch within the round. Twice: ``encode`` end to end, and the
encoder's forward alone on pre-tokenised batches. Outputs: the largest |Δ| to torch's embeddings on all texts, and
the EmoBank test (vad) mean Pearson r.

``--native``: the same forward-alone comparison for the ``openvino`` runtime itself reading ``encoder.onnx``
(``openvino.Core().compile_model``: 1 thread, 1 stream, f32). It runs in a process of its own: importing ``openvino``
loads its own OpenVINO libraries, after which onnxruntime-openvino's provider library fails to load (undefined
symbol) and onnxruntime silently falls back to the CPU provider.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from emoembed.io import atomic_write_text  # noqa: E402

OV = "OpenVINOExecutionProvider"


class Padded:
    """An onnxruntime session whose text inputs are padded on the token axis to a multiple of ``multiple``."""

    def __init__(self, session, multiple: int):
        self.session, self.multiple = session, multiple

    def run(self, outputs, feeds):
        t = next(iter(feeds.values())).shape[1]
        pad = -t % self.multiple
        if pad:
            feeds = {k: np.pad(v, ((0, 0), (0, pad))) for k, v in feeds.items()}
        return self.session.run(outputs, feeds)


def require_openvino_ep() -> None:
    import onnxruntime as ort

    if OV not in ort.get_available_providers():
        raise SystemExit(f"onnxruntime {ort.__version__} has no {OV} (providers: {ort.get_available_providers()}); "
                         "install onnxruntime-openvino instead of onnxruntime (see this file's doc)")


def openvino_session(path: Path, threads: int, **options):
    import onnxruntime as ort

    require_openvino_ep()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    opts = {"device_type": "CPU", "precision": "FP32", "num_of_threads": str(threads)} | options
    session = ort.InferenceSession(str(path), so, providers=[(OV, opts)])
    if session.get_providers()[0] != OV:  # a provider that fails to load is replaced by the CPU one without an error
        raise SystemExit(f"the {OV} did not load (session providers: {session.get_providers()})")
    return session


def timed_rounds(engines: dict, rounds: int, n: int, label: str) -> dict[str, dict]:
    rows = {k: {"cpu": [], "wall": []} for k in engines}
    names = list(engines)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            engines[k]()
            rows[k]["wall"].append(time.perf_counter() - t)
            rows[k]["cpu"].append(time.process_time() - c)
            print(f"{label} round {r + 1} {k}: {n / rows[k]['cpu'][-1]:.1f} texts per CPU-second, "
                  f"{n / rows[k]['wall'][-1]:.1f} texts/s", file=sys.stderr, flush=True)
    base = rows[names[0]]
    return {k: {"cpu_tps": n / min(v["cpu"]), "wall_tps": n / min(v["wall"]),
                "cpu_ratios": [b / c for b, c in zip(base["cpu"], v["cpu"])],
                "wall_ratios": [b / w for b, w in zip(base["wall"], v["wall"])]} for k, v in rows.items()}


def speed_table(res: dict, title: str) -> str:
    lines = [f"| {title} | texts per CPU-second (best) | × torch, CPU time (median; rounds) | texts/s wall (best) "
             "| × torch, wall (median) |", "|---|---|---|---|---|"]
    for k, v in res.items():
        lines.append(f"| {k} | {v['cpu_tps']:.1f} | {statistics.median(v['cpu_ratios']):.2f} "
                     f"({', '.join(f'{x:.2f}' for x in v['cpu_ratios'])}) | {v['wall_tps']:.1f} | "
                     f"{statistics.median(v['wall_ratios']):.2f} |")
    return "\n".join(lines)


def batches_of(encoder, texts: list[str], batch: int) -> list[dict]:
    order = np.argsort(np.asarray(encoder.sort_keys(texts), dtype=float), kind="stable")
    return [encoder.collate([texts[j] for j in order[i:i + batch]]) for i in range(0, len(texts), batch)]


def profile(encoder, core, export: Path, batches: list[dict], threads: int) -> str:
    """Where the time goes on the batch of median length: torch's operators (torch.profiler), the openvino runtime's
    (PERF_COUNT), and torch's matrix products alone at the model's shapes (GFLOP per CPU-second)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    batch = sorted(batches, key=lambda b: b["input_ids"].shape[1])[len(batches) // 2]
    rows, tokens = batch["input_ids"].shape
    with torch.no_grad():
        encoder(batch)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                encoder(batch)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    lines = [f"Profile, one batch of {rows} × {tokens} tokens: torch self CPU time "
             + ", ".join(f"{e.key} {100 * e.self_cpu_time_total / total:.0f} %" for e in ops[:5])]
    compiled = core.compile_model(core.read_model(str(export / "encoder.onnx")), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERF_COUNT": True,
                                   "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    feed = {k: batch[k].numpy() for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    request.infer(feed)
    request.infer(feed)
    by_type: dict[str, float] = {}
    for p in request.profiling_info:
        key = f"{p.node_type} ({p.exec_type})"
        by_type[key] = by_type.get(key, 0.0) + p.real_time.total_seconds()
    total = sum(by_type.values())
    lines.append("openvino: " + ", ".join(f"{k} {100 * v / total:.0f} %"
                                          for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:6]))
    m = rows * tokens
    rates = []
    for k, n in ((384, 384), (384, 1536), (1536, 384)):
        x, w = torch.randn(m, k), torch.randn(n, k)
        torch.nn.functional.linear(x, w)
        c = time.process_time()
        for _ in range(20):
            torch.nn.functional.linear(x, w)
        rates.append(f"{m}×{k}·{k}×{n} {2 * m * k * n * 20 / (time.process_time() - c) / 1e9:.0f}")
    lines.append("torch linear, GFLOP per CPU-second: " + ", ".join(rates))
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="trained torch text model directory")
    ap.add_argument("--export", required=True, help="its fp32 ONNX export (written here if missing)")
    ap.add_argument("--out", default="runs/bench-openvino")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--native", action="store_true", help="the openvino runtime itself, forward alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.native:
        require_openvino_ep()
    from inference import emobank_task, emobank_texts, machine

    info = machine()  # before the runs: the load average at the start

    from emoembed.model import EmotionModel

    export = Path(args.export)
    model = EmotionModel.from_pretrained(args.model, backend="torch")
    if not (export / "encoder.onnx").exists():
        model.export_onnx(export)
    texts = emobank_texts(args.texts)
    n, bs = len(texts), args.batch_size
    encoder = model.encoder.eval()
    batches = batches_of(encoder, texts, bs)
    feeds = [{k: b[k].numpy() for k in ("input_ids", "attention_mask", "token_type_ids") if k in b} for b in batches]

    def torch_forward():
        with torch.no_grad():
            return [encoder(b).numpy() for b in batches]

    if args.native:
        import openvino

        core = openvino.Core()
        compiled = core.compile_model(core.read_model(str(export / "encoder.onnx")), "CPU",
                                      {"INFERENCE_NUM_THREADS": args.threads, "NUM_STREAMS": 1,
                                       "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        forward = {"torch encoder forward": torch_forward,
                   f"openvino {openvino.__version__} runtime, fp32": lambda: [request.infer(f)[0].copy() for f in feeds]}
        ref = np.concatenate(torch_forward())
        diff = float(np.abs(np.concatenate(forward[list(forward)[1]]()) - ref).max())
        res = timed_rounds(forward, args.rounds, n, "forward")
        report = (speed_table(res, f"encoder forward alone ({n} texts, batch {bs}, {args.threads} thread)")
                  + f"\n\nmax |Δ| to torch {diff:.2g}\n\n" + profile(encoder, core, export, batches, args.threads))
    else:
        import onnxruntime as ort

        onnx_model = EmotionModel.from_pretrained(export, backend="onnx", threads=args.threads)
        sessions = {"onnx fp32, CPU EP": onnx_model.encoder.session,
                    "onnx fp32, OpenVINO EP": openvino_session(export / "encoder.onnx", args.threads),
                    "onnx fp32, OpenVINO EP, static": Padded(openvino_session(
                        export / "encoder.onnx", args.threads, disable_dynamic_shapes="True",
                        cache_dir=str(Path(args.out) / "openvino-cache")), 8)}
        models = {"torch encode": model}
        for name, session in sessions.items():
            m = onnx_model if name.endswith("CPU EP") else EmotionModel.from_pretrained(export, backend="onnx",
                                                                                        threads=args.threads)
            m.encoder.__dict__["session"] = session
            models[name] = m
        ref = model.encode(texts, batch_size=bs)
        diffs, warm = {}, {}
        for name, m in models.items():  # warm-up on all texts (the static engine compiles each shape here)
            c = time.process_time()
            diffs[name] = float(np.abs(m.encode(texts, batch_size=bs) - ref).max())
            warm[name] = time.process_time() - c
        res = timed_rounds({k: (lambda m=m: m.encode(texts, batch_size=bs)) for k, m in models.items()},
                           args.rounds, n, "encode")
        fwd = {"torch encoder forward": torch_forward} | {
            k: (lambda s=s: [s.run(["embedding"], f)[0] for f in feeds]) for k, s in sessions.items()}
        res_fwd = timed_rounds(fwd, args.rounds, n, "forward")
        task = emobank_task()
        scores = {k: float(m.evaluate(task, "test", batch_size=bs)["primary"]) for k, m in models.items()}
        base = scores["torch encode"]
        lines = ["| engine | max abs diff to torch (all texts) | EmoBank test mean r | change in r | first pass "
                 "(CPU s, incl. compiling) |", "|---|---|---|---|---|"]
        for k in models:
            lines.append(f"| {k} | {diffs[k]:.2g} | {scores[k]:.6f} | {scores[k] - base:+.2g} | {warm[k]:.1f} |")
        report = "\n\n".join([speed_table(res, f"`encode` ({n} EmoBank texts, batch {bs}, {args.threads} thread)"),
                              speed_table(res_fwd, "encoder forward alone (same batches, pre-tokenised)"),
                              "\n".join(lines)]) + f"\n\nonnxruntime {ort.__version__}\n"
    report += f"Machine: {info}. Command: `python benchmarks/openvino_ep.py {' '.join(sys.argv[1:])}`\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report, out / ("native.md" if args.native else "openvino_ep.md"))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

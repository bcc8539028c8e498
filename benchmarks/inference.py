"""CPU inference: our torch ``encode`` vs our ONNX Runtime fp32 / int8 exports vs sentence-transformers (issue 18).

    EMOEMBED_DATA=../shared/data HF_HUB_OFFLINE=1 python benchmarks/inference.py --model runs/text-bench \
        [--out runs/bench-inference] [--threads 1] [--batch-size 64] [--texts 2000] [--rounds 3]
    python benchmarks/inference.py --stream-rss --rows 1000000 [--model DIR] [--out …]   # streaming predict memory

Speed (one process, the same EmoBank texts, the same batch size, the same thread count for every engine):

* ``emoembed torch`` — ``EmotionModel.encode`` of the trained text model (batches of texts sorted by token count,
  as every emoembed backend batches);
* ``emoembed onnx fp32`` / ``onnx int8`` — the same model exported by ``EmotionModel.export_onnx`` (int8: dynamic
  per-channel quantisation), loaded with ``from_pretrained(..., backend="onnx")``;
* ``sentence-transformers`` — ``SentenceTransformer(<packaged all-MiniLM-L6-v2>).encode`` on the same backbone
  architecture (its own length sorting), and its ``backend="onnx"`` when it can load offline.

Engines run interleaved for ``--rounds`` rounds (each round times every engine once on all texts, the order
rotating from round to round), so load from other processes on a shared machine hits all of them alike; the table
gives the median over rounds of texts per CPU-second (the process's CPU time, ``time.process_time``: what a
contended machine can compare fairly, as it discounts waiting for a core) and of texts/s by wall clock, and of each
engine's ratio to our torch ``encode`` within the same round. Peak RSS is measured per engine in a
fresh subprocess that loads only that engine and encodes the texts once (``VmHWM``).

Quality: EmoBank test (vad) mean Pearson r of each emoembed backend (``EmotionModel.evaluate``) and its change
from torch.

``--stream-rss``: ``emoembed predict``'s streaming path (``emoembed.streaming.predict_file``) over ``--rows`` short
texts (EmoBank sentences repeated) from a csv file to a parquet file, sampling the process's RSS every 0.5 s; the
table gives RSS after 10 %, 50 % and 100 % of the rows and the peak. Without ``--model`` a tiny random-init BERT
model (exported to ONNX) is used, so a million rows fit in minutes on a shared CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from emoembed.io import atomic_write_json, atomic_write_text  # noqa: E402

ENGINES = ["emoembed torch", "emoembed onnx fp32", "emoembed onnx int8", "sentence-transformers torch",
           "sentence-transformers onnx"]


# ---------------------------------------------------------------------------------------------- data
def emobank_texts(n: int | None = None) -> list[str]:
    """EmoBank sentences (test, then dev, then train), the first ``n``."""
    task = emobank_task()
    texts = [str(t) for s in ("test", "dev", "train") for t in task.items[s]]
    return texts[:n] if n else texts


def emobank_task():
    from emoembed.data.registry import default_data_registry
    from emoembed.tasks import task_from_dataset

    return task_from_dataset(default_data_registry().dataset("emobank"), "vad")


# ---------------------------------------------------------------------------------------------- engines
def packaged_minilm_path() -> str:
    from emoembed.encoders.text import resolve_spec

    return str(resolve_spec("packaged:all-MiniLM-L6-v2"))


def load_engine(name: str, model_dir: Path, exports: dict[str, Path], threads: int):
    """A function texts → (N, d) array, or raises with the reason the engine is unavailable."""
    from emoembed.model import EmotionModel

    if name == "emoembed torch":
        m = EmotionModel.from_pretrained(model_dir, backend="torch")
        return lambda texts, bs: m.encode(texts, batch_size=bs)
    if name.startswith("emoembed onnx"):
        m = EmotionModel.from_pretrained(exports[name.split()[-1]], backend="onnx", threads=threads)
        return lambda texts, bs: m.encode(texts, batch_size=bs)
    from sentence_transformers import SentenceTransformer

    if name == "sentence-transformers torch":
        st = SentenceTransformer(packaged_minilm_path(), device="cpu")
    else:
        st = SentenceTransformer(packaged_minilm_path(), device="cpu", backend="onnx",
                                 model_kwargs={"provider": "CPUExecutionProvider"})
    return lambda texts, bs: st.encode(texts, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)


def export_models(model_dir: Path, out: Path) -> dict[str, Path]:
    from emoembed.model import EmotionModel

    model = EmotionModel.from_pretrained(model_dir, backend="torch")
    exports = {}
    for name, q in (("fp32", None), ("int8", "int8")):
        d = out / f"onnx-{name}"
        t = time.perf_counter()
        model.export_onnx(d, quantize=q)
        cfg = json.loads((d / "config.json").read_text())["backend"]
        print(f"exported {name} in {time.perf_counter() - t:.1f}s: {(d / 'encoder.onnx').stat().st_size / 2**20:.1f} MiB, "
              f"probe max |Δ| {cfg['export_check']['max_abs_diff']:.2g}", file=sys.stderr)
        exports[name] = d
    return exports


# ---------------------------------------------------------------------------------------------- measurements
def speed(engines: dict, texts: list[str], batch: int, rounds: int) -> dict[str, dict]:
    """Per engine the median over ``rounds`` of texts/s by wall clock and by the process's CPU time, and of its
    ratio to our torch ``encode`` in the same round. Engines are interleaved (each round times every engine once
    on all texts), and the order rotates from round to round, so load from other processes hits all alike."""
    rows: dict[str, dict] = {n: {"tps": [], "cpu_tps": [], "wall": [], "cpu": []} for n in engines}
    for fn in engines.values():
        fn(texts[:batch], batch)  # warm-up: session/graph initialisation, tokenizer caches
    names = list(engines)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            engines[name](texts, batch)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            rows[name]["wall"].append(wall)
            rows[name]["cpu"].append(cpu)
            rows[name]["tps"].append(len(texts) / wall)
            rows[name]["cpu_tps"].append(len(texts) / cpu)
            print(f"round {r + 1}/{rounds} {name}: {len(texts) / cpu:.1f} texts per CPU-second "
                  f"({len(texts) / wall:.1f} texts/s wall)", file=sys.stderr)
    base = rows.get("emoembed torch")
    out = {}
    for n, v in rows.items():
        ratio = [b / w for b, w in zip(base["wall"], v["wall"])] if base else [float("nan")]
        cpu_ratio = [b / c for b, c in zip(base["cpu"], v["cpu"])] if base else [float("nan")]
        out[n] = {"texts_per_s": statistics.median(v["tps"]), "cpu_texts_per_s": statistics.median(v["cpu_tps"]),
                  "ratio_vs_torch": statistics.median(ratio), "cpu_ratio_vs_torch": statistics.median(cpu_ratio),
                  "rounds": v["tps"], "cpu_rounds": v["cpu_tps"], "cpu_ratio_rounds": cpu_ratio}
    return out


def rss_probe(name: str, model_dir: Path, exports: dict[str, Path], threads: int, n: int, batch: int,
              texts_file: Path) -> float | None:
    """Peak RSS (MiB) of a fresh process that loads ``name`` and encodes the ``n`` texts of ``texts_file``."""
    cmd = [sys.executable, __file__, "--probe", name, "--model", str(model_dir), "--threads", str(threads),
           "--texts", str(n), "--batch-size", str(batch), "--exports", json.dumps({k: str(v) for k, v in exports.items()}),
           "--out", str(texts_file.parent)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": str(threads)})
    for line in res.stdout.splitlines():
        if line.startswith("PEAK_RSS_MIB"):
            return float(line.split()[1])
    print(f"rss probe {name} failed: {res.stderr[-500:]}", file=sys.stderr)
    return None


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited from the parent across fork + exec)."""
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe_main(args) -> int:
    torch.set_num_threads(args.threads)
    fn = load_engine(args.probe, Path(args.model), {k: Path(v) for k, v in json.loads(args.exports).items()}, args.threads)
    texts = json.loads((Path(args.out) / "texts.json").read_text(encoding="utf-8"))[: args.texts]
    fn(texts, args.batch_size)
    print(f"PEAK_RSS_MIB {peak_rss_mib():.1f}")
    return 0


def quality(model_dir: Path, exports: dict[str, Path], threads: int) -> dict[str, float]:
    from emoembed.model import EmotionModel

    task = emobank_task()
    out = {}
    for name, kw in (("emoembed torch", {"backend": "torch"}), ("emoembed onnx fp32", {"backend": "onnx"}),
                     ("emoembed onnx int8", {"backend": "onnx"})):
        d = model_dir if name == "emoembed torch" else exports[name.split()[-1]]
        m = EmotionModel.from_pretrained(d, threads=threads, **kw)
        res = m.evaluate(task, "test", batch_size=64)
        out[name] = {"mean_r": float(res["primary"]),
                     "per_variable": {v: float(x.get("pearson", float("nan"))) for v, x in res.get("per_variable", {}).items()}}
    return out


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}; load average at start "
            f"{load[0]:.1f} (shared with other jobs); torch {torch.__version__}, onnxruntime "
            f"{__import__('onnxruntime').__version__}")


def table(speeds: dict, rss: dict, scores: dict, threads: int, batch: int, n: int) -> str:
    lines = [f"| engine (same {n} EmoBank texts, batch {batch}, {threads} thread{'s' if threads > 1 else ''}) "
             "| texts per CPU-second | × our torch `encode` (CPU time) | texts/s (wall) | × our torch (wall) "
             "| peak RSS MiB | EmoBank test mean r | Δ r vs torch |",
             "|---|---|---|---|---|---|---|---|"]
    base = scores.get("emoembed torch", {}).get("mean_r")
    for name in ENGINES:
        s = speeds.get(name)
        if s is None or "error" in s:
            lines.append(f"| {name} | unavailable: {s.get('error', '-') if s else '-'} | | | | | | |")
            continue
        sc = scores.get(name, {}).get("mean_r")
        delta = "" if sc is None or base is None else f"{sc - base:+.5f}"
        r = rss.get(name)
        lines.append(f"| {name} | {s['cpu_texts_per_s']:.1f} | {s['cpu_ratio_vs_torch']:.2f} | {s['texts_per_s']:.1f} | "
                     f"{s['ratio_vs_torch']:.2f} | {'-' if r is None else f'{r:.0f}'} | "
                     f"{'' if sc is None else f'{sc:.4f}'} | {delta} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- streaming RSS
def tiny_onnx_model(out: Path) -> Path:
    """A tiny random-init BERT text model (2 layers, width 32) exported to ONNX fp32."""
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_text import tiny_codec, tiny_encoder, tiny_tokenizer_dir

    from emoembed.formats import FormatRegistry
    from emoembed.model import EmotionModel

    reg = FormatRegistry.load(REPO / "mappings" / "formats.yaml", REPO / "mappings" / "equivalences.yaml")
    tok = tiny_tokenizer_dir(out.resolve() / "tiny-tok")  # an absolute path: saved configs resolve relative ones against the model folder
    model = EmotionModel(tiny_encoder(tok, dim=16, max_length=32), tiny_codec(reg), meta={"trained_formats": ["vad"]})
    return model.eval().export_onnx(out / "tiny-onnx")


def stream_rss(args) -> int:
    import pandas as pd

    from emoembed.model import EmotionModel
    from emoembed.streaming import predict_file

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model) if args.model else tiny_onnx_model(out)
    src = out / f"stream-{args.rows}.csv"
    if not src.exists():
        base = emobank_texts()
        short = [t for t in base if len(t) <= 80] or base
        reps = -(-args.rows // len(short))
        pd.DataFrame({"text": (short * reps)[: args.rows]}).to_csv(src, index=False)
    model = EmotionModel.from_pretrained(model_dir, threads=args.threads)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample():
        page = os.sysconf("SC_PAGE_SIZE")
        while not stop.is_set():
            with open("/proc/self/statm") as f:
                samples.append((time.perf_counter(), int(f.read().split()[1]) * page / 2**20))
            stop.wait(0.5)

    rows_done: list[tuple[float, int]] = []
    import emoembed.streaming as streaming

    real_write = streaming._write_part

    def write_part(frame, path):
        real_write(frame, path)
        rows_done.append((time.perf_counter(), len(frame)))

    streaming._write_part = write_part
    th = threading.Thread(target=sample, daemon=True)
    rss_before = None
    with open("/proc/self/statm") as f:
        rss_before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    th.start()
    t0 = time.perf_counter()
    res = predict_file(model, src, out / f"stream-{args.rows}.parquet", "vad", chunk_size=args.chunk_size,
                       batch_size=args.batch_size, fresh=True, progress=not args.quiet)
    stop.set()
    th.join()
    cum, marks = 0, {}
    for t, k in rows_done:
        cum += k
        for frac in (0.1, 0.5, 1.0):
            if frac not in marks and cum >= frac * args.rows:
                marks[frac] = max((r for ts, r in samples if ts <= t), default=float("nan"))
    peak = max(r for _, r in samples)
    result = {"rows": res.rows, "seconds": time.perf_counter() - t0, "rows_per_s": res.rows / (time.perf_counter() - t0),
              "model": str(model_dir), "backend": type(model).__name__, "chunk_size": args.chunk_size,
              "rss_before_mib": rss_before, "rss_at_mib": {f"{int(k * 100)}%": v for k, v in marks.items()},
              "peak_rss_mib": peak, "machine": machine()}
    atomic_write_json(result, out / f"stream-rss-{args.rows}.json")
    print(json.dumps(result, indent=1))
    return 0


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="trained torch text model directory (fit-encoder --modality text)")
    ap.add_argument("--out", default="runs/bench-inference")
    ap.add_argument("--threads", type=int, default=1, help="threads for every engine (torch and onnxruntime)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--texts", type=int, default=2000, help="EmoBank texts timed per engine and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-rss", action="store_true", help="skip the per-engine peak-RSS subprocesses")
    ap.add_argument("--stream-rss", action="store_true", help="measure streaming predict's memory instead")
    ap.add_argument("--rows", type=int, default=1_000_000, help="--stream-rss: rows to stream")
    ap.add_argument("--chunk-size", type=int, default=10_000)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    ap.add_argument("--exports", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:
        return probe_main(args)
    if args.stream_rss:
        return stream_rss(args)
    if not args.model:
        ap.error("--model is required (a trained text model directory)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model)
    info = machine()
    exports = export_models(model_dir, out)
    texts = emobank_texts(args.texts)
    atomic_write_text(json.dumps(texts), out / "texts.json")
    engines, errors = {}, {}
    for name in ENGINES:
        try:
            engines[name] = load_engine(name, model_dir, exports, args.threads)
        except Exception as exc:  # noqa: BLE001 — an engine that cannot load is reported, not fatal
            errors[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:110]}"}
            print(f"{name}: unavailable ({errors[name]['error']})", file=sys.stderr)
    speeds = speed(engines, texts, args.batch_size, args.rounds) | errors
    engines.clear()
    scores = quality(model_dir, exports, args.threads)
    rss = {} if args.no_rss else {n: rss_probe(n, model_dir, exports, args.threads, len(texts), args.batch_size,
                                               out / "texts.json") for n in ENGINES if n not in errors}
    md = table(speeds, rss, scores, args.threads, args.batch_size, len(texts))
    cmd = "python benchmarks/inference.py " + " ".join(sys.argv[1:])
    report = (f"{md}\n\nMachine: {info}.\nCommand: `{cmd}`; {args.rounds} interleaved rounds (every engine once per "
              "round, order rotated), medians; CPU time = the process's user+system time (time.process_time), "
              f"{args.threads} intra-op thread(s) for torch and onnxruntime alike.\n")
    atomic_write_json({"speed": speeds, "rss_mib": rss, "quality": scores, "machine": info, "command": cmd,
                       "texts": len(texts), "batch_size": args.batch_size, "threads": args.threads}, out / "inference.json")
    atomic_write_text(report, out / "inference.md")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

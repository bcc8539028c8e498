"""ONNX Runtime backend: a trained text or image model's content encoder exported to ONNX and run by
onnxruntime on CPU (optionally with int8 weights), with the same ``encode``/``predict`` outputs as the torch model.

    model.export_onnx("runs/text-onnx-int8", quantize="int8")        # or: emoembed export-onnx --model … --out …
    fast = EmotionModel.from_pretrained("runs/text-onnx-int8")      # backend chosen from the folder
    fast.predict(["what a day"], format="vad")

What an exported folder holds:

* ``encoder.onnx`` — the content encoder (text: backbone → pooling → projection, inputs ``input_ids``,
  ``attention_mask`` [, ``token_type_ids``] of shape (batch, tokens); image: ``pixels`` (batch, 3, H, W)), output
  ``embedding`` (batch, d): the emotion-space vector the codec heads decode. Exported with PyTorch's TorchScript-
  based ``torch.onnx.export`` (opset 17, dynamic batch and sequence axes; text backbones with eager attention, whose
  plain MatMul/Softmax graph onnxruntime optimises and quantises best), and with ``quantize="int8"`` dynamically
  quantised by ``onnxruntime.quantization.quantize_dynamic`` (int8 per-channel weights, activations quantised per
  batch at run time; no calibration data).
* Two changes make onnxruntime fast on CPU (measured in ``docs/inference.md``): (1) the attention mask's fill
  value for padded keys, ``finfo(float32).min`` in the traced graph, becomes :data:`ATTENTION_MASK_FILL` (−40):
  onnxruntime's Softmax computes ``exp`` of masked logits that far below the row's maximum as *denormal* floats,
  4–12× slower per element; at −40 a padded key's weight stays below ``e^-34`` of the strongest real key's for
  any score gap under 6 (on EmoBank the largest padded-minus-best-real gap is 5.2), so the embeddings are
  unchanged to float rounding (the export check below still applies). (2) The session runs onnxruntime's full
  graph optimisation except the transforms in :data:`DISABLED_OPTIMIZERS` (``SkipLayerNormFusion``: its fused
  kernel is ~2× slower than the plain Add + LayerNormalization it replaces on this build). onnxruntime's offline
  BERT fusion (``onnxruntime.transformers.optimizer``: Attention, SkipLayerNormalization, BiasGelu) was measured
  no faster and is not applied.
* ``tokenizer/`` (text) — the tokenizer files, so the folder is self-contained: it can be moved or copied to
  another machine (``config.json`` names ``tokenizer`` relative to the folder; the backbone is rebuilt from
  ``hf_config`` without weights, so the backbone it was trained from need not exist there).
* ``model.safetensors`` — only the codec (or direct) heads: they are tiny and stay in torch.
* ``config.json`` — the torch model's config plus a ``backend`` block (file, quantisation, opset, versions, the
  mask fill, the disabled optimisers, where the backbone/tokenizer came from, and the export check: the largest
  difference to the torch encoder on a probe batch with padding).

Tokenisation and image decoding stay the torch encoder's own (its ``collate``), built on PyTorch's ``meta``
device so the backbone weights are never allocated; only the ONNX session holds weights. Word models are vector
lookups and are not exported. Threads: the session uses ``torch.get_num_threads()`` unless ``threads`` is given,
so ``torch.set_num_threads``/``OMP_NUM_THREADS`` govern both backends alike.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoembed.codec import EmotionCodec
from emoembed.encoders.base import ContentEncoder
from emoembed.errors import CheckpointError, ConfigError
from emoembed.integrity import integrity_record, verify_weights
from emoembed.io import atomic_write, atomic_write_json, load_safetensors, save_safetensors_atomic
from emoembed.model import DirectHeads, EmotionModel
from emoembed.pretrained import CONFIG_NAME, WEIGHTS_NAME, load_state_strict, read_config

ONNX_FILE = "encoder.onnx"
OUTPUT_NAME = "embedding"
OPSET = 17
QUANTIZE_MODES = (None, "int8")
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
FP32_TOLERANCE = 1e-3  # largest |ONNX − torch| accepted on the probe batch for an fp32 export
ATTENTION_MASK_FILL = -40.0  # additive attention-mask value for padded keys (see the module doc)
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)  # onnxruntime graph transforms left out (see the module doc)
TOKENIZER_DIR = "tokenizer"


def _require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("the ONNX backend needs onnxruntime (pip install onnxruntime==1.32.0 onnx==1.23.2)") from None
    return onnxruntime


def is_onnx_export(cfg: Mapping[str, Any]) -> bool:
    """Whether a model config.json describes an ONNX export."""
    backend = cfg.get("backend")
    return isinstance(backend, Mapping) and backend.get("name") == "onnx"


# ---------------------------------------------------------------------------------------------- export
class _EncoderGraph(nn.Module):
    """The content encoder as a function of plain tensors (what ``torch.onnx.export`` traces)."""

    def __init__(self, encoder: ContentEncoder, names: Sequence[str]):
        super().__init__()
        self.encoder = encoder
        self.names = list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.names, tensors))
        if self.encoder.modality == "text":
            batch["special_tokens_mask"] = batch["attention_mask"]  # unused by the embedding; avoids a traced lookup
        return self.encoder(batch)


def _probe_batch(encoder: ContentEncoder) -> tuple[dict[str, torch.Tensor], list[str], dict[str, dict[int, str]]]:
    """A small input batch, the ONNX input names and their dynamic axes."""
    if encoder.modality == "text":
        batch = encoder.collate(["An example sentence to trace the encoder with, of a few more tokens.", "Short one."])
        names = [k for k in TEXT_INPUTS if k in batch]
        return batch, names, {k: {0: "batch", 1: "tokens"} for k in names}
    if encoder.modality == "image":
        size = int(getattr(encoder, "image_size", 224))
        gen = torch.Generator().manual_seed(0)
        return {"pixels": torch.randn(2, 3, size, size, generator=gen)}, ["pixels"], {"pixels": {0: "batch"}}
    raise ConfigError(f"ONNX export covers text and image models; a {encoder.modality} model is a vector lookup "
                      "that gains nothing from it")


def _eager_attention(encoder: ContentEncoder) -> None:
    """Text: eager attention exports the plain MatMul–Softmax graph (int8: ~10 % faster than the SDPA export here)."""
    backbone = getattr(encoder, "backbone", None)
    setter = getattr(backbone, "set_attn_implementation", None)
    if setter is not None:
        try:
            setter("eager")
        except (ValueError, TypeError, AttributeError):
            pass


def _exportable_weights(encoder: ContentEncoder) -> None:
    """Make every weight of ``encoder`` (an export copy, changed in place) an ONNX initializer: a LoRA adapter is
    merged into the backbone weights (:func:`emoembed.adapters.merge_adapters`: the graph is then the plain
    backbone), and state-dict hooks are removed — the TorchScript exporter takes a graph's initializers from
    ``state_dict()``, so a tensor a hook leaves out (a LoRA encoder's frozen backbone) would be baked into the graph
    as a ``Constant`` node, which ``quantize_dynamic`` does not quantise."""
    from emoembed import adapters

    adapters.merge_adapters(encoder)
    for module in encoder.modules():
        module._state_dict_hooks.clear()
        module._state_dict_pre_hooks.clear()


def check_weights_are_initializers(model: Any, min_elements: int = 256) -> None:
    """CheckpointError when an exported ONNX ``ModelProto`` holds a float matrix (≥ 2-D, ≥ ``min_elements`` values)
    in a ``Constant`` node instead of an initializer: dynamic quantisation would leave that weight in fp32."""
    baked = [node.output[0] for node in model.graph.node if node.op_type == "Constant"
             for attr in node.attribute if attr.name == "value" and attr.t.data_type == 1  # TensorProto.FLOAT
             and len(attr.t.dims) >= 2 and int(np.prod(attr.t.dims)) >= min_elements]
    if baked:
        raise CheckpointError(f"ONNX export: {len(baked)} weight matrices were traced as constants, not initializers "
                              f"(first: {baked[0]}); int8 quantisation would skip them; nothing was written")


def soften_attention_mask(model: Any, fill: float = ATTENTION_MASK_FILL) -> int:
    """Replace, in an ONNX ``ModelProto`` (in place), the float32 scalar ``finfo(float32).min`` constants that feed a
    ``Where`` node — the additive attention mask of a traced Hugging Face encoder — by ``fill``. Returns how many
    were replaced (0 for a graph without such a mask, e.g. an image model)."""
    from onnx import numpy_helper

    lowest = float(np.finfo(np.float32).min)
    where_inputs = {name for node in model.graph.node if node.op_type == "Where" for name in node.input}

    def softened(tensor: Any) -> bool:
        value = numpy_helper.to_array(tensor)
        if value.dtype != np.float32 or value.size != 1 or float(value.reshape(())) > lowest * 0.99:
            return False
        tensor.CopyFrom(numpy_helper.from_array(np.full(value.shape, fill, dtype=np.float32), tensor.name))
        return True

    count = 0
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in where_inputs:
            for attr in node.attribute:
                if attr.name == "value" and softened(attr.t):
                    count += 1
    for init in model.graph.initializer:
        if init.name in where_inputs and softened(init):
            count += 1
    return count


def _quantize_int8(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def make_session(path: str | Path, threads: int | None = None,
                 disabled_optimizers: Sequence[str] = DISABLED_OPTIMIZERS):
    """An onnxruntime CPU session: ``threads`` intra-op threads (default: ``torch.get_num_threads()``), sequential
    execution, full graph optimisation except ``disabled_optimizers``. CheckpointError if onnxruntime cannot load
    ``path``."""
    ort = _require_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=[str(x) for x in disabled_optimizers])
    except Exception as exc:  # noqa: BLE001 — onnxruntime raises its own exception types
        raise CheckpointError(f"{path}: onnxruntime cannot load it: {exc}") from None


def export_onnx(model: EmotionModel, directory: str | Path, quantize: str | None = None, opset: int = OPSET) -> Path:
    """Write ``model`` as an ONNX model folder (see the module doc) and return its path.

    ``quantize``: None (fp32) or ``"int8"`` (dynamic quantisation). The export is checked on a probe batch: an fp32
    export whose embeddings differ from torch's by more than 1e-3 raises :class:`CheckpointError` and writes nothing;
    the measured difference is stored in ``config.json`` (``backend.export_check``). Raises :class:`ConfigError` for
    word models, an unknown ``quantize`` mode, an ONNX model (export the torch model) or ``directory`` holding a
    non-export."""
    ort = _require_onnxruntime()
    import onnx

    if quantize not in QUANTIZE_MODES:
        raise ConfigError(f"quantize must be one of {list(QUANTIZE_MODES)}, got {quantize!r}")
    if isinstance(model.encoder, OnnxEncoder):
        raise ConfigError("this model already runs on ONNX; export the torch model it came from")
    directory = Path(directory)
    if (directory / CONFIG_NAME).exists() and not (directory / ONNX_FILE).exists():
        raise ConfigError(f"{directory} holds a model that is not an ONNX export; choose another output folder")
    encoder = copy.deepcopy(model.encoder).cpu().float().eval()
    batch, names, dynamic = _probe_batch(encoder)
    inputs = tuple(batch[k] for k in names)
    with torch.no_grad():
        reference = _EncoderGraph(encoder, names).eval()(*inputs).numpy()  # the torch encoder as loaded
    _exportable_weights(encoder)
    _eager_attention(encoder)
    graph = _EncoderGraph(encoder, names).eval()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side branches (shapes are dynamic)
            torch.onnx.export(graph, inputs, str(raw), dynamo=False, input_names=names, output_names=[OUTPUT_NAME],
                              dynamic_axes={**dynamic, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
                              do_constant_folding=True)
        proto = onnx.load(str(raw))
        check_weights_are_initializers(proto)
        mask_fills = soften_attention_mask(proto)
        onnx.save(proto, str(raw))
        del proto
        current = raw
        if quantize == "int8":
            q = Path(tmp) / "int8.onnx"
            _quantize_int8(current, q)
            current = q
        session = make_session(current, threads=1)
        got = session.run([OUTPUT_NAME], {k: batch[k].numpy() for k in names})[0]
        diff = float(np.abs(got - reference).max())
        cos = float(np.min(np.sum(got * reference, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12)))
        if quantize is None and not diff <= FP32_TOLERANCE:
            raise CheckpointError(f"ONNX export check failed: the exported encoder differs from torch by {diff:.3g} "
                                  f"(> {FP32_TOLERANCE}) on a probe batch; nothing was written")
        atomic_write(directory / ONNX_FILE, lambda t: shutil.copyfile(current, t))
        if encoder.modality == "text":
            _write_tokenizer(encoder, directory, Path(tmp))
    heads = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    save_safetensors_atomic(heads, directory / WEIGHTS_NAME)
    cfg = model.header() | model.config() | integrity_record(heads, model.codec_prefix)
    source = {}
    if encoder.modality == "text":  # self-contained: the tokenizer is in the folder, the backbone comes from hf_config
        enc_cfg = dict(cfg["encoder"])
        source = {k: enc_cfg.pop(k, None) for k in ("backbone", "tokenizer", "lora", "backbone_sha256")}
        cfg["encoder"] = enc_cfg | {"backbone": None, "tokenizer": TOKENIZER_DIR}
    cfg["backend"] = {"name": "onnx", "file": ONNX_FILE, "quantize": quantize, "opset": opset, "inputs": names,
                      "output": OUTPUT_NAME, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
                      "torch": torch.__version__, "attention_mask_fill": ATTENTION_MASK_FILL if mask_fills else None,
                      "disabled_optimizers": list(DISABLED_OPTIMIZERS),
                      "source_encoder": {k: v for k, v in source.items() if v is not None},
                      "export_check": {"max_abs_diff": diff, "min_cosine": cos, "probe_items": int(inputs[0].shape[0])}}
    atomic_write_json(cfg, directory / CONFIG_NAME)
    return directory


def _write_tokenizer(encoder: ContentEncoder, directory: Path, tmp: Path) -> None:
    """The text encoder's tokenizer files into ``directory/tokenizer`` (replacing an older copy as a whole)."""
    staged = tmp / TOKENIZER_DIR
    encoder.tokenizer.save_pretrained(str(staged))
    target = directory / TOKENIZER_DIR
    if target.exists():
        old = tmp / "old-tokenizer"
        target.rename(old)  # removed with tmp
    staged.rename(target)


# ---------------------------------------------------------------------------------------------- loading
class OnnxEncoder(ContentEncoder):
    """A content encoder whose ``forward`` runs an onnxruntime session; everything on the data side
    (``check_items``, ``collate``, ``sort_key``, ``input_report``, ``output_mask``…) is the torch encoder's own.

    ``data_side``: the torch encoder built on the ``meta`` device (no weights). ``forward`` returns (B, d) float32
    CPU tensors. The module has no parameters; the session is not part of any state dict."""

    def __init__(self, data_side: ContentEncoder, session: Any, input_names: Sequence[str]):
        super().__init__(data_side.dim)
        self.__dict__["_data_side"] = data_side  # not a submodule: its meta tensors stay out of state_dict()
        self.__dict__["session"] = session
        self.modality = data_side.modality
        self.input_names = list(input_names)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_data_side"], name)

    @property
    def data_side(self) -> ContentEncoder:
        return self.__dict__["_data_side"]

    def check_items(self, items: Sequence[Any], where: str = "input", rows: Sequence[str] | None = None) -> list[Any]:
        return self.data_side.check_items(items, where, rows)

    def collate(self, items: Sequence[Any], train: bool = False) -> dict[str, torch.Tensor]:
        return self.data_side.collate(items, train=False)

    def input_report(self, items: Sequence[Any]) -> dict[str, Any]:
        return self.data_side.input_report(items)

    def sort_key(self, item: Any) -> float:
        return self.data_side.sort_key(item)

    def sort_keys(self, items: Sequence[Any]) -> Sequence[float]:
        return self.data_side.sort_keys(items)

    def output_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        fn = getattr(self.data_side, "output_mask", None)
        return fn(batch) if fn is not None else None

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feeds = {k: batch[k].cpu().numpy() for k in self.input_names}
        return torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0])

    def config(self) -> dict[str, Any]:
        return self.data_side.config()


def load_onnx_model(directory: str | Path, threads: int | None = None) -> EmotionModel:
    """The :class:`~emoembed.model.EmotionModel` of an ONNX export folder (written by :func:`export_onnx`).
    Raises :class:`CheckpointError` when the folder is not an export or its files are missing or unreadable."""
    from emoembed.model_zoo import resolve_model_dir

    directory = resolve_model_dir(directory)
    cfg = read_config(directory, EmotionModel.model_type)
    if not is_onnx_export(cfg):
        raise CheckpointError(f"{directory} holds a torch model, not an ONNX export; write one with "
                              f"`emoembed export-onnx --model {directory} --out DIR` (or EmotionModel.export_onnx)")
    backend = cfg["backend"]
    onnx_path = directory / str(backend.get("file", ONNX_FILE))
    if not onnx_path.is_file():
        raise CheckpointError(f"{onnx_path}: ONNX file not found")
    EmotionModel.validate_saved_config(cfg, directory / CONFIG_NAME)
    with torch.device("meta"):  # the torch model's shape only: no weights are allocated
        shell = EmotionModel.from_saved_config(cfg, directory / CONFIG_NAME)
    data_side = shell.encoder.eval()
    disabled = backend.get("disabled_optimizers", list(DISABLED_OPTIMIZERS))
    encoder = OnnxEncoder(data_side, make_session(onnx_path, threads, disabled), backend.get("inputs", list(TEXT_INPUTS)))
    codec = EmotionCodec.from_config(cfg["codec"])
    direct = DirectHeads(shell.direct_heads.formats, encoder.dim) if shell.direct_heads is not None else None
    model = OnnxEmotionModel(encoder, codec, direct, shell.meta)
    state = load_safetensors(directory / WEIGHTS_NAME)
    load_state_strict(model, state, directory / WEIGHTS_NAME)
    verify_weights(cfg, state, directory, model.codec_prefix)  # digests in config.json, no NaN/Inf
    model.eval()
    model.backend_info = dict(backend)
    return model


class OnnxEmotionModel(EmotionModel):
    """An :class:`EmotionModel` whose content encoder runs on onnxruntime (CPU); the heads stay in torch."""

    backend = "onnx"

    def export_onnx(self, directory: str | Path, quantize: str | None = None) -> Path:
        raise ConfigError("this model already runs on ONNX; export the torch model it came from")

    def save_pretrained(self, directory: str | Path, extra_config: Mapping[str, Any] | None = None) -> Path:
        raise ConfigError("an ONNX model folder is written by export_onnx from the torch model; copy the folder instead")

"""`encoderflow export MODEL --format onnx [--int8] -o DIR`: a fine-tuned model as an ONNX folder.

    export("models/finetuned", Path("exported"))                 # fp32, checked against torch
    export("models:/encoderflow@champion", Path("q"), int8=True)  # the version's torch folder, int8

MODEL is a folder written by TextClassifier.save (models/finetuned, models/teacher) or a
registry URI of a torch-served version (its "model" artifact is such a folder). DIR gets
what registry/onnx_pyfunc.py serves: model.onnx, tokenizer.json, onnx.json (+ biencoder/).

Every export is checked before DIR appears (atomically, nothing on failure): the fp32 graph
must give torch's probabilities and pooled vectors within PROBE_TOLERANCE on probe texts
(random token sequences of every length up to max_length), or the export is refused; an int8
graph must hold quantized weights and load in ONNX Runtime, or `--int8` is refused with the
family named. `parity` is the same comparison on real texts (register runs it on the test split).
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.core.errors import DataError, EncoderflowError, first_line
from components.registry import onnx_runtime as served

FORMATS = ("onnx",)
PROBE_TOLERANCE = 1e-4  # max |p_onnx - p_torch| on probe texts (fp32 exports only)
# What dynamic quantization turns into int8 matrix products: the weights of MatMul / Gemm
# (linear layers, heads), Conv and LSTM. Embedding lookups (Gather) stay fp32: int8 does not
# speed a lookup up, and one scale for a whole embedding table costs accuracy.
QUANTIZE_OPS = ("MatMul", "Gemm", "Conv", "LSTM", "Attention")
INT8_OPS = ("MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul", "QAttention")


def family_of(clf) -> str:
    """'transformer' | 'lstm' | 'cnn' | 'static' | ... for our encoders, 'hf:<model_type>' for a
    Hugging Face backbone (the teacher)."""
    backbone = clf.net.backbone
    if hasattr(backbone, "cfg"):
        return str(backbone.cfg.family)
    return f"hf:{backbone.model.config.model_type}"


def load_torch(folder: Path):
    """The TextClassifier in `folder`; an incomplete folder or one of an unknown family is a
    one-line DataError naming the folder."""
    from components.model.classifier import TextClassifier

    if served.is_export(folder):
        raise DataError(f"{folder}: already an ONNX export (export its torch model folder instead)")
    try:
        return TextClassifier.from_folder(folder)
    except DataError:
        raise
    except EncoderflowError as e:  # e.g. model.family: expected transformer | lstm | cnn, got 'gru'
        raise DataError(f"{folder}: cannot export this model ({e})") from None


def source_folder(model: str, workdir: Path) -> Path:
    """MODEL's torch model folder: MODEL itself, or for a registry URI the version's "model"
    artifact, downloaded under `workdir` (the caller points mlflow at the registry first)."""
    if ":/" not in model:  # not a URI (models:/..., runs:/..., s3://...): a folder
        folder = Path(model)
        if not folder.is_dir():
            raise DataError(f"{folder}: model folder not found (expected a folder written by finetune or "
                            "teacher, or a registry URI such as models:/NAME@champion)")
        return folder
    import mlflow
    import yaml

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=str(workdir)))
        spec = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
        path = spec["flavors"]["python_function"]["artifacts"]["model"]["path"]
    except Exception as e:  # noqa: BLE001 - MlflowException, OSError, KeyError: not such a model
        raise DataError(f"model {model!r} could not be read as an encoderflow version ({first_line(e, 200)})") from None
    return local / path


def probe_texts(tokenizer, max_length: int, pair: bool, n: int = 96, seed: int = 0) -> list:
    """n texts decoded from random token ids, lengths spread from 1 to past max_length (so
    truncation is exercised); pair: (text, text_pair) tuples. Deterministic per seed."""
    rng = random.Random(seed)
    vocab = tokenizer.get_vocab_size()

    def text(i: int) -> str:
        length = 1 + (i * 7919) % (max_length + 8)
        return tokenizer.decode([rng.randrange(vocab) for _ in range(length)])

    return [(text(i), text(i + n)) if pair else text(i) for i in range(n)]


@dataclass
class Parity:
    """ONNX vs torch on the same texts."""
    n: int
    prob_diff: float  # max |p_onnx - p_torch| over texts and classes
    embed_diff: float  # max |v_onnx - v_torch| / max(1, max |v_torch|) over pooled (and bi-encoder) vectors
    agree: float  # share of texts with the same decision (argmax; multi_label: the same label set)

    def ok(self, tolerance: float) -> bool:
        return self.prob_diff <= tolerance and self.embed_diff <= tolerance

    def describe(self) -> str:
        return (f"max |dp| {self.prob_diff:.2e}, max |d embedding| {self.embed_diff:.2e}, "
                f"same decision on {self.agree:.2%} of {self.n} texts")


def _scaled_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(a).max()))) if a.size else 0.0


def parity(torch_clf, onnx_clf, texts: list, batch_size: int = 64) -> Parity:
    """Compare the two models on `texts` (pair models: (text, text_pair) tuples)."""
    p_t, p_o = torch_clf.predict_proba(texts, batch_size), onnx_clf.predict_proba(texts, batch_size)
    diffs = [_scaled_diff(torch_clf.embed(texts, batch_size), onnx_clf.embed(texts, batch_size))]
    if torch_clf.biencoder is not None:
        singles = [t[0] if isinstance(t, tuple) else t for t in texts]
        diffs.append(_scaled_diff(torch_clf.biencoder.embed(singles, batch_size),
                                  onnx_clf.biencoder.embed(singles, batch_size)))
    if torch_clf.multi_label:
        same = (torch_clf.decide(p_t) == torch_clf.decide(p_o)).all(axis=1)
    else:
        same = p_t.argmax(axis=1) == p_o.argmax(axis=1)
    return Parity(len(texts), float(np.abs(p_t - p_o).max()) if p_t.size else 0.0, max(diffs),
                  float(same.mean()) if len(same) else 1.0)


def quantize(src: Path, dst: Path, family: str) -> int:
    """Dynamic int8 quantization of `src` into `dst` (ONNX Runtime's quantize_dynamic); returns
    the number of int8 operators. None, or a graph ONNX Runtime cannot load, is a DataError."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from components.registry.onnx_graph import quiet

    try:
        with quiet(""):  # its "consider pre-processing" advice goes to the root logger
            quantize_dynamic(src, dst, op_types_to_quantize=list(QUANTIZE_OPS), weight_type=QuantType.QInt8)
        count = sum(node.op_type in INT8_OPS for node in onnx.load(str(dst)).graph.node)
        if count == 0:
            raise ValueError("no weight matrix was quantized")
        served.session(dst)  # ONNX Runtime must have kernels for every quantized operator
    except Exception as e:  # noqa: BLE001 - quantizer and runtime errors alike
        raise DataError(f"--int8: ONNX Runtime cannot quantize the {family} model ({first_line(e, 200)})") from None
    return count


def write_graph(module, out: Path, meta: dict, tokenizer, outputs: tuple[str, ...], family: str,
                what: str) -> None:
    """model.onnx (fp32), tokenizer.json and onnx.json into `out` (created)."""
    from components.registry.onnx_graph import exportable, to_onnx

    out.mkdir(parents=True, exist_ok=True)
    opset = to_onnx(exportable(module), out / served.GRAPH, meta["max_length"], meta["pad_id"], outputs, what)
    tokenizer.save(str(out / served.TOKENIZER))
    meta = {**meta, "format": served.FORMAT, "kind": served.KIND, "family": family, "outputs": list(outputs),
            "precision": "fp32", "opset": opset}
    (out / served.CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def quantize_folder(folder: Path) -> None:
    """Turn an fp32 export (and its bi-encoder) into int8 in place: each model.onnx quantized,
    onnx.json's precision "int8"."""
    for config in sorted(Path(folder).rglob(served.CONFIG)):
        meta = json.loads(config.read_text(encoding="utf-8"))
        graph = config.parent / served.GRAPH
        tmp = graph.with_name("model.int8.onnx")
        quantize(graph, tmp, meta["family"])
        tmp.replace(graph)
        meta["precision"] = "int8"
        config.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_classifier(clf, out: Path, int8: bool = False, what: str = "model") -> tuple[Parity, Parity | None]:
    """Write `clf` (a TextClassifier, and its bi-encoder) as an exported folder into `out`.
    The fp32 graph is compared with torch on probe texts and refused above PROBE_TOLERANCE;
    with int8 it is then quantized. Returns (fp32 check, int8 check or None)."""
    from components.registry.onnx_graph import EMBEDDING, OUTPUTS, ClassifierGraph, EmbeddingGraph

    family = family_of(clf)
    meta = {"labels": clf.labels, "task": clf.task, "thresholds": clf.thresholds, "max_length": clf.max_length,
            "pad_id": clf.pad_id, "hidden_size": int(clf.net.backbone.output_size), "source": clf.meta.get("kind", "")}
    if clf.biencoder is not None:
        from components.model.biencoder import SUBFOLDER

        bi = clf.biencoder
        meta["bi_encoder"] = {"folder": SUBFOLDER, "positive": bi.positive}
        write_graph(EmbeddingGraph(bi.net), out / SUBFOLDER, {"max_length": bi.max_length, "pad_id": bi.pad_id,
                    "positive": bi.positive, "task": clf.task}, bi.tokenizer, EMBEDDING, family,
                    f"{what} (bi-encoder)")
    write_graph(ClassifierGraph(clf.net, clf.multi_label), out, meta, clf.tokenizer, OUTPUTS, family, what)
    probes = probe_texts(clf.tokenizer, clf.max_length, clf.pair)
    check = parity(clf, served.OnnxClassifier(out), probes)
    if not check.ok(PROBE_TOLERANCE):
        raise DataError(f"{what}: the ONNX graph of this {family} model differs from torch "
                        f"({check.describe()}; tolerance {PROBE_TOLERANCE:g}); nothing exported")
    if not int8:
        return check, None
    quantize_folder(out)
    return check, parity(clf, served.OnnxClassifier(out), probes)


def export(model: str, out: Path, int8: bool = False, fmt: str = "onnx") -> tuple[str, Parity, Parity | None]:
    """Export MODEL (folder or registry URI) into the folder `out`, atomically (an earlier export
    there is replaced; any other existing folder is refused): (family, fp32 check, int8 check)."""
    from components.core.atomic import atomic_dir

    if fmt not in FORMATS:
        raise DataError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() and not (out.is_dir() and (served.is_export(out) or not any(out.iterdir()))):
        raise DataError(f"{out}: exists and is not an earlier export; choose a new output folder (nothing written)")
    with tempfile.TemporaryDirectory(prefix="encoderflow-export-") as work:
        clf = load_torch(source_folder(model, Path(work)))
        with atomic_dir(out) as tmp:
            fp32, q = export_classifier(clf, tmp, int8, what=model)
    return family_of(clf), fp32, q

"""An exported ONNX model behind ONNX Runtime, without torch or MLflow: what `encoderflow
predict --model EXPORT_DIR` runs, and what the ONNX pyfunc (registry/onnx_pyfunc.py) wraps.

The folder is one written by `encoderflow export` (registry/onnx_export.py); its layout is in
registry/onnx_pyfunc.py. Importing this module costs onnxruntime, tokenizers and numpy only
(MLflow alone takes about 2 s to import), so a local export scores from a cold start fast.

    clf = OnnxClassifier.from_folder("exported")
    clf.predict_proba(["a fine film"])              # np.ndarray [1, C] float32
    clf.embed(["a fine film"])                      # np.ndarray [1, H] float32
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from components.core.errors import DataError
from components.registry.onnx_tokens import (
    PAD_MULTIPLE,
    TOKENS_PER_ROW,
    batch_rows,
    encode,
    pad_rows,
    sep_token_id,
)

KIND = "encoderflow.onnx"
FORMAT = 1
GRAPH, CONFIG, TOKENIZER = "model.onnx", "onnx.json", "tokenizer.json"
INPUTS = ("input_ids", "attention_mask")


def is_export(folder: str | Path) -> bool:
    """Whether `folder` holds an exported model (its onnx.json)."""
    return (Path(folder) / CONFIG).is_file()


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session. Threads: `threads`, else OMP_NUM_THREADS (the knob torch
    reads too), else ONNX Runtime's default (one per physical core)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or os.environ.get("OMP_NUM_THREADS") or 0)
    opts.inter_op_num_threads = 1
    # Shapes change with every batch: a memory pattern planned for one shape is never reused,
    # and caching one per shape grows the server's RSS.
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# Texts tokenized at once. Measured on the student (benchmarks/serve_load.py's 10,000-text
# request, MALLOC_ARENA_MAX=2): tokenizing all 10,000 at once left the process 45 MiB larger for
# good, 1,024 at a time 4-6 MiB (with or without those glibc settings).
ENCODE_CHUNK = 1024


class OnnxNet:
    """One exported graph + its tokenizer: texts -> one of the graph's outputs, [N, D] float32."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        from tokenizers import Tokenizer

        folder = Path(folder)
        for name in (GRAPH, CONFIG, TOKENIZER):
            if not (folder / name).is_file():
                raise DataError(f"{folder / name}: not found (expected a folder written by `encoderflow export`)")
        try:
            self.meta = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
            if self.meta.get("kind") != KIND:
                raise KeyError("kind")
            self.max_length, self.pad_id = int(self.meta["max_length"]), int(self.meta["pad_id"])
            self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        except Exception as e:  # noqa: BLE001 - JSON, key, type errors; tokenizers raises plain Exception
            raise DataError(f"{folder}: not a valid exported model folder ({type(e).__name__}: {e})") from None
        self.tokenizer.no_padding()
        self.pair = self.meta.get("task") == "pair" and "probs" in self.meta["outputs"]
        self.sep_id = sep_token_id(self.tokenizer) if self.pair else -1
        self.session = session(folder / GRAPH, threads)

    def encode(self, texts: list) -> list[list[int]]:
        """Token ids per text (pair: per (text, text_pair) tuple), truncated as in training."""
        return encode(self.tokenizer, texts, self.max_length, self.sep_id if self.pair else None)

    def run(self, texts: list, output: str, batch_size: int = 64) -> np.ndarray:
        """`output` of the graph for every text, [N, D] float32 in input order; length-sorted,
        bounded batches (onnx_tokens.batch_rows) as the torch model runs them, tokenized
        ENCODE_CHUNK texts at a time."""
        result = None
        for start in range(0, len(texts), ENCODE_CHUNK):
            seqs = self.encode(texts[start:start + ENCODE_CHUNK])
            for idx in batch_rows([len(s) for s in seqs], batch_size, batch_size * TOKENS_PER_ROW):
                ids, mask = pad_rows([seqs[i] for i in idx], self.pad_id)  # [b, T] int64 each
                values = self.session.run([output], {INPUTS[0]: ids, INPUTS[1]: mask})[0]  # [b, D]
                if result is None:
                    result = np.empty((len(texts), values.shape[1]), dtype=np.float32)
                result[start + np.asarray(idx)] = values
        return result if result is not None else np.zeros((0, 0), dtype=np.float32)

    def warm_up(self, batch_size: int = 64) -> None:
        """Run the largest batches `run` can form, so ONNX Runtime's memory arena (which keeps
        what it once grew to) reaches its high-water mark before the first request: the most
        tokens (batch_size * TOKENS_PER_ROW, as batch_rows bounds them) at the widest padded
        width (max_length; the most attention memory) and at TOKENS_PER_ROW. A server's RSS
        at ready is then its RSS after any request (benchmarks/serve_load.py)."""
        budget = batch_size * TOKENS_PER_ROW
        widest = -(-self.max_length // PAD_MULTIPLE) * PAD_MULTIPLE
        for width in sorted({min(TOKENS_PER_ROW, widest), widest}):
            rows = max(1, min(batch_size, budget // width))
            ids = np.full((rows, width), self.pad_id, dtype=np.int64)
            self.session.run([self.meta["outputs"][0]], {INPUTS[0]: ids, INPUTS[1]: np.ones_like(ids)})


class OnnxBiEncoder:
    """A pair model's bi-encoder: single texts -> unit vectors [N, H] (BiEncoder's interface)."""

    def __init__(self, folder: Path, threads: int | None = None):
        self.net = OnnxNet(folder, threads)
        self.positive = str(self.net.meta.get("positive", ""))

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.net.run(list(texts), "text_embedding", batch_size)


class OnnxClassifier:
    """TextClassifier's inference interface over an exported folder (what frames.respond reads)."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        self.folder = Path(folder)
        self.net = OnnxNet(self.folder, threads)
        meta = self.net.meta
        self.meta, self.labels, self.task = meta, list(meta["labels"]), meta.get("task", "single_label")
        self.thresholds = [float(t) for t in meta.get("thresholds") or [0.5] * len(self.labels)]
        sub = meta.get("bi_encoder")
        self.biencoder = OnnxBiEncoder(self.folder / sub["folder"], threads) if sub else None

    @classmethod
    def from_folder(cls, folder: str | Path, threads: int | None = None) -> "OnnxClassifier":
        return cls(folder, threads)

    @property
    def pair(self) -> bool:
        return self.task == "pair"

    @property
    def multi_label(self) -> bool:
        return self.task == "multi_label"

    def predict_proba(self, texts: list, batch_size: int = 64) -> np.ndarray:
        """[N, C] float32: softmax rows (multi_label: independent sigmoids), columns in labels order."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.net.run(texts, "probs", batch_size)

    def warm_up(self) -> None:
        """Grow ONNX Runtime's memory arena to its high-water mark now (OnnxNet.warm_up):
        what a server calls at load, so its memory does not climb on the first large request."""
        self.net.warm_up()
        if self.biencoder is not None:
            self.biencoder.net.warm_up()

    def embed(self, texts: list, batch_size: int = 64) -> np.ndarray:
        """The pooled vectors [N, H] float32 the head reads."""
        if len(texts) == 0:
            return np.zeros((0, int(self.meta["hidden_size"])), dtype=np.float32)
        return self.net.run(texts, "pooled", batch_size)

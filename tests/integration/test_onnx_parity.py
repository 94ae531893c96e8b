"""ONNX export parity: every family, task and output against the torch model it came from.

For each case of tests/onnx_models.py (transformer, lstm, cnn, the static stand-in, the tiny
BERT teacher, multi_label, pair + bi-encoder), a tiny model TRAINED on its synthetic task:
- fp32: the ONNX pyfunc's answer (frames.respond over OnnxClassifier) equals the torch one's
  column for column: the same labels, probabilities within 1e-4, `embedding` vectors within 1e-4;
- int8 (ONNX Runtime dynamic quantization): the same decision (argmax; multi_label: the same
  label set) on >= 99% of 600 unseen texts (at most 6 flips), while the model is confident
  (its accuracy on those texts is checked first, so the argmax is no coin flip).
The LSTM's export formulation (no packed sequences) is also checked in torch alone.
"""

from __future__ import annotations

import contextlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from builders import onnx_models as om
from components.registry import onnx_export
from components.registry.frames import respond
from components.registry.onnx_runtime import CONFIG, GRAPH, OnnxClassifier

TOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """case -> (torch classifier, (texts, gold), fp32 export folder, int8 export folder), built on demand."""
    cache: dict = {}
    base = tmp_path_factory.mktemp("onnx_parity")

    def get(case: str):
        if case not in cache:
            root = base / om.CASES[case][0]
            root.mkdir(exist_ok=True)
            with contextlib.chdir(root):
                clf, data = om.build(root, case)
            fp32, q = base / f"{case}-fp32", base / f"{case}-int8"
            onnx_export.export_classifier(clf, fp32, what=case)
            shutil.copytree(fp32, q)
            onnx_export.quantize_folder(q)
            cache[case] = clf, data, fp32, q
        return cache[case]

    return get


def frame_of(texts: list) -> pd.DataFrame:
    if isinstance(texts[0], tuple):
        return pd.DataFrame({"text": [a for a, _ in texts], "text_pair": [b for _, b in texts]})
    return pd.DataFrame({"text": texts})


def accuracy(clf, texts: list, gold: list) -> float:
    """Share of texts whose decision is the gold label (multi_label: per label and text)."""
    probs = clf.predict_proba(texts)
    if clf.multi_label:
        truth = np.array([[name in g for name in clf.labels] for g in gold])
        return float((clf.decide(probs).astype(bool) == truth).mean())
    return float(np.mean([clf.labels[i] == g for i, g in zip(probs.argmax(1), gold)]))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(om.CASES))
def test_fp32_answers_like_torch(exported, case):
    clf, (texts, gold), fp32, _ = exported(case)
    assert accuracy(clf, texts, gold) >= 0.8, "the tiny model did not learn its task"
    onnx = OnnxClassifier(fp32)
    meta = json.loads((fp32 / CONFIG).read_text())
    assert meta["precision"] == "fp32" and meta["family"] == onnx_export.family_of(clf)
    frame = frame_of(texts)
    want, got = respond(clf, frame), respond(onnx, frame)
    assert list(got.columns) == list(want.columns) and len(got) == len(texts)
    decided = "labels" if clf.multi_label else "label"
    assert got[decided].tolist() == want[decided].tolist()
    probs = [c for c in want.columns if c.startswith("prob_")]
    assert np.abs(got[probs].to_numpy() - want[probs].to_numpy()).max() <= TOL
    vec_t, vec_o = (respond(m, frame, {"output": "embedding", "batch_size": 16}) for m in (clf, onnx))
    assert vec_o.dtype == np.float32 and vec_o.shape == vec_t.shape
    assert np.abs(vec_o - vec_t).max() <= TOL
    if clf.biencoder is not None:  # embedding = the bi-encoder's unit vector of each text
        assert vec_o.shape == (len(texts), clf.biencoder.dim)
        assert np.allclose(np.linalg.norm(vec_o, axis=1), 1.0, atol=1e-5)
        assert np.abs(onnx.embed(texts) - clf.embed(texts)).max() <= TOL  # and the cross-encoder's pooled vector


@pytest.mark.slow
@pytest.mark.parametrize("case", list(om.CASES))
def test_int8_keeps_the_decision(exported, case):
    clf, (texts, _), fp32, q = exported(case)
    check = onnx_export.parity(clf, OnnxClassifier(q), texts)
    assert check.n == om.N_TEXTS and check.agree >= 0.99, check.describe()
    assert check.prob_diff > 0  # really another graph: quantized weights
    meta = json.loads((q / CONFIG).read_text())
    assert meta["precision"] == "int8"
    import onnx

    ops = {n.op_type for n in onnx.load(str(q / GRAPH)).graph.node}
    assert ops & set(onnx_export.INT8_OPS), ops


def test_padded_lstm_computes_the_packed_lstm():
    """PaddedLSTM (what the lstm family exports as) equals LSTMBody on right-padded rows of mixed lengths."""
    from components.model.encoder import EncoderConfig, build_encoder
    from components.registry.onnx_graph import exportable

    torch.manual_seed(0)
    cfg = EncoderConfig(family="lstm", vocab_size=50, pad_id=0, hidden_size=12, num_layers=3, num_heads=1,
                        ffn_size=8, bias=True, positions="learned", max_length=20, pooling="mean",
                        kernel_sizes=(3,))
    enc = build_encoder(cfg).eval()
    padded = exportable(enc)
    assert type(padded.body).__name__ == "PaddedLSTM" and type(enc.body).__name__ == "LSTMBody"
    lengths = torch.tensor([20, 1, 7, 13, 2])
    mask = torch.arange(20)[None, :] < lengths[:, None]  # [5, 20]
    ids = torch.randint(1, 50, (5, 20)) * mask
    with torch.no_grad():
        (s_ref, p_ref), (s_new, p_new) = enc(ids, mask), padded(ids, mask)
    assert torch.allclose(s_new, s_ref, atol=1e-6) and torch.allclose(p_new, p_ref, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["transformer", "pair"])
def test_tokenizing_in_chunks_answers_the_same(exported, monkeypatch, case):
    """A request bigger than ENCODE_CHUNK is tokenized a chunk at a time (bounded memory): each
    text still gets the probabilities and vectors it gets in one pass, in input order."""
    from components.registry import onnx_runtime

    _, (texts, _), fp32, _ = exported(case)
    onnx = OnnxClassifier(fp32)
    whole_p, whole_v = onnx.predict_proba(texts), onnx.embed(texts)
    monkeypatch.setattr(onnx_runtime, "ENCODE_CHUNK", 37)  # 600 texts: 17 chunks, the last partial
    assert np.abs(onnx.predict_proba(texts) - whole_p).max() <= 1e-6
    assert np.abs(onnx.embed(texts) - whole_v).max() <= 1e-6


class _Recorder:
    """An ONNX Runtime session that records the shape of every input_ids it is run on."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, outputs, feeds, *args):
        self.shapes.append(feeds["input_ids"].shape)
        return self.session.run(outputs, feeds, *args)


@pytest.mark.slow
@pytest.mark.parametrize("case, max_length", [("transformer", None), ("pair", None), ("cnn", 250)])
def test_warm_up_runs_the_largest_batches_and_changes_no_answer(exported, case, max_length):
    """warm_up (what a served ONNX version runs at load) runs each graph on the largest batches
    `run` can form (the most tokens batch_rows allows, at the widest padded width and at
    TOKENS_PER_ROW), the bi-encoder's too; answers after it are those of a fresh session.
    The CNN has no position table, so it also takes a width above the one it was trained at:
    warmed as if for 250 tokens, it runs both widths."""
    from components.model.tokens import PAD_MULTIPLE, TOKENS_PER_ROW, batch_rows

    _, (texts, _), fp32, _ = exported(case)
    before = OnnxClassifier(fp32).predict_proba(texts)
    onnx = OnnxClassifier(fp32)
    nets = [onnx.net] + ([onnx.biencoder.net] if onnx.biencoder is not None else [])
    assert len(nets) == (2 if case == "pair" else 1)
    trained = onnx.net.max_length
    for net in nets:
        net.session, net.max_length = _Recorder(net.session), max_length or trained
    onnx.warm_up()
    widest = -(-(max_length or trained) // PAD_MULTIPLE) * PAD_MULTIPLE
    # the first batch batch_rows cuts from many texts of each of the two lengths
    want = [(len(batch_rows([n] * 1000, 64, 64 * TOKENS_PER_ROW)[0]), n)
            for n in sorted({min(TOKENS_PER_ROW, widest), widest})]
    assert len(want) == (2 if max_length else 1)
    for net in nets:
        assert net.session.shapes == want
        net.max_length = trained
    assert np.abs(onnx.predict_proba(texts) - before).max() <= 1e-6

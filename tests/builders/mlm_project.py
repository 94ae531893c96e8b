"""A tiny pretraining project: its own WordPiece tokenizer + a data/tokenized DatasetDict.

`write_tiny_project(root)` writes models/tokenizer and data/tokenized the way the tokenize
stage leaves them (random sentences over WORDS; train 160, val 30, test 20, unlabeled 60),
without running that stage. `new_project(data, root)` copies such a project into `root`
(tests/conftest.py: the `tiny_data` / `tiny_project` fixtures). `tiny_cfg(**pretrain)` is
a one-layer, hidden-32 encoder with an 8-step pretraining budget; `weights(paths)` reads the
saved encoder's tensors.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from components.core.config import parse_params
from components.core.paths import Paths

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "the a film movie good bad great dull plot actor story funny boring scene music long short " \
        "love hate best worst fine slow fast dark bright sad happy odd new old script cast ending".split()


def write_tiny_project(root):
    """A tiny WordPiece tokenizer + data/tokenized DatasetDict per the data contract."""
    import datasets
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    rng = random.Random(0)
    texts = {s: [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(n)]
             for s, n in (("train", 160), ("val", 30), ("test", 20), ("unlabeled", 60))}
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts["train"] + texts["unlabeled"],
                            trainers.WordPieceTrainer(vocab_size=150, special_tokens=SPECIAL))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    paths = Paths.at(root)
    paths.tokenizer_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(paths.tokenizer))
    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "label": datasets.Value("int64")})
    dd = datasets.DatasetDict({
        s: datasets.Dataset.from_dict({"input_ids": [e.ids for e in tok.encode_batch(t)],
                                       "label": [-1 if s == "unlabeled" else i % 2 for i in range(len(t))]},
                                      features=features)
        for s, t in texts.items()})
    dd.save_to_disk(str(paths.tokenized))
    return paths


def new_project(tiny_data: Paths, root: Path) -> Paths:
    """A copy of the project `tiny_data` (its models/ and data/) in `root`."""
    for sub in ("models", "data"):
        shutil.copytree(tiny_data.root / sub, Path(root) / sub)
    return Paths.at(root)


def tiny_cfg(**pretrain):
    raw = {"model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "ffn_size": 64, "max_length": 32},
           "pretrain": {"max_steps": 8, "batch_size": 4, "seq_len": 32, "checkpoint_every": 4,
                        "val_every": 4, "precision": "32", "warmup_fraction": 0.25, "vector_weight": 0,
                        **pretrain}}
    return parse_params(raw)


def weights(paths):
    from safetensors.torch import load_file

    return load_file(str(paths.pretrained / "model.safetensors"))

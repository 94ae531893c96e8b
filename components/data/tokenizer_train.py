"""Build and train the project tokenizer (HF `tokenizers`), deterministically.

One pipeline for the three model types:
- normalizer: NFC, then BertNormalizer (control characters removed, every
  whitespace character becomes " ", optional lowercase; accents are KEPT).
- pre-tokenizer: every CJK ideograph is its own piece (so Chinese, which has
  no spaces, works), then whitespace/punctuation splitting in the model's style.
- post-processor: "[CLS] $A [SEP]"; special ids [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
  [MASK]=4 are a contract with every later stage.

| model     | splitting after CJK          | decoder    | decode(encode(x))                  |
|-----------|------------------------------|------------|------------------------------------|
| wordpiece | BertPreTokenizer (ws + punct)| WordPiece  | pieces joined by " " ("a , b !")   |
| bpe       | ByteLevel (GPT-2 regex)      | ByteLevel  | the normalized text, exactly; no UNK |
| unigram   | Punctuation + Metaspace      | Metaspace  | the normalized text, exactly        |

Determinism: tokenizers' WordPieceTrainer assigns ids to "##x" tokens in hash-map
order and breaks merge ties by id, so two trainings on the same data differ
(huggingface/tokenizers#1794). `_train_wordpiece` runs the same BPE merge
algorithm with the continuation form of each character encoded as its own
symbol, so every id is assigned in sorted order (on the Rotten Tomatoes sample
it differs from WordPieceTrainer only where that one broke a tie: 4 of 8000
tokens). UnigramTrainer sums floats in hash-map order and scores unlearned
required characters in hash-set order: `_canonical_unigram` undoes both. BPE
(no subword prefix) is deterministic as is.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Iterable

from components.core.config import TokenizeConfig
from components.core.errors import EncoderflowError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)

# BERT's "Chinese character" blocks (CJK Unified Ideographs + extensions A-E,
# compatibility ideographs). Kana and Hangul are not split per character.
CJK_CLASS = ("[\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f"
             "\U0002b740-\U0002b81f\U0002b820-\U0002ceaf\uf900-\ufaff\U0002f800-\U0002fa1f]")
REPEAT_CHUNK = 1024  # copies of a word per sequence fed to the shadow BPE trainer
UNIGRAM_SCORE_DECIMALS = 6  # log-prob precision kept; hides float-summation-order noise (~1e-15)


def build_tokenizer(model: str, lowercase: bool):
    """An untrained Tokenizer with the normalizer, pre-tokenizer and decoder of `model`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    cjk = pre_tokenizers.Split(Regex(CJK_CLASS), behavior="isolated")
    if model == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        pre = [cjk, pre_tokenizers.BertPreTokenizer()]
        # cleanup=False: the default cleanup rewrites " do not" to " don't".
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    elif model == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        pre = [cjk, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        tok.decoder = decoders.ByteLevel()
    elif model == "unigram":
        tok = Tokenizer(models.Unigram())
        # "first": only the text's first piece gets a leading "▁", so pieces split
        # off by CJK/punctuation keep no phantom space and decoding is exact.
        pre = [cjk, pre_tokenizers.Punctuation("isolated"), pre_tokenizers.Metaspace(prepend_scheme="first")]
        tok.decoder = decoders.Metaspace(prepend_scheme="first")
    else:
        raise EncoderflowError(f"tokenize.model: expected wordpiece, bpe or unigram, got {model!r}")
    tok.normalizer = normalizers.Sequence([
        normalizers.NFC(),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                   strip_accents=False, lowercase=lowercase),
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence(pre)
    return tok


def train_tokenizer(texts: Iterable[str], cfg: TokenizeConfig, show_progress: bool = True,
                    length: int | None = None):
    """Train on `texts` (train + unlabeled (+ corpus) only; the caller guarantees that).

    `texts` is read once, in order: a list, or an iterator that streams a corpus bigger than
    RAM (`length` = its number of texts, for the progress bar). What training keeps is a count
    per distinct word (ours for wordpiece, the `tokenizers` trainer's for bpe / unigram).
    `cfg.min_frequency` is ignored for unigram (its trainer prunes by likelihood).
    """
    from tokenizers import pre_tokenizers, processors, trainers

    if length is None:
        length = len(texts)
    tok = build_tokenizer(cfg.model, cfg.lowercase)
    specials = list(SPECIAL_TOKENS)
    if cfg.model == "wordpiece":
        _train_wordpiece(tok, texts, cfg, show_progress, length)
    elif cfg.model == "bpe":
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress)
        tok.train_from_iterator(texts, trainer=trainer, length=length)
    else:
        trainer = trainers.UnigramTrainer(vocab_size=cfg.vocab_size, special_tokens=specials,
                                          unk_token="[UNK]", show_progress=show_progress)
        tok.train_from_iterator(texts, trainer=trainer, length=length)
        _canonical_unigram(tok)
    # Registers them as special (never split, skipped by decode); ids stay 0..4
    # because the model vocab already holds them there.
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)])
    got = [tok.token_to_id(t) for t in SPECIAL_TOKENS]
    if got != list(range(len(SPECIAL_TOKENS))):  # the id contract; a library change would break it
        raise EncoderflowError(f"special token ids {dict(zip(SPECIAL_TOKENS, got))}, expected 0..4",
                               stage="tokenize")
    return tok


def _symbols(n: int) -> list[str]:
    """`n` distinct single-character stand-ins: no ASCII, whitespace or surrogates.

    >>> len(set(_symbols(3))), min(map(ord, _symbols(3))) >= 0x100
    (3, True)
    """
    out, cp = [], 0x100
    while len(out) < n:
        if cp > sys.maxunicode:
            raise EncoderflowError(f"too many distinct characters ({n // 2}) for wordpiece training",
                                   stage="tokenize")
        if not 0xD800 <= cp <= 0xDFFF and not chr(cp).isspace():
            out.append(chr(cp))
        cp += 1
    return out


def _train_wordpiece(tok, texts: Iterable[str], cfg: TokenizeConfig, show_progress: bool,
                     length: int | None = None) -> None:
    """WordPieceTrainer's algorithm (BPE merges, "##" continuation), deterministic.

    Each pre-tokenized word is rewritten as stand-in symbols: its first
    character as `head[c]`, later ones as `tail[c]` (the "##c" form). Plain BPE
    over these symbols makes exactly the merges WordPiece training makes, but
    all symbol ids come from a sorted alphabet, so count ties break the same way
    on every run. The merged symbols are then mapped back ("##" for tails).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from tqdm.auto import tqdm

    norm, pre = tok.normalizer, tok.pre_tokenizer
    words: Counter[str] = Counter()
    for text in tqdm(texts, desc="tokenize: count words", unit=" texts", disable=not show_progress,
                     mininterval=1.0, total=length):
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    sym = _symbols(2 * len(chars))
    head = dict(zip(chars, sym[: len(chars)]))
    tail = dict(zip(chars, sym[len(chars):]))
    back = {s: c for c, s in head.items()} | {s: c for c, s in tail.items()}
    heads = set(head.values())

    shadow = Tokenizer(models.BPE())
    shadow.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS), initial_alphabet=list(head.values()),
        show_progress=show_progress)
    shadow.train_from_iterator(_repeated(words, head, tail), trainer=trainer, length=len(words))

    vocab: dict[str, int] = {}
    for piece, _ in sorted(shadow.get_vocab().items(), key=lambda kv: kv[1]):
        if piece not in SPECIAL_TOKENS:
            text = "".join(back[s] for s in piece)
            piece = text if piece[0] in heads else "##" + text
        vocab.setdefault(piece, len(vocab))  # a collision (never seen) keeps the first id
    tok.model = models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##")


def _repeated(words: Counter, head: dict, tail: dict, most: int = REPEAT_CHUNK):
    """Each distinct word in stand-in symbols, repeated `count` times (space separated), as
    sequences of at most `most` copies: the trainer counts the same words, and no string
    grows with the corpus (a frequent word of a big corpus occurs 10^8 times).

    >>> list(_repeated(Counter({"ab": 5}), {"a": "A"}, {"b": "B"}, most=2))
    ['AB AB ', 'AB AB ', 'AB ']
    """
    for w, n in sorted(words.items()):
        unit = head[w[0]] + "".join(tail[c] for c in w[1:]) + " "
        for start in range(0, n, most):
            yield unit * min(most, n - start)


def _canonical_unigram(tok) -> None:
    """Make a trained Unigram model independent of hash-map order.

    Two sources of run-to-run difference in UnigramTrainer: (1) EM sums floats
    in hash order (last-bit noise: scores are rounded); (2) characters that must
    be in the vocab but were not learned get scores min_score + k * 1e-4 with k
    in hash-set order: those characters are re-assigned the same scores in
    sorted character order. Pieces are then ordered by (score desc, piece).
    """
    from tokenizers import models

    pieces = json.loads(tok.model.__getstate__())["vocab"]  # [[piece, logprob], ...]
    specials = [(p, 0.0) for p, _ in pieces[: len(SPECIAL_TOKENS)]]
    rest = {p: s for p, s in pieces[len(SPECIAL_TOKENS):]}
    if rest:
        s0 = min(rest.values())  # == the trainer's min_score: the first filler char gets it
        band: dict[int, str] = {}  # k -> filler char with score s0 + k * 1e-4
        for p, s in rest.items():
            k = round((s - s0) / 1e-4)
            if len(p) == 1 and abs(s - (s0 + k * 1e-4)) < 1e-11 and k not in band:
                band[k] = p
        m = next(i for i in range(len(band) + 1) if i not in band)  # fillers are k = 0..m-1
        fillers = [band[k] for k in range(m)]
        for p, k in zip(sorted(fillers), range(m)):
            rest[p] = s0 + k * 1e-4
    ordered = sorted(((p, round(s, UNIGRAM_SCORE_DECIMALS)) for p, s in rest.items()),
                     key=lambda ps: (-ps[1], ps[0]))
    tok.model = models.Unigram(specials + ordered, unk_id=UNK_ID, byte_fallback=False)

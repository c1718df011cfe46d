"""A tiny random BERT and its tokenizer, built in-process from corpus words (no download)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_vocab(folder: Path, sentences: Iterable[Sequence[str]], size: int = 2000) -> Path:
    """A WordPiece vocabulary: the most frequent lower-cased words plus single characters."""
    counts = Counter(w.lower() for s in sentences for w in s)
    chars = sorted({c for w in counts for c in w})
    words = [w for w, _ in counts.most_common(size)]
    pieces = list(dict.fromkeys(SPECIAL + chars + ["##" + c for c in chars] + words))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return folder / "vocab.txt"


def tiny_backbone(folder: Path, sentences: Iterable[Sequence[str]], hidden: int = 32, layers: int = 2, max_positions: int = 128, seed: int = 0) -> Path:
    """Save a random 2-layer BERT with a vocabulary from ``sentences`` into ``folder``.

    The folder then works anywhere a backbone name does (``ModelConfig.backbone``).
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = write_vocab(folder, sentences)
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True, model_max_length=max_positions)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab.read_text(encoding="utf-8").splitlines()),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder

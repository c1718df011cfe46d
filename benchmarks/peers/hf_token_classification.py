"""The plain Hugging Face recipe: AutoModelForTokenClassification, cross-entropy on each word's
first subword (other subwords -100), AdamW lr 5e-5, linear decay, batch 32, 3 epochs.

Written as a short PyTorch loop (the Trainer needs `accelerate`), with the same backbone,
corpus and metric code as the ATS runs. Predictions are read at first subwords and scored as
they come (no IOB repair), as the recipe's seqeval evaluation does.
"""

from __future__ import annotations

import random
import time

import torch

from adabiobert.corpora.iob import Corpus
from adabiobert.metrics import evaluation_summary
from adabiobert.model.backbone import resolve_backbone


def _encode(tokenizer, sentences, label_ids, max_length: int):
    encoded = tokenizer([list(s.words) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    items = []
    for index, sentence in enumerate(sentences):
        word_ids = encoded.word_ids(index)
        labels, first = [], []
        previous = None
        for position, word in enumerate(word_ids):
            if word is None or word == previous:
                labels.append(-100)
            else:
                labels.append(label_ids[sentence.tags[word]])
                first.append(position)
            previous = word
        items.append((encoded["input_ids"][index], labels, first))
    return items


def _collate(items, pad_id):
    length = max(len(ids) for ids, _, _ in items)
    input_ids = torch.full((len(items), length), pad_id)
    attention = torch.zeros((len(items), length), dtype=torch.long)
    labels = torch.full((len(items), length), -100)
    for row, (ids, labs, _) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, : len(labs)] = torch.tensor(labs)
    return input_ids, attention, labels


def run(corpus: Corpus, backbone: str = "minilm", epochs: int = 3, lr: float = 5e-5, batch_size: int = 32, seed: int = 13, device: str = "cpu", precision: str = "auto") -> dict:
    """Fine-tune and test the plain token-classification recipe; bf16 autocast on CUDA unless ``precision`` is ``fp32``."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    bf16 = device == "cuda" and precision != "fp32"
    torch.manual_seed(seed)
    random.seed(seed)
    tags = list(corpus.labels.tags)
    label_ids = {t: i for i, t in enumerate(tags)}
    path = resolve_backbone(backbone)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(tags)).to(device)
    train = _encode(tokenizer, corpus.train, label_ids, 512)
    test = _encode(tokenizer, corpus.test, label_ids, 512)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / steps))
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = list(range(len(train)))
        random.shuffle(order)
        for start in range(0, len(order), batch_size):
            input_ids, attention, labels = _collate([train[i] for i in order[start : start + batch_size]], tokenizer.pad_token_id)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                loss = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), labels=labels.to(device)).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.eval()
    predicted = []
    with torch.no_grad():
        for start in range(0, len(test), 64):
            batch = test[start : start + 64]
            input_ids, attention, _ = _collate(batch, tokenizer.pad_token_id)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float().cpu()
            for row, (_, _, first) in enumerate(batch):
                predicted.append([tags[i] for i in logits[row, first].argmax(-1).tolist()])
    tag_seconds = time.perf_counter() - started
    gold = [list(s.tags)[: len(p)] for s, p in zip(corpus.test, predicted)]
    truncated = sum(len(s.tags) != len(p) for s, p in zip(corpus.test, predicted))
    summary = evaluation_summary(gold, predicted)
    summary.update(train_seconds=train_seconds, tagging_sentences_per_second=len(test) / tag_seconds, truncated_sentences=truncated)
    return summary

"""spaCy's NER (transition-based, its default tok2vec) trained from a blank English pipeline on
the corpus words (no spaCy tokenization: Docs are built from the IOB words, so spans align)."""

from __future__ import annotations

import random
import time

from adabiobert.corpora.iob import Corpus
from adabiobert.metrics import evaluation_summary


def _doc(nlp, sentence):
    from spacy.tokens import Doc

    return Doc(nlp.vocab, words=list(sentence.words), ents=list(sentence.tags))


def run(corpus: Corpus, epochs: int = 3, seed: int = 13, batch_size: int = 32) -> dict:
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(seed)
    random.seed(seed)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    for label in corpus.labels.entity_types:
        ner.add_label(label)
    examples = [Example(_doc(nlp, s).copy(), _doc(nlp, s)) for s in corpus.train]
    for example in examples:
        example.predicted.ents = ()
    optimizer = nlp.initialize(lambda: examples)
    started = time.perf_counter()
    for _ in range(epochs):
        random.shuffle(examples)
        for start in range(0, len(examples), batch_size):
            nlp.update(examples[start : start + batch_size], sgd=optimizer, drop=0.2)
    train_seconds = time.perf_counter() - started
    from spacy.tokens import Doc

    started = time.perf_counter()
    docs = list(nlp.pipe(Doc(nlp.vocab, words=list(s.words)) for s in corpus.test))
    tag_seconds = time.perf_counter() - started
    predicted = []
    for doc in docs:
        tags = ["O"] * len(doc)
        for ent in doc.ents:
            tags[ent.start] = f"B-{ent.label_}"
            for i in range(ent.start + 1, ent.end):
                tags[i] = f"I-{ent.label_}"
        predicted.append(tags)
    summary = evaluation_summary([list(s.tags) for s in corpus.test], predicted)
    summary.update(train_seconds=train_seconds, tagging_sentences_per_second=len(docs) / tag_seconds)
    return summary

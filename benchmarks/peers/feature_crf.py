"""A classic feature CRF (sklearn-crfsuite, L-BFGS with L1+L2) trained on train+devel.

Word shape, affixes and a +-2 word window: the usual conlleval-era baseline for BioNER.
"""

from __future__ import annotations

import time

from adabiobert.corpora.iob import Corpus
from adabiobert.metrics import evaluation_summary


def word_features(words, i: int) -> dict:
    word = words[i]
    features = {
        "bias": 1.0,
        "lower": word.lower(),
        "suffix3": word[-3:],
        "suffix2": word[-2:],
        "prefix3": word[:3],
        "is_upper": word.isupper(),
        "is_title": word.istitle(),
        "is_digit": word.isdigit(),
        "has_digit": any(c.isdigit() for c in word),
        "has_hyphen": "-" in word,
        "shape": "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word)[:6],
    }
    for offset in (-2, -1, 1, 2):
        j = i + offset
        if 0 <= j < len(words):
            features[f"{offset}:lower"] = words[j].lower()
            features[f"{offset}:is_title"] = words[j].istitle()
        else:
            features[f"{offset}:pad"] = True
    return features


def sentence_features(words) -> list[dict]:
    return [word_features(words, i) for i in range(len(words))]


def run(corpus: Corpus, seed: int = 0, max_iterations: int = 100) -> dict:
    import sklearn_crfsuite

    started = time.perf_counter()
    train = corpus.train + corpus.dev
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=max_iterations, all_possible_transitions=True)
    crf.fit([sentence_features(s.words) for s in train], [list(s.tags) for s in train])
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = crf.predict([sentence_features(s.words) for s in corpus.test])
    tag_seconds = time.perf_counter() - started
    summary = evaluation_summary([list(s.tags) for s in corpus.test], predicted)
    summary.update(train_seconds=train_seconds, tagging_sentences_per_second=len(corpus.test) / tag_seconds)
    return summary

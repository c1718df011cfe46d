"""Sentences of words (and tags) to model examples: subword windows, word-vector rows, tag ids."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from adabiobert.labels import LabelSet
from adabiobert.model.backbone import encoder_max_subwords
from adabiobert.model.batching import Example
from adabiobert.model.partial_annotation import allowed_tags
from adabiobert.model.subwords import SubwordEncoder
from adabiobert.model.word_vectors import UNKNOWN_ID, WordVectors
from adabiobert.training_config import ModelConfig


class ExampleEncoder:
    """Args:
        subwords: the backbone's subword encoder.
        labels: tag set for training data (unused when tagging).
        word_vectors: the Word2Vec vocabulary, or ``None`` when the feature is off.
    """

    def __init__(self, subwords: SubwordEncoder, labels: LabelSet, word_vectors: WordVectors | None) -> None:
        self.subwords = subwords
        self.labels = labels
        self.word_vectors = word_vectors

    def encode(self, words: Sequence[str], tags: Sequence[str] | None = None,
               annotated_types: Collection[str] | None = None, partial: bool = False) -> Example:
        """One sentence as an example.

        Args:
            words: the sentence's words.
            tags: their IOB2 tags (training and scoring), or None (tagging).
            annotated_types: the types the sentence's corpus annotates (a mix's sentence), or None.
            partial: with ``annotated_types``, also the tags each word may take
                (``partial_annotation.allowed_tags``), for the partial-annotation loss.

        Raises:
            ValueError: as many tags as words are needed; ``allowed_tags``'s errors (a type not
                in the label set, a word tagged with a type its corpus does not annotate).
        """
        if tags is not None and len(tags) != len(words):
            raise ValueError(f"{len(words)} words but {len(tags)} tags")
        types = frozenset(annotated_types) if annotated_types is not None else None
        mask = allowed_tags(tags, types, self.labels) if partial and types is not None and tags is not None else None
        vector_ids = (
            self.word_vectors.lookup_all(words) if self.word_vectors is not None else [UNKNOWN_ID] * len(words)
        )
        return Example(
            encoded=self.subwords.encode(words),
            word_vector_ids=tuple(vector_ids),
            tag_ids=tuple(self.labels.index(t) for t in tags) if tags is not None else None,
            annotated_types=types,
            allowed_tags=mask,
        )

    def encode_tagged(self, sentences, partial: bool = False) -> list[Example]:
        """Encode corpus sentences (objects with ``words`` and ``tags``); empty ones are skipped.

        A sentence of a mix also has ``annotated_types`` (``corpora.mix``): its example carries
        them, and with ``partial`` the tags each word may take (see ``encode``).
        """
        return [self.encode(s.words, s.tags, getattr(s, "annotated_types", None), partial)
                for s in sentences if s.words]


def example_encoder_for(config: ModelConfig, encoder_config, tokenizer, labels: LabelSet,
                        word_vectors: WordVectors | None) -> ExampleEncoder:
    """The sentence encoder of a model, built from its settings alone (no weights needed).

    Windows are as long as both ``config`` and the encoder (``encoder_config``, a transformers
    config) allow; the overlap is capped so that consecutive windows always advance.

    Args:
        word_vectors: the model's Word2Vec vocabulary, or ``None`` when the model has no
            word-vector features (only the words are read, for the row lookup).
    """
    max_subwords = min(config.max_subwords, encoder_max_subwords(encoder_config, tokenizer))
    overlap = min(config.window_overlap, (max_subwords - 2) // 2 - 1)
    return ExampleEncoder(SubwordEncoder(tokenizer, max_subwords, overlap), labels, word_vectors)

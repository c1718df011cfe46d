"""Tag free text with a saved AdaBioBERT bundle.

    tagger = Tagger.from_pretrained("runs/ncbi/model")
    tagger.tag(["BRCA1 mutations cause breast cancer."])
    # [[Entity(start=16, end=29, text='breast cancer', label='Disease', confidence=0.98)]]

``precision`` (``auto``, ``fp32``, ``bf16``, ``int8``) is resolved by ``adabiobert.model.precision``:
``auto`` is bf16 on CUDA and on a CPU with native bf16, int8 on any other CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from adabiobert.errors import ConfigError
from adabiobert.model.assembly import build_example_encoder
from adabiobert.model.batching import Example
from adabiobert.model.checkpoint import Bundle, bundle_hash, load_bundle
from adabiobert.model.engine import predict
from adabiobert.model.precision import DEFAULT_TAG_PRECISION, PrecisionChoice, quantize_int8, resolve_precision
from adabiobert.spans import tags_to_spans
from adabiobert.text import TextSentence, split_sentences
from adabiobert.training_config import TrainConfig


@dataclass(frozen=True)
class Entity:
    """A mention in the text given to ``tag``: ``text == source[start:end]``.

    ``confidence`` is the mean, over the mention's words, of the CRF marginal probability of
    the predicted tag (forward-backward), in [0, 1].
    """

    start: int
    end: int
    text: str
    label: str
    confidence: float


@dataclass(frozen=True)
class WordTagging:
    """Tags of one word sequence and the confidence of each."""

    tags: tuple[str, ...]
    confidences: tuple[float, ...]


class Tagger:
    """A loaded tagger. Build it with ``from_pretrained``."""

    def __init__(self, bundle: Bundle, device: torch.device, subword_budget: int = 8192, model_id: str = "",
                 precision: PrecisionChoice | None = None) -> None:
        """``precision`` None resolves ``auto`` here. For int8 the bundle's encoder is quantised in place."""
        self.precision = precision or resolve_precision(DEFAULT_TAG_PRECISION, device)
        assert self.precision.precision in ("fp32", "bf16", "int8"), self.precision
        self.bundle = bundle
        self.model = bundle.model
        if self.precision.precision == "int8":
            assert device.type == "cpu", "int8 is refused on CUDA by choose_precision"
            quantize_int8(self.model)
        self.device = device
        self.labels = bundle.model.labels
        self.model_id = model_id
        self.encoder = build_example_encoder(bundle.model_config, bundle.model, bundle.tokenizer, bundle.word_vectors)
        self._pad_id = bundle.tokenizer.pad_token_id or 0  # read once: tag_encoded never touches the tokenizer
        autocast = "bf16" if self.precision.precision == "bf16" else "fp32"  # int8 kernels take fp32 activations
        self._predict_config = TrainConfig(eval_subword_budget=subword_budget, precision=autocast)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | None = None, subword_budget: int = 8192,
                        precision: str = DEFAULT_TAG_PRECISION) -> Tagger:
        """Load a bundle folder written by training.

        Args:
            folder: the bundle (``<run>/model`` after ``jobs/train.py``).
            device: ``cuda``, ``cpu`` or ``None`` for CUDA when available.
            subword_budget: subwords per batch (padding included) when tagging.
            precision: ``auto``, ``fp32``, ``bf16`` or ``int8`` (``adabiobert.model.precision``); the
                choice and its reason are logged once and kept as ``tagger.precision``.

        Raises:
            InputNotFoundError: ``folder`` is not a bundle.
            ConfigError: ``device`` is not a device, or CUDA is asked for and absent; an unknown
                precision, ``bf16`` on a CPU without native bf16, or ``int8`` on CUDA.
        """
        try:
            resolved = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError:
            raise ConfigError(f"device {device!r} is not a torch device; use cpu or cuda") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: no CUDA device is available here; use cpu")
        choice = resolve_precision(precision, resolved)  # before loading: a refused precision costs nothing
        bundle = load_bundle(folder, resolved)
        name = bundle.metadata.get("name") or Path(folder).resolve().parent.name
        return cls(bundle, resolved, subword_budget, model_id=f"{name}@{bundle_hash(folder)}", precision=choice)

    def tag_words(self, sentences: Sequence[Sequence[str]]) -> list[WordTagging]:
        """Tag sentences given as words. Empty sentences get empty results."""
        return self.tag_encoded(self.encode_words(sentences))

    def encode_words(self, sentences: Sequence[Sequence[str]]) -> list[Example]:
        """The tokenizer's half of ``tag_words``: each sentence's subword windows, word -> subword
        map and Word2Vec rows (``checkpoint.load_bundle_encoder`` encodes alike without the model)."""
        return [self.encoder.encode(words) for words in sentences]

    def tag_encoded(self, examples: Sequence[Example]) -> list[WordTagging]:
        """The model's half of ``tag_words``: tag encoded sentences without calling the tokenizer.

        Sentences are sorted by subword count and batched within the subword budget; the encoder,
        Viterbi and the marginals run per batch. Sentences without words get empty results.

        Raises:
            ValueError: a window longer than this tagger's windows (encoded for another model).
        """
        limit = self.encoder.subwords.max_subwords
        for index, example in enumerate(examples):
            longest = max((len(w) for w in example.encoded.windows), default=0)
            if longest > limit:
                raise ValueError(f"sentence {index} has a window of {longest} subwords, but this tagger's windows "
                                 f"hold at most {limit}: encode with its bundle's encoder (load_bundle_encoder)")
        positions = [index for index, example in enumerate(examples) if example.num_words]
        results = [WordTagging((), ())] * len(examples)
        if not positions:
            return results
        paths, confidences = predict(self.model, [examples[i] for i in positions], self._predict_config, self.device,
                                     self._pad_id, with_confidence=True)
        for index, path, confidence in zip(positions, paths, confidences):
            results[index] = WordTagging(tuple(self.labels.tags[t] for t in path), tuple(confidence))
        return results

    def tag_sentences(self, source: str, sentences: Sequence[TextSentence]) -> list[list[Entity]]:
        """Tag pre-split sentences of ``source``; offsets are into ``source``."""
        taggings = self.tag_words([[w.text for w in s.words] for s in sentences])
        return [entities_from_tagging(source, s, t) for s, t in zip(sentences, taggings)]

    def tag(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Find the entities in each text; offsets are character offsets into that text."""
        if isinstance(texts, str):
            raise TypeError("tag() takes a list of texts; wrap a single text in a list")
        split = [split_sentences(text) for text in texts]
        flat = [(doc, sentence) for doc, sentences in enumerate(split) for sentence in sentences]
        taggings = self.tag_words([[w.text for w in s.words] for _, s in flat])
        results: list[list[Entity]] = [[] for _ in texts]
        for (doc, sentence), tagging in zip(flat, taggings):
            results[doc].extend(entities_from_tagging(texts[doc], sentence, tagging))
        return results


def entities_from_tagging(source: str, sentence: TextSentence, tagging: WordTagging) -> list[Entity]:
    """Turn word tags into character-offset entities of ``source``."""
    entities = []
    for span in tags_to_spans(tagging.tags):
        first, last = sentence.words[span.start], sentence.words[span.end - 1]
        confidence = sum(tagging.confidences[span.start : span.end]) / (span.end - span.start)
        entities.append(Entity(first.start, last.end, source[first.start : last.end], span.label, round(confidence, 4)))
    return entities

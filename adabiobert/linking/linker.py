"""The linker: a document's mentions in, one identifier (or a considered abstention) per mention out.

For each mention, in order:

1. The mention's type picks its part of the index (by name or alias, ignoring case); a type with
   no vocabulary gives ``Link(None, None, 0.0, "no-vocabulary")``: unlinked, not failed.
2. Short forms defined in the document (Schwartz-Hearst, :mod:`~adabiobert.linking.abbreviations`)
   are expanded: after "breast cancer (BC)", a mention "BC" is looked up as "breast cancer" (the
   mention as written is tried too).
3. The normalised text is looked up exactly among the names and synonyms: score 1.0.
4. Otherwise a composite mention ("breast and ovarian cancers", "BRCA1/2") is split into its parts
   ("breast cancers", "ovarian cancers"), each linked like a mention; the split is kept when its
   weakest part scores above the whole mention's best TF-IDF candidate.
5. Otherwise the character 3-gram TF-IDF candidate with the highest cosine similarity.
6. Below ``threshold`` the linker abstains: ``concept_id`` None, ``score`` kept.

A composite link names every part: ``concept_id`` is the parts' CURIEs joined by ``|`` in the
order the parts appear (``"MESH:D001943|MESH:D010051"``), ``concept_name`` their names joined the
same way, and ``score`` the weakest part's; the mention abstains when that score is below the
threshold. ``|`` is the separator of the PubTator corpora's composite annotations and cannot occur
in a CURIE this package writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from adabiobert.errors import ConfigError
from adabiobert.linking.abbreviations import abbreviation_map, expand
from adabiobert.linking.index import Candidate, LinkingIndex, TypeIndex
from adabiobert.linking.normalise import normalise

COMPOSITE_SEPARATOR = "|"
DEFAULT_THRESHOLD = 0.7
"""scispaCy's default linker threshold; below it the linker abstains."""

_CONJUNCTION = re.compile(r"\s*,\s*(?:and/or|and|or)\s+|\s*,\s*|\s+(?:and/or|and|or)\s+|\s*/\s*")


@dataclass(frozen=True)
class Mention:
    """A mention to link: characters ``start:end`` of the document, of type ``entity_type``."""

    start: int
    end: int
    entity_type: str


@dataclass(frozen=True)
class Link:
    """The linker's answer for one mention.

    Attributes:
        concept_id: a CURIE (``MESH:D001943``), several joined by ``|`` for a composite mention,
            or None (abstained, or no vocabulary for the type).
        concept_name: the concept's preferred name (joined by ``|`` like the IDs), or None.
        score: 1.0 for an exact match, else the cosine similarity of the best candidate (the
            weakest part's for a composite); kept when the linker abstains; 0.0 when nothing was
            found.
        method: ``exact``, ``tfidf``, ``composite``, ``abstain`` or ``no-vocabulary``.
    """

    concept_id: str | None
    concept_name: str | None
    score: float
    method: str


@dataclass(frozen=True)
class _Found:
    candidate: Candidate | None
    exact: bool


class Linker:
    """Links mentions with one loaded :class:`~adabiobert.linking.index.LinkingIndex`.

    Args:
        index: the index (shared, memory-mapped; the linker only reads it).
        threshold: the score below which the linker abstains, in [0, 1].
        exhaustive: score every name sharing a 3-gram instead of the selective candidates.
        cache_size: normalised keys remembered per linker with what they resolved to (the same
            mentions recur across a corpus); 0 turns the cache off.

    Raises:
        ConfigError: a threshold outside [0, 1].
    """

    def __init__(self, index: LinkingIndex, threshold: float = DEFAULT_THRESHOLD, exhaustive: bool = False,
                 cache_size: int = 200_000) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"linking threshold {threshold} is outside [0, 1]")
        self.index = index
        self.threshold = threshold
        self.exhaustive = exhaustive
        self.cache_size = cache_size
        self._cache: dict[tuple[str, str], _Found] = {}

    def link(self, document_text: str, mentions: Sequence[Mention | tuple[int, int, str]]) -> list[Link]:
        """One :class:`Link` per mention, in the order given.

        Args:
            document_text: the text the mentions' offsets point into (its abbreviation
                definitions are used; a title and abstract, or a section).
            mentions: :class:`Mention` or ``(start, end, type)`` tuples.

        Raises:
            ValueError: a mention whose offsets fall outside the text or are reversed.
        """
        mentions = [m if isinstance(m, Mention) else Mention(*m) for m in mentions]
        for mention in mentions:
            if not 0 <= mention.start <= mention.end <= len(document_text):
                raise ValueError(f"mention {mention} is outside the text of {len(document_text)} characters")
        abbreviations = abbreviation_map(document_text)
        plans = []
        wanted: dict[str, set[str]] = {}
        for mention in mentions:
            type_index = self.index.type_index(mention.entity_type)
            if type_index is None:
                plans.append(None)
                continue
            text = document_text[mention.start : mention.end]
            plan = _plan(text, expand(text, abbreviations))
            plans.append((type_index, plan))
            wanted.setdefault(type_index.entity_type, set()).update(plan.keys())
        found = {entity_type: self._resolve(self.index.types[entity_type], sorted(keys)) for entity_type, keys in wanted.items()}
        return [Link(None, None, 0.0, "no-vocabulary") if p is None else self._decide(p[0], p[1], found[p[0].entity_type])
                for p in plans]

    def link_text(self, text: str, entity_type: str) -> Link:
        """Link one mention given as a string (no document, so no abbreviation expansion)."""
        return self.link(text, [Mention(0, len(text), entity_type)])[0]

    # ---- resolution of normalised keys --------------------------------------------------------
    def _resolve(self, type_index: TypeIndex, keys: list[str]) -> dict[str, _Found]:
        """Each key's best candidate: exact when a name has it, else the TF-IDF search's best."""
        resolved: dict[str, _Found] = {}
        searched = []
        for key in keys:
            cached = self._cache.get((type_index.entity_type, key))
            if cached is not None:
                resolved[key] = cached
                continue
            exact = type_index.exact(key)
            if exact is not None:
                resolved[key] = _Found(exact, True)
            else:
                searched.append(key)
        for key, candidates in zip(searched, type_index.search(searched, top_k=1, exhaustive=self.exhaustive)):
            resolved[key] = _Found(candidates[0] if candidates else None, False)
        if self.cache_size:
            if len(self._cache) + len(resolved) > self.cache_size:
                self._cache.clear()
            self._cache.update(((type_index.entity_type, k), v) for k, v in resolved.items())
        return resolved

    def _decide(self, type_index: TypeIndex, plan: _Plan, found: dict[str, _Found]) -> Link:
        wholes = [found[k] for k in plan.whole if k in found]
        for whole in wholes:
            if whole.exact:
                return self._answer(type_index, [whole.candidate], "exact")
        best_whole = max((w.candidate for w in wholes if w.candidate is not None), key=lambda c: c.score, default=None)
        best_split = None
        for option in plan.splits:
            parts = [found[k].candidate for k in option]
            if any(p is None for p in parts):
                continue
            weakest = min(p.score for p in parts)
            if best_split is None or weakest > min(p.score for p in best_split):
                best_split = parts
        if best_split is not None and min(p.score for p in best_split) > (best_whole.score if best_whole else 0.0):
            return self._answer(type_index, best_split, "composite")
        if best_whole is None:
            return Link(None, None, 0.0, "abstain")
        return self._answer(type_index, [best_whole], "tfidf")

    def _answer(self, type_index: TypeIndex, parts: list[Candidate], method: str) -> Link:
        concepts = list(dict.fromkeys(p.concept for p in parts))  # a split that finds one concept twice is one link
        score = min(p.score for p in parts)
        if len(concepts) == 1 and method == "composite":
            method = "tfidf" if score < 1.0 else "exact"
        if score < self.threshold:
            return Link(None, None, score, "abstain")
        return Link(COMPOSITE_SEPARATOR.join(type_index.curies[c] for c in concepts),
                    COMPOSITE_SEPARATOR.join(type_index.names[c] for c in concepts), score, method)


@dataclass(frozen=True)
class _Plan:
    """The normalised keys a mention may resolve through: the whole (expanded, then as written)
    and each way of splitting it into parts."""

    whole: tuple[str, ...]
    splits: tuple[tuple[str, ...], ...]

    def keys(self) -> set[str]:
        return {*self.whole, *(k for split in self.splits for k in split)}


def _plan(text: str, expanded: str) -> _Plan:
    whole = tuple(k for k in dict.fromkeys((normalise(expanded), normalise(text))) if k)
    splits = []
    for option in composite_parts(expanded):
        keys = tuple(normalise(part) for part in option)
        if all(keys) and len(set(keys)) > 1:
            splits.append(keys)
    return _Plan(whole, tuple(dict.fromkeys(splits)))


def composite_parts(text: str) -> list[list[str]]:
    """The ways a mention may be read as several coordinated mentions, each a list of parts.

    * ``"breast and ovarian cancers"`` -> ``[["breast", "ovarian cancers"]`` (each conjunct),
      ``["breast cancers", "ovarian cancers"]`` (the last conjunct's final word shared)]; with a
      longer last conjunct, each of its tails is tried as the shared head ("Duchenne and Becker
      muscular dystrophy": "dystrophy", "muscular dystrophy").
    * ``"BRCA1/2"``, ``"Hsp70/90"`` -> ``[["BRCA1", "BRCA2"]]``: a number after the separator
      replaces the first conjunct's final number.

    Conjunctions are ``and``, ``or``, ``and/or``, commas and ``/``.

    Returns:
        The options (none when the text has no conjunction).
    """
    conjuncts = [c for c in _CONJUNCTION.split(text.strip()) if c]
    if len(conjuncts) < 2:
        return []
    first = conjuncts[0]
    if all(c.isdigit() for c in conjuncts[1:]) and re.search(r"\d+$", first):
        return [[first, *(re.sub(r"\d+$", c, first) for c in conjuncts[1:])]]
    options = [conjuncts]
    last = conjuncts[-1].split()
    for shared in range(1, len(last)):
        head = " ".join(last[-shared:])
        options.append([*(f"{c} {head}" for c in conjuncts[:-1]), conjuncts[-1]])
    return options

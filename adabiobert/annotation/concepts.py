"""Concept identifiers for the entity rows: an article's mentions through the entity linker.

The linker (``adabiobert.linking``) takes one text and mentions with offsets into it; its
abbreviation resolution reads the whole text, so "breast cancer (BC)" in the abstract makes a
"BC" in the results link as breast cancer. The job's rows have offsets into one section each, so
the article is laid out as one text (:func:`article_text`): its sections in ``section_index``
order, a full stop and a line break apart, and each mention moved by its section's offset there.

Two callers give the sections, and link alike:

* the tag stage (``stages.tag_documents``), from the sentences the split stage made
  (:func:`sections_from_sentences`: each sentence's text at its offset, white space between);
* a re-link (``annotation.relink``), from the shard's text (``pmc.shards.article_sections``).

Both texts are the same but for the kind of white space between sentences, which the
abbreviation finder does not tell apart (a clause ends at ``.``, ``!``, ``?`` or ``;`` before any
white space), so a shard re-linked with an index gets the rows a run with that index writes.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from adabiobert.linking.linker import Link, Linker, Mention

SECTION_SEPARATOR = ".\n"
"""Between two sections of the article text the linker reads: a clause end for the abbreviation
finder (``.`` before white space), so that a long form never reaches back into the section before
(a title has no full stop: "...and BRCA1" + "Wilson disease (WD)" would define WD as
"BRCA1 Wilson disease")."""

UNLINKED = {"concept_id": None, "concept_name": None, "link_score": None}
"""The concept fields of a mention that was not linked (no index, or its type has no vocabulary)."""


def article_text(sections: Mapping[int, str]) -> tuple[str, dict[int, int]]:
    """The article as one text for the linker, and each section's offset in it.

    Args:
        sections: ``section_index -> text`` (0 title, 1 abstract, 2 + i body section i).
    """
    offsets, parts, cursor = {}, [], 0
    for index in sorted(sections):
        offsets[index] = cursor
        parts.append(sections[index])
        cursor += len(sections[index]) + len(SECTION_SEPARATOR)
    return SECTION_SEPARATOR.join(parts), offsets


def sections_from_sentences(sentences: Sequence[tuple[int, int, str]]) -> dict[int, str]:
    """The sections' texts rebuilt from their sentences ``(section_index, start, text)``: each
    sentence's text at its offset, spaces between and before them (what the split left out is
    white space, ``text.split_sentences``)."""
    pieces: dict[int, list[tuple[int, str]]] = {}
    for section_index, start, text in sentences:
        pieces.setdefault(section_index, []).append((start, text))
    sections = {}
    for section_index, found in pieces.items():
        parts, cursor = [], 0
        for start, text in sorted(found):
            assert start >= cursor, f"sentences overlap in section {section_index} at {start}"
            parts.append(" " * (start - cursor))
            parts.append(text)
            cursor = start + len(text)
        sections[section_index] = "".join(parts)
    return sections


def link_article(linker: Linker, sections: Mapping[int, str], mentions: Sequence[MutableMapping[str, Any]]) -> None:
    """Link one article's mentions and write their concept fields (:func:`concept_fields`) in place.

    Args:
        sections: ``section_index -> text`` of the article (at least the sections with mentions).
        mentions: dicts with ``section_index``, ``start_offset``, ``end_offset`` (into that
            section's text) and ``label``.

    Raises:
        ValueError: a mention outside its section's text, or in a section not given.
    """
    if not mentions:
        return
    text, offsets = article_text(sections)
    found = []
    for mention in mentions:
        section = mention["section_index"]
        if section not in offsets or mention["end_offset"] > len(sections[section]):
            raise ValueError(f"mention {mention['start_offset']}-{mention['end_offset']} of section {section} is "
                             "outside the article's text")
        found.append(Mention(offsets[section] + mention["start_offset"], offsets[section] + mention["end_offset"],
                             mention["label"]))
    for mention, link in zip(mentions, linker.link(text, found)):
        mention.update(concept_fields(link))


def concept_fields(link: Link) -> dict[str, Any]:
    """A link as the entity table's concept fields: the identifier and name (None when the linker
    abstained), the score (kept when it abstained; None when the type has no vocabulary)."""
    if link.method == "no-vocabulary":
        return dict(UNLINKED)
    return {"concept_id": link.concept_id, "concept_name": link.concept_name, "link_score": float(link.score)}

"""In-document abbreviation definitions, after Schwartz & Hearst (2003), "A simple algorithm for
identifying abbreviation definitions in biomedical text" (PSB 2003, 451-462).

A definition is a pair written ``long form (short form)`` -- "heat shock transcription factor
(HSF)" -- or, when the parenthesis holds more than two words, ``short form (long form)``. The
short form is valid when it has 2 to 10 letters and digits, at least one letter, and starts with
a letter or digit; the long form is found by matching the short form's letters and digits from
right to left against the words before the parenthesis, the first one at the start of a word
(the paper's ``findBestLongForm``), and kept when it has at most ``min(|S| + 5, 2|S|)`` words
(``|S|``: the short form's letters and digits), is longer than the short form and does not end
with it. The candidate long form never reaches back past the end of the previous sentence
(``.``, ``!``, ``?`` or ``;`` before white space) or another parenthesis.

Only the first definition of a short form in a document counts (later ones usually repeat it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SHORT_FORM = 10
"""Letters and digits a short form may have (the paper's limit)."""

_PARENTHESIS = re.compile(r"\(([^()]*)\)")
_CLAUSE_END = re.compile(r"[.!?;](?=\s)|[()\[\]]")


@dataclass(frozen=True)
class Abbreviation:
    """One definition found in a text: ``text[short_start:short_end] == short`` and
    ``text[long_start:long_end] == long``."""

    short: str
    long: str
    short_start: int
    short_end: int
    long_start: int
    long_end: int


def find_abbreviations(text: str) -> list[Abbreviation]:
    """Every abbreviation definition in ``text``, in order, the first per short form.

    Args:
        text: a document (title and abstract, or a section).

    Returns:
        The definitions found; an empty list when there are none.
    """
    found: list[Abbreviation] = []
    seen: set[str] = set()
    for match in _PARENTHESIS.finditer(text):
        pair = _pair_at(text, match)
        if pair is not None and pair.short not in seen:
            seen.add(pair.short)
            found.append(pair)
    return found


def abbreviation_map(text: str) -> dict[str, str]:
    """Short form -> long form for every definition in ``text`` (see :func:`find_abbreviations`)."""
    return {pair.short: pair.long for pair in find_abbreviations(text)}


def expand(mention: str, abbreviations: Mapping[str, str]) -> str:
    """``mention`` with every word that is a defined short form replaced by its long form.

    Words are maximal runs of non-space characters with surrounding punctuation other than ``-``
    kept apart ("BC-related" is not expanded, "(BC)" is). A mention that is a short form as a
    whole (spaces and all: "PD 1") is replaced whole.

    Args:
        mention: the mention text.
        abbreviations: the document's :func:`abbreviation_map`.

    Returns:
        The expanded text; ``mention`` itself when nothing in it is a short form.
    """
    if not abbreviations:
        return mention
    if mention in abbreviations:
        return abbreviations[mention]
    return re.sub(r"[^\s()\[\],;:]+", lambda m: abbreviations.get(m.group(), m.group()), mention)


def _pair_at(text: str, match: re.Match) -> Abbreviation | None:
    inside_start = match.start(1)
    inside = match.group(1)
    for separator in (", ", "; "):  # "(BC; ref. 4)": the short form ends at the separator
        inside = inside.split(separator, 1)[0]
    before_start = _clause_start(text, match.start())
    before = text[before_start : match.start()]
    if len(inside.split()) > 2 or len(inside.strip()) > len(before.strip()):
        return _short_before(text, match, before_start, inside_start, inside)
    short = inside.strip()
    if not _valid_short_form(short):
        return None
    long_start = _best_long_form(short, before)
    if long_start is None:
        return None
    long = before[long_start:].strip()
    if not _valid_pair(short, long):
        return None
    short_start = inside_start + inside.index(short)
    long_start += before_start + (len(before[long_start:]) - len(before[long_start:].lstrip()))
    return Abbreviation(short, long, short_start, short_start + len(short), long_start, long_start + len(long))


def _short_before(text: str, match: re.Match, before_start: int, inside_start: int, inside: str) -> Abbreviation | None:
    """The ``short form (long form)`` case: the short form is the word before the parenthesis and
    must hold a capital letter (the paper's rule); the long form is the part of the parenthesis
    that matches it."""
    words = list(re.finditer(r"\S+", text[before_start : match.start()]))
    if not words:
        return None
    short = words[-1].group()
    long = inside.strip()
    if not any(c.isupper() for c in short) or not _valid_short_form(short):
        return None
    offset = _best_long_form(short, long)
    if offset is None:
        return None
    long_start = inside_start + inside.index(long) + offset
    long = long[offset:]
    if not _valid_pair(short, long):
        return None
    short_start = before_start + words[-1].start()
    return Abbreviation(short, long, short_start, short_start + len(short), long_start, long_start + len(long))


def _clause_start(text: str, end: int) -> int:
    """Where the long form candidate before ``end`` may begin: after the last sentence or clause
    end, or the last bracket, before it."""
    start = 0
    for found in _CLAUSE_END.finditer(text, 0, end):
        start = found.end()
    return start


def _valid_short_form(short: str) -> bool:
    letters_digits = sum(c.isalnum() for c in short)
    return (len(short) >= 2 and any(c.isalpha() for c in short) and short[0].isalnum()
            and letters_digits <= MAX_SHORT_FORM)


def _valid_pair(short: str, long: str) -> bool:
    words = len(re.findall(r"[^\s\-]+", long))
    size = sum(c.isalnum() for c in short)
    return (len(long) > len(short) and f"{short} " not in long and not long.endswith(short)
            and words <= min(size + 5, 2 * size))


def _best_long_form(short: str, candidate: str) -> int | None:
    """The paper's ``findBestLongForm``: the start, in ``candidate``, of the shortest long form
    whose letters cover the short form's, or None.

    The short form's letters and digits are matched from right to left, case folded; the first
    one must sit at the start of a word (no letter or digit before it). The long form then starts
    at the beginning of that word's white-space-delimited token (so "Gcn5-related" is kept whole).
    """
    s = len(short) - 1
    i = len(candidate) - 1
    while s >= 0:
        char = short[s].lower()
        if not char.isalnum():
            s -= 1
            continue
        while i >= 0 and (candidate[i].lower() != char or (s == 0 and i > 0 and candidate[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    return candidate.rfind(" ", 0, i + 1) + 1

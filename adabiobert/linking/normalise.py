"""String normalisation for linking: one function that vocabulary names and mentions both pass
through, so that "Breast Tumours", "breast-tumor" and "breast tumors" meet on one key.

The steps, in order (each applied to names and mentions alike, so a rule only has to be
consistent, not linguistically right):

1. Unicode NFKC (full-width letters, ligatures, superscript digits become plain characters).
2. Greek letters spelled out: ``α`` and ``alpha`` meet as ``alpha`` (``TNF-α`` = ``TNF-alpha``).
3. Case folded.
4. A possessive ``'s`` is dropped (``Hodgkin's disease`` = ``Hodgkin disease``); everything
   else that is not a letter or digit becomes a word break (hyphens, slashes, commas,
   apostrophes, brackets), and a change between letters and digits is one too
   (``IL6``, ``IL-6`` and ``il 6`` all give ``il 6``).
5. Per word: British spellings folded (``tumour`` -> ``tumor``, ``anaemia`` -> ``anemia``,
   ``oedema`` -> ``edema``), plurals made singular (``cancers``, ``therapies``, ``abscesses``,
   ``viruses``; words of three letters or fewer are left alone), standalone Roman numerals read as
   numbers (``type II`` = ``type 2``).
6. One space between words, none at the ends.

``NORMALISATION_VERSION`` goes into every linking index: an index is only valid with the rules it
was built with.
"""

from __future__ import annotations

import re
import unicodedata

NORMALISATION_VERSION = 1
"""Raise when a rule changes: indexes built with other rules are then refused."""

GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
    "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi",
    "ο": "omicron", "π": "pi", "ρ": "rho", "σ": "sigma", "ς": "sigma", "τ": "tau", "υ": "upsilon",
    "φ": "phi", "ϕ": "phi", "χ": "chi", "ψ": "psi", "ω": "omega",
}
"""Lower-case Greek letters and their English names (upper case is folded first)."""

WORDS = {"cancer": "neoplasm"}
"""Whole words read as another (after plurals are made singular)."""

ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8", "ix": "9", "x": "10"}

_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")
_BREAKS = re.compile(r"[^0-9a-z]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])")
_GREEK_PATTERN = re.compile("|".join(GREEK))

# Word endings, tried in order; the first that applies wins. (suffix, replacement, shortest word)
_PLURALS = (
    ("sses", "ss", 5),  # abscesses -> abscess
    ("uses", "us", 5),  # viruses -> virus
    ("ies", "y", 5),  # therapies -> therapy
    ("xes", "x", 5),  # complexes -> complex
    ("ches", "ch", 6),
    ("shes", "sh", 6),
)
_NOT_PLURAL = ("ss", "us", "is")  # abscess, virus, psoriasis stay as they are


def normalise(text: str) -> str:
    """The linking key of a name or mention (steps in the module docstring).

    Args:
        text: any string.

    Returns:
        Lower-case ASCII-and-digit words joined by single spaces (letters of other scripts than
        Latin and Greek are kept as they are); ``""`` when ``text`` holds no letter or digit.
    """
    text = _POSSESSIVE.sub("", unicodedata.normalize("NFKC", text).casefold())  # Hodgkin's = Hodgkin
    text = _GREEK_PATTERN.sub(lambda m: f" {GREEK[m.group()]} ", text)
    text = _strip_accents(text)
    return " ".join(_word(word) for word in _BREAKS.split(text) if word)


def _strip_accents(text: str) -> str:
    """``é`` -> ``e``: decomposed, then combining marks dropped (Sjögren = Sjogren)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _word(word: str) -> str:
    if word in ROMAN:
        return ROMAN[word]
    if word.isdigit() or len(word) <= 3:
        return word
    word = _singular(_british(word))
    return WORDS.get(word, word)


def _singular(word: str) -> str:
    for suffix, replacement, shortest in _PLURALS:
        if word.endswith(suffix) and len(word) >= shortest:
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith(_NOT_PLURAL):
        return word[:-1]
    return word


def _british(word: str) -> str:
    """tumour -> tumor, haemorrhage -> hemorrhage, oedema -> edema, leukaemia -> leukemia."""
    if word.endswith("our") or word.endswith("ours"):
        word = word.replace("our", "or")
    return word.replace("ae", "e").replace("oe", "e")


def char_ngrams(key: str, n: int = 3) -> list[str]:
    """The character n-grams of a normalised key, each word padded with one space on each side
    (scikit-learn's ``analyzer="char_wb"``; a word shorter than ``n - 2`` gives itself, padded).

    Args:
        key: a string from :func:`normalise` (single spaces between words).
        n: the n-gram length.

    Returns:
        The n-grams in order, repeats kept (term frequencies are their counts).
    """
    grams: list[str] = []
    for word in key.split():
        padded = f" {word} "
        if len(padded) < n:
            grams.append(padded)
            continue
        grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams

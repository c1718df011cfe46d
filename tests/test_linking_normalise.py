"""The linking key: what meets, what stays apart, and 3-grams exactly as scikit-learn cuts them."""

import pytest

from adabiobert.linking.normalise import char_ngrams, normalise


@pytest.mark.parametrize("variants", [
    ("Breast Tumours", "breast-tumor", "breast tumors", "BREAST TUMOR"),
    ("TNF-α", "TNF-alpha", "TNF alpha", "tnf-Alpha"),
    ("IL6", "IL-6", "il 6", "Il-6"),
    ("Type II diabetes", "type 2 diabetes", "Type-II Diabetes"),
    ("Hodgkin's disease", "Hodgkin disease", "Hodgkin’s Disease"),
    ("anaemia", "anemia", "Anaemias"),
    ("oedema", "edema"),
    ("Sjögren syndrome", "Sjogren syndrome"),
    ("breast cancers", "breast cancer", "Breast Neoplasms", "breast neoplasm"),
    ("therapies", "therapy"),
    ("viruses", "virus"),
    ("abscesses", "abscess"),
    ("β-catenin", "beta catenin", "Β-Catenin"),
])
def test_variants_meet_on_one_key(variants):
    assert len({normalise(v) for v in variants}) == 1, {v: normalise(v) for v in variants}


@pytest.mark.parametrize("left, right", [
    ("BRCA1", "BRCA2"),
    ("type 1 diabetes", "type 2 diabetes"),
    ("psoriasis", "psoriasi"),  # -is is not a plural ending
    ("breast", "breasts cancer"),
    ("IL6", "IL16"),
])
def test_different_names_stay_apart(left, right):
    assert normalise(left) != normalise(right)


def test_keys_are_single_spaced_lower_case_words():
    assert normalise("  Wilson  Disease (WD), type-II ") == "wilson disease wd type 2"
    assert normalise("---") == ""
    assert normalise("μg") == normalise("µg") == "mu g"  # micro sign and Greek mu


def test_short_words_are_not_singularised():
    assert normalise("HIV gas AIDS") == "hiv gas aid"  # "gas" has three letters; "aids" four


def test_char_ngrams_are_scikit_learns_char_wb():
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer = CountVectorizer(analyzer="char_wb", ngram_range=(3, 3), lowercase=False).build_analyzer()
    for text in ("breast neoplasm", "a b", "x", "il 6 receptor alpha", "ovarian neoplasm of the ovary"):
        assert char_ngrams(text) == analyzer(text)

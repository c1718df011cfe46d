"""Schwartz-Hearst abbreviation definitions: the paper's rules, each on the smallest text that shows it.

"heat shock transcription factor (HSF)" is the paper's running example of ``findBestLongForm``;
the SBMA/AR text is the one scispaCy's implementation is tested on.
"""

import pytest

from adabiobert.linking.abbreviations import abbreviation_map, expand, find_abbreviations


def pairs(text):
    found = find_abbreviations(text)
    for a in found:  # offsets point at what they name
        assert text[a.short_start:a.short_end] == a.short and text[a.long_start:a.long_end] == a.long
    return [(a.short, a.long) for a in found]


def test_the_papers_example():
    assert pairs("the heat shock transcription factor (HSF) binds") == [("HSF", "heat shock transcription factor")]


def test_the_brief_example_and_a_later_use_resolves():
    text = "We studied breast cancer (BC) in 40 women. BC was staged."
    assert abbreviation_map(text) == {"BC": "breast cancer"}
    assert expand("BC", abbreviation_map(text)) == "breast cancer"


def test_several_definitions_in_a_document():
    text = ("Spinal and bulbar muscular atrophy (SBMA) is an inherited motor neuron disease caused by the "
            "expansion of a polyglutamine tract within the androgen receptor (AR). SBMA can be caused by this easily.")
    assert pairs(text) == [("SBMA", "Spinal and bulbar muscular atrophy"), ("AR", "androgen receptor")]


def test_first_letter_must_start_a_word():
    # "t" of "heat" could match the T of "TF"; the first character must begin a word: "transcription"
    assert pairs("heat transcription factor (TF)") == [("TF", "transcription factor")]
    assert pairs("xyz reductase (RD)") == [("RD", "reductase")]  # R starts "reductase", D is inside it
    assert pairs("hepatitis (TF)") == []


def test_letters_are_matched_right_to_left_inside_words():
    assert pairs("Gcn5-related N-acetyltransferase (GNAT) family") == [("GNAT", "Gcn5-related N-acetyltransferase")]
    assert pairs("in the computed tomography (CT) scans") == [("CT", "computed tomography")]


def test_a_digit_must_be_matched_too():
    assert pairs("interleukin six (IL6)") == []
    assert pairs("interleukin 6 (IL6)") == [("IL6", "interleukin 6")]


def test_short_form_before_a_long_parenthesis():
    assert pairs("blah SBMA (Spinal and bulbar muscular atrophy) was seen") == [("SBMA", "Spinal and bulbar muscular atrophy")]


def test_short_form_before_the_parenthesis_needs_a_capital():
    assert pairs("a disease (Spinal and bulbar muscular atrophy)") == []


@pytest.mark.parametrize("text", [
    "at the highest altitudes (Spenner et al., 1995).",  # a citation
    "was lower (p < 0.05) in",  # no letter-led short form
    "values (1998)",  # no letter
    "the patients (n = 12) were",
    "the receptor (ABCDEFGHIJK)",  # more than 10 letters
    "the protein (-1)",
])
def test_parentheses_that_define_nothing(text):
    assert pairs(text) == []


def test_long_form_has_at_most_min_s_plus_5_and_2s_words():
    # |S| = 2: at most min(7, 4) = 4 words; the only B that starts a word is 8 words back
    assert pairs("big long words here and even more cells (BC)") == []
    assert pairs("bright cells (BC)") == [("BC", "bright cells")]


def test_short_form_ends_at_a_semicolon_or_comma():
    assert pairs("breast cancer (BC; reviewed in 4)") == [("BC", "breast cancer")]
    assert pairs("breast cancer (BC, 12 cases)") == [("BC", "breast cancer")]


def test_the_long_form_stays_in_its_sentence():
    assert pairs("Cells were counted. Breast cancer (BC) rates") == [("BC", "Breast cancer")]
    assert pairs("Best. Cancer (BC)") == []  # "B" would have to come from the previous sentence


def test_first_definition_of_a_short_form_wins():
    assert abbreviation_map("breast cancer (BC) and later bladder cancer (BC)") == {"BC": "breast cancer"}


def test_expand_replaces_whole_words_only():
    short = {"BC": "breast cancer", "WD": "Wilson disease"}
    assert expand("BC patients", short) == "breast cancer patients"
    assert expand("(WD)", short) == "(Wilson disease)"
    assert expand("BCL2", short) == "BCL2"
    assert expand("BC-related", short) == "BC-related"
    assert expand("anything", {}) == "anything"

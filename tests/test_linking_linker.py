"""The linker: abbreviations, composite mentions, abstention, types without a vocabulary, and a
small end-to-end link over the real shared MeSH, OMIM and HGNC files."""

import pytest

from adabiobert.errors import ConfigError
from adabiobert.linking.config import LinkingConfig, Selection, TypeVocabulary, VocabularyFile
from adabiobert.linking.index import ExtraName, build_index, load_index
from adabiobert.linking.linker import Link, Linker, Mention, composite_parts
from tests.linking_data import small_config, write_vocabularies


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("linker")
    build_index(small_config(write_vocabularies(folder / "vocab")), str(folder / "index"),
                [ExtraName("Disease", "hereditary breast and ovarian cancer", "MESH:D001943|MESH:D010051")])
    return load_index(str(folder / "index"))


def link_in(linker, text, *phrases):
    """Link each ``(phrase, type)``: the first occurrence of the phrase after the previous one's."""
    mentions, at = [], 0
    for phrase, entity_type in phrases:
        at = text.index(phrase, at)
        mentions.append(Mention(at, at + len(phrase), entity_type))
        at += len(phrase)
    return linker.link(text, mentions)


# ---- abbreviations --------------------------------------------------------------------------------
def test_a_short_form_links_as_its_long_form(index):
    text = "Wilson disease (WD) is rare. WD causes copper overload; TP53 is unrelated to WD."
    links = link_in(Linker(index), text, ("Wilson disease", "Disease"), ("WD", "Disease"), ("WD", "Disease"), ("WD", "Disease"))
    assert [link.concept_id for link in links] == ["MESH:D006527"] * 4
    assert all(link.method == "exact" and link.score == 1.0 for link in links)


def test_without_its_definition_a_short_form_is_not_expanded(index):
    assert Linker(index).link_text("WD", "Disease").concept_id is None


def test_a_mention_holding_a_short_form_is_expanded_word_by_word(index):
    text = "We studied breast cancer (BC) here. Familial BC was seen."
    (link,) = link_in(Linker(index), text, ("Familial BC", "Disease"))
    assert link.concept_id == "MESH:C562840" and link.method == "exact"  # "Familial breast cancer"


# ---- composite mentions ----------------------------------------------------------------------------
def test_a_composite_mention_yields_one_id_per_part(index):
    link = Linker(index).link_text("breast and ovarian cancers", "Disease")
    assert link == Link("MESH:D001943|MESH:D010051", "Breast Neoplasms|Ovarian Neoplasms", 1.0, "composite")


def test_composite_genes_with_a_shared_stem(index):
    assert Linker(index).link_text("BRCA1/2", "Gene").concept_id == "NCBIGene:672|NCBIGene:675"
    assert Linker(index).link_text("breast or ovarian neoplasms", "Disease").concept_id == "MESH:D001943|MESH:D010051"


def test_a_name_with_a_conjunction_is_not_split(index):
    link = Linker(index).link_text("hereditary breast and ovarian cancer", "Disease")
    assert link.method == "exact" and link.concept_id == "MESH:D001943|MESH:D010051"  # the whole name, not its parts


def test_composite_parts_options():
    assert composite_parts("breast and ovarian cancers") == [["breast", "ovarian cancers"], ["breast cancers", "ovarian cancers"]]
    assert composite_parts("Duchenne and Becker muscular dystrophy") == [
        ["Duchenne", "Becker muscular dystrophy"], ["Duchenne dystrophy", "Becker muscular dystrophy"],
        ["Duchenne muscular dystrophy", "Becker muscular dystrophy"]]
    assert composite_parts("colon, breast, or ovarian cancer")[-1] == ["colon cancer", "breast cancer", "ovarian cancer"]
    assert composite_parts("Hsp70/90") == [["Hsp70", "Hsp90"]]
    assert composite_parts("breast cancer") == []


# ---- abstention and types without a vocabulary -----------------------------------------------------
def test_below_the_threshold_the_linker_abstains_and_keeps_the_score(index):
    guess = Linker(index, threshold=0.0).link_text("hepatolenticular degradation", "Disease")
    assert guess.concept_id == "MESH:D006527" and guess.method == "tfidf" and 0.5 < guess.score < 0.9
    abstained = Linker(index, threshold=0.9).link_text("hepatolenticular degradation", "Disease")
    assert abstained == Link(None, None, guess.score, "abstain")


def test_a_composite_abstains_when_a_part_is_below_the_threshold(index):
    link = Linker(index, threshold=0.95).link_text("breast and ovarian neoplasias", "Disease")
    assert link.concept_id is None and link.method == "abstain" and link.score < 0.95


def test_a_mention_of_a_type_without_vocabulary_stays_unlinked(index):
    text = "HeLa cells carry the c.123A>G variant of TP53."
    links = link_in(Linker(index), text, ("HeLa", "CellLine"), ("c.123A>G", "Variant"), ("TP53", "Gene"))
    assert links[:2] == [Link(None, None, 0.0, "no-vocabulary")] * 2
    assert links[2].concept_id == "NCBIGene:7157"


def test_mentions_as_tuples_and_refused_offsets(index):
    assert Linker(index).link("Mice and humans", [(0, 4, "Species"), (9, 15, "Species")])[1].concept_id == "NCBITaxon:9606"
    with pytest.raises(ValueError, match="outside the text"):
        Linker(index).link("short", [(2, 10, "Disease")])
    with pytest.raises(ConfigError, match="threshold 1.5"):
        Linker(index, threshold=1.5)


def test_the_cache_does_not_change_answers(index):
    text = "Breast tumours and breast tumor and ovarian neoplasias."
    phrases = (("Breast tumours", "Disease"), ("breast tumor", "Disease"), ("ovarian neoplasias", "Disease"))
    cached = Linker(index)
    first = link_in(cached, text, *phrases)
    assert link_in(cached, text, *phrases) == first == link_in(Linker(index, cache_size=0), text, *phrases)


# ---- end to end over the shared vocabularies ------------------------------------------------------
@pytest.fixture(scope="module")
def shared_index(shared_root, tmp_path_factory):
    """Disease from the real MeSH descriptors and OMIM names, Gene from the real HGNC file (the
    supplementary concepts, 323,303 of them, are left out to keep the build to seconds)."""
    config = LinkingConfig(
        vocabularies=(VocabularyFile("mesh_descriptors", "mesh-descriptors-tsv", str(shared_root / "vocab" / "mesh_descriptors.tsv.gz")),
                      VocabularyFile("omim", "omim-lexicon", str(shared_root / "lexicon" / "gene_disease_associations.tsv")),
                      VocabularyFile("hgnc", "hgnc-tsv", str(shared_root / "vocab" / "hgnc_genes.tsv.gz"))),
        types=(TypeVocabulary("Disease", (Selection("mesh_descriptors", ("C", "F03")), Selection("omim"))),
               TypeVocabulary("Gene", (Selection("hgnc"),))))
    folder = tmp_path_factory.mktemp("shared-index") / "index"
    build_index(config, str(folder))
    return load_index(str(folder))


def test_real_mesh_breast_cancer_and_friends(shared_index):
    text = ("Germline BRCA1 mutations predispose to breast cancer (BC). Breast tumours and ovarian cancers were "
            "studied, as were breast and ovarian cancers; BC risk rose.")
    links = link_in(Linker(shared_index), text, ("BRCA1", "Gene"), ("breast cancer", "Disease"), ("BC", "Disease"),
                    ("Breast tumours", "Disease"), ("ovarian cancers", "Disease"), ("breast and ovarian cancers", "Disease"),
                    ("BC", "Disease"))
    assert [link.concept_id for link in links] == ["NCBIGene:672", "MESH:D001943", "MESH:D001943", "MESH:D001943",
                                                   "MESH:D010051", "MESH:D001943|MESH:D010051", "MESH:D001943"]
    assert links[1].concept_name == "Breast Neoplasms"

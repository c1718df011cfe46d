"""The linking index: TF-IDF against scikit-learn, exact lookups, the artifact on disk, and refusals."""

import hashlib
import json
import mmap

import numpy as np
import pytest

from adabiobert.errors import LinkingIndexError
from adabiobert.linking.index import (
    ExtraName,
    build_index,
    combined_hash,
    load_index,
    tfidf,
    vocabulary_hashes,
)
from adabiobert.linking.normalise import normalise
from tests.linking_data import small_config, write_vocabularies

KEYS = [normalise(n) for n in ("Breast Neoplasms", "Ovarian Neoplasms", "Neoplasms", "Wilson disease", "Hepatolenticular Degeneration",
                               "breast cancer familial", "a", "Li-Fraumeni syndrome", "tumor protein p53", "interleukin 6")]


@pytest.fixture(scope="module")
def index_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("linking-index")
    config = small_config(write_vocabularies(folder / "vocab"))
    build_index(config, str(folder / "index"), [ExtraName("Disease", "copper toxicosis", "OMIM:215600"),
                                                 ExtraName("Disease", "hepatic copper overload", "MESH:D006527"),
                                                 ExtraName("Disease", "breast and ovarian cancer", "MESH:D001943|MESH:D010051")])
    return folder / "index", config


# ---- the numbers ----------------------------------------------------------------------------------
def test_tfidf_is_scikit_learns():
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), lowercase=False, dtype=np.float64)
    expected = vectorizer.fit_transform(KEYS).toarray()  # (keys, V), columns in string order
    ours = tfidf(KEYS)
    assert [chr(c >> 42) + chr((c >> 21) & 0x1FFFFF) + chr(c & 0x1FFFFF) for c in ours.codes.tolist()] == vectorizer.get_feature_names_out().tolist()
    np.testing.assert_allclose(ours.by_key.toarray(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.by_ngram.toarray(), expected.T, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.idf, vectorizer.idf_, rtol=1e-6)


def test_search_scores_are_brute_force_cosines(index_path):
    from sklearn.feature_extraction.text import TfidfVectorizer

    index = load_index(str(index_path[0]))
    disease = index.type_index("Disease")
    keys = [disease.keys[i] for i in range(len(disease.keys))]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), lowercase=False)
    names = vectorizer.fit_transform(keys)
    for query in ("breast neoplasias", "wilsons disease", "ovary tumour", "copper toxicity"):
        cosines = (vectorizer.transform([normalise(query)]) @ names.T).toarray().ravel()  # (keys,)
        for exhaustive in (False, True):
            (best, *_) = disease.search([normalise(query)], top_k=3, exhaustive=exhaustive)[0]
            assert best.score == pytest.approx(cosines.max(), abs=1e-6)
            assert keys[best.key] in {keys[i] for i in np.flatnonzero(np.isclose(cosines, cosines.max()))}


def test_a_key_sharing_no_3gram_has_no_candidate(index_path):
    assert load_index(str(index_path[0])).type_index("Species").search(["qqqq"]) == [[]]


# ---- exact lookups and their order ----------------------------------------------------------------
def test_exact_prefers_the_earlier_vocabulary_then_the_better_name(index_path):
    index = load_index(str(index_path[0]))
    disease, gene = index.type_index("disease"), index.type_index("GENE")  # types ignore case
    found = disease.exact(normalise("Wilson Disease"))  # a MeSH synonym and OMIM's name: MeSH is configured first
    assert disease.curies[found.concept] == "MESH:D006527" and found.rank == 1 and found.score == 1.0
    assert disease.curies[disease.exact(normalise("Li-Fraumeni syndrome")).concept] == "OMIM:151623"
    assert gene.curies[gene.exact("p 53").concept] == "NCBIGene:7157"  # an alias symbol
    assert gene.curies[gene.exact(normalise("FANCD1")).concept] == "NCBIGene:675"  # previous symbol of BRCA2
    assert disease.exact("no such disease") is None
    assert index.type_index("CellLine") is None


def test_extra_names_are_synonyms_or_concepts_of_their_own(index_path):
    index = load_index(str(index_path[0]))
    disease = index.type_index("Disease")
    copper = disease.exact(normalise("copper toxicosis"))
    assert disease.curies[copper.concept] == "OMIM:215600" and disease.names[copper.concept] == "copper toxicosis"
    assert disease.curies[disease.exact(normalise("hepatic copper overload")).concept] == "MESH:D006527"
    assert disease.curies[disease.exact(normalise("breast and ovarian cancer")).concept] == "MESH:D001943|MESH:D010051"
    assert index.manifest["extra_names"]["keys"] == 3 and index.manifest["extra_names"]["new_concepts"] == 2


# ---- the artifact ------------------------------------------------------------------------------------
def test_manifest_records_versions_and_each_vocabularys_sha256(index_path):
    folder, config = index_path
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "adabiobert-linking-index" and manifest["format_version"] == 1
    assert manifest["linker_version"] and manifest["normalisation_version"] == 1
    for vocabulary in config.vocabularies:
        with open(vocabulary.path, "rb") as handle:
            assert manifest["vocabularies"][vocabulary.name]["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert manifest["vocabulary_hash"] == combined_hash(vocabulary_hashes(config))
    assert manifest["types"]["Species"]["concepts"] == 2 and manifest["types"]["Gene"]["concepts"] == 4
    assert manifest["vocabularies"]["hgnc"]["filtered"] == {"status Symbol Withdrawn": 1}


def test_arrays_are_memory_mapped_not_copied(index_path):
    chemical = load_index(str(index_path[0])).type_index("Chemical")
    for array in (chemical.postings.data, chemical.postings.indices, chemical.postings.indptr, chemical.vectors.data,
                  chemical.key_hashes, chemical.keys.blob):
        chain = []
        while array is not None:
            chain.append(array)
            array = getattr(array, "base", None)
        assert any(isinstance(a, (np.memmap, mmap.mmap)) for a in chain)


def test_load_accepts_the_expected_hashes(index_path):
    folder, config = index_path
    expected = vocabulary_hashes(config)
    assert load_index(str(folder), expected).vocabulary_hashes == expected
    assert load_index(str(folder), combined_hash(expected)).manifest["vocabulary_hash"] == combined_hash(expected)


def test_an_index_of_other_vocabularies_is_refused_naming_both_hashes(index_path):
    folder, config = index_path
    expected = {**vocabulary_hashes(config), "hgnc": "0" * 64}
    built = combined_hash(vocabulary_hashes(config))
    with pytest.raises(LinkingIndexError) as error:
        load_index(str(folder), expected)
    message = str(error.value)
    assert built in message and combined_hash(expected) in message
    assert f"hgnc: index {vocabulary_hashes(config)['hgnc']} vs expected {'0' * 64}" in message
    with pytest.raises(LinkingIndexError, match=f"built from vocabularies with hash {built}, but the run expects {'f' * 64}"):
        load_index(str(folder), "f" * 64)


def test_a_folder_that_is_not_an_index_or_of_another_format_is_refused(index_path, tmp_path):
    with pytest.raises(LinkingIndexError, match="no manifest.json; not a linking index"):
        load_index(str(tmp_path))
    manifest = json.loads((index_path[0] / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(LinkingIndexError, match="version 99; this code reads 'adabiobert-linking-index' version 1"):
        load_index(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "normalisation_version": 0}))
    with pytest.raises(LinkingIndexError, match="normalisation version 0"):
        load_index(str(tmp_path))


def test_rebuilding_replaces_the_folder_whole(index_path, tmp_path):
    _, config = index_path
    build_index(config, str(tmp_path / "index"))
    (tmp_path / "index" / "stray.txt").write_text("left by someone")
    build_index(config, str(tmp_path / "index"))
    assert not (tmp_path / "index" / "stray.txt").exists()
    assert load_index(str(tmp_path / "index")).manifest["extra_names"] is None

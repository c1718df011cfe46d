"""The linking benchmark's protocol pieces: gold identifiers as CURIEs, train mentions as names."""

from benchmarks.linking import gold_curie, gold_mentions, train_names


def test_gold_identifiers_become_curies():
    assert gold_curie("D009369", "Disease") == "MESH:D009369"
    assert gold_curie("C535575", "Chemical") == "MESH:C535575"
    assert gold_curie("MESH:D009369", "Disease") == gold_curie("MeSH:D009369", "Disease") == "MESH:D009369"
    assert gold_curie("OMIM:215600", "Disease") == "OMIM:215600"
    assert gold_curie("672", "Gene") == "NCBIGene:672"
    assert gold_curie("9606", "Species") == "NCBITaxon:9606"


def test_gold_mentions_and_train_names(tmp_path):
    path = tmp_path / "GNormPlus_Test.PubTator"
    path.write_text("1|t|BRCA1 and Brca1 and BRCA1/2.\n1|a|Nothing else.\n"
                    "1\t0\t5\tBRCA1\tGene\t672\n1\t10\t15\tBrca1\tGene\t12189(Tax:10090)\n"
                    "1\t20\t27\tBRCA1/2\tGene\t672,675\n\n", encoding="utf-8")
    documents, _ = gold_mentions(path, ("Gene",), human_only=True)
    ((text, mentions),) = documents
    assert [(text[m.start:m.end], sorted(g)) for m, g in mentions] == [
        ("BRCA1", ["NCBIGene:672"]), ("BRCA1/2", ["NCBIGene:672", "NCBIGene:675"])]  # the mouse gene is left out
    assert [(n.name, n.curie) for n in train_names(path, ("Gene",), True)] == [
        ("BRCA1", "NCBIGene:672"), ("BRCA1/2", "NCBIGene:672|NCBIGene:675")]

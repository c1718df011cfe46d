"""One pass, every type: a bundle of two types labels each mention with its type, and ``--types``
restricts what ``adabiobert tag`` and the annotation job write (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adabiobert.annotation.stages import model_id_for_types, split_documents, tag_documents
from adabiobert.cli.command import main as cli
from adabiobert.errors import ConfigError
from adabiobert.job_configs import AnnotateConfig, AnnotationJobConfig
from adabiobert.labels import LabelSet, parse_types, require_known_types
from adabiobert.model.checkpoint import bundle_entity_types
from adabiobert.model.tagger import Tagger
from tests.annotation_data import corpus_articles

TYPES = ("Chemical", "Disease")


@pytest.fixture(scope="module")
def two_type_bundle(tiny_backbone_dir: Path, tmp_path_factory) -> Path:
    """An untrained bundle of Chemical and Disease whose biases make every word start a mention of
    one of them (which one the random encoder decides): both labels appear on any text."""
    import torch

    from adabiobert.model.assembly import build_model
    from adabiobert.model.backbone import load_tokenizer
    from adabiobert.model.checkpoint import save_bundle
    from adabiobert.training_config import ModelConfig, TrainConfig

    config = TrainConfig(model=ModelConfig(backbone=str(tiny_backbone_dir), max_subwords=64, window_overlap=16))
    labels = LabelSet.from_entity_types(TYPES)
    torch.manual_seed(3)
    model = build_model(config, labels, None)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, 3.0, -9.0, 3.0, -9.0]))  # O, B-Chem, I-Chem, B-Dis, I-Dis
    return save_bundle(tmp_path_factory.mktemp("two-types") / "model", model, load_tokenizer(config.model.backbone),
                       config.model, None, {"name": "two-types"})


@pytest.fixture(scope="module")
def text_file(ncbi, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "doc.txt"
    path.write_text(" ".join(" ".join(s.words) for s in ncbi.test[:6]), encoding="utf-8")
    return path


def test_a_multi_type_bundle_labels_each_mention_with_its_type(two_type_bundle: Path, text_file: Path) -> None:
    assert bundle_entity_types(two_type_bundle) == TYPES
    entities = Tagger.from_pretrained(two_type_bundle, device="cpu").tag([text_file.read_text(encoding="utf-8")])[0]
    assert {e.label for e in entities} == set(TYPES)


def records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_tag_types_writes_only_those_types(two_type_bundle: Path, text_file: Path, capsys) -> None:
    assert cli(["tag", "--model", str(two_type_bundle), "--no-progress", str(text_file)]) == 0
    every = records(capsys)
    assert cli(["tag", "--model", str(two_type_bundle), "--no-progress", "--types", "Disease", str(text_file)]) == 0
    diseases = records(capsys)
    assert diseases and diseases == [r for r in every if r["label"] == "Disease"]


def test_tag_refuses_a_type_the_bundle_does_not_tag_in_one_line(two_type_bundle: Path, text_file: Path, capsys) -> None:
    assert cli(["tag", "--model", str(two_type_bundle), "--types", "Gene,Disease", str(text_file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "--types Gene" in captured.err and "it tags Chemical, Disease" in captured.err


def test_tag_refuses_an_empty_types_list(two_type_bundle: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli(["tag", "--model", str(two_type_bundle), "--types", " , "])
    assert exit_.value.code == 2 and "names no entity type" in capsys.readouterr().err


def test_the_tag_stage_keeps_only_the_types_asked_for(two_type_bundle: Path, ncbi) -> None:
    import pyarrow as pa

    tagger = Tagger.from_pretrained(two_type_bundle, device="cpu")
    articles = corpus_articles([s.words for s in ncbi.test[:30]], "PMC", 2)
    batch = pa.Table.from_pylist([{**{k: a[k] for k in ("pmcid", "title", "abstract", "sections")}, "path": "/s.parquet"}
                                  for a in articles])
    split = split_documents(batch, AnnotateConfig())
    every = [m for row in tag_documents(tagger, split).to_pylist() for m in row["entities"]]
    chemicals = [m for row in tag_documents(tagger, split, ("Chemical",)).to_pylist() for m in row["entities"]]
    assert {m["label"] for m in every} == set(TYPES)
    assert chemicals == [m for m in every if m["label"] == "Chemical"]


def test_a_restricted_run_has_a_model_id_of_its_own() -> None:
    assert model_id_for_types("union@abc", None) == "union@abc"
    assert model_id_for_types("union@abc", ("Gene", "Disease")) == "union@abc[Disease,Gene]"


def test_annotate_config_types() -> None:
    assert AnnotateConfig(types=("Gene", "Disease", "Gene")).types == ("Disease", "Gene")
    for bad in ((), ("",), (" Gene",)):
        with pytest.raises(ConfigError):
            AnnotateConfig(types=bad)
    assert parse_types("Gene, Disease,,Gene") == ("Disease", "Gene")
    with pytest.raises(ConfigError, match="it tags Disease"):
        require_known_types(("Gene",), ("Disease",), "the bundle x")


def test_annotate_job_takes_types(tmp_path: Path) -> None:
    from jobs.annotate import parse_args

    config, _ = parse_args(["--shards", "s", "--model", "m", "--output", "o", "--types", "Gene,Disease"])
    assert config.annotate.types == ("Disease", "Gene")
    assert parse_args(["--shards", "s", "--model", "m", "--output", "o"])[0].annotate.types is None
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--shards", "s", "--model", "m", "--output", "o", "--types", ","])
    assert exit_.value.code == 2


def test_the_annotation_job_refuses_an_unknown_type_before_any_work(two_type_bundle: Path, tmp_path: Path) -> None:
    from adabiobert.distributed.annotation import run_annotation

    config = AnnotationJobConfig(shards=str(tmp_path / "no-shards"), output=str(tmp_path / "out"),
                                 model=str(two_type_bundle), annotate=AnnotateConfig(types=("Gene",)))
    with pytest.raises(ConfigError, match="--types Gene: .* it tags Chemical, Disease"):
        run_annotation(config, log=lambda line: None)
    assert not (tmp_path / "out").exists()

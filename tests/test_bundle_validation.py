"""A bundle records the precisions it was validated at; older bundles load without the record."""

from __future__ import annotations

import json
import shutil

import pytest

from adabiobert.model.checkpoint import MANIFEST, VALIDATED, bundle_hash, load_bundle, record_validation


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "model")


def test_an_old_bundle_without_the_record_loads_with_none(bundle_copy):
    assert VALIDATED not in json.loads((bundle_copy / MANIFEST).read_text())
    assert load_bundle(bundle_copy).validated_precisions == {}


def test_records_accumulate_per_precision_and_load_back(bundle_copy):
    record_validation(bundle_copy, "fp32", {"entity_f1": 0.8, "sentences_changed": 0})
    record_validation(bundle_copy, "int8", {"entity_f1": 0.7, "sentences_changed": 3})
    record = record_validation(bundle_copy, "int8", {"entity_f1": 0.79, "sentences_changed": 2})
    assert record == {"fp32": {"entity_f1": 0.8, "sentences_changed": 0},
                      "int8": {"entity_f1": 0.79, "sentences_changed": 2}}
    assert json.loads((bundle_copy / MANIFEST).read_text())[VALIDATED] == record
    assert load_bundle(bundle_copy).validated_precisions == record


def test_the_record_leaves_the_model_id_unchanged(bundle_copy):
    before = bundle_hash(bundle_copy)
    record_validation(bundle_copy, "int8", {"entity_f1": 0.5})
    assert bundle_hash(bundle_copy) == before


@pytest.mark.parametrize("precision, scores", [("auto", {"entity_f1": 1.0}), ("fp16", {"entity_f1": 1.0}),
                                               ("int8", {"f1": 1.0})])
def test_a_bad_record_is_refused(bundle_copy, precision, scores):
    with pytest.raises(ValueError):
        record_validation(bundle_copy, precision, scores)

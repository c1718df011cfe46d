"""pmc.opendata: the Cloud Service bucket's keys, its metadata records and the licence filter."""

from __future__ import annotations

import json

import pytest

from adabiobert.errors import AdaBioBertError, ConfigError, MetadataError
from adabiobert.pmc import opendata
from adabiobert.pmc.opendata import license_filter, parse_metadata, parse_metadata_key

KEY = "metadata/PMC11370360.2.json"

RECORD = {  # the fields PMC documents, in its order, as a real record carries them
    "pmcid": "PMC11370360", "version": 2, "pmid": 39215011, "doi": "10.1000/xyz.2024.1",
    "title": "A title", "citation": "J Test. 2024;1:e1", "is_pmc_openaccess": True, "is_manuscript": True,
    "is_historical_ocr": False, "is_retracted": False, "license_code": "CC BY-NC",
    "xml_url": "s3://pmc-oa-opendata/PMC11370360.2/PMC11370360.2.xml?md5=0123",
    "pdf_url": "s3://pmc-oa-opendata/PMC11370360.2/PMC11370360.2.pdf?md5=4567",
    "media_urls": ["s3://pmc-oa-opendata/PMC11370360.2/fig1.jpg?md5=89ab"],
    "text_url": "s3://pmc-oa-opendata/PMC11370360.2/PMC11370360.2.txt?md5=cdef",
}


def raw(**changes) -> bytes:
    record = {**RECORD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


# --- keys -----------------------------------------------------------------------------------
def test_keys_of_one_version_follow_the_bucket_layout():
    assert opendata.metadata_key("PMC13901", 1) == "metadata/PMC13901.1.json"
    assert opendata.xml_key("PMC13901", 1) == "PMC13901.1/PMC13901.1.xml"
    assert opendata.json_key("PMC13901", 1) == "PMC13901.1/PMC13901.1.json"
    assert opendata.text_key("PMC11370360", 2) == "PMC11370360.2/PMC11370360.2.txt"


def test_a_metadata_key_gives_its_pmcid_and_integer_version():
    assert parse_metadata_key("metadata/PMC13901.1.json") == ("PMC13901", 1)
    assert parse_metadata_key(KEY) == ("PMC11370360", 2)
    assert parse_metadata_key(opendata.metadata_key("PMC7", 12)) == ("PMC7", 12)


@pytest.mark.parametrize("key", ["metadata/PMC13901.json", "metadata/13901.1.json", "metadata/PMC13901.1.xml",
                                 "PMC13901.1/PMC13901.1.json", "metadata/PMC13901.0.json", "metadata/PMC13901.1.json.bak",
                                 "metadata/README.txt", ""])
def test_a_malformed_metadata_key_is_refused_by_name(key):
    with pytest.raises(MetadataError, match="expected metadata/PMC<digits>.<version>.json|version 0") as error:
        parse_metadata_key(key)
    assert isinstance(error.value, AdaBioBertError) and key in str(error.value)


@pytest.mark.parametrize("pmcid, version", [("13901", 1), ("PMC", 1), ("PMC13901", 0), ("PMC13901", True), ("PMC1", "1")])
def test_keys_are_not_built_for_a_malformed_pmcid_or_version(pmcid, version):
    with pytest.raises(MetadataError):
        opendata.xml_key(pmcid, version)


# --- metadata records -------------------------------------------------------------------------
def test_a_full_record_is_read_with_its_types():
    meta = parse_metadata(raw(), KEY, expect=("PMC11370360", 2))
    assert (meta.pmcid, meta.version, meta.pmid, meta.license_code) == ("PMC11370360", 2, "39215011", "CC BY-NC")
    assert (meta.is_pmc_openaccess, meta.is_manuscript, meta.is_historical_ocr, meta.is_retracted) == (True, True, False, False)
    assert meta.media_urls == ("s3://pmc-oa-opendata/PMC11370360.2/fig1.jpg?md5=89ab",)
    assert meta.xml_url.endswith(".xml?md5=0123") and meta.missing == ()


def test_absent_and_null_fields_are_listed_not_guessed_silently():
    meta = parse_metadata(raw(pmid=None, license_code=None, pdf_url=..., media_urls=..., is_retracted=...), KEY)
    assert meta.pmid is None and meta.license_code is None and meta.pdf_url is None
    assert meta.media_urls == () and meta.is_retracted is False
    assert meta.missing == ("pmid", "is_retracted", "license_code", "pdf_url", "media_urls")


def test_unknown_fields_are_ignored():
    assert parse_metadata(raw(mid="NIHMS123"), KEY).pmcid == "PMC11370360"


@pytest.mark.parametrize("data, message", [
    (b'{"pmcid": "PMC1", "version": 1', "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "a JSON list, expected an object"),
    (b'"PMC1"', "a JSON str, expected an object"),
])
def test_malformed_json_is_refused_naming_the_key(data, message):
    with pytest.raises(MetadataError, match=message) as error:
        parse_metadata(data, KEY)
    assert str(error.value).startswith(f"{KEY}: ") and error.value.source == KEY


@pytest.mark.parametrize("changes, message", [
    ({"pmcid": ...}, "pmcid is missing"),
    ({"version": ...}, "version is missing"),
    ({"version": None}, "version is missing"),
    ({"pmcid": "11370360"}, "pmcid '11370360' is not PMC<digits>"),
    ({"version": 0}, "version 0 is not a positive integer"),
    ({"version": "2"}, "version is str '2', expected int"),
    ({"version": 2.0}, "version is float 2.0, expected int"),
    ({"version": True}, "version is bool True, expected int"),
    ({"is_retracted": "false"}, "is_retracted is str 'false', expected bool"),
    ({"is_manuscript": 1}, "is_manuscript is int 1, expected bool"),
    ({"license_code": 4}, "license_code is int 4, expected str"),
    ({"pmid": [1]}, "pmid is list .*, expected int or str"),
    ({"media_urls": "fig1.jpg"}, "media_urls is str 'fig1.jpg', expected list"),
    ({"media_urls": [1]}, "media_urls holds something other than strings"),
])
def test_a_missing_or_mistyped_field_is_refused_by_name(changes, message):
    with pytest.raises(MetadataError, match=message) as error:
        parse_metadata(raw(**changes), KEY)
    assert str(error.value).startswith(f"{KEY}: ")


def test_a_record_for_another_version_than_its_key_is_refused():
    with pytest.raises(MetadataError, match="holds PMC11370360.2, expected PMC11370360.1"):
        parse_metadata(raw(), "metadata/PMC11370360.1.json", expect=parse_metadata_key("metadata/PMC11370360.1.json"))


# --- licences ---------------------------------------------------------------------------------
ALL_CODES = [*opendata.KNOWN_LICENSES, None]


def test_open_access_keeps_every_version_even_without_a_licence():
    keep = license_filter("open-access")
    assert keep.codes is None and all(keep.allows(code) for code in ALL_CODES)


def test_commercial_keeps_the_four_licences_that_allow_commercial_reuse():
    keep = license_filter("commercial")
    assert [code for code in ALL_CODES if keep.allows(code)] == ["CC0", "CC BY", "CC BY-SA", "CC BY-ND"]
    assert not keep.allows("CC BY-NC") and not keep.allows("TDM") and not keep.allows(None)


def test_explicit_codes_are_normalised_for_case_and_spaces():
    keep = license_filter(" cc by ,CC  BY-NC-SA")
    assert keep.codes == frozenset({"CC BY", "CC BY-NC-SA"})
    assert keep.allows("CC BY") and keep.allows("cc  by-nc-sa") and not keep.allows("CC BY-NC")
    assert license_filter("Commercial").spec == "commercial"


@pytest.mark.parametrize("spec", ["", " , ", "CC-BY", "CC BY,GPL", "free"])
def test_an_unknown_licence_spec_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="license"):
        license_filter(spec)

"""A bucket laid out as PMC's Cloud Service (``adabiobert/pmc/opendata.py``), for tests and
benchmarks: per-version prefixes, the ``metadata/`` copies, and daily inventories. Written through
``adabiobert.storage``, so a root may be a local folder or ``s3://bucket`` (the loopback server).

    from adabiobert.testing.opendata_bucket import make_article, write_articles, write_inventory
    day1 = [make_article(20_000_001), make_article(20_000_002, license_code="CC BY-NC")]
    write_articles(root, day1)
    write_inventory(root, datetime(2026, 9, 1, 1, tzinfo=timezone.utc), day1)

A day's change is another call: write the new and replaced versions, delete the removed ones
(:func:`delete_articles`), then write that day's inventory of every version still there.

What is written for a version ``PMC20000001.1``: ``PMC20000001.1/PMC20000001.1.xml`` (a JATS
article from ``pmc_generator.article_xml``), ``.json`` (its metadata record), ``.txt`` (the text
of the XML), and ``metadata/PMC20000001.1.json``, the same bytes as the ``.json``. Its ETag in an
inventory is the MD5 of those bytes, which is what S3 (and moto) give an object stored in one PUT;
the metadata's ``xml_url`` carries the XML's MD5, so a replaced XML changes the metadata's ETag,
as on PMC's bucket.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from adabiobert import storage
from adabiobert.pmc import opendata
from adabiobert.pmc.inventory import DEFAULT_COLUMNS, FOLDER_FORMAT, MANIFEST, inventory_root
from adabiobert.testing.pmc_generator import article_xml

SENTENCES = (
    "Mutations in the BRCA1 gene increase the risk of breast cancer .",
    "Patients with type 2 diabetes received metformin for twelve weeks .",
    "The TP53 protein was overexpressed in colorectal adenocarcinoma samples .",
    "Cisplatin induced nephrotoxicity in a dose-dependent manner .",
    "Expression of IL-6 correlated with the severity of rheumatoid arthritis .",
    "We found no association between APOE and Parkinson disease in this cohort .",
    "Treatment with tamoxifen reduced tumour growth in mice .",
    "Cystic fibrosis is caused by mutations in the CFTR gene .",
)
"""Sentences for generated articles when no corpus is at hand (tests that do not need ``../shared``)."""

DEFAULT_TIME = datetime(2026, 9, 1, 0, 30, tzinfo=timezone.utc)


@dataclass(frozen=True)
class BucketArticle:
    """One article version as the bucket holds it."""

    pmcid: str
    version: int
    xml: bytes
    metadata: bytes
    """The JSON record's bytes, exactly as stored (a test may store malformed JSON here)."""
    last_modified: datetime
    """What its inventory row gives as ``LastModifiedDate``."""

    @property
    def etag(self) -> str:
        """The metadata object's ETag: the MD5 of its bytes (one-part PUT)."""
        return hashlib.md5(self.metadata).hexdigest()

    @property
    def key(self) -> str:
        return opendata.metadata_key(self.pmcid, self.version)


@dataclass(frozen=True)
class InventoryRow:
    """One row of an inventory data file."""

    key: str
    last_modified: datetime
    etag: str
    size: int = 0


def metadata_record(pmcid: str, version: int, xml: bytes, pmid: int | None = None, **fields) -> dict:
    """A metadata record with every field PMC documents; ``fields`` override the defaults (a CC BY,
    open-access, current, not retracted research article)."""
    name = opendata.version_name(pmcid, version)
    base = f"s3://{opendata.BUCKET}/{name}/{name}"
    record = {
        "pmcid": pmcid, "version": version, "pmid": pmid, "doi": f"10.5555/gen.{pmcid[3:]}",
        "title": f"Generated article {name}", "citation": f"Gen Test. 2026;{version}:e{pmcid[3:]}",
        "is_pmc_openaccess": True, "is_manuscript": False, "is_historical_ocr": False, "is_retracted": False,
        "license_code": "CC BY", "xml_url": f"{base}.xml?md5={hashlib.md5(xml).hexdigest()}", "pdf_url": None,
        "media_urls": [], "text_url": f"{base}.txt",
    }
    record.update(fields)
    return record


def make_article(number: int, version: int = 1, *, seed: int = 0, sentences: Sequence[str] = SENTENCES,
                 length: int = 12, last_modified: datetime = DEFAULT_TIME, metadata: bytes | None = None,
                 **fields) -> BucketArticle:
    """Version ``version`` of article ``PMC<number>``: its XML depends only on the arguments
    (another ``seed`` gives another text, for a replaced XML).

    Args:
        metadata: the stored record's bytes as given (malformed JSON, say); None builds it from
            :func:`metadata_record` with ``fields``.
    """
    pmcid = f"PMC{number}"
    rng = random.Random(f"{seed}:{number}:{version}")
    pmid = 40_000_000 + number % 10_000_000
    xml = article_xml(number, pmid, length, rng, sentences)
    if metadata is None:
        metadata = json.dumps(metadata_record(pmcid, version, xml, pmid, **fields), indent=1).encode()
    return BucketArticle(pmcid, version, xml, metadata, last_modified)


def write_articles(root_uri: str, articles: Iterable[BucketArticle]) -> None:
    """Store each version's XML, JSON and text under its prefix, and its ``metadata/`` copy."""
    for article in articles:
        put = lambda key, data: storage.write_bytes(storage.join(root_uri, *key.split("/")), data)  # noqa: E731
        put(opendata.xml_key(article.pmcid, article.version), article.xml)
        put(opendata.json_key(article.pmcid, article.version), article.metadata)
        put(opendata.text_key(article.pmcid, article.version), _text(article.xml))
        put(article.key, article.metadata)


def delete_articles(root_uri: str, versions: Iterable[tuple[str, int]]) -> None:
    """Remove versions ``(pmcid, version)``: their prefix and their ``metadata/`` copy."""
    for pmcid, version in versions:
        keys = [opendata.xml_key(pmcid, version), opendata.json_key(pmcid, version),
                opendata.text_key(pmcid, version), opendata.metadata_key(pmcid, version)]
        storage.delete([storage.join(root_uri, *key.split("/")) for key in keys])


def _text(xml: bytes) -> bytes:
    return re.sub(rb"\s+", b" ", re.sub(rb"<[^>]+>", b" ", xml)).strip() + b"\n"


def inventory_rows(articles: Iterable[BucketArticle]) -> list[InventoryRow]:
    """The inventory rows of these versions' ``metadata/`` objects."""
    return [InventoryRow(a.key, a.last_modified, a.etag, len(a.metadata)) for a in articles]


def write_inventory(root_uri: str, when: datetime, articles: Iterable[BucketArticle],
                    extra: Sequence[InventoryRow] = (), files: int = 2,
                    columns: Sequence[str] = DEFAULT_COLUMNS) -> str:
    """Write the inventory of ``when`` listing ``articles`` (then ``extra``, rows of other keys).

    Args:
        when: the inventory's time (PMC's are at 01:00 UTC); names its folder.
        files: how many gzipped CSV data files the rows are split over (at least one).
        columns: the ``fileSchema``, in the order the CSV columns are written; ``Bucket``,
            ``Key``, ``LastModifiedDate``, ``ETag`` and ``Size`` get values, others stay empty.

    Returns:
        The URI of its ``manifest.json``.
    """
    rows = inventory_rows(articles) + list(extra)
    parts = max(1, files)
    chunks = [rows[i * len(rows) // parts:(i + 1) * len(rows) // parts] for i in range(parts)]
    blobs = [gzip.compress(_csv(chunk, columns), mtime=0) for chunk in chunks]
    return write_inventory_files(root_uri, when, blobs, columns)


def _csv(rows: Sequence[InventoryRow], columns: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in rows:
        values = {"Bucket": opendata.BUCKET, "Key": row.key, "ETag": row.etag, "Size": str(row.size),
                  "LastModifiedDate": row.last_modified.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        writer.writerow([values.get(name, "") for name in columns])
    return out.getvalue().encode()


def write_inventory_files(root_uri: str, when: datetime, blobs: Sequence[bytes],
                          columns: Sequence[str] = DEFAULT_COLUMNS) -> str:
    """Store gzipped CSV data files under ``data/`` and the day's ``manifest.json`` (with its
    ``manifest.checksum``) naming them, as S3 Inventory does; the manifest last. Returns its URI.

    File names are UUIDs drawn from the day, so the same call writes the same keys.
    """
    folder = inventory_root(root_uri)
    relative_root = opendata.INVENTORY_PREFIX.rstrip("/")
    rng = random.Random(when.isoformat())
    files = []
    for blob in blobs:
        name = f"data/{uuid.UUID(int=rng.getrandbits(128), version=4)}.csv.gz"
        storage.write_bytes(storage.join(folder, *name.split("/")), blob)
        files.append({"key": f"{relative_root}/{name}", "size": len(blob), "MD5checksum": hashlib.md5(blob).hexdigest()})
    manifest = json.dumps({
        "sourceBucket": opendata.BUCKET,
        "destinationBucket": f"arn:aws:s3:::{opendata.BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(when.timestamp() * 1000)),
        "fileFormat": "CSV",
        "fileSchema": ", ".join(columns),
        "files": files,
    }, indent=2).encode()
    day = when.astimezone(timezone.utc).strftime(FOLDER_FORMAT)
    storage.write_bytes(storage.join(folder, day, "manifest.checksum"), hashlib.md5(manifest).hexdigest().encode())
    uri = storage.join(folder, day, MANIFEST)
    storage.write_bytes(uri, manifest)
    return uri

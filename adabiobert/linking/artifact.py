"""The linking index as a versioned artifact: what a run records of it, and one copy per node.

An index folder (``build_index``, ``jobs/build_linking_index.py``) is immutable once published:
its ``manifest.json`` lists the sha256 of every other file, so the manifest's own sha256 (the
*index hash*, :func:`~adabiobert.linking.index.index_hash`) names the whole artifact. A run reads
the manifest alone (:func:`inspect_index`: a few kB, also from ``s3://``), records the hash, and
hands ``(uri, hash)`` to its workers; each node then holds one copy (:func:`node_local_index`):

* a local folder (a shared file system) is used where it is, after its manifest is checked
  against the hash;
* an ``s3://`` folder is downloaded once per node into ``<cache>/<index hash>/`` (``cache``:
  ``$ADABIOBERT_LINKING_CACHE``, else ``<tmp>/adabiobert-linking``; ``storage.cached_folder``),
  under a file lock so that the actors of one node download it once, every file checked against
  the manifest, then renamed into place. Later loads on that node find it there.

Every process that loads the index maps the same files (``np.load(mmap_mode="r")``), so the
node's page cache holds one copy of the pages actually read, however many actors link.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adabiobert import storage
from adabiobert.errors import LinkingIndexError
from adabiobert.linking import LINKER_VERSION
from adabiobert.linking.index import MANIFEST, check_manifest, index_hash, load_index
from adabiobert.linking.linker import Linker

CACHE_ENV = "ADABIOBERT_LINKING_CACHE"
"""Names the node-local folder that holds downloaded indexes (default ``<tmp>/adabiobert-linking``)."""


@dataclass(frozen=True)
class IndexArtifact:
    """What a run knows and records of the index it links with, read from its manifest alone."""

    uri: str
    index_hash: str
    """sha256 of ``manifest.json``: the artifact's identity (:func:`~adabiobert.linking.index.index_hash`)."""
    vocabulary_hash: str
    """The vocabularies' combined sha256 (:func:`~adabiobert.linking.index.combined_hash`)."""
    built_at: str
    release: str | None
    """The label the build job gave it (``--release``), if any."""

    def linker_id(self, threshold: float) -> str:
        """``linker<version>:<index hash, 16 hex>@<threshold>``: what decides a run's links (the
        linker code's version, the index, the threshold), written in the ``linker_id`` column and
        in every commit marker; a run with another one re-links."""
        return f"linker{LINKER_VERSION}:{self.index_hash[:16]}@{threshold:g}"

    def to_dict(self) -> dict:
        return {"index": self.uri, "index_hash": self.index_hash, "vocabulary_hash": self.vocabulary_hash,
                "built_at": self.built_at, "release": self.release}


def inspect_index(uri: str, expected_vocabulary_hash: str | None = None) -> IndexArtifact:
    """Read and check the manifest of the index at ``uri`` (local or ``s3://``), not its arrays.

    Args:
        expected_vocabulary_hash: the vocabularies' combined hash the run expects (what
            ``jobs/build_linking_index.py`` prints); None accepts any.

    Raises:
        LinkingIndexError: no index there, another format or normalisation version, or built from
            other vocabularies than expected (both hashes named).
    """
    try:
        data = storage.read_bytes(storage.join(uri, MANIFEST))
    except FileNotFoundError:
        raise LinkingIndexError(f"{uri}: no {MANIFEST}; not a linking index (build one with "
                                "jobs/build_linking_index.py)") from None
    manifest = check_manifest(uri, data, expected_vocabulary_hash)
    return IndexArtifact(uri, index_hash(data), manifest["vocabulary_hash"], manifest.get("built_at", ""),
                         manifest.get("release"))


def cache_root() -> Path:
    """The node-local folder of downloaded indexes (:data:`CACHE_ENV`)."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "adabiobert-linking")


def node_local_index(uri: str, expected_hash: str, cache: Path | None = None) -> str:
    """A local folder holding the index ``uri`` whose hash is ``expected_hash`` (see the module
    docstring): an ``s3://`` index is downloaded at most once per node and cache folder
    (``storage.cached_folder``, every file checked against the manifest), a local one used in place.

    Raises:
        LinkingIndexError: the index at ``uri`` is not the one the run recorded (replaced since),
            or a downloaded file differs from its manifest's sha256.
    """
    folder = storage.cached_folder(uri, cache or cache_root(), expected_hash,
                                   check=lambda copy: verify_files(uri, copy, expected_hash))
    found = index_hash(Path(folder, MANIFEST).read_bytes())
    if found != expected_hash:
        raise LinkingIndexError(f"{uri}: index hash {found}, but the run recorded {expected_hash}: the index "
                                "was replaced during the run")
    return folder


def verify_files(uri: str, folder: Path, expected_hash: str) -> None:
    """Check a copy of an index: its manifest has ``expected_hash`` and every file it lists its sha256.

    Raises:
        LinkingIndexError: naming the first file that differs.
    """
    data = (folder / MANIFEST).read_bytes()
    if index_hash(data) != expected_hash:
        raise LinkingIndexError(f"{uri}: index hash {index_hash(data)}, but the run recorded {expected_hash}: the "
                                "index was replaced during the run")
    for relative, sha256 in check_manifest(uri, data).get("files", {}).items():
        path = folder / relative
        if not path.is_file() or storage.file_sha256(path) != sha256:
            raise LinkingIndexError(f"{uri}: {relative} is missing or differs from the manifest's sha256 {sha256}")


def open_linker(uri: str, expected_hash: str, threshold: float, cache: Path | None = None) -> Linker:
    """A :class:`~adabiobert.linking.linker.Linker` over the node's copy of the index (memory-mapped).

    Raises:
        LinkingIndexError: see :func:`node_local_index`.
    """
    return Linker(load_index(node_local_index(uri, expected_hash, cache)), threshold=threshold)

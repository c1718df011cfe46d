"""PMC bulk packages for the append and version tests: a baseline and two incrementals, written
with the benchmark generator's PackageWriter (PMC's layout: tar.gz + .filelist.csv)."""

from __future__ import annotations

import random
from pathlib import Path

from adabiobert.testing.pmc_generator import PackageWriter, article_xml

BASE = 20_000_000


def pmcid(n: int) -> str:
    return f"PMC{BASE + n}"


def _article(n: int, sentences: list[str], seed: int) -> bytes:
    return article_xml(BASE + n, 30_000_000 + n, 6, random.Random(seed * 1000 + n), sentences)


def write_package(folder: Path, name: str, articles: list[tuple[int, str, str, int]], sentences: list[str],
                  damaged: tuple[int, ...] = (), listed_only: tuple[int, ...] = (),
                  unlisted: tuple[int, ...] = ()) -> Path:
    """``<name>.tar.gz`` and its file list. ``articles``: (n, LastUpdated, Retracted, text seed).
    ``damaged``: members whose XML is cut short; ``listed_only``: file-list rows with no member
    (their article is missing from the package); ``unlisted``: members with no file-list row."""
    folder.mkdir(parents=True, exist_ok=True)
    with PackageWriter(folder, name) as package:
        for n, updated, retracted, seed in articles:
            data = _article(n, sentences, seed)
            if n in damaged:
                data = data[: len(data) // 2]
            package.add(BASE + n, data, updated, f"Journal {n}", str(30_000_000 + n), retracted=retracted)
    if listed_only or unlisted:
        _edit_package(folder, name, listed_only, unlisted)
    return folder / f"{name}.tar.gz"


def _edit_package(folder: Path, name: str, listed_only: tuple[int, ...], unlisted: tuple[int, ...]) -> None:
    """Drop the members of ``listed_only`` from the package and the rows of ``unlisted`` from its list."""
    import io
    import tarfile

    path = folder / f"{name}.tar.gz"
    with tarfile.open(path) as old:
        members = [(m, old.extractfile(m).read()) for m in old.getmembers()]
    with tarfile.open(path, "w:gz") as new:
        for member, data in members:
            if not any(member.name.endswith(f"PMC{BASE + n}.xml") for n in listed_only):
                new.addfile(member, io.BytesIO(data))
    listing = folder / f"{name}.filelist.csv"
    lines = listing.read_text().splitlines(keepends=True)
    listing.write_text("".join(line for line in lines if not any(f",PMC{BASE + n}," in line for n in unlisted)))


DAY0, DAY1, DAY2 = "2024-06-18 00:00:00", "2024-06-19 00:00:00", "2024-06-20 00:00:00"


def baseline(folder: Path, sentences: list[str]) -> Path:
    """Articles 1..6, version DAY0."""
    return write_package(folder, "oa_comm_xml.PMC020xxxxxx.baseline.2024-06-18",
                         [(n, DAY0, "no", 0) for n in range(1, 7)], sentences)


def incremental_1(folder: Path, sentences: list[str]) -> Path:
    """A new article (7) and a corrected one (2: new text, version DAY1)."""
    return write_package(folder, "oa_comm_xml.incr.2024-06-19", [(7, DAY1, "no", 0), (2, DAY1, "no", 1)], sentences)


def incremental_2(folder: Path, sentences: list[str]) -> Path:
    """Article 4 retracted (version DAY2), and a retraction of article 99, never seen before."""
    return write_package(folder, "oa_comm_xml.incr.2024-06-20", [(4, DAY2, "yes", 0), (99, DAY2, "yes", 0)], sentences)

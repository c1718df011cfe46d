"""PMC-shaped bulk packages made from the IOB corpora's sentences: a test helper and a benchmark
input (issue 10, item 4), never shipped data.

    from adabiobert.testing.pmc_generator import CorpusSpec, LengthModel, corpus_sentences, generate
    result = generate(folder, CorpusSpec(articles=100_000), corpus_sentences(corpora_root))

What an article looks like (what ``adabiobert/pmc/jats.py`` reads, and what it drops):

- front: ``<article-id>`` pmc, pmid and doi; a title (one corpus sentence); a ``<pub-date>``; a
  CC BY ``<license>``; an abstract of 5 to 13 sentences in one or two paragraphs;
- body: the other sentences in paragraphs of 3 to 7, one to four paragraphs per section, the
  sections following an IMRaD outline whose Methods and Results hold nested ``<sec>``s
  (``"Materials and Methods / Patients"`` once flattened);
- back: a ``<ref-list>`` of one reference per 5 sentences (parsed and dropped by ingest, as in
  real articles, whose bytes it roughly matches).

Every sentence is a train-split sentence of a corpus, its words joined by single spaces (XML
escaped), drawn uniformly with replacement. The number of sentences of an article (title and
abstract included) is drawn from :class:`LengthModel`: a log-normal clipped to a range, whose
parameters :func:`fit_lengths` takes from the sentence counts of real articles (the PMC samples,
measured with the annotation job's own splitter by :func:`sample_lengths`).

Packages are written as PMC publishes its OA bulk subset (``adabiobert/pmc/filelist.py``):
baseline packages ``oa_comm_xml.PMC020xxxxxx.baseline.<date>.tar.gz`` (one per million-id
range, as PMC cuts them), then incremental ones ``oa_comm_xml.incr.<date>.tar.gz`` (one per
day after the baseline), each with its ``.filelist.csv`` beside it. Incremental packages hold
new articles only: an update of an article of the baseline would be a ``duplicate pmcid`` reject
in a run that ingests both (ingest keeps the first).

Generation streams: one article is built, added to its package and its file-list row written,
then dropped, so memory does not grow with the corpus (only one small int per article is kept,
for the length report). Article ``i`` depends only on the seed and ``i`` (its own
``random.Random``), so the same seed gives the same bytes whatever the package split.
"""

from __future__ import annotations

import array
import datetime
import gzip
import io
import math
import random
import statistics
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

FILE_LIST_HEADER = "Article File,Article Citation,AccessionID,LastUpdated (YYYY-MM-DD HH:MM:SS),PMID,License,Retracted\n"
"""The header PMC writes in every ``.filelist.csv`` (``adabiobert.pmc.filelist.COLUMNS``)."""

FIRST_ID = 20_000_000
"""Generated PMC ids start here, above every real one (PMC ids are about 12 million in 2025)."""

MEMBER_MTIME = 1_700_000_000
"""Modification time of every package member; the gzip header's is 0. Both fixed, so that a
package is the same bytes every time it is generated."""

TRAIN_CORPORA = ("NCBI-disease", "BC5CDR", "BC2GM")
"""Corpora with a train split here (``../shared/README.md``; JNLPBA's train split is missing, the
BC5CDR-chem and -disease folders hold BC5CDR's sentences again)."""

_OUTLINE = (
    ("Introduction", None),
    ("Materials and Methods", "Study population"),
    ("Materials and Methods", "Sample collection and processing"),
    ("Materials and Methods", "Genotyping"),
    ("Materials and Methods", "Statistical analysis"),
    ("Results", "Characteristics of the patients"),
    ("Results", "Association analysis"),
    ("Results", "Expression in tissue samples"),
    ("Results", "Functional assays"),
    ("Discussion", None),
    ("Conclusions", None),
)
"""Section headings in reading order; a long article repeats the Results and Discussion part."""

_JOURNALS = ("BMC Med Genet", "PLoS One", "J Clin Invest", "Nucleic Acids Res", "Environ Health Perspect")


@dataclass(frozen=True)
class LengthModel:
    """Sentences per article: ``round(exp(N(mu, sigma)))`` clipped to ``[minimum, maximum]``."""

    mu: float
    """Mean of the natural log of the sentence count."""
    sigma: float
    """Standard deviation of the natural log of the sentence count."""
    minimum: int = 10
    """Fewest sentences (a title, an abstract, a paragraph)."""
    maximum: int = 2000
    """Most sentences (real PMC has longer texts; the annotation job rejects > 1 M characters)."""

    def __post_init__(self) -> None:
        if self.sigma < 0:
            raise ValueError(f"LengthModel.sigma must be >= 0, got {self.sigma}")
        if not 3 <= self.minimum <= self.maximum:
            raise ValueError(f"LengthModel needs 3 <= minimum <= maximum, got {self.minimum}, {self.maximum}")

    def draw(self, rng: random.Random) -> int:
        return min(self.maximum, max(self.minimum, round(rng.lognormvariate(self.mu, self.sigma))))

    @property
    def median(self) -> float:
        return math.exp(self.mu)


PMC_SAMPLE_LENGTHS = (251, 174, 76, 167, 126, 174, 235, 249)
"""Sentences per article of the eight PMC samples (``../shared/pmc-sample``, sorted by file
name), as :func:`sample_lengths` counts them; mean 181.5. Used when the samples are not at hand."""


def fit_lengths(counts: Sequence[int], minimum: int = 10, maximum: int = 2000) -> LengthModel:
    """The log-normal with the mean and (sample) standard deviation of ``log(counts)``."""
    if len(counts) < 2 or min(counts) < 1:
        raise ValueError(f"fit_lengths needs at least two positive counts, got {list(counts)}")
    logs = [math.log(c) for c in counts]
    return LengthModel(statistics.fmean(logs), statistics.stdev(logs), minimum, maximum)


def sample_lengths(folder: Path) -> list[int]:
    """Sentences per article of the ``.nxml`` files in ``folder`` (title, abstract and body, split
    as the annotation job splits them), sorted by file name."""
    from adabiobert.annotation.stages import sentence_records
    from adabiobert.pmc.jats import parse_jats
    from adabiobert.pmc.shards import article_sections

    counts = []
    for path in sorted(Path(folder).glob("*.nxml")):
        record = parse_jats(path.read_bytes(), str(path))
        counts.append(len(sentence_records(article_sections(record["title"], record["abstract"], record["sections"]))))
    return counts


def corpus_sentences(corpora_root: Path, names: Sequence[str] = TRAIN_CORPORA) -> list[str]:
    """Every train sentence of the named corpora, its words joined by spaces, XML escaped."""
    from adabiobert.corpora.iob import load_corpus

    sentences = [escape(" ".join(s.words)) for name in names for s in load_corpus(name, corpora_root).train]
    if not sentences:
        raise ValueError(f"no train sentences in {', '.join(names)} under {corpora_root}")
    return sentences


@dataclass(frozen=True)
class CorpusSpec:
    """How many articles, in which packages."""

    articles: int = 100_000
    baseline_packages: int = 4
    """Packages of the baseline, each its own million-id range; they share ``1 - incremental_share``
    of the articles."""
    incremental_packages: int = 5
    """Daily incremental packages after the baseline; they share ``incremental_share``."""
    incremental_share: float = 0.2
    lengths: LengthModel = field(default_factory=lambda: fit_lengths(PMC_SAMPLE_LENGTHS))
    seed: int = 0
    baseline_date: datetime.date = datetime.date(2024, 6, 18)
    compresslevel: int = 6
    """gzip level of the packages (PMC's own packages are gzip at the default level)."""

    def __post_init__(self) -> None:
        if self.articles < 1:
            raise ValueError(f"CorpusSpec.articles must be >= 1, got {self.articles}")
        if self.baseline_packages < 1 or self.incremental_packages < 0:
            raise ValueError("CorpusSpec needs at least one baseline package and no negative count of incremental ones")
        if not 0 <= self.incremental_share < 1:
            raise ValueError(f"CorpusSpec.incremental_share must be in [0, 1), got {self.incremental_share}")

    def packages(self) -> list[tuple[str, str, int, int]]:
        """``(name, LastUpdated, first article index, articles)`` per package, in ingest order."""
        incremental = round(self.articles * self.incremental_share) if self.incremental_packages else 0
        out, start = [], 0
        for p, count in enumerate(_even(self.articles - incremental, self.baseline_packages)):
            first_range = (FIRST_ID // 1_000_000) + p
            out.append((f"oa_comm_xml.PMC{first_range:03d}xxxxxx.baseline.{self.baseline_date}",
                        f"{self.baseline_date} 10:11:12", start, count))
            start += count
        for d, count in enumerate(_even(incremental, self.incremental_packages), start=1):
            day = self.baseline_date + datetime.timedelta(days=d)
            out.append((f"oa_comm_xml.incr.{day}", f"{day} 09:00:00", start, count))
            start += count
        return [package for package in out if package[3] > 0]

    def pmcid(self, index: int) -> int:
        """The PMC id of article ``index``: baseline package ``p`` holds ids of range ``20 + p``
        million, the incremental packages ids of the range after the last baseline one."""
        for p, (_, _, start, count) in enumerate(self.packages()[:self.baseline_packages]):
            if start <= index < start + count:
                return FIRST_ID + p * 1_000_000 + (index - start)
        return FIRST_ID + self.baseline_packages * 1_000_000 + index


def _even(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)] if parts else []


class PackageWriter:
    """One PMC bulk package (``<name>.tar.gz``) and its ``<name>.filelist.csv``, written member
    by member (nothing is kept in memory but the open files)."""

    def __init__(self, folder: Path, name: str, compresslevel: int = 6) -> None:
        self.path = Path(folder) / f"{name}.tar.gz"
        self.articles = 0
        self._file = open(self.path, "wb")
        self._gzip = gzip.GzipFile(self.path.name.removesuffix(".gz"), "wb", compresslevel, self._file, mtime=0)
        self._tar = tarfile.open(fileobj=self._gzip, mode="w")
        self._list = open(Path(folder) / f"{name}.filelist.csv", "w", encoding="utf-8", newline="")
        self._list.write(FILE_LIST_HEADER)

    def add(self, pmcid: int, data: bytes, last_updated: str, citation: str, pmid: str = "",
            license: str = "CC BY", retracted: str = "no") -> None:
        """Add ``PMC0NNxxxxxx/PMC<pmcid>.xml`` and its file-list row."""
        member = f"PMC{pmcid // 1_000_000:03d}xxxxxx/PMC{pmcid}.xml"
        info = tarfile.TarInfo(member)
        info.size, info.mtime = len(data), MEMBER_MTIME
        self._tar.addfile(info, io.BytesIO(data))
        quoted = citation.replace('"', '""')
        self._list.write(f'{member},"{quoted}",PMC{pmcid},{last_updated},{pmid},{license},{retracted}\n')
        self.articles += 1

    def close(self) -> None:
        self._tar.close()  # none of these closes the one below it
        self._gzip.close()
        self._file.close()
        self._list.close()

    def __enter__(self) -> PackageWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Generated:
    """What :func:`generate` wrote."""

    packages: tuple[str, ...]
    """Package paths, in ingest order (their file lists lie beside them)."""
    articles: int
    sentences: int
    """Sentences written (title, abstract and body; the drawn lengths summed)."""
    lengths: array.array
    """The drawn length of each article, in article order."""
    package_bytes: int
    seconds: float


def generate(folder: Path, spec: CorpusSpec, sentences: Sequence[str]) -> Generated:
    """Write ``spec``'s packages and file lists into ``folder`` (created; must hold no package yet).

    Args:
        sentences: the pool articles are drawn from (:func:`corpus_sentences`: already escaped).

    Raises:
        FileExistsError: ``folder`` already holds a ``.tar.gz``.
    """
    import time

    started = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.tar.gz")):
        raise FileExistsError(f"{folder} already holds packages; generate into an empty folder")
    lengths = array.array("I")
    paths, total_bytes = [], 0
    for name, updated, start, count in spec.packages():
        id_base = spec.pmcid(start)
        with PackageWriter(folder, name, spec.compresslevel) as writer:
            for index in range(start, start + count):
                rng = random.Random(spec.seed * 1_000_003 + index)
                length = spec.lengths.draw(rng)
                pmcid = id_base + (index - start)
                pmid = 40_000_000 + index
                writer.add(pmcid, article_xml(pmcid, pmid, length, rng, sentences), updated,
                           f"{rng.choice(_JOURNALS)}. {2000 + index % 24}; {1 + index % 40}:{index % 997 + 1}",
                           str(pmid))
                lengths.append(length)
        paths.append(str(writer.path))
        total_bytes += writer.path.stat().st_size
    return Generated(tuple(paths), len(lengths), sum(lengths), lengths, total_bytes,
                     time.perf_counter() - started)


def generated_pmcids(spec: CorpusSpec) -> list[str]:
    """The ``PMC<id>`` of every article ``spec`` generates, in article order."""
    return [f"PMC{spec.pmcid(start) + k}" for _, _, start, count in spec.packages() for k in range(count)]


def article_xml(pmcid: int, pmid: int, length: int, rng: random.Random, sentences: Sequence[str]) -> bytes:
    """One JATS article of ``length`` sentences (title, abstract and body) drawn with ``rng``."""
    assert length >= 3, length
    draw = lambda n: [sentences[rng.randrange(len(sentences))] for _ in range(n)]  # noqa: E731
    title = draw(1)[0]
    abstract = draw(min(length - 2, rng.randint(5, 13)))
    body = draw(length - 1 - len(abstract))
    paragraphs = []
    while body:
        take = rng.randint(3, 7)
        paragraphs.append(body[:take])
        body = body[take:]
    sections: list[tuple[str, str | None, list[list[str]]]] = []
    outline = 0
    while paragraphs:
        take = rng.randint(1, 4)
        top, sub = _OUTLINE[outline if outline < len(_OUTLINE) else 5 + (outline - 5) % 6]  # then Results again
        sections.append((top, sub, paragraphs[:take]))
        paragraphs = paragraphs[take:]
        outline += 1
    year = 2000 + pmid % 24
    half = (len(abstract) + 1) // 2 if len(abstract) > 6 else len(abstract)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.3 20210610//EN" '
        '"JATS-archivearticle1-3.dtd">\n'
        '<article xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML" '
        'article-type="research-article" dtd-version="1.3">\n<front>\n<journal-meta>'
        f'<journal-id journal-id-type="nlm-ta">{rng.choice(_JOURNALS)}</journal-id>'
        f'<journal-title-group><journal-title>{rng.choice(_JOURNALS)}</journal-title></journal-title-group>'
        '<issn pub-type="epub">1234-5678</issn></journal-meta>\n<article-meta>'
        f'<article-id pub-id-type="pmid">{pmid}</article-id>'
        f'<article-id pub-id-type="pmc">PMC{pmcid}</article-id>'
        f'<article-id pub-id-type="doi">10.5555/gen.{pmcid}</article-id>'
        '<article-categories><subj-group subj-group-type="heading"><subject>Research Article</subject></subj-group>'
        f'</article-categories>\n<title-group><article-title>{title}</article-title></title-group>\n'
        '<contrib-group><contrib contrib-type="author"><name><surname>Doe</surname><given-names>J</given-names>'
        '</name><xref ref-type="aff" rid="aff1">1</xref></contrib></contrib-group>'
        '<aff id="aff1"><label>1</label>Department of Generated Data, Nowhere University</aff>\n'
        f'<pub-date pub-type="epub"><day>{1 + pmid % 28}</day><month>{1 + pmid % 12}</month><year>{year}</year></pub-date>'
        f'<volume>{1 + pmid % 40}</volume><elocation-id>e{pmid % 100000}</elocation-id>'
        '<permissions><copyright-statement>Generated for testing.</copyright-statement>'
        '<license license-type="open-access" xlink:href="http://creativecommons.org/licenses/by/4.0/">'
        '<license-p>This is an open-access article distributed under the terms of the Creative Commons '
        'Attribution License.</license-p></license></permissions>\n<abstract>',
    ]
    for part in (abstract[:half], abstract[half:]):
        if part:
            out.append(f'<p>{" ".join(part)}</p>')
    out.append('</abstract>\n</article-meta>\n</front>\n<body>\n')
    s = 0
    while s < len(sections):
        top, sub, paragraphs = sections[s]
        out.append(f'<sec id="S{s}"><title>{top}</title>\n')
        if sub is None:
            out.extend(f'<p>{" ".join(p)}</p>\n' for p in paragraphs)
            s += 1
        else:
            while s < len(sections) and sections[s][0] == top and sections[s][1] is not None:
                out.append(f'<sec id="s{s}"><title>{sections[s][1]}</title>\n')
                out.extend(f'<p>{" ".join(p)}</p>\n' for p in sections[s][2])
                out.append('</sec>\n')
                s += 1
        out.append('</sec>\n')
    out.append('</body>\n<back><ref-list><title>References</title>\n')
    for r in range(1, length // 5 + 2):
        out.append(f'<ref id="B{r}"><label>{r}</label><mixed-citation publication-type="journal"><person-group '
                   f'person-group-type="author"><name><surname>Author{r}</surname><given-names>A</given-names></name>'
                   f'</person-group> <article-title>{draw(1)[0]}</article-title> <source>{rng.choice(_JOURNALS)}'
                   f'</source> <year>{1990 + r % 30}</year>;<volume>{r}</volume>:<fpage>{r * 7}</fpage>'
                   '</mixed-citation></ref>\n')
    out.append('</ref-list></back>\n</article>\n')
    return "".join(out).encode("utf-8")

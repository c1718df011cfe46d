"""JATS ``.nxml`` (PubMed Central Open Access) to one article record of the PMC shard schema.

What is kept, and how (the same rules are listed in ``docs/pmc-shards.md``):

- ids from ``<article-id pub-id-type="pmc|pmcid|pmid|doi">``; the PMC id is written ``PMC<digits>``
  and is required (an article without one is rejected).
- the title from ``<article-title>``; the abstract is every ``<abstract>`` of the article
  (structured ones included, section titles dropped), paragraphs joined by a blank line.
- body sections in document order, flattened: a nested ``<sec>`` becomes its own entry whose
  title is the path of titles (``"Methods / Cell culture"``); text in a section before, between
  or after its subsections forms entries with the same title, so reading order is kept. Text
  directly in ``<body>`` gets the title ``""``. A section's paragraphs are joined by a blank line
  (``"\\n\\n"``: a paragraph break for the sentence splitter); white space inside a paragraph is
  collapsed to single spaces.
- inline markup is dropped and its text kept (italic, bold, sub/sup, ``<xref>`` citations such
  as ``[12]``, named content); an empty ``<ext-link>``/``<uri>`` stands for its address.
- inline formulas (``<inline-formula>``, MathML) keep their text (``x=2``); display formulas
  (``<disp-formula>``) are dropped, because their text is an image or TeX and never a sentence;
  ``<tex-math>`` is always dropped.
- figures and tables: captions are kept (title and paragraphs, each as its own paragraph, placed
  after the paragraph that holds the float); table cells, table footnotes, graphics and media are
  dropped. Lists, quotes and boxed text inside a paragraph split it, keeping order.
- back matter (acknowledgements, references, appendices, footnotes) is not kept.
- the licence is the text of ``<license>`` (or its ``xlink:href`` when it has no text).
- ``last_updated`` is the latest date in ``<article-meta>`` (``<pub-date>`` and ``<history>``;
  a missing month or day counts as 1), at midnight UTC; when the article has no date, the source
  file's modification time given by the caller.

Also reads PMC OA ``.tar.gz`` packages: :func:`iter_package_members` streams their ``.nxml``
members.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, Any

from lxml import etree

from adabiobert.errors import AdaBioBertError

_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

# Elements dropped with everything inside (the text after them is kept).
_DROPPED = frozenset({
    "disp-formula", "disp-formula-group", "tex-math", "table", "graphic", "inline-graphic",
    "media", "object-id", "table-wrap-foot", "fn", "fn-group", "label", "alt-text", "long-desc",
    "ref-list", "sec-meta", "permissions",
})
# Floats: their captions become paragraphs after the paragraph that holds them.
_FLOATS = frozenset({"fig", "table-wrap", "fig-group", "table-wrap-group", "supplementary-material", "chem-struct-wrap"})
# Block elements that may sit inside a <p>: the paragraph is split around them.
_BLOCKS_IN_P = frozenset({"list", "def-list", "disp-quote", "boxed-text", "statement", "speech", "verse-group", "array", "preformat", "code"})
# Containers whose block children are read one by one (else their text is one paragraph).
_CONTAINERS = _BLOCKS_IN_P | {"list-item", "def-item", "def", "term", "glossary", "caption", "notes"}
_BLOCK_TAGS = {"p", "sec", "title", "list-item", "def-item", "term", "def"} | _BLOCKS_IN_P | _FLOATS
_WHITE_SPACE = re.compile(r"\s+")


class JatsError(AdaBioBertError):
    """A JATS file that cannot be read as an article.

    Attributes:
        path: the file (or ``package.tar.gz::member.nxml``).
        line: 1-based line of an XML syntax error, ``None`` when the problem is not one line.
        reason: what is wrong, without the location.
    """

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


def parse_jats(data: bytes, source: str, modified: datetime | None = None) -> dict[str, Any]:
    """Read one JATS article into a record of the PMC shard schema.

    Args:
        data: the bytes of an ``.nxml`` file. The DTD is not loaded and entities are not
            resolved (PMC files use numeric character references only); no network access.
        source: where the bytes came from; stored in the ``source`` column and used in errors.
        modified: the file's modification time (UTC), used for ``last_updated`` only when the
            article carries no date.

    Returns:
        A dict with the keys of :data:`adabiobert.pmc.shards.PMC_SHARD_SCHEMA`.

    Raises:
        JatsError: the XML does not parse (with its line), the root is not ``<article>``, or the
            article has no PMC id.
    """
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True,
                             remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as error:
        raise JatsError(source, f"XML syntax error: {error.msg}", line=error.lineno) from error
    if _local(root) != "article":
        raise JatsError(source, f"root element is <{_local(root)}>, not <article>: not a JATS article")
    meta = root.find("front/article-meta")
    if meta is None:
        raise JatsError(source, "no <front>/<article-meta>")
    ids = _article_ids(meta)
    if not ids.get("pmc"):
        raise JatsError(source, 'no <article-id pub-id-type="pmc"> (a PMC id is required)')
    title = meta.find("title-group/article-title")
    body = root.find("body")
    return {
        "pmcid": ids["pmc"],
        "pmid": ids.get("pmid"),
        "doi": ids.get("doi"),
        "title": _inline_text(title) if title is not None else "",
        "abstract": "\n\n".join(
            section["text"] for abstract in meta.findall("abstract") for section in _sections(abstract, "")
        ),
        "sections": _sections(body, "") if body is not None else [],
        "license": _license(meta),
        "last_updated": _latest_date(meta) or modified,
        "source": source,
    }


def iter_package_members(stream: IO[bytes], source: str) -> Iterator[tuple[str, bytes, datetime]]:
    """Stream the ``.nxml`` and ``.xml`` members of a PMC OA ``.tar.gz`` package, one at a time
    (per-article packages hold ``.nxml``; bulk packages hold ``PMC006xxxxxx/PMC6908519.xml``).

    Args:
        stream: the package, opened for binary reading (read sequentially, never seeked).
        source: the package's URI; members are named ``<source>::<member path>``.

    Yields:
        ``(member source, member bytes, member modification time in UTC)``.

    Raises:
        tarfile.TarError, OSError, EOFError: a damaged package (members before the damage have
            been yielded).
    """
    with tarfile.open(fileobj=stream, mode="r|gz") as package:
        for member in package:
            if member.isfile() and member.name.endswith((".nxml", ".xml")):
                handle = package.extractfile(member)
                assert handle is not None  # a regular file always has content
                yield f"{source}::{member.name}", handle.read(), datetime.fromtimestamp(member.mtime, tz=timezone.utc)


def _local(element: etree._Element) -> str:
    """The tag without its namespace (``mml:math`` -> ``math``)."""
    return etree.QName(element).localname


def _clean(text: str) -> str:
    return _WHITE_SPACE.sub(" ", text).strip()


def _article_ids(meta: etree._Element) -> dict[str, str]:
    ids: dict[str, str] = {}
    for element in meta.findall("article-id"):
        kind = element.get("pub-id-type", "")
        value = _clean("".join(element.itertext()))
        if not value:
            continue
        if kind in ("pmc", "pmcid"):
            ids.setdefault("pmc", "PMC" + value.removeprefix("PMC"))
        elif kind in ("pmid", "doi"):
            ids.setdefault(kind, value)
    return ids


def _license(meta: etree._Element) -> str | None:
    element = meta.find("permissions/license")
    if element is None:
        return None
    return _inline_text(element) or element.get(_XLINK_HREF) or None


def _latest_date(meta: etree._Element) -> datetime | None:
    """The latest ``<pub-date>`` or ``<history>/<date>`` of the article, at midnight UTC."""
    found = []
    for element in meta.findall("pub-date") + meta.findall("history/date"):
        parts = [_clean(element.findtext(name) or "") for name in ("year", "month", "day")]
        if not parts[0].isdigit():
            continue
        year, month, day = (int(p) if p.isdigit() else 1 for p in parts)
        if not 1 <= year <= 9999:
            continue
        try:
            found.append(datetime(year, month, day, tzinfo=timezone.utc))
        except ValueError:  # a day or month out of range: keep the year
            found.append(datetime(year, 1, 1, tzinfo=timezone.utc))
    return max(found, default=None)


def _sections(container: etree._Element, path: str) -> list[dict[str, str]]:
    """Flatten ``container`` (a body, abstract or sec) into ``{"title", "text"}`` entries.

    ``path`` is the title path of ``container``; subsection titles are appended with `` / ``.
    """
    entries: list[dict[str, str]] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            entries.append({"title": path, "text": "\n\n".join(pending)})
            pending.clear()

    for child in container:
        if not isinstance(child.tag, str):
            continue
        tag = _local(child)
        if tag == "sec":
            flush()
            heading = child.find("title")
            title = _inline_text(heading) if heading is not None else ""
            child_path = " / ".join(p for p in (path, title) if p)
            entries.extend(_sections(child, child_path))
        elif tag != "title":
            pending.extend(_paragraphs(child))
    flush()
    return entries


def _paragraphs(element: etree._Element) -> list[str]:
    """The paragraphs of one block element of a section, in reading order, non-empty."""
    tag = _local(element)
    if tag in _DROPPED:
        return []
    if tag in _FLOATS:
        return _caption_paragraphs(element)
    if tag == "p":
        return _split_paragraph(element)
    if tag == "sec":  # inside boxed text, for example
        return [entry["text"] for entry in _sections(element, "")]
    children = [child for child in element if isinstance(child.tag, str)]
    if tag in _CONTAINERS and any(_local(child) in _BLOCK_TAGS for child in children):
        return [text for child in children for text in _paragraphs(child)]
    return _nonempty(_inline_text(element))


def _split_paragraph(paragraph: etree._Element) -> list[str]:
    """A ``<p>``: its text as one paragraph, split where a list or quote sits inside it, then the
    captions of the floats it holds."""
    out: list[str] = []
    floats: list[etree._Element] = []
    current: list[str] = [paragraph.text or ""]
    for child in paragraph:
        if isinstance(child.tag, str) and _local(child) in _BLOCKS_IN_P:
            out.extend(_nonempty(_clean("".join(current))))
            out.extend(_paragraphs(child))
            current = [child.tail or ""]
        else:
            current.append(_render(child, floats))  # the child's text and its tail
    out.extend(_nonempty(_clean("".join(current))))
    for element in floats:
        out.extend(_caption_paragraphs(element))
    return out


def _caption_paragraphs(element: etree._Element) -> list[str]:
    """Caption title and paragraphs of a figure, table or supplement (nested groups included)."""
    out: list[str] = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        tag = _local(child)
        if tag == "caption":
            out.extend(t for c in child if isinstance(c.tag, str) for t in _nonempty(_inline_text(c)))
        elif tag in _FLOATS:
            out.extend(_caption_paragraphs(child))
    return out


def _inline_text(element: etree._Element) -> str:
    """The text of ``element`` with markup dropped and white space collapsed (floats skipped)."""
    pieces = [element.text or ""]
    floats: list[etree._Element] = []
    for child in element:
        pieces.append(_render(child, floats))
    return _clean("".join(pieces))


def _render(element: etree._Element, floats: list[etree._Element]) -> str:
    """Inline text of ``element`` followed by its tail; floats are collected, not rendered."""
    tail = element.tail or ""
    if not isinstance(element.tag, str):
        return tail
    tag = _local(element)
    if tag in _DROPPED:
        return " " + tail  # a dropped formula still separates the words around it
    if tag in _FLOATS:
        floats.append(element)
        return tail
    if tag == "break":
        return " " + tail
    inner = [element.text or ""] + [_render(child, floats) for child in element]
    text = "".join(inner)
    if not text.strip() and tag in ("ext-link", "uri"):
        text = element.get(_XLINK_HREF, "")
    if tag in _BLOCKS_IN_P or tag in ("list-item", "title", "caption"):
        text = f" {text} "
    return text + tail


def _nonempty(text: str) -> list[str]:
    return [text] if text else []

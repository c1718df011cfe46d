"""Exceptions that say where the problem is: a file and line, or a shard and row."""

from __future__ import annotations


class AdaBioBertError(Exception):
    """Base class for every error this library raises on purpose."""


class FileLineError(AdaBioBertError):
    """A file (or object, or URI) that cannot be used, and where in it: the message starts
    ``<path>:<line>: `` or ``<path>: ``.

    Attributes:
        path: the file, key or URI.
        line: 1-based line number, or ``None`` when the problem is the file as a whole.
        reason: the message without the location.
    """

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    @property
    def source(self) -> str:
        """The same as :attr:`path` (the name the PMC errors use)."""
        return self.path


class CorpusError(FileLineError):
    """A corpus file that cannot be used: unreadable, or unfit to train on as a whole."""


class CorpusFormatError(CorpusError):
    """A line of a corpus file (IOB or PubTator) that cannot be read.

    Attributes:
        path: the file.
        line: 1-based line number.
    """

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(path, message, line)


class DatasetNotFoundError(AdaBioBertError):
    """A named dataset whose files are not under the data root."""


class ShardSchemaError(AdaBioBertError):
    """A Parquet shard that cannot be read as one: an unreadable footer or ``pmcid`` column, a
    column missing or of another type than the shard schema's, or a null ``pmcid``.

    Attributes:
        path: the shard.
        column: the offending column (``None`` when the problem is not one column).
    """

    def __init__(self, path: str, message: str, column: str | None = None) -> None:
        self.path = str(path)
        self.column = column
        super().__init__(f"{self.path}: {message}")


class ConfigError(AdaBioBertError):
    """A configuration value that is out of range or inconsistent with another: the one error of
    every config (``adabiobert.training_config``, ``adabiobert.job_configs``), which the entry points report
    as a usage error (one line on stderr, exit status 2)."""


class InputNotFoundError(AdaBioBertError, FileNotFoundError):
    """An input named by the caller (a bundle, shards, articles) that is not there or not what it
    should be. The message names it and says what to pass instead."""


class OutputExistsError(AdaBioBertError, FileExistsError):
    """An output folder that already holds what a run would write, and must not be mixed with it."""


class ExportError(AdaBioBertError):
    """Entity tables that cannot be exported as they are (for example a shard whose text changed
    since it was tagged, so the offsets no longer point into it)."""


class MetadataError(FileLineError):
    """A PMC Cloud Service metadata record (``metadata/PMC13901.1.json``) or object key that cannot
    be read: not JSON, not an object, ``pmcid`` or ``version`` missing, a field of the wrong type."""


class InventoryError(FileLineError):
    """An S3 Inventory of PMC's bucket that cannot be read: no manifest, a manifest without the
    columns the sync needs, a data file that is missing, corrupt or not the size and MD5 its
    manifest gives."""


class VocabularyError(FileLineError):
    """A vocabulary file (MeSH, HGNC, NCBI ``gene_info``, the OMIM lexicon) that cannot be read as
    one: a missing column, a row that breaks the format in strict mode, bytes that are not UTF-8."""


class LinkingIndexError(AdaBioBertError):
    """A linking index that cannot be used: not an index folder, another format version, or built
    from other vocabularies than the run expects (the message names both hashes)."""


class RelinkError(AdaBioBertError):
    """A committed shard that cannot be re-linked: its input shard is gone, changed since it was
    tagged, or unreadable, or its rows do not point into its text."""

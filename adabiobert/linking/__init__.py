"""Entity linking: vocabularies, the linking index and the linker (issue 23; no torch, no Ray).

Modules: ``vocabularies`` (readers of MeSH, HGNC, NCBI ``gene_info`` and the OMIM lexicon),
``config`` (which vocabulary serves which type), ``normalise`` (the matching key of a name),
``abbreviations`` (Schwartz-Hearst definitions in a document), ``index`` (the index built once and
loaded memory-mapped), ``linker`` (mentions in, identifiers out).
"""

LINKER_VERSION = "1"
"""Recorded in every index and every linked table; raise when linking results may change."""

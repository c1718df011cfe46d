"""Build the entity-linking index: the vocabularies compiled once into a versioned artifact.

    python jobs/build_linking_index.py --out runs/linking/2026-12
    python jobs/build_linking_index.py --out s3://bucket/linking/2026-12 --release 2026-12 \
        --mesh-descriptors desc2026.xml --mesh-supplementary supp2026.xml --hgnc hgnc_complete_set.txt

The vocabularies and which type each serves are ``adabiobert.linking.config.default_config``:
MeSH descriptors and supplementary concepts (diseases, chemicals, organisms), HGNC's human genes,
OMIM disease names. By default they are the offline copies under --shared (``../shared`` beside
the checkout: vocab/ and lexicon/); --mesh-descriptors, --mesh-supplementary, --hgnc and --omim
replace one file each (NLM's ``desc<year>.xml``/``supp<year>.xml``, read as XML by their
extension; HGNC's complete-set TSV; a DisGeNET-style gene-disease TSV).

The index is written aside and published whole (manifest last); --out must not hold an index
already (each release its own folder: runs record the index by hash and nodes cache it by hash),
unless --overwrite. Prints the index hash (what runs record) and the vocabularies' hash (what
``jobs/annotate.py --linking-vocabulary-hash`` checks). Exit status: 0 built; 2 refused (one line
on stderr: a bad argument, a vocabulary missing or unreadable, --out holds an index); 1 failed.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without install

from adabiobert import storage  # noqa: E402
from adabiobert.cli.kit import ArgumentParser, refuse  # noqa: E402
from adabiobert.errors import AdaBioBertError  # noqa: E402
from adabiobert.linking.config import LinkingConfig, VocabularyFile, default_config  # noqa: E402
from adabiobert.linking.index import MANIFEST, build_index, index_hash  # noqa: E402
from adabiobert.submission import check_job_paths  # noqa: E402

OPTIONS = {"mesh_descriptors": "mesh-descriptors", "mesh_supplementary": "mesh-supplementary", "hgnc": "hgnc",
           "omim": "omim"}
"""Vocabulary name in the default configuration -> the option that replaces its file."""
XML_FORMATS = {"mesh_descriptors": "mesh-descriptors-xml", "mesh_supplementary": "mesh-supplementary-xml"}


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(prog="jobs/build_linking_index.py", description=__doc__)
    parser.add_argument("--out", required=True, help="the index folder to write (local or s3://)")
    parser.add_argument("--shared", default=str(REPO_ROOT.parent / "shared"),
                        help="the folder holding vocab/ and lexicon/ (default: ../shared beside the checkout)")
    for name, option in OPTIONS.items():
        parser.add_argument(f"--{option}", default=None, help=f"replaces the {name} file of --shared")
    parser.add_argument("--release", default=None, help="a label recorded in the manifest (e.g. 2026-12)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad vocabulary row (default: skip, count)")
    parser.add_argument("--overwrite", action="store_true", help="replace an index already at --out")
    return parser, parser.parse_args(argv)


def linking_config(args) -> LinkingConfig:
    """The default configuration over --shared, with the files the options name instead."""
    config = default_config(args.shared)
    files = []
    for vocabulary in config.vocabularies:
        path = getattr(args, vocabulary.name)
        if path is None:
            files.append(vocabulary)
            continue
        xml = path.endswith((".xml", ".xml.gz")) and vocabulary.name in XML_FORMATS
        files.append(VocabularyFile(vocabulary.name, XML_FORMATS[vocabulary.name] if xml else vocabulary.format, path))
    return replace(config, vocabularies=tuple(files), strict=args.strict)


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    config = linking_config(args)
    missing = [v.path for v in config.vocabularies if not Path(v.path).is_file()]
    if missing:
        parser.error(f"vocabulary {missing[0]}: no such file (pass --shared or the vocabulary's option)")
    try:
        check_job_paths({"--out": args.out})
    except AdaBioBertError as error:
        return refuse(error)
    if storage.exists(storage.join(args.out, MANIFEST)) and not args.overwrite:
        return refuse(f"{args.out} holds an index already; give each release a folder of its own, or pass --overwrite")
    try:
        manifest = build_index(config, args.out, release=args.release)
    except AdaBioBertError as error:  # a vocabulary that cannot be read (a missing column, bad bytes)
        return refuse(error)
    built = index_hash(storage.read_bytes(storage.join(args.out, MANIFEST)))
    concepts = {name: counts["concepts"] for name, counts in manifest["types"].items()}
    skipped = sum(sum(v["rejected"].values()) for v in manifest["vocabularies"].values())
    print(f"index {args.out}: hash {built}; vocabularies {manifest['vocabulary_hash']}; concepts "
          f"{', '.join(f'{t} {n}' for t, n in concepts.items())}; {skipped} vocabulary rows skipped; "
          f"{manifest['build_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build Word2Vec vectors from PMC shards (Ray Data corpus, gensim training).

    python jobs/build_word2vec.py --shards runs/pmc-shards --out runs/word2vec
    python jobs/build_word2vec.py --shards s3://bucket/shards --out s3://bucket/word2vec \
        --lexicon ../shared/lexicon --min-count 5 --epochs 5

The lexicon that decides which sentences are kept: --lexicon files or folders (DisGeNET-style
.tsv read by column name, plain term lists otherwise), else $ADABIOBERT_LEXICON, else
../shared/lexicon beside the checkout. Ray: connects to $RAY_ADDRESS when set, else starts a
local instance (or uses the one already started in this process). Under ``ray job submit`` a
relative --shards, --out or --lexicon is refused (adabiobert/submission.py).
Writes <out>/vectors.kv and <out>/word2vec_stats.json, one build at a time per --out (it holds
<out>/_lease.json, docs/operations.md). Exit status: 0 done; 2 refused (one line on stderr: no
shard, a missing lexicon, a bad argument, a corpus too small for --min-count); 4 another build
holds --out (one line naming it); 75 Ray did not start in time (one line names the setting that
gives it longer); 1 failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without install

from adabiobert.cli.kit import ArgumentParser, refuse  # noqa: E402
from adabiobert.distributed.startup import report_startup_timeout  # noqa: E402
from adabiobert.distributed.word2vec import build_word2vec  # noqa: E402
from adabiobert.errors import AdaBioBertError, ConfigError  # noqa: E402
from adabiobert.job_configs import Word2VecBuildConfig, Word2VecConfig  # noqa: E402
from adabiobert.pmc.lexicon import Lexicon  # noqa: E402
from adabiobert.submission import check_job_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="jobs/build_word2vec.py", description=__doc__)
    parser.add_argument("--shards", required=True, help="a shard or a folder of shards (local or s3://)")
    parser.add_argument("--out", required=True, help="output folder (local or s3://)")
    parser.add_argument("--lexicon", action="append", default=[], help="lexicon file or folder (repeatable)")
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--vector-size", type=int, default=128)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--workers", type=int, default=None, help="gensim threads (default: all cores)")
    parser.add_argument("--num-actors", type=int, default=2, help="Ray sentence-filter actors")
    parser.add_argument("--batch-size", type=int, default=16, help="articles per Ray batch")
    parser.add_argument("--keep-corpus", action="store_true", help="also write <out>/corpus.txt")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        check_job_paths({"--shards": args.shards, "--out": args.out, "--lexicon": args.lexicon})
    except AdaBioBertError as error:
        return refuse(error)

    missing = [path for path in args.lexicon if not Path(path).exists()]
    if missing:
        parser.error(f"--lexicon {missing[0]}: no such file or folder")
    try:
        lexicon = Lexicon.from_files(args.lexicon) if args.lexicon else Lexicon.default(REPO_ROOT.parent / "shared")
    except FileNotFoundError as error:  # $ADABIOBERT_LEXICON names a folder without the lexicon files
        parser.error(str(error))
    if lexicon is None or not len(lexicon):
        parser.error("no lexicon: pass --lexicon, set $ADABIOBERT_LEXICON or provide ../shared/lexicon")
    try:
        config = _config(args)
    except ConfigError as error:
        parser.error(str(error))
    try:
        stats = build_word2vec(config, lexicon, log=lambda line: print(line, file=sys.stderr, flush=True))
    except AdaBioBertError as error:  # no shard, a shard without the text columns, too few words
        return refuse(error)
    except Exception as error:
        return report_startup_timeout(error)
    print(f"{stats.documents} articles, {stats.sentences_kept}/{stats.sentences_seen} sentences kept, "
          f"{stats.tokens} words, {stats.vocabulary_size} vectors -> {args.out}")
    return 0


def _config(args) -> Word2VecBuildConfig:
    return Word2VecBuildConfig(
        shards=args.shards,
        out=args.out,
        word2vec=Word2VecConfig(args.vector_size, args.window, args.min_count, args.epochs, seed=args.seed,
                                workers=args.workers),
        num_actors=args.num_actors,
        batch_size=args.batch_size,
        keep_corpus=args.keep_corpus,
        show_progress=not args.no_progress,
    )


if __name__ == "__main__":
    raise SystemExit(main())

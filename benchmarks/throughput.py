"""Tagging throughput (issue 13, item 4): the tagger at each precision against a Hugging Face
pipeline and its own fp32 encoder, and the whole annotation job against the tagger alone.

    .venv/bin/python benchmarks/throughput.py --data-root ../shared/corpora --threads 1
    .venv/bin/python benchmarks/throughput.py --data-root ../shared/corpora --gpu --job-precision bf16

The first is the CPU run of issue 13 (MiniLM; NCBI-disease test, 940 sentences; precisions fp32,
int8 and bf16, each refused or run as this CPU allows; then the annotation job on a local Ray of
2 CPUs), to be run on an otherwise idle machine: a few minutes. The second is for a machine with
a GPU (a BERT-base-sized random encoder; int8 is refused there). A smoke run of either in about a
minute: add ``--max-sentences 200 --chunks 2 --sentences-per-article 10 --output /tmp/t.json``.

Part 1, in this process, on the same sentences (a split of an IOB corpus, words joined by spaces,
one text per sentence):

* Hugging Face ``pipeline("token-classification", aggregation_strategy="simple")`` over an
  ``AutoModelForTokenClassification`` with the same encoder weights (fp32 on CPU, bf16 on CUDA) and
  a random head (speed, not accuracy): texts in, aggregated entities with offsets out;
* the bare encoder forward pass, fp32, over the tagger's own subword batches (built beforehand,
  not timed): the limit, what is left once tokenization, the CRF and Python are free;
* ``tagger.tag(texts)`` at each precision of ``--precisions`` (default fp32 int8 bf16): end to end
  from text (sentence split, words, subwords, encoder, CRF Viterbi and marginals, character
  offsets). A precision this machine refuses (``adabiobert.model.precision``: bf16 on a CPU without
  native bf16, int8 on CUDA) is reported as refused, with the reason, and not run.

The sentences are cut into ``--chunks`` consecutive chunks and the methods take turns on each
chunk (the first method rotates), so that load from other processes on a shared machine falls on
all of them alike; the times are summed over the chunks. Both wall-clock and CPU time (of this
process, all threads) are reported: on a CPU shared with other jobs, CPU time measures the work
and the wall clock mostly measures the neighbours; with ``--threads 1`` there is no spin-waiting
of idle OpenMP threads in the CPU time either. The ratios use CPU time on CPU, wall time on GPU.

Part 2 (``--annotate-job``, the default): the same sentences packed as PMC-schema shards
(``--job-shards`` files; each article holds ``--sentences-per-article`` sentences, one body section
each, so the job splits exactly the texts of part 1) and tagged by the whole annotation job
(``run_annotation``: Ray Data read, split with subword tokenization, tagger actor, commit of the
entity tables) on a local Ray of ``--job-cpus`` CPUs, one tagger actor of ``--job-threads`` torch
threads, at ``--job-precision``. Right before and right after it, the tagger alone
(``tagger.tag`` over the same texts, same precision, same threads) runs in this process. Wall time
only (the job's work is in other processes): the ratio is the tagger alone's mean wall time over
the job's, so 0.9 means the Ray Data job keeps 90 % of the tagger's throughput. Ray's start is not
timed; the actor's model load is (every run pays it).

The bundle is built untrained (``build_model`` + ``save_bundle``): the encoder is the backbone's
(MiniLM on CPU; a random BERT-base-sized encoder with MiniLM's vocabulary for ``--gpu``). The CPU
model and its flags (``/proc/cpuinfo``) head the output. Prints Markdown tables and writes the
numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from adabiobert.corpora.iob import load_corpus, resolve_data_root  # noqa: E402
from adabiobert.errors import ConfigError  # noqa: E402
from adabiobert.model.assembly import build_model  # noqa: E402
from adabiobert.model.backbone import encoder_from_config, load_tokenizer, resolve_backbone  # noqa: E402
from adabiobert.model.batching import budget_batches, collate, move_to  # noqa: E402
from adabiobert.model.checkpoint import save_bundle  # noqa: E402
from adabiobert.model.precision import cpu_flags, resolve_precision  # noqa: E402
from adabiobert.model.tagger import Tagger  # noqa: E402
from adabiobert.training_config import ModelConfig, TrainConfig  # noqa: E402

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
PRECISIONS = ("fp32", "int8", "bf16")
TAGGING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
"""The CPU flags that decide the tagger's speed and precision (vector width, int8 and bf16 dot products)."""
HF = "HF pipeline, aggregation=simple"
FORWARD = "encoder forward only, fp32 (limit)"


def build_bundle(folder: Path, backbone: str, labels, gpu: bool) -> Path:
    """An untrained bundle: MiniLM as shipped, or (``gpu``) a random BERT-base-sized encoder."""
    config = TrainConfig(model=ModelConfig(backbone=backbone))
    encoder = None
    if gpu:
        from transformers import AutoConfig

        base = AutoConfig.from_pretrained(resolve_backbone(backbone))
        encoder = encoder_from_config(AutoConfig.for_model("bert", **{**base.to_dict(), **BERT_BASE}))
    torch.manual_seed(0)
    model = build_model(config, labels, None, encoder=encoder)
    return save_bundle(folder, model, load_tokenizer(backbone), config.model, None, {"name": f"bench-{backbone}"})


def hf_pipeline(tagger: Tagger, backbone: str, labels, device: torch.device, batch_size: int):
    """A token-classification pipeline whose encoder carries the (fp32) tagger's encoder weights."""
    from transformers import AutoModelForTokenClassification, pipeline

    config = tagger.model.encoder.config
    config.num_labels = len(labels.tags)
    config.id2label = dict(enumerate(labels.tags))
    config.label2id = {t: i for i, t in enumerate(labels.tags)}
    model = AutoModelForTokenClassification.from_config(config)
    missing, _ = model.base_model.load_state_dict(tagger.model.encoder.state_dict(), strict=False)
    assert not [k for k in missing if "pooler" not in k], f"encoder weights not copied: {missing}"
    model.to(device).eval()
    dtype = torch.bfloat16 if device.type == "cuda" else None
    if dtype is not None:
        model.to(dtype)
    return pipeline("token-classification", model=model, tokenizer=load_tokenizer(backbone),
                    aggregation_strategy="simple", device=device, batch_size=batch_size)


def forward_batches(tagger: Tagger, words: list[list[str]]) -> list[dict[str, torch.Tensor]]:
    """The tagger's own batches (length-sorted, within its subword budget), collated on the device."""
    examples = tagger.encode_words(words)
    pad = tagger.bundle.tokenizer.pad_token_id or 0
    budget = tagger._predict_config.eval_subword_budget
    return [move_to(collate([examples[i] for i in batch], pad), tagger.device) for batch in budget_batches(examples, budget)]


def timed(function, device: torch.device) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process, all threads)`` of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started, cpu = time.perf_counter(), time.process_time()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, time.process_time() - cpu


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The CPU model (``/proc/cpuinfo``'s first ``model name``) and its flags (``precision.cpu_flags``)."""
    model = platform.processor() or "unknown"
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    flags = cpu_flags(cpuinfo)
    return {"model": model, "cores": os.cpu_count(), "tagging_flags": [f for f in TAGGING_FLAGS if f in flags],
            "flags": sorted(flags)}


def load_taggers(bundle: Path, precisions: list[str], device: torch.device, subword_budget: int) -> tuple[dict, dict]:
    """``({precision: Tagger}, {precision: choice or refusal})`` for the precisions this machine allows."""
    taggers, choices = {}, {}
    for precision in precisions:
        try:
            choice = resolve_precision(precision, device)
        except ConfigError as refusal:
            choices[precision] = {"refused": str(refusal)}
            continue
        taggers[precision] = Tagger.from_pretrained(bundle, device=device.type, subword_budget=subword_budget,
                                                    precision=precision)
        choices[precision] = choice.to_dict()
    return taggers, choices


def rotating_chunks(methods: dict, n_items: int, chunks: int, device: torch.device, before_chunk=None) -> tuple[dict, dict]:
    """Run every method on each chunk of item indices, the first method rotating from chunk to chunk.

    Returns:
        ``(wall seconds, CPU seconds)`` per method name, summed over the chunks.
    """
    names = list(methods)
    seconds, cpu_seconds = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    size = -(-n_items // chunks)
    for turn, first in enumerate(range(0, n_items, size)):
        chunk = list(range(first, min(first + size, n_items)))
        if before_chunk is not None:
            before_chunk(chunk)
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            wall, cpu = timed(lambda: methods[name](chunk), device)
            seconds[name] += wall
            cpu_seconds[name] += cpu
    return seconds, cpu_seconds


# ---------------------------------------------------------------------------------------------
# Part 2: the annotation job on the same sentences
# ---------------------------------------------------------------------------------------------
def write_job_shards(folder: Path, texts: list[str], shards: int, sentences_per_article: int) -> list[str]:
    """The texts as PMC-schema shards: one body section per text, ``sentences_per_article`` per
    article, articles dealt round-robin over ``shards`` files. Returns the section texts in the
    order of the articles (what the job will split)."""
    import pyarrow.parquet as pq

    from adabiobert.pmc.shards import records_to_table

    articles = [texts[i:i + sentences_per_article] for i in range(0, len(texts), sentences_per_article)]
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        mine = articles[shard::shards]
        records = [{"pmcid": f"BENCH{shard}-{i}", "sections": [{"title": f"s{j}", "text": t} for j, t in enumerate(a)],
                    "source": "benchmarks/throughput.py"} for i, a in enumerate(mine)]
        if records:
            pq.write_table(records_to_table(records), folder / f"part-{shard:05d}.parquet")
    return [t for a in articles for t in a]


def annotate_job(args, bundle: Path, texts: list[str], device: torch.device, workdir: Path) -> dict:
    """Part 2: the tagger alone, the annotation job, the tagger alone again; wall times and counts."""
    import ray

    from adabiobert.distributed.annotation import run_annotation
    from adabiobert.distributed.session import quiet_ray_data
    from adabiobert.job_configs import AnnotationJobConfig
    from adabiobert.text import split_sentences

    section_texts = write_job_shards(workdir / "shards", texts * args.job_repeat, args.job_shards,
                                     args.sentences_per_article)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.job_threads)  # as the job's actor: torch.set_num_threads(cpu_threads)
    tagger = Tagger.from_pretrained(bundle, device=device.type, subword_budget=args.subword_budget,
                                    precision=args.job_precision)
    tagger.tag(section_texts[:16])  # first-call costs out of the timing

    def tagger_alone() -> tuple[float, int]:
        found = []
        wall, _ = timed(lambda: found.extend(tagger.tag(section_texts)), device)
        return wall, sum(len(e) for e in found)

    # A Ray of its own (never one already running here), as quiet as the jobs' (distributed/session.py).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    ray.init(address="local", num_cpus=args.job_cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    quiet_ray_data()
    try:
        before, mentions_alone = tagger_alone()
        config = AnnotationJobConfig(
            shards=str(workdir / "shards"), output=str(workdir / "out"), model=str(bundle), use_gpu=device.type == "cuda",
            precision=args.job_precision, num_actors=1, cpu_threads_per_actor=None if device.type == "cuda" else args.job_threads,
            subword_budget=args.subword_budget, show_progress=False)
        summary = {}
        job_wall, _ = timed(lambda: summary.update(run_annotation(config, log=lambda line: None)), device)
        after, _ = tagger_alone()
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)
    sentences = sum(len(split_sentences(t)) for t in section_texts)
    if summary["sentences"] != sentences or summary["documents_tagged"] != summary["documents_in"]:
        raise RuntimeError(f"the job tagged {summary['sentences']} sentences of {summary['documents_tagged']} articles, "
                           f"the tagger alone {sentences} sentences: they did not do the same work")
    alone = (before + after) / 2
    return {
        "shards": args.job_shards, "articles": summary["documents_tagged"], "sentences": sentences,
        "sentences_per_article": args.sentences_per_article, "repeat": args.job_repeat, "precision": summary["precision"],
        "ray_cpus": args.job_cpus, "actors": 1, "threads_per_actor": args.job_threads,
        "job_wall_s": round(job_wall, 2), "tagger_alone_wall_s": [round(before, 2), round(after, 2)],
        "job_sentences_per_wall_s": round(sentences / job_wall, 1),
        "tagger_alone_sentences_per_wall_s": round(sentences / alone, 1),
        "job / tagger alone (throughput, wall)": round(alone / job_wall, 3),
        "mentions": {"job": summary["mentions"], "tagger_alone": mentions_alone},
        "job_seconds": summary["seconds"],
    }


# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None, help="folder of the IOB corpora (default: $ADABIOBERT_DATA_ROOT)")
    parser.add_argument("--dataset", default="NCBI-disease")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--max-sentences", type=int, default=None, help="first N sentences only")
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--gpu", action="store_true", help="CUDA, a BERT-base-sized random encoder")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="tagger precisions to time (refused ones are reported as refused)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads in part 1 (default: torch's)")
    parser.add_argument("--subword-budget", type=int, default=8192, help="tagger's subwords per forward pass")
    parser.add_argument("--hf-batch-size", type=int, default=32, help="pipeline batch size (sentences)")
    parser.add_argument("--chunks", type=int, default=5, help="methods take turns chunk by chunk")
    job = parser.add_argument_group("part 2: the annotation job on the same sentences")
    job.add_argument("--annotate-job", action=argparse.BooleanOptionalAction, default=True,
                     help="time the whole annotation job against the tagger alone")
    job.add_argument("--job-precision", choices=PRECISIONS, default="fp32")
    job.add_argument("--job-cpus", type=int, default=2, help="CPUs of the local Ray")
    job.add_argument("--job-threads", type=int, default=1,
                     help="torch threads of the tagger actor, and of the tagger alone it is compared with")
    job.add_argument("--job-shards", type=int, default=2)
    job.add_argument("--sentences-per-article", type=int, default=180,
                     help="default 180: the PMC samples' mean (181.5), so the tagger's calls carry as many "
                          "sentences as on PMC (documents_per_call articles each)")
    job.add_argument("--job-repeat", type=int, default=1,
                     help="pack the sentences this many times, so that the job's fixed costs (actor start, "
                          "model load, first split) weigh as little as on a nightly run")
    parser.add_argument("--output", default="benchmarks/results/throughput.json")
    args = parser.parse_args(argv)
    for name in ("chunks", "job_cpus", "job_threads", "job_shards", "sentences_per_article", "subword_budget"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.gpu else "cpu")
    cpu = cpu_description()

    corpus = load_corpus(args.dataset, resolve_data_root(args.data_root))
    words = [list(s.words) for s in getattr(corpus, args.split) if s.words][: args.max_sentences]
    texts = [" ".join(w) for w in words]
    n_words = sum(len(w) for w in words)
    with tempfile.TemporaryDirectory() as workdir:
        bundle = build_bundle(Path(workdir) / "model", args.backbone, corpus.labels, args.gpu)
        # fp32: the source of the pipeline's weights and of the bare forward pass
        fp32 = Tagger.from_pretrained(bundle, device=device.type, subword_budget=args.subword_budget, precision="fp32")
        taggers, choices = load_taggers(bundle, [p for p in args.precisions if p != "fp32"], device, args.subword_budget)
        if "fp32" in args.precisions:
            taggers, choices = {"fp32": fp32, **taggers}, {"fp32": fp32.precision.to_dict(), **choices}
        pipe = hf_pipeline(fp32, args.backbone, corpus.labels, device, args.hf_batch_size)

        def forward(batches) -> None:
            with torch.inference_mode():  # fp32: no autocast
                for batch in batches:
                    fp32.model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

        methods = {
            HF: lambda chunk: pipe([texts[i] for i in chunk]),
            FORWARD: lambda chunk: forward(batches[tuple(chunk)]),
            **{f"tagger.tag {p} (text in)": (lambda chunk, t=t: t.tag([texts[i] for i in chunk])) for p, t in taggers.items()},
        }
        warm = list(range(min(16, len(words))))
        batches = {tuple(warm): forward_batches(fp32, [words[i] for i in warm])}
        for function in methods.values():  # first-call costs out of the timing
            function(warm)
        counts = {"subwords": 0, "forward_batches": 0}

        def prepare(chunk: list[int]) -> None:  # the forward pass's batches, built untimed
            batches[tuple(chunk)] = forward_batches(fp32, [words[i] for i in chunk])
            counts["subwords"] += sum(int(b["attention_mask"].sum()) for b in batches[tuple(chunk)])
            counts["forward_batches"] += len(batches[tuple(chunk)])

        seconds, cpu_seconds = rotating_chunks(methods, len(words), args.chunks, device, prepare)
        job = annotate_job(args, bundle, texts, device, Path(workdir)) if args.annotate_job else None

    names = list(methods)
    rows = {
        name: {"wall_s": round(seconds[name], 2), "cpu_s": round(cpu_seconds[name], 2),
               "sentences_per_wall_s": round(len(words) / seconds[name], 1), "words_per_wall_s": round(n_words / seconds[name]),
               "sentences_per_cpu_s": round(len(words) / cpu_seconds[name], 1), "words_per_cpu_s": round(n_words / cpu_seconds[name])}
        for name in names
    }
    basis = seconds if args.gpu else cpu_seconds
    ratios = {"basis": "wall" if args.gpu else "cpu"}
    for precision in taggers:
        name = f"tagger.tag {precision} (text in)"
        ratios[f"tagger.tag {precision} / HF pipeline"] = round(basis[HF] / basis[name], 2)
        ratios[f"tagger.tag {precision} / encoder forward fp32"] = round(basis[FORWARD] / basis[name], 2)
    result = {
        "dataset": f"{args.dataset}/{args.split}",
        "sentences": len(words),
        "words": n_words,
        **counts,
        "chunks": args.chunks,
        "backbone": args.backbone + (" (BERT-base-sized, random)" if args.gpu else ""),
        "device": torch.cuda.get_device_name() if args.gpu else f"CPU x{os.cpu_count()}, {torch.get_num_threads()} torch threads",
        "cpu": cpu,
        "precisions": choices,
        "subword_budget": args.subword_budget,
        "hf_batch_size": args.hf_batch_size,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "methods": rows,
        "ratios": ratios,
        "annotate_job": job,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    return 0


def print_report(result: dict) -> None:
    cpu = result["cpu"]
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; flags for tagging: {' '.join(cpu['tagging_flags']) or 'none'}")
    print(f"all CPU flags: {' '.join(cpu['flags'])}")
    print(f"{result['sentences']} sentences, {result['words']} words, {result['subwords']} subwords; {result['device']}")
    for precision, choice in result["precisions"].items():
        print(f"precision {precision}: " + (f"REFUSED: {choice['refused']}" if "refused" in choice else choice["reason"]))
    print("| method | wall s | CPU s | sentences / CPU s | words / CPU s | sentences / wall s | words / wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in result["methods"].items():
        print(f"| {name} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | {row['sentences_per_cpu_s']:.1f} | "
              f"{row['words_per_cpu_s']} | {row['sentences_per_wall_s']:.1f} | {row['words_per_wall_s']} |")
    print(json.dumps(result["ratios"]))
    job = result["annotate_job"]
    if job:
        print(f"annotation job: {job['sentences']} sentences in {job['articles']} articles, {job['shards']} shards; "
              f"local Ray of {job['ray_cpus']} CPUs, {job['actors']} actor x {job['threads_per_actor']} threads, "
              f"precision {job['precision']['precision']}")
        print("| run | wall s | sentences / wall s |")
        print("|---|---:|---:|")
        before, after = job["tagger_alone_wall_s"]
        print(f"| tagger alone (tagger.tag, before / after the job) | {before:.1f} / {after:.1f} | "
              f"{job['tagger_alone_sentences_per_wall_s']:.1f} |")
        print(f"| annotation job (read, split + subwords, tag, commit) | {job['job_wall_s']:.1f} | "
              f"{job['job_sentences_per_wall_s']:.1f} |")
        print(json.dumps({"job / tagger alone (throughput, wall)": job["job / tagger alone (throughput, wall)"],
                          "mentions": job["mentions"], "job_seconds": job["job_seconds"]}))


if __name__ == "__main__":
    raise SystemExit(main())

"""Tagging throughput: this tagger against a Hugging Face pipeline and against its own encoder.

    python benchmarks/throughput.py --data-root ../shared/corpora                 # CPU, MiniLM
    python benchmarks/throughput.py --data-root ../shared/corpora --gpu           # BERT-base size, bf16

On the same sentences (a split of an IOB corpus, words joined by spaces), in one process:

* ``tagger.tag(texts)``: end to end from text (sentence split, words, subwords, encoder, CRF
  Viterbi and marginals, character offsets);
* ``tagger.tag_words(words)``: the same from words (what the annotation job's actor does);
* Hugging Face ``pipeline("token-classification", aggregation_strategy="simple")`` over an
  ``AutoModelForTokenClassification`` with the same encoder weights and a random head (speed, not
  accuracy): texts in, aggregated entities with offsets out;
* the bare encoder forward pass over the tagger's own subword batches (built beforehand, not timed):
  the limit, what is left once tokenization, the CRF and Python are free.

The sentences are cut into ``--chunks`` consecutive chunks and the four methods take turns on each
chunk (the first method rotates), so that load from other processes on a shared machine falls on
all of them alike; the times are summed over the chunks. Both wall-clock and CPU time (of this
process, all threads) are reported: on a CPU shared with other jobs, CPU time measures the work
and the wall clock mostly measures the neighbours; with ``--threads 1`` there is no spin-waiting
of idle OpenMP threads in the CPU time either. The ratios use CPU time on CPU, wall time on GPU.

The bundle is built untrained (``build_model`` + ``save_bundle``): the encoder is the backbone's
(MiniLM on CPU; a random BERT-base-sized encoder with MiniLM's vocabulary for ``--gpu``).
Prints a Markdown table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from adabiobert.assembly import build_model  # noqa: E402
from adabiobert.backbone import encoder_from_config, load_tokenizer, resolve_backbone  # noqa: E402
from adabiobert.batching import budget_batches, collate, move_to  # noqa: E402
from adabiobert.checkpoint import save_bundle  # noqa: E402
from adabiobert.config import ModelConfig, TrainConfig  # noqa: E402
from adabiobert.corpus import load_corpus, resolve_data_root  # noqa: E402
from adabiobert.engine import autocast_for  # noqa: E402
from adabiobert.tagger import Tagger  # noqa: E402

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


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
    """A token-classification pipeline whose encoder carries the tagger's encoder weights."""
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
    examples = [tagger.encoder.encode(w) for w in words]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None, help="folder of the IOB corpora (default: $ADABIOBERT_DATA_ROOT)")
    parser.add_argument("--dataset", default="NCBI-disease")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--max-sentences", type=int, default=None, help="first N sentences only")
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--gpu", action="store_true", help="CUDA, bf16, a BERT-base-sized random encoder")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--subword-budget", type=int, default=8192, help="tagger's subwords per forward pass")
    parser.add_argument("--hf-batch-size", type=int, default=32, help="pipeline batch size (sentences)")
    parser.add_argument("--chunks", type=int, default=5, help="methods take turns chunk by chunk")
    parser.add_argument("--output", default="benchmarks/results/throughput.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.gpu else "cpu")

    corpus = load_corpus(args.dataset, resolve_data_root(args.data_root))
    words = [list(s.words) for s in getattr(corpus, args.split) if s.words][: args.max_sentences]
    texts = [" ".join(w) for w in words]
    n_words = sum(len(w) for w in words)
    with tempfile.TemporaryDirectory() as folder:
        bundle = build_bundle(Path(folder) / "model", args.backbone, corpus.labels, args.gpu)
        # fp32 on CPU, as before --precision existed: the HF pipeline below copies this encoder's
        # fp32 weights, and the per-precision rows of issue 13 item 4 are not written yet.
        tagger = Tagger.from_pretrained(bundle, device=device.type, subword_budget=args.subword_budget,
                                        precision="auto" if args.gpu else "fp32")
    pipe = hf_pipeline(tagger, args.backbone, corpus.labels, device, args.hf_batch_size)
    encoder = tagger.model.encoder

    def forward(batches) -> None:
        with torch.inference_mode(), autocast_for(device, tagger._predict_config.precision):
            for batch in batches:
                encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    methods = {
        "tagger.tag (text in)": lambda chunk: tagger.tag([texts[i] for i in chunk]),
        "tagger.tag_words (words in)": lambda chunk: tagger.tag_words([words[i] for i in chunk]),
        "HF pipeline, aggregation=simple": lambda chunk: pipe([texts[i] for i in chunk]),
        "encoder forward only (limit)": lambda chunk: forward(batches[tuple(chunk)]),
    }
    warm = list(range(min(16, len(words))))
    batches = {tuple(warm): forward_batches(tagger, [words[i] for i in warm])}
    for function in methods.values():  # first-call costs out of the timing
        function(warm)
    names = list(methods)
    seconds, cpu_seconds = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    size = -(-len(words) // args.chunks)
    subwords = n_batches = 0
    for turn, first in enumerate(range(0, len(words), size)):
        chunk = list(range(first, min(first + size, len(words))))
        batches[tuple(chunk)] = forward_batches(tagger, [words[i] for i in chunk])
        subwords += sum(int(b["attention_mask"].sum()) for b in batches[tuple(chunk)])
        n_batches += len(batches[tuple(chunk)])
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            wall, cpu = timed(lambda: methods[name](chunk), device)
            seconds[name] += wall
            cpu_seconds[name] += cpu

    rows = {
        name: {"wall_s": round(seconds[name], 2), "cpu_s": round(cpu_seconds[name], 2),
               "sentences_per_wall_s": round(len(words) / seconds[name], 1), "words_per_wall_s": round(n_words / seconds[name]),
               "sentences_per_cpu_s": round(len(words) / cpu_seconds[name], 1), "words_per_cpu_s": round(n_words / cpu_seconds[name])}
        for name in names
    }
    basis = seconds if args.gpu else cpu_seconds
    result = {
        "dataset": f"{args.dataset}/{args.split}",
        "sentences": len(words),
        "words": n_words,
        "subwords": subwords,
        "forward_batches": n_batches,
        "chunks": args.chunks,
        "backbone": args.backbone + (" (BERT-base-sized, random)" if args.gpu else ""),
        "device": torch.cuda.get_device_name() if args.gpu else f"CPU x{os.cpu_count()}, {torch.get_num_threads()} torch threads",
        "precision": tagger._predict_config.precision,
        "subword_budget": args.subword_budget,
        "hf_batch_size": args.hf_batch_size,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "methods": rows,
        "ratios": {
            "basis": "wall" if args.gpu else "cpu",
            "tagger.tag / HF pipeline": round(basis["HF pipeline, aggregation=simple"] / basis["tagger.tag (text in)"], 2),
            "tagger.tag / encoder forward": round(basis["encoder forward only (limit)"] / basis["tagger.tag (text in)"], 2),
            "tagger.tag_words / encoder forward": round(
                basis["encoder forward only (limit)"] / basis["tagger.tag_words (words in)"], 2),
        },
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['sentences']} sentences, {n_words} words, {result['subwords']} subwords; {result['device']}")
    print("| method | wall s | CPU s | sentences / CPU s | words / CPU s | sentences / wall s | words / wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | {row['sentences_per_cpu_s']:.1f} | "
              f"{row['words_per_cpu_s']} | {row['sentences_per_wall_s']:.1f} | {row['words_per_wall_s']} |")
    print(json.dumps(result["ratios"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

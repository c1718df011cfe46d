"""ONNX Runtime against torch for the bare encoder on CPU (issue 13, item 1's last sentence).

    PYTHONPATH=.:/path/to/onnx-pkgs .venv/bin/python benchmarks/onnx_compare.py --data-root ../shared/corpora

onnxruntime, onnx and onnxscript are not project dependencies: install them outside the project's
environment (``pip install --target DIR onnxruntime onnx onnxscript``) and put DIR on PYTHONPATH.

The offline MiniLM encoder (``ModelConfig().backbone``), bare (input_ids, attention_mask ->
last_hidden_state), is run on NCBI-disease test sentences (words joined by spaces), sorted by
subword length, in batches of ``--batch-size`` padded per batch, by each variant:

* torch fp32; torch bf16 autocast; torch int8 as the project ships it (``quantize_int8``:
  per-channel dynamic int8 of every Linear except the feed-forward down-projections);
* the encoder exported to ONNX (dynamic batch and sequence axes) and run by ONNX Runtime with one
  intra-op thread and ``ORT_ENABLE_ALL``: fp32; int8 by ``quantize_dynamic`` (per channel) of all
  MatMuls, and of all but the down-projections (as the torch int8);
* "fused": onnxruntime's transformer optimiser (fused Attention, EmbedLayerNormalization,
  SkipLayerNormalization, BiasGelu) on a TorchScript export of the same weights with eager
  attention (it finds no attention to fuse in the dynamo export, nor in an export of sdpa
  attention), at fp32 and int8 (all; all but the down-projections).

The batches are cut into ``--chunks`` consecutive chunks and the variants take turns on each (the
first one rotating); CPU time of this process (``time.process_time``, one thread) is summed over the
chunks. Before timing, each variant runs every batch once (untimed), which warms it and gives its
outputs: max abs difference and cosine similarity to torch fp32 over the real (unpadded) tokens.
Prints the CPU flags, versions and a Markdown table; writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from adabiobert.corpora.iob import load_corpus  # noqa: E402
from adabiobert.model.backbone import load_encoder, load_tokenizer  # noqa: E402
from adabiobert.model.precision import int8_layer_names, quantize_int8  # noqa: E402
from adabiobert.training_config import ModelConfig  # noqa: E402

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
BASE = "torch fp32"


class Bare(nn.Module):
    """The encoder as a function of (input_ids, attention_mask) to last_hidden_state."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def cpu_info() -> dict:
    model, flags = "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and model == "unknown":
            model = line.partition(":")[2].strip()
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    return {"model": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in FLAGS}}


def make_batches(texts: list[str], tokenizer, batch_size: int) -> list[dict[str, torch.Tensor]]:
    encoded = [tokenizer(t, truncation=True, max_length=512)["input_ids"] for t in texts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    pad = tokenizer.pad_token_id or 0
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [encoded[i] for i in order[start:start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, :len(r)] = torch.tensor(r)
            mask[j, :len(r)] = 1
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches


def export_onnx(model: nn.Module, sample: dict[str, torch.Tensor], path: Path, dynamo: bool = True) -> str:
    """Export with dynamic batch and sequence axes: the dynamo exporter (unless ``dynamo`` is false) or TorchScript's."""
    args = (sample["input_ids"], sample["attention_mask"])
    names = dict(input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"])
    try:
        if not dynamo:
            raise RuntimeError("TorchScript exporter asked for")
        batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("seq", min=2, max=512)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, args, dynamo=True, opset_version=18, optimize=True,
                                        dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                        "attention_mask": {0: batch, 1: seq}}, **names)
        program.save(str(path))
        return "dynamo (torch.onnx.export dynamo=True, opset 18)"
    except Exception as error:  # noqa: BLE001
        if dynamo:
            print(f"dynamo export failed ({type(error).__name__}: {str(error)[:300]}); trying TorchScript", file=sys.stderr)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=17, dynamic_axes=axes, **names)
    return "TorchScript (torch.onnx.export dynamo=False, opset 17)"


def down_projection_matmuls(path: Path) -> tuple[list[str], int]:
    """Names of the MatMul/Gemm nodes whose weight projects down (in > out), and how many MatMul/Gemm have a weight."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    down, weighted = [], 0
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        name, transposed = node.input[1], False
        if name not in inits and name in producers and producers[name].op_type == "Transpose":
            name, transposed = producers[name].input[0], True
        if name not in inits or len(inits[name]) != 2:
            continue
        weighted += 1
        rows, cols = inits[name]
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            transposed = not transposed
        k, n = (cols, rows) if transposed else (rows, cols)
        if k > n:
            down.append(node.name)
    return down, weighted


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize(source: Path, target: Path, exclude: list[str]) -> None:
    """Dynamic int8 (weights per channel, activations per batch) of the weight MatMul/Gemm and fused Attention nodes."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing": shapes are dynamic anyway
    quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm", "Attention"], nodes_to_exclude=exclude,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops: no shape inference


def fuse(source: Path, target: Path, config) -> dict | None:
    """onnxruntime's BERT optimiser (fused attention, layer norm, GELU); None if it fails."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size, opt_level=1)
        optimized.save_model_to_file(str(target))
        return optimized.get_fused_operator_statistics()
    except Exception as error:  # noqa: BLE001
        print(f"transformer optimiser failed: {type(error).__name__}: {str(error)[:300]}", file=sys.stderr)
        return None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="/work/shared/corpora")
    p.add_argument("--dataset", default="NCBI-disease")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--max-sentences", type=int, default=None)
    p.add_argument("--no-fused", action="store_true", help="skip onnxruntime's transformer optimiser variants")
    p.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "onnx_compare.json"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    import onnx
    import onnxruntime as ort

    backbone = ModelConfig().backbone
    tokenizer, encoder = load_tokenizer(backbone), load_encoder(backbone).eval()
    sentences = [s for s in load_corpus(args.dataset, args.data_root).test if s.words][: args.max_sentences]
    texts = [" ".join(s.words) for s in sentences]
    batches = make_batches(texts, tokenizer, args.batch_size)
    np_batches = [{k: v.numpy() for k, v in b.items()} for b in batches]
    subwords = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(b["input_ids"].numel() for b in batches)

    fp32 = Bare(encoder).eval()
    holder = nn.Module()
    holder.encoder = copy.deepcopy(encoder)
    int8 = Bare(quantize_int8(holder).encoder).eval()
    n_int8_torch, n_linear = len(int8_layer_names(encoder)), sum(isinstance(m, nn.Linear) for m in encoder.modules())

    def torch_run(model, autocast: bool):
        def run(batch_ids):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return [model(batches[i]["input_ids"], batches[i]["attention_mask"]) for i in batch_ids]
        return run

    def ort_run(session):
        def run(batch_ids):
            return [session.run(None, np_batches[i])[0] for i in batch_ids]
        return run

    variants = {BASE: torch_run(fp32, False), "torch bf16 autocast": torch_run(fp32, True),
                "torch int8 (project: down-proj fp32)": torch_run(int8, False)}
    notes: dict = {"torch int8 (project: down-proj fp32)": f"{n_int8_torch} of {n_linear} Linear int8"}
    workdir = Path(tempfile.mkdtemp(prefix="onnx_compare_"))
    plain = workdir / "encoder.onnx"
    started = time.process_time()
    exporter = export_onnx(fp32, batches[len(batches) // 2], plain)
    export_cpu_s = time.process_time() - started
    down, weighted = down_projection_matmuls(plain)
    models = {"ORT fp32": (plain, "ENABLE_ALL")}
    quantize(plain, workdir / "int8_all.onnx", [])
    models["ORT int8 (all MatMul)"] = (workdir / "int8_all.onnx", f"{weighted} weight MatMul/Gemm int8, per channel")
    if down:
        quantize(plain, workdir / "int8_keep_down.onnx", down)
        models["ORT int8 (down-proj fp32)"] = (workdir / "int8_keep_down.onnx",
                                               f"{weighted - len(down)} of {weighted} int8, per channel")
    fusion, fused_exporter = None, None
    if not args.no_fused:
        # onnxruntime's optimiser fuses attention only in a TorchScript export of eager attention
        # (the dynamo export, sdpa or eager, gets LayerNorm/GELU fusions but no Attention): same weights.
        eager = copy.deepcopy(encoder)
        eager.set_attn_implementation("eager")
        traced = workdir / "eager_torchscript.onnx"
        fused_exporter = export_onnx(Bare(eager).eval(), batches[len(batches) // 2], traced, dynamo=False)
        fusion = fuse(traced, workdir / "fused.onnx", encoder.config)
    if fusion is not None:
        fused_down, fused_weighted = down_projection_matmuls(workdir / "fused.onnx")
        attention = fusion.get("Attention", 0)
        models["ORT fused fp32"] = (workdir / "fused.onnx", "transformer optimiser (fused attention) + ENABLE_ALL")
        quantize(workdir / "fused.onnx", workdir / "fused_int8_all.onnx", [])
        models["ORT fused int8 (all)"] = (workdir / "fused_int8_all.onnx",
                                          f"{fused_weighted} MatMul + {attention} Attention int8, per channel")
        if fused_down:
            quantize(workdir / "fused.onnx", workdir / "fused_int8_keep_down.onnx", fused_down)
            models["ORT fused int8 (down-proj fp32)"] = (
                workdir / "fused_int8_keep_down.onnx",
                f"{fused_weighted - len(fused_down)} MatMul + {attention} Attention int8, per channel")
    for name, (path, note) in models.items():
        variants[name] = ort_run(ort_session(path))
        notes[name] = note

    # Untimed pass over every batch: warm-up and output check against torch fp32 on the real tokens.
    everything = list(range(len(batches)))
    reference = [o.float().numpy() for o in variants[BASE](everything)]
    checks = {}
    for name, run in variants.items():
        outputs = [np.asarray(o.float() if isinstance(o, torch.Tensor) else o, dtype=np.float32) for o in run(everything)]
        diff, cosines = 0.0, []
        for ref, out, batch in zip(reference, outputs, np_batches):
            real = batch["attention_mask"].astype(bool)
            a, b = ref[real], out[real]
            diff = max(diff, float(np.abs(a - b).max()))
            cosines.append((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))
        cosines = np.concatenate(cosines)
        checks[name] = {"max_abs_diff": float(f"{diff:.3g}"), "cosine_mean": float(f"{cosines.mean():.6f}"),
                        "cosine_min": float(f"{cosines.min():.6f}")}

    names = list(variants)
    cpu_s = dict.fromkeys(names, 0.0)
    size = -(-len(batches) // args.chunks)
    for turn, first in enumerate(range(0, len(batches), size)):
        chunk = list(range(first, min(first + size, len(batches))))
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            started = time.process_time()
            variants[name](chunk)
            cpu_s[name] += time.process_time() - started

    best_torch = min((n for n in names if n.startswith("torch")), key=cpu_s.get)
    best_ort = min((n for n in names if n.startswith("ORT")), key=cpu_s.get)
    rows = {n: {"cpu_s": round(cpu_s[n], 2), "sentences_per_cpu_s": round(len(texts) / cpu_s[n], 1),
                "speedup_vs_torch_fp32": round(cpu_s[BASE] / cpu_s[n], 2), **checks[n], "note": notes.get(n, "")}
            for n in names}
    result = {
        "dataset": f"{args.dataset}/test", "sentences": len(texts), "subwords": subwords, "padded_subwords": padded,
        "batches": len(batches), "batch_size": args.batch_size, "chunks": args.chunks,
        "backbone": backbone, "threads": 1, "timing": "CPU time of this process (time.process_time), 1 thread",
        "cpu": cpu_info(), "exporter": exporter, "export_cpu_s": round(export_cpu_s, 1),
        "fused_exporter": fused_exporter, "fusion": {k: v for k, v in (fusion or {}).items() if v},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__, "onnxruntime": ort.__version__,
                     "onnx": onnx.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "variants": rows,
        "best_torch": best_torch, "best_ort": best_ort,
        "best_ort_over_best_torch": round(cpu_s[best_torch] / cpu_s[best_ort], 2),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    return 0


def print_report(r: dict) -> None:
    print(f"CPU: {r['cpu']['model']} x{r['cpu']['cores']}; flags: "
          + ", ".join(f"{f}={'yes' if v else 'no'}" for f, v in r["cpu"]["flags"].items()))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    print(f"{r['dataset']}: {r['sentences']} sentences, {r['subwords']} subwords ({r['padded_subwords']} padded), "
          f"{r['batches']} batches of {r['batch_size']}, {r['chunks']} rotating chunks; {r['timing']}")
    print(f"exporter: {r['exporter']}; fused variants: {r['fused_exporter']}, eager attention, fused {r['fusion']}\n")
    print("| variant | CPU s | sentences/CPU s | vs torch fp32 | max abs diff | cosine mean / min | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, v in r["variants"].items():
        print(f"| {name} | {v['cpu_s']:.2f} | {v['sentences_per_cpu_s']:.1f} | {v['speedup_vs_torch_fp32']:.2f}x | "
              f"{v['max_abs_diff']:.3g} | {v['cosine_mean']:.5f} / {v['cosine_min']:.5f} | {v['note']} |")
    print(f"\nbest torch: {r['best_torch']}; best ORT: {r['best_ort']}; "
          f"best ORT is {r['best_ort_over_best_torch']:.2f}x the best torch's speed")


if __name__ == "__main__":
    sys.exit(main())

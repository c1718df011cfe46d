"""Experiment (issue 13): CPU time of the bare MiniLM encoder under each quantisation variant, 1 thread,
NCBI-disease test sentences (batches of 32 sorted by length), variants take turns per chunk. Ratios to fp32."""
import copy
import re
import sys
import time
import warnings

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from adabiobert.corpora.iob import load_corpus
from adabiobert.model.backbone import load_encoder, load_tokenizer
from adabiobert.training_config import ModelConfig

torch.set_num_threads(1)
name = ModelConfig().backbone
tok = load_tokenizer(name)
base = load_encoder(name).eval()
sents = [" ".join(s.words) for s in load_corpus("NCBI-disease", "../shared/corpora").test]
sents.sort(key=len)
batches = [tok(sents[i:i + 32], return_tensors="pt", padding=True, truncation=True) for i in range(0, len(sents), 32)]

def q(model, names, per_channel):
    qc = torch.ao.quantization.per_channel_dynamic_qconfig if per_channel else torch.ao.quantization.default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {n: qc for n in names}, dtype=torch.qint8)
lin = [n for n, m in base.named_modules() if isinstance(m, nn.Linear)]
last = max(int(x) for x in re.findall(r"layer\.(\d+)\.", " ".join(lin)))
variants = {
    "fp32": base,
    "int8 per-tensor, all": q(base, lin, False),
    "int8 per-channel, all": q(base, lin, True),
    "int8 per-channel, FFN out fp32": q(base, [n for n in lin if not re.search(r"layer\.\d+\.output\.dense$", n)], True),
    "int8 per-channel, last layer fp32": q(base, [n for n in lin if f"layer.{last}." not in n], True),
}
cpu = {k: 0.0 for k in [*variants, "bf16 autocast"]}
chunks = [batches[i::4] for i in range(4)]
order = list(cpu)
with torch.inference_mode():
    for c, chunk in enumerate(chunks):
        for k in order[c % len(order):] + order[:c % len(order)]:
            model = variants.get(k, base)
            t = time.process_time()
            for b in chunk:
                if k == "bf16 autocast":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        model(**b)
                else:
                    model(**b)
            cpu[k] += time.process_time() - t
flags = [f for f in open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split() if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "avx_vnni")]
print("flags:", " ".join(flags), "| sentences:", len(sents), "| 1 thread, CPU seconds")
for k, v in cpu.items():
    print(f"| {k} | {v:.1f} | {cpu['fp32'] / v:.2f}x fp32 |")

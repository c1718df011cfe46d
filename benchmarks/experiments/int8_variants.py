"""Experiment (issue 13): which int8 dynamic quantisation keeps test F1 within 0.3 of fp32.
VARIANT env: pc (per-channel all Linear), pc-noffnout (skip FFN down-projections), pc-nolast (skip last layer)."""
import os
import re
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import adabiobert.model.precision as P
import adabiobert.model.tagger as T

V = os.environ["VARIANT"]

def quantize(model):
    names = [n for n, m in model.encoder.named_modules() if isinstance(m, nn.Linear)]
    if V == "pc-noffnout":
        names = [n for n in names if not re.search(r"layer\.\d+\.output\.dense$", n)]
    elif V == "pc-nolast":
        last = max(int(m) for m in re.findall(r"layer\.(\d+)\.", " ".join(names)))
        names = [n for n in names if f"layer.{last}." not in n]
    elif V == "pc-noattnout":
        names = [n for n in names if not n.endswith("attention.output.dense")]
    qc = torch.ao.quantization.per_channel_dynamic_qconfig
    print("quantised", len(names), "Linear layers", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.encoder = torch.ao.quantization.quantize_dynamic(model.encoder, {n: qc for n in names}, dtype=torch.qint8)
    return model
P.quantize_int8 = quantize
T.quantize_int8 = quantize
sys.argv = ["x", *sys.argv[1:]]
import runpy

runpy.run_path(str(__import__("pathlib").Path(__file__).resolve().parents[1] / "precision_accuracy.py"), run_name="__main__")

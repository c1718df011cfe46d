"""Which numeric precision the tagger runs at, and why (issue 13).

    choose_precision("auto", "cpu", cpu_flags())  # PrecisionChoice("int8", "CPU without native bf16 ...")

``auto`` picks by hardware:

* CUDA: ``bf16`` autocast.
* CPU with native bf16 (``avx512_bf16`` or ``amx_bf16`` in the CPU flags): ``bf16`` autocast.
* any other CPU: ``int8``, dynamic quantisation of the encoder's ``nn.Linear`` layers.

Never bf16 autocast on a CPU without native bf16: there it was measured about 7x slower than
fp32 (issue 13, AMD EPYC with AVX2 only). An explicit ``bf16`` on such a CPU is refused with a
``ConfigError`` rather than run slowly. ``int8`` is a CPU path only (torch's dynamic quantised
kernels have no CUDA version), so ``int8`` on CUDA is refused too.

The decision is the pure function :func:`choose_precision` (tested branch by branch with faked
flags); :func:`resolve_precision` feeds it this machine's flags and logs the choice once per
process.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from adabiobert.errors import ConfigError
from adabiobert.training_config import DEFAULT_TAG_PRECISION, TAG_PRECISIONS  # noqa: F401 (DEFAULT_TAG_PRECISION: the tagger imports it from here)

logger = logging.getLogger(__name__)

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""x86 CPU flags (``/proc/cpuinfo``) that mean bf16 matrix products run in hardware."""

_logged: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved precision: never ``auto``."""

    precision: str
    """``fp32``, ``bf16`` or ``int8``."""
    reason: str
    """One line: why this precision, naming the device and the CPU flags that decided."""
    requested: str
    """What was asked for (``auto`` or a precision)."""

    def to_dict(self) -> dict[str, str]:
        return {"precision": self.precision, "reason": self.reason, "requested": self.requested}


def choose_precision(requested: str, device_type: str, cpu_flags: Iterable[str]) -> PrecisionChoice:
    """The precision to tag at. Pure: no hardware is probed here.

    Args:
        requested: one of :data:`TAG_PRECISIONS`.
        device_type: ``cpu`` or ``cuda`` (``torch.device.type``).
        cpu_flags: the CPU's feature flags (``/proc/cpuinfo``'s ``flags`` line, lower case).

    Returns:
        The chosen precision and the reason.

    Raises:
        ConfigError: an unknown precision; ``bf16`` on a CPU without native bf16; ``int8`` on CUDA.
    """
    if requested not in TAG_PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(TAG_PRECISIONS)}, got {requested!r}")
    native = sorted(NATIVE_BF16_FLAGS & set(cpu_flags))
    if device_type == "cuda":
        if requested == "int8":
            raise ConfigError("precision int8 is a CPU path (torch dynamic quantisation has no CUDA kernels); "
                              "use bf16, fp32 or auto on cuda, or --device cpu")
        if requested == "auto":
            return PrecisionChoice("bf16", "auto on a CUDA device: bf16 autocast", requested)
        return PrecisionChoice(requested, f"{requested} asked for, on a CUDA device", requested)
    if device_type != "cpu":
        raise ConfigError(f"device type {device_type!r}: tagging runs on cpu or cuda")
    if requested == "bf16" and not native:
        raise ConfigError("precision bf16 on this CPU: it has no native bf16 (neither avx512_bf16 nor amx_bf16 "
                          "among its flags), where bf16 autocast was measured about 7x slower than fp32; "
                          "use int8, fp32 or auto")
    if requested == "auto":
        if native:
            return PrecisionChoice("bf16", f"auto on a CPU with native bf16 ({', '.join(native)}): bf16 autocast",
                                   requested)
        return PrecisionChoice("int8", "auto on a CPU without native bf16 (no avx512_bf16 or amx_bf16): "
                               "int8 dynamic quantisation of the encoder's Linear layers", requested)
    detail = f" (native bf16: {', '.join(native)})" if requested == "bf16" else ""
    return PrecisionChoice(requested, f"{requested} asked for, on the CPU{detail}", requested)


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """This CPU's feature flags: ``/proc/cpuinfo``'s first ``flags`` line, plus what torch detects.

    torch's own checks (``torch.cpu._is_avx512_bf16_supported``, ``_is_amx_tile_supported``;
    private, so looked up with ``getattr``) cover systems without ``/proc/cpuinfo``. AMX tiles
    imply ``amx_bf16`` on every CPU that has them (Sapphire Rapids and later).
    """
    flags: set[str] = set()
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
                break
    except OSError:
        pass
    for check, flag in (("_is_avx512_bf16_supported", "avx512_bf16"), ("_is_amx_tile_supported", "amx_bf16")):
        probe = getattr(torch.cpu, check, None)
        try:
            if probe is not None and probe():
                flags.add(flag)
        except Exception:  # a private API: never let it stop tagging
            pass
    return frozenset(flags)


def resolve_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """:func:`choose_precision` for this machine; logs the choice (INFO) once per process."""
    flags = cpu_flags() if device.type == "cpu" else frozenset()
    choice = choose_precision(requested, device.type, flags)
    key = (choice.precision, choice.reason, device.type)
    if key not in _logged:
        _logged.add(key)
        logger.info("tagging precision %s: %s", choice.precision, choice.reason)
    return choice


def int8_layer_names(encoder: nn.Module) -> list[str]:
    """The ``nn.Linear`` layers of ``encoder`` that :func:`quantize_int8` makes int8.

    Every Linear except those that project down (``in_features > out_features``): in a BERT-family
    encoder these are the feed-forward output projections (intermediate -> hidden), whose inputs
    carry the large activation outliers that per-tensor int8 handles worst (Bondarenko et al.,
    EMNLP 2021; Dettmers et al., LLM.int8(), 2022). Measured on trained MiniLM taggers
    (docs/benchmarks.md, issue 13): all Linear layers int8 cost 0.6 (NCBI-disease) and 0.9
    (BC5CDR) test entity F1; with the down-projections kept fp32 the cost is within 0.2, at about
    half the speed-up. Decided by shape, not by name, so that it holds for any BERT-family module
    naming.
    """
    return [name for name, module in encoder.named_modules()
            if isinstance(module, nn.Linear) and module.in_features <= module.out_features]


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace the :func:`int8_layer_names` layers of ``model.encoder`` with int8 dynamic-quantised ones, in place.

    Weights are quantised once, per output channel; activations are quantised per batch at run
    time. The down-projections (see :func:`int8_layer_names`), the classifier, the word vectors
    and the CRF stay fp32. CPU only.

    ``torch.ao.quantization`` warns that it is deprecated (torchao is its successor) on every
    call; the warning is silenced here, once per tagger load, and the API is pinned by the
    tests (tests/test_precision.py), which fail when it goes.

    Returns:
        ``model`` (its encoder replaced).
    """
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    spec = {name: qconfig for name in int8_layer_names(model.encoder)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(torch\.ao\.quantization is deprecated|quantized tensor creation)")
        model.encoder = torch.ao.quantization.quantize_dynamic(model.encoder, spec, dtype=torch.qint8)
    return model

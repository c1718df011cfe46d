"""The tagging precision: ``auto``'s choice by hardware (faked flags), refusals, int8 tagging."""

from __future__ import annotations

import logging

import pytest
import torch

from adabiobert.errors import ConfigError
from adabiobert.precision import choose_precision, cpu_flags, resolve_precision

AVX2_ONLY = {"sse4_2", "avx", "avx2", "fma"}
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512_vnni", "avx512_bf16"}
AMX = AVX2_ONLY | {"avx512f", "amx_tile", "amx_bf16"}


def test_auto_on_cuda_is_bf16():
    assert choose_precision("auto", "cuda", ()).precision == "bf16"


def test_auto_on_a_cpu_without_native_bf16_is_int8():
    choice = choose_precision("auto", "cpu", AVX2_ONLY)
    assert (choice.precision, choice.requested) == ("int8", "auto")
    assert "without native bf16" in choice.reason


@pytest.mark.parametrize("flags, named", [(AVX512_BF16, "avx512_bf16"), (AMX, "amx_bf16")])
def test_auto_on_a_cpu_with_native_bf16_is_bf16(flags, named):
    choice = choose_precision("auto", "cpu", flags)
    assert choice.precision == "bf16" and named in choice.reason


def test_bf16_is_refused_on_a_cpu_without_native_bf16():
    with pytest.raises(ConfigError, match="no native bf16"):
        choose_precision("bf16", "cpu", AVX2_ONLY)


def test_bf16_is_allowed_on_a_cpu_with_native_bf16():
    assert choose_precision("bf16", "cpu", AVX512_BF16).precision == "bf16"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_an_explicit_cpu_precision_is_kept_whatever_the_flags(precision):
    for flags in (AVX2_ONLY, AVX512_BF16):
        assert choose_precision(precision, "cpu", flags).precision == precision


def test_int8_is_refused_on_cuda():
    with pytest.raises(ConfigError, match="CPU path"):
        choose_precision("int8", "cuda", ())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_explicit_cuda_precisions_are_kept(precision):
    assert choose_precision(precision, "cuda", ()).precision == precision


def test_an_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision must be one of"):
        choose_precision("fp16", "cpu", AVX2_ONLY)


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: other\n")
    assert {"fpu", "avx2", "avx512_bf16"} <= cpu_flags(cpuinfo)
    assert "other" not in cpu_flags(cpuinfo)


def test_resolve_logs_the_choice_once(caplog, monkeypatch):
    import adabiobert.precision

    monkeypatch.setattr(adabiobert.precision, "_logged", set())
    with caplog.at_level(logging.INFO, logger="adabiobert.precision"):
        first = resolve_precision("fp32", torch.device("cpu"))
        resolve_precision("fp32", torch.device("cpu"))
    lines = [r.getMessage() for r in caplog.records if "tagging precision fp32" in r.getMessage()]
    assert first.precision == "fp32" and len(lines) == 1

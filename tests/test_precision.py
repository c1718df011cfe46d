"""The tagging precision: ``auto``'s choice by hardware (faked flags), refusals, int8 tagging."""

from __future__ import annotations

import logging

import pytest
import torch

from adabiobert.errors import ConfigError
from adabiobert.model.precision import choose_precision, cpu_flags, resolve_precision

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
    import adabiobert.model.precision

    monkeypatch.setattr(adabiobert.model.precision, "_logged", set())
    with caplog.at_level(logging.INFO, logger="adabiobert.model.precision"):
        first = resolve_precision("fp32", torch.device("cpu"))
        resolve_precision("fp32", torch.device("cpu"))
    lines = [r.getMessage() for r in caplog.records if "tagging precision fp32" in r.getMessage()]
    assert first.precision == "fp32" and len(lines) == 1


# ---------------------------------------------------------------------------------------------
# The tagger at each precision, on the tiny bundle (tests/conftest.py)
# ---------------------------------------------------------------------------------------------
def _tags(tagger, sentences):
    return [t.tags for t in tagger.tag_words(sentences)]


def test_int8_tagging_gives_valid_iob2_and_mostly_the_fp32_tags(tiny_bundle, ncbi):
    from adabiobert.model.tagger import Tagger
    from adabiobert.spans import is_valid_iob2

    sentences = [list(s.words) for s in ncbi.dev[:200]]
    fp32 = Tagger.from_pretrained(tiny_bundle, device="cpu", precision="fp32")
    int8 = Tagger.from_pretrained(tiny_bundle, device="cpu", precision="int8")
    assert int8.precision.precision == "int8" and fp32.precision.precision == "fp32"
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in int8.model.encoder.modules())
    assert not any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in fp32.model.encoder.modules())
    fp32_tags, int8_tags = _tags(fp32, sentences), _tags(int8, sentences)
    assert all(is_valid_iob2(tags) for tags in int8_tags)
    assert sum(map(len, int8_tags)) > 0 and any(t != "O" for tags in int8_tags for t in tags)
    pairs = [(a, b) for x, y in zip(fp32_tags, int8_tags) for a, b in zip(x, y, strict=True)]
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    # 1.0 when written. The fixture's B- bias puts words at the decision boundary, so a few flips
    # from quantisation noise are allowed; a broken quantisation agrees on the ~90% O words at most.
    assert agreement >= 0.95, agreement


def test_int8_keeps_the_down_projections_fp32_and_quantises_the_rest_per_channel(tiny_bundle):
    from torch import nn

    from adabiobert.model.precision import int8_layer_names
    from adabiobert.model.tagger import Tagger

    fp32 = Tagger.from_pretrained(tiny_bundle, device="cpu", precision="fp32").model.encoder
    linear = {n: m for n, m in fp32.named_modules() if isinstance(m, nn.Linear)}
    down = {n for n, m in linear.items() if m.in_features > m.out_features}
    assert down and all(n.endswith("output.dense") and ".attention." not in n for n in down)  # the FFN outputs
    assert set(int8_layer_names(fp32)) == set(linear) - down

    int8 = dict(Tagger.from_pretrained(tiny_bundle, device="cpu", precision="int8").model.encoder.named_modules())
    for name in linear:
        quantised = type(int8[name]).__module__.startswith("torch.ao.nn.quantized")
        assert quantised == (name not in down), name
        if quantised:
            assert int8[name].weight().qscheme() == torch.per_channel_affine, name


def test_torch_is_capped_below_the_release_that_may_drop_quantize_dynamic():
    """The int8 path's API is deprecated for torchao (docs/operations.md, "Tagging precision");
    the package pins torch below 2.14 while it uses it, and the installed torch still has it."""
    import re
    from pathlib import Path

    import torch

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.findall(r'"(torch[<>=!~][^"]*)"', pyproject) == ["torch>=2.3,<2.14"]
    assert callable(torch.ao.quantization.quantize_dynamic)
    assert tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) < (2, 14)


def test_int8_entities_keep_offsets_into_the_text(tiny_bundle):
    from adabiobert.model.tagger import Tagger

    text = "Germline mutations of the APC gene cause familial adenomatous polyposis. Breast cancer is common."
    for entity in Tagger.from_pretrained(tiny_bundle, device="cpu", precision="int8").tag([text])[0]:
        assert text[entity.start : entity.end] == entity.text and 0.0 <= entity.confidence <= 1.0


def test_the_tagger_refuses_bf16_on_a_cpu_without_native_bf16(tiny_bundle, monkeypatch):
    import adabiobert.model.precision
    from adabiobert.model.tagger import Tagger

    monkeypatch.setattr(adabiobert.model.precision, "cpu_flags", lambda: frozenset(AVX2_ONLY))
    with pytest.raises(ConfigError, match="no native bf16"):
        Tagger.from_pretrained(tiny_bundle, device="cpu", precision="bf16")
    assert Tagger.from_pretrained(tiny_bundle, device="cpu", precision="auto").precision.precision == "int8"  # auto there


def test_auto_on_a_native_bf16_cpu_tags_with_bf16_autocast(tiny_bundle, monkeypatch):
    import adabiobert.model.precision
    from adabiobert.model.tagger import Tagger
    from adabiobert.spans import is_valid_iob2

    monkeypatch.setattr(adabiobert.model.precision, "cpu_flags", lambda: frozenset(AVX512_BF16))
    tagger = Tagger.from_pretrained(tiny_bundle, device="cpu", precision="auto")
    assert tagger.precision.precision == "bf16" and tagger._predict_config.precision == "bf16"
    assert all(is_valid_iob2(t.tags) for t in tagger.tag_words([["Breast", "cancer", "is", "common", "."]]))


# ---------------------------------------------------------------------------------------------
# adabiobert tag --precision
# ---------------------------------------------------------------------------------------------
def test_the_cli_choices_and_default_are_the_tagger_precisions():
    from adabiobert.cli.command import DEFAULT_TAG_PRECISION as CLI_DEFAULT
    from adabiobert.cli.kit import PRECISIONS
    from adabiobert.model.precision import DEFAULT_TAG_PRECISION, TAG_PRECISIONS

    assert PRECISIONS == TAG_PRECISIONS
    assert CLI_DEFAULT == DEFAULT_TAG_PRECISION == "fp32"  # until auto's choices are measured (issue 13)


def test_cli_tag_at_int8_reports_the_precision_and_its_reason(tiny_bundle, tmp_path, capsys):
    from adabiobert.cli.command import main

    path = tmp_path / "doc.txt"
    path.write_text("Germline mutations of the APC gene cause familial adenomatous polyposis.", encoding="utf-8")
    assert main(["tag", "--model", str(tiny_bundle), "--precision", "int8", "--no-progress", str(path)]) == 0
    assert "int8: int8 asked for, on the CPU" in capsys.readouterr().err


def test_cli_refuses_bf16_on_a_cpu_without_native_bf16(tiny_bundle, tmp_path, capsys, monkeypatch):
    import adabiobert.model.precision
    from adabiobert.cli.command import main

    monkeypatch.setattr(adabiobert.model.precision, "cpu_flags", lambda: frozenset(AVX2_ONLY))
    path = tmp_path / "doc.txt"
    path.write_text("Breast cancer is common.", encoding="utf-8")
    assert main(["tag", "--model", str(tiny_bundle), "--device", "cpu", "--precision", "bf16", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: precision bf16 on this CPU") and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# jobs/annotate.py --precision (parsing only: no Ray)
# ---------------------------------------------------------------------------------------------
def test_annotate_takes_a_precision_and_defaults_to_fp32():
    from jobs.annotate import parse_args

    base = ["--shards", "s", "--model", "m", "--output", "o"]
    assert parse_args(base)[0].precision == "fp32"
    assert parse_args([*base, "--precision", "int8"])[0].precision == "int8"
    assert parse_args([*base, "--gpu", "--precision", "bf16"])[0].precision == "bf16"


def test_annotate_refuses_int8_on_gpu_while_parsing(capsys):
    from jobs.annotate import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--shards", "s", "--model", "m", "--output", "o", "--gpu", "--precision", "int8"])
    assert exit_.value.code == 2 and "int8 is a CPU path" in capsys.readouterr().err

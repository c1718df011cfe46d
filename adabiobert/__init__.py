"""AdaBioBERT: biomedical NER with an adaptive token-sequence (ATS) loss.

Heavy imports (torch, transformers) stay out of this module so that the pure-Python layers
(corpus reading, metrics, text splitting) can be imported cheaply. Load a tagger with
``from adabiobert.model.tagger import Tagger``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from adabiobert import Tagger`` without importing torch for every other import."""
    if name == "Tagger":
        from adabiobert.model.tagger import Tagger

        return Tagger
    raise AttributeError(f"module 'adabiobert' has no attribute {name!r}")

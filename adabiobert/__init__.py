"""AdaBioBERT: biomedical NER with an adaptive token-sequence (ATS) loss.

Heavy imports (torch, transformers) stay out of this module so that the pure-Python layers
(corpus reading, metrics, text splitting) can be imported cheaply. Load a tagger with
``from adabiobert.tagger import Tagger``.
"""

__version__ = "0.1.0"

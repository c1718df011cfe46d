"""The public tagging API, where users import it from: ``from adabiobert.tagger import Tagger``.

The tagger lives with the rest of the model in :mod:`adabiobert.model.tagger`; this module keeps
the import path that the README, the docs and users' code name.
"""

from adabiobert.model.tagger import Entity, Tagger, entities_from_tagging  # noqa: F401

__all__ = ["Entity", "Tagger", "entities_from_tagging"]

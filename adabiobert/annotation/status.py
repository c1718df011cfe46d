"""The status of an article in the annotation job: one home, low in the house.

The per-article stages (``adabiobert.annotation.stages``) set these; the run counts
(``adabiobert.annotation.counts``) and the Ray pipeline read them. Importing this module costs
nothing: no torch, no tagger. Why a row is not current (superseded, retracted) is the shard
root's business and lives in ``adabiobert.pmc.versions``.
"""

OK = "ok"
"""``status`` of an article that was tagged; any other status is a rejection reason."""

QUARANTINED = "quarantined"
"""``status`` of the one row that stands for a whole shard whose read or split failed."""

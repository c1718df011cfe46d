"""A bounded pool of Ray tasks: submit as the earlier ones finish, never more than N at once.

Used by parallel ingest and the PMC sync: each unit of work is one plain Ray task, so a unit whose
worker dies is retried alone, and the driver holds only the results, never the units' data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import ray

T = TypeVar("T")


def pooled(items: Iterable[T], submit: Callable[[T], ray.ObjectRef], at_once: int) -> Iterator[tuple[T, ray.ObjectRef]]:
    """Submit ``submit(item)`` for each item, at most ``at_once`` unfinished; yield ``(item, ref)``
    as each finishes (in finishing order), the next one already submitted."""
    pending = iter(items)
    running = {submit(item): item for item in itertools.islice(pending, at_once)}
    while running:
        [ref], _ = ray.wait(list(running), num_returns=1)
        item = running.pop(ref)
        following = next(pending, None)
        if following is not None:
            running[submit(following)] = following
        yield item, ref

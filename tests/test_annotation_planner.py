"""The annotation run's decisions, without Ray: which shards are pending, held or up to date, which
committed rows a version change removes (and in which commit), and how the tagger pool is sized."""

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from adabiobert.annotation.counts import RunCounts
from adabiobert.annotation.planner import TaggerPool, amendments_alone, plan_run, read_slots, tagger_pool
from adabiobert.errors import ConfigError
from adabiobert.job_configs import AnnotationJobConfig
from adabiobert.pmc.shards import Shard
from adabiobert.pmc.versions import ArticleVersion, build_index

MODEL = "tiny@1"


@dataclass
class Committed:
    """The part of ``ShardCommit`` the planner reads."""

    quarantined: int = 0
    excluded: tuple[str, ...] = ()
    error: str = ""


@dataclass
class FakeStore:
    """An output's commits as the planner sees them through ``AnnotationStore``'s questions."""

    commits: dict[str, Committed] = field(default_factory=dict)
    up_to_date: set[str] = field(default_factory=set)
    linked_otherwise: set[str] = field(default_factory=set)
    """Tagged by this model, linked by another linker: re-linked, not tagged."""

    def committed(self, name):
        return self.commits.get(name)

    def quarantine(self, shard, model_id):
        commit = self.commits.get(shard.name)
        return commit if commit and commit.quarantined else None

    def is_held(self, shard, model_id):
        commit = self.quarantine(shard, model_id)
        return commit is not None and commit.quarantined >= 3

    def needs_relink(self, shard, model_id, excluded=frozenset(), linker_id=""):
        return shard.name in self.linked_otherwise

    def is_current(self, shard, model_id, excluded=frozenset(), linker_id=""):
        return shard.name in self.up_to_date


def shard(name: str) -> Shard:
    return Shard(name=name, uri=f"/in/{name}", size=1, version="1")


def version(pmcid: str, shard_name: str, day: int, retracted: bool = False) -> ArticleVersion:
    return ArticleVersion(pmcid, datetime(2026, 1, day, tzinfo=timezone.utc), retracted, shard_name, 0)


def test_shards_are_sorted_into_held_pending_and_up_to_date():
    listed = [shard("a.parquet"), shard("b.parquet"), shard("c.parquet")]
    store = FakeStore({"a.parquet": Committed(), "c.parquet": Committed(quarantined=3, error="bad page")},
                      up_to_date={"a.parquet"})
    counts = RunCounts()
    plan = plan_run(store, listed, MODEL, build_index([]), counts)
    assert [s.name for s in plan.pending] == ["b.parquet"]
    assert [s.name for s in plan.held] == ["c.parquet"]
    assert plan.up_to_date == 1
    assert counts.shards_held == 1


def test_a_shard_linked_by_another_linker_is_relinked_not_tagged():
    listed = [shard("a.parquet"), shard("b.parquet")]
    store = FakeStore({"a.parquet": Committed(), "b.parquet": Committed()}, up_to_date={"a.parquet"},
                      linked_otherwise={"b.parquet"})
    plan = plan_run(store, listed, MODEL, build_index([]), RunCounts())
    assert plan.pending == [] and [s.name for s in plan.relink] == ["b.parquet"] and plan.up_to_date == 1


def test_a_newer_version_in_a_pending_shard_amends_the_committed_shard_it_supersedes():
    listed = [shard("old.parquet"), shard("new.parquet")]
    index = build_index([version("PMC1", "old.parquet", 1), version("PMC1", "new.parquet", 2),
                         version("PMC2", "old.parquet", 1)])
    store = FakeStore({"old.parquet": Committed()}, up_to_date={"old.parquet"})
    plan = plan_run(store, listed, MODEL, index, RunCounts())
    assert [s.name for s in plan.pending] == ["new.parquet"]
    assert plan.amendments == {"new.parquet": {"old.parquet": frozenset({"PMC1"})}}
    assert plan.amendment_rows() == 1


def test_rows_already_left_out_or_in_a_retagged_or_quarantined_shard_need_no_amendment():
    index = build_index([version("PMC1", "old.parquet", 1), version("PMC1", "new.parquet", 2),
                         version("PMC3", "bad.parquet", 1), version("PMC3", "new.parquet", 2)])
    listed = [shard("old.parquet"), shard("new.parquet"), shard("bad.parquet")]
    store = FakeStore({"old.parquet": Committed(excluded=("PMC1",)), "bad.parquet": Committed(quarantined=1)},
                      up_to_date={"old.parquet"})
    assert plan_run(store, listed, MODEL, index, RunCounts()).amendments == {}


def test_amendments_go_alone_only_when_their_owner_is_up_to_date_and_usable():
    listed = [shard(n) for n in ("owner-ok", "owner-tried", "owner-quarantined", "x", "y", "z")]
    store = FakeStore({"owner-quarantined": Committed(quarantined=1)})
    amend = {"owner-ok": {"x": frozenset({"PMC1"})}, "owner-tried": {"y": frozenset({"PMC2"})},
             "owner-quarantined": {"z": frozenset({"PMC3"})}}
    alone = amendments_alone(store, amend, listed, pending=[shard("owner-tried")])
    assert alone == [("x", frozenset({"PMC1"}))]


def config(**overrides) -> AnnotationJobConfig:
    return AnnotationJobConfig(shards="/in", output="/out", model="/model", **overrides)


@pytest.mark.parametrize("cpus, expected", [
    (2, TaggerPool(actors=1, cpus=1, gpus=None, threads=1)),   # one CPU stays free for reads
    (8, TaggerPool(actors=7, cpus=1, gpus=None, threads=1)),
    (17, TaggerPool(actors=4, cpus=4, gpus=None, threads=4)),  # (17 - 1) // 4 threads, capped at 4
])
def test_cpu_tagger_pool_leaves_one_cpu_for_reads(cpus, expected):
    pool = tagger_pool(config(), {"CPU": cpus})
    assert pool == expected
    assert read_slots(pool, {"CPU": cpus}) >= 1


def test_gpu_pool_is_one_actor_per_gpu_and_refused_without_one():
    assert tagger_pool(config(use_gpu=True), {"CPU": 16, "GPU": 2}) == TaggerPool(2, None, 1, None)
    with pytest.raises(ConfigError, match="no GPU"):
        tagger_pool(config(use_gpu=True), {"CPU": 16})


def test_read_slots_are_the_cpus_the_actors_leave():
    assert read_slots(TaggerPool(2, 3, None, 3), {"CPU": 8}) == 2
    assert read_slots(TaggerPool(2, None, 1, None), {"CPU": 16, "GPU": 2}) == 14  # a GPU actor holds one CPU
    assert read_slots(TaggerPool(4, 4, None, 4), {"CPU": 8}) == 1

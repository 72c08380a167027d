"""Versions, champions and job records in a real S3 server (SeaweedFS)."""

from __future__ import annotations

import threading

import pytest

from shared.errors import Conflict, NotFound
from shared.jobs import JobRequest, JobStatus, JobStore
from shared.registry import ArtifactRef, FeatureSpec, Registry, VersionRecord


def version(job_id: str, model: str = "at-risk") -> VersionRecord:
    return VersionRecord(
        tenant="t1",
        model=model,
        job_id=job_id,
        dataset_id="d1",
        task="classification",
        target="passed",
        features=[FeatureSpec(name="hours", type="numeric")],
        algorithm="linear",
        seed=42,
        artifact=ArtifactRef(key="k", sha256="0" * 64, bytes=1),
        libraries={},
        fit_seconds=0.1,
        rows={"train": 8, "test": 2},
        test_rows=[1, 5],
    )


def test_versions_are_numbered_in_order(storage):
    registry = Registry(storage)

    numbers = [registry.register("t1", version(f"job{i}")) for i in range(3)]

    assert numbers == [1, 2, 3]
    assert registry.versions("t1", "at-risk") == [1, 2, 3]
    assert registry.get_version("t1", "at-risk", 2).job_id == "job1"


def test_registering_the_same_job_twice_gives_one_version(storage):
    registry = Registry(storage)

    first = registry.register("t1", version("job-a"))
    again = registry.register("t1", version("job-a"))

    assert first == again == 1
    assert registry.versions("t1", "at-risk") == [1]


def test_concurrent_registrations_never_share_a_number(storage):
    registry = Registry(storage)
    numbers: list[int] = []

    def register(i: int) -> None:
        numbers.append(registry.register("t1", version(f"job{i}")))

    threads = [threading.Thread(target=register, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_c32_two_promotions_from_the_same_champion_leave_exactly_one(storage):
    registry = Registry(storage)
    registry.register("t1", version("a"))
    registry.promote("t1", "at-risk", 1, expected=None, reason="first")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def promote(number: int) -> None:
        barrier.wait()
        try:
            registry.promote("t1", "at-risk", number, expected=1, reason="better")
            outcomes.append(f"v{number}")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=promote, args=(n,)) for n in (7, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes)[0] == "conflict"
    winner = [o for o in outcomes if o != "conflict"]
    assert len(winner) == 1
    assert f"v{registry.champion('t1', 'at-risk').version}" == winner[0]


def test_promotion_from_a_stale_champion_is_refused(storage):
    registry = Registry(storage)
    registry.promote("t1", "m", 1, expected=None, reason="first")

    with pytest.raises(Conflict, match=r"champion is v1, expected vNone"):
        registry.promote("t1", "m", 2, expected=None, reason="stale")


def test_unknown_version_is_not_found(storage):
    with pytest.raises(NotFound, match=r"model 'm' has no version 9"):
        Registry(storage).get_version("t1", "m", 9)


def test_job_record_updates_keep_each_writers_change(storage):
    jobs = JobStore(storage)
    request = JobRequest(
        model="m", dataset_id="d", target="y", task="regression", features=["x"]
    )
    record = jobs.create("t1", request)

    def add_note(i: int) -> None:
        jobs.update("t1", record.id, lambda job: job.notes.append(f"note {i}"))

    threads = [threading.Thread(target=add_note, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jobs.set_status("t1", record.id, JobStatus.TRAINING)

    stored = jobs.get("t1", record.id)
    assert sorted(stored.notes) == [f"note {i}" for i in range(5)]
    assert stored.status is JobStatus.TRAINING
    assert set(stored.timestamps) == {"queued", "training"}


def test_recent_jobs_are_newest_first(storage):
    jobs = JobStore(storage)
    request = JobRequest(
        model="m", dataset_id="d", target="y", task="regression", features=["x"]
    )
    ids = [jobs.create("t1", request).id for _ in range(3)]

    assert [job.id for job in jobs.recent("t1", 2)] == ids[::-1][:2]

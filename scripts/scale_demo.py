"""Scale-out on one machine: one burst of training jobs drained by 1, 2 and 4 workers.

``python -m scripts.scale_demo`` starts a private stack (Redis and SeaweedFS
on free ports, the gateway), uploads ``data/exam.csv`` and, for each worker
count, starts that many training worker processes (separate ``celery worker``
processes with one pool process each, as one pod each would be), enqueues a
burst of random-forest jobs and waits until the queue is drained. A short
unmeasured burst warms the stack up first; the worker counts then take turns
for a few rounds, and the best round of each counts, the one least disturbed
by whatever else the machine runs.

What is measured is the training queue: from the first job's ``queued``
timestamp to the last job's ``evaluating`` timestamp, both written by the
platform into the job records. No evaluation worker runs, so nothing else
competes for the cores; the jobs are left waiting for evaluation, and the
private stack is thrown away at the end. The table goes to standard error,
one JSON object to standard output as the last line. The run fails unless
throughput grows with the workers up to the machine's cores and holds beyond.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from scripts import stack
from shared.celery_app import TRAINING_QUEUE

DATA = stack.ROOT / "data" / "exam.csv"
LOGS = stack.RUN_DIR / "scale-demo"
ALGORITHM = "random_forest"
TARGET = "normexam"
FEATURES = ["standLRT", "sex", "schavg", "vr", "intake"]
POLL_S = 0.5
DRAIN_TIMEOUT_S = 300.0
# Jobs drained before the measured runs, so that SeaweedFS growing its first
# volumes and the first imports are not charged to the first worker count.
WARM_UP_JOBS = 4
# Throughput must grow by this factor when workers are doubled up to the core
# count, and beyond it (processes then share cores) must not fall below this
# share of what the core count reached.
SCALING_FACTOR = 1.3
KEPT_SHARE = 0.8
LEFT_TRAINING = {"evaluating", "deployed", "rejected"}

console = Console(stderr=True)
cli = typer.Typer(add_completion=False, help=__doc__)


@dataclass(frozen=True)
class Drain:
    """How one worker count drained one burst."""

    workers: int
    jobs: int
    wall_s: float
    mean_job_s: float

    @property
    def jobs_per_minute(self) -> float:
        return 60.0 * self.jobs / self.wall_s


def check(answer: httpx.Response) -> dict[str, Any]:
    if answer.is_error:
        raise SystemExit(
            f"scale demo: {answer.request.method} {answer.request.url}: "
            f"{answer.status_code} {answer.text}"
        )
    return dict(answer.json())


def tenant_client(base_url: str, admin_key: str) -> httpx.Client:
    """A client of a tenant made for this run, as an LMS would hold one."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    tenant = check(
        httpx.post(
            f"{base_url}/v1/tenants",
            json={"name": "scale demo"},
            headers=admin,
            timeout=30,
        )
    )
    return httpx.Client(
        base_url=base_url,
        timeout=60,
        headers={"Authorization": f"Bearer {tenant['api_key']}"},
    )


def upload(api: httpx.Client) -> str:
    dataset = check(
        api.post(
            "/v1/datasets",
            data={"id_column": "student"},
            files={"file": (DATA.name, DATA.read_bytes(), "text/csv")},
        )
    )
    return str(dataset["id"])


def start_workers(
    count: int, env: dict[str, str], base_url: str
) -> list[subprocess.Popen]:
    workers = [
        stack.start_worker(
            TRAINING_QUEUE,
            LOGS / f"training-{count}w-{index}.log",
            env,
            name=f"scale{count}w{index}",
        )
        for index in range(count)
    ]
    stack.wait_until(
        lambda: consumers(base_url) == count,
        stack.START_TIMEOUT_S,
        f"{count} training workers",
    )
    return workers


def consumers(base_url: str) -> int:
    try:
        report = httpx.get(f"{base_url}/v1/queues", timeout=2).json()
    except httpx.HTTPError:
        return -1
    return sum(
        len(q["consumers"]) for q in report["queues"] if q["name"] == TRAINING_QUEUE
    )


def enqueue(api: httpx.Client, dataset_id: str, label: str, jobs: int) -> list[str]:
    """A burst of jobs, one model each, as many LMS installations would send."""
    return [
        check(
            api.post(
                "/v1/jobs",
                json={
                    "model": f"scale-{label}-{index:02d}",
                    "dataset_id": dataset_id,
                    "target": TARGET,
                    "features": FEATURES,
                    "algorithm": ALGORITHM,
                },
            )
        )["id"]
        for index in range(jobs)
    ]


def wait_for_drain(api: httpx.Client, job_ids: list[str]) -> list[dict[str, Any]]:
    """Every job's record once it has left training.

    The queue is first in, first out, so each poll reads the pending jobs in
    order and stops at the first one still queued: a handful of reads per
    poll, not one per job, so the poller takes little from the workers.
    """
    pending, done = list(job_ids), []
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"scale demo: {len(pending)} jobs still in training after "
                f"{DRAIN_TIMEOUT_S:.0f} s; see the logs in {LOGS}"
            )
        for job_id in list(pending):
            job = check(api.get(f"/v1/jobs/{job_id}"))
            if job["status"] == "failed":
                raise SystemExit(f"scale demo: job {job_id} failed: {job['error']}")
            if job["status"] == "queued":
                break
            if job["status"] in LEFT_TRAINING:
                pending.remove(job_id)
                done.append(job)
        time.sleep(POLL_S)
    return done


def measure(jobs: list[dict[str, Any]], workers: int) -> Drain:
    def at(job: dict[str, Any], status: str) -> float:
        return datetime.fromisoformat(job["timestamps"][status]).timestamp()

    first_queued = min(at(job, "queued") for job in jobs)
    last_trained = max(at(job, "evaluating") for job in jobs)
    per_job = [at(job, "evaluating") - at(job, "training") for job in jobs]
    return Drain(
        workers, len(jobs), last_trained - first_queued, sum(per_job) / len(per_job)
    )


def drain_with(
    count: int,
    jobs: int,
    private: stack.PrivateStack,
    api: httpx.Client,
    dataset_id: str,
    label: str = "",
) -> Drain:
    workers = start_workers(count, private.env, private.base_url)
    try:
        job_ids = enqueue(
            api, dataset_id, f"{(label or 'run').replace(' ', '')}-{count}w", jobs
        )
        drain = measure(wait_for_drain(api, job_ids), count)
    finally:
        for worker in workers:
            stack.stop(worker)
    console.log(
        f"{label or 'measured'}: {count} worker(s) drained {jobs} jobs in "
        f"{drain.wall_s:.1f} s, {drain.jobs_per_minute:.1f} jobs/min"
    )
    return drain


def verdict(drains: list[Drain], cores: int) -> tuple[bool, str]:
    """Does throughput grow with workers up to the cores, and hold beyond them?"""
    for before, after in pairwise(drains):
        gain = after.jobs_per_minute / before.jobs_per_minute
        wanted = SCALING_FACTOR ** math.log2(after.workers / before.workers)
        if after.workers <= cores and gain < wanted:
            return False, (
                f"{after.workers} workers gave {gain:.2f}x the throughput of "
                f"{before.workers}; at least {wanted:.2f}x was expected"
            )
        if after.workers > cores and gain < KEPT_SHARE:
            return False, (
                f"{after.workers} workers on {cores} cores fell to {gain:.2f}x "
                f"the throughput of {before.workers}"
            )
    return True, (
        f"throughput grows with workers up to the {cores} cores; past them "
        "the worker processes share the cores and it levels off"
    )


def report(rounds: dict[int, list[Drain]], cores: int) -> dict[str, Any]:
    """The best round of each worker count: the one least disturbed by others."""
    drains = [max(runs, key=lambda d: d.jobs_per_minute) for runs in rounds.values()]
    base = drains[0].jobs_per_minute
    table = Table(
        title=f"{drains[0].jobs} {ALGORITHM} jobs on data/exam.csv, "
        f"{cores} cores: queued → trained, best of {len(rounds[drains[0].workers])}"
    )
    for column in (
        "workers",
        "wall (s)",
        "jobs/min",
        "speed-up",
        "s per job",
        "rounds (jobs/min)",
    ):
        table.add_column(column, justify="right")
    for drain in drains:
        table.add_row(
            str(drain.workers),
            f"{drain.wall_s:.1f}",
            f"{drain.jobs_per_minute:.1f}",
            f"{drain.jobs_per_minute / base:.2f}x",
            f"{drain.mean_job_s:.2f}",
            ", ".join(f"{d.jobs_per_minute:.1f}" for d in rounds[drain.workers]),
        )
    console.print(table)
    scales, explanation = verdict(drains, cores)
    console.print(explanation)
    return {
        "jobs": drains[0].jobs,
        "algorithm": ALGORITHM,
        "cores": cores,
        "measured": "first job queued -> last job trained (status evaluating); "
        "best round of each worker count",
        "runs": [
            {
                "workers": d.workers,
                "wall_s": round(d.wall_s, 2),
                "jobs_per_minute": round(d.jobs_per_minute, 1),
                "speedup": round(d.jobs_per_minute / base, 2),
                "mean_job_s": round(d.mean_job_s, 2),
                "rounds_jobs_per_minute": [
                    round(r.jobs_per_minute, 1) for r in rounds[d.workers]
                ],
            }
            for d in drains
        ],
        "scales_out": scales,
        "verdict": explanation,
    }


@cli.command()
def main(
    jobs: int = typer.Option(40, min=1, help="jobs in each burst"),
    workers: str = typer.Option(
        "1,2,4", help="training worker counts, comma-separated"
    ),
    rounds: int = typer.Option(
        2, min=1, help="bursts per worker count, interleaved; the best one counts"
    ),
) -> None:
    counts = [int(count) for count in workers.split(",")]
    drains: dict[int, list[Drain]] = {count: [] for count in counts}
    private = stack.start_private("scale-demo", LOGS, workers=())
    try:
        with tenant_client(private.base_url, private.env["ADMIN_API_KEY"]) as api:
            dataset_id = upload(api)
            drain_with(1, WARM_UP_JOBS, private, api, dataset_id, label="warm-up")
            for number in range(1, rounds + 1):
                for count in counts:
                    drains[count].append(
                        drain_with(
                            count,
                            jobs,
                            private,
                            api,
                            dataset_id,
                            label=f"round {number}",
                        )
                    )
    finally:
        private.close()
    summary = report(drains, os.cpu_count() or 1)
    print(json.dumps(summary))
    if not summary["scales_out"]:
        raise SystemExit(f"scale demo: {summary['verdict']}")


if __name__ == "__main__":
    cli()

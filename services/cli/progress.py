"""A job followed through its states with a progress bar.

The bar has one step per state a job passes: queued → training → evaluating
→ a final state (deployed, rejected or failed).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from services.cli.client import Gateway

POLL_S = 0.5
STEPS = {"queued": 0, "training": 1, "evaluating": 2}
FINISHED = ("deployed", "rejected", "failed")


def follow(gateway: Gateway, job_id: str, console: Console) -> dict[str, Any]:
    """Poll the job every POLL_S until it finishes; return its last record."""
    progress = Progress(
        SpinnerColumn(finished_text="✓"),
        TextColumn("job {task.fields[job_id]}: [bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task("queued", total=len(STEPS), job_id=job_id)
        while True:
            job = gateway.job(job_id)
            status = job["status"]
            progress.update(bar, description=status, completed=step(status))
            if status in FINISHED:
                return job
            time.sleep(POLL_S)


def step(status: str) -> int | None:
    """How many steps a job in ``status`` has passed; None for a state unknown here."""
    if status in FINISHED:
        return len(STEPS)
    return STEPS.get(status)

"""Predictions through our queues against ``mlflow models serve``, side by side.

``python -m scripts.bench`` (``make bench``) starts a private stack (Redis
and SeaweedFS on free ports, the gateway, one worker per queue), uploads
``data/chem97.csv`` with the ``at_risk`` label, and trains two models through
the platform: a logistic regression (``linear``) and a histogram gradient
boosting pipeline. The same fitted logistic-regression pipeline, read back
from S3, is saved with ``mlflow.sklearn`` and served by ``mlflow models
serve --workers 2`` from the benchmark's own environment (``.venv-bench``,
made by the Makefile; MLflow is no dependency of the platform).

One load generator, ``wrk`` (scripts/load.py), drives both on loopback with
single-row requests of real students: at concurrency 1 (latency) and 32
(throughput), in rounds that alternate which server goes first, so that both
see the same machine at nearly the same time.

Also measured: the floor (``predict_proba`` on a one-row DataFrame in this
process); that the gateway's answers equal scikit-learn's in this process;
the job overhead (from ``POST /v1/jobs`` to ``deployed`` minus the fit and
evaluation compute the job record reports); batch scoring of 100,000 rows
through ``POST /v1/models/{model}/batch`` (scripts/bench_batch.py, S3 read
and write included); and the resident memory of the serving worker's
processes. The table goes to standard error; the last line of standard
output is one JSON object.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from scripts import bench_batch, load, stack
from shared import artifacts
from shared.registry import Registry
from shared.storage import Storage

DATA = stack.ROOT / "data" / "chem97.csv"
LOGS = stack.RUN_DIR / "bench"
BENCH_PYTHON = stack.ROOT / ".venv-bench" / "bin" / "python"
MLFLOW = stack.ROOT / ".venv-bench" / "bin" / "mlflow"
TARGET = "at_risk"
FEATURES = ["gender", "age", "gcsescore"]
MODELS = {"bench-lr": "linear", "bench-hgb": "hist_gradient_boosting"}
SERVED = "bench-lr"
MLFLOW_WORKERS = 2
POLL_S = 0.2
JOB_TIMEOUT_S = 300.0
STUDENTS = 512  # distinct single-row requests, cycled
FLOOR_CALLS = 300
AGREEMENT_STUDENTS = 200  # answers compared with scikit-learn's, one by one
TOLERANCE = 1e-6

console = Console(stderr=True, width=150)
cli = typer.Typer(add_completion=False, help=__doc__)


@dataclass
class Target:
    """A server under load: where to post and what body each student becomes."""

    name: str
    url: str
    headers: dict[str, str]
    bodies: list[bytes]


def check(answer: httpx.Response) -> dict[str, Any]:
    if answer.is_error:
        raise SystemExit(
            f"bench: {answer.request.method} {answer.request.url}: "
            f"{answer.status_code} {answer.text[:500]}"
        )
    return dict(answer.json())


def labelled_table() -> bytes:
    frame = pd.read_csv(DATA)
    frame[TARGET] = (frame["score"] <= 4).astype(int)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def train_models(api: httpx.Client) -> dict[str, dict[str, Any]]:
    dataset = check(
        api.post(
            "/v1/datasets",
            data={"id_column": "student"},
            files={"file": ("chem97.csv", labelled_table(), "text/csv")},
        )
    )
    jobs = {}
    for model, algorithm in MODELS.items():  # one after the other: no queueing
        job = check(
            api.post(
                "/v1/jobs",
                json={
                    "model": model,
                    "dataset_id": dataset["id"],
                    "target": TARGET,
                    "features": FEATURES,
                    "algorithm": algorithm,
                },
            )
        )
        jobs[model] = wait_for_job(api, job["id"])
    return jobs


def wait_for_job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = check(api.get(f"/v1/jobs/{job_id}"))
        if job["status"] == "deployed":
            return job
        if job["status"] in ("rejected", "failed"):
            raise SystemExit(f"bench: job {job_id} ended {job['status']}: {job}")
        time.sleep(POLL_S)
    raise SystemExit(f"bench: job {job_id} not deployed after {JOB_TIMEOUT_S:.0f} s")


def job_overhead_s(job: dict[str, Any]) -> tuple[float, float, float]:
    """Queued to deployed, the compute the job reports, and the difference."""

    def at(status: str) -> float:
        return datetime.fromisoformat(job["timestamps"][status]).timestamp()

    total = at("deployed") - at("queued")
    compute = sum(
        float((job.get("costs") or {}).get(step, {}).get("wall_s", 0.0))
        for step in ("training", "evaluation")
    )
    return total, compute, total - compute


def fitted_pipeline(
    private: stack.PrivateStack, tenant_id: str, job: dict[str, Any]
) -> Any:
    storage = Storage.from_settings(private.settings)
    record = Registry(storage).get_version(tenant_id, job["model"], job["version"])
    return artifacts.load(storage, record)


def serve_with_mlflow(pipeline: Any, work_dir: Path) -> tuple[subprocess.Popen, str]:
    """The same fitted pipeline, saved with mlflow.sklearn and served by MLflow."""
    if not MLFLOW.exists():
        raise SystemExit("bench: .venv-bench has no MLflow; run 'make bench'")
    pickled = work_dir / "pipeline.pkl"
    pickled.write_bytes(pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL))
    model_dir = work_dir / "mlflow-model"
    save = (
        "import pickle, sys, mlflow.sklearn\n"
        "pipeline = pickle.load(open(sys.argv[1], 'rb'))\n"
        "mlflow.sklearn.save_model(pipeline, sys.argv[2],\n"
        "    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)\n"
    )
    subprocess.run(
        [str(BENCH_PYTHON), "-c", save, str(pickled), str(model_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = stack.free_port()
    process = stack.spawn(
        [
            str(MLFLOW),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "--workers",
            str(MLFLOW_WORKERS),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        LOGS / "mlflow.log",
        {
            **stack.ONE_THREAD,
            "MLFLOW_TRACKING_URI": f"file://{work_dir / 'mlruns'}",
            # MLflow starts uvicorn by name: the one of its own environment.
            "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
    )
    base_url = f"http://127.0.0.1:{port}"

    def pings() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"bench: mlflow models serve exited; see {LOGS}")
        try:
            return httpx.get(f"{base_url}/ping", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    stack.wait_until(pings, stack.START_TIMEOUT_S, "mlflow models serve")
    return process, f"{base_url}/invocations"


def students(count: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(DATA).sample(count, random_state=7)
    return [
        {
            "gender": str(row.gender),
            "age": int(row.age),
            "gcsescore": float(row.gcsescore),
        }
        for row in frame.itertuples()
    ]


def floor_p50_ms(pipeline: Any, instances: list[dict[str, Any]]) -> float:
    """``predict_proba`` on a one-row DataFrame, in this process: no serving at all."""
    frames = [pd.DataFrame([instance]) for instance in instances[:FLOOR_CALLS]]
    timings = []
    for frame in frames:
        started = time.perf_counter()
        pipeline.predict_proba(frame)
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


def batch_rows_per_s(pipeline: Any) -> float:
    """In-process rows per second of ``predict_proba`` on 1,024 rows at once."""
    frame = pd.read_csv(DATA)[FEATURES].head(1024)
    pipeline.predict_proba(frame)
    started = time.perf_counter()
    for _ in range(5):
        pipeline.predict_proba(frame)
    return 5 * len(frame) / (time.perf_counter() - started)


def serving_rss_mib(process: subprocess.Popen | None) -> float:
    """Resident memory of the serving worker and its pool processes."""
    if process is None:
        return float("nan")
    total_kib = 0
    pending = [process.pid]
    while pending:
        pid = pending.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def largest_difference(
    gateway: Target, pipeline: Any, instances: list[dict[str, Any]]
) -> tuple[bool, float]:
    """Largest gap between the gateway's probabilities and scikit-learn's here.

    Each student is asked for alone (the path that is compiled and batched),
    and the answer compared with ``predict_proba`` on a one-row DataFrame.
    Also whether every predicted class was scikit-learn's.
    """
    largest, same_classes = 0.0, True
    with httpx.Client(headers=gateway.headers, timeout=30) as client:
        for instance, body in zip(
            instances[:AGREEMENT_STUDENTS], gateway.bodies, strict=False
        ):
            answer = check(client.post(gateway.url, content=body))
            frame = pd.DataFrame([instance])
            same_classes &= answer["predictions"][0] == pipeline.predict(frame)[0]
            served = answer["probabilities"][0]
            got = np.array([served[str(label)] for label in pipeline.classes_])
            expected = pipeline.predict_proba(frame)[0]
            largest = max(largest, float(np.abs(got - expected).max()))
    return same_classes, largest


def run_rounds(
    targets: list[Target], rounds: int, c1_seconds: float, c32_seconds: float
) -> dict[str, dict[str, list[load.Run]]]:
    results: dict[str, dict[str, list[load.Run]]] = {
        t.name: {"c1": [], "c32": []} for t in targets
    }
    for target in targets:  # warm-up, not measured
        load.drive(target.url, target.bodies, target.headers, 8, 3)
    for number in range(rounds):
        order = targets if number % 2 == 0 else list(reversed(targets))
        for target in order:
            run = load.drive(target.url, target.bodies, target.headers, 1, c1_seconds)
            results[target.name]["c1"].append(run)
        for target in order:
            run = load.drive(target.url, target.bodies, target.headers, 32, c32_seconds)
            results[target.name]["c32"].append(run)
            console.log(
                f"round {number + 1}: {target.name} c1 p50 "
                f"{results[target.name]['c1'][-1].p50_ms:.2f} ms, c32 "
                f"{run.rps:.0f}/s, {run.errors} errors"
            )
    return results


def summary(
    results: dict[str, dict[str, list[load.Run]]],
) -> dict[str, dict[str, Any]]:
    """Per server: medians over the rounds, errors summed."""
    figures = {}
    for name, runs in results.items():
        figures[name] = {
            "p50_ms_c1": statistics.median(run.p50_ms for run in runs["c1"]),
            "p99_ms_c1": statistics.median(run.p99_ms for run in runs["c1"]),
            "rps_c32": statistics.median(run.rps for run in runs["c32"]),
            "p50_ms_c32": statistics.median(run.p50_ms for run in runs["c32"]),
            "p99_ms_c32": statistics.median(run.p99_ms for run in runs["c32"]),
            "errors": sum(run.errors for kind in runs.values() for run in kind),
            "rounds_rps_c32": [round(run.rps, 1) for run in runs["c32"]],
            "rounds_p50_ms_c1": [round(run.p50_ms, 2) for run in runs["c1"]],
        }
    return figures


def show(figures: dict[str, dict[str, Any]], extra: dict[str, Any]) -> None:
    table = Table(
        title="single-row predictions, chem97 logistic regression, wrk on "
        "loopback, same run, alternating rounds (medians over rounds)"
    )
    for column in (
        "server",
        "p50 ms c1",
        "p99 ms c1",
        "req/s c32",
        "p50 ms c32",
        "p99 ms c32",
        "errors",
        "rounds req/s c32",
        "rounds p50 ms c1",
    ):
        table.add_column(column, justify="right")
    for name, f in figures.items():
        table.add_row(
            name,
            f"{f['p50_ms_c1']:.2f}",
            f"{f['p99_ms_c1']:.2f}",
            f"{f['rps_c32']:.0f}",
            f"{f['p50_ms_c32']:.1f}",
            f"{f['p99_ms_c32']:.1f}",
            str(f["errors"]),
            ", ".join(str(r) for r in f["rounds_rps_c32"]),
            ", ".join(str(r) for r in f["rounds_p50_ms_c1"]),
        )
    console.print(table)
    for name, value in extra.items():
        console.print(f"{name}: {value}")


def require_wrk() -> None:
    if not load.available():
        raise SystemExit(
            "bench: wrk is not installed; 'make bench' installs it (apt-get "
            "install wrk), or install it yourself"
        )


@cli.command()
def main(
    rounds: int = typer.Option(3, min=1, help="alternating rounds per server"),
    c1_seconds: float = typer.Option(5.0, min=1.0, help="seconds per c1 run"),
    c32_seconds: float = typer.Option(6.0, min=1.0, help="seconds per c32 run"),
) -> None:
    require_wrk()
    private = stack.start_private("bench", LOGS)
    mlflow_process = None
    work_dir = Path(tempfile.mkdtemp(prefix="eduml-bench-mlflow-"))
    try:
        admin = {"Authorization": f"Bearer {private.settings.admin_api_key}"}
        tenant = check(
            httpx.post(
                f"{private.base_url}/v1/tenants",
                json={"name": "bench"},
                headers=admin,
                timeout=30,
            )
        )
        auth = {"Authorization": f"Bearer {tenant['api_key']}"}
        with httpx.Client(base_url=private.base_url, timeout=60, headers=auth) as api:
            jobs = train_models(api)
        overheads = {model: job_overhead_s(job) for model, job in jobs.items()}
        for model, (total, compute, overhead) in overheads.items():
            console.log(
                f"{model}: queued -> deployed {total:.2f} s, compute "
                f"{compute:.2f} s, overhead {overhead:.2f} s"
            )
        pipeline = fitted_pipeline(private, tenant["id"], jobs[SERVED])
        mlflow_process, mlflow_url = serve_with_mlflow(pipeline, work_dir)
        instances = students(STUDENTS)
        json_headers = {"Content-Type": "application/json"}
        gateway = Target(
            "gateway",
            f"{private.base_url}/v1/models/{SERVED}/predict",
            {**auth, **json_headers},
            [json.dumps({"instances": [i]}).encode() for i in instances],
        )
        mlflow = Target(
            "mlflow",
            mlflow_url,
            json_headers,
            [json.dumps({"dataframe_records": [i]}).encode() for i in instances],
        )
        same_classes, difference = largest_difference(gateway, pipeline, instances)
        floor = floor_p50_ms(pipeline, instances)
        results = run_rounds([gateway, mlflow], rounds, c1_seconds, c32_seconds)
        rss = serving_rss_mib(private.workers.get("serving"))
        in_process_rows = batch_rows_per_s(pipeline)
        with httpx.Client(base_url=private.base_url, timeout=60, headers=auth) as api:
            batch = bench_batch.measure(api, SERVED)
        console.log(f"batch scoring: {batch}")
    finally:
        if mlflow_process is not None:
            stack.stop(mlflow_process)
        private.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    figures = summary(results)
    ours, theirs = figures["gateway"], figures["mlflow"]
    line = {
        "floor_p50_ms": round(floor, 3),
        "gateway_p50_ms_c1": round(ours["p50_ms_c1"], 3),
        "mlflow_p50_ms_c1": round(theirs["p50_ms_c1"], 3),
        "gateway_rps_c32": round(ours["rps_c32"], 1),
        "mlflow_rps_c32": round(theirs["rps_c32"], 1),
        "ratio_rps_c32": round(ours["rps_c32"] / theirs["rps_c32"], 2),
        "gateway_p99_ms_c32": round(ours["p99_ms_c32"], 1),
        "mlflow_p99_ms_c32": round(theirs["p99_ms_c32"], 1),
        "gateway_errors": ours["errors"],
        "mlflow_errors": theirs["errors"],
        "job_overhead_s": round(overheads[SERVED][2], 3),
        "job_overhead_s_hgb": round(overheads["bench-hgb"][2], 3),
        "batch_rows_per_s": batch["batch_rows_per_s"],
        "batch_rows": batch["batch_rows"],
        "batch_seconds": batch["batch_seconds"],
        "in_process_rows_per_s_1024": round(in_process_rows),
        "serving_rss_mib": round(rss, 1),
        "same_classes_as_sklearn": bool(same_classes),
        "max_abs_diff_vs_sklearn": difference,
        "rounds": rounds,
        "cores": os.cpu_count(),
    }
    show(
        figures,
        {
            "job overheads (total, compute, overhead s)": overheads,
            "largest |gateway - scikit-learn| probability, "
            f"{AGREEMENT_STUDENTS} students": difference,
            "same predicted classes as scikit-learn": same_classes,
        },
    )
    print(json.dumps(line))


if __name__ == "__main__":
    cli()

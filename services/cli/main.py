"""The ``eduml`` command: train, follow jobs, list models, predict, watch queues.

Tables and results go to standard output, progress and errors to standard
error. Exit codes: 0 done (a job deployed), 1 a job failed, 2 the request
could not be done (an API error, no gateway, a bad option), 3 a job's
version was rejected, 130 interrupted while following a job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from services.cli import views
from services.cli.client import ApiError, CliError, Gateway
from services.cli.predictions import predict_all, read_instances
from services.cli.progress import follow
from services.cli.watch import show_live

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_INTERVAL_S = 2.0
EXIT_CODES = {"deployed": 0, "failed": 1, "rejected": 3}
EXIT_UNDONE = 2
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="eduml",
    help="Command-line client of the eduml gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Task(StrEnum):
    classification = "classification"
    regression = "regression"


class Algorithm(StrEnum):
    auto = "auto"
    linear = "linear"
    random_forest = "random_forest"
    hist_gradient_boosting = "hist_gradient_boosting"


@dataclass(frozen=True)
class GatewayAddress:
    """Where the gateway is and the key to send it; set by the global options."""

    url: str
    api_key: str | None

    def gateway(self) -> Gateway:
        return Gateway(self.url, self.api_key)


def out() -> Console:
    """Results: text from the API is printed as it is, never read as markup."""
    return Console(markup=False)


def err() -> Console:
    return Console(stderr=True)


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Runs ``command``; our errors become a red line on stderr and exit code 2."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ApiError as error:
            status = f"error {error.status} ({error.code})"
            err().print(f"[red]{status}: {escape(error.message)}", soft_wrap=True)
            raise typer.Exit(EXIT_UNDONE) from error
        except CliError as error:
            err().print(f"[red]{escape(error.message)}", soft_wrap=True)
            raise typer.Exit(EXIT_UNDONE) from error

    return run


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="EDUML_URL", help="Base URL of the gateway.")
    ] = DEFAULT_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="EDUML_API_KEY",
            help="A tenant's API key, sent as a bearer token.",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = GatewayAddress(url, api_key)


# --- training -------------------------------------------------------------------

CsvFile = Annotated[
    Path,
    typer.Argument(
        exists=True, dir_okay=False, readable=True, help="A CSV file with a header."
    ),
]
Features = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated feature columns; all but target and id without it.",
        show_default=False,
    ),
]


@app.command()
@reported
def train(
    ctx: typer.Context,
    file: CsvFile,
    model: Annotated[str, typer.Option(help="Name of the model to train.")],
    target: Annotated[str, typer.Option(help="Column to predict.")],
    features: Features = None,
    id_column: Annotated[
        str | None, typer.Option(help="Student-id column, pseudonymised on upload.")
    ] = None,
    task: Annotated[Task | None, typer.Option(help="Inferred when left out.")] = None,
    algorithm: Annotated[
        Algorithm | None, typer.Option(help="The gateway's default is auto.")
    ] = None,
    group_columns: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns whose groups the evaluation compares.",
            show_default=False,
        ),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the job id and return.")
    ] = False,
) -> None:
    """Upload FILE, train MODEL on it and follow the job to its decision."""
    with ctx.obj.gateway() as gateway:
        dataset = gateway.upload_dataset(file, id_column)
        err().print(
            f"dataset {dataset['id']}: {dataset.get('rows')} rows, "
            f"{len(dataset.get('columns') or [])} columns"
        )
        options = {"features": features, "task": task, "algorithm": algorithm}
        request = job_request(model, dataset["id"], target, group_columns, options)
        queued = gateway.create_job(request)
        if no_wait:
            out().print(
                f"job {queued['id']} {queued['status']}: eduml job {queued['id']}"
            )
            return
        job = follow_or_leave(gateway, queued["id"])

    show_outcome(job)
    raise typer.Exit(EXIT_CODES.get(job["status"], EXIT_UNDONE))


def job_request(
    model: str,
    dataset_id: str,
    target: str,
    group_columns: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The body of POST /v1/jobs; options left out take the gateway's defaults."""
    request: dict[str, Any] = {
        "model": model,
        "dataset_id": dataset_id,
        "target": target,
    }
    if options["features"]:
        request["features"] = split_columns(options["features"])
    if group_columns:
        request["group_columns"] = split_columns(group_columns)
    for name in ("task", "algorithm"):
        if options[name] is not None:
            request[name] = options[name].value
    return request


def split_columns(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def follow_or_leave(gateway: Gateway, job_id: str) -> dict[str, Any]:
    """The job's final record; on Ctrl-C, how to find it again, and exit 130."""
    try:
        return follow(gateway, job_id, err())
    except KeyboardInterrupt:
        err().print(
            f"stopped following job {job_id}; it carries on: eduml job {job_id}"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def show_outcome(job: dict[str, Any]) -> None:
    console = out()
    if job.get("metrics"):
        console.print(views.metrics_table(job["metrics"], views.label(job)))
    if job.get("decision"):
        console.print(views.decision_text(job["decision"]), soft_wrap=True)
    line = Text(f"job {job['id']}: ")
    line.append_text(views.status_text(job["status"]))
    line.append(f" — {outcome_note(job)}")
    console.print(line, soft_wrap=True)


def outcome_note(job: dict[str, Any]) -> str:
    status = job["status"]
    if status == "deployed":
        return f"{views.label(job)} is the champion"
    if status == "rejected":
        champion = (job.get("decision") or {}).get("champion_version")
        keeps = f"v{champion} keeps serving" if champion else "no version serves yet"
        return f"{views.label(job)} was not promoted; {keeps}"
    return job.get("error") or "no error recorded"


# --- jobs -----------------------------------------------------------------------

Watch = Annotated[bool, typer.Option("--watch", help="Refresh live until Ctrl-C.")]
Interval = Annotated[
    float, typer.Option(min=0.1, help="Seconds between refreshes with --watch.")
]
Iterations = Annotated[int | None, typer.Option(min=1, hidden=True)]


@app.command()
@reported
def jobs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Newest jobs shown.")] = 20,
    watch: Watch = False,
    interval: Interval = DEFAULT_INTERVAL_S,
    iterations: Iterations = None,
) -> None:
    """The most recent jobs, newest first."""
    with ctx.obj.gateway() as gateway:
        if not watch:
            out().print(views.jobs_table(gateway.jobs(limit)))
            return
        fetch = functools.partial(gateway.jobs, limit)
        show_live(fetch, views.jobs_table, out(), interval, iterations)


@app.command()
@reported
def job(ctx: typer.Context, job_id: Annotated[str, typer.Argument()]) -> None:
    """One job: its request, state, times, metrics and decision."""
    with ctx.obj.gateway() as gateway:
        out().print(views.job_view(gateway.job(job_id)))


# --- models ---------------------------------------------------------------------


@app.command()
@reported
def models(ctx: typer.Context) -> None:
    """Every model with its champion and number of versions."""
    with ctx.obj.gateway() as gateway:
        out().print(views.models_table(gateway.models()))


@app.command()
@reported
def model(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """A model's versions with their metrics; the champion is marked."""
    with ctx.obj.gateway() as gateway:
        out().print(views.model_view(gateway.model(name)))


@app.command()
@reported
def predict(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model whose champion predicts.")],
    file: CsvFile,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="CSV to write; stdout without it."
        ),
    ] = None,
) -> None:
    """Predict every row of FILE with MODEL's champion."""
    instances = read_instances(file)
    with ctx.obj.gateway() as gateway:
        predictions = predict_all(gateway, model, instances, err())

    versions = ", ".join(f"v{number}" for number in sorted(predictions.versions))
    if len(predictions.versions) > 1:
        err().print(f"[yellow]the champion changed while predicting: {versions}")
    if output is None:
        typer.echo(predictions.frame.to_csv(index=False), nl=False)
        return
    try:
        predictions.frame.to_csv(output, index=False)
    except OSError as error:
        raise CliError(f"cannot write the predictions to {output}: {error}") from error
    err().print(
        f"{len(instances)} predictions of {model} {versions} written to {output}"
    )


# --- queues ---------------------------------------------------------------------


@app.command()
@reported
def queues(
    ctx: typer.Context,
    watch: Watch = False,
    interval: Interval = DEFAULT_INTERVAL_S,
    iterations: Iterations = None,
) -> None:
    """Depth and consumers of each queue, and the live workers."""
    with ctx.obj.gateway() as gateway:
        if not watch:
            out().print(views.queues_view(gateway.queues()))
            return
        show_live(gateway.queues, views.queues_view, out(), interval, iterations)

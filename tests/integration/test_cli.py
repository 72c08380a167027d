"""The ``eduml`` command-line client against the real gateway and workers.

Each test runs the typer app in-process with CliRunner, pointed at the test
gateway through EDUML_URL and EDUML_API_KEY, in a tenant of its own.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from services.cli import views
from services.cli.main import app
from shared.settings import Settings
from tests.conftest import (
    DATA,
    TenantAccess,
    client_with_key,
    create_tenant,
    free_port,
)
from tests.integration.flow import train, upload_ok

pytestmark = pytest.mark.integration

EXAM = DATA / "exam.csv"
EXAM_JOB = dict(target="normexam", features=["standLRT", "sex"], algorithm="linear")
TRAIN_EXAM = "--target normexam --features standLRT,sex --algorithm linear".split()
QUEUES = ("training", "evaluation", "serving")


@dataclass(frozen=True)
class Cli:
    """Runs ``eduml`` against ``url`` with ``api_key`` given by the environment."""

    url: str
    api_key: str

    def __call__(self, *args: str, **env: str) -> Result:
        environment = {"EDUML_URL": self.url, "EDUML_API_KEY": self.api_key, **env}
        return CliRunner().invoke(app, list(args), env=environment)


@dataclass(frozen=True)
class Trained:
    """A tenant whose models, trained on data/exam.csv, have a champion each."""

    cli: Cli
    model: str  # regression of normexam
    classifier: str  # passed: normexam above 0, with probabilities


@pytest.fixture
def tenant(new_tenant) -> TenantAccess:
    return new_tenant()


@pytest.fixture
def tenant_cli(gateway_url, tenant) -> Cli:
    return Cli(gateway_url, tenant.api_key)


@pytest.fixture(scope="module")
def trained(gateway_url: str, settings: Settings) -> Iterator[Trained]:
    """Models for the tests that only read: trained once, through the HTTP API."""
    with client_with_key(gateway_url, settings.admin_api_key) as admin:
        access = create_tenant(gateway_url, admin, "test cli")
    exam = pd.read_csv(EXAM).assign(passed=lambda frame: frame["normexam"] > 0)
    data = exam.to_csv(index=False).encode()
    dataset = upload_ok(access.client, data, id_column="student")
    jobs = [
        train(access.client, model="exam-cli", dataset_id=dataset["id"], **EXAM_JOB),
        train(
            access.client,
            model="pass-cli",
            dataset_id=dataset["id"],
            **{**EXAM_JOB, "target": "passed"},
        ),
    ]
    assert [job["status"] for job in jobs] == ["deployed", "deployed"], jobs
    yield Trained(Cli(gateway_url, access.api_key), "exam-cli", "pass-cli")
    access.client.close()


def test_train_follows_the_job_and_exits_0_when_deployed(tenant_cli, model_name):
    result = tenant_cli("train", str(EXAM), "--model", model_name, *TRAIN_EXAM)

    assert result.exit_code == 0, result.output
    assert "deployed" in result.stdout
    assert f"{model_name} v1 is the champion" in result.stdout
    assert "r2" in result.stdout
    assert "promoted" in result.stdout


def test_train_exits_3_when_the_new_version_is_rejected(tenant, tenant_cli, model_name):
    dataset = upload_ok(tenant.client, EXAM.read_bytes())
    first = train(tenant.client, model=model_name, dataset_id=dataset["id"], **EXAM_JOB)
    assert first["status"] == "deployed", first

    result = tenant_cli("train", str(EXAM), "--model", model_name, *TRAIN_EXAM)

    assert result.exit_code == 3, result.output
    assert "rejected" in result.stdout
    assert "v1 keeps serving" in result.stdout


def test_train_no_wait_prints_the_job_that_job_then_shows(tenant_cli, model_name):
    result = tenant_cli(
        "train", str(EXAM), "--model", model_name, *TRAIN_EXAM, "--no-wait"
    )
    job_id = re.search(r"job (\w+) queued", result.stdout).group(1)
    shown = tenant_cli("job", job_id)

    assert result.exit_code == 0, result.output
    assert shown.exit_code == 0, shown.output
    assert model_name in shown.stdout
    assert "normexam" in shown.stdout


def test_models_lists_the_model_and_model_marks_the_champion(trained):
    listed = trained.cli("models")
    shown = trained.cli("model", trained.model)

    assert listed.exit_code == 0, listed.output
    assert trained.model in listed.stdout
    assert shown.exit_code == 0, shown.output
    assert "v1 ★" in shown.stdout
    assert "r2" in shown.stdout


def test_jobs_lists_the_deployed_job(trained):
    result = trained.cli("jobs", "--limit", "5")

    assert result.exit_code == 0, result.output
    assert trained.model in result.stdout
    assert "deployed" in result.stdout


def test_predict_writes_a_prediction_per_row_in_the_file_order(trained, tmp_path):
    output = tmp_path / "predictions.csv"

    result = trained.cli("predict", trained.model, str(EXAM), "--output", str(output))

    assert result.exit_code == 0, result.output
    written = pd.read_csv(output)
    exam = pd.read_csv(EXAM)
    assert list(written.columns) == ["id", "prediction"]
    assert len(written) == len(exam) > 500  # more than one batch
    assert written["id"].tolist() == exam["student"].tolist()
    assert written["prediction"].notna().all()


def test_predict_adds_a_probability_column_per_class(trained, tmp_path):
    rows = tmp_path / "students.csv"
    rows.write_text("student,standLRT,sex\ns1,2.5,F\ns2,-2.5,M\n")

    result = trained.cli("predict", trained.classifier, str(rows))

    assert result.exit_code == 0, result.output
    printed = pd.read_csv(io.StringIO(result.stdout))
    assert list(printed.columns) == [
        "id",
        "prediction",
        "probability_False",
        "probability_True",
    ]
    assert printed["id"].tolist() == ["s1", "s2"]
    assert printed["prediction"].tolist() == [True, False]
    assert (
        printed["probability_True"].iloc[0] > 0.5 > printed["probability_True"].iloc[1]
    )


def test_predict_sends_missing_values_as_null(trained, tmp_path):
    rows = tmp_path / "students.csv"
    rows.write_text("standLRT,sex\n0.6,F\n,M\n0.1,\nNaN,M\n")

    result = trained.cli("predict", trained.model, str(rows))

    assert result.exit_code == 0, result.output
    printed = pd.read_csv(io.StringIO(result.stdout))
    assert list(printed.columns) == ["prediction"]
    assert len(printed) == 4


def test_predict_reads_a_semicolon_file_with_decimal_commas(trained, tmp_path):
    commas = tmp_path / "commas.csv"
    semicolons = tmp_path / "semicolons.csv"
    commas.write_text("student,standLRT,sex\ns1,2.5,F\ns2,-1.25,M\n")
    semicolons.write_text("student;standLRT;sex\ns1;2,5;F\ns2;-1,25;M\n")

    expected = trained.cli("predict", trained.model, str(commas))
    result = trained.cli("predict", trained.model, str(semicolons))

    assert result.exit_code == 0, result.output
    assert result.stdout == expected.stdout
    assert len(pd.read_csv(io.StringIO(result.stdout))) == 2


def test_predict_refuses_an_infinite_number_naming_its_line(trained, tmp_path):
    rows = tmp_path / "students.csv"
    rows.write_text("standLRT,sex\n0.6,F\ninf,M\n")

    result = trained.cli("predict", trained.model, str(rows))

    assert result.exit_code == 2
    assert "'inf' on line 3" in result.stderr


def test_predict_error_names_the_rows_of_the_file(trained, tmp_path):
    rows = tmp_path / "students.csv"
    rows.write_text("standLRT\n0.6\n0.1\n")

    result = trained.cli("predict", trained.model, str(rows))

    assert result.exit_code == 2
    assert "error 422" in result.stderr
    assert "rows 1–2 of the file" in result.stderr
    assert "lacks columns ['sex']" in result.stderr


def test_queues_prints_the_three_queues_and_their_workers(tenant_cli):
    result = tenant_cli("queues")

    assert result.exit_code == 0, result.output
    for queue in QUEUES:
        assert queue in result.stdout
        assert f"test-{queue}" in result.stdout


def test_queues_view_shows_extra_fields_and_dashes_where_absent():
    report = {
        "queues": [
            {
                "name": "training",
                "depth": 3,
                "consumers": [],
                "oldest_age_s": 125.25,
                "status": "stalled",
            },
            {"name": "serving", "depth": 0, "consumers": ["serving@a"]},
        ],
        "workers": [],
    }
    console = Console(width=120, record=True)

    console.print(views.queues_view(report))

    text = console.export_text()
    lines = text.splitlines()
    training = next(line for line in lines if "training" in line)
    serving = next(line for line in lines if "serving@a" in line)
    assert "oldest age s" in text
    assert "125.2" in training and "stalled" in training and "none" in training
    assert serving.count("—") == 2
    assert any("no workers" in line for line in lines)


@pytest.mark.parametrize("command", ["queues", "jobs"])
def test_watch_refreshes_live_then_stops_after_the_iterations(tenant_cli, command):
    started = time.monotonic()

    result = tenant_cli(
        command, "--watch", "--interval", "0.1", "--iterations", "3", TTY_COMPATIBLE="1"
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.count("refreshed ") >= 3  # the first show and two refreshes
    assert "\x1b[" in result.stdout  # redrawn in place, as on a terminal
    assert time.monotonic() - started < 30


def test_watch_into_a_pipe_prints_each_refresh_as_it_comes(tenant_cli):
    result = tenant_cli("jobs", "--watch", "--interval", "0.1", "--iterations", "3")

    assert result.exit_code == 0, result.output
    assert result.stdout.count("refreshed ") == 3  # printed one after another
    assert "\x1b[" not in result.stdout


def test_api_error_exits_2_with_the_status_and_the_message(tenant_cli):
    result = tenant_cli("model", "no-such-model")

    assert result.exit_code == 2
    assert "error 404 (not_found): model 'no-such-model' not found" in result.stderr


def test_wrong_api_key_exits_2_with_401(gateway_url):
    result = Cli(gateway_url, "eduml_not-a-key")("models")

    assert result.exit_code == 2
    assert "error 401" in result.stderr


def test_unreachable_gateway_gives_the_friendly_message():
    url = f"http://127.0.0.1:{free_port()}"

    result = Cli(url, "eduml_unused")("queues")

    assert result.exit_code == 2
    assert (
        f"cannot reach the gateway at {url} — is the stack up? (make up)"
        in result.stderr
    )

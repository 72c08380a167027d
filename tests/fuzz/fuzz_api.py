"""Property-based fuzzing of the gateway's OpenAPI schema with schemathesis.

Run by ``make fuzz`` only: the file name does not match ``test_*.py``, so the
default ``make test`` run does not collect it. It uses the fixtures of
tests/conftest.py, so it fuzzes the same real stack the integration tests
start (gateway, workers, Redis, SeaweedFS), with the schema it serves at
/openapi.json.

Every operation gets up to EXAMPLES_PER_OPERATION generated requests (50,
or FUZZ_EXAMPLES), valid and invalid ones, plus schemathesis' coverage
cases. Data routes are sent with a tenant's API key, /v1/tenants routes
with the admin key. So that the requests reach past "not found", about half
of the cases are pointed at real things made beforehand: a dataset, a
trained champion and its job, the fuzzer's tenant, the dataset's columns.
Their uploads start with a real CSV and take codec names and delimiters
from a list, and their prediction instances get the model's feature names,
holding the generated values or edge values (numbers out of range, "NaN").

A 5xx answer never stops the run: each one is recorded with a curl command
that reproduces it, the totals are printed at the end, and the run fails if
there was any. An answer below 500 is checked against the schema where one
is declared; a violation fails that operation.
"""

from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from services.gateway.app import app as gateway_app
from tests.conftest import client_with_key, create_tenant
from tests.integration.flow import train, upload_ok

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "50"))
REQUEST_TIMEOUT_S = 60.0
SHOWN_FAILURES = 20  # curl commands printed at the end, at most
FEATURES = ["hours", "absences", "track"]
COLUMNS = ["student_id", *FEATURES, "passed"]
# Values for the upload's options whose domains a schema cannot state: real
# codec names, text and not, and the delimiters with their spellings.
CODECS = [
    "utf-8",
    "utf-8-sig",
    "cp1252",
    "latin-1",
    "utf-16",
    "utf-32",
    "ascii",
    "idna",
    "punycode",
    "unicode_escape",
    "rot13",
    "hex",
    "zlib",
    "undefined",
]
# Values a JSON schema allows but a model cannot take, or a JSON encoder
# cannot write.
EDGE_VALUES = [
    10**400,
    -(10**400),
    2**64,
    2**63,
    1e308,
    -0.0,
    "NaN",
    "-inf",
    "1e999",
    " 7 ",
    "",
    True,
    "\x00",
]
DELIMITERS = [",", ";", "\t", "|", "tab", "\\t", ":", ""]
SEED_CSV = "student_id,hours,absences,track,passed\n" + "\n".join(
    f"S{i:02d},{i % 7},{i % 5},{'ab'[i % 2]},{int(i % 7 > 2)}" for i in range(40)
)


@dataclass
class Tally:
    """What the fuzzer sent, what came back, and which answers were 5xx."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    reproductions: list[str] = field(default_factory=list)
    started: float | None = None

    def record(self, label: str, status: int, reproduce: Callable[[], str]) -> None:
        self.started = self.started or time.monotonic()
        self.statuses.setdefault(label, Counter())[status] += 1
        if status >= 500 and len(self.reproductions) < SHOWN_FAILURES:
            self.reproductions.append(f"{status} {label}\n    {reproduce()}")

    @property
    def requests(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(
            n
            for counts in self.statuses.values()
            for status, n in counts.items()
            if status >= 500
        )

    def report(self) -> list[str]:
        seconds = time.monotonic() - self.started if self.started else 0.0
        lines = [
            f"{label:45} " + ", ".join(f"{n} x {s}" for s, n in sorted(counts.items()))
            for label, counts in sorted(self.statuses.items())
        ]
        lines.append(
            f"fuzz: {self.requests} requests to {len(self.statuses)} operations, "
            f"{self.server_errors} 5xx responses, {seconds:.0f} s"
        )
        return lines + [f"5xx: {line}" for line in self.reproductions]


TALLY = Tally()


@dataclass(frozen=True)
class Known:
    """Real resources of the fuzzing tenant, for requests that reach past a 404."""

    dataset_id: str
    model: str
    job_id: str
    tenant_id: str
    tenant_key: str
    admin_key: str


@pytest.fixture(scope="session")
def known(gateway_url: str, settings: Any) -> Iterator[Known]:
    """A tenant of the fuzzer's own, with a dataset and a deployed model."""
    with client_with_key(gateway_url, settings.admin_api_key) as admin:
        tenant = create_tenant(gateway_url, admin, "fuzz")
    with tenant.client as api:
        dataset = upload_ok(api, SEED_CSV.encode())
        job = train(
            api,
            model="fuzz-model",
            dataset_id=dataset["id"],
            target="passed",
            features=FEATURES,
            algorithm="linear",
        )
        assert job["status"] == "deployed", job
        served = api.get("/openapi.json").json()
    assert served == schema.raw_schema, "the gateway serves another schema"
    yield Known(
        dataset["id"],
        "fuzz-model",
        job["id"],
        tenant.id,
        tenant.api_key,
        settings.admin_api_key,
    )


@pytest.fixture(scope="session", autouse=True)
def fuzz_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(TALLY.report()))
    if TALLY.server_errors:
        pytest.fail(f"{TALLY.server_errors} of {TALLY.requests} responses were 5xx")


# The schema of this code's gateway; the fixture ``known`` checks that the
# running gateway serves the same at /openapi.json. (Loading it from a fixture
# with schemathesis.pytest.from_fixture fails under pytest 9.2, whose nodes
# have no ``_nodeid`` any more.)
schema = schemathesis.openapi.from_dict(gateway_app.openapi())
schema.config.generation.update(database="none")


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_no_server_errors(case: Any, gateway_url: str, known: Known) -> None:
    point_at_known_resources(case, known)
    headers = {"Authorization": f"Bearer {key_for(case, known)}"}

    response = case.call(
        base_url=gateway_url, headers=headers, timeout=REQUEST_TIMEOUT_S
    )

    label = f"{case.operation.method.upper()} {case.operation.path}"
    TALLY.record(
        label,
        response.status_code,
        lambda: case.as_curl_command(headers=headers, base_url=gateway_url),
    )
    if response.status_code < 500:
        case.validate_response(
            response, checks=[response_schema_conformance, content_type_conformance]
        )


def key_for(case: Any, known: Known) -> str:
    if case.operation.path.startswith("/v1/tenants"):
        return known.admin_key
    return known.tenant_key


def point_at_known_resources(case: Any, known: Known) -> None:
    """Half of the cases (chosen by a hash, so a case replays the same) use real ids.

    Key ids are never pointed at a real one: revoking the fuzzer's own key
    would turn every later request into a 401.
    """
    if _hash(repr((case.path_parameters, case.body))) % 2:
        return
    parameters = case.path_parameters or {}
    for name, value in (
        ("model", known.model),
        ("dataset_id", known.dataset_id),
        ("job_id", known.job_id),
        ("tenant", known.tenant_id),
        ("version", 1),
    ):
        if name in parameters:
            parameters[name] = value
    body = case.body
    if not isinstance(body, dict):
        return
    if "dataset_id" in body:
        body["dataset_id"] = known.dataset_id
    for name in ("target", "id_column"):
        if isinstance(body.get(name), str):
            body[name] = real_column(body[name])
    if isinstance(body.get("features"), list):
        body["features"] = [real_column(name) for name in body["features"]]
    if isinstance(body.get("instances"), list):
        body["instances"] = [with_features(item) for item in body["instances"]]
    if "file" in body:
        body["file"] = seed_with(body["file"])
        for name, choices in (("encoding", CODECS), ("delimiter", DELIMITERS)):
            if body.get(name) is not None or _hash(repr(body)) % 2:
                body[name] = choices[_hash(repr(body.get(name))) % len(choices)]


def seed_with(generated: Any) -> bytes:
    """The fuzzer's CSV with the generated content as its last lines."""
    if isinstance(generated, str):
        generated = generated.encode("utf-8", "surrogatepass")
    if not isinstance(generated, bytes):
        generated = repr(generated).encode()
    return SEED_CSV.encode() + b"\n" + generated


def real_column(name: Any) -> str:
    """A column of the fuzzer's dataset, the same one for the same name."""
    return COLUMNS[_hash(repr(name)) % len(COLUMNS)]


def with_features(instance: Any) -> Any:
    """The instance with the model's feature names, holding its generated values."""
    if not isinstance(instance, dict) or not instance:
        return instance
    values = [edge_or(value) for value in instance.values()]
    return {name: values[at % len(values)] for at, name in enumerate(FEATURES)}


def edge_or(value: Any) -> Any:
    """A third of the values become an edge value: a number out of range, ..."""
    choice = _hash(repr(value)) % (3 * len(EDGE_VALUES))
    return EDGE_VALUES[choice] if choice < len(EDGE_VALUES) else value


def _hash(text: str) -> int:
    return zlib.crc32(text.encode())

"""The dashboard at /ui: over plain HTTP, and in a real headless Chromium.

One tenant of this module's own trains a classifier twice (group column
``sex``) and a regressor once; the pages are then read with httpx and
driven with selenium. Each browser test saves a screenshot of its page in
test-artifacts/screenshots/. The browser tests are skipped, saying why, only
when Chromium and its driver are missing and cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
from markupsafe import escape

from services.evaluation.curves import RESIDUALS_MAX_POINTS
from services.gateway.ui import plots
from shared.settings import Settings
from tests.conftest import ARTIFACTS, DATA, TenantAccess, client_with_key, create_tenant
from tests.integration.flow import (
    FINISHED,
    JOB_TIMEOUT_S,
    start_job,
    train,
    upload_ok,
)

pytestmark = pytest.mark.integration

SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_TIMEOUT_S = 900
WINDOW = (1400, 900)
FEATURES = ["standLRT", "schavg", "vr", "intake"]
PAGES = ["/ui", "/ui/jobs", "/ui/models", "/ui/queues"]
# Enough jobs that the evaluation queue stays busy for seconds after the
# burst is sent, on a fast machine too (a linear job trains in about 0.1 s and
# is evaluated in about 0.2 s, one at a time on the test workers).
BURST_JOBS = 24


@dataclass(frozen=True)
class Trained:
    """A tenant with a classifier (two versions) and a regressor (one)."""

    tenant: TenantAccess
    classifier: str
    regressor: str
    classifier_jobs: list[dict[str, Any]]
    regressor_job: dict[str, Any]
    scores_dataset: str


@pytest.fixture(scope="module")
def admin(gateway_url: str, settings: Settings) -> Iterator[httpx.Client]:
    with client_with_key(gateway_url, settings.admin_api_key) as client:
        yield client


@pytest.fixture(scope="module")
def trained(gateway_url: str, admin: httpx.Client) -> Iterator[Trained]:
    tenant = create_tenant(gateway_url, admin, "test dashboard")
    api = tenant.client
    frame = pd.read_csv(DATA / "exam.csv")
    frame["at_risk"] = (frame["normexam"] < -0.5).astype(int)
    at_risk = upload_ok(
        api,
        frame.drop(columns=["normexam"]).to_csv(index=False).encode(),
        id_column="student",
    )
    scores = upload_ok(api, (DATA / "exam.csv").read_bytes(), id_column="student")
    suffix = uuid.uuid4().hex[:8]
    classifier, regressor = f"at-risk-{suffix}", f"exam-score-{suffix}"
    common = dict(group_columns=["sex"], algorithm="linear")

    first = train(
        api,
        model=classifier,
        dataset_id=at_risk["id"],
        target="at_risk",
        features=FEATURES,
        **common,
    )
    second = train(
        api,
        model=classifier,
        dataset_id=at_risk["id"],
        target="at_risk",
        features=["standLRT"],
        **common,
    )
    regression = train(
        api,
        model=regressor,
        dataset_id=scores["id"],
        target="normexam",
        features=FEATURES,
        **common,
    )

    assert [first["status"], regression["status"]] == ["deployed", "deployed"], (
        first,
        regression,
    )
    assert second["status"] in {"deployed", "rejected"}, second
    yield Trained(
        tenant, classifier, regressor, [first, second], regression, scores["id"]
    )
    api.close()


# --- over plain HTTP --------------------------------------------------------------


def test_every_page_answers_html_for_a_bearer_key(gateway_url, trained):
    api = trained.tenant.client
    first, second = trained.classifier_jobs

    pages = {path: api.get(path) for path in PAGES}
    job = api.get(f"/ui/jobs/{first['id']}")
    classifier = api.get(f"/ui/models/{trained.classifier}")
    earlier = api.get(f"/ui/models/{trained.classifier}?version=2")
    regressor = api.get(f"/ui/models/{trained.regressor}")

    for answer in [*pages.values(), job, classifier, earlier, regressor]:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-store"
    assert first["id"] in pages["/ui"].text and second["id"] in pages["/ui/jobs"].text
    assert trained.classifier in pages["/ui/models"].text
    assert trained.regressor in pages["/ui/models"].text
    assert 'data-plot="queue-depth"' in pages["/ui/queues"].text
    assert 'data-queue="training"' in pages["/ui/queues"].text
    assert 'data-plot="timeline"' in job.text and 'data-state="deployed"' in job.text
    for plot in ("metric-history", "calibration", "roc", "groups-sex", "importance"):
        assert f'data-plot="{plot}"' in classifier.text, plot
    assert "Version 2" in earlier.text and 'data-plot="roc"' in earlier.text
    assert 'data-plot="groups-sex"' in regressor.text and "mean error" in regressor.text
    assert 'data-plot="residuals"' in regressor.text
    assert 'data-plot="calibration"' not in regressor.text
    assert 'data-plot="roc"' not in regressor.text
    assert 'data-plot="residuals"' not in classifier.text


def test_cards_carry_the_curves_the_pages_draw(trained):
    api = trained.tenant.client
    json_card = {"accept": "application/json"}

    second = api.get(
        f"/v1/models/{trained.classifier}/versions/2/card", headers=json_card
    )
    regressor = api.get(f"/v1/models/{trained.regressor}/versions/1/card")
    regressor_json = api.get(
        f"/v1/models/{trained.regressor}/versions/1/card", headers=json_card
    ).json()

    roc = second.json()["roc"]
    assert roc["champion_version"] == 1 and roc["champion_auc"] is not None
    assert roc["auc"] == pytest.approx(second.json()["metrics"]["roc_auc"], abs=1e-6)
    assert regressor_json["roc"] is None
    assert regressor_json["residuals"]["rows"] == regressor_json["data"]["test_rows"]
    assert "Errors (actual minus estimate) on" in regressor.text
    assert "Half of the errors lay between" in regressor.text


def test_a_page_without_a_key_sends_the_browser_to_the_login_form(gateway_url):
    with httpx.Client(base_url=gateway_url) as anonymous:
        answer = anonymous.get("/ui/models?x=1")
        form = anonymous.get("/ui/login")
        stylesheet = anonymous.get("/ui/static/ui.css")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=" + quote(
        "/ui/models?x=1", safe=""
    )
    assert form.status_code == 200 and 'name="api_key"' in form.text
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")


def test_logging_in_sets_an_httponly_strict_cookie_that_opens_the_pages(
    gateway_url, trained
):
    with httpx.Client(base_url=gateway_url) as browser:
        login = browser.post(
            "/ui/login", data={"api_key": trained.tenant.api_key, "next": "/ui/models"}
        )
        models = browser.get("/ui/models")

    cookie = login.headers["set-cookie"].lower()
    assert login.status_code == 303 and login.headers["location"] == "/ui/models"
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert models.status_code == 200 and trained.classifier in models.text


def test_login_refuses_a_wrong_key_and_the_admin_key(gateway_url, settings):
    with httpx.Client(base_url=gateway_url) as browser:
        wrong = browser.post("/ui/login", data={"api_key": "eduml_" + "x" * 43})
        admin_key = browser.post("/ui/login", data={"api_key": settings.admin_api_key})
        empty = browser.post("/ui/login", data={"api_key": ""})

    assert wrong.status_code == 401 and "not recognised or revoked" in wrong.text
    assert admin_key.status_code == 401 and "only manages tenants" in admin_key.text
    assert empty.status_code == 401 and "enter the API key" in empty.text
    assert "set-cookie" not in wrong.headers and "set-cookie" not in admin_key.headers


def test_login_never_sends_the_browser_off_the_dashboard(gateway_url, trained):
    key = trained.tenant.api_key
    with httpx.Client(base_url=gateway_url) as browser:
        targets = [
            browser.post("/ui/login", data={"api_key": key, "next": target})
            for target in ("https://example.org/", "//example.org/ui", "/v1/models")
        ]

    assert [answer.headers["location"] for answer in targets] == ["/ui", "/ui", "/ui"]


def test_a_revoked_key_no_longer_opens_the_dashboard(gateway_url, admin, trained):
    issued = admin.post(f"/v1/tenants/{trained.tenant.id}/keys").json()
    with httpx.Client(base_url=gateway_url) as browser:
        browser.post("/ui/login", data={"api_key": issued["api_key"]})
        before = browser.get("/ui")
        admin.delete(f"/v1/tenants/{trained.tenant.id}/keys/{issued['key_id']}")
        after = browser.get("/ui")

    assert before.status_code == 200
    assert after.status_code == 303 and after.headers["location"].startswith(
        "/ui/login"
    )


def test_another_tenants_jobs_and_models_are_not_found(gateway_url, admin, trained):
    other = create_tenant(gateway_url, admin, "test dashboard other")
    job_id = trained.classifier_jobs[0]["id"]

    job = other.client.get(f"/ui/jobs/{job_id}")
    model = other.client.get(f"/ui/models/{trained.classifier}")
    listing = other.client.get("/ui/jobs")
    other.client.close()

    assert job.status_code == 404 and escape(f"job {job_id!r} not found") in job.text
    assert model.status_code == 404
    assert listing.status_code == 200 and job_id not in listing.text


def test_unknown_pages_answer_404_pages(trained):
    api = trained.tenant.client

    answers = [
        api.get(path)
        for path in (
            "/ui/jobs/no-such-job",
            "/ui/jobs/not%20an%20id",
            f"/ui/models/{trained.classifier}?version=99",
            "/ui/models/no-such-model",
        )
    ]

    assert [answer.status_code for answer in answers] == [404, 404, 404, 404]
    assert all(
        answer.headers["content-type"].startswith("text/html") for answer in answers
    )


@pytest.mark.parametrize(
    "path, words",
    [
        ("/ui/models/{model}?version=abc", "version must be a version number"),
        ("/ui/models/{model}?version=0", "version must be a version number"),
        ("/ui/queues?minutes=7", "minutes must be one of 5, 15, 60; received"),
        ("/ui/queues?minutes=abc", "minutes must be one of 5, 15, 60; received"),
    ],
)
def test_bad_page_parameters_answer_422_pages_naming_them(trained, path, words):
    answer = trained.tenant.client.get(path.format(model=trained.classifier))

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert escape(words) in answer.text


def test_a_deleted_version_is_shown_deleted_not_pending(trained):
    api = trained.tenant.client
    model = f"deleted-{uuid.uuid4().hex[:8]}"
    job = dict(
        model=model,
        algorithm="linear",
        dataset_id=trained.scores_dataset,
        target="normexam",
        features=FEATURES,
    )
    train(api, **job)
    second = train(api, **job)
    champion = api.get(f"/v1/models/{model}").json()["champion"]
    spare = 2 if champion == 1 else 1
    assert second["status"] in FINISHED
    assert api.delete(f"/v1/models/{model}/versions/{spare}").status_code == 200

    page = api.get(f"/ui/models/{model}?version={spare}")

    assert page.status_code == 200
    assert 'status-rejected">deleted</span>' in page.text
    assert "This version was deleted" in page.text
    assert "no evaluation report yet" not in page.text


def test_plot_text_is_escaped_and_bars_go_below_zero():
    svg = plots.bar_chart(
        "groups-x",
        ["<script>", "b"],
        [plots.BarSeries("mean error", [-0.5, 0.25])],
        title="t",
        x_label="x & y",
        y_label="error",
    )

    assert "<script>" not in svg and "&lt;script&gt;" in svg and "x &amp; y" in svg
    assert svg.count('class="bar"') == 2
    assert plots.nice_ticks(0, 0.84) == [0, 0.25, 0.5, 0.75, 1.0]
    assert plots.nice_ticks(-0.1, 0.34) == [-0.2, 0.0, 0.2, 0.4]


# --- in a real browser --------------------------------------------------------------


def chromium_ready() -> str | None:
    """None when Chromium and its driver are there (installed if need be), else why not."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return (
            "chromium is missing and cannot be installed here (needs apt-get as root)"
        )
    command = "apt-get update -qq && apt-get install -y -qq chromium chromium-driver"
    try:
        subprocess.run(
            ["sh", "-c", command],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except (subprocess.SubprocessError, OSError) as error:
        return f"chromium is missing and `{command}` failed: {error}"
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return f"`{command}` ran but {CHROMIUM} or {CHROMEDRIVER} is still missing"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A real headless Chromium driven by chromedriver, with a fresh profile."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed"
    )
    from selenium.webdriver.chrome.service import Service

    missing = chromium_ready()
    if missing:
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="eduml-chromium-")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def dashboard(browser, gateway_url, trained) -> Any:
    """The browser, logged in through the form with the tenant's key."""
    from selenium.webdriver.common.by import By

    browser.get(f"{gateway_url}/ui/jobs")
    assert "/ui/login" in browser.current_url
    shoot(browser, "login")
    browser.find_element(By.ID, "api_key").send_keys(trained.tenant.api_key)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(lambda: browser.current_url.endswith("/ui/jobs"))
    return browser


def wait_for(condition: Any, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the browser did not get there in time"
        time.sleep(0.1)


def open_page(driver: Any, url: str) -> None:
    driver.set_window_size(*WINDOW)
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete")


def shoot(driver: Any, name: str) -> None:
    """A PNG of the whole page, as tall as its content."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW[0], max(WINDOW[1], int(height) + 140))
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000


def drawn(driver: Any, plot: str, shape: str) -> list[Any]:
    """The shapes of a plot that the browser laid out with a size (a flat line has
    no height)."""
    from selenium.webdriver.common.by import By

    svg = driver.find_element(By.CSS_SELECTOR, f'svg[data-plot="{plot}"]')
    assert svg.is_displayed() and svg.size["width"] > 200 and svg.size["height"] > 80
    shapes = svg.find_elements(By.CSS_SELECTOR, shape)
    return [s for s in shapes if s.size["width"] > 0 or s.size["height"] > 0]


def texts(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, selector)]


def test_browser_logs_in_and_lists_the_tenants_jobs(dashboard, trained):
    jobs = [*trained.classifier_jobs, trained.regressor_job]

    listed = texts(dashboard, "#jobs tbody tr td:first-child")
    shoot(dashboard, "jobs")

    assert dashboard.title == "Jobs · eduml"
    assert {job["id"] for job in jobs} <= set(listed)
    assert "log out" in dashboard.page_source


def test_browser_overview_shows_counts_recent_jobs_and_queues(
    dashboard, gateway_url, trained
):
    open_page(dashboard, f"{gateway_url}/ui")

    heading = texts(dashboard, "h1")
    recent = texts(dashboard, "#recent-jobs tbody tr td:first-child")
    queues = texts(dashboard, "#queues tbody tr td:first-child")
    shoot(dashboard, "overview")

    assert heading == ["Overview"]
    assert trained.regressor_job["id"] in recent
    assert queues == ["training", "evaluation", "serving", "batch"]


def test_browser_job_page_draws_the_state_timeline(dashboard, gateway_url, trained):
    from selenium.webdriver.common.by import By

    job = trained.classifier_jobs[0]
    open_page(dashboard, f"{gateway_url}/ui/jobs/{job['id']}")

    bars = drawn(dashboard, "timeline", "rect.bar")
    states = [bar.get_attribute("data-state") for bar in bars]
    shoot(dashboard, "job")

    assert dashboard.find_element(By.ID, "job-id").text == job["id"]
    assert states == ["queued", "training", "evaluating", "deployed"]
    assert bars[1].size["width"] > 5  # training takes a visible share of the time
    assert len(texts(dashboard, "#steps tbody tr")) == 4


def test_browser_models_page_lists_both_models_with_their_champion(
    dashboard, gateway_url, trained
):
    open_page(dashboard, f"{gateway_url}/ui/models")

    rows = texts(dashboard, "#models tbody tr")
    shoot(dashboard, "models")

    assert any(
        trained.classifier in row and "roc_auc" in row and "★ v" in row for row in rows
    ), rows
    assert any(trained.regressor in row and "r2" in row for row in rows), rows


def test_browser_classifier_page_draws_history_calibration_roc_groups_importance(
    dashboard, gateway_url, trained
):
    from selenium.webdriver.common.by import By

    open_page(dashboard, f"{gateway_url}/ui/models/{trained.classifier}")

    history = drawn(dashboard, "metric-history", "circle.point")
    calibration = drawn(dashboard, "calibration", "circle.point")
    roc = drawn(dashboard, "roc", "polyline.line")
    groups = drawn(dashboard, "groups-sex", "rect.bar")
    importance = drawn(dashboard, "importance", "rect.bar")
    versions = texts(dashboard, "#versions tbody tr td:first-child")
    shoot(dashboard, "model-classifier")

    assert dashboard.find_element(By.ID, "model-name").text == trained.classifier
    assert [v.split()[0] for v in versions] == ["v2", "v1"]
    assert len(history) >= 3  # two versions and the champion marked again
    assert len(calibration) >= 5
    assert roc[0].get_attribute("data-series").startswith("v")
    assert roc[-1].get_attribute("data-series") == "trivial baseline, AUC 0.500"
    assert len(groups) == 6  # F and M, by recall, false positive rate, selection rate
    assert len(importance) == len(FEATURES)
    assert "★" in versions[-1] or "★" in versions[0]


def test_browser_regressor_page_draws_errors_by_group_and_residuals(
    dashboard, gateway_url, trained
):
    from selenium.webdriver.common.by import By

    open_page(dashboard, f"{gateway_url}/ui/models/{trained.regressor}")

    groups = drawn(dashboard, "groups-sex", "rect.bar")
    history = drawn(dashboard, "metric-history", "circle.point")
    calibration = dashboard.find_elements(
        By.CSS_SELECTOR, 'svg[data-plot="calibration"]'
    )
    legend = texts(dashboard, 'svg[data-plot="groups-sex"] text.legend')
    residuals = drawn(dashboard, "residuals", "circle.point")
    zero = drawn(dashboard, "residuals", "polyline.line")
    shoot(dashboard, "model-regressor")

    assert len(groups) == 4  # F and M, by mean absolute error and mean error
    assert legend == ["mae", "mean error"]
    assert len(history) >= 1 and calibration == []
    assert len(residuals) == RESIDUALS_MAX_POINTS  # a sample of the held-out rows
    assert [line.get_attribute("data-series") for line in zero] == ["no error"]
    assert len(drawn(dashboard, "importance", "rect.bar")) == len(FEATURES)


def test_browser_queues_page_draws_depth_over_time(dashboard, gateway_url, trained):
    api = trained.tenant.client
    url = f"{gateway_url}/ui/queues?minutes=5"
    # Samples are taken at most once a second: let the last one age, so the
    # page opened right after the burst samples the queue while it waits.
    time.sleep(1.1)
    burst = [
        start_job(
            api,
            model=f"burst-{uuid.uuid4().hex[:8]}",
            algorithm="linear",
            dataset_id=trained.scores_dataset,
            target="normexam",
            features=FEATURES,
        )
        for _ in range(BURST_JOBS)
    ]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not all(
        api.get(f"/v1/jobs/{job['id']}").json()["status"] in FINISHED for job in burst
    ):
        assert time.monotonic() < deadline, f"the burst {burst} did not drain in time"
        open_page(dashboard, url)  # every rendering adds a sample, a second apart
        time.sleep(1.0)
    open_page(dashboard, url)

    lines = drawn(dashboard, "queue-depth", "polyline.line")
    points = drawn(dashboard, "queue-depth", "circle.point")
    depths = [
        float(point.get_attribute("textContent").rsplit(", ", 1)[1]) for point in points
    ]
    queues = texts(dashboard, "#queues tbody tr td:first-child")
    workers = texts(dashboard, "#workers tbody tr td:first-child")
    shoot(dashboard, "queues")

    assert queues == ["training", "evaluation", "serving", "batch"]
    assert sorted(line.get_attribute("data-series") for line in lines) == [
        "batch",
        "evaluation",
        "serving",
        "training",
    ]
    assert len(points) >= 4 * 3  # four queues, sampled at least three times
    assert max(depths) >= 1  # the burst was seen waiting
    assert len(workers) == 3

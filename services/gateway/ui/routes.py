"""The dashboard's pages under ``/ui``: server-rendered HTML with SVG plots.

Every page but the login form needs a tenant's API key (see ``auth``) and
shows only that tenant's jobs and models; the queues are everyone's, as in
``/v1/queues``. The pages are left out of the OpenAPI schema: they are for
people, not for clients of the API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.gateway.deps import clients
from services.gateway.ui import auth, plots, samples, views
from shared.clients import Clients, get_clients
from shared.errors import InvalidInput, PlatformError, Unauthorized

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
NO_STORE = {"Cache-Control": "no-store"}
REFRESH_S = {"overview": 10, "jobs": 10, "running_job": 3, "queues": 5}

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(
    when=views.when, duration=views.duration, score=views.score, number=plots.number
)


@asynccontextmanager
async def sampling(_: FastAPI) -> AsyncIterator[None]:
    """Sample queue depths in the background while the gateway runs."""
    sampler = samples.Sampler(get_clients().connection)
    sampler.start()
    try:
        yield
    finally:
        sampler.stop()


router = APIRouter(prefix="/ui", include_in_schema=False, lifespan=sampling)

Build = Callable[[str], dict[str, Any]]


def page(
    request: Request, template: str, build: Build, refresh_s: int | None = None
) -> Response:
    """The page for the viewer's tenant, a login form, or an error page."""
    owner = auth.viewer(request)
    if owner is None:
        return RedirectResponse(login_url(request), status_code=303)
    try:
        context = build(owner)
    except PlatformError as error:
        return error_page(request, owner, error)
    context.setdefault("refresh_s", refresh_s)
    return render(request, template, owner, context)


def render(
    request: Request,
    template: str,
    owner: str | None,
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    settings = get_clients().settings
    common = {
        "owner": owner,
        "auth_on": auth.auth_on(settings),
        "path": request.url.path,
    }
    return templates.TemplateResponse(
        request,
        template,
        {**common, **context},
        status_code=status_code,
        headers=NO_STORE,
    )


def error_page(request: Request, owner: str, error: PlatformError) -> Response:
    context = {
        "title": f"{error.status_code}",
        "message": error.message,
        "code": error.code,
    }
    return render(request, "error.html", owner, context, error.status_code)


def login_url(request: Request) -> str:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/ui/login?next={quote(wanted, safe='')}"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard page, never another site."""
    unsafe = ("//", "\\", "..")
    if not target or not target.startswith("/ui") or any(p in target for p in unsafe):
        return "/ui"
    return target


# --- pages --------------------------------------------------------------------


@router.get("")
def overview(request: Request, c: Clients = Depends(clients)) -> Response:
    return page(
        request,
        "overview.html",
        lambda owner: views.overview(c, owner),
        REFRESH_S["overview"],
    )


@router.get("/jobs")
def jobs(request: Request, c: Clients = Depends(clients)) -> Response:
    return page(
        request, "jobs.html", lambda owner: views.jobs(c, owner), REFRESH_S["jobs"]
    )


@router.get("/jobs/{job_id}")
def job(job_id: str, request: Request, c: Clients = Depends(clients)) -> Response:
    def build(owner: str) -> dict[str, Any]:
        context = views.job(c, owner, job_id)
        context["refresh_s"] = None if context["finished"] else REFRESH_S["running_job"]
        return context

    return page(request, "job.html", build)


@router.get("/models")
def models(request: Request, c: Clients = Depends(clients)) -> Response:
    return page(request, "models.html", lambda owner: views.models(c, owner))


@router.get("/models/{model}")
def model(
    model: str,
    request: Request,
    version: str | None = Query(None),
    c: Clients = Depends(clients),
) -> Response:
    def build(owner: str) -> dict[str, Any]:
        return views.model(c, owner, model, _version_asked(version))

    return page(request, "model.html", build)


@router.get("/queues")
def queues(
    request: Request,
    minutes: str | None = Query(None),
    c: Clients = Depends(clients),
) -> Response:
    return page(
        request,
        "queues.html",
        lambda _: views.queues(c, _window_asked(minutes)),
        REFRESH_S["queues"],
    )


# Query parameters are read here rather than by FastAPI, so that a bad one gets
# the dashboard's error page instead of the API's JSON.


def _version_asked(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(
            f"version must be a version number (1 or more); received {text[:40]!r}"
        )
    return int(text)


def _window_asked(text: str | None) -> int:
    if text is None:
        return views.WINDOWS_MIN[1]
    allowed = [str(minutes) for minutes in views.WINDOWS_MIN]
    if text not in allowed:
        raise InvalidInput(
            f"minutes must be one of {', '.join(allowed)}; received {text[:40]!r}"
        )
    return int(text)


@router.get("/static/ui.css")
def stylesheet() -> FileResponse:
    return FileResponse(
        HERE / "static" / "ui.css",
        media_type="text/css",
        headers={"Cache-Control": "max-age=300"},
    )


# --- login --------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    target = safe_next(next)
    if not auth.auth_on(get_clients().settings):
        return RedirectResponse(target, status_code=303)
    return render(
        request,
        "login.html",
        None,
        {"title": "Log in", "next": target, "message": None},
    )


@router.post("/login")
def login(
    request: Request,
    api_key: str = Form("", max_length=400),
    next: str = Form("/ui", max_length=2000),
) -> Response:
    target = safe_next(next)
    if not auth.auth_on(get_clients().settings):
        return RedirectResponse(target, status_code=303)
    try:
        owner = auth.tenant_or_refusal(api_key.strip())
    except Unauthorized as error:
        log.info("gateway: dashboard login refused: %s", error.message)
        context = {"title": "Log in", "next": target, "message": error.message}
        return render(request, "login.html", None, context, status_code=401)
    log.info("gateway: dashboard login for tenant %s", owner)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        auth.COOKIE,
        api_key.strip(),
        max_age=auth.COOKIE_MAX_AGE_S,
        path=auth.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=auth.secure_cookie(request),
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(
        auth.COOKIE, path=auth.COOKIE_PATH, httponly=True, samesite="strict"
    )
    return response

"""The operators' dashboard, served by the gateway at ``/ui``.

Server-rendered pages (Jinja2) with plots drawn as inline SVG on the server:
jobs with their state timeline, models with their versions and evaluation
plots, queues with their depth over time. ``routes.router`` is the whole of
it; the gateway includes it.
"""

from services.gateway.ui.routes import router

__all__ = ["router"]

"""Live tables: fetched again every interval until Ctrl-C.

A refresh that fails keeps the last table on screen with the error in its
caption and tries again at the next interval; only a failure of the first
fetch ends the command.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TypeVar

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from services.cli.client import CliError

Data = TypeVar("Data")


def show_live(
    fetch: Callable[[], Data],
    view: Callable[[Data, Text], RenderableType],
    console: Console,
    interval_s: float,
    iterations: int | None = None,
) -> None:
    """Show ``view(fetch(), caption)``, refreshed; ``iterations`` bounds the shows.

    On a terminal the table is redrawn in place; into a pipe or a file (a log,
    ``| tee``), each refresh is printed after the last, as it comes.
    """
    data = fetch()
    try:
        first = view(data, caption(interval_s))
        if not console.is_terminal:
            console.print(first)
            for shown in _refreshed(fetch, view, data, interval_s, iterations):
                console.print(shown)
            return
        with Live(first, console=console, auto_refresh=False) as live:
            for shown in _refreshed(fetch, view, data, interval_s, iterations):
                live.update(shown, refresh=True)
    except KeyboardInterrupt:
        pass


def _refreshed(
    fetch: Callable[[], Data],
    view: Callable[[Data, Text], RenderableType],
    data: Data,
    interval_s: float,
    iterations: int | None,
) -> Iterator[RenderableType]:
    """Each refresh's view; a failed fetch keeps the last data, saying why."""
    for _ in refreshes(iterations):
        time.sleep(interval_s)
        try:
            data, note = fetch(), caption(interval_s)
        except CliError as error:
            failed = f"refresh failed: {error.message}; retrying"
            note = Text(failed, style="red")
        yield view(data, note)


def refreshes(iterations: int | None) -> Iterable[int]:
    """One item per refresh after the first show; endless without a bound."""
    return itertools.count() if iterations is None else range(iterations - 1)


def caption(interval_s: float) -> Text:
    moment = datetime.now().strftime("%H:%M:%S")
    return Text(f"refreshed {moment} · every {interval_s:g} s · Ctrl-C to stop")

"""Plots drawn on the server as inline SVG: no script and no chart library.

Every function returns markup ready for a template, with each text escaped.
The ``<svg>`` carries ``data-plot`` with the plot's name; a data point is a
``<circle class="point">`` (a marker of a dashed reference line is a
``circle.reference``), a line a ``<polyline class="line">`` and a bar a
``<rect class="bar">``, so a browser test can count what was drawn. Axes
carry ticks and a label each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 560
HEIGHT = 300
MARGIN_LEFT = 58
MARGIN_RIGHT = 16
MARGIN_TOP = 30
MARGIN_BOTTOM = 48
FONT_PX = 11
CHAR_WIDTH_PX = 6.4  # rough width of one character at FONT_PX, for label room
NARROW_CHAR_PX = 5.8  # the same for lower-case words, before a label is clipped
TICKS = 5
BAR_ROW_PX = 24
LINE_PX = 13  # one more line of text under an axis
MAX_VALUE_LABELS = 16  # bars past this many get no value written above them
LEGEND_ROW_PX = 15
ROC_MARKERS_MAX = 30  # a ROC curve with more points is drawn as a bare line
SCATTER_RADIUS_PX = 2.5

# Okabe and Ito's palette: told apart by people with colour-blindness.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
GRID = "#e3e6ea"
AXIS = "#6b7280"
INK = "#1f2933"

Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """A named line: ``points`` are (x, y); a dashed one is a reference line.

    A series that is not ``joined`` is a scatter: its markers only.
    """

    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    markers: bool = True
    joined: bool = True


@dataclass(frozen=True)
class BarSeries:
    """One value per category; None leaves the category without this bar."""

    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Segment:
    """A stretch of time on one row of a timeline, in seconds from its start."""

    row: str
    start_s: float
    end_s: float
    label: str
    color: str
    ongoing: bool = False


def number(value: float) -> str:
    """A short, readable number: 0.842, 12.5, 1,204."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times 10^k."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def padded_range(
    values: Sequence[float], floor: float | None = None
) -> tuple[float, float]:
    """A range around ``values`` with some room, starting at ``floor`` if given."""
    low, high = min(values), max(values)
    if floor is not None:
        low = min(low, floor)
    span = high - low or abs(high) or 1.0
    return (low if floor is not None else low - span * 0.1, high + span * 0.1)


class _Frame:
    """The plot area inside an SVG and the scales that map data onto it."""

    def __init__(
        self,
        width: int,
        height: int,
        left: int,
        bottom: int,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
    ) -> None:
        self.width, self.height = width, height
        self.left, self.right = left, width - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, height - bottom
        self.x_low, self.x_high = x_range
        self.y_low, self.y_high = y_range

    def x(self, value: float) -> float:
        span = (self.x_high - self.x_low) or 1.0
        return self.left + (value - self.x_low) / span * (self.right - self.left)

    def y(self, value: float) -> float:
        span = (self.y_high - self.y_low) or 1.0
        return self.bottom - (value - self.y_low) / span * (self.bottom - self.top)


def _open(name: str, width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="plot" data-plot="{escape(name)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="{FONT_PX}" '
        f'font-family="system-ui, sans-serif">',
        f"<title>{escape(title)}</title>",
    ]


def _text(
    x: float, y: float, content: str, anchor: str = "middle", **extra: str
) -> str:
    attributes = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{escape(value)}"'
        for key, value in extra.items()
    )
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{INK}"'
        f"{attributes}>{escape(content)}</text>"
    )


def _y_axis(
    frame: _Frame, ticks: Sequence[float], label: str, fmt: Format
) -> list[str]:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(_text(frame.left - 6, y + 4, fmt(tick), anchor="end"))
    middle = (frame.top + frame.bottom) / 2
    parts.append(
        _text(
            14,
            middle,
            label,
            transform=f"rotate(-90 14 {middle:.1f})",
            class_="axis-label",
        )
    )
    parts.append(
        f'<line x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" '
        f'y2="{frame.bottom}" stroke="{AXIS}"/>'
    )
    return parts


def _x_axis(frame: _Frame, ticks: Sequence[tuple[float, str]], label: str) -> list[str]:
    parts = [
        f'<line x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" '
        f'y2="{frame.bottom}" stroke="{AXIS}"/>'
    ]
    for value, text in ticks:
        x = frame.x(value)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.bottom}" '
            f'y2="{frame.bottom + 4}" stroke="{AXIS}"/>'
        )
        parts.append(_text(x, frame.bottom + 16, text))
    parts.append(
        _text(
            (frame.left + frame.right) / 2, frame.height - 8, label, class_="axis-label"
        )
    )
    return parts


# A legend entry: the series' name, its colour, and "line", "dashed" or "dot".
Key = tuple[str, str, str]


def _legend(frame: _Frame, keys: Sequence[Key]) -> list[str]:
    """One swatch and name per series, in a row above the plot area."""
    parts, x = [], float(frame.left)
    for name, color, style in keys:
        parts.append(_swatch(x, 14, color, style))
        parts.append(_text(x + 22, 18, name, anchor="start", class_="legend"))
        x += 34 + len(name) * CHAR_WIDTH_PX
    return parts


def _legend_inside(frame: _Frame, keys: Sequence[Key]) -> list[str]:
    """The same entries stacked in a box at the bottom right of the plot area."""
    width = 30 + max(len(name) for name, _, _ in keys) * CHAR_WIDTH_PX
    height = LEGEND_ROW_PX * len(keys) + 8
    left, top = frame.right - width - 6, frame.bottom - height - 6
    parts = [
        f'<rect class="legend-box" x="{left:.1f}" y="{top:.1f}" '
        f'width="{width:.1f}" height="{height}" fill="#ffffff" '
        f'fill-opacity="0.9" stroke="{GRID}"/>'
    ]
    for row, (name, color, style) in enumerate(keys):
        y = top + 4 + LEGEND_ROW_PX * row + LEGEND_ROW_PX / 2
        parts.append(_swatch(left + 6, y, color, style))
        parts.append(_text(left + 28, y + 4, name, anchor="start", class_="legend"))
    return parts


def _swatch(x: float, y: float, color: str, style: str) -> str:
    if style == "dot":
        return f'<circle cx="{x + 9:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>'
    dash = ' stroke-dasharray="5 3"' if style == "dashed" else ""
    return (
        f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
        f'stroke="{color}" stroke-width="3"{dash}/>'
    )


def _key(line: Series, color: str) -> Key:
    style = "dashed" if line.dashed else "line" if line.joined else "dot"
    return (line.name, color, style)


def line_chart(
    name: str,
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_format: Format = number,
    legend_inside: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Lines with a marker at each point; the first series gets the first colour.

    The legend (drawn for more than one series, or a reference line) goes
    above the plot area, or in its bottom right corner with ``legend_inside``.
    """
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    if not xs:
        return empty(name, title, "no data yet", width, height)
    y_ticks = nice_ticks(*(y_range or padded_range(ys)))
    x_low, x_high = x_range or (min(xs), max(xs))
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    frame = _Frame(
        width,
        height,
        MARGIN_LEFT,
        MARGIN_BOTTOM,
        (x_low, x_high),
        (y_ticks[0], y_ticks[-1]),
    )
    if x_ticks is None:
        x_ticks = [
            (t, number(t)) for t in nice_ticks(x_low, x_high) if x_low <= t <= x_high
        ]

    parts = _open(name, width, height, title)
    parts += _y_axis(frame, y_ticks, y_label, y_format)
    parts += _x_axis(frame, x_ticks, x_label)
    legend = []
    for index, line in enumerate(series):
        color = PALETTE[index % len(PALETTE)] if not line.dashed else AXIS
        legend.append(_key(line, color))
        parts += _line(frame, line, color)
    if len(series) > 1 or series[0].dashed:
        parts += (_legend_inside if legend_inside else _legend)(frame, legend)
    parts.append("</svg>")
    return Markup("".join(parts))


def _line(frame: _Frame, line: Series, color: str) -> list[str]:
    parts = []
    if line.joined:
        coordinates = " ".join(
            f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in line.points
        )
        dash = ' stroke-dasharray="5 3"' if line.dashed else ""
        parts.append(
            f'<polyline class="line" data-series="{escape(line.name)}" fill="none" '
            f'stroke="{color}" stroke-width="2"{dash} points="{coordinates}"/>'
        )
    # A reference line's markers are not data points: another class, smaller.
    # A scatter's are small and see-through, so crowded points still show.
    kind, radius, extra = ("point", 3.5, "")
    if line.dashed:
        kind, radius = "reference", 2.5
    elif not line.joined:
        radius, extra = SCATTER_RADIUS_PX, ' fill-opacity="0.55"'
    if line.markers:
        for x, y in line.points:
            parts.append(
                f'<circle class="{kind}" cx="{frame.x(x):.1f}" '
                f'cy="{frame.y(y):.1f}" r="{radius}" fill="{color}"{extra}><title>'
                f"{escape(line.name)}: {number(x)}, {number(y)}</title></circle>"
            )
    return parts


def reliability_chart(
    name: str, points: Sequence[tuple[float, float]], *, title: str
) -> Markup:
    """Observed rate against mean predicted probability, with the diagonal."""
    return line_chart(
        name,
        [
            Series("model", points),
            Series(
                "perfectly calibrated", [(0, 0), (1, 1)], dashed=True, markers=False
            ),
        ],
        title=title,
        x_label="mean predicted probability",
        y_label="observed rate",
        x_range=(0, 1),
        y_range=(0, 1),
        height=300,
        width=320,
    )


@dataclass(frozen=True)
class RocCurve:
    """One version's ROC points, (false-positive rate, true-positive rate)."""

    name: str
    points: Sequence[tuple[float, float]]
    auc: float | None


def roc_chart(
    name: str,
    curves: Sequence[RocCurve],
    *,
    title: str,
    baseline_auc: float | None = 0.5,
) -> Markup:
    """True- against false-positive rate of each curve, with the diagonal.

    The diagonal is what a model that gives every student the same
    probability draws: the trivial baseline. Each name in the legend carries
    its AUC; a long curve is drawn without a marker at each point.
    """
    series = [
        Series(
            _with_auc(curve.name, curve.auc),
            curve.points,
            markers=len(curve.points) <= ROC_MARKERS_MAX,
        )
        for curve in curves
    ]
    series.append(
        Series(
            _with_auc("trivial baseline", baseline_auc),
            [(0, 0), (1, 1)],
            dashed=True,
            markers=False,
        )
    )
    return line_chart(
        name,
        series,
        title=title,
        x_label="false-positive rate",
        y_label="true-positive rate (recall)",
        x_range=(0, 1),
        y_range=(0, 1),
        legend_inside=True,
        width=380,
        height=340,
    )


def _with_auc(name: str, auc: float | None) -> str:
    return name if auc is None else f"{name}, AUC {auc:.3f}"


def residual_chart(
    name: str,
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    label: str,
) -> Markup:
    """Residual against predicted value, one dot per student, and the zero line.

    The y axis is centred on zero, so over- and under-estimates look alike.
    """
    if not points:
        return empty(name, title, "no residuals", WIDTH, HEIGHT)
    xs = [x for x, _ in points]
    reach = max(abs(y) for _, y in points) or 1.0
    x_range = padded_range(xs)
    return line_chart(
        name,
        [
            Series(label, points, joined=False),
            Series(
                "no error",
                [(x_range[0], 0), (x_range[1], 0)],
                dashed=True,
                markers=False,
            ),
        ],
        title=title,
        x_label="predicted value",
        y_label="residual: actual − predicted",
        x_range=x_range,
        y_range=(-reach * 1.1, reach * 1.1),
    )


def bar_chart(
    name: str,
    categories: Sequence[str],
    series: Sequence[BarSeries],
    *,
    title: str,
    x_label: str,
    y_label: str,
    notes: Sequence[str] | None = None,
    y_range: tuple[float, float] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Vertical bars grouped by category, one colour per series; negatives go down."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not values:
        return empty(name, title, "no data", width, height)
    y_ticks = nice_ticks(*(y_range or padded_range(values, floor=0.0)))
    slot = (width - MARGIN_LEFT - MARGIN_RIGHT) / len(categories)
    names = [_wrap(category, slot) for category in categories]
    extra_lines = max(len(lines) for lines in names) - 1 + (1 if notes else 0)
    frame = _Frame(
        width,
        height,
        MARGIN_LEFT,
        MARGIN_BOTTOM + LINE_PX * extra_lines,
        (0, len(categories)),
        (y_ticks[0], y_ticks[-1]),
    )
    bar = min(slot * 0.8 / len(series), 48)
    labelled = len(categories) * len(series) <= MAX_VALUE_LABELS

    parts = _open(name, width, height, title)
    parts += _y_axis(frame, y_ticks, y_label, number)
    parts += _x_axis(frame, [], x_label)
    zero = frame.y(max(min(0.0, y_ticks[-1]), y_ticks[0]))
    for i, category in enumerate(categories):
        start = frame.left + slot * i + (slot - bar * len(series)) / 2
        for j, bars in enumerate(series):
            value = bars.values[i]
            if value is None:
                continue
            parts.append(
                _bar(
                    start + bar * j,
                    bar,
                    zero,
                    frame.y(value),
                    value,
                    PALETTE[j % len(PALETTE)],
                    f"{category} {bars.name}",
                    labelled,
                )
            )
        center = frame.left + slot * (i + 0.5)
        for line, text in enumerate(names[i]):
            parts.append(_text(center, frame.bottom + 16 + LINE_PX * line, text))
        if notes:
            parts.append(
                _text(
                    center,
                    frame.bottom + 16 + LINE_PX * len(names[i]),
                    notes[i],
                    class_="note",
                    fill_opacity="0.7",
                )
            )
    parts.append(
        f'<line x1="{frame.left}" x2="{frame.right}" y1="{zero:.1f}" '
        f'y2="{zero:.1f}" stroke="{AXIS}"/>'
    )
    if len(series) > 1:
        parts += _legend(
            frame,
            [(s.name, PALETTE[j % len(PALETTE)], "line") for j, s in enumerate(series)],
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _bar(
    x: float,
    width: float,
    zero: float,
    top: float,
    value: float,
    color: str,
    tip: str,
    labelled: bool,
) -> str:
    y, height = min(zero, top), max(abs(zero - top), 1.0)
    label = ""
    if labelled:
        above = y - 4 if value >= 0 else y + height + 12
        label = _text(x + width / 2, above, number(value), class_="value")
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
        f'height="{height:.1f}" fill="{color}"><title>{escape(tip)}: '
        f"{number(value)}</title></rect>{label}"
    )


def hbar_chart(
    name: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_label: str,
    errors: Sequence[float] | None = None,
    width: int = WIDTH,
) -> Markup:
    """Horizontal bars, one row per label (long names fit), with optional whiskers."""
    if not labels:
        return empty(name, title, "no data", width, HEIGHT)
    spread = [v + e for v, e in zip(values, errors or [0] * len(values), strict=True)]
    low = [v - e for v, e in zip(values, errors or [0] * len(values), strict=True)]
    x_ticks = nice_ticks(*padded_range(spread + low, floor=0.0))
    left = int(min(max(len(label) for label in labels) * CHAR_WIDTH_PX + 16, width / 3))
    height = MARGIN_TOP + BAR_ROW_PX * len(labels) + MARGIN_BOTTOM
    frame = _Frame(
        width, height, left, MARGIN_BOTTOM, (x_ticks[0], x_ticks[-1]), (0, len(labels))
    )

    parts = _open(name, width, height, title)
    parts += _x_axis(frame, [(t, number(t)) for t in x_ticks], x_label)
    zero = frame.x(max(min(0.0, x_ticks[-1]), x_ticks[0]))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        top = frame.top + BAR_ROW_PX * i + 4
        x, size = min(zero, frame.x(value)), max(abs(frame.x(value) - zero), 1.0)
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{size:.1f}" '
            f'height="{BAR_ROW_PX - 8}" fill="{PALETTE[0]}"><title>'
            f"{escape(label)}: {number(value)}</title></rect>"
        )
        if errors:
            parts.append(_whisker(frame, value, errors[i], top + (BAR_ROW_PX - 8) / 2))
        parts.append(
            _text(
                frame.left - 6, top + BAR_ROW_PX / 2, _clip(label, left), anchor="end"
            )
        )
    parts.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{frame.top}" '
        f'y2="{frame.bottom}" stroke="{AXIS}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _whisker(frame: _Frame, value: float, error: float, y: float) -> str:
    low, high = frame.x(value - error), frame.x(value + error)
    return (
        f'<path class="whisker" d="M{low:.1f},{y - 4:.1f}v8M{low:.1f},{y:.1f}'
        f'H{high:.1f}M{high:.1f},{y - 4:.1f}v8" stroke="{INK}" fill="none"/>'
    )


def timeline(
    name: str,
    rows: Sequence[str],
    segments: Sequence[Segment],
    *,
    title: str,
    width: int = WIDTH + 200,
) -> Markup:
    """One row per state; each stretch of time a bar, with its duration beside it."""
    if not segments:
        return empty(name, title, "no timestamps yet", width, HEIGHT)
    end = max(segment.end_s for segment in segments)
    x_ticks = nice_ticks(0, end or 1.0)
    left = int(max(len(row) for row in rows) * CHAR_WIDTH_PX + 20)
    height = MARGIN_TOP + BAR_ROW_PX * len(rows) + MARGIN_BOTTOM
    frame = _Frame(width, height, left, MARGIN_BOTTOM, (0, x_ticks[-1]), (0, len(rows)))

    parts = _open(name, width, height, title)
    for tick in x_ticks:
        x = frame.x(tick)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" '
            f'y2="{frame.bottom}" stroke="{GRID}"/>'
        )
    parts += _x_axis(frame, [(t, number(t)) for t in x_ticks], "seconds since queued")
    for i, row in enumerate(rows):
        parts.append(
            _text(frame.left - 8, frame.top + BAR_ROW_PX * i + 16, row, anchor="end")
        )
    for segment in segments:
        parts.append(_segment(frame, rows.index(segment.row), segment))
    parts.append("</svg>")
    return Markup("".join(parts))


def _segment(frame: _Frame, row: int, segment: Segment) -> str:
    top = frame.top + BAR_ROW_PX * row + 4
    x = frame.x(segment.start_s)
    size = max(frame.x(segment.end_s) - x, 3.0)
    pattern = ' fill-opacity="0.45" stroke-dasharray="4 2"' if segment.ongoing else ""
    bar = (
        f'<rect class="bar" data-state="{escape(segment.row)}" x="{x:.1f}" '
        f'y="{top:.1f}" width="{size:.1f}" height="{BAR_ROW_PX - 8}" rx="3" '
        f'fill="{segment.color}" stroke="{segment.color}"{pattern}><title>'
        f"{escape(segment.row)}: {escape(segment.label)}</title></rect>"
    )
    anchor, label_x = "start", x + size + 6
    if label_x + len(segment.label) * CHAR_WIDTH_PX > frame.right:
        anchor, label_x = "end", x - 6
    return bar + _text(label_x, top + 12, segment.label, anchor=anchor, class_="value")


def empty(name: str, title: str, message: str, width: int, height: int) -> Markup:
    """A frame saying why there is nothing to draw."""
    parts = _open(name, width, min(height, 120), title)
    parts.append(
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{min(height, 120) - 1}"'
        f' fill="none" stroke="{GRID}"/>'
    )
    parts.append(_text(width / 2, min(height, 120) / 2 + 4, message, class_="empty"))
    parts.append("</svg>")
    return Markup("".join(parts))


def _wrap(text: str, room: float) -> list[str]:
    """A label on one line, or on two split at a space when one is too narrow."""
    most = max(int(room / NARROW_CHAR_PX), 4)
    if len(text) <= most or " " not in text:
        return [_clip(text, room)]
    spaces = [i for i, char in enumerate(text) if char == " "]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return [_clip(text[:cut], room), _clip(text[cut + 1 :], room)]


def _clip(text: str, room: float) -> str:
    most = max(int(room / NARROW_CHAR_PX), 4)
    return text if len(text) <= most else text[: most - 1] + "…"

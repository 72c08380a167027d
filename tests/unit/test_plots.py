"""The dashboard's ROC and residual charts: valid SVG, every point in the frame."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from services.evaluation import curves
from services.gateway.ui import plots, views

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ElementTree.Element:
    """The chart as XML: it fails to parse if the markup is not well formed."""
    root = ElementTree.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    return root


def plotted(root: ElementTree.Element) -> list[tuple[float, float]]:
    """Every data point and every vertex of a line, in SVG coordinates."""
    points = [
        (float(circle.get("cx", "")), float(circle.get("cy", "")))
        for circle in root.iter(f"{SVG}circle")
        if circle.get("class") == "point"
    ]
    for line in root.iter(f"{SVG}polyline"):
        for pair in line.get("points", "").split():
            x, y = pair.split(",")
            points.append((float(x), float(y)))
    return points


def assert_inside_frame(root: ElementTree.Element) -> None:
    width, height = float(root.get("width", "")), float(root.get("height", ""))
    left, right = plots.MARGIN_LEFT, width - plots.MARGIN_RIGHT
    top, bottom = plots.MARGIN_TOP, height - plots.MARGIN_BOTTOM
    points = plotted(root)

    assert points
    for x, y in points:
        assert left - 0.05 <= x <= right + 0.05, (x, left, right)
        assert top - 0.05 <= y <= bottom + 0.05, (y, top, bottom)


def roc_points(rows: int = 2_000) -> list[tuple[float, float]]:
    generator = np.random.default_rng(1)
    actual = (generator.random(rows) < 0.4).astype(int)
    scores = generator.random(rows) * 0.6 + actual * 0.4
    curve = curves.roc(actual, scores)
    assert curve is not None
    return [(p["fpr"], p["tpr"]) for p in curve["points"]]


# --- plots ----------------------------------------------------------------------


def test_roc_chart_draws_each_curve_and_the_diagonal_inside_the_frame():
    chart = plots.roc_chart(
        "roc",
        [
            plots.RocCurve("v3", roc_points(), 0.8431),
            plots.RocCurve("champion v2", [(0, 0), (0.2, 0.6), (1, 1)], 0.79),
        ],
        title="ROC <curve>",
    )

    root = parsed(chart)
    lines = [line.get("data-series") for line in root.iter(f"{SVG}polyline")]
    legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert root.get("data-plot") == "roc"
    assert lines == [
        "v3, AUC 0.843",
        "champion v2, AUC 0.790",
        "trivial baseline, AUC 0.500",
    ]
    assert legend == lines
    assert "ROC &lt;curve&gt;" in chart
    assert_inside_frame(root)


def test_a_long_roc_curve_has_no_markers_and_a_short_one_has_one_per_point():
    long_curve = plots.RocCurve("v1", roc_points(), 0.8)
    short_curve = plots.RocCurve("v2", [(0, 0), (0.5, 0.8), (1, 1)], None)

    long_root = parsed(plots.roc_chart("roc", [long_curve], title="t"))
    short_root = parsed(plots.roc_chart("roc", [short_curve], title="t"))

    assert len(long_curve.points) > plots.ROC_MARKERS_MAX
    assert not [c for c in long_root.iter(f"{SVG}circle") if c.get("class")]
    points = [c for c in short_root.iter(f"{SVG}circle") if c.get("class") == "point"]
    assert len(points) == 3


def test_residual_chart_scatters_points_around_a_zero_line_inside_the_frame():
    generator = np.random.default_rng(2)
    points = [
        (float(x), float(e))
        for x, e in zip(
            generator.normal(50, 10, 300), generator.normal(0, 4, 300), strict=True
        )
    ]

    chart = plots.residual_chart(
        "residuals", points, title="residuals", label="students (300 of 900)"
    )

    root = parsed(chart)
    lines = root.findall(f"{SVG}polyline")
    dots = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "point"]
    assert root.get("data-plot") == "residuals"
    assert len(dots) == 300
    assert [line.get("data-series") for line in lines] == ["no error"]
    levels = {pair.split(",")[1] for pair in lines[0].get("points", "").split()}
    assert len(levels) == 1
    zero = float(levels.pop())
    clear = [i for i, (_, e) in enumerate(points) if abs(e) > 0.1]  # off the line
    above = [float(dots[i].get("cy", "")) < zero for i in clear]
    assert above == [points[i][1] > 0 for i in clear]
    assert_inside_frame(root)


def test_residual_chart_without_points_says_so():
    root = parsed(plots.residual_chart("residuals", [], title="t", label="students"))

    assert [t.text for t in root.iter(f"{SVG}text")] == ["no residuals"]


# --- views: new reports and old ones ----------------------------------------------


def classifier_report(**extra: object) -> dict[str, object]:
    return {
        "version": 3,
        "task": "classification",
        "metrics": {"roc_auc": 0.84},
        "baseline": {"roc_auc": 0.5},
        **extra,
    }


def test_roc_plot_draws_the_candidate_and_the_champion_of_the_report():
    roc = {
        "candidate": {"version": 3, "auc": 0.84, "points": points_of(roc_points())},
        "champion": {"version": 2, "auc": 0.8, "points": points_of([(0, 0), (1, 1)])},
    }

    root = parsed(views.roc_plot(classifier_report(roc=roc)))

    lines = [line.get("data-series") for line in root.iter(f"{SVG}polyline")]
    assert lines == [
        "v3, AUC 0.840",
        "champion v2, AUC 0.800",
        "trivial baseline, AUC 0.500",
    ]


def points_of(pairs: list[tuple[float, float]]) -> list[dict[str, float]]:
    return [{"fpr": x, "tpr": y} for x, y in pairs]


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (
            classifier_report(),
            "No ROC curve: this report was written before reports kept them.",
        ),
        (
            classifier_report(roc=None),
            "No ROC curve: it needs probabilities of two classes, both among the "
            "students.",
        ),
        (
            classifier_report(roc=None, metrics=None),
            "No ROC curve: no students were held out to score this version on.",
        ),
    ],
)
def test_a_report_without_roc_points_shows_why(report, reason):
    root = parsed(views.roc_plot(report))

    assert [t.text for t in root.iter(f"{SVG}text")] == [reason]


def test_residual_plot_of_an_old_report_shows_why_and_a_new_one_draws_the_sample():
    old = {"version": 1, "task": "regression", "metrics": {"r2": 0.3}}
    residuals = curves.residuals(
        np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0]), seed=1
    )

    old_root = parsed(views.residual_plot(old))
    new_root = parsed(views.residual_plot({**old, "residuals": residuals}))

    assert [t.text for t in old_root.iter(f"{SVG}text")] == [
        "No residuals: this report was written before reports kept them."
    ]
    dots = [c for c in new_root.iter(f"{SVG}circle") if c.get("class") == "point"]
    assert len(dots) == 3


def test_the_evidence_of_an_old_report_still_renders():
    row = {"version": 1, "report": {"task": "regression", "metrics": {"r2": 0.2}}}

    shown = views.evidence({**row, "record": None})

    assert 'data-plot="residuals"' in shown["residuals"] and shown["roc"] is None

"""Model cards: the ROC and residual figures they carry, in JSON and in words."""

from __future__ import annotations

import numpy as np

from services.evaluation import curves
from services.gateway import cards


def document(**report_parts) -> dict:
    """A card document as ``cards.card`` makes it, with the given report parts."""
    return {
        "model": "at-risk",
        "version": 2,
        "champion": True,
        "created_at": "2026-01-01T00:00:00+00:00",
        "algorithm": "linear",
        "seed": 7,
        "intended_use": "Flags students.",
        "data": {
            "dataset_id": "d",
            "rows": 100,
            "uploaded_at": "2026-01-01",
            "train_rows": 80,
            "test_rows": 20,
            "target": "at_risk",
            "id_column_pseudonymised": None,
        },
        "features": [{"name": "attendance", "type": "numeric"}],
        "excluded_attributes": [],
        "metrics": {"roc_auc": 0.8},
        "intervals": {},
        "baseline": {},
        "groups": {},
        "importance": [],
        "limitations": [],
        "history": [],
        "erasures": [],
        **report_parts,
    }


def test_roc_summary_keeps_the_aucs_of_candidate_and_champion_not_the_points():
    actual = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    candidate = {"version": 2, **curves.roc(actual, scores)}
    champion = {"version": 1, **curves.roc(actual, scores[::-1])}
    report = {"candidate": candidate, "champion": champion, "rows": 6, "positives": 3}

    summary = cards.roc_summary(report)

    assert summary == {
        "auc": candidate["auc"],
        "champion_version": 1,
        "champion_auc": champion["auc"],
        "rows": 6,
        "positives": 3,
    }
    text = cards.markdown(document(roc=summary, residuals=None))
    assert (
        f"area under the ROC curve {candidate['auc']:.4f} on 6 held-out students, "
        "3 of them positive" in text
    )
    assert f"v1, reached {champion['auc']:.4f} on the same students" in text


def test_a_first_version_has_no_champion_figure_and_a_missing_curve_no_line():
    actual = np.array([0, 1, 0, 1])
    candidate = {"version": 1, **curves.roc(actual, np.array([0.2, 0.7, 0.4, 0.6]))}
    summary = cards.roc_summary(
        {"candidate": candidate, "champion": None, "rows": 4, "positives": 2}
    )

    assert summary["champion_auc"] is None
    assert "champion then serving" not in cards.markdown(document(roc=summary))
    assert cards.roc_summary(None) is None
    assert "ROC" not in cards.markdown(document(roc=None, residuals=None))


def test_residual_summary_reports_the_spread_of_errors_without_the_sampled_pairs():
    actual = np.arange(100, dtype=float)
    predicted = actual + np.linspace(-2.0, 2.0, 100)
    residuals = curves.residuals(actual, predicted, seed=3)

    summary = cards.residual_summary(residuals)
    text = cards.markdown(document(residuals=summary))

    assert "sample" not in summary and summary["rows"] == 100
    assert summary["quantiles"]["p25"] < 0 < summary["quantiles"]["p75"]
    assert "Errors (actual minus estimate) on 100 held-out students" in text
    assert (
        f"Half of the errors lay between {summary['quantiles']['p25']:.4f} and "
        f"{summary['quantiles']['p75']:.4f}" in text
    )
    assert cards.residual_summary({"mean": None, "rows": 0}) is None


def test_names_and_values_from_the_data_cannot_write_markdown_or_html():
    column = "gr|oup`x`\n# h"
    groups = {
        column: {
            "M|x": {"n": 30, "recall": 0.5},
            "<b>F</b>": {"n": 30, "recall": 0.75},
        }
    }
    features = [{"name": column, "type": "categorical"}]
    history = [
        {
            "at": "2026-01-02",
            "action": "rollback",
            "version": 1,
            "actor": "API key sha256:abc",
            "reason": "see [here](http://x) <script>",
        }
    ]

    text = cards.markdown(
        document(groups=groups, features=features, history=history, importance=[])
    )
    lines = text.splitlines()

    assert "# h" not in [line.strip() for line in lines]
    assert "<b>" not in text and "<script>" not in text
    assert "\\<b\\>F\\</b\\>" in text and "see \\[here\\](http://x)" in text
    rows = [line for line in lines if line.startswith("| M") or "F\\</b" in line]
    unescaped = [line.replace("\\|", "").count("|") for line in rows]
    assert unescaped == [4, 4]  # three cells each: the group, n and its recall
    assert "`` gr|oup`x` # h ``" in text


def test_after_an_erasure_the_card_says_how_many_rows_the_version_was_trained_on():
    erasures = [{"dataset_id": "d", "rows": 1, "at": "2026-01-03"}]
    data = {**document()["data"], "rows": 99}

    text = cards.markdown(document(data=data, erasures=erasures))

    assert "99 rows, uploaded" in text
    assert "it held 100 rows when this version was trained" in text
    assert "it held" not in cards.markdown(document())

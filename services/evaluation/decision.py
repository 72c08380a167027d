"""The promotion decision: every gate checked, every reason written down.

A candidate is promoted when it passes every gate of its model:
it beats the trivial baseline (C15: an all-majority model never does), it
beats the champion by at least the minimum improvement (and, when asked,
by more than the bootstrap interval of the gain), and the gap between its
best and worst group stays within the limit, or at least does not widen a
gap the champion already had past the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.evaluation.metrics import better
from shared.jobs import Gates

Metrics = dict[str, float | None]


@dataclass
class Comparison:
    """What is known of the champion on the candidate's held-out rows."""

    version: int | None
    metrics: Metrics | None = None
    note: str | None = None
    gain_interval: dict[str, Any] | None = None
    gaps: dict[str, dict[str, float | None]] | None = None
    roc: dict[str, Any] | None = None


@dataclass
class Decision:
    promoted: bool
    reasons: list[str]
    champion: Comparison
    passed: list[str] = field(default_factory=list)

    def public(self, metric: str) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "primary_metric": metric,
            "reason": self.reasons[0],
            "reasons": self.reasons,
            "passed": self.passed,
            "champion_version": self.champion.version,
            "champion_metrics": self.champion.metrics,
            "gain_interval": self.champion.gain_interval,
        }


def decide(
    metric: str,
    metrics: Metrics,
    baseline: Metrics,
    champion: Comparison,
    gates: Gates,
    gaps: dict[str, dict[str, float | None]],
) -> Decision:
    value = metrics.get(metric)
    if value is None:
        return Decision(
            False, [f"{metric} is undefined on the held-out rows"], champion
        )
    failed: list[str] = []
    passed: list[str] = []
    for check in (_champion_gate, _baseline_gate, _group_gate):
        outcome = check(metric, value, baseline, champion, gates, gaps)
        if outcome is not None:
            (passed if outcome[0] else failed).append(outcome[1])
    if failed:
        return Decision(False, failed + passed, champion, passed)
    return Decision(True, passed, champion, passed)


def _baseline_gate(
    metric: str,
    value: float,
    baseline: Metrics,
    champion: Comparison,
    gates: Gates,
    gaps: dict[str, dict[str, float | None]],
) -> tuple[bool, str] | None:
    floor = baseline.get(metric)
    if not gates.must_beat_baseline or floor is None:
        return None
    if better(metric, value, floor):
        return True, f"{metric} {value:.4f} beats the trivial baseline's {floor:.4f}"
    return (
        False,
        f"{metric} {value:.4f} does not beat the trivial baseline's {floor:.4f}",
    )


def _champion_gate(
    metric: str,
    value: float,
    baseline: Metrics,
    champion: Comparison,
    gates: Gates,
    gaps: dict[str, dict[str, float | None]],
) -> tuple[bool, str] | None:
    if champion.version is None:
        return True, f"first version of the model ({metric} {value:.4f})"
    held = None if champion.metrics is None else champion.metrics.get(metric)
    if held is None:
        return (
            True,
            f"{champion.note or 'the champion has no score here'}; candidate "
            f"{metric} {value:.4f}",
        )
    gain = value - held if better(metric, 1.0, 0.0) else held - value
    name = f"champion v{champion.version}'s {held:.4f}"
    if gain <= gates.min_improvement or not better(metric, value, held):
        needed = (
            f" (needs a gain above {gates.min_improvement:g})"
            if gates.min_improvement
            else ""
        )
        return False, f"{metric} {value:.4f} does not beat {name}{needed}"
    if gates.significant and not _gain_is_clear(champion.gain_interval):
        low = (champion.gain_interval or {}).get("low")
        return False, (
            f"{metric} gain {gain:.4f} over {name} is within noise: its 95% "
            f"interval starts at {_fmt(low)}"
        )
    return True, f"{metric} {value:.4f} beats {name} by {gain:.4f}"


def _group_gate(
    metric: str,
    value: float,
    baseline: Metrics,
    champion: Comparison,
    gates: Gates,
    gaps: dict[str, dict[str, float | None]],
) -> tuple[bool, str] | None:
    if gates.max_group_gap is None or not gaps:
        return None
    limit, measure = gates.max_group_gap, gates.gap_metric
    for column, by_metric in gaps.items():
        gap = by_metric.get(measure)
        if gap is None or gap <= limit:
            continue
        before = (champion.gaps or {}).get(column, {}).get(measure)
        if before is not None and before > limit and gap <= before:
            continue
        was = (
            f" (champion v{champion.version}: {before:.4f})"
            if before is not None
            else ""
        )
        return False, (
            f"{measure} gap between groups of {column} is {gap:.4f}, past the "
            f"limit of {limit:g}{was}"
        )
    widest = max((g.get(measure) or 0.0 for g in gaps.values()), default=0.0)
    return (
        True,
        f"largest {measure} gap between groups is {widest:.4f} (limit {limit:g})",
    )


def _gain_is_clear(interval: dict[str, Any] | None) -> bool:
    low = interval.get("low") if interval else None
    return low is not None and low > 0


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"

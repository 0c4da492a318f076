"""Benchmark records: one Figure per measured line of docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class Figure:
    """One measured figure: FastTask's value, the baseline's, their ratio and the target's verdict.

    `ratio` is the number the target is stated for: FastTask / bare for rates and latencies,
    or the figure's own ratio, such as the slowest waiting call / one call. `met` is None
    when the figure has no target or was skipped.
    """

    name: str
    unit: str
    fasttask: Optional[float]
    baseline: Optional[float]
    baseline_name: str
    ratio: Optional[float]
    target: str
    met: Optional[bool]
    target_ratio: Optional[float] = None
    higher_is_better: bool = True
    note: str = ""
    skipped_reason: str = ""

    @classmethod
    def skipped(cls, name: str, target: str, reason: str) -> "Figure":
        return cls(name, "", None, None, "", None, target, None, skipped_reason=reason)

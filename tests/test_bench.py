"""The benchmark harness end to end at its smallest size: processes start, figures and report are written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, clean_environment


@pytest.mark.slow
def test_bench_quick_check_writes_report(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"

    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "check latency", "--output", str(output),
         "--work-dir", str(tmp_path / "work")],
        cwd=PROJECT_ROOT, env=clean_environment(), capture_output=True, text=True, timeout=240,
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    report = output.read_text(encoding="utf-8")
    rows = [line for line in report.splitlines() if line.startswith("| check latency, p50 |")]
    assert len(rows) == 1, report
    assert "skipped" not in rows[0], rows[0]
    assert "(Redis GET of the result)" in rows[0]
    assert "- command: `python -m bench --quick --only 'check latency'" in report
    assert "load average" in report
    assert output.with_suffix(".png").stat().st_size > 0
    assert not (tmp_path / "work").exists(), "the work folder is removed without --keep"

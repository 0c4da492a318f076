"""Command line: `python -m bench [--quick]` runs every figure and writes docs/benchmarks.md."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from bench.bare_app import create_bare_app
from bench.environment import BARE_DB, PROJECT_ROOT, BenchEnvironment
from bench.records import Figure
from bench.report import RunInfo, write_report
from bench.service_figures import measure_file_transfer, measure_status_info, measure_waiting_callers
from bench.task_figures import (
    NOOP, measure_check_latency, measure_create_concurrent, measure_create_sequential, measure_queue_throughput,
    measure_run_round_trip, purge_queue,
)

logger = logging.getLogger("bench")


@dataclass(frozen=True)
class Sizes:
    """How many calls or tasks each figure uses."""

    sequential_calls: int
    concurrent_calls: int
    queue_tasks: int
    run_calls: int
    check_calls: int
    waiting_callers: int
    status_sizes: tuple[int, ...]
    status_calls: int
    file_bytes: int


FULL = Sizes(1000, 4000, 10_000, 400, 2000, 500, (0, 10_000, 100_000), 30, 1024 ** 3)
QUICK = Sizes(200, 800, 1000, 80, 400, 100, (0, 1000, 10_000), 10, 64 * 1024 ** 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute) to try the harness")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs" / "benchmarks.md",
                        help="Markdown file to write; the chart PNG goes next to it (default docs/benchmarks.md)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="folder for the run's Redis data, logs and test files (default: a new temporary folder)")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1,
                        help="prefork processes of each no-op worker (default: the number of cores)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) after the run")
    parser.add_argument("--only", action="append", metavar="TEXT", default=None,
                        help="measure only the figures whose name contains TEXT, for example --only status_info; "
                        "repeat it for more figures")
    return parser


def measure_all(env: BenchEnvironment, sizes: Sizes, concurrency: int, only: Optional[list[str]]) -> list[Figure]:
    """Run every figure in an order that starts each worker only when a figure needs it."""
    bare_app = create_bare_app(env.redis_port, BARE_DB, env.tasks_dir)
    steps: list[tuple[str, Callable[[], list[Figure]]]] = [
        ("create rate, 1 client", lambda: [measure_create_sequential(env, bare_app, sizes.sequential_calls)]),
        ("create rate, 16 clients", lambda: [measure_create_concurrent(env, bare_app, 16, sizes.concurrent_calls)]),
        ("create rate, 64 clients", lambda: [measure_create_concurrent(env, bare_app, 64, sizes.concurrent_calls)]),
        ("queue throughput", lambda: measure_queue_throughput(env, bare_app, sizes.queue_tasks, concurrency)),
        ("run round trip", lambda: measure_run_round_trip(env, bare_app, sizes.run_calls, concurrency)),
        ("check latency", lambda: [measure_check_latency(env, sizes.check_calls, concurrency)]),
        ("many waiting callers", lambda: measure_waiting_callers(env, bare_app, sizes.waiting_callers, concurrency)),
        ("status_info", lambda: measure_status_info(env, list(sizes.status_sizes), sizes.status_calls, concurrency)),
        ("upload / download", lambda: measure_file_transfer(env, sizes.file_bytes)),
    ]
    figures: list[Figure] = []
    for name, step in steps:
        if only and not any(text in name for text in only):
            continue
        started = time.monotonic()
        logger.info("measuring %s (load average %.2f)", name, os.getloadavg()[0])
        try:
            measured = step()
        except Exception as exc:  # one broken figure must not lose the others
            logger.exception("measuring %s failed", name)
            measured = [Figure.skipped(name, "", f"failed: {type(exc).__name__}: {exc}")]
        for figure in measured:
            if figure.skipped_reason:
                logger.warning("skipped %s: %s", figure.name, figure.skipped_reason)
        logger.info("measured %s in %.1f s", name, time.monotonic() - started)
        figures += measured
        if name.startswith("create rate"):
            purge_queue(env, NOOP)
    bare_app.close()
    return figures


def main(argv: Optional[Sequence[str]] = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    sizes = QUICK if arguments.quick else FULL

    if arguments.work_dir is not None and arguments.work_dir.exists() and any(arguments.work_dir.iterdir()):
        build_parser().error(f"--work-dir {arguments.work_dir} is not empty; give a new or empty folder")
    root = arguments.work_dir or Path(tempfile.mkdtemp(prefix="fasttask-bench-"))
    env = BenchEnvironment(root)
    started = datetime.datetime.now(datetime.timezone.utc)
    started_s = time.monotonic()
    load_before = os.getloadavg()
    try:
        env.prepare()
        env.start_api()
        figures = measure_all(env, sizes, arguments.concurrency, arguments.only)
    finally:
        env.stop()
        if not arguments.keep:
            shutil.rmtree(root, ignore_errors=True)

    command = " ".join(["python -m bench", shlex.join(argv if argv is not None else sys.argv[1:])]).strip()
    run = RunInfo(command, started, time.monotonic() - started_s, load_before, os.getloadavg())
    chart_path = arguments.output.with_suffix(".png")
    write_report(figures, run, arguments.output, chart_path)
    logger.info("wrote %s and %s", arguments.output, chart_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

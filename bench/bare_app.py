"""The bare Celery baseline: the same task bodies and worker settings as FastTask, no HTTP front.

`celery -A bench.bare_app worker` reads BENCH_BARE_REDIS_PORT, BENCH_BARE_REDIS_DB and
BENCH_TASKS_DIR from the environment; the harness imports `create_bare_app` directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from celery import Celery

from fasttask.registry import load_tasks
from fasttask.settings import Settings
from fasttask.worker import configure_app


def create_bare_app(redis_port: int, redis_db: int, tasks_dir: Path) -> Celery:
    """Build a plain Celery app whose tasks are the task modules' functions, unwrapped."""
    specs = load_tasks(tasks_dir)
    settings = Settings(master_host="127.0.0.1", task_queue_port=redis_port, task_queue_db=redis_db, tasks_dir=tasks_dir)

    app = Celery("bare", set_as_current=False)
    configure_app(app, settings, specs)
    # kombu's and Celery's own Redis transport and result backend, and STARTED stored by Celery,
    # which FastTask's task wrapper stores itself: callers see the same states without FastTask's code.
    app.conf.update(broker_transport=None, result_backend=settings.result_backend, task_track_started=True)
    for spec in specs.values():
        app.task(name=spec.name, queue=spec.queue)(spec.function)
    return app


def _app_from_environment() -> Optional[Celery]:
    if "BENCH_BARE_REDIS_PORT" not in os.environ:
        return None
    return create_bare_app(
        int(os.environ["BENCH_BARE_REDIS_PORT"]),
        int(os.environ["BENCH_BARE_REDIS_DB"]),
        Path(os.environ["BENCH_TASKS_DIR"]),
    )


app = _app_from_environment()

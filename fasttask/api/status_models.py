"""Response models of /status_info for the OpenAPI document; the tests validate real responses against them."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkerRecord(StrictModel):
    """State a worker publishes about itself every second."""

    name: str = Field(description="Celery node name")
    hostname: str
    pid: int = Field(description="process id of the worker's main process")
    queues: list[str]
    pool: str = Field(description="prefork, threads or solo")
    concurrency: int = Field(description="pool size: processes or threads")
    started_at: float = Field(description="Unix time the worker started")
    uptime_s: float
    active: list[str] = Field(description="ids of the tasks running now")
    reserved: list[str] = Field(description="ids of the tasks received and waiting for a pool slot")


class WorkerStatus(StrictModel):
    """Workers whose state record has not expired."""

    online: int
    workers: dict[str, WorkerRecord]


class WindowFigures(StrictModel):
    """Completions in one time window, and the same per second."""

    success: int
    failure: int
    completed: int
    success_per_s: float
    failure_per_s: float
    completed_per_s: float


class TaskFigures(StrictModel):
    """Counts by state and completion windows of one task, or of all tasks together."""

    states: dict[str, int] = Field(description="PENDING and STARTED are current counts, final states are totals")
    finished: int = Field(description="SUCCESS + FAILURE + REVOKED")
    completed: dict[str, WindowFigures] = Field(description="windows 1m, 15m, 1h and 1d")


class TaskInfo(StrictModel):
    """Task counters per task and in total."""

    tasks: dict[str, TaskFigures]
    total: TaskFigures
    window_note: str


class LoadAverage(StrictModel):
    one_minute: float = Field(alias="1m")
    five_minutes: float = Field(alias="5m")
    fifteen_minutes: float = Field(alias="15m")


class MemoryFigures(StrictModel):
    total_bytes: int
    available_bytes: int
    percent: float


class DiskFigures(StrictModel):
    path: str = Field(description="the files folder")
    total_bytes: int
    free_bytes: int
    percent: float


class SystemFigures(StrictModel):
    """Host figures of the API node that handled the request, from psutil."""

    hostname: str
    cpu_count: Optional[int]
    cpu_percent: float = Field(description="CPU use since the previous status_info call on this API process")
    load_average: LoadAverage
    memory: MemoryFigures
    files_disk: DiskFigures
    boot_time: float


class StatusResponse(StrictModel):
    """The requested figures; fields that were not requested are absent."""

    worker_status: Optional[WorkerStatus] = None
    task_info: Optional[TaskInfo] = None
    pending_task_count: Optional[dict[str, Optional[int]]] = Field(
        None, description="messages waiting per task queue; null per queue when the broker is not Redis",
    )
    system: Optional[SystemFigures] = None

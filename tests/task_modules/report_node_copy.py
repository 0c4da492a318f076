"""Test task, a second queue: return the worker's name and process ids, to show where a task ran."""

import os

from pydantic import BaseModel


class Params(BaseModel):
    pass


class Result(BaseModel):
    worker_name: str
    pid: int
    parent_pid: int


def report_node_copy() -> dict:
    return {"worker_name": os.environ.get("WORKER_NAME", ""), "pid": os.getpid(), "parent_pid": os.getppid()}

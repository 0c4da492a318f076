"""Test task: catch the soft time limit and keep sleeping, so that only TIME_LIMIT stops it."""

import time

from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, Field


class Params(BaseModel):
    seconds: float = Field(ge=0, le=600)


class Result(BaseModel):
    slept: float


def ignore_soft_limit(seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(deadline - time.monotonic())
        except SoftTimeLimitExceeded:
            continue
    return {"slept": seconds}

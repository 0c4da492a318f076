"""Test task: sleep, and append the start and end times of the run to a Redis list."""

import json
import os
import time

import redis
from pydantic import BaseModel, Field


class Params(BaseModel):
    seconds: float = Field(ge=0, le=60)
    record_key: str = Field(min_length=1, description="Redis list that receives the interval")


class Result(BaseModel):
    started: float
    finished: float


def record_interval(seconds: float, record_key: str) -> dict:
    started = time.time()
    time.sleep(seconds)
    finished = time.time()

    client = redis.Redis(
        host=os.environ["MASTER_HOST"],
        port=int(os.environ["TASK_QUEUE_PORT"]),
        db=int(os.environ.get("TASK_QUEUE_DB", "0")),
    )
    client.rpush(record_key, json.dumps({"started": started, "finished": finished, "pid": os.getpid()}))
    client.close()
    return {"started": started, "finished": finished}

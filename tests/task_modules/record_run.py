"""Test task: append this process's id to a file named by `marker`, sleep, then return the run count.

The file lives in the folder named by the worker's FASTTASK_TEST_RECORD_DIR; without it the task fails.
"""

import os
import time
from pathlib import Path

from pydantic import BaseModel, Field


class Params(BaseModel):
    marker: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    seconds: float = Field(0, ge=0, le=60)


class Result(BaseModel):
    runs: int


def record_run(marker: str, seconds: float) -> dict:
    record_path = Path(os.environ["FASTTASK_TEST_RECORD_DIR"]) / marker
    with record_path.open("a", encoding="ascii") as record:
        record.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return {"runs": len(record_path.read_text(encoding="ascii").splitlines())}

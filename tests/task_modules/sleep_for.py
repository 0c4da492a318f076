"""Test task: sleep for the given seconds, then return them."""

import time

from pydantic import BaseModel, Field


class Params(BaseModel):
    seconds: float = Field(ge=0, le=600)


class Result(BaseModel):
    slept: float


def sleep_for(seconds: float) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}

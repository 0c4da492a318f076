"""Test task: return a dict that does not match Result."""

from pydantic import BaseModel


class Params(BaseModel):
    pass


class Result(BaseModel):
    value: int


def wrong_result() -> dict:
    return {"value": "not a number"}

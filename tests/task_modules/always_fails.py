"""Test task: raise ValueError with the given message."""

from pydantic import BaseModel


class Params(BaseModel):
    message: str = "boom"


class Result(BaseModel):
    never: str


def always_fails(message: str) -> dict:
    raise ValueError(message)

"""Test and benchmark task: do nothing."""

from pydantic import BaseModel


class Params(BaseModel):
    pass


class Result(BaseModel):
    ok: bool


def noop() -> dict:
    return {"ok": True}

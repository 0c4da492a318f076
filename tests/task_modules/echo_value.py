"""Test task: return its float unchanged and the character with the given code point."""

from pydantic import BaseModel


class Params(BaseModel):
    x: float = 0.0
    note: str = ""
    code_point: int = 65


class Result(BaseModel):
    x: float
    note: str
    character: str


def echo_value(x: float, note: str, code_point: int) -> dict:
    return {"x": x, "note": note, "character": chr(code_point)}

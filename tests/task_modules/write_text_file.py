"""Test task: write text into a file in the files folder, for /download to serve."""

from pydantic import BaseModel

from fasttask.storage import file_path


class Params(BaseModel):
    file_name: str
    text: str


class Result(BaseModel):
    file_name: str


def write_text_file(file_name: str, text: str) -> dict:
    path = file_path(file_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return {"file_name": file_name}

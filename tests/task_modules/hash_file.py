"""Test task: return the size and SHA-256 of an uploaded file."""

import hashlib

from pydantic import BaseModel

from fasttask.storage import file_path


class Params(BaseModel):
    file_name: str


class Result(BaseModel):
    size: int
    sha256: str


def hash_file(file_name: str) -> dict:
    digest = hashlib.sha256()
    size = 0
    with file_path(file_name).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}

"""Stream a multipart/form-data upload to disk in chunks, with a size limit and no partial leftovers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import anyio
from fastapi import HTTPException, Request, status
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from fasttask.storage import FileNameError, incoming_dir, stored_upload_name

FILE_FIELD = "file"


class UploadTooLarge(Exception):
    """The file part exceeded MAX_UPLOAD_BYTES."""


@dataclass
class PartState:
    """Parser progress: the headers of the current part and the state of the `file` part."""

    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)
    is_file_part: bool = False
    file_name: Optional[str] = None
    file_seen: bool = False
    file_finished: bool = False
    pending_data: list[bytes] = field(default_factory=list)


def _decode_header_value(value: bytes) -> str:
    # Browsers and curl send the file name as raw UTF-8 in the quoted parameter (RFC 7578 4.2).
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the uploaded file name is not valid UTF-8") from None


def _build_callbacks(state: PartState) -> dict:
    def on_part_begin() -> None:
        state.headers = {}
        state.is_file_part = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        state.headers[state.header_field.decode("latin-1").lower()] = bytes(state.header_value)
        state.header_field.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(state.headers.get("content-disposition", b"").decode("latin-1"))
        is_file_field = options.get(b"name") == FILE_FIELD.encode() and not state.file_seen
        if is_file_field:
            state.is_file_part = True
            state.file_seen = True
            state.file_name = _decode_header_value(options.get(b"filename", b""))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.is_file_part:
            state.pending_data.append(data[start:end])

    def on_part_end() -> None:
        if state.is_file_part:
            state.file_finished = True
            state.is_file_part = False

    return {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }


def _multipart_boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the file as multipart/form-data with the field {FILE_FIELD!r}",
        )
    return options[b"boundary"]


def _check_declared_length(request: Request, max_upload_bytes: int) -> None:
    # The body also carries part headers and boundaries, so only a clearly larger body is rejected early.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_upload_bytes + 64 * 1024:
        raise UploadTooLarge()


async def _write_pending(state: PartState, handle: anyio.AsyncFile, written: int, max_upload_bytes: int) -> int:
    for piece in state.pending_data:
        written += len(piece)
        if written > max_upload_bytes:
            raise UploadTooLarge()
        await handle.write(piece)
    state.pending_data.clear()
    return written


def _file_name_from(state: PartState) -> str:
    try:
        return stored_upload_name(state.file_name or "")
    except FileNameError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


async def _receive_into(request: Request, partial_path: Path, max_upload_bytes: int) -> PartState:
    state = PartState()
    try:
        parser = MultipartParser(_multipart_boundary(request), _build_callbacks(state))
    except FormParserError as exc:
        # python-multipart rejects a boundary longer than 256 bytes here, before any data is read.
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid multipart boundary: {exc}") from None
    written = 0
    async with await anyio.open_file(partial_path, "xb") as handle:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"malformed multipart body: {exc}") from None
            written = await _write_pending(state, handle, written, max_upload_bytes)
        parser.finalize()
    return state


async def receive_upload(request: Request, files_dir: Path, max_upload_bytes: int) -> str:
    """Write the `file` part of the request into the files folder and return its stored name.

    The data goes to a partial file in the internal folder first. It is moved into the
    files folder only when the whole part has arrived, so a rejected or broken upload
    leaves nothing that /download or a task could see.
    """
    _check_declared_length(request, max_upload_bytes)
    folder = incoming_dir(files_dir)
    await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
    partial_path = folder / f"{os.getpid()}-{os.urandom(8).hex()}.part"

    try:
        state = await _receive_into(request, partial_path, max_upload_bytes)
        if not state.file_finished:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"the multipart field {FILE_FIELD!r} is missing or incomplete")
        stored_name = _file_name_from(state)
        await anyio.to_thread.run_sync(_move_into_place, partial_path, files_dir / stored_name)
        return stored_name
    finally:
        await anyio.to_thread.run_sync(lambda: partial_path.unlink(missing_ok=True))


def _move_into_place(partial_path: Path, target: Path) -> None:
    # os.link fails instead of replacing when the target exists, so two uploads never share a name.
    os.link(partial_path, target)
    partial_path.unlink()

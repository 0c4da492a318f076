"""Routes POST /upload and GET /download: files in the files folder, confined to it."""

from __future__ import annotations

import errno
import logging
import string
from pathlib import Path
from urllib.parse import quote

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from fasttask.api.upload_stream import FILE_FIELD, UploadTooLarge, receive_upload
from fasttask.settings import Settings
from fasttask.storage import FileAccessError, FileNameError, resolve_in_files_dir

logger = logging.getLogger("fasttask.api.files")

DISK_FULL_ERRORS = {errno.ENOSPC, errno.EDQUOT}

# Characters kept as they are in the ASCII fallback `filename="..."` of Content-Disposition.
ASCII_FILENAME_CHARACTERS = set(string.ascii_letters + string.digits + " !#$&+-.^_`{}~()[]@=,")


class UploadResponse(BaseModel):
    """Name under which the upload was stored; pass it to /download or to a task."""

    file_name: str = Field(description="stored name: a random token, '_', then the original name")


UPLOAD_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def content_disposition(file_name: str) -> str:
    """Build an attachment header with an ASCII fallback and the exact UTF-8 name (RFC 6266, RFC 8187)."""
    fallback = "".join(character if character in ASCII_FILENAME_CHARACTERS else "_" for character in file_name)
    encoded = quote(file_name, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _resolve_existing_file(files_dir: Path, file_name: str) -> Path:
    try:
        path = resolve_in_files_dir(files_dir, file_name)
    except FileNameError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid file_name: {exc}") from None
    except FileAccessError as exc:
        logger.warning("download of %r rejected: %s", file_name, exc)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"file_name is not allowed: {exc}") from None

    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"file {file_name!r} not found in the files folder")
    return path


def _add_upload_route(router: APIRouter, settings: Settings) -> None:
    @router.post(
        "/upload", response_model=UploadResponse, summary="upload a file", openapi_extra=UPLOAD_REQUEST_BODY,
        responses={413: {"description": f"the file is larger than MAX_UPLOAD_BYTES ({settings.max_upload_bytes} bytes)"}},
    )
    async def upload(request: Request) -> JSONResponse:
        """Store the multipart field `file` in the files folder and return its stored name."""
        try:
            stored_name = await receive_upload(request, settings.files_dir, settings.max_upload_bytes)
        except UploadTooLarge:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"the file is larger than MAX_UPLOAD_BYTES ({settings.max_upload_bytes} bytes)",
            ) from None
        except OSError as exc:
            if exc.errno not in DISK_FULL_ERRORS:
                raise
            logger.error("upload failed: the files folder %s is full: %s", settings.files_dir, exc)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "no space left in the files folder; retry later or ask an operator",
            ) from None
        logger.info("stored upload %r", stored_name)
        return JSONResponse({"file_name": stored_name})


def _add_download_route(router: APIRouter, settings: Settings) -> None:
    @router.get(
        "/download", summary="download a file", response_class=FileResponse,
        responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
    )
    async def download(
        file_name: str = Query(min_length=1, max_length=4096, description="name returned by /upload, or a task's output file"),
    ) -> FileResponse:
        """Stream a file from the files folder; credentials, dotfiles and internal state are never served."""
        path = await anyio.to_thread.run_sync(_resolve_existing_file, settings.files_dir, file_name)
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers={"Content-Disposition": content_disposition(path.name)},
        )


def build_files_router(settings: Settings) -> APIRouter:
    """Create the routes that API_FILE_UPLOAD and API_FILE_DOWNLOAD enable."""
    router = APIRouter(tags=["files"])
    if settings.api_file_upload:
        _add_upload_route(router, settings)
    if settings.api_file_download:
        _add_download_route(router, settings)
    return router

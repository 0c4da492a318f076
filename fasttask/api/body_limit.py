"""ASGI middleware that returns 413 when a request body is larger than MAX_BODY_BYTES."""

from __future__ import annotations

from typing import Collection

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive`; FastAPI re-raises HTTPExceptions from body parsing, so it becomes a 413."""

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than MAX_BODY_BYTES ({max_body_bytes} bytes); send less data",
        )


class BodySizeLimitMiddleware:
    """Reject a body by its Content-Length before reading it, or once the bytes read pass the limit.

    Paths in exempt_paths (relative to the root path) are left to their route, which applies
    its own limit, as the upload route does for files.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, exempt_paths: Collection[str] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_exempt(scope):
            await self.app(scope, receive, send)
            return

        declared_length = Headers(scope=scope).get("content-length", "")
        if declared_length.isdigit() and int(declared_length) > self.max_body_bytes:
            await self._reject(scope, receive, send)
            return

        received_bytes = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await self._reject(scope, receive, send)

    def _is_exempt(self, scope: Scope) -> bool:
        path = scope["path"].removeprefix(scope.get("root_path", "").rstrip("/"))
        return path in self.exempt_paths

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.max_body_bytes)
        response = JSONResponse({"detail": error.detail}, status_code=error.status_code, headers={"Connection": "close"})
        await response(scope, receive, send)

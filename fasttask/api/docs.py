"""Authenticated /openapi.json, /docs (Swagger UI) and /redoc."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from fasttask.settings import Settings


def _openapi_url(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + "/openapi.json"


def build_docs_router(app: FastAPI, settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    if settings.api_docs:

        @router.get("/docs")
        async def swagger_ui(request: Request) -> HTMLResponse:
            return get_swagger_ui_html(openapi_url=_openapi_url(request), title=f"{app.title} - Swagger UI")

    if settings.api_redoc:

        @router.get("/redoc")
        async def redoc(request: Request) -> HTMLResponse:
            return get_redoc_html(openapi_url=_openapi_url(request), title=f"{app.title} - ReDoc")

    return router

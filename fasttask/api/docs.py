"""Authenticated /openapi.json, /docs (Swagger UI) and /redoc, with every asset served locally."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from fasttask.settings import Settings

# Copied from the npm packages swagger-ui-dist 5.35.0 (Apache-2.0) and redoc 2.5.4 (MIT) by
# scripts/vendor-docs-assets.sh, so the docs load on networks without internet access
# (static/README.md lists the files and the one line changed in ReDoc).
STATIC_DIR = Path(__file__).resolve().parent / "static"

ASSETS_PREFIX = "/docs-assets"

# Only these files are served; the mapping also fixes each file's media type.
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
FAVICON_FILE = "favicon-32x32.png"


def _public_prefix(request: Request) -> str:
    """Return the path prefix under which clients reach the service (ROOT_PATH behind a proxy)."""
    return request.scope.get("root_path", "").rstrip("/")


def _asset_url(request: Request, name: str) -> str:
    return f"{_public_prefix(request)}{ASSETS_PREFIX}/{name}"


def _asset_path(name: str) -> Path:
    if name == "favicon.png":
        return STATIC_DIR / FAVICON_FILE
    return STATIC_DIR / name


def _add_asset_routes(router: APIRouter) -> None:
    @router.get(ASSETS_PREFIX + "/{name}")
    async def docs_asset(name: str) -> FileResponse:
        """Serve a script, stylesheet or image of Swagger UI or ReDoc."""
        media_type = DOCS_ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown docs asset {name!r}")
        return FileResponse(_asset_path(name), media_type=media_type, headers={"Cache-Control": "max-age=86400"})

    @router.get("/favicon.ico")
    async def favicon() -> FileResponse:
        """Serve the favicon that browsers request on their own."""
        return FileResponse(_asset_path("favicon.png"), media_type="image/png")


def build_docs_router(app: FastAPI, settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    async def openapi(request: Request) -> JSONResponse:
        """Return the OpenAPI document of the enabled routes."""
        schema = app.openapi()
        prefix = _public_prefix(request)
        if prefix:
            # Swagger UI's "Try it out" sends requests to this server URL, so behind a
            # reverse proxy they must carry the prefix too.
            schema = {**schema, "servers": [{"url": prefix}]}
        return JSONResponse(schema)

    if settings.api_docs or settings.api_redoc:
        _add_asset_routes(router)

    if settings.api_docs:

        @router.get("/docs")
        async def swagger_ui(request: Request) -> HTMLResponse:
            """Serve Swagger UI."""
            return get_swagger_ui_html(
                openapi_url=_public_prefix(request) + "/openapi.json",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=_asset_url(request, "swagger-ui-bundle.js"),
                swagger_css_url=_asset_url(request, "swagger-ui.css"),
                swagger_favicon_url=_asset_url(request, "favicon.png"),
                # Swagger UI's default validator is validator.swagger.io, outside the intranet.
                swagger_ui_parameters={"validatorUrl": None},
            )

    if settings.api_redoc:

        @router.get("/redoc")
        async def redoc(request: Request) -> HTMLResponse:
            """Serve ReDoc."""
            return get_redoc_html(
                openapi_url=_public_prefix(request) + "/openapi.json",
                title=f"{app.title} - ReDoc",
                redoc_js_url=_asset_url(request, "redoc.standalone.js"),
                redoc_favicon_url=_asset_url(request, "favicon.png"),
                with_google_fonts=False,
            )

    return router

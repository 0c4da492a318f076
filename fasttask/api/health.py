"""GET /health: the one route that answers without credentials, for load balancers and Docker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.api_route("/health", methods=["GET", "HEAD"], summary="health probe")
async def health(request: Request) -> JSONResponse:
    """Return 200 when the result backend answers a ping, 503 otherwise; needs no credentials."""
    await request.app.state.redis.ping()
    return JSONResponse({"status": "ok"})

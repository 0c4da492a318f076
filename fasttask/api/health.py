"""GET /health: the one route that needs no credentials, for load balancers and Docker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/health", summary="health probe")
async def health(request: Request) -> JSONResponse:
    """Ping the result backend and return 200, or 503 when the ping fails."""
    await request.app.state.redis.ping()
    return JSONResponse({"status": "ok"})


# HEAD for probes that send it; a second operation in the schema would repeat GET's operation id.
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)

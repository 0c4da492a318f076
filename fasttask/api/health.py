"""GET /health: the one route that answers without credentials, for load balancers and Docker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/health", summary="health probe")
async def health(request: Request) -> JSONResponse:
    """Return 200 when the result backend answers a ping, 503 otherwise; needs no credentials."""
    await request.app.state.redis.ping()
    return JSONResponse({"status": "ok"})


# HEAD for probes that send it; a second operation in the schema would repeat GET's operation id.
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)

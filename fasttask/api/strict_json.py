"""A route class whose JSON bodies accept only finite numbers and a bounded nesting depth.

NaN, Infinity and numbers that overflow to infinity (1e999) are not JSON numbers a task can
use (RFC 8259). Integers past Python's int-from-string digit limit and nesting past the
recursion limit raise ValueError or RecursionError in `json.loads`, which FastAPI would turn
into a bare 400. All of these are raised here as JSONDecodeError, which FastAPI turns into a
422 response that contains the message.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable

from fastapi import Request
from fastapi.routing import APIRoute


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _parse_finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"number {text[:40]} is out of the range of a 64-bit float", text, 0)
    return value


def parse_strict_json(body: bytes) -> Any:
    """Parse a request body as JSON; raise JSONDecodeError for anything a task cannot receive."""
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_float=_parse_finite_float)
    except json.JSONDecodeError:
        raise
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"the body is not UTF-8, UTF-16 or UTF-32 text: {exc.reason}", "", exc.start) from None
    except RecursionError:
        raise json.JSONDecodeError("JSON is nested too deeply", "", 0) from None
    except ValueError:
        # The int-from-string digit limit (4300 digits by default since Python 3.11).
        limit = sys.get_int_max_str_digits()
        raise json.JSONDecodeError(f"an integer in the body has more than {limit} digits", "", 0) from None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_strict_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Any:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler

"""Check that a value survives the trip through JSON and UTF-8 to an HTTP client."""

from __future__ import annotations

import json
from typing import Any, Optional


def json_problem(value: Any) -> Optional[str]:
    """Return why value cannot be sent as strict JSON in UTF-8, or None when it can.

    Pydantic accepts float("inf") from strings such as "inf" and keeps lone surrogates
    such as "\\ud800" in str fields; neither can be encoded in a strict JSON response.
    """
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError as exc:
        if isinstance(exc, UnicodeEncodeError):
            return "contains a lone surrogate, which UTF-8 cannot encode"
        return "contains NaN or Infinity, which JSON cannot represent"
    return None

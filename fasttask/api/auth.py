"""HTTP Basic authentication against the users file."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from pathlib import Path
from typing import Optional

from fastapi import HTTPException, Request, status

logger = logging.getLogger("fasttask.auth")

DEFAULT_USER = "admin"

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="FastTask", charset="UTF-8"'}


class UsersFileError(Exception):
    """The users file is missing, unreadable or has no users."""


def read_users(path: Path) -> dict[str, str]:
    """Read `{"user": "password"}` from the users file; raise UsersFileError when it is invalid."""
    try:
        users = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsersFileError(f"{path}: the users file does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsersFileError(f"{path}: the users file cannot be read: {exc}") from None

    is_valid = isinstance(users, dict) and all(
        isinstance(name, str) and isinstance(password, str) for name, password in users.items()
    )
    if not is_valid:
        raise UsersFileError(f'{path}: the users file must be a JSON object {{"user": "password", ...}}')
    return users


def create_users_file(path: Path) -> str:
    """Write a users file with one generated password and return that password."""
    password = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({DEFAULT_USER: password}, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return password


def parse_basic_credentials(header: str) -> Optional[tuple[str, str]]:
    """Decode an `Authorization: Basic ...` value as UTF-8 (RFC 7617); None when malformed."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, separator, password = decoded.partition(":")
    if not separator:
        return None
    return user, password


class Authenticator:
    """Check Basic credentials in constant time; with no users, only when anonymous access is on."""

    def __init__(self, users: dict[str, str], allow_anonymous: bool) -> None:
        self._users = {name: password.encode("utf-8") for name, password in users.items()}
        self._allow_anonymous = allow_anonymous and not users
        self._dummy_password = secrets.token_bytes(16)

    @property
    def is_enabled(self) -> bool:
        return not self._allow_anonymous

    def verify(self, user: str, password: str) -> bool:
        expected = self._users.get(user, self._dummy_password)
        matches = secrets.compare_digest(expected, password.encode("utf-8"))
        return matches and user in self._users

    async def __call__(self, request: Request) -> Optional[str]:
        if self._allow_anonymous:
            return None

        credentials = parse_basic_credentials(request.headers.get("authorization", ""))
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or malformed Basic credentials", UNAUTHORIZED_HEADERS)

        user, password = credentials
        if not self.verify(user, password):
            logger.warning("failed login for user %r from %s", user, request.client.host if request.client else "?")
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid user name or password", UNAUTHORIZED_HEADERS)
        return user

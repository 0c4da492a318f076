"""HTTP Basic authentication against the users file, with a limit on failed logins per client."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from typing import Optional

import anyio
from fastapi import HTTPException, Request, status

from fasttask.users import DEFAULT_USER, UsersFile, UsersFileError, check_password, create_users_file, read_users

# The users file helpers moved to fasttask.users; they stay importable from here.
__all__ = ["Authenticator", "FailedLoginLimiter", "DEFAULT_USER", "UsersFileError", "create_users_file", "read_users"]

logger = logging.getLogger("fasttask.auth")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="FastTask", charset="UTF-8"'}

# Successful checks of hashed passwords are remembered so PBKDF2 runs once per user and password.
MAX_REMEMBERED_LOGINS = 1024
# Beyond this many tracked client addresses the limiter drops the oldest ones.
MAX_TRACKED_CLIENTS = 10_000
# At most this many PBKDF2 checks run in threads at once.
MAX_HASHING_THREADS = 4


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


class FailedLoginLimiter:
    """Count failed logins per client address over a sliding window and block a client at the limit.

    Counts live in the memory of one API process, so with UVICORN_WORKERS > 1 each worker
    process counts on its own.
    """

    def __init__(self, max_failures: int, window_s: float) -> None:
        self._max_failures = max_failures
        self._window_s = window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after_s(self, client: str) -> int:
        """Return the seconds until the client may try again, 0 when it is not blocked."""
        failures = self._recent_failures(client)
        if len(failures) < self._max_failures:
            return 0
        return max(1, math.ceil(failures[0] + self._window_s - time.monotonic()))

    def record_failure(self, client: str) -> None:
        failures = self._recent_failures(client)
        failures.append(time.monotonic())
        self._failures[client] = failures
        self._failures.move_to_end(client)
        while len(self._failures) > MAX_TRACKED_CLIENTS:
            self._failures.popitem(last=False)

    def _recent_failures(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque())
        oldest_counted = time.monotonic() - self._window_s
        while failures and failures[0] <= oldest_counted:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
        return failures


class Authenticator:
    """Check Basic credentials against the users file; with no users, only when anonymous access is on."""

    def __init__(self, users_file: UsersFile, allow_anonymous: bool, limiter: FailedLoginLimiter) -> None:
        self._users_file = users_file
        self._allow_anonymous = allow_anonymous
        self._limiter = limiter
        self._login_key = secrets.token_bytes(32)
        self._remembered_logins: OrderedDict[bytes, None] = OrderedDict()
        self._hashing_limiter = anyio.CapacityLimiter(MAX_HASHING_THREADS)

    @property
    def is_enabled(self) -> bool:
        return not (self._allow_anonymous and not self._users_file.current())

    async def verify(self, user: str, password: str) -> bool:
        stored = self._users_file.current().get(user)
        if stored is None:
            return False

        login_key = self._remember_key(user, password, stored)
        if login_key in self._remembered_logins:
            self._remembered_logins.move_to_end(login_key)
            return True

        matches = await anyio.to_thread.run_sync(check_password, password, stored, limiter=self._hashing_limiter)
        if matches:
            self._remember(login_key)
        return matches

    def _remember_key(self, user: str, password: str, stored: str) -> bytes:
        # A keyed digest, so the remembered logins never hold a password in clear.
        message = "\0".join((user, password, stored)).encode("utf-8")
        return hmac.new(self._login_key, message, hashlib.sha256).digest()

    def _remember(self, login_key: bytes) -> None:
        self._remembered_logins[login_key] = None
        while len(self._remembered_logins) > MAX_REMEMBERED_LOGINS:
            self._remembered_logins.popitem(last=False)

    async def __call__(self, request: Request) -> Optional[str]:
        if not self.is_enabled:
            return None

        client = request.client.host if request.client else "unknown"
        retry_after_s = self._limiter.retry_after_s(client)
        if retry_after_s:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many failed logins from {client}; retry in {retry_after_s} s",
                {"Retry-After": str(retry_after_s)},
            )

        header = request.headers.get("authorization")
        if header is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Basic credentials", UNAUTHORIZED_HEADERS)

        credentials = parse_basic_credentials(header)
        if credentials is None:
            self._limiter.record_failure(client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "malformed Basic credentials", UNAUTHORIZED_HEADERS)

        user, password = credentials
        if not await self.verify(user, password):
            self._limiter.record_failure(client)
            logger.warning("failed login for user %r from %s", user, client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid user name or password", UNAUTHORIZED_HEADERS)
        return user

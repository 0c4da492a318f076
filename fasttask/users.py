"""The users file: reading, writing, password hashing and reloading when the file changes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

logger = logging.getLogger("fasttask.users")

DEFAULT_USER = "admin"

# Stored hashes look like "pbkdf2_sha256$<iterations>$<salt>$<base64 digest>".
HASH_ALGORITHM = "pbkdf2_sha256"
# PBKDF2 iterations for new hashes. Each stored hash records its own count, so changing this
# affects only hashes written afterwards.
PBKDF2_ITERATIONS = 600_000
SALT_BYTES = 16


class UsersFileError(Exception):
    """The users file is missing, unreadable or not a JSON object of names to passwords."""


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Hash a password with PBKDF2-HMAC-SHA256 and a random salt, in the users file format."""
    salt = secrets.token_urlsafe(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"), iterations)
    return f"{HASH_ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


@dataclass(frozen=True)
class PasswordHash:
    iterations: int
    salt: str
    digest: bytes


def parse_password_hash(stored: str) -> Optional[PasswordHash]:
    """Parse a stored PBKDF2 hash; None means the stored value is a plain password."""
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != HASH_ALGORITHM or not parts[1].isdigit() or not parts[2]:
        return None
    try:
        digest = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return None
    iterations = int(parts[1])
    if iterations < 1 or len(digest) != hashlib.sha256().digest_size:
        return None
    return PasswordHash(iterations, parts[2], digest)


def check_password(password: str, stored: str) -> bool:
    """Compare a password with a stored hash or plain password, in constant time for a given length.

    PBKDF2 takes a noticeable fraction of a second, so callers on an event loop run this in a thread.
    """
    parsed = parse_password_hash(stored)
    if parsed is None:
        return hmac.compare_digest(stored.encode("utf-8"), password.encode("utf-8"))
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), parsed.salt.encode("utf-8"), parsed.iterations)
    return hmac.compare_digest(digest, parsed.digest)


def read_users(path: Path) -> dict[str, str]:
    """Read `{"user": "password or hash"}` from the users file; raise UsersFileError when it is invalid."""
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
    for name, password in users.items():
        _check_entry(path, name, password)
    return users


def _check_entry(path: Path, name: str, password: str) -> None:
    # HTTP Basic sends "name:password", so a name with ':' could never log in.
    if not name or ":" in name:
        raise UsersFileError(f"{path}: invalid user name {name!r}: it must be non-empty and contain no ':'")
    if not password:
        raise UsersFileError(f"{path}: user {name!r} has an empty password; set one with `python -m fasttask user add {name}`")


def write_users(path: Path, users: dict[str, str]) -> None:
    """Replace the users file atomically, readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(users, ensure_ascii=False, indent=2) + "\n"
    descriptor, temporary_name = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as temporary_file:
            temporary_file.write(text)
        os.chmod(temporary_name, 0o600)
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise


def create_users_file(path: Path) -> str:
    """Write a users file with one generated password and return that password."""
    password = secrets.token_urlsafe(18)
    write_users(path, {DEFAULT_USER: password})
    return password


class UsersFile:
    """The users of a users file, re-read when the file's size, mtime or inode changes.

    A change is looked for at most once per check_interval_s. When the new content does not
    parse, the users read before stay in force and an error naming the file is logged.
    """

    def __init__(self, path: Path, check_interval_s: float) -> None:
        self.path = path
        self._check_interval_s = check_interval_s
        self._signature = self._stat_signature()
        self._users = read_users(path)
        self._next_check = time.monotonic() + check_interval_s

    def current(self) -> dict[str, str]:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self._check_interval_s
            self._reload_if_changed()
        return self._users

    def _stat_signature(self) -> Optional[tuple[int, int, int]]:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _reload_if_changed(self) -> None:
        signature = self._stat_signature()
        if signature == self._signature:
            return
        self._signature = signature

        try:
            users = read_users(self.path)
        except UsersFileError as exc:
            logger.error("users file not reloaded, keeping the %d users read before: %s", len(self._users), exc)
            return
        self._users = users
        if not users:
            logger.warning("reloaded %s: it has no users, so every login fails until one is added", self.path)
            return
        logger.info("reloaded %s: %d user(s)", self.path, len(users))

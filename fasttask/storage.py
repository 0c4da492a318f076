"""The files folder: upload naming, download confinement and expiry of old files.

Task code opens an uploaded file, or writes an output file for /download, through
`file_path(name)`, which applies the same checks as /download. The worker reads the
folder from FILES_DIR, so API and worker nodes must share it.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from fasttask.constants import INCOMING_DIR_NAME, INTERNAL_DIR_NAME, USERS_FILE_NAME

logger = logging.getLogger("fasttask.storage")

# Linux and macOS limit one path component to 255 bytes; the token and separator use 17.
MAX_NAME_BYTES = 200

DEFAULT_UPLOAD_NAME = "file"


MAX_NAME_PART_BYTES = 255
MAX_PATH_BYTES = 4096


class FileNameError(ValueError):
    """A file name is malformed (400): control characters, empty, absolute or with '..'."""


class FileAccessError(PermissionError):
    """A file name points at something that is never served (403): credentials, internal state, dotfiles."""


# Emoji sequences and some scripts (Persian, Indic) need the zero-width joiner and
# non-joiner. Other format characters are rejected, because right-to-left overrides
# can disguise an extension.
ALLOWED_FORMAT_CHARACTERS = {"\u200c", "\u200d"}


def has_control_characters(name: str) -> bool:
    return any(
        unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp") and character not in ALLOWED_FORMAT_CHARACTERS
        for character in name
    )


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore")


def clean_upload_name(original: str) -> str:
    """Reduce a client-supplied file name to a safe, readable base name.

    The last component after '/' or '\\' is kept (browsers on Windows may send a full
    path), leading dots are dropped so the result is never a dotfile or '..', and the
    name is cut to MAX_NAME_BYTES keeping its extension.
    """
    if "\x00" in original or has_control_characters(original):
        raise FileNameError("the uploaded file name contains NUL or control characters")

    name = unicodedata.normalize("NFC", original)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.strip().lstrip(".").strip()
    if not name:
        return DEFAULT_UPLOAD_NAME

    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension.encode("utf-8")) <= 16:
            extension = "." + extension
            name = _truncate_utf8(stem, MAX_NAME_BYTES - len(extension.encode("utf-8"))) + extension
        else:
            name = _truncate_utf8(name, MAX_NAME_BYTES)
    return name


def stored_upload_name(original: str) -> str:
    """Build a unique stored name: a random token, '_', then the cleaned original name."""
    return f"{secrets.token_hex(8)}_{clean_upload_name(original)}"


def incoming_dir(files_dir: Path) -> Path:
    """Folder for uploads still being received; they are moved into the files folder when complete."""
    return files_dir / INTERNAL_DIR_NAME / INCOMING_DIR_NAME


def _check_name_length(relative: PurePosixPath) -> None:
    # Longer names cannot exist on Linux (NAME_MAX, PATH_MAX); stat() would raise ENAMETOOLONG.
    try:
        encoded_parts = [part.encode("utf-8") for part in relative.parts]
    except UnicodeEncodeError:
        raise FileNameError("file_name is not valid UTF-8 text") from None
    if any(len(part) > MAX_NAME_PART_BYTES for part in encoded_parts):
        raise FileNameError(f"file_name has a folder or file name longer than {MAX_NAME_PART_BYTES} bytes")
    if sum(len(part) + 1 for part in encoded_parts) > MAX_PATH_BYTES:
        raise FileNameError(f"file_name is longer than {MAX_PATH_BYTES} bytes")


def check_relative_name(file_name: str) -> PurePosixPath:
    """Parse a name relative to the files folder; raise FileNameError or FileAccessError."""
    if not file_name or "\x00" in file_name or has_control_characters(file_name):
        raise FileNameError("file_name is empty or contains NUL or control characters")
    if "\\" in file_name:
        raise FileNameError("file_name must use '/' between folders, not '\\'")

    relative = PurePosixPath(file_name)
    _check_name_length(relative)
    if relative.is_absolute():
        raise FileNameError("file_name must be relative to the files folder, not an absolute path")
    if any(part == ".." for part in relative.parts):
        raise FileNameError("file_name must not contain '..'")
    if any(part.startswith(".") for part in relative.parts):
        raise FileAccessError("dotfiles and internal folders are not served")
    if relative.parts == (USERS_FILE_NAME,):
        raise FileAccessError("the users file is not served")
    return relative


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def resolve_in_files_dir(files_dir: Path, file_name: str) -> Path:
    """Return the real path of `file_name` inside the files folder, refusing anything outside it.

    Symbolic links are followed before the containment check, so a link that leaves the
    folder, or that points at the users file or the internal folder, raises FileAccessError.
    The path need not exist.
    """
    relative = check_relative_name(file_name)
    root = files_dir.resolve()
    target = (root / relative).resolve()

    if not _is_inside(target, root):
        raise FileAccessError("file_name resolves to a path outside the files folder")
    if _is_inside(target, root / INTERNAL_DIR_NAME):
        raise FileAccessError("the internal folder is not served")
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        raise FileAccessError("dotfiles and internal folders are not served")
    users_file = root / USERS_FILE_NAME
    if target == users_file or (target.exists() and users_file.exists() and os.path.samefile(target, users_file)):
        raise FileAccessError("the users file is not served")
    return target


def files_dir_from_environment() -> Path:
    # Imported here so that task modules can import this module without reading every setting.
    from fasttask.settings import get_settings

    return get_settings().files_dir


def file_path(file_name: str, files_dir: Optional[Path] = None) -> Path:
    """Return the path of a file in the files folder, for task code to read an upload or write an output.

    `file_name` is the name /upload returned, or a new name (subfolders allowed) for an
    output file that /download will then serve. Raises FileNameError or FileAccessError
    for names that /download would reject.
    """
    folder = files_dir if files_dir is not None else files_dir_from_environment()
    return resolve_in_files_dir(folder, file_name)


@dataclass(frozen=True)
class CleanupReport:
    deleted_files: int
    deleted_bytes: int


def _is_protected_top_level(entry: os.DirEntry) -> bool:
    return entry.name.startswith(".") or entry.name == USERS_FILE_NAME


def _expired_files(files_dir: Path, cutoff: float) -> list[tuple[Path, int]]:
    """List regular files and symbolic links older than `cutoff`, skipping dotfiles and the users file."""
    expired = []
    for top_entry in os.scandir(files_dir):
        if _is_protected_top_level(top_entry):
            continue
        if top_entry.is_dir(follow_symlinks=False):
            for folder, folder_names, file_names in os.walk(top_entry.path, followlinks=False):
                folder_names[:] = [name for name in folder_names if not name.startswith(".")]
                for name in file_names:
                    if not name.startswith("."):
                        _add_if_expired(Path(folder) / name, cutoff, expired)
        else:
            _add_if_expired(Path(top_entry.path), cutoff, expired)
    return expired


def _add_if_expired(path: Path, cutoff: float, expired: list[tuple[Path, int]]) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    is_file_or_link = stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)
    if is_file_or_link and info.st_mtime < cutoff:
        expired.append((path, info.st_size))


def _expired_incoming(files_dir: Path, cutoff: float) -> list[tuple[Path, int]]:
    """List partial uploads left behind by a crash; they live in the internal folder."""
    expired: list[tuple[Path, int]] = []
    folder = incoming_dir(files_dir)
    if folder.is_dir():
        for entry in os.scandir(folder):
            _add_if_expired(Path(entry.path), cutoff, expired)
    return expired


def delete_expired_files(files_dir: Path, max_age_s: float, now: Optional[float] = None) -> CleanupReport:
    """Delete files older than max_age_s (by modification time); the users file and internal state are kept."""
    if not files_dir.is_dir():
        return CleanupReport(0, 0)

    cutoff = (now if now is not None else time.time()) - max_age_s
    deleted_files = 0
    deleted_bytes = 0
    for path, size in _expired_files(files_dir, cutoff) + _expired_incoming(files_dir, cutoff):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("cannot delete expired file %s: %s", path, exc)
            continue
        deleted_files += 1
        deleted_bytes += size

    if deleted_files:
        logger.info("deleted %d expired files (%d bytes) from %s", deleted_files, deleted_bytes, files_dir)
    return CleanupReport(deleted_files, deleted_bytes)


async def expire_files_periodically(files_dir: Path, max_age_s: float, interval_s: float) -> None:
    """Run delete_expired_files in a thread every interval_s until cancelled."""
    import anyio

    logger.info("deleting files older than %d s from %s every %g s", max_age_s, files_dir, interval_s)
    while True:
        try:
            await anyio.to_thread.run_sync(delete_expired_files, files_dir, max_age_s)
        except OSError as exc:
            logger.warning("expiry pass over %s failed: %s", files_dir, exc)
        await anyio.sleep(interval_s)

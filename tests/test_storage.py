"""fasttask.storage on a real folder: upload names, confinement for task code, expiry rules."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fasttask.api.app import start_file_cleanup
from fasttask.settings import Settings
from fasttask.storage import (
    MAX_NAME_BYTES,
    FileAccessError,
    FileNameError,
    clean_upload_name,
    delete_expired_files,
    file_path,
    stored_upload_name,
)


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("报告 2024.xlsx", "报告 2024.xlsx"),
        ("../../x.txt", "x.txt"),
        ("C:\\Users\\me\\a b.txt", "a b.txt"),
        ("/etc/passwd", "passwd"),
        ("...hidden", "hidden"),
        ("..", "file"),
        ("", "file"),
        ("  spaced.txt  ", "spaced.txt"),
        ("cafe\u0301.txt", "café.txt"),
    ],
)
def test_clean_upload_name(original: str, expected: str) -> None:
    assert clean_upload_name(original) == expected


@pytest.mark.parametrize("original", ["a\x00b", "line\nbreak", "del\x7f", "zero\u200bwidth"])
def test_clean_upload_name_rejects_control_characters(original: str) -> None:
    with pytest.raises(FileNameError):
        clean_upload_name(original)


def test_long_name_keeps_extension_within_limit() -> None:
    name = clean_upload_name("长" * 300 + ".xlsx")

    assert name.endswith(".xlsx")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert len(stored_upload_name("长" * 300 + ".xlsx").encode("utf-8")) <= 255


def test_file_path_confines_task_code(tmp_path: Path) -> None:
    (tmp_path / "user_to_passwd.json").write_text("{}", encoding="utf-8")

    assert file_path("out/result.csv", tmp_path) == tmp_path.resolve() / "out" / "result.csv"
    with pytest.raises(FileNameError):
        file_path("../x", tmp_path)
    with pytest.raises(FileAccessError):
        file_path("user_to_passwd.json", tmp_path)
    with pytest.raises(FileAccessError):
        file_path(".fasttask/redis/dump.rdb", tmp_path)


def test_file_path_reads_files_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fasttask.settings import get_settings

    monkeypatch.setenv("FILES_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert file_path("a.txt") == tmp_path.resolve() / "a.txt"
    finally:
        get_settings.cache_clear()


def test_expiry_keeps_links_targets(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep", encoding="utf-8")
    files_dir = tmp_path / "files"
    files_dir.mkdir()
    link = files_dir / "link"
    link.symlink_to(outside)
    old = time.time() - 1000
    os.utime(link, (old, old), follow_symlinks=False)

    report = delete_expired_files(files_dir, max_age_s=60)

    assert report.deleted_files == 1
    assert not link.is_symlink()
    assert outside.read_text(encoding="utf-8") == "keep"


def test_expiry_removes_stale_partial_uploads(tmp_path: Path) -> None:
    incoming = tmp_path / ".fasttask" / "incoming"
    incoming.mkdir(parents=True)
    stale = incoming / "1-abc.part"
    stale.write_bytes(b"partial")
    old = time.time() - 1000
    os.utime(stale, (old, old))

    delete_expired_files(tmp_path, max_age_s=60)

    assert not stale.exists()
    assert incoming.is_dir()


def test_expiration_default_follows_time_limit() -> None:
    assert Settings(time_limit=3660, soft_time_limit=3600).file_expiration_s == 7320
    assert Settings(time_limit=20, soft_time_limit=10, visibility_timeout=30).file_expiration_s == 60
    assert Settings(file_expiration_seconds=120).file_expiration_s == 120


def test_expiration_below_minimum_is_rejected() -> None:
    with pytest.raises(ValueError):
        Settings(file_expiration_seconds=59)


def test_cleanup_switch_off_starts_no_task() -> None:
    assert start_file_cleanup(Settings(file_cleanup_enabled=False)) is None

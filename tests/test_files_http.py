"""/upload and /download against a live API and worker: streaming, names, confinement, limits."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import httpx
import pytest

from tests.conftest import TEST_AUTH, Service, build_service

MIB = 1024 * 1024


def upload_bytes(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return client.post("/upload", files={"file": (name, data, "application/octet-stream")})


def raw_multipart(file_name_header: bytes, data: bytes, boundary: bytes = b"fasttask-boundary") -> tuple[bytes, dict[str, str]]:
    """Build a multipart body by hand, for file names that httpx would escape."""
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + file_name_header + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    return body, {"Content-Type": "multipart/form-data; boundary=" + boundary.decode()}


def filename_star(response: httpx.Response) -> str:
    header = response.headers["content-disposition"]
    encoded = header.split("filename*=UTF-8''", 1)[1]
    return unquote(encoded, encoding="utf-8", errors="strict")


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def visible_files(files_dir: Path) -> set[str]:
    return {path.name for path in files_dir.iterdir() if not path.name.startswith(".")}


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with path.open("wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(MIB))
    return path


def test_upload_download_64_mib_round_trip(client: httpx.Client, service: Service, big_file: Path) -> None:
    with big_file.open("rb") as handle:
        uploaded = client.post("/upload", files={"file": ("big.bin", handle, "application/octet-stream")})
    assert uploaded.status_code == 200
    stored_name = uploaded.json()["file_name"]
    assert stored_name.endswith("_big.bin")
    assert sha256_of_file(service.files_dir / stored_name) == sha256_of_file(big_file)

    digest = hashlib.sha256()
    size = 0
    with client.stream("GET", "/download", params={"file_name": stored_name}) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(64 * MIB)
        for chunk in response.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    assert size == 64 * MIB
    assert digest.hexdigest() == sha256_of_file(big_file)


def test_task_reads_uploaded_file(client: httpx.Client) -> None:
    data = b"fasttask " * 1000
    stored_name = upload_bytes(client, "input.txt", data).json()["file_name"]

    response = client.post("/run/hash_file", json={"file_name": stored_name})

    assert response.status_code == 200
    assert response.json()["result"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_task_output_is_downloadable(client: httpx.Client) -> None:
    response = client.post("/run/write_text_file", json={"file_name": "reports/月报 output.txt", "text": "完成 done"})
    assert response.status_code == 200

    downloaded = client.get("/download", params={"file_name": "reports/月报 output.txt"})

    assert downloaded.status_code == 200
    assert downloaded.content.decode("utf-8") == "完成 done"
    assert filename_star(downloaded) == "月报 output.txt"


@pytest.mark.parametrize("original", ["报告 2024.xlsx", 'quote"semi;colon, comma.txt', "naïve café ß.csv", "emoji 🚀.txt"])
def test_unicode_and_special_names_round_trip(client: httpx.Client, original: str) -> None:
    quoted_name = original.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")
    body, headers = raw_multipart(quoted_name, b"content of " + original.encode("utf-8"))
    uploaded = client.post("/upload", content=body, headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    stored_name = uploaded.json()["file_name"]
    assert stored_name.endswith("_" + original)

    downloaded = client.get("/download", params={"file_name": stored_name})

    assert downloaded.status_code == 200
    assert downloaded.content == b"content of " + original.encode("utf-8")
    assert filename_star(downloaded) == stored_name
    header = downloaded.headers["content-disposition"]
    assert header.startswith('attachment; filename="')
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.isascii()
    assert ";" not in fallback


def test_stored_names_are_unique(client: httpx.Client) -> None:
    first = upload_bytes(client, "same.txt", b"one").json()["file_name"]
    second = upload_bytes(client, "same.txt", b"two").json()["file_name"]

    assert first != second
    assert client.get("/download", params={"file_name": first}).content == b"one"
    assert client.get("/download", params={"file_name": second}).content == b"two"


@pytest.mark.parametrize(
    ("original", "expected_suffix"),
    [
        (b"../../escape.txt", "_escape.txt"),
        (b"/etc/passwd", "_passwd"),
        (b"C:\\Users\\me\\report.docx", "_report.docx"),
        (b"..\\..\\win.txt", "_win.txt"),
        (b".bashrc", "_bashrc"),
        (b"..", "_file"),
        (b"user_to_passwd.json", "_user_to_passwd.json"),
    ],
)
def test_upload_name_never_chooses_folder(client: httpx.Client, service: Service, original: bytes, expected_suffix: str) -> None:
    body, headers = raw_multipart(original, b"data")

    response = client.post("/upload", content=body, headers=headers)

    assert response.status_code == 200, response.text
    stored_name = response.json()["file_name"]
    assert stored_name.endswith(expected_suffix)
    assert "/" not in stored_name
    assert "\\" not in stored_name
    assert (service.files_dir / stored_name).read_bytes() == b"data"
    assert '"tester"' in (service.files_dir / "user_to_passwd.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("original", [b"bad\x01name.txt", b"tab\tname.txt", b"bell\x07.txt", "rtl\u202ename.txt".encode()])
def test_upload_name_with_control_characters_is_400(client: httpx.Client, service: Service, original: bytes) -> None:
    before = visible_files(service.files_dir)
    body, headers = raw_multipart(original, b"data")

    response = client.post("/upload", content=body, headers=headers)

    assert response.status_code == 400
    assert visible_files(service.files_dir) == before


def test_upload_without_file_field_is_422(client: httpx.Client) -> None:
    response = client.post("/upload", files={"other": ("x.txt", b"data")})

    assert response.status_code == 422
    assert "'file'" in response.json()["detail"]


def test_upload_not_multipart_is_415(client: httpx.Client) -> None:
    response = client.post("/upload", content=b"raw bytes", headers={"Content-Type": "application/octet-stream"})

    assert response.status_code == 415


def test_upload_requires_credentials(service: Service) -> None:
    with service.client(auth=None) as anonymous:
        assert upload_bytes(anonymous, "x.txt", b"x").status_code == 401
        assert anonymous.get("/download", params={"file_name": "x.txt"}).status_code == 401


@pytest.fixture(scope="module")
def confinement_layout(service: Service) -> Iterator[Path]:
    """Files and links around the files folder that downloads must never reach."""
    files_dir = service.files_dir
    outside = files_dir.parent / "outside-secret.txt"
    outside.write_text("outside secret", encoding="utf-8")
    (files_dir / ".hidden").write_text("hidden", encoding="utf-8")
    internal = files_dir / ".fasttask"
    internal.mkdir(exist_ok=True)
    (internal / "state.txt").write_text("internal", encoding="utf-8")
    (files_dir / "sub").mkdir(exist_ok=True)
    links = {
        "link-outside": outside,
        "link-users": files_dir / "user_to_passwd.json",
        "link-internal": internal / "state.txt",
        "link-root": Path("/etc/hostname"),
    }
    for name, target in links.items():
        link = files_dir / name
        if not link.is_symlink():
            link.symlink_to(target)
    hard_link = files_dir / "hardlink-users"
    if not hard_link.exists():
        os.link(files_dir / "user_to_passwd.json", hard_link)
    yield files_dir
    for name in [*links, "hardlink-users"]:
        (files_dir / name).unlink(missing_ok=True)


TRAVERSAL_CASES = [
    ("user_to_passwd.json", 403),
    ("./user_to_passwd.json", 403),
    ("sub/../user_to_passwd.json", 400),
    ("../outside-secret.txt", 400),
    ("sub/../../outside-secret.txt", 400),
    ("..", 400),
    ("/etc/passwd", 400),
    ("//etc/passwd", 400),
    ("..\\outside-secret.txt", 400),
    ("sub\\..\\user_to_passwd.json", 400),
    (".hidden", 403),
    (".fasttask/state.txt", 403),
    (".fasttask/redis/dump.rdb", 403),
    ("sub/.hidden", 403),
    ("link-outside", 403),
    ("link-users", 403),
    ("link-internal", 403),
    ("link-root", 403),
    ("hardlink-users", 403),
    ("name\x00.txt", 400),
    ("name\r\nSet-Cookie: x=1", 400),
    ("%2e%2e/outside-secret.txt", 404),
    ("..%2Foutside-secret.txt", 403),
    ("does-not-exist.txt", 404),
    ("sub", 404),
]


@pytest.mark.parametrize(("file_name", "expected_status"), TRAVERSAL_CASES)
def test_download_confinement(client: httpx.Client, confinement_layout: Path, file_name: str, expected_status: int) -> None:
    response = client.get("/download", params={"file_name": file_name})

    assert response.status_code == expected_status, response.text
    assert "detail" in response.json()
    assert "s3cret" not in response.text
    assert "outside secret" not in response.text


def test_download_absolute_path_of_users_file_is_400(client: httpx.Client, service: Service) -> None:
    users_file = str((service.files_dir / "user_to_passwd.json").resolve())

    response = client.get("/download", params={"file_name": users_file})

    assert response.status_code == 400


@pytest.mark.parametrize("raw_query", ["file_name=..%2Foutside-secret.txt", "file_name=%2E%2E%2Foutside-secret.txt",
                                       "file_name=user%5Fto%5Fpasswd.json", "file_name=%2Fetc%2Fpasswd"])
def test_download_percent_encoded_forms(client: httpx.Client, confinement_layout: Path, raw_query: str) -> None:
    response = client.get("/download?" + raw_query)

    assert response.status_code in (400, 403)
    assert "s3cret" not in response.text


def test_upload_over_limit_is_413_and_leaves_nothing(redis_server, tmp_path: Path) -> None:
    limited = build_service(tmp_path, redis_server.port, MAX_UPLOAD_BYTES="1000", FILE_CLEANUP_ENABLED="false")
    try:
        limited.start_api()
        with limited.client() as client:
            declared = upload_bytes(client, "big.bin", b"x" * 200_000)
            streamed = client.post(
                "/upload",
                content=iter([raw_multipart(b"big.bin", b"y" * 5000)[0]]),
                headers=raw_multipart(b"big.bin", b"")[1],
            )
            at_limit = upload_bytes(client, "fits.bin", b"z" * 1000)

        assert declared.status_code == 413
        assert "MAX_UPLOAD_BYTES" in declared.json()["detail"]
        assert streamed.status_code == 413
        assert at_limit.status_code == 200
        assert visible_files(limited.files_dir) == {"user_to_passwd.json", at_limit.json()["file_name"]}
        incoming = limited.files_dir / ".fasttask" / "incoming"
        assert list(incoming.iterdir()) == []
    finally:
        limited.stop()


def test_expired_files_deleted_protected_kept(redis_server, tmp_path: Path) -> None:
    cleaning = build_service(tmp_path, redis_server.port, FILE_EXPIRATION_SECONDS="60", FILE_CLEANUP_INTERVAL_SECONDS="0.2")
    files_dir = cleaning.files_dir
    old = time.time() - 3600
    (files_dir / "sub").mkdir()
    (files_dir / ".fasttask" / "redis").mkdir(parents=True)
    paths = {
        "old": files_dir / "old.txt",
        "old_nested": files_dir / "sub" / "old.txt",
        "fresh": files_dir / "fresh.txt",
        "old_dotfile": files_dir / ".keep",
        "old_internal": files_dir / ".fasttask" / "redis" / "dump.rdb",
    }
    for path in paths.values():
        path.write_text("x", encoding="utf-8")
    for key in ("old", "old_nested", "old_dotfile", "old_internal"):
        os.utime(paths[key], (old, old))
    users_file = files_dir / "user_to_passwd.json"
    os.utime(users_file, (old, old))

    try:
        cleaning.start_api()
        deadline = time.monotonic() + 30
        while (paths["old"].exists() or paths["old_nested"].exists()) and time.monotonic() < deadline:
            time.sleep(0.1)

        assert not paths["old"].exists()
        assert not paths["old_nested"].exists()
        assert paths["fresh"].exists()
        assert paths["old_dotfile"].exists()
        assert paths["old_internal"].exists()
        assert users_file.exists()
        with cleaning.client() as client:
            assert client.get("/openapi.json").status_code == 200
    finally:
        cleaning.stop()


def test_switched_off_routes_are_404_and_hidden(redis_server, tmp_path: Path) -> None:
    switched_off = build_service(
        tmp_path, redis_server.port,
        API_FILE_UPLOAD="false", API_FILE_DOWNLOAD="0", API_REVOKE="no", API_STATUS_INFO="False",
    )
    try:
        switched_off.start_api()
        with switched_off.client() as client:
            paths = client.get("/openapi.json").json()["paths"]
            responses = {
                "/upload": upload_bytes(client, "x.txt", b"x"),
                "/download": client.get("/download", params={"file_name": "x.txt"}),
                "/revoke": client.post("/revoke", json={"result_id": "x"}),
                "/status_info": client.post("/status_info", json={"fields": []}),
                "/status_info GET": client.get("/status_info"),
            }
        for route, response in responses.items():
            assert response.status_code == 404, route
        for path in ("/upload", "/download", "/revoke", "/status_info"):
            assert path not in paths
        assert "/create/noop" in paths
    finally:
        switched_off.stop()


def test_routes_listed_in_openapi(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert "multipart/form-data" in paths["/upload"]["post"]["requestBody"]["content"]
    assert "get" in paths["/download"]
    assert "post" in paths["/revoke"]
    assert {"get", "post"} <= set(paths["/status_info"])


def test_users_file_unchanged_by_uploads(service: Service) -> None:
    assert TEST_AUTH[0] in (service.files_dir / "user_to_passwd.json").read_text(encoding="utf-8")

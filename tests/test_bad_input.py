"""Hostile and malformed requests get a clear 4xx, never a server error, and leave the service up."""

from __future__ import annotations

import socket
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import TEST_AUTH, Service

MAX_BODY_BYTES = 10 * 1024 * 1024
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def openapi_paths(service: Service) -> set[str]:
    with service.client() as client:
        return set(client.get("/openapi.json").json()["paths"])


def require_route(openapi_paths: set[str], path: str) -> None:
    if path not in openapi_paths:
        pytest.skip(f"{path} is not in /openapi.json of this build; the case runs once the route exists")


def raw_http(service: Service, request: bytes) -> bytes:
    """Send raw bytes over a new connection and return the status line, or b'' if the server closed it."""
    address = urlsplit(service.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.split(b"\r\n", 1)[0]


def basic_header() -> bytes:
    return httpx.BasicAuth(*TEST_AUTH)._auth_header.encode("ascii")


def assert_service_alive(client: httpx.Client) -> None:
    assert client.post("/run/get_circle_area", json={"r": 1}).json()["state"] == "SUCCESS"


@pytest.mark.parametrize("body", [b"[]", b"1", b"true", b'"text"', b"[{}]", b"", b"\xff\xfe\x00", b"{\"r\": 1} trailing"])
def test_body_not_an_object_returns_422(client: httpx.Client, body: bytes) -> None:
    response = client.post("/create/get_circle_area", content=body, headers=JSON_HEADERS)

    assert response.status_code == 422, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/",
        "*/*",
        ";;;===",
    ],
)
def test_wrong_content_type_returns_4xx(client: httpx.Client, content_type: str) -> None:
    response = client.post("/create/get_circle_area", content=b'{"r": 1}', headers={"Content-Type": content_type})

    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()


def test_body_over_limit_with_length_returns_413(client: httpx.Client) -> None:
    body = b'{"r": 1, "padding": "' + b"a" * MAX_BODY_BYTES + b'"}'

    response = client.post("/create/get_circle_area", content=body, headers=JSON_HEADERS)

    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["detail"]


def test_chunked_body_over_limit_returns_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"r": 1, "padding": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    response = client.post("/create/get_circle_area", content=chunks(), headers=JSON_HEADERS)

    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["detail"]


def test_body_under_limit_is_accepted(client: httpx.Client) -> None:
    body = b'{"r": 1, "padding": "' + b"a" * (MAX_BODY_BYTES // 2) + b'"}'

    response = client.post("/run/get_circle_area", content=body, headers=JSON_HEADERS)

    assert response.status_code == 200
    assert response.json()["state"] == "SUCCESS"


@pytest.mark.parametrize("depth", [900, 5_000, 100_000])
def test_deeply_nested_json_body_returns_422(client: httpx.Client, depth: int) -> None:
    response = client.post("/create/get_circle_area", content=b"[" * depth + b"]" * depth, headers=JSON_HEADERS)

    assert response.status_code == 422, response.text[:300]
    assert_service_alive(client)


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_extra_field_returns_422(client: httpx.Client, depth: int) -> None:
    body = b'{"r": 1, "x": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"

    response = client.post("/create/get_circle_area", content=body, headers=JSON_HEADERS)

    assert response.status_code == 422, response.text[:300]
    assert "nested too deeply" in response.text


def test_nested_extra_field_within_limit_is_ignored(client: httpx.Client) -> None:
    body = b'{"r": 1, "x": ' + b'{"a":' * 500 + b"1" + b"}" * 500 + b"}"

    response = client.post("/run/get_circle_area", content=body, headers=JSON_HEADERS)

    assert response.status_code == 200
    assert response.json()["state"] == "SUCCESS"


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (b"9" * 5000, "digits"),
        (b"-" + b"9" * 100_000, "digits"),
        (b"1e999", "range of a 64-bit float"),
        (b"-1e999", "range of a 64-bit float"),
        (b"1" + b"0" * 4000 + b".5", "range of a 64-bit float"),
    ],
)
def test_huge_number_returns_422_with_reason(client: httpx.Client, number: bytes, message: str) -> None:
    response = client.post("/create/get_circle_area", content=b'{"r": ' + number + b"}", headers=JSON_HEADERS)

    assert response.status_code == 422
    assert message in response.text


def test_large_integer_within_digit_limit_returns_422(client: httpx.Client) -> None:
    response = client.post("/create/get_circle_area", content=b'{"r": ' + b"9" * 400 + b"}", headers=JSON_HEADERS)

    assert response.status_code == 422


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"])
def test_non_finite_constant_returns_422(client: httpx.Client, constant: bytes) -> None:
    response = client.post("/run/get_circle_area", content=b'{"r": ' + constant + b"}", headers=JSON_HEADERS)

    assert response.status_code == 422


def test_result_overflowing_to_infinity_fails_task(client: httpx.Client) -> None:
    response = client.post("/run/get_hypotenuse", json={"a": 1e200, "b": 1})

    assert response.status_code == 200
    assert response.json()["state"] == "FAILURE"
    assert "NaN or Infinity" in response.json()["result"]


@pytest.mark.parametrize("length", [256, 10_000, 60_000])
def test_overlong_result_id_returns_4xx(client: httpx.Client, length: int) -> None:
    response = client.get("/check/get_circle_area", params={"result_id": "a" * length})

    assert 400 <= response.status_code < 500


def test_overlong_query_string_is_rejected(service: Service, client: httpx.Client) -> None:
    path = b"/check/get_circle_area?result_id=" + b"a" * 1_000_000
    request = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + basic_header() + b"\r\nConnection: close\r\n\r\n"

    status_line = raw_http(service, request)

    assert status_line.startswith(b"HTTP/1.1 4"), status_line
    assert_service_alive(client)


def test_many_query_parameters_return_4xx(client: httpx.Client) -> None:
    params = [("result_id", "x")] + [(f"p{index}", "v") for index in range(5000)]

    response = client.get("/check/get_circle_area", params=params)

    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    "header_line",
    [
        b"X-Custom: caf\xe9 \xff\xfe",
        b"Content-Type: application/json; charset=\xe9",
        b"Authorization: Basic \xe9\xe8",
        b"X-\xe9: value",
        b"User-Agent: \x80\x81\x82",
    ],
)
def test_non_ascii_header_bytes_return_4xx(service: Service, client: httpx.Client, header_line: bytes) -> None:
    body = b'{"r": 1}'
    request = (
        b"POST /create/get_circle_area HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + (b"" if header_line.startswith(b"Authorization") else basic_header() + b"\r\n")
        + header_line + b"\r\n"
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )

    status_line = raw_http(service, request)

    assert status_line.startswith(b"HTTP/1.1 4"), status_line
    assert_service_alive(client)


def test_multipart_body_to_json_route_returns_422(client: httpx.Client) -> None:
    response = client.post("/create/get_circle_area", files={"file": ("a.txt", b"hello")})

    assert response.status_code == 422


MALFORMED_MULTIPART = {
    "no boundary": ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--x--\r\n"),
    "wrong boundary": ("multipart/form-data; boundary=yyy", b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--x--\r\n"),
    "truncated": ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc"),
    "no file field": ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nabc\r\n--x--\r\n"),
    "no disposition": ("multipart/form-data; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\nabc\r\n--x--\r\n"),
    "header without colon": ("multipart/form-data; boundary=x", b"--x\r\nbroken header line\r\n\r\nabc\r\n--x--\r\n"),
    "empty": ("multipart/form-data; boundary=x", b""),
    "overlong boundary": ("multipart/form-data; boundary=" + "b" * 5000, b"--" + b"b" * 5000 + b"--\r\n"),
    "many parts": ("multipart/form-data; boundary=x", b"".join(b"--x\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n" % index for index in range(5000)) + b"--x--\r\n"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_MULTIPART))
def test_malformed_multipart_upload_returns_4xx(openapi_paths: set[str], client: httpx.Client, case: str) -> None:
    require_route(openapi_paths, "/upload")
    content_type, body = MALFORMED_MULTIPART[case]

    response = client.post("/upload", content=body, headers={"Content-Type": content_type})

    assert 400 <= response.status_code < 500, response.text[:300]
    assert "detail" in response.json()
    assert_service_alive(client)


# python-multipart 0.0.34 runs CR and LF bytes before the first boundary, and the epilogue
# after the closing boundary, through separate branches of its parser (multipart.py). Both
# are allowed by RFC 2046, so the upload succeeds.
CRLF_PADDED_MULTIPART = {
    "crlf preamble": b"\r\n" * 500_000 + b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--x--\r\n",
    "crlf epilogue": b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--x--\r\n" + b"\r\n" * 500_000,
}


@pytest.mark.parametrize("case", sorted(CRLF_PADDED_MULTIPART))
def test_crlf_padded_multipart_upload_stores_file(openapi_paths: set[str], client: httpx.Client, case: str) -> None:
    require_route(openapi_paths, "/upload")

    response = client.post("/upload", content=CRLF_PADDED_MULTIPART[case], headers={"Content-Type": "multipart/form-data; boundary=x"})

    assert response.status_code == 200, response.text[:300]
    stored_name = response.json()["file_name"]
    downloaded = client.get("/download", params={"file_name": stored_name})
    assert downloaded.status_code == 200
    assert downloaded.content == b"abc"


@pytest.mark.parametrize("file_name", ["", "a" * 5000, "../../etc/passwd", "%00", "名字\x00.txt", "\r\n"])
def test_download_odd_names_return_4xx(openapi_paths: set[str], client: httpx.Client, file_name: str) -> None:
    require_route(openapi_paths, "/download")

    response = client.get("/download", params={"file_name": file_name})

    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/create/get_circle_area", b'{"\\ud800": 1}'),
        ("/create/get_circle_area", b'{"r": 1, "fasttask_concurrency_params": {"concurrency_key": "\\ud800"}}'),
        ("/revoke", b'{"result_id": "\\ud800"}'),
        ("/status_info", b'{"fields": ["\\ud800"]}'),
    ],
)
def test_lone_surrogate_echoed_in_422(client: httpx.Client, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert "detail" in response.json()

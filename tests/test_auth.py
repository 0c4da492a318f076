"""HTTP Basic authentication on every route except /health."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import TEST_USERS, Service

PROTECTED = [
    ("POST", "/create/get_circle_area"),
    ("GET", "/check/get_circle_area?result_id=x"),
    ("POST", "/run/get_circle_area"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
]


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_route_without_credentials_returns_401(service: Service, method: str, path: str) -> None:
    with service.client(auth=None) as client:
        response = client.request(method, path, json={"r": 1})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_health_answers_without_credentials(service: Service) -> None:
    with service.client(auth=None) as client:
        response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_answers_head_requests(service: Service) -> None:
    with service.client(auth=None) as client:
        assert client.head("/health").status_code == 200


def test_docs_with_credentials_returns_page(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


def test_wrong_password_returns_401(service: Service) -> None:
    with service.client(auth=("tester", "wrong")) as client:
        response = client.post("/run/get_circle_area", json={"r": 1})

    assert response.status_code == 401
    assert response.json()["detail"] == "invalid user name or password"


def test_unknown_user_returns_401(service: Service) -> None:
    with service.client(auth=("nobody", TEST_USERS["tester"])) as client:
        assert client.get("/openapi.json").status_code == 401


def test_non_ascii_user_logs_in(service: Service) -> None:
    headers = basic(f"张三:{TEST_USERS['张三']}".encode("utf-8"))

    with service.client(auth=None) as client:
        response = client.post("/run/get_circle_area", json={"r": 2}, headers=headers)

    assert response.status_code == 200
    assert response.json()["state"] == "SUCCESS"


def test_password_with_colon_logs_in(service: Service) -> None:
    assert ":" in TEST_USERS["tester"]

    with service.client() as client:
        assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!notbase64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer abc.def",
        "basic",
        "Basic " + base64.b64encode(b"tester").decode()[:-1],
    ],
)
def test_malformed_header_returns_401(service: Service, header: str) -> None:
    with service.client(auth=None) as client:
        response = client.get("/openapi.json", headers={"Authorization": header})

    assert response.status_code == 401


def test_non_ascii_bytes_in_header_returns_401(service: Service) -> None:
    with service.client(auth=None) as client:
        response = client.get("/openapi.json", headers={"Authorization": "Basic \u00e9\u00e8".encode("latin-1")})

    assert response.status_code == 401


def test_user_name_is_case_sensitive(service: Service) -> None:
    with service.client(auth=("TESTER", TEST_USERS["tester"])) as client:
        assert client.get("/openapi.json").status_code == 401

"""Invalid parameters are rejected with 422 before anything is queued."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.conftest import Service


def issued_count(service: Service) -> int:
    """Count the task ids the API has issued; every queued task gets one before it is sent."""
    client = redis.Redis(port=service.redis_port)
    try:
        return sum(1 for _ in client.scan_iter("fasttask:task:*", count=1000))
    finally:
        client.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"r": 0}',
        b'{"r": -1}',
        b'{"r": "five"}',
        b'{}',
        b'{"r": NaN}',
        b'{"r": Infinity}',
        b'{"r": -Infinity}',
        b'{"r": 5',
        b'not json at all',
        b'[5]',
        b'"r"',
        b'null',
    ],
)
def test_create_invalid_body_returns_422(client: httpx.Client, body: bytes) -> None:
    response = client.post("/create/get_circle_area", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert "detail" in response.json()


def test_run_with_nan_returns_422(client: httpx.Client) -> None:
    response = client.post("/run/get_circle_area", content=b'{"r": NaN}', headers={"Content-Type": "application/json"})

    assert response.status_code == 422


def test_create_without_body_returns_422(client: httpx.Client) -> None:
    assert client.post("/create/get_circle_area").status_code == 422


def test_create_with_text_content_type_returns_422(client: httpx.Client) -> None:
    response = client.post("/create/get_circle_area", content=b'{"r": 5}', headers={"Content-Type": "text/plain"})

    assert response.status_code == 422


def test_invalid_body_queues_nothing(service: Service, client: httpx.Client) -> None:
    before = issued_count(service)

    for body in (b'{"a": 0, "b": 1}', b'{"a": NaN, "b": 1}', b"{"):
        client.post("/create/get_hypotenuse", content=body, headers={"Content-Type": "application/json"})

    assert issued_count(service) == before
    client.post("/create/get_hypotenuse", json={"a": 3, "b": 4})
    assert issued_count(service) == before + 1


def test_check_without_result_id_returns_422(client: httpx.Client) -> None:
    assert client.get("/check/get_circle_area").status_code == 422


def test_check_negative_wait_returns_422(client: httpx.Client) -> None:
    response = client.get("/check/get_circle_area", params={"result_id": "x", "wait": -1})

    assert response.status_code == 422


def test_run_timeout_above_maximum_returns_422(client: httpx.Client) -> None:
    response = client.post("/run/get_circle_area", json={"r": 1}, params={"timeout": 10_000})

    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        b'{"x": "inf"}',
        b'{"x": "-Infinity"}',
        b'{"x": "nan"}',
        b'{"x": 1e400}',
        b'{"note": "\\ud800"}',
    ],
)
def test_non_json_values_in_params_return_422(client: httpx.Client, body: bytes) -> None:
    response = client.post("/create/echo_value", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text


def test_result_with_infinity_is_failure(client: httpx.Client) -> None:
    response = client.post("/run/get_hypotenuse", json={"a": 1e200, "b": 1e200})

    assert response.status_code == 200
    assert response.json()["state"] == "FAILURE"
    assert "NaN or Infinity" in response.json()["result"]


def test_result_with_lone_surrogate_is_failure(client: httpx.Client) -> None:
    response = client.post("/run/echo_value", json={"code_point": 0xD800})

    assert response.status_code == 200
    assert response.json()["state"] == "FAILURE"
    assert "lone surrogate" in response.json()["result"]


def test_echo_value_round_trips_unicode(client: httpx.Client) -> None:
    response = client.post("/run/echo_value", json={"x": 1.5, "note": "报告 ✓", "code_point": 0x1F600})

    assert response.json()["result"] == {"x": 1.5, "note": "报告 ✓", "character": "\U0001F600"}

"""The task routes against a live API and worker: create, check, run, failures and unknown ids."""

from __future__ import annotations

import math
import uuid

import httpx


def test_create_then_check_returns_area(client: httpx.Client) -> None:
    created = client.post("/create/get_circle_area", json={"r": 5})

    assert created.status_code == 200
    body = created.json()
    assert body["state"] == "PENDING"
    assert body["result"] == ""
    assert body["result_type"] == "text"
    uuid.UUID(body["id"])

    checked = client.get("/check/get_circle_area", params={"result_id": body["id"], "wait": 30})

    assert checked.status_code == 200
    assert checked.json() == {
        "id": body["id"],
        "state": "SUCCESS",
        "result": {"area": math.pi * 25},
        "result_type": "json",
    }


def test_run_returns_result(client: httpx.Client) -> None:
    response = client.post("/run/get_circle_area", json={"r": 5})

    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "SUCCESS"
    assert body["result"] == {"area": 78.53981633974483}
    assert body["result_type"] == "json"


def test_run_task_importing_packages_helper(client: httpx.Client) -> None:
    response = client.post("/run/get_hypotenuse", json={"a": 3, "b": 4})

    assert response.status_code == 200
    assert response.json()["result"] == {"hypotenuse": 5.0}


def test_check_without_wait_shows_unfinished_state(client: httpx.Client) -> None:
    task_id = client.post("/create/sleep_for", json={"seconds": 2}).json()["id"]

    response = client.get("/check/sleep_for", params={"result_id": task_id})

    assert response.status_code == 200
    assert response.json()["state"] in {"PENDING", "STARTED"}
    assert response.json()["result_type"] == "text"
    finished = client.get("/check/sleep_for", params={"result_id": task_id, "wait": 30}).json()
    assert finished["state"] == "SUCCESS"
    assert finished["result"] == {"slept": 2}


def test_check_wait_returns_when_task_finishes(client: httpx.Client) -> None:
    task_id = client.post("/create/sleep_for", json={"seconds": 1}).json()["id"]

    response = client.get("/check/sleep_for", params={"result_id": task_id, "wait": 60})

    assert response.json()["state"] == "SUCCESS"


def test_check_wait_times_out_with_current_state(client: httpx.Client) -> None:
    task_id = client.post("/create/sleep_for", json={"seconds": 5}).json()["id"]

    response = client.get("/check/sleep_for", params={"result_id": task_id, "wait": 0.5})

    assert response.status_code == 200
    assert response.json()["state"] in {"PENDING", "STARTED"}


def test_run_timeout_answers_202_with_id(client: httpx.Client) -> None:
    response = client.post("/run/sleep_for", json={"seconds": 3}, params={"timeout": 0.5})

    assert response.status_code == 202
    body = response.json()
    assert body["state"] in {"PENDING", "STARTED"}
    finished = client.get("/check/sleep_for", params={"result_id": body["id"], "wait": 30}).json()
    assert finished["state"] == "SUCCESS"
    assert finished["result"] == {"slept": 3}


def test_failing_task_ends_as_failure_with_error_text(client: httpx.Client) -> None:
    response = client.post("/run/always_fails", json={"message": "disk is full"})

    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "FAILURE"
    assert body["result"] == "ValueError: disk is full"
    assert body["result_type"] == "text"


def test_result_not_matching_model_is_failure(client: httpx.Client) -> None:
    body = client.post("/run/wrong_result", json={}).json()

    assert body["state"] == "FAILURE"
    assert "does not match its Result model" in body["result"]
    assert "value" in body["result"]


def test_check_unknown_id_returns_404(client: httpx.Client) -> None:
    response = client.get("/check/get_circle_area", params={"result_id": str(uuid.uuid4())})

    assert response.status_code == 404
    assert "unknown task id" in response.json()["detail"]


def test_check_id_of_other_task_returns_404(client: httpx.Client) -> None:
    task_id = client.post("/create/noop", json={}).json()["id"]

    response = client.get("/check/get_circle_area", params={"result_id": task_id})

    assert response.status_code == 404
    assert "'noop'" in response.json()["detail"]


def test_check_long_wait_for_unknown_id_returns_404_at_once(client: httpx.Client) -> None:
    response = client.get("/check/noop", params={"result_id": "not-a-uuid", "wait": 60}, timeout=5)

    assert response.status_code == 404


def test_unknown_task_name_returns_404(client: httpx.Client) -> None:
    assert client.post("/create/no_such_task", json={}).status_code == 404
    assert client.post("/run/no_such_task", json={}).status_code == 404
    assert client.get("/check/no_such_task", params={"result_id": "x"}).status_code == 404


def test_openapi_types_each_task(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()

    create = document["paths"]["/create/get_circle_area"]["post"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][body_ref.rsplit("/", 1)[-1]]
    assert body_schema["properties"]["r"]["exclusiveMinimum"] == 0
    assert "/check/get_circle_area" in document["paths"]
    assert "202" in document["paths"]["/run/get_circle_area"]["post"]["responses"]
    result_schemas = [name for name in document["components"]["schemas"] if "Result" in name]
    assert result_schemas

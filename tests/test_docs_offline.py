"""/docs and /redoc load everything from the service itself, also behind a path prefix.

The browser tests drive Debian's headless Chromium with Playwright and record every request
the pages make. A request to another origin is aborted and fails the test.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route, sync_playwright

from fasttask.embedded import EmbeddedRedis
from tests.conftest import TEST_AUTH, Service, build_service
from tests.prefix_proxy import PrefixProxy

PREFIX = "/fasttask"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PAGE_TIMEOUT_MS = 60_000


def find_chromium() -> Optional[str]:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def prefixed_service(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An API started with ROOT_PATH=/fasttask and a worker, sharing the session's Redis."""
    running = build_service(tmp_path_factory.mktemp("prefixed"), redis_server.port, ROOT_PATH=PREFIX)
    try:
        running.start_worker()
        running.start_api()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def proxy(prefixed_service: Service) -> Iterator[PrefixProxy]:
    running = PrefixProxy(prefixed_service.base_url, PREFIX)
    running.start()
    yield running
    running.stop()


@dataclass
class RecordedTraffic:
    """Every request a browser context made, and those to other origins, which were aborted."""

    origin: str
    requests: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh headless Chromium profile that sends the test user's credentials on Basic challenges."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found on PATH: install Debian's package with `apt-get install chromium`")

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            http_credentials={"username": TEST_AUTH[0], "password": TEST_AUTH[1]},
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def record_traffic(context: BrowserContext, origin: str) -> RecordedTraffic:
    traffic = RecordedTraffic(origin)

    def allow_own_origin(route: Route) -> None:
        url = route.request.url
        if url.startswith(origin + "/"):
            route.continue_()
        else:
            traffic.foreign_requests.append(url)
            route.abort()

    context.route("**/*", allow_own_origin)
    context.on("request", lambda request: traffic.requests.append(request.url))
    context.on(
        "response",
        lambda response: traffic.failed_responses.append(f"{response.status} {response.url}")
        if response.status >= 400 else None,
    )
    return traffic


def try_out_create_circle_area(page: Page) -> dict:
    """Run "Try it out" on create/get_circle_area with r = 5 and return the response body."""
    operation = page.locator("#operations-create-create_get_circle_area")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("textarea.body-param__text").fill(json.dumps({"r": 5}))
    operation.locator("button.execute").click()

    response_body = operation.locator(".live-responses-table .response-col_description pre.microlight").first
    response_body.wait_for()
    return json.loads(response_body.inner_text())


def assert_task_succeeds(client: httpx.Client, task_id: str) -> None:
    response = client.get("/check/get_circle_area", params={"result_id": task_id, "wait": 60})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUCCESS"
    assert response.json()["result"]["area"] == pytest.approx(78.53981633974483)


def assert_only_own_origin(traffic: RecordedTraffic) -> None:
    assert traffic.requests, "the browser made no request"
    assert traffic.foreign_requests == []
    network_requests = [url for url in traffic.requests if not url.startswith(("data:", "blob:"))]
    assert all(url.startswith(traffic.origin + "/") for url in network_requests), network_requests
    assert traffic.failed_responses == []


# Without a browser.


def test_docs_page_references_only_local_assets(client: httpx.Client) -> None:
    html = client.get("/docs").text

    assert 'src="/docs-assets/swagger-ui-bundle.js"' in html
    assert 'href="/docs-assets/swagger-ui.css"' in html
    assert "https://" not in html
    assert "http://" not in html


def test_redoc_page_references_only_local_assets(client: httpx.Client) -> None:
    html = client.get("/redoc").text

    assert 'src="/docs-assets/redoc.standalone.js"' in html
    assert "fonts.googleapis.com" not in html
    assert "https://" not in html


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "text/javascript"),
        ("favicon.png", "image/png"),
    ],
)
def test_docs_assets_are_served(client: httpx.Client, name: str, media_type: str) -> None:
    response = client.get(f"/docs-assets/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert len(response.content) > 500


@pytest.mark.parametrize("name", ["../settings.py", "..%2F..%2Fsetting.py", "README.md", "redoc.LICENSE", "nothing.js"])
def test_unknown_docs_asset_is_404(client: httpx.Client, name: str) -> None:
    response = client.get(f"/docs-assets/{name}")

    assert response.status_code == 404


def test_docs_assets_require_credentials(service: Service) -> None:
    with service.client(auth=None) as anonymous:
        response = anonymous.get("/docs-assets/swagger-ui-bundle.js")

    assert response.status_code == 401


def test_favicon_is_served(client: httpx.Client) -> None:
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"


def test_prefixed_docs_use_prefix(proxy: PrefixProxy) -> None:
    with httpx.Client(base_url=proxy.base_url, auth=TEST_AUTH, timeout=30) as client:
        html = client.get("/docs").text
        document = client.get("/openapi.json").json()
        asset = client.get("/docs-assets/swagger-ui-bundle.js")
        redoc_html = client.get("/redoc").text

    assert f"url: '{PREFIX}/openapi.json'" in html
    assert f'src="{PREFIX}/docs-assets/swagger-ui-bundle.js"' in html
    assert f'spec-url="{PREFIX}/openapi.json"' in redoc_html
    assert document["servers"] == [{"url": PREFIX}]
    assert asset.status_code == 200


def test_unprefixed_openapi_has_no_servers(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()

    assert "servers" not in document


# In Chromium.


def test_swagger_ui_try_it_out_offline(service: Service, browser_context: BrowserContext) -> None:
    traffic = record_traffic(browser_context, service.base_url)
    page = browser_context.new_page()

    page.goto(service.base_url + "/docs")
    created = try_out_create_circle_area(page)

    assert created["state"] == "PENDING"
    with service.client() as client:
        assert_task_succeeds(client, created["id"])
    assert service.base_url + "/docs-assets/swagger-ui-bundle.js" in traffic.requests
    assert service.base_url + "/openapi.json" in traffic.requests
    assert_only_own_origin(traffic)


def test_redoc_shows_task_schema_offline(service: Service, browser_context: BrowserContext) -> None:
    traffic = record_traffic(browser_context, service.base_url)
    page = browser_context.new_page()

    page.goto(service.base_url + "/redoc")
    page.get_by_text("radius, greater than 0").first.wait_for()

    assert page.get_by_text("create get_circle_area").count() > 0
    assert page.get_by_text("fasttask_concurrency_params").count() > 0
    assert service.base_url + "/docs-assets/redoc.standalone.js" in traffic.requests
    assert_only_own_origin(traffic)


def test_swagger_ui_behind_prefix_proxy(proxy: PrefixProxy, browser_context: BrowserContext) -> None:
    traffic = record_traffic(browser_context, proxy.origin)
    page = browser_context.new_page()

    page.goto(proxy.base_url + "/docs")
    created = try_out_create_circle_area(page)

    with httpx.Client(base_url=proxy.base_url, auth=TEST_AUTH, timeout=90) as client:
        assert_task_succeeds(client, created["id"])
    assert proxy.base_url + "/openapi.json" in traffic.requests
    assert proxy.base_url + "/create/get_circle_area" in traffic.requests
    assert all(url.startswith(proxy.base_url + "/") for url in traffic.requests if url.startswith("http")), traffic.requests
    assert_only_own_origin(traffic)

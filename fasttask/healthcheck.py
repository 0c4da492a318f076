"""`python -m fasttask healthcheck`: check that this node's API or worker responds, for Docker's HEALTHCHECK."""

from __future__ import annotations

import logging
import socket
import ssl
import urllib.error
import urllib.request
from typing import Optional

from fasttask.settings import NodeType, Settings
from fasttask.worker import create_celery_app

logger = logging.getLogger("fasttask.healthcheck")

WILDCARD_ADDRESSES = {"0.0.0.0", "::", ""}


def health_url(settings: Settings) -> str:
    """Return the URL of this node's GET /health, reached over loopback when the API listens on every address."""
    scheme = "https" if settings.ssl_certfile else "http"
    host = "127.0.0.1" if settings.host in WILDCARD_ADDRESSES else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.port}/health"


def check_api(settings: Settings, timeout_s: float) -> Optional[str]:
    """Return None when GET /health returns 200, else the reason."""
    url = health_url(settings)

    # The probe talks to this machine's own API, whose certificate may be issued for another name.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} returned {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} failed: {exc}"
    return None if status == 200 else f"{url} returned {status}"


def is_local_node(node_name: str, settings: Settings) -> bool:
    """Tell whether a Celery node name belongs to this machine or container."""
    if settings.worker_name:
        return node_name == settings.worker_name
    return node_name.partition("@")[2] == socket.gethostname()


def check_worker(settings: Settings, timeout_s: float) -> Optional[str]:
    """Return None when a worker on this host replies to a Celery ping through the broker, else the reason."""
    app = create_celery_app(settings, {}, register=False)
    try:
        replies = app.control.ping(timeout=timeout_s)
    except Exception as exc:  # kombu and redis raise many types for an unreachable broker
        return f"ping through {settings.broker_display} failed: {type(exc).__name__}: {exc}"
    finally:
        app.close()

    local = [name for reply in replies for name in reply if is_local_node(name, settings)]
    if not local:
        expected = settings.worker_name or f"any worker on host {socket.gethostname()}"
        return f"{expected} did not answer a ping within {timeout_s:g} s"
    return None


def run_healthcheck(settings: Settings, timeout_s: float = 5.0) -> int:
    """Check what NODE_TYPE runs here; return 0 when healthy and 1 otherwise, as Docker expects."""
    checks = []
    if settings.node_type in (NodeType.SINGLE_NODE, NodeType.DISTRIBUTED_MASTER):
        checks.append(check_api)
    if settings.node_type in (NodeType.SINGLE_NODE, NodeType.DISTRIBUTED_WORKER):
        checks.append(check_worker)

    failures = [reason for check in checks if (reason := check(settings, timeout_s)) is not None]
    for reason in failures:
        logger.error("unhealthy: %s", reason)
    return 1 if failures else 0

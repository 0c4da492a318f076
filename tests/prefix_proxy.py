"""A small reverse proxy that serves an upstream under a path prefix, as nginx does with
`location /fasttask/ { proxy_pass http://127.0.0.1:8005/; }`: the prefix is removed before
the request goes upstream."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers that apply to one connection only (RFC 9110, section 7.6.1) are not forwarded.
HOP_BY_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class PrefixProxy:
    """Forwards `<prefix>/<path>` on a loopback port to `<upstream>/<path>`."""

    def __init__(self, upstream_url: str, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        upstream = urlsplit(upstream_url)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class(upstream.hostname, upstream.port))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self, upstream_host: str, upstream_port: int) -> type[BaseHTTPRequestHandler]:
        prefix = self.prefix

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                if not self.path.startswith(prefix + "/"):
                    self.send_error(404, f"only {prefix}/ is proxied")
                    return

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP_HEADERS}
                connection = http.client.HTTPConnection(upstream_host, upstream_port, timeout=120)
                try:
                    connection.request(self.command, self.path[len(prefix):], body=body, headers=headers)
                    response = connection.getresponse()
                    content = response.read()
                finally:
                    connection.close()

                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP_HEADERS and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

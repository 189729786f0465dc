"""``/healthz`` and ``/metrics`` of a worker on a small threaded HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST


class HealthServer:
    """Serves ``health()`` -> (ok, details) on /healthz (200/503) and ``metrics()`` bytes on /metrics."""

    def __init__(self, host: str, port: int, health: Callable[[], tuple[bool, dict]],
                 metrics: Callable[[], bytes]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, details = outer._health()
                    self._send(200 if ok else 503, "application/json", json.dumps(details).encode())
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, outer._metrics())
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes every few seconds would flood the log
                pass

        self._health = health
        self._metrics = metrics
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="ludus-http", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""The worker's small threaded HTTP server: probes, Prometheus metrics and the scaling signal.

- ``/livez``: the process serves (200 while its loop runs). Kubernetes' liveness and startup probes use it; it
  never looks at the broker or the database, so an outage of either cannot restart the container.
- ``/readyz`` (and ``/healthz``, the same for older probes and the image's HEALTHCHECK): 200 when the broker
  connection and the database answer, 503 otherwise. Kubernetes' readiness probe uses it.
- ``/metrics``: Prometheus text.
- ``/backlog``: the backlog as JSON (``ludus.cluster.autoscale.Backlog.to_dict``): KEDA's metrics-api trigger
  reads ``architectures.<arch>``, the jobs that may run on that architecture (ready plus unfinished).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from ludus.constants import BACKLOG_PATH, HEALTH_PATH, LIVENESS_PATH, METRICS_PATH, READINESS_PATH

Probe = Callable[[], tuple[bool, dict]]


class HealthServer:
    """Serves the probes (200/503 with a JSON body), ``metrics()`` bytes and ``backlog()`` JSON.

    ``health`` is the readiness check; ``liveness`` defaults to "the server answers".
    """

    def __init__(
        self,
        host: str,
        port: int,
        health: Probe,
        metrics: Callable[[], bytes],
        *,
        liveness: Probe | None = None,
        backlog: Callable[[], dict] | None = None,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path in (READINESS_PATH, HEALTH_PATH):
                        self._probe(outer._health)
                    elif path == LIVENESS_PATH:
                        self._probe(outer._liveness)
                    elif path == METRICS_PATH:
                        self._send(200, CONTENT_TYPE_LATEST, outer._metrics())
                    elif path == BACKLOG_PATH and outer._backlog is not None:
                        self._send(200, "application/json", json.dumps(outer._backlog()).encode())
                    else:
                        self._send(404, "text/plain", b"not found\n")
                except Exception as exc:  # noqa: BLE001 - a failing check answers 500, it never kills the server
                    self._send(500, "application/json", json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())

            def _probe(self, probe: Probe) -> None:
                ok, details = probe()
                self._send(200 if ok else 503, "application/json", json.dumps(details).encode())

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes every few seconds would flood the log
                pass

        self._health = health
        self._liveness = liveness or (lambda: (True, {"status": "alive"}))
        self._metrics = metrics
        self._backlog = backlog
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

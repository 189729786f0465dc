"""``ludus serve``: the web view on the standard library's WSGI server, one thread per request."""

from __future__ import annotations

from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ludus.errors import InputError
from ludus.web.app import WebView


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser's keep-alive connection must not hold a shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # requests are not logged: a read-only view
        pass


def make_web_server(view: WebView, host: str, port: int) -> WSGIServer:
    """A bound server for ``view`` (port 0: any free port; ``server.server_port`` tells which)."""
    if not 0 <= port <= 65535:
        raise InputError("port", port, "must be in 0..65535")
    try:
        return make_server(host, port, view, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise InputError("port", f"{host}:{port}", f"cannot listen there: {exc.strerror or exc}") from None

"""A Meta stand-in on a real threaded HTTP server on 127.0.0.1, for tests that need several
requests at Meta at once (requests-mock lets one through at a time)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """Answers with JSON and keeps quiet in the test output."""

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


def serve_in_thread(server: ThreadingHTTPServer) -> None:
    """Serve ``server`` until its ``shutdown()``."""
    threading.Thread(target=server.serve_forever, daemon=True).start()


def stop_serving(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()

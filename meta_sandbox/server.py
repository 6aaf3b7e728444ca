"""Running the sandbox: Werkzeug's threaded server, in a thread or standalone.
Request lines are logged with token-like query values masked."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from .state import World

SECRET_PARAMS = re.compile(
    r"((?:access_token|input_token|fb_exchange_token|client_secret|appsecret_proof|code)=)[^&\s#]+"
)
TOKEN_SHAPED = re.compile(r"\bEAA[A-Za-z0-9]{20,}")


def mask(text: str) -> str:
    """Hide token, secret and code values in a logged URL."""
    return TOKEN_SHAPED.sub("EAA***", SECRET_PARAMS.sub(r"\1***", text))


# Header names with an underscore that Meta reads (the upload host's ``file_url``).
UNDERSCORE_HEADERS = ("file_url",)


class MaskingRequestHandler(WSGIRequestHandler):
    """Logs request lines without tokens, secrets or codes; keeps Meta's ``file_url`` header."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        # Werkzeug drops every header whose name has an underscore (a spoofing guard), but
        # Meta's upload host takes the file's URL in ``file_url``: keep that one.
        for name in UNDERSCORE_HEADERS:
            value = self.headers.get(name)
            if value is not None:
                environ["HTTP_" + name.upper()] = value
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", None)
        if path is not None:
            self.path = mask(path)
        try:
            super().log_request(code, size)
        finally:
            if path is not None:
                self.path = path


class QuietRequestHandler(MaskingRequestHandler):
    """Does not log successful request lines at all (errors still are)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SandboxServer:
    """A sandbox served on a daemon thread."""

    def __init__(self, app: Flask, server: BaseWSGIServer, thread: threading.Thread) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        self.host = server.host
        self.port = server.server_port
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.url = f"http://{host}:{self.port}"

    @property
    def world(self) -> World:
        world: World = self.app.extensions["meta_sandbox"]
        return world

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> SandboxServer:
    """Serve a sandbox ``app`` on ``host:port`` (0 = a free port) in a daemon thread."""
    handler = QuietRequestHandler if quiet else MaskingRequestHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    thread = threading.Thread(target=server.serve_forever, name="meta-sandbox", daemon=True)
    thread.start()
    return SandboxServer(app, server, thread)

"""The process behind ``tests/secureserver.py``: moto's server with a request recorder, extra
(TLS) listeners, switchable IAM auth and two STS routing adaptations; everything on 127.0.0.1.

    python tests/secureserver_main.py READY_FILE

Serves moto's own WSGI application (``DomainDispatcherApplication``, what ``moto_server``
serves) on a plain listener, and a small JSON control endpoint on another port, both on
127.0.0.1 on ports the kernel picks. When both listen it writes ``{"control": PORT, "plain":
PORT}`` to READY_FILE (atomically, by rename); the test process polls for that file. The
process ends when its standard input closes (the test process ended or stopped it) or on
SIGTERM.

Control endpoint (``http://127.0.0.1:CONTROL``, JSON bodies and answers):

- ``GET /records?port=N``: every recorded request (of listener N; all without ``port``), in
  arrival order: ``[{"port", "method", "path", "query", "headers"}]``, header names lower-case.
  A request is recorded before moto handles it, so it is listed once its answer has arrived.
- ``POST /clear``: forget the recorded requests.
- ``POST /listen`` ``{"cert": PATH, "key": PATH}`` (both, for TLS) or ``{}`` (plain): one more
  listener in front of the same moto state; answers ``{"port": N}``.
- ``POST /close`` ``{"port": N}``: stop that listener.
- ``POST /auth`` ``{"enforce": true|false}``: from now on moto verifies (or stops verifying)
  SigV4 signatures against its IAM users and the credentials its STS handed out, and their
  policies (``INITIAL_NO_AUTH_ACTION_COUNT`` 0 or infinite, request count reset).

The STS adaptations, both documented AWS behaviour that moto's dispatcher misses: an
``AssumeRoleWithWebIdentity`` request with its parameters in the query string (as minio's
``WebIdentityProvider`` sends it) is routed to STS, and it is served without a SigV4 signature
(AWS authenticates it by the web identity token itself).
"""

from __future__ import annotations

import io
import json
import logging
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
_STS_TARGET = "STS.AssumeRoleWithWebIdentity"


class Recorder:
    """Records each request, adapts the STS web identity call, hands everything to moto."""

    def __init__(self, moto: Any) -> None:
        self._moto = moto
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = environ.get("QUERY_STRING", "")
        record = {
            "port": int(environ["SERVER_PORT"]),
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": query,
            "headers": headers,
        }
        with self._lock:
            self._records.append(record)
        if environ["REQUEST_METHOD"] == "POST" and "Action=AssumeRoleWithWebIdentity" in query:
            body = query.encode()
            environ.update(
                {
                    "wsgi.input": io.BytesIO(body),
                    "CONTENT_LENGTH": str(len(body)),
                    "CONTENT_TYPE": "application/x-www-form-urlencoded",
                    "QUERY_STRING": "",
                }
            )
            sts = self._moto.get_application(environ)
            environ["HTTP_X_AMZ_TARGET"] = _STS_TARGET
            return sts(environ, start_response)
        return self._moto(environ, start_response)

    def records(self, port: Optional[int]) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self._records if port is None or r["port"] == port]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class Listeners:
    def __init__(self, app: Recorder) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._servers: dict[int, Any] = {}

    def listen(self, cert: Optional[str] = None, key: Optional[str] = None) -> int:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        context: Optional[ssl.SSLContext] = None
        if cert or key:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert or "", key)
        server = make_server(HOST, 0, self._app, threaded=True, request_handler=MotoRequestHandler, ssl_context=context)
        port = int(server.server_port)
        threading.Thread(target=server.serve_forever, name=f"s3-{port}", daemon=True).start()
        with self._lock:
            self._servers[port] = server
        return port

    def close(self, port: int) -> None:
        with self._lock:
            server = self._servers.pop(port)
        server.shutdown()
        server.server_close()


def set_auth(enforce: bool) -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0.0 if enforce else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def control_handler(recorder: Recorder, listeners: Listeners) -> type[BaseHTTPRequestHandler]:
    class Control(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, value: Any) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/ping":
                self._answer(200, {"ok": True})
            elif url.path == "/records":
                ports = parse_qs(url.query).get("port")
                self._answer(200, recorder.records(int(ports[0]) if ports else None))
            else:
                self._answer(404, {"error": f"no such path {url.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            args = json.loads(self.rfile.read(length) or b"{}")
            path = urlsplit(self.path).path
            try:
                if path == "/clear":
                    recorder.clear()
                    self._answer(200, {})
                elif path == "/listen":
                    self._answer(200, {"port": listeners.listen(args.get("cert"), args.get("key"))})
                elif path == "/close":
                    listeners.close(int(args["port"]))
                    self._answer(200, {})
                elif path == "/auth":
                    set_auth(bool(args["enforce"]))
                    self._answer(200, {})
                else:
                    self._answer(404, {"error": f"no such path {path}"})
            except Exception as exc:
                self._answer(500, {"error": f"{type(exc).__name__}: {exc}"})

    return Control


def main(ready_file: str) -> None:
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    if _STS_TARGET not in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        ActionAuthenticatorMixin.PUBLIC_OPERATIONS.append(_STS_TARGET)
    set_auth(False)
    recorder = Recorder(DomainDispatcherApplication(create_backend_app))
    listeners = Listeners(recorder)
    plain = listeners.listen()
    control = ThreadingHTTPServer((HOST, 0), control_handler(recorder, listeners))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()

    ready = Path(ready_file)
    tmp = ready.with_name(ready.name + ".tmp")
    tmp.write_text(json.dumps({"control": control.server_address[1], "plain": plain}))
    os.replace(tmp, ready)

    sys.stdin.buffer.read()  # until the test process closes it (or is gone)
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: secureserver_main.py READY_FILE")
    main(sys.argv[1])

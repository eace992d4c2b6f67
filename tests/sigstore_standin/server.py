"""One plain-HTTP server on 127.0.0.1 for every service, routed by the paths sigstore calls.

sigstore 4.5.1 takes service URLs from the signing config as they are (no https check),
so plain ``http://127.0.0.1:<port>`` works and needs no TLS trust setup.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

from .fulcio import (
    Fulcio,
    FulcioError,
    csr_from_request,
    principal_from_claims,
    signing_cert_response,
)
from .oidc import TokenIssuer
from .tlog import LogError, TransparencyLog
from .tsa import TimestampAuthority, TimestampError

FULCIO_PATH = "/api/v2/signingCert"
REKOR_V1_PATH = "/api/v1/log/entries"
REKOR_V2_PATH = "/api/v2/log/entries"
TSA_PATH = "/api/v1/timestamp"
_MAX_BODY = 1 << 20


class _HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Services:
    """The request handlers, free of HTTP: JSON or DER in, JSON or DER out."""

    def __init__(
        self,
        tokens: TokenIssuer,
        fulcio: Fulcio,
        tlog: TransparencyLog,
        tsa: TimestampAuthority,
    ) -> None:
        self.tokens = tokens
        self.fulcio = fulcio
        self.tlog = tlog
        self.tsa = tsa

    def signing_cert(self, authorization: str | None, body: bytes) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise _HTTPError(HTTPStatus.UNAUTHORIZED, "a Bearer identity token is required")
        try:
            claims = self.tokens.verify(authorization.removeprefix("Bearer "))
        except jwt.InvalidTokenError as exc:
            raise _HTTPError(HTTPStatus.UNAUTHORIZED, f"identity token refused: {exc}") from exc
        try:
            principal = principal_from_claims(claims)
            chain = self.fulcio.issue(csr_from_request(_json(body)), principal)
        except FulcioError as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        return signing_cert_response(chain)

    def rekor(self, version: int, body: bytes) -> dict[str, Any]:
        try:
            return (self.tlog.add_v1 if version == 1 else self.tlog.add_v2)(_json(body))
        except LogError as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from exc

    def timestamp(self, body: bytes) -> bytes:
        try:
            return self.tsa.respond(body)
        except TimestampError as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from exc


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise _HTTPError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _HTTPError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
    return value


def _handler_class(services: Services) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no idle keep-alive threads outlive a test.
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            routes: dict[str, Callable[[bytes], tuple[str, bytes]]] = {
                FULCIO_PATH: lambda b: _as_json(
                    services.signing_cert(self.headers.get("Authorization"), b)
                ),
                REKOR_V1_PATH: lambda b: _as_json(services.rekor(1, b)),
                REKOR_V2_PATH: lambda b: _as_json(services.rekor(2, b)),
                TSA_PATH: lambda b: ("application/timestamp-reply", services.timestamp(b)),
            }
            try:
                route = routes.get(self.path)
                if route is None:
                    raise _HTTPError(HTTPStatus.NOT_FOUND, f"no service at {self.path}")
                content_type, payload = route(self._body())
                status = HTTPStatus.CREATED if self.path != TSA_PATH else HTTPStatus.OK
            except _HTTPError as exc:
                # Rekor's error shape; Fulcio's client reads "message" as well.
                status = exc.status
                content_type, payload = _as_json({"code": exc.status.value, "message": str(exc)})
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError as exc:
                raise _HTTPError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from exc
            if not 0 <= length <= _MAX_BODY:
                raise _HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            return self.rfile.read(length)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest output should not fill with access logs."""

    return Handler


def _as_json(value: dict[str, Any]) -> tuple[str, bytes]:
    return "application/json", json.dumps(value).encode()


class Server:
    """A ``ThreadingHTTPServer`` on an ephemeral 127.0.0.1 port, served from a daemon thread."""

    def __init__(self, services: Services) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(services))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sigstore-standin {self.url}",
            daemon=True,
        )
        self._stopped = False
        self._stop_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Idempotent; safe from the watchdog timer and the context exit alike."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

"""The request line of the log, and the security headers of every response: pure-ASGI middlewares."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .deps import model_version
from .errors import internal_error
from .logging_config import request_id_var
from .monitoring import record_request

REQUEST_ID_HEADER = "X-Request-ID"
MODEL_VERSION_HEADER = "X-Model-Version"
# An incoming id is kept only if it is short and made of safe characters: it is written
# into our logs and headers, so it must not carry spaces, newlines or markup.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

access_log = logging.getLogger(f"{__package__}.access")
error_log = logging.getLogger(f"{__package__}.errors")


def request_id_from(headers: Headers) -> str:
    """The client's ``X-Request-ID`` if it is sane, otherwise a new one (uuid4, hex)."""
    incoming = headers.get(REQUEST_ID_HEADER, "")
    return incoming if SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


class RequestLog:
    """Give each request an id, return it in ``X-Request-ID``, and log one line when it ends.

    The line says method, path (never the query string), status, latency, model version (also
    returned in ``X-Model-Version`` and counted in the metrics) and the caller (the key's name
    and public id, never the key).
    An exception nobody handled is logged with its trace under the request id; the client
    gets a 500 with the id only.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        start, status, started = time.perf_counter(), 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                headers[MODEL_VERSION_HEADER] = model_version(scope)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:  # the status line is gone: nothing better to do than cut the response
                raise
            await internal_error(Request(scope))(scope, receive, send_with_id)
        finally:
            latency_ms = (time.perf_counter() - start) * 1000
            principal = scope["state"].get("principal")
            access_log.log(
                logging.INFO if status < 500 else logging.ERROR,
                "method=%s path=%s status=%d latency_ms=%.1f model=%s who=%s",
                scope["method"],
                scope["path"],
                status,
                latency_ms,
                model_version(scope),
                f"{principal.name}:{principal.key_id}" if principal else "-",
            )
            record_request(scope, status, latency_ms)
            request_id_var.reset(token)


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",  # a CSV or JSON answer is never run as a script
    "X-Frame-Options": "DENY",  # the form cannot be framed by another site (clickjacking)
    "Content-Security-Policy": "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # predictions, audit rows and a new key stay out of caches
}

_RAW_SECURITY_HEADERS = [
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items()
]


class SecurityHeaders:
    """Add ``SECURITY_HEADERS`` to every HTTP response (a response that sets one keeps its own)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in _RAW_SECURITY_HEADERS if header[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

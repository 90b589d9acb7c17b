"""Three small pure-ASGI middlewares: the request line of the log (and metrics), the body size limit,
and the security headers of every response.

Pure ASGI rather than ``@app.middleware("http")``: they see every byte and every status,
including the responses they send themselves, and add no task or buffering of their own.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logging_config import request_id_var

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

    The line says method, path (never the query string), status, latency, the model
    version that served it, also returned in ``X-Model-Version``, and the caller (the key's
    name and public id, never the key); ``record`` gets the same
    facts for the metrics. An exception nobody handled is logged with its full trace under
    the request id, and the client gets ``on_error``'s response: a 500 with the id only.
    """

    def __init__(
        self,
        app: ASGIApp,
        on_error: Callable[[Request], Response],
        model_version: Callable[[Scope], str],
        record: Callable[[Scope, int, float], None],
    ):
        self.app = app
        self.on_error = on_error
        self.model_version = model_version
        self.record = record

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
                headers[MODEL_VERSION_HEADER] = self.model_version(scope)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:  # the status line is gone: nothing better to do than cut the response
                raise
            await self.on_error(Request(scope))(scope, receive, send_with_id)
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
                self.model_version(scope),
                f"{principal.name}:{principal.key_id}" if principal else "-",
            )
            self.record(scope, status, latency_ms)
            request_id_var.reset(token)


class BodySizeLimit:
    """Refuse a request body over ``limit_for(request)`` bytes with ``on_too_large``'s 413.

    A declared ``Content-Length`` is checked before anything is read (the server then
    guarantees the body is no longer than declared). A body sent without it (chunked) is
    read here, at most limit + 1 bytes, before the application sees it: nobody can make the
    service swallow an endless stream.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[Request], int],
        on_too_large: Callable[[Request, int], Response],
    ):
        self.app = app
        self.limit_for = limit_for
        self.on_too_large = on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limit = self.limit_for(request)
        declared = request.headers.get("content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                await self.on_too_large(request, limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                await self.on_too_large(request, limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


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

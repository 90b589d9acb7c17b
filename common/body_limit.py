"""A pure-ASGI middleware that refuses a request body over a size limit (generic plumbing).

A declared ``Content-Length`` is checked before anything is read (the server then
guarantees the body is no longer than declared). A body sent without it (chunked) is read
here, at most limit + 1 bytes, before the application sees it: nobody can make a service
swallow an endless stream.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """Refuse a body over ``limit_for(request)`` bytes with ``on_too_large(request, limit)``'s response."""

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[Request], int], on_too_large: Callable[[Request, int], Response]
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

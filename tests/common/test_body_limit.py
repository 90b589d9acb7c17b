"""common.body_limit: a body over the limit is refused before the application reads it."""

from __future__ import annotations

import asyncio

from starlette.responses import PlainTextResponse

from common.body_limit import BodySizeLimit


def run(headers: list[tuple[bytes, bytes]], pieces: list[bytes], limit: int = 10) -> tuple[int, bytes | None]:
    """Send ``pieces`` as one request through BodySizeLimit; the status sent and the body the app read."""
    seen: dict[str, bytes] = {}

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen["body"] = body
        await PlainTextResponse("ok")(scope, receive, send)

    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)
    ]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    limited = BodySizeLimit(app, lambda request: limit, lambda request, n: PlainTextResponse(f"max {n}", 413))
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    asyncio.run(limited(scope, receive, send))
    return sent[0]["status"], seen.get("body")


def test_a_declared_length_over_the_limit_is_refused_unread():
    assert run([(b"content-length", b"11")], [b"x" * 11]) == (413, None)


def test_a_chunked_body_over_the_limit_is_refused_before_the_app_sees_it():
    assert run([], [b"x" * 6, b"x" * 6, b"x" * 6]) == (413, None)


def test_a_body_within_the_limit_reaches_the_app_whole():
    assert run([], [b"abc", b"def"]) == (200, b"abcdef")
    assert run([(b"content-length", b"4")], [b"abcd"]) == (200, b"abcd")

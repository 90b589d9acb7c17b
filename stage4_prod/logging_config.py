"""Logging, configured in this one place: text lines on stdout, each with its request id.

    2025-11-26T10:15:02.114+00:00 INFO [3f9c0a1e...] POST /predict 200 4.1ms model=1.0.0

A container's stdout is what ``docker compose logs`` shows, so no file is written. An API
key that would reach a line anyway (a stream URL with ``?api_key=`` logged by uvicorn) is
cut to its public id: ``pk_3f9c0a1e2b4d5c6f.***``. The
request id of the request being served (a context variable, copied into the worker
thread of plain ``def`` endpoints) is added to every line, so that a client quoting the
id of a failed request leads straight to its trace.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
SECRET = re.compile(r"(pk_[0-9a-f]{16})\.[A-Za-z0-9_-]+")
FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactKeys(logging.Filter):
    """Replace the secret part of any API key in a record by ``***``, whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "pk_" in message:
            record.msg, record.args = SECRET.sub(r"\1.***", message), None
        return True


class IsoFormatter(logging.Formatter):
    """ISO 8601 times in UTC with milliseconds: sortable, unambiguous across sites."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class StdoutHandler(logging.StreamHandler):
    """Writes to the current ``sys.stdout``, even if it was replaced after configuration."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; stdout is looked up on use
        pass


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stdout in the format above; safe to call again (no duplicates).

    Only our own handler is replaced: handlers others installed (pytest's, for example)
    stay. uvicorn's access log is redundant with our request line and is switched off.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StdoutHandler)]:
        root.removeHandler(handler)
    handler = StdoutHandler()
    handler.setFormatter(IsoFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactKeys())
    root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers (its WebSocket lines hold the URL)
        for other in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactKeys) for f in other.filters):
                other.addFilter(RedactKeys())
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True

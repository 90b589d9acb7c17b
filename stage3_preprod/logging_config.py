"""Logging, configured in this one place: text lines on stdout, times in UTC (ISO 8601).

    2025-11-26T10:15:02.114+00:00 INFO [3f9c0a1e...] stage3_preprod.access: method=POST path=/predict ...

Each line carries the id of the request being served: a client quoting it leads to its trace.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar

FORMAT = "%(asctime)s.%(msecs)03d+00:00 %(levelname)s [%(request_id)s] %(name)s: %(message)s"
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class StdoutHandler(logging.StreamHandler):
    """Writes to the current ``sys.stdout``, even if it was replaced after configuration."""

    stream = property(lambda self: sys.stdout, lambda self, value: None)  # looked up on use


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stdout in the format above; safe to call again (no duplicates).

    Only our own handler is replaced: handlers others installed (pytest's, for example) stay.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StdoutHandler)]:
        root.removeHandler(handler)
    handler = StdoutHandler()
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
    handler.formatter.converter = time.gmtime
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True  # our request line says it all

"""Logging, configured in this one place: text lines on stdout, times in UTC (ISO 8601).

2025-11-26T10:15:02.114+00:00 ERROR stage1_local.errors: unexpected error on POST /
"""

from __future__ import annotations

import logging
import sys
import time

FORMAT = "%(asctime)s.%(msecs)03d+00:00 %(levelname)s %(name)s: %(message)s"


class StdoutHandler(logging.StreamHandler):
    """Writes to the current ``sys.stdout``, even if it was replaced after configuration."""

    stream = property(lambda self: sys.stdout, lambda self, value: None)  # looked up on use


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
    root.addHandler(handler)
    root.setLevel(level)

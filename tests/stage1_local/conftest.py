"""Stage 1 fixtures."""

from __future__ import annotations

import logging

import pytest

from stage1_local.logging_config import StdoutHandler


@pytest.fixture(autouse=True)
def restore_logging():
    """The app configures the root logger at startup: give the next tests the logging they had."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, StdoutHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)

"""Appending lines to a file that several threads and processes share, and checking a folder is writable.

Each append takes an exclusive ``flock`` on the file, writes the header if the file is
still empty, then all its lines with a single ``write`` and releases the lock, so that
lines are never interleaved or cut. POSIX only (``fcntl``), like the services' images.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def append_lines(path: Path, text: str, header: str) -> None:
    """Append ``text`` (whole lines) under an exclusive lock, ``header`` first if the file is empty.

    A write that fails half-way (disk full) is cut back to the previous end of the file,
    so that no partial line is left for the next append to run into. Raises OSError.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.fstat(fd).st_size
        if end == 0:
            text = header + text
        data = text.encode("utf-8")
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)  # releases the lock


def check_writable(directory: Path) -> None:
    """Write and remove one byte in ``directory`` (created if needed), as an append would.

    Raises OSError if the folder is read-only or its disk is full.
    """
    directory = Path(directory)
    probe = directory / f".sonde-ecriture-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)

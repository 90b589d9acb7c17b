"""``uvicorn --workers N`` where each worker listens on a socket of its own: the kernel shares out the connections.

    python -m common.serve stage3_preprod.app:app --host 0.0.0.0 --port 8000 --workers 2 --no-access-log

The options are the ``uvicorn`` command's (this is its command line); only how the workers
listen changes. ``uvicorn --workers`` binds one socket in its supervisor and hands it to
every worker. The worker that wakes first takes every connection waiting (asyncio accepts
in a loop), so 16 clients that connect at once often all land on one worker while the
other idles: 3 loads in 5 on the benchmark machine, at 60 % of the throughput of a
balanced split (docs/annexes/performances.md). Here each worker binds its own socket on
the same address with ``SO_REUSEPORT`` (Linux), and the kernel spreads new connections
over those sockets by a hash of their addresses. A replaced worker binds its own the same
way; one worker, a Unix socket or a file descriptor is plain uvicorn.

The price, in docs/annexes/decisions.md: a connection still waiting in the queue of a
worker that stops (crash, restart) is reset instead of going to the other worker.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors import multiprocess

logger = logging.getLogger("uvicorn.error")


def reuse_port_socket(config: Config) -> socket.socket:
    """A socket bound to ``config.host:config.port`` in the port's ``SO_REUSEPORT`` group, as uvicorn binds its own."""
    sock = socket.socket(socket.AF_INET6 if config.host and ":" in config.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)  # the supervisor then stops, as for any worker that cannot start
    sock.set_inheritable(True)
    return sock


class OwnSocketProcess(multiprocess.Process):
    """A uvicorn worker that binds its own socket when it starts, in the worker's process."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover (a worker)
        super().target(sockets or [reuse_port_socket(self.config)])


class OwnSocketMultiprocess(multiprocess.Multiprocess):
    """uvicorn's supervisor (restarts, signals), whose workers each bind a socket of their own."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        if config.uds is None and config.fd is None:
            # uvicorn's shared socket has proved the address free (the port chosen, if 0) and logged
            # it; it has not listened yet, so nothing waits in it.
            config.port = sockets[0].getsockname()[1]
            for sock in sockets:
                sock.close()
            sockets = []  # each worker binds its own (OwnSocketProcess)
        super().__init__(config, sockets)


def main() -> None:
    """uvicorn's command, with its supervisor starting workers that bind their own sockets."""
    command = importlib.import_module("uvicorn.main")  # the module: ``uvicorn.main`` is also its function
    multiprocess.Process = OwnSocketProcess  # the class uvicorn's supervisor starts its workers with
    command.Multiprocess = OwnSocketMultiprocess  # the supervisor ``uvicorn --workers`` runs
    command.main()


if __name__ == "__main__":
    main()
